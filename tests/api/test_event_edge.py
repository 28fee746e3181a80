"""POST /api/events at the HTTP edge, in process: every hostile body is a 4xx with a message
and reaches no workflow; a normal one is routed.

The app holds only the events router. Its dependencies are real objects: Settings built here,
and a recording router standing in for the Temporal-backed EventRouter, which keeps the events
it is asked to route so a test can see that nothing refused got through."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from temporal_automations.api.deps import get_lag, get_router, get_settings
from temporal_automations.api.routers.events import router as events_router
from temporal_automations.domain.events import (
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_PAYLOAD_DEPTH,
    RESOURCE_ID,
    RESOURCE_ROLE,
    Event,
)
from temporal_automations.settings import Settings
from tests.api.support import RecordingLag

MAX_EVENT_BYTES = 10_000
MAX_REQUEST_BYTES = 40_000


@dataclass
class RecordingRouter:
    """Routes nowhere; remembers what it was given, as EventRouter.route is called."""

    routed: list[Event] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    async def route(self, events: list[Event], size: int) -> int:
        self.routed.extend(events)
        self.sizes.append(size)
        return len(events)


@pytest.fixture
def recording() -> RecordingRouter:
    return RecordingRouter()


@pytest.fixture
def lag() -> RecordingLag:
    return RecordingLag()


@pytest.fixture
async def client(recording: RecordingRouter, lag: RecordingLag) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(events_router, prefix="/api")
    settings = Settings(
        _env_file=None, max_event_bytes=MAX_EVENT_BYTES, max_request_bytes=MAX_REQUEST_BYTES
    )
    app.dependency_overrides[get_settings] = lambda: settings
    app.dependency_overrides[get_router] = lambda: recording
    app.dependency_overrides[get_lag] = lambda: lag
    # An unhandled error comes back as the 500 a client would see, so it fails the status
    # assertions below with the status in the message.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as http:
        yield http


def event(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid4()),
        "event": "prefect.flow-run.Completed",
        "occurred": "2024-05-01T12:00:00+02:00",
        "resource": {RESOURCE_ID: f"prefect.flow-run.{uuid4()}"},
        "related": [{RESOURCE_ID: f"prefect.deployment.{uuid4()}", RESOURCE_ROLE: "deployment"}],
        "payload": {"intended": {"from": "RUNNING", "to": "COMPLETED"}},
    }
    body.update(fields)
    return body


def nested(levels: int) -> dict[str, Any]:
    """A payload `levels` levels of objects deep, counting the payload itself."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


async def post(client: httpx.AsyncClient, body: bytes | str) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return await client.post(
        "/api/events", content=content, headers={"content-type": "application/json"}
    )


def refusal(response: httpx.Response, status: int = 422) -> list[dict[str, Any]]:
    """The 422 details, each with a message; fails unless the response is that refusal."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    detail = response.json()["detail"]
    if isinstance(detail, str):
        assert detail
        return [{"loc": [], "msg": detail}]
    assert detail and all(isinstance(item["msg"], str) and item["msg"] for item in detail)
    return detail


async def test_a_normal_event_is_accepted_and_routed_in_utc(
    client: httpx.AsyncClient, recording: RecordingRouter
) -> None:
    sent = event()
    body = json.dumps([sent])
    response = await post(client, body)
    assert response.status_code == 204, response.text
    [routed] = recording.routed
    assert str(routed.id) == sent["id"] and routed.payload == sent["payload"]
    assert routed.occurred == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert routed.occurred.utcoffset() is not None and routed.occurred.tzinfo is UTC
    assert recording.sizes == [len(body.encode())]


async def test_events_at_every_limit_are_accepted(
    client: httpx.AsyncClient, recording: RecordingRouter
) -> None:
    labels = {RESOURCE_ID: "r" * 100, "k" * MAX_LABEL_KEY: "v" * MAX_LABEL_VALUE}
    at_limits = [
        event(occurred="1970-01-01T00:00:00Z"),
        event(occurred="2999-12-31T23:59:59.999999Z", received="2999-12-31T23:59:59Z"),
        event(payload=nested(MAX_PAYLOAD_DEPTH)),
        event(resource=labels),
    ]
    assert (await post(client, json.dumps(at_limits))).status_code == 204
    assert len(recording.routed) == len(at_limits)


@pytest.mark.parametrize(
    "occurred",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999-01:00",
        "3000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "NaN",
        "Infinity",
        "not a time",
        "",
        1e20,
        None,
        {"year": 2024},
    ],
)
async def test_an_unusable_occurred_is_a_422_naming_it(
    client: httpx.AsyncClient, recording: RecordingRouter, occurred: Any
) -> None:
    details = refusal(await post(client, json.dumps([event(), event(occurred=occurred)])))
    assert [item["loc"][:2] for item in details] == [[1, "occurred"]]
    assert recording.routed == []  # the good event in the same request was not taken either


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
async def test_bare_json_nan_as_occurred_is_a_422(
    client: httpx.AsyncClient, recording: RecordingRouter, number: str
) -> None:
    body = json.dumps([event(occurred="PLACEHOLDER")]).replace('"PLACEHOLDER"', number)
    details = refusal(await post(client, body))
    assert [item["loc"][:2] for item in details] == [[0, "occurred"]]
    assert recording.routed == []


async def test_an_out_of_range_received_is_a_422_naming_it(
    client: httpx.AsyncClient, recording: RecordingRouter
) -> None:
    details = refusal(await post(client, json.dumps([event(received="0001-01-01T00:00:00+01:00")])))
    assert [item["loc"] for item in details] == [[0, "received"]]
    assert "1970" in details[0]["msg"] and recording.routed == []


@pytest.mark.parametrize("levels", [MAX_PAYLOAD_DEPTH + 1, 197])
async def test_a_payload_too_deep_is_a_422_naming_payload(
    client: httpx.AsyncClient, recording: RecordingRouter, levels: int
) -> None:
    details = refusal(await post(client, json.dumps([event(payload=nested(levels))])))
    assert [item["loc"] for item in details] == [[0, "payload"]]
    assert str(MAX_PAYLOAD_DEPTH) in details[0]["msg"] and recording.routed == []


def with_payload_nested(levels: int) -> str:
    """One event whose payload is `levels` objects deep, written out as JSON text (json.dumps
    itself refuses to go as deep as some of these)."""
    head = '[{"event":"x","resource":{"prefect.resource.id":"r"},"payload":'
    return head + '{"a":' * levels + "1" + "}" * levels + "}]"


@pytest.mark.parametrize(
    ("body", "loc", "said"),
    [
        # 198 levels: parsed, then refused as a list whose item is not an object.
        ("[" * 198 + "]" * 198, [0], "object"),
        # 200 levels in all: the parser takes it, the payload bound refuses it.
        (with_payload_nested(198), [0, "payload"], "deeper than"),
        # Past what the JSON parser goes: refused while parsing.
        (with_payload_nested(250), [], "recursion"),
        ("[" * 9_000 + "]" * 9_000, [], "recursion"),
    ],
    ids=["198 nested lists", "payload 198 deep", "payload 250 deep", "9000 nested lists"],
)
async def test_a_body_nested_too_deeply_is_a_422(
    client: httpx.AsyncClient, recording: RecordingRouter, body: str, loc: list[Any], said: str
) -> None:
    [detail] = refusal(await post(client, body))
    assert detail["loc"] == loc and said in detail["msg"]
    assert recording.routed == []


@pytest.mark.parametrize(
    "body",
    [b"", b"[", b'[{"event": ', b"[1,]", b"not json", b"\xff\xfe[]", b'["\xff"]', b"[]]"],
    ids=[
        "empty",
        "open",
        "truncated",
        "trailing comma",
        "words",
        "not utf-8",
        "bad utf-8 in a string",
        "extra",
    ],
)
async def test_invalid_json_is_a_422(
    client: httpx.AsyncClient, recording: RecordingRouter, body: bytes
) -> None:
    details = refusal(await post(client, body))
    assert details[0]["loc"] == [] and "JSON" in details[0]["msg"]
    assert recording.routed == []


@pytest.mark.parametrize("body", ["{}", json.dumps(event()), '"events"', "42", "null", "true"])
async def test_json_that_is_not_a_list_is_a_422(
    client: httpx.AsyncClient, recording: RecordingRouter, body: str
) -> None:
    assert [item["loc"] for item in refusal(await post(client, body))] == [[]]
    assert recording.routed == []


@pytest.mark.parametrize("item", [1, "event", None, [], [event()], True])
async def test_an_event_that_is_not_an_object_is_a_422_naming_its_index(
    client: httpx.AsyncClient, recording: RecordingRouter, item: Any
) -> None:
    details = refusal(await post(client, json.dumps([event(), item])))
    assert [detail["loc"] for detail in details] == [[1]]
    assert recording.routed == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("k" * (MAX_LABEL_KEY + 1), "v"), ("k", "v" * (MAX_LABEL_VALUE + 1))],
    ids=["long key", "long value"],
)
async def test_an_overlong_label_is_a_422_naming_where(
    client: httpx.AsyncClient, recording: RecordingRouter, key: str, value: str
) -> None:
    labels = {RESOURCE_ID: "prefect.flow-run.1", RESOURCE_ROLE: "tag", key: value}
    for where, bad in (("resource", event(resource=labels)), ("related", event(related=[labels]))):
        details = refusal(await post(client, json.dumps([bad])))
        assert [item["loc"][:2] for item in details] == [[0, where]]
    assert recording.routed == []


async def test_oversized_bodies_and_events_are_still_413s(
    client: httpx.AsyncClient, recording: RecordingRouter
) -> None:
    big_event = event(payload={"blob": "x" * MAX_EVENT_BYTES})
    refusal(await post(client, json.dumps([big_event])), status=413)
    many = [event(payload={"blob": "y" * 1000}) for _ in range(MAX_REQUEST_BYTES // 1000)]
    refusal(await post(client, json.dumps(many)), status=413)
    assert recording.routed == []


async def test_a_sources_lag_is_taken_from_its_headers_even_with_no_event(
    client: httpx.AsyncClient, lag: RecordingLag
) -> None:
    headers = {"X-Events-Source": "bridge-a", "X-Events-Lag": "40.5"}
    assert (await client.post("/api/events", json=[], headers=headers)).status_code == 204
    assert (await client.post("/api/events", json=[])).status_code == 204  # no header: no report
    assert lag.reports == [("bridge-a", 40.5)]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Events-Lag": "soon"},
        {"X-Events-Lag": "-1"},
        {"X-Events-Lag": "nan"},
        {"X-Events-Lag": "inf"},
        {"X-Events-Lag": "1e12"},
        {"X-Events-Lag": "1", "X-Events-Source": "s" * 101},
    ],
)
async def test_a_malformed_lag_header_is_a_422_and_takes_nothing(
    client: httpx.AsyncClient,
    recording: RecordingRouter,
    lag: RecordingLag,
    headers: dict[str, str],
) -> None:
    answer = await client.post("/api/events", json=[event()], headers=headers)
    assert answer.status_code == 422, answer.text
    assert "X-Events-" in answer.json()["detail"]
    assert recording.routed == [] and lag.reports == []
