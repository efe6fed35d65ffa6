"""gpudoc: an AI diagnostic agent for NVIDIA GPU clusters."""

__version__ = "0.1.0"
