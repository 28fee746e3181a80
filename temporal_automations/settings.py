"""Configuration from the environment (and `.env`), one object for every part."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from temporal_automations.domain.secrets import SecretBox


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    temporal_address: str = Field("127.0.0.1:7233", description="Temporal frontend host:port")
    temporal_namespace: str = "default"
    task_queue: str = "automations"
    # Temporal Cloud or any TLS cluster (engine, API and, unless TARGET_TEMPORAL_ADDRESS is
    # set, the Temporal actions and the bridge).
    temporal_api_key: SecretStr | None = Field(
        None, description="API key for Temporal Cloud (implies TLS)"
    )
    temporal_tls: bool = Field(False, description="Connect with TLS (implied by a cert or key)")
    temporal_tls_cert: Path | None = Field(None, description="client certificate (PEM) for mTLS")
    temporal_tls_key: Path | None = Field(None, description="client private key (PEM) for mTLS")
    temporal_tls_ca: Path | None = Field(None, description="server CA (PEM); default: system")
    temporal_tls_server_name: str | None = Field(None, description="TLS server name override")

    # The cluster the user's workflows run on, which Temporal actions act on and the bridge
    # watches; unset: the engine's own (with TARGET_TEMPORAL_NAMESPACE as its namespace).
    target_temporal_address: str | None = None
    target_temporal_namespace: str | None = None
    target_temporal_api_key: SecretStr | None = None
    target_temporal_tls: bool = False
    target_temporal_tls_cert: Path | None = None
    target_temporal_tls_key: Path | None = None
    target_temporal_tls_ca: Path | None = None
    target_temporal_tls_server_name: str | None = None

    temporal_bridge_poll_interval: float = Field(
        1.0, gt=0, le=3600, description="seconds between the Temporal bridge's polls"
    )

    api_host: str = "127.0.0.1"
    api_port: int = 4200
    api_url: str = Field(
        "http://127.0.0.1:4200/api",
        description="Where the worker sends the automations' own lifecycle events",
    )
    api_key: SecretStr | None = Field(
        None, description="When set, every /api route but /api/health needs 'Bearer <key>'"
    )
    temporal_ui_url: str | None = Field(
        "http://127.0.0.1:8233", description="Base URL of the Temporal Web UI, for links"
    )

    prefect_api_url: str | None = Field(
        None, description="A Prefect server's API, for the actions on flow runs and deployments"
    )
    prefect_api_key: SecretStr | None = None
    prefect_api_auth_string: SecretStr | None = Field(
        None, description="user:password for a Prefect server with basic auth"
    )

    secrets_key: SecretStr | None = Field(
        None,
        description="Fernet key shared by the API and the worker: webhook header values and "
        "notification URLs are sealed with it before they reach Temporal (unset: stored in the "
        "clear). `automations secrets-key` prints a new one",
    )
    allow_private_webhooks: bool = Field(
        False,
        description="Allow actions (webhooks and every notification) to reach loopback, "
        "private and link-local addresses",
    )
    sticky_queue_timeout: timedelta = Field(
        timedelta(seconds=1),
        description="The worker's sticky queue schedule-to-start timeout (seconds): how long a "
        "workflow task waits for a crashed worker before any worker may take it",
    )
    workflow_task_timeout: timedelta = Field(
        timedelta(seconds=10),
        ge=timedelta(seconds=1),
        le=timedelta(seconds=60),
        description="Workflow task timeout of new automations (seconds): how long a workflow "
        "task that a crashed worker held blocks its automation (also how often a task running "
        "local activities reports in: every 80% of it)",
    )
    max_cached_workflows: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Automations the worker keeps in memory (its workflow cache); the others are "
        "replayed from their history when an event or a deadline needs them. About 115 KB each "
        "without the sandbox, 300 KB with it (bench/scale.py): 500 keep the worker under 300 MB "
        "however many automations exist",
    )
    workflow_sandbox: bool = Field(
        False,
        description="Run automations in Temporal's workflow sandbox, which re-imports their "
        "modules per run and refuses non-deterministic calls. Off by default: it took ~40% of "
        "the worker's CPU per workflow task (burst 194 -> 314 actions/s without it). The test "
        "suite runs the workflow tests sandboxed, so a non-deterministic call fails there",
    )
    health_cache_seconds: float = Field(
        1.0, description="How long /api/health reuses its last answer (it asks Temporal)"
    )
    health_probe_timeout: float = Field(
        2.0, description="How long /api/health waits for a worker to answer its probe (seconds)"
    )

    events_store_url: str | None = Field(
        None,
        description="SQLAlchemy async URL of the events store (the feed, backtests), e.g. "
        "postgresql+asyncpg://user:pass@host/db. Unset: SQLite, events.db in DATA_DIR. "
        "'none': no store (the feed is empty, ingest is unchanged)",
    )
    data_dir: Path | None = Field(
        None,
        description="Where local files live (default: $XDG_DATA_HOME/temporal-automations, "
        "else ~/.local/share/temporal-automations)",
    )
    events_retention: timedelta = Field(
        timedelta(days=7),
        description="How long the events store keeps events, by occurred time (seconds)",
    )

    inbox_min_automations: int = Field(
        8,
        ge=0,
        description="A request whose events go to at least this many automations is handed to "
        "the inbox workflow in one signal (answered once the inbox holds it), which delivers "
        "to them in rounds; a smaller one is signalled to each automation directly. 0: never",
    )
    inbox_min_events: int = Field(
        100,
        ge=1,
        description="... and holds at least this many events: a single event, or a small "
        "batch, keeps the direct path's latency (through the inbox, one event a request for "
        "10 automations took p50 203-262 ms against 45-52 directly)",
    )
    inbox_high_water_bytes: int = Field(
        4_000_000,
        ge=0,
        description="Past this backlog in the inbox, requests go to their automations directly "
        "again, so a client that sends faster than they take events waits for them",
    )

    max_event_bytes: int = 1_500_000
    max_request_bytes: int = Field(
        16_000_000, description="Largest body POST /api/events takes (refused while it streams)"
    )
    max_definition_bytes: int = Field(
        1_000_000,
        description="Largest body every other route takes (an automation's definition): "
        "refused with 413 while it streams, before it could reach Temporal's 2 MB payload limit",
    )
    max_firings_per_minute: int = Field(
        60_000,
        ge=0,
        description="Each automation fires at most this often (and this many at once); more "
        "is recorded as suppressed. 0: no limit. Applies to automations created after it is set",
    )
    max_chained_firings_per_minute: int = Field(
        60,
        ge=0,
        description="The same for firings caused by another automation's lifecycle events, "
        "which multiply when automations react to each other. 0: no limit",
    )

    @field_validator(
        "api_key",
        "temporal_ui_url",
        "prefect_api_url",
        "prefect_api_key",
        "secrets_key",
        "temporal_api_key",
        "temporal_tls_cert",
        "temporal_tls_key",
        "temporal_tls_ca",
        "temporal_tls_server_name",
        "target_temporal_address",
        "target_temporal_namespace",
        "target_temporal_api_key",
        "target_temporal_tls_cert",
        "target_temporal_tls_key",
        "target_temporal_tls_ca",
        "target_temporal_tls_server_name",
        "events_store_url",
        "data_dir",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `API_KEY=` (as docker compose passes an unset variable) means no key, not "".
        return None if value == "" else value

    @field_validator(
        "sticky_queue_timeout", "workflow_task_timeout", "events_retention", mode="before"
    )
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        # STICKY_QUEUE_TIMEOUT=1.5 means seconds; pydantic alone reads only ISO 8601 ("PT1.5S").
        try:
            return timedelta(seconds=float(value))
        except (TypeError, ValueError):
            return value

    def engine_connection(self) -> TemporalConnection:
        """Where the engine's workflows run."""
        return TemporalConnection(
            address=self.temporal_address,
            namespace=self.temporal_namespace,
            api_key=self.temporal_api_key,
            tls=self.temporal_tls,
            tls_cert=self.temporal_tls_cert,
            tls_key=self.temporal_tls_key,
            tls_ca=self.temporal_tls_ca,
            tls_server_name=self.temporal_tls_server_name,
        )

    def target_connection(self) -> TemporalConnection:
        """Where the user's workflows run: the engine's cluster unless TARGET_TEMPORAL_ADDRESS."""
        if self.target_temporal_address is None:
            engine = self.engine_connection()
            return engine.model_copy(
                update={"namespace": self.target_temporal_namespace or engine.namespace}
            )
        return TemporalConnection(
            address=self.target_temporal_address,
            namespace=self.target_temporal_namespace or "default",
            api_key=self.target_temporal_api_key,
            tls=self.target_temporal_tls,
            tls_cert=self.target_temporal_tls_cert,
            tls_key=self.target_temporal_tls_key,
            tls_ca=self.target_temporal_tls_ca,
            tls_server_name=self.target_temporal_tls_server_name,
        )


class TemporalConnection(BaseModel):
    """One Temporal cluster and namespace, and how to reach it."""

    model_config = ConfigDict(frozen=True)

    address: str
    namespace: str = "default"
    api_key: SecretStr | None = None
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_server_name: str | None = None

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls or self.api_key or self.tls_cert or self.tls_ca)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "temporal-automations"


def events_store_url(settings: Settings) -> str | None:
    """The events store's URL: the setting, else SQLite in the data folder; None: no store."""
    url = settings.events_store_url
    if url is not None:
        return None if url.lower() == "none" else url
    data_dir = settings.data_dir or default_data_dir()
    return f"sqlite+aiosqlite:///{data_dir / 'events.db'}"


def secret_box(settings: Settings) -> SecretBox | None:
    """The key that seals and opens definitions' secrets, if one is set."""
    key = settings.secrets_key
    return SecretBox(key.get_secret_value()) if key else None


@lru_cache
def get_settings() -> Settings:
    return Settings()
