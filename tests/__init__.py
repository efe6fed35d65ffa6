"""Test suite of gpudoc (a plain directory; importable so that evals and benchmarks share the doubles)."""
