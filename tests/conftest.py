"""Shared pytest configuration. Area-specific fixtures live in the test modules of each area."""
