"""Evaluations of the agent over recorded model conversations (see run.py)."""
