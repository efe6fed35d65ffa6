"""Process-wide settings from the environment (and ``.env``), with the original GPU Watchdog names.

Why pydantic-settings: one typed place that documents every variable, so the CLI, the agent and
the server read the same values and a typo in a number fails at start-up with a clear message.

Every option is declared once, here, with ``option(...)``: its default, its range or choices,
its environment variable and its help text, and (when it has one) its command-line flag and the
group of commands that take it. ``gpudoc.commands.options`` derives the argparse arguments from
these declarations, so the CLI, the server and the environment cannot disagree on a range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic import field_validator

from gpudoc.tools.sources.factory import (
    SIM_NODES_MAX,
    SIM_NODES_MIN,
    GpuModelName,
    SlurmMode,
    SourceName,
    SourceOptions,
)

DEFAULT_MODEL = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"

#: option groups: a command takes the groups it needs (``gpudoc.commands.options.add_option_groups``)
LLM_GROUP = "language model"
AGENT_GROUP = "agent"
SOURCE_GROUP = "cluster source"
THREADS_GROUP = "conversation threads"

#: sampling NVIDIA recommends for Nemotron-3-Nano in tool-calling use (general chat: 1.0 / 1.0)
TOOL_CALLING_TEMPERATURE = 0.6
TOOL_CALLING_TOP_P = 0.95
#: the output budget must leave room for the reasoning trace before the answer
MIN_OUTPUT_TOKENS = 8192
DEFAULT_OUTPUT_TOKENS = 32768

_SOURCE_DEFAULTS = SourceOptions()


def option(
    default: Any,
    *,
    env: str,
    help: str,
    flag: str | None = None,
    group: str | None = None,
    metavar: str | None = None,
    **constraints: Any,
) -> Any:
    """A setting: default, environment variable, help, and optionally a command-line ``flag``.

    ``constraints`` are pydantic's (``ge``, ``le``, ``gt``, ...): the same numbers check the
    environment, the server's settings and, through the derived argparse type, the CLI.
    """
    cli = {"flag": flag, "group": group, "metavar": metavar} if flag else None
    return Field(default, alias=env, description=help, json_schema_extra={"cli": cli} if cli else None,
                 **constraints)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True,
                                      env_parse_none_str="unset")

    # The language model (any OpenAI-compatible server; vLLM by default).
    llm_base_url: str = option("http://localhost:8000/v1", env="LLM_BASE_URL", flag="--llm-base-url",
                               group=LLM_GROUP, metavar="URL",
                               help="OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama, NIM, hosted)")
    llm_api_key: str = option("EMPTY", env="LLM_API_KEY", repr=False, help="the endpoint's API key")
    llm_model: str = option(DEFAULT_MODEL, env="LLM_MODEL", flag="--model", group=LLM_GROUP, help="model name")
    llm_temperature: float = option(TOOL_CALLING_TEMPERATURE, env="LLM_TEMPERATURE", flag="--temperature",
                                    group=LLM_GROUP, ge=0.0, le=2.0,
                                    help="sampling temperature (Nemotron-3-Nano model card, tool calling)")
    llm_top_p: float = option(TOOL_CALLING_TOP_P, env="LLM_TOP_P", flag="--top-p", group=LLM_GROUP, gt=0.0, le=1.0,
                              help="nucleus sampling top_p (Nemotron-3-Nano model card, tool calling)")
    llm_max_tokens: int | None = option(
        DEFAULT_OUTPUT_TOKENS, env="LLM_MAX_TOKENS", flag="--max-tokens", group=LLM_GROUP, ge=MIN_OUTPUT_TOKENS,
        help="output budget per model call, reasoning included; 'unset' lets the server decide",
    )
    llm_timeout_s: float = option(120.0, env="LLM_TIMEOUT_S", gt=0, help="seconds one model call may take")
    llm_max_retries: int = option(1, env="LLM_MAX_RETRIES", ge=0, le=10, help="retries of a failed model call")
    llm_context_tokens: int = option(65536, env="LLM_CONTEXT_TOKENS", ge=4096,
                                     help="the model's context window (vLLM --max-model-len)")
    stream_flush_ms: float = option(30.0, env="GPUDOC_STREAM_FLUSH_MS", ge=0, le=1000,
                                    help="longest wait before streamed tokens are passed on together, in ms "
                                         "(0: only tokens that arrived together)")
    llm_enable_thinking: bool = option(True, env="LLM_ENABLE_THINKING", flag="--thinking", group=LLM_GROUP,
                                       help="let the model reason before it answers (--no-thinking is faster)")

    # How the agent works.
    max_rounds: int = option(4, env="GPUDOC_MAX_ROUNDS", flag="--max-rounds", group=AGENT_GROUP, ge=1, le=12,
                             help="most rounds of tool calls per question")
    tool_timeout_s: float = option(30.0, env="GPUDOC_TOOL_TIMEOUT_S", flag="--tool-timeout", group=AGENT_GROUP,
                                   gt=0, le=600, metavar="SECONDS",
                                   help="seconds one tool call may take before the model is told it timed out")
    turn_timeout_s: float = option(600.0, env="GPUDOC_TURN_TIMEOUT_S", flag="--turn-timeout", group=AGENT_GROUP,
                                   gt=0, le=86400, metavar="SECONDS",
                                   help="seconds one question may take in all; past it the answer so far ends it, "
                                        "labelled as cut short")

    # Where cluster facts come from.
    source: SourceName = option(_SOURCE_DEFAULTS.source, env="GPUDOC_SOURCE", flag="--source", group=SOURCE_GROUP,
                                help="where cluster facts come from")
    backend_base_url: str = option(_SOURCE_DEFAULTS.backend_base_url, env="BACKEND_BASE_URL", flag="--backend-url",
                                   group=SOURCE_GROUP, metavar="URL",
                                   help="GPU Watchdog API base URL for --source watchdog")
    backend_timeout_s: float = option(_SOURCE_DEFAULTS.backend_timeout_s, env="BACKEND_TIMEOUT_S", gt=0,
                                      help="seconds one GPU Watchdog request may take")
    scenarios: Annotated[list[str], NoDecode] = option(
        [], env="GPUDOC_SCENARIOS", flag="--scenario", group=SOURCE_GROUP, metavar="NAME[@node-N[/gpu-M]]",
        help="inject a fault into the simulated cluster; repeatable (see `gpudoc scenarios`); "
             "comma-separated in the environment",
    )
    seed: int = option(_SOURCE_DEFAULTS.seed, env="GPUDOC_SIM_SEED", flag="--seed", group=SOURCE_GROUP,
                       help="simulator seed")
    nodes: int = option(_SOURCE_DEFAULTS.nodes, env="GPUDOC_SIM_NODES", flag="--nodes", group=SOURCE_GROUP,
                        ge=SIM_NODES_MIN, le=SIM_NODES_MAX, help="simulated nodes, 8 GPUs each")
    gpu_model: GpuModelName = option(_SOURCE_DEFAULTS.gpu_model, env="GPUDOC_SIM_GPU_MODEL", flag="--gpu-model",
                                     group=SOURCE_GROUP, help="simulated GPU model")

    # Prometheus (or any Prometheus-compatible API) fed by dcgm-exporter and node_exporter, for
    # --source prometheus; Alertmanager for silences. Credentials only from the environment.
    prometheus_url: str | None = option(None, env="PROMETHEUS_URL", flag="--prometheus-url", group=SOURCE_GROUP,
                                        metavar="URL", help="Prometheus API base URL for --source prometheus "
                                        "(Thanos Query, Mimir's Prometheus path, VictoriaMetrics work too)")
    alertmanager_url: str | None = option(None, env="ALERTMANAGER_URL", flag="--alertmanager-url",
                                          group=SOURCE_GROUP, metavar="URL",
                                          help="Alertmanager base URL, for silences")
    prometheus_bearer_token: str | None = option(None, env="PROMETHEUS_BEARER_TOKEN", repr=False,
                                                 help="bearer token for Prometheus and Alertmanager")
    prometheus_username: str | None = option(None, env="PROMETHEUS_USERNAME", help="basic-auth user for Prometheus")
    prometheus_password: str | None = option(None, env="PROMETHEUS_PASSWORD", repr=False,
                                             help="basic-auth password for Prometheus")
    prometheus_tls_verify: bool = option(True, env="PROMETHEUS_TLS_VERIFY", flag="--prometheus-tls-verify",
                                         group=SOURCE_GROUP, help="verify Prometheus's TLS certificate "
                                         "(--no-prometheus-tls-verify for a self-signed one)")
    prometheus_selector: str = option("", env="PROMETHEUS_SELECTOR",
                                      help='label matchers added to every query, e.g. cluster="prod"')
    prometheus_timeout_s: float = option(_SOURCE_DEFAULTS.prometheus_timeout_s, env="PROMETHEUS_TIMEOUT_S", gt=0,
                                         help="seconds one Prometheus request may take")

    # Where scheduler facts come from with --source watchdog/prometheus (the simulator has its
    # own Slurm): slurmrestd ("rest", the default when SLURMRESTD_URL is set), the Slurm
    # commands on this host ("cli"), or none.
    slurm: SlurmMode | None = option(
        None, env="GPUDOC_SLURM", flag="--slurm", group=SOURCE_GROUP,
        help="scheduler facts for a telemetry --source (not sim): slurmrestd (rest), the Slurm commands on "
             "this host (cli) or none; unset: rest when SLURMRESTD_URL is set",
    )
    slurmrestd_url: str | None = option(None, env="SLURMRESTD_URL", flag="--slurmrestd-url", group=SOURCE_GROUP,
                                        metavar="URL", help="slurmrestd base URL for --slurm rest")
    slurm_user: str | None = option(None, env="SLURM_USER", help="user name sent to slurmrestd with the token")
    slurm_jwt: str | None = option(None, env="SLURM_JWT", repr=False, help="slurmrestd JWT (auth/jwt)")
    slurm_jwt_file: Path | None = option(None, env="SLURM_JWT_FILE", help="file holding the slurmrestd JWT")
    slurmrestd_version: str | None = option(None, env="SLURMRESTD_VERSION",
                                            help="slurmrestd API version to use (default: detected)")
    slurm_timeout_s: float = option(_SOURCE_DEFAULTS.slurm_timeout_s, env="SLURM_TIMEOUT_S", gt=0,
                                    help="seconds one Slurm request may take")

    # Conversations and the server.
    db_path: Path = option(Path("gpudoc-threads.sqlite"), env="GPUDOC_DB_PATH", flag="--db-path",
                           group=THREADS_GROUP, metavar="FILE", help="SQLite file for conversation threads")
    db_url: str | None = option(None, env="GPUDOC_DB_URL", flag="--db-url", group=THREADS_GROUP, metavar="URL",
                                repr=False,
                                help="keep threads in PostgreSQL (postgresql://user@host:5432/db; password in "
                                     "the URL or PGPASSWORD) instead of the SQLite file; needed for --workers > 1")
    db_pool_size: int = option(10, env="GPUDOC_DB_POOL_SIZE", ge=1, le=200,
                               help="PostgreSQL connections per process for threads")
    db_timeout_s: float = option(10.0, env="GPUDOC_DB_TIMEOUT_S", gt=0, le=300,
                                 help="seconds to connect (or reconnect) to PostgreSQL")
    api_token: str | None = option(None, env="GPUDOC_API_TOKEN", repr=False,
                                   help="require 'Authorization: Bearer <token>' on agent and API routes")
    cors_origins: str = option("", env="GPUDOC_CORS_ORIGINS", help="comma-separated origins allowed to call the API")

    @field_validator("scenarios", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("db_url", mode="after")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.strip().lower().startswith(("postgresql://", "postgres://")):
            raise ValueError("GPUDOC_DB_URL must be a postgresql:// URL (SQLite threads take GPUDOC_DB_PATH)")
        return value.strip()

    def source_options(self, *, realtime: bool = True) -> SourceOptions:
        """The source these settings name: every ``SourceOptions`` field is taken from the setting
        of the same name, so a source option is declared once here and once in ``SourceOptions``."""
        values = {name: getattr(self, name) for name in SourceOptions.model_fields if name in type(self).model_fields}
        return SourceOptions(**values, realtime=realtime)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit (e.g. command-line) values taking precedence."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
