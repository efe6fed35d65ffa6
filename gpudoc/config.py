"""Process-wide settings from the environment (and ``.env``), with the original GPU Watchdog names.

Why pydantic-settings: one typed place that documents every variable, so the CLI, the agent and
the server read the same values and a typo in a number fails at start-up with a clear message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # The language model (any OpenAI-compatible server; vLLM by default).
    llm_base_url: str = Field("http://localhost:8000/v1", alias="LLM_BASE_URL")
    llm_api_key: str = Field("EMPTY", alias="LLM_API_KEY")
    llm_model: str = Field(DEFAULT_MODEL, alias="LLM_MODEL")
    llm_temperature: float = Field(0.2, alias="LLM_TEMPERATURE")
    llm_max_tokens: int = Field(2048, alias="LLM_MAX_TOKENS")
    llm_timeout_s: float = Field(120.0, alias="LLM_TIMEOUT_S")
    llm_max_retries: int = Field(1, alias="LLM_MAX_RETRIES")
    llm_context_tokens: int = Field(32768, alias="LLM_CONTEXT_TOKENS")
    llm_enable_thinking: bool = Field(True, alias="LLM_ENABLE_THINKING")

    # Where cluster facts come from.
    source: Literal["sim", "watchdog", "prometheus"] = Field("sim", alias="GPUDOC_SOURCE")
    backend_base_url: str = Field("http://localhost:3001", alias="BACKEND_BASE_URL")
    backend_timeout_s: float = Field(10.0, alias="BACKEND_TIMEOUT_S")
    # Prometheus (any Prometheus-compatible API) fed by dcgm-exporter and node_exporter.
    prometheus_url: str | None = Field(None, alias="PROMETHEUS_URL")
    alertmanager_url: str | None = Field(None, alias="ALERTMANAGER_URL")
    prometheus_bearer_token: str | None = Field(None, alias="PROMETHEUS_BEARER_TOKEN")
    prometheus_username: str | None = Field(None, alias="PROMETHEUS_USERNAME")
    prometheus_password: str | None = Field(None, alias="PROMETHEUS_PASSWORD")
    prometheus_tls_verify: bool = Field(True, alias="PROMETHEUS_TLS_VERIFY")
    prometheus_selector: str = Field("", alias="PROMETHEUS_SELECTOR")
    prometheus_timeout_s: float = Field(15.0, alias="PROMETHEUS_TIMEOUT_S")

    def prometheus_options(self) -> dict[str, object]:
        """The Prometheus fields of the source options (``SourceOptions``), as the environment sets them."""
        return {
            "prometheus_url": self.prometheus_url, "alertmanager_url": self.alertmanager_url,
            "prometheus_bearer_token": self.prometheus_bearer_token,
            "prometheus_username": self.prometheus_username, "prometheus_password": self.prometheus_password,
            "prometheus_tls_verify": self.prometheus_tls_verify, "prometheus_selector": self.prometheus_selector,
            "prometheus_timeout_s": self.prometheus_timeout_s,
        }

    # Conversations and the server.
    db_path: Path = Field(Path("gpudoc-threads.sqlite"), alias="GPUDOC_DB_PATH")
    api_token: str | None = Field(None, alias="GPUDOC_API_TOKEN")
    cors_origins: str = Field("", alias="GPUDOC_CORS_ORIGINS")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit (e.g. command-line) values taking precedence."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
