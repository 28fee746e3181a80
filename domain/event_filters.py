"""Prefect's EventFilter (the events read API and the `/events/out` websocket), strict and bounded.

The same fields and defaults as Prefect 3 (`prefect.events.filters`), so Prefect's own clients
and UI filters work unchanged: `occurred` {since, until}, `event` {prefix, exclude_prefix, name,
exclude_name}, `resource` / `any_resource` {id, id_prefix, labels}, `related` {id, role,
resources_in_roles, labels} (a list: every one must match), `id` {id}, `order` ASC|DESC.
Label specs match as automations' `match` does (domain/matching.py).

`includes(event)` is the whole filter in Python; the store runs the indexed parts in SQL first
(`sql_parts`) and this for what SQL cannot do portably (labels, related resources).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from temporal_automations.domain.events import RESOURCE_ID, RESOURCE_ROLE, Event, Labels, _as_utc
from temporal_automations.domain.matching import resource_matches

MAX_VALUES = 100
Text = Annotated[str, StringConstraints(max_length=1024)]
Values = Annotated[list[Text], Field(max_length=MAX_VALUES)]
LabelSpec = Annotated[
    dict[Text, Text | Annotated[list[Text], Field(max_length=MAX_VALUES)]],
    Field(max_length=MAX_VALUES),
]
DEFAULT_LOOKBACK = timedelta(days=180)  # Prefect: since the start of the day 180 days ago


def _now() -> datetime:
    return datetime.now(UTC)  # noqa: TID251 - the HTTP edge's default, never in a workflow


def _default_since() -> datetime:
    today = _now().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - DEFAULT_LOOKBACK


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OccurredFilter(_Filter):
    since: datetime = Field(default_factory=_default_since)
    until: datetime = Field(default_factory=_now)

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_utc(value)


class NameFilter(_Filter):
    prefix: Values | None = None
    exclude_prefix: Values | None = None
    name: Values | None = None
    exclude_name: Values | None = None

    def includes(self, event: Event) -> bool:
        name = event.event
        return (
            (not self.prefix or name.startswith(tuple(self.prefix)))
            and not (self.exclude_prefix and name.startswith(tuple(self.exclude_prefix)))
            and (not self.name or name in self.name)
            and not (self.exclude_name and name in self.exclude_name)
        )


class ResourceFilter(_Filter):
    id: Values | None = None
    id_prefix: Values | None = None
    labels: LabelSpec | None = None
    distinct: bool = False

    def matches(self, labels: Labels) -> bool:
        resource_id = labels.get(RESOURCE_ID, "")
        return (
            (not self.id or resource_id in self.id)
            and (not self.id_prefix or resource_id.startswith(tuple(self.id_prefix)))
            and (not self.labels or resource_matches(self.labels, labels))
        )


class AnyResourceFilter(ResourceFilter):
    def includes(self, event: Event) -> bool:
        return any(self.matches(labels) for labels in event.resources())


class RelatedFilter(_Filter):
    id: Values | None = None
    role: Values | None = None
    resources_in_roles: Annotated[list[tuple[Text, Text]], Field(max_length=MAX_VALUES)] | None = (
        None
    )
    labels: LabelSpec | None = None

    def includes(self, event: Event) -> bool:
        related = event.related
        if self.resources_in_roles:
            present = {(r.get(RESOURCE_ID), r.get(RESOURCE_ROLE)) for r in related}
            if not all(tuple(pair) in present for pair in self.resources_in_roles):
                return False
        if not (self.id or self.role or self.labels):
            return True
        return any(
            (not self.id or r.get(RESOURCE_ID) in self.id)
            and (not self.role or r.get(RESOURCE_ROLE) in self.role)
            and (not self.labels or resource_matches(self.labels, r))
            for r in related
        )


class IdFilter(_Filter):
    id: Annotated[list[UUID], Field(max_length=MAX_VALUES)] | None = None


class TextFilter(_Filter):
    """Prefect's text search: every word must appear in the event (name, resources, payload),
    case-insensitively; a word with a leading `-` must not; "quoted phrases" are one word."""

    query: Annotated[str, StringConstraints(max_length=200)]

    def includes(self, event: Event) -> bool:
        text = event.model_dump_json().lower()
        for term in _terms(self.query):
            wanted = not term.startswith("-")
            word = term.lstrip("+-").lower()
            if word and (word in text) != wanted:
                return False
        return True


def _terms(query: str) -> list[str]:
    terms: list[str] = []
    for index, part in enumerate(query.split('"')):
        terms += [part] if index % 2 else part.split()
    return terms


class EventOrder(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


class EventFilter(_Filter):
    occurred: OccurredFilter = Field(default_factory=OccurredFilter)
    event: NameFilter | None = None
    resource: ResourceFilter | None = None
    related: RelatedFilter | Annotated[list[RelatedFilter], Field(max_length=20)] | None = None
    any_resource: (
        AnyResourceFilter | Annotated[list[AnyResourceFilter], Field(max_length=20)] | None
    ) = None
    id: IdFilter = Field(default_factory=IdFilter)
    text: TextFilter | None = None
    order: EventOrder = EventOrder.DESC

    @property
    def related_filters(self) -> list[RelatedFilter]:
        if self.related is None:
            return []
        return self.related if isinstance(self.related, list) else [self.related]

    @property
    def any_resource_filters(self) -> list[AnyResourceFilter]:
        if self.any_resource is None:
            return []
        return self.any_resource if isinstance(self.any_resource, list) else [self.any_resource]

    def includes(self, event: Event) -> bool:
        """The whole filter, occurred range included (the live stream uses this alone)."""
        occurred = self.occurred
        return (
            occurred.since <= event.occurred <= occurred.until
            and (not self.id.id or event.id in self.id.id)
            and (self.event is None or self.event.includes(event))
            and (self.resource is None or self.resource.matches(event.resource))
            and self.includes_beyond_sql(event)
        )

    def needs_python(self) -> bool:
        """Whether a part of the filter is not expressed in SQL (see `includes_beyond_sql`)."""
        return bool(
            self.text
            or self.related_filters
            or self.any_resource_filters
            or (self.resource is not None and self.resource.labels)
        )

    def includes_beyond_sql(self, event: Event) -> bool:
        """The parts SQL does not run: labels, related resources, any resource, text."""
        resource = self.resource
        if resource is not None and resource.labels and not resource.matches(event.resource):
            return False
        if self.text is not None and not self.text.includes(event):
            return False
        return all(f.includes(event) for f in self.related_filters) and all(
            f.includes(event) for f in self.any_resource_filters
        )
