"""api/errors.py: each error type a route lets through answers with its status code, the same
on every route (in-process: the handlers on a small app, no servers)."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations.api import errors
from temporal_automations.api.events_store import StoreUnavailable
from temporal_automations.api.routing import CatalogNotReady
from temporal_automations.api.store import AutomationNotFound

AUTOMATION = uuid.UUID("00000000-0000-4000-8000-0000000000e1")  # fixed: test ids must not vary
RAISED: dict[str, Exception] = {
    "not-found": AutomationNotFound(AUTOMATION),
    "catalog": CatalogNotReady("the automations catalog is still loading"),
    "store-down": StoreUnavailable("connection refused"),
    "no-store": errors.NoEventsStore(),
    "rpc-invalid": RPCError("bad name", RPCStatusCode.INVALID_ARGUMENT, b""),
    "rpc-unavailable": RPCError("down", RPCStatusCode.UNAVAILABLE, b""),
}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.get("/raise/{name}")
    async def raising(name: str) -> None:
        raise RAISED[name]

    @app.post("/only-post")
    async def only_post() -> None:
        return None

    return TestClient(app)


@pytest.mark.parametrize(
    ("name", "status", "detail"),
    [
        ("not-found", 404, f"automation {AUTOMATION} not found"),
        ("catalog", 503, "the automations catalog is still loading: try again shortly"),
        ("store-down", 503, "the events store is unavailable: connection refused"),
        ("no-store", 503, "no events store (EVENTS_STORE_URL=none)"),
        ("rpc-invalid", 422, "Temporal did not accept the request: bad name"),
        ("rpc-unavailable", 503, "Temporal did not accept the request: down"),
    ],
)
def test_each_error_type_answers_with_its_status(
    client: TestClient, name: str, status: int, detail: str
) -> None:
    answer = client.get(f"/raise/{name}")
    assert answer.status_code == status
    assert answer.json()["detail"].startswith(detail)


def test_a_loading_catalog_says_when_to_come_back(client: TestClient) -> None:
    assert client.get("/raise/catalog").headers["retry-after"] == "1"


def test_every_mapped_type_is_an_exception_with_a_status() -> None:
    # The table is the one place: a new kind is added there, with a 4xx or 5xx.
    for kind, answer in errors.ANSWERS.items():
        assert issubclass(kind, Exception) and 400 <= answer.status < 600


def test_a_wrong_method_names_the_allowed_ones(client: TestClient) -> None:
    answer = client.get("/only-post")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
