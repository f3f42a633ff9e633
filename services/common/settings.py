"""The one typed settings object of a process, read from ``BAROMETRE_*`` environment variables.

Build it once at start-up with :func:`get_settings` and pass it down; nothing else reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Everything a barometre process can be told from outside."""

    model_config = SettingsConfigDict(env_prefix="BAROMETRE_", frozen=True, extra="ignore")

    # State of `barometre run` (Kafka logs, the chDB data directory, process logs).
    data_dir: Path = Field(default=REPO_ROOT / "data")
    # Downloaded artefacts that are not committed (Kafka jars).
    cache_dir: Path = Field(default=REPO_ROOT / ".cache")

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_heap: str = "512m"

    # Services only ever speak HTTP to ClickHouse, so a real server can replace the local endpoint.
    clickhouse_url: str = "http://127.0.0.1:8123"
    clickhouse_database: str = "barometre"
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8001
    # The scoring worker serves /healthz, /readyz and /metrics here.
    scoring_host: str = "127.0.0.1"
    scoring_port: int = 8002

    # A token every service accepts with every scope, for automation (see docs/CONTRACT.md). No default.
    bootstrap_token: SecretStr | None = None

    log_level: str = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built on first use."""
    return Settings()
