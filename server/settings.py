"""The server's settings: the shared ``Settings`` plus the limits that only an HTTP server needs.

Why a subclass: the CLI and the agent never read request limits, so they stay out of the shared
settings; the server still reads every value (LLM, source, token, CORS) from the same place.
"""

from __future__ import annotations

from gpudoc.config import Settings, option


class ServerSettings(Settings):
    """``Settings`` plus request limits, each overridable by an environment variable."""

    max_message_chars: int = option(8000, env="GPUDOC_MAX_MESSAGE_CHARS", ge=1,
                                    help="longest question a request may carry, in characters")
    max_history_messages: int = option(50, env="GPUDOC_MAX_HISTORY_MESSAGES", ge=0,
                                       help="most earlier messages a request may carry")
    max_body_bytes: int = option(256 * 1024, env="GPUDOC_MAX_BODY_BYTES", ge=1024, help="largest request body")
    readiness_timeout_s: float = option(3.0, env="GPUDOC_READINESS_TIMEOUT_S", gt=0,
                                        help="seconds /readyz waits for the model and the source")

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
