"""The server's settings: the shared ``Settings`` plus the limits that only an HTTP server needs.

Why a subclass: the CLI and the agent never read request limits, so they stay out of the shared
settings; the server still reads every value (LLM, source, token, CORS) from the same place.
"""

from __future__ import annotations

from pydantic import Field

from gpudoc.config import Settings


class ServerSettings(Settings):
    """``Settings`` plus request limits, each overridable by an environment variable."""

    max_message_chars: int = Field(8000, ge=1, alias="GPUDOC_MAX_MESSAGE_CHARS")
    max_history_messages: int = Field(50, ge=0, alias="GPUDOC_MAX_HISTORY_MESSAGES")
    max_body_bytes: int = Field(256 * 1024, ge=1024, alias="GPUDOC_MAX_BODY_BYTES")
    max_rounds: int = Field(4, ge=1, le=12, alias="GPUDOC_MAX_ROUNDS")
    readiness_timeout_s: float = Field(3.0, gt=0, alias="GPUDOC_READINESS_TIMEOUT_S")

    @classmethod
    def from_settings(cls, settings: Settings) -> "ServerSettings":
        """Upgrade plain ``Settings`` (e.g. built by the CLI) without losing any explicit value."""
        if isinstance(settings, ServerSettings):
            return settings
        return cls(**settings.model_dump())

    @property
    def token(self) -> str | None:
        """The bearer token, or ``None`` when unset or empty (``GPUDOC_API_TOKEN=`` disables auth)."""
        value = (self.api_token or "").strip()
        return value or None

    @property
    def cors_origin_list(self) -> list[str]:
        """``GPUDOC_CORS_ORIGINS`` split on commas; empty means no cross-origin access."""
        return [origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip()]
