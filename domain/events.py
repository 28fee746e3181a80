"""Events in Prefect's shape: what happened, to which resource, with which related resources.

Everything hostile about an event that can be refused is refused by `EventIn`, at validation,
so the HTTP edge answers 422 and no workflow ever sees it: instants outside 1970–2999 (date
arithmetic on them overflows inside the workflow), payloads nested deeper than
`MAX_PAYLOAD_DEPTH`, and label keys or values longer than `MAX_LABEL_KEY` / `MAX_LABEL_VALUE`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4  # noqa: TID251 - the HTTP edge's default, never in a workflow

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

RESOURCE_ID = "prefect.resource.id"
RESOURCE_ROLE = "prefect.resource.role"
MAX_LABELS = 500
MAX_RELATED = 100
MAX_EVENT_NAME = 1024
MAX_LABEL_KEY = 256
MAX_LABEL_VALUE = 4096
# Levels of dicts/lists, the payload object itself being level 1. Lifecycle events embed the
# triggering event's payload a few levels down, so this must stay far below the JSON parser's
# own limit (~200) for those to serialize and parse again.
MAX_PAYLOAD_DEPTH = 32
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
# Exclusive: the last accepted instant is 2999-12-31T23:59:59.999999Z. datetime.max is in 9999,
# so adding a window or a hold to an accepted instant has millennia of headroom.
END_OF_INSTANTS = datetime(3000, 1, 1, tzinfo=UTC)
_INSTANT_RANGE = "an instant in the years 1970–2999 (UTC)"

Labels = dict[str, str]
# What an event accepts; `Labels` stays the plain type the rest of the code annotates with. The
# length checks run in pydantic-core, which keeps them off the Python side of the ingest path.
BoundedLabels = dict[
    Annotated[str, StringConstraints(max_length=MAX_LABEL_KEY)],
    Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE)],
]

_CONTAINERS = frozenset((dict, list, tuple))


# pydantic-core parses every UTC time ("Z", "+00:00", a Unix time) with one shared tzinfo
# object: such a value is in UTC already. Converting it anyway (astimezone calls that tzinfo's
# utcoffset(), slow from Python) was a fifth to a quarter of the API's CPU on the ingest path.
_PARSED_UTC = TypeAdapter(datetime).validate_json('"2000-01-01T00:00:00Z"').tzinfo


def utcnow() -> datetime:
    return datetime.now(UTC)  # noqa: TID251 - the HTTP edge's default, never in a workflow


def _as_utc(value: datetime) -> datetime:
    """The instant in UTC, or ValueError (never OverflowError) when it is out of range."""
    # Fast path, the one nearly every event takes: UTC offsets are under a day, so a local
    # year strictly inside the range is an in-range instant whose conversion cannot overflow.
    if 1970 < value.year < 2999:
        zone = value.tzinfo
        if zone is _PARSED_UTC or zone is UTC:
            return value
        # Naive timestamps are taken as UTC, as Prefect's clients send them.
        return value.replace(tzinfo=UTC) if zone is None else value.astimezone(UTC)
    try:
        aware = value.replace(tzinfo=UTC) if value.utcoffset() is None else value
        # Compared before converting: astimezone() on 0001-01-01+01:00 overflows, while the
        # comparison of aware datetimes does not.
        in_range = EARLIEST_INSTANT <= aware < END_OF_INSTANTS
        converted = aware.astimezone(UTC) if in_range else None
    except (ArithmeticError, TypeError, ValueError) as error:
        # A tzinfo whose utcoffset() misbehaves: refused like any other unusable instant.
        raise ValueError(f"must be {_INSTANT_RANGE} with a usable timezone") from error
    if converted is None:
        raise ValueError(f"must be {_INSTANT_RANGE}; got {value.isoformat()}")
    return converted


def _deeper_than(node: dict[str, Any] | list[Any] | tuple[Any, ...], budget: int) -> bool:
    """Whether `node` has more than `budget` levels of containers below it.

    Recursion is bounded by `budget`, and the walk only descends into containers, so a typical
    flat or two-level payload costs a few hundred nanoseconds.
    """
    values: Iterable[Any] = node.values() if type(node) is dict else node
    for value in values:
        if type(value) in _CONTAINERS and (budget == 0 or _deeper_than(value, budget - 1)):
            return True
    return False


def payload_depth_exceeds(payload: dict[str, Any], max_depth: int) -> bool:
    """Whether `payload` (itself level 1) nests dicts/lists more than `max_depth` levels."""
    if max_depth < 1:
        return True
    return _deeper_than(payload, max_depth - 1)


def _check_labels(labels: Labels, where: str) -> Labels:
    if not labels.get(RESOURCE_ID):
        raise ValueError(f"{where} needs a non-empty '{RESOURCE_ID}' label")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{where} has {len(labels)} labels; at most {MAX_LABELS} are allowed")
    return labels


class Event(BaseModel):
    """One event, as workflows store it: lenient and without defaults that would differ on
    replay (a later, stricter rule must never make an event recorded in history unreadable).
    What clients send is validated by `EventIn`. `id` is the dedupe key; `occurred` is the
    event time windows use."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: UUID
    occurred: datetime
    event: str
    resource: Labels
    related: list[Labels] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)
    follows: UUID | None = None
    received: datetime | None = None

    @property
    def resource_id(self) -> str:
        return self.resource.get(RESOURCE_ID, "")

    def related_by_role(self, role: str) -> list[Labels]:
        return [labels for labels in self.related if labels.get(RESOURCE_ROLE) == role]

    def resources(self) -> list[Labels]:
        """The event's resource, then its related ones, in order (the order inference uses)."""
        return [self.resource, *self.related]


class EventIn(Event):
    """An event as a client sends it to POST /api/events: every bound checked (a 422 names
    the field), an `id` and `occurred` filled in when missing."""

    id: UUID = Field(default_factory=uuid4)
    occurred: datetime = Field(default_factory=utcnow)
    event: str = Field(min_length=1, max_length=MAX_EVENT_NAME)
    resource: BoundedLabels
    related: list[BoundedLabels] = Field(default_factory=list, max_length=MAX_RELATED)

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

    @field_validator("payload")
    @classmethod
    def _payload(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The top level walked here rather than by payload_depth_exceeds(): one Python call
        # fewer on every event of the ingest path (each item is level 2).
        for item in value.values():
            if type(item) in _CONTAINERS and _deeper_than(item, MAX_PAYLOAD_DEPTH - 2):
                raise ValueError(
                    f"payload nests deeper than {MAX_PAYLOAD_DEPTH} levels of objects/arrays"
                )
        return value


TRIM_EXCERPT_CHARS = 200


def _compact_json(value: Any) -> str:
    # The shape Temporal's pydantic converter stores: compact and UTF-8, not ASCII-escaped.
    # default=str keeps a payload built in Python (not parsed from JSON) measurable.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _cut_below(node: Any, levels_left: int, marker: str) -> Any:
    """A copy of `node` whose containers more than `levels_left` levels down become `marker`."""
    if type(node) not in _CONTAINERS:
        return node
    if levels_left == 0:
        return marker
    if type(node) is dict:
        return {key: _cut_below(value, levels_left - 1, marker) for key, value in node.items()}
    return [_cut_below(value, levels_left - 1, marker) for value in node]


def trim_payload(payload: dict[str, Any], max_bytes: int, max_depth: int) -> dict[str, Any]:
    """`payload` made small enough to embed (in a lifecycle event, say), deterministically.

    Unchanged when its compact JSON is within `max_bytes` and it nests at most `max_depth`
    levels (itself being level 1). Otherwise subtrees deeper than `max_depth` become the string
    "…(trimmed: deeper than N levels)"; if that is still over `max_bytes`, the whole payload
    becomes `{"trimmed": True, "original_bytes": n, "excerpt": <first 200 chars of the JSON>}`,
    n being the size of the (depth-trimmed) JSON. That summary is returned even if `max_bytes`
    is smaller than the summary itself: it is as small as a faithful answer gets.
    """
    if max_depth < 1:
        raise ValueError("max_depth must be at least 1: the payload object is itself a level")
    trimmed = payload
    # Depth first: it bounds the recursion of json.dumps below, even for a cyclic payload.
    if payload_depth_exceeds(payload, max_depth):
        marker = f"…(trimmed: deeper than {max_depth} levels)"
        trimmed = {key: _cut_below(value, max_depth - 1, marker) for key, value in payload.items()}
    text = _compact_json(trimmed)
    size = len(text.encode())
    if size <= max_bytes:
        return trimmed
    return {"trimmed": True, "original_bytes": size, "excerpt": text[:TRIM_EXCERPT_CHARS]}
