"""Test doubles: stand-ins for the language model, named as such. Never presented as the model."""
