"""The bounds an event must keep to be accepted, each at its limit and just past it, and
`trim_payload`, which makes a payload small and shallow enough to embed in another event.

Every refusal must be a pydantic ValidationError (the edge turns it into a 422) that names the
field; an OverflowError or any other exception would be a 500 or a wedged workflow."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from temporal_automations.domain.events import (
    EARLIEST_INSTANT,
    END_OF_INSTANTS,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_PAYLOAD_DEPTH,
    RESOURCE_ID,
    RESOURCE_ROLE,
    EventIn,
    payload_depth_exceeds,
    trim_payload,
)

EVENTS = TypeAdapter(list[EventIn])


def raw_event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "prefect.flow-run.Completed",
        "occurred": "2024-05-01T12:00:00Z",
        "resource": {RESOURCE_ID: "prefect.flow-run.1"},
    }
    event.update(fields)
    return event


def from_json(**fields: Any) -> EventIn:
    """Validated the way the HTTP edge validates: from JSON text, with NaN allowed through."""
    return EVENTS.validate_json(json.dumps([raw_event(**fields)]))[0]


def refusal(**fields: Any) -> list[dict[str, Any]]:
    """The errors for an event that must be refused; fails the test if it was accepted."""
    with pytest.raises(ValidationError) as refused:
        from_json(**fields)
    return refused.value.errors()


def nested(levels: int, leaf: Any = "leaf") -> dict[str, Any]:
    """A payload `levels` levels deep, the payload object itself being level 1, alternating
    objects and arrays so both count."""
    value: Any = leaf
    for level in range(levels - 1):
        value = [value] if level % 2 else {"k": value}
    return {"top": value}


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(item) for item in value), default=0)
    return 0


def test_nested_builds_exactly_the_depth_asked_for() -> None:
    assert [depth_of(nested(levels)) for levels in (1, 2, 3, 32, 33)] == [1, 2, 3, 32, 33]


# --- occurred and received ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_as", "in_utc"),
    [
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("2999-12-31T23:59:59.999999Z", datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        # Local times outside the range whose instant is inside it.
        ("1969-12-31T23:30:00-01:00", datetime(1970, 1, 1, 0, 30, tzinfo=UTC)),
        ("3000-01-01T00:30:00+01:00", datetime(2999, 12, 31, 23, 30, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # naive means UTC
        # Already UTC: kept as parsed (pydantic's own UTC tzinfo), not converted again.
        ("2024-05-01T12:00:00+00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5Z", datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        (1_714_564_800, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),  # a Unix timestamp
    ],
)
def test_instants_at_the_limits_are_accepted_in_utc(given_as: Any, in_utc: datetime) -> None:
    event = from_json(occurred=given_as, received=given_as)
    assert event.occurred == in_utc and event.occurred.utcoffset() == timedelta(0)
    assert event.received == in_utc and event.received.utcoffset() == timedelta(0)


OUT_OF_RANGE = [
    "1969-12-31T23:59:59.999999Z",
    "3000-01-01T00:00:00Z",
    "1970-01-01T00:30:00+01:00",  # 1969 in UTC
    "2999-12-31T23:30:00-01:00",  # 3000 in UTC
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",  # converting this to UTC overflows
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999-01:00",  # so does this
    -1,
]


@pytest.mark.parametrize("field", ["occurred", "received"])
@pytest.mark.parametrize("given_as", OUT_OF_RANGE)
def test_instants_past_the_limits_are_refused_saying_the_range(field: str, given_as: Any) -> None:
    [error] = refusal(**{field: given_as})
    assert error["loc"] == (0, field)
    assert "1970" in error["msg"] and "2999" in error["msg"]


@pytest.mark.parametrize("given_as", ["NaN", "nan", "Infinity", "", "yesterday", 1e20, -1e20])
def test_garbage_instead_of_an_instant_is_refused_naming_the_field(given_as: Any) -> None:
    [error] = refusal(occurred=given_as)
    assert error["loc"][:2] == (0, "occurred")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_bare_json_nan_and_infinity_as_occurred_are_refused(number: str) -> None:
    body = json.dumps([raw_event()]).replace('"2024-05-01T12:00:00Z"', number)
    with pytest.raises(ValidationError) as refused:
        EVENTS.validate_json(body)
    assert [error["loc"][:2] for error in refused.value.errors()] == [(0, "occurred")]


class _ImpossibleZone(tzinfo):
    """A Python-built timezone whose offset is beyond the ±24 h datetime allows."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=25)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)


@pytest.mark.parametrize(
    "occurred",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1))),
        datetime.min,
        datetime.max,
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-23))),
    ],
)
def test_python_built_events_are_refused_the_same_way(occurred: datetime) -> None:
    with pytest.raises(ValidationError) as refused:
        EventIn(event="x", resource={RESOURCE_ID: "r"}, occurred=occurred)
    assert [error["loc"] for error in refused.value.errors()] == [("occurred",)]


@pytest.mark.parametrize("year", [1, 2024])
def test_an_impossible_timezone_is_a_validation_error(year: int) -> None:
    with pytest.raises(ValidationError) as refused:
        EventIn(
            event="x",
            resource={RESOURCE_ID: "r"},
            occurred=datetime(year, 6, 1, tzinfo=_ImpossibleZone()),
        )
    assert [error["loc"] for error in refused.value.errors()] == [("occurred",)]


_offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)


@given(st.datetimes(timezones=st.none() | _offsets))
def test_any_datetime_is_either_an_in_range_utc_instant_or_a_validation_error(
    occurred: datetime,
) -> None:
    try:
        event = EventIn(event="x", resource={RESOURCE_ID: "r"}, occurred=occurred)
    except ValidationError as error:
        assert [e["loc"] for e in error.errors()] == [("occurred",)]
        instant = occurred if occurred.tzinfo else occurred.replace(tzinfo=UTC)
        assert not EARLIEST_INSTANT <= instant < END_OF_INSTANTS
    else:
        assert EARLIEST_INSTANT <= event.occurred < END_OF_INSTANTS
        assert event.occurred.utcoffset() == timedelta(0)
        assert event.occurred == (occurred if occurred.tzinfo else occurred.replace(tzinfo=UTC))


# --- payload depth --------------------------------------------------------------------------


def test_a_payload_at_the_depth_limit_is_accepted() -> None:
    payload = nested(MAX_PAYLOAD_DEPTH)
    assert from_json(payload=payload).payload == payload


@pytest.mark.parametrize("levels", [MAX_PAYLOAD_DEPTH + 1, 197])
def test_a_payload_past_the_depth_limit_is_refused_naming_payload(levels: int) -> None:
    [error] = refusal(payload=nested(levels))
    assert error["loc"] == (0, "payload")
    assert f"deeper than {MAX_PAYLOAD_DEPTH} levels" in error["msg"]


def test_depth_counts_containers_not_scalars_or_width() -> None:
    wide = {f"k{i}": {"list": [1, "two", None, 3.5], "flag": True} for i in range(2000)}
    assert from_json(payload=wide).payload == wide
    # Empty containers are levels too: 32 levels of them plus one more is too deep.
    assert refusal(payload=nested(MAX_PAYLOAD_DEPTH + 1, leaf={}))[0]["loc"] == (0, "payload")
    assert from_json(payload=nested(MAX_PAYLOAD_DEPTH - 1, leaf=[])).payload


def test_payload_depth_exceeds_counts_the_payload_itself_as_level_one() -> None:
    assert not payload_depth_exceeds({}, 1)
    assert payload_depth_exceeds({"a": {}}, 1)
    assert not payload_depth_exceeds(nested(5), 5)
    assert payload_depth_exceeds(nested(6), 5)


# --- label lengths --------------------------------------------------------------------------


def test_label_keys_and_values_at_the_limits_are_accepted() -> None:
    labels = {RESOURCE_ID: "r" * MAX_LABEL_VALUE, "k" * MAX_LABEL_KEY: "v"}
    related = {**labels, RESOURCE_ROLE: "tag"}
    event = from_json(resource=labels, related=[related])
    assert event.resource == labels and event.related == [related]


def _labels_with(key: str, value: str) -> dict[str, str]:
    return {RESOURCE_ID: "prefect.flow-run.1", RESOURCE_ROLE: "tag", key: value}


@pytest.mark.parametrize(
    ("key", "value"),
    [("k" * (MAX_LABEL_KEY + 1), "v"), ("k", "v" * (MAX_LABEL_VALUE + 1))],
    ids=["long key", "long value"],
)
def test_a_label_key_or_value_past_the_limit_is_refused_naming_where(key: str, value: str) -> None:
    [error] = refusal(resource=_labels_with(key, value))
    assert error["loc"][:2] == (0, "resource") and error["type"] == "string_too_long"
    [error] = refusal(related=[_labels_with("ok", "ok"), _labels_with(key, value)])
    assert error["loc"][:3] == (0, "related", 1) and error["type"] == "string_too_long"


def test_labels_stay_plain_strings_after_validation() -> None:
    # The bounded type must not change what the rest of the code sees.
    event = from_json(resource={RESOURCE_ID: "prefect.flow-run.1", "a": "b"})
    assert type(event.resource) is dict and all(type(k) is str for k in event.resource)


# --- trim_payload ---------------------------------------------------------------------------


def compact_size(payload: Any) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def test_trim_returns_a_payload_within_both_bounds_unchanged() -> None:
    payload = {"a": {"b": [1, 2, {"c": "é"}]}, "d": None}
    assert trim_payload(payload, compact_size(payload), 4) == payload


def test_trim_counts_bytes_of_utf8_not_characters() -> None:
    payload = {"name": "é" * 10}  # 10 characters, 20 bytes
    assert trim_payload(payload, compact_size(payload), 1) == payload
    assert trim_payload(payload, compact_size(payload) - 1, 1)["trimmed"] is True


def test_trim_replaces_only_the_subtrees_deeper_than_the_limit() -> None:
    payload = {
        "shallow": 1,
        "a": {"b": {"c": {"d": 1}}, "scalar": "kept", "list": [[1], 2]},
    }
    marker = "…(trimmed: deeper than 2 levels)"
    assert trim_payload(payload, 10_000, 2) == {
        "shallow": 1,
        "a": {"b": marker, "scalar": "kept", "list": marker},
    }
    assert trim_payload(payload, 10_000, 1) == {
        "shallow": 1,
        "a": "…(trimmed: deeper than 1 levels)",
    }


def test_trim_summarizes_a_payload_still_over_the_byte_limit() -> None:
    payload = {"blob": "x" * 5000, "deep": nested(10)}
    trimmed = trim_payload(payload, 1000, 3)
    shallow = trim_payload(payload, 1_000_000, 3)
    shallow_json = json.dumps(shallow, separators=(",", ":"), ensure_ascii=False)
    assert trimmed == {
        "trimmed": True,
        "original_bytes": len(shallow_json.encode()),
        "excerpt": shallow_json[:200],
    }


def test_trim_is_pure_and_deterministic() -> None:
    payload = {"deep": nested(40), "big": ["y" * 100] * 100}
    before = copy.deepcopy(payload)
    first = trim_payload(payload, 20_000, 8)
    assert payload == before
    assert first == trim_payload(payload, 20_000, 8) and depth_of(first) == 8


def test_trim_output_is_always_an_acceptable_event_payload() -> None:
    for payload in ({"deep": nested(200)}, {"big": "z" * 100_000}, {}):
        trimmed = trim_payload(payload, 16_000, 8)
        assert from_json(payload=trimmed).payload == trimmed


def test_trim_terminates_on_a_cyclic_payload() -> None:
    payload: dict[str, Any] = {"name": "loop"}
    payload["self"] = payload
    trimmed = trim_payload(payload, 10_000, 3)
    marker = "…(trimmed: deeper than 3 levels)"
    third = {"name": "loop", "self": marker}
    assert trimmed == {"name": "loop", "self": {"name": "loop", "self": third}}


def test_trim_needs_at_least_one_level() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        trim_payload({}, 100, 0)
