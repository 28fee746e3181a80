"""Events in Prefect's shape: what happened, to which resource, with which related resources."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator

RESOURCE_ID = "prefect.resource.id"
RESOURCE_ROLE = "prefect.resource.role"
MAX_LABELS = 500
MAX_RELATED = 100
MAX_EVENT_NAME = 1024

Labels = dict[str, str]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    # Naive timestamps are taken as UTC, as Prefect's clients send them.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _check_labels(labels: Labels, where: str) -> Labels:
    if not labels.get(RESOURCE_ID):
        raise ValueError(f"{where} needs a non-empty '{RESOURCE_ID}' label")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{where} has {len(labels)} labels; at most {MAX_LABELS} are allowed")
    return labels


class Event(BaseModel):
    """One event. `id` is the client's dedupe key; `occurred` is the event time windows use."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: UUID = Field(default_factory=uuid4)
    occurred: datetime = Field(default_factory=utcnow)
    event: str = Field(min_length=1, max_length=MAX_EVENT_NAME)
    resource: Labels
    related: list[Labels] = Field(default_factory=list, max_length=MAX_RELATED)
    payload: dict[str, Any] = Field(default_factory=dict)
    follows: UUID | None = None
    received: datetime | None = None

    @field_validator("occurred", "received")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: Labels) -> Labels:
        return _check_labels(value, "resource")

    @field_validator("related")
    @classmethod
    def _related(cls, value: list[Labels]) -> list[Labels]:
        for index, labels in enumerate(value):
            _check_labels(labels, f"related[{index}]")
            if not labels.get(RESOURCE_ROLE):
                raise ValueError(f"related[{index}] needs a '{RESOURCE_ROLE}' label")
        return value

    @property
    def resource_id(self) -> str:
        return self.resource[RESOURCE_ID]

    def related_by_role(self, role: str) -> list[Labels]:
        return [labels for labels in self.related if labels.get(RESOURCE_ROLE) == role]

    def resources(self) -> list[Labels]:
        """The event's resource, then its related ones, in order (the order inference uses)."""
        return [self.resource, *self.related]
