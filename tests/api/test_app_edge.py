"""The whole app's HTTP edge, in process (httpx's ASGI transport, no server, no Temporal): the
API key, bodies over a route's limit, every bad input a 4xx with a message, the catalog's 503
while it loads, the OpenAPI document.

The app is `create_app` itself, with its routers, middleware, limits and error handlers. Its
lifespan (which connects to Temporal) does not run: app.state holds, instead of what it would
connect, the real EventRouter (no automation routes anywhere, so it signals nothing) and
`NoStore`, a stand-in that fails the test if a request the edge should refuse reaches the store.
What needs the store or a worker is tested on real processes (tests/e2e/test_http_edge.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate
from temporalio.client import Client

from temporal_automations.api.app import create_app
from temporal_automations.api.errors import CATALOG_RETRY_AFTER
from temporal_automations.api.routing import EventRouter
from temporal_automations.settings import Settings
from tests.api.support import RecordingLag

KEY = "edge-key"


class NoStore:
    """Stands in for AutomationStore: any use fails the test that made it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a refused request reached the store ({name})")


@pytest.fixture
def app() -> FastAPI:
    built = create_app(Settings(_env_file=None, api_key=KEY))
    # No automation is indexed, so routing signals nothing: Temporal's client is never used.
    built.state.router = EventRouter(cast(Client, None))
    built.state.store = NoStore()
    built.state.lag = RecordingLag()
    return built


@pytest.fixture
async def edge(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, with the API key; an unhandled error comes back as the 500 a
    client would see (so it fails the status assertions with the status in the message)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://edge/api", headers=headers
    ) as client:
        yield client


def definition(**fields: Any) -> dict[str, Any]:
    return {
        "name": "edge",
        "trigger": {"posture": "Reactive", "expect": [f"edge.{uuid.uuid4()}"]},
        "actions": [{"type": "do-nothing"}],
        **fields,
    }


# A fixed id: test ids must be the same in every collection (pytest-xdist's workers compare).
UNKNOWN_ID = "00000000-0000-4000-8000-00000000abcd"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/automations/"),
        ("POST", "/automations/filter"),
        ("GET", f"/automations/{UNKNOWN_ID}"),
        ("DELETE", f"/automations/{UNKNOWN_ID}"),
        ("POST", "/events"),
        ("POST", "/events/filter"),
        ("POST", "/automations/test"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {KEY}", KEY])
async def test_without_the_api_key_every_protected_route_is_a_401(
    edge: httpx.AsyncClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    edge.headers.pop("Authorization")
    answer = await edge.request(method, path, json={}, headers=headers)
    assert answer.status_code == 401, answer.text[:300]
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "API key" in answer.json()["detail"]


async def test_a_valid_event_batch_and_its_lag_are_taken_with_the_key(
    app: FastAPI, edge: httpx.AsyncClient
) -> None:
    event = {"event": "edge.ok", "resource": {"prefect.resource.id": "edge.r"}}
    answer = await edge.post(
        "/events", json=[event], headers={"X-Events-Source": "bridge", "X-Events-Lag": "2.5"}
    )
    assert answer.status_code == 204, answer.text[:300]
    assert app.state.lag.reports == [("bridge", 2.5)]


async def test_a_5_mb_definition_is_a_413_with_a_message(edge: httpx.AsyncClient) -> None:
    body = definition(description="x" * 5_000_000)
    answer = await edge.post("/automations/", json=body)
    assert answer.status_code == 413
    assert "bytes" in answer.json()["detail"]
    put = await edge.put(f"/automations/{uuid.uuid4()}", json=body)
    assert put.status_code == 413


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("POST", "/automations/", b"\xff\xfe"),
        ("POST", "/automations/", b"[" * 10_000),
        ("POST", "/automations/", b'{"name": "x", "trigger": {"for_each": [{}]}}'),
        ("POST", "/automations/", json.dumps(definition(name="")).encode()),
        ("POST", "/automations/filter", b'{"limit": -1}'),
        ("POST", "/automations/count", b"\x00"),
        ("PATCH", f"/automations/{UNKNOWN_ID}", b'{"enabled": 0}'),
        ("PUT", "/automations/count", b"{}"),
        ("GET", "/automations/not-a-uuid", b""),
        ("POST", "/events", b'[{"event": "' + b"e" * 2_000_000 + b'"}]'),
        ("POST", "/events", b"[" + b'{"event":"x","resource":{}},' * 20_000 + b"1]"),
        ("POST", "/events", b"\xff"),
        (  # found by schemathesis: a test-fire `until` past the year 2999 was a 500
            "POST",
            "/automations/test",
            b'{"automation": {"name": "n", "trigger": {"posture": "Reactive"}}, "events": [],'
            b' "until": "9796-05-15T11:14:05-11:25"}',
        ),
        ("POST", "/events/filter", b'{"limit": "many"}'),
        (  # a webhook URL with no host was taken, and failed only when it ran
            "POST",
            "/automations/",
            b'{"name": "n", "trigger": {"posture": "Reactive"},'
            b' "actions": [{"type": "call-webhook", "url": "http://"}]}',
        ),
    ],
)
async def test_every_bad_input_is_a_4xx_with_a_message(
    edge: httpx.AsyncClient, method: str, path: str, content: bytes
) -> None:
    answer = await edge.request(
        method, path, content=content, headers={"Content-Type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text[:300]
    assert answer.json()["detail"]


async def test_a_large_batch_error_names_the_event_it_is_in(edge: httpx.AsyncClient) -> None:
    good = {
        "event": "edge.batch",
        "resource": {"prefect.resource.id": "edge.r"},
        "payload": {"pad": "p" * 200},
    }
    batch = [good] * 3000
    batch[2345] = {**good, "resource": {}}
    answer = await edge.post("/events", json=batch)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][0] == 2345


async def test_events_are_a_503_with_retry_after_while_the_catalog_loads(
    app: FastAPI, edge: httpx.AsyncClient
) -> None:
    app.state.router = EventRouter(cast(Client, None), ready=lambda: False)
    event = {"event": "edge.early", "resource": {"prefect.resource.id": "edge.r"}}
    answer = await edge.post("/events", json=[event])
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == str(CATALOG_RETRY_AFTER)
    assert "catalog" in answer.json()["detail"]


def test_the_openapi_document_validates_and_documents_every_status(app: FastAPI) -> None:
    document = app.openapi()
    validate(document)
    assert "$defs" not in json.dumps(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if path != "/api/health":
                assert {"401", "422"} <= codes, (method, path)
            if method in ("post", "put", "patch") and path != "/api/health":
                assert "413" in codes, (method, path)
            if "{automation_id}" in path:
                assert "404" in codes, (method, path)
