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
    source: Literal["sim", "watchdog"] = Field("sim", alias="GPUDOC_SOURCE")
    backend_base_url: str = Field("http://localhost:3001", alias="BACKEND_BASE_URL")
    backend_timeout_s: float = Field(10.0, alias="BACKEND_TIMEOUT_S")

    # Where scheduler facts come from with --source watchdog/prometheus (the simulator has its
    # own Slurm): slurmrestd ("rest", the default when SLURMRESTD_URL is set), the Slurm
    # commands on this host ("cli"), or none.
    slurm: Literal["none", "rest", "cli"] | None = Field(None, alias="GPUDOC_SLURM")
    slurmrestd_url: str | None = Field(None, alias="SLURMRESTD_URL")
    slurm_user: str | None = Field(None, alias="SLURM_USER")
    slurm_jwt: str | None = Field(None, alias="SLURM_JWT", repr=False)
    slurm_jwt_file: Path | None = Field(None, alias="SLURM_JWT_FILE")
    slurmrestd_version: str | None = Field(None, alias="SLURMRESTD_VERSION")
    slurm_timeout_s: float = Field(10.0, alias="SLURM_TIMEOUT_S")

    # Conversations and the server.
    db_path: Path = Field(Path("gpudoc-threads.sqlite"), alias="GPUDOC_DB_PATH")
    api_token: str | None = Field(None, alias="GPUDOC_API_TOKEN")
    cors_origins: str = Field("", alias="GPUDOC_CORS_ORIGINS")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit (e.g. command-line) values taking precedence."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
