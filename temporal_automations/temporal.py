"""The Temporal connection every part shares: client, data converter, search attributes."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.service import TLSConfig

from temporal_automations.settings import Settings, TemporalConnection

WORKFLOW_TYPE = "AutomationWorkflow"

AUTOMATION_NAME = SearchAttributeKey.for_keyword("AutomationName")
AUTOMATION_ENABLED = SearchAttributeKey.for_bool("AutomationEnabled")
AUTOMATION_TAGS = SearchAttributeKey.for_keyword_list("AutomationTags")
# When the definition last changed: the API processes' catalogs follow changes by it.
AUTOMATION_UPDATED = SearchAttributeKey.for_datetime("AutomationUpdated")
SEARCH_ATTRIBUTES: list[SearchAttributeKey] = [
    AUTOMATION_NAME,
    AUTOMATION_ENABLED,
    AUTOMATION_TAGS,
    AUTOMATION_UPDATED,
]

_INDEXED_TYPE = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


def workflow_id(automation_id: UUID | str) -> str:
    return f"automation-{automation_id}"


def automation_id_of(workflow_id_: str) -> UUID:
    return UUID(workflow_id_.removeprefix("automation-"))


async def connect(settings: Settings) -> Client:
    """The engine's client (its workflows, signals, search attributes)."""
    return await connect_to(settings.engine_connection(), pydantic_data_converter)


async def connect_to(
    connection: TemporalConnection, data_converter: DataConverter = DataConverter.default
) -> Client:
    """A client of any cluster: plain, TLS (a CA, a client certificate for mTLS) or Temporal
    Cloud with an API key (which implies TLS)."""
    return await Client.connect(
        connection.address,
        namespace=connection.namespace,
        api_key=connection.api_key.get_secret_value() if connection.api_key else None,
        tls=tls_config(connection),
        data_converter=data_converter,
    )


def tls_config(connection: TemporalConnection) -> TLSConfig | bool:
    if not connection.uses_tls:
        return False
    files = connection.tls_cert or connection.tls_key or connection.tls_ca
    if not files and connection.tls_server_name is None:
        return True  # TLS with the system's CAs
    if bool(connection.tls_cert) != bool(connection.tls_key):
        raise TemporalConnectionError("a TLS client certificate needs its key, and the reverse")
    return TLSConfig(
        server_root_ca_cert=_read(connection.tls_ca),
        client_cert=_read(connection.tls_cert),
        client_private_key=_read(connection.tls_key),
        domain=connection.tls_server_name,
    )


class TemporalConnectionError(ValueError):
    """The connection settings contradict each other, or a file they name cannot be read."""


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise TemporalConnectionError(f"cannot read {path}: {error}") from error


def search_attribute_flags() -> list[str]:
    """`temporal server start-dev` flags that register our search attributes."""
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={_type_name(key)}"]
    return flags


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register the search attributes on a server that lacks them (e.g. a fresh cluster)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        key.name: _INDEXED_TYPE[_type_name(key)]
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )


def _type_name(key: SearchAttributeKey) -> str:
    return {
        "KEYWORD": "Keyword",
        "BOOL": "Bool",
        "KEYWORD_LIST": "KeywordList",
        "DATETIME": "Datetime",
    }[key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_")]
