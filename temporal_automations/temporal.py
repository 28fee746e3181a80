"""The Temporal connection every part shares: client, data converter, search attributes."""

from __future__ import annotations

from uuid import UUID

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter

from temporal_automations.settings import Settings

WORKFLOW_TYPE = "AutomationWorkflow"

AUTOMATION_NAME = SearchAttributeKey.for_keyword("AutomationName")
AUTOMATION_ENABLED = SearchAttributeKey.for_bool("AutomationEnabled")
AUTOMATION_TAGS = SearchAttributeKey.for_keyword_list("AutomationTags")
SEARCH_ATTRIBUTES: list[SearchAttributeKey] = [AUTOMATION_NAME, AUTOMATION_ENABLED, AUTOMATION_TAGS]

_INDEXED_TYPE = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


def workflow_id(automation_id: UUID | str) -> str:
    return f"automation-{automation_id}"


def automation_id_of(workflow_id_: str) -> UUID:
    return UUID(workflow_id_.removeprefix("automation-"))


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


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
    return {"KEYWORD": "Keyword", "BOOL": "Bool", "KEYWORD_LIST": "KeywordList"}[
        key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_")
    ]
