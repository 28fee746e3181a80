"""Configuration from the environment (and `.env`), one object for every part."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    temporal_address: str = Field("127.0.0.1:7233", description="Temporal frontend host:port")
    temporal_namespace: str = "default"
    task_queue: str = "automations"

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

    allow_private_webhooks: bool = Field(
        False, description="Allow webhooks to loopback and private addresses"
    )
    max_event_bytes: int = 1_500_000
    max_request_bytes: int = 16_000_000

    @field_validator(
        "api_key", "temporal_ui_url", "prefect_api_url", "prefect_api_key", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `API_KEY=` (as docker compose passes an unset variable) means no key, not "".
        return None if value == "" else value


@lru_cache
def get_settings() -> Settings:
    return Settings()
