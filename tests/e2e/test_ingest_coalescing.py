"""Concurrent requests for the same automation ride shared signals (one signal in flight per
automation; what arrives meanwhile goes together in the next), and coalescing never loses,
doubles or reorders an event: each is delivered exactly once, a request's events in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from uuid import UUID

import pytest
from temporalio.client import Client

from temporal_automations.temporal import workflow_id
from tests.stack import Stack, running_stack
from tests.support import deliver_signals, delivered_event_ids, event_json

pytestmark = pytest.mark.e2e

REQUESTS = 24
EVENTS_PER_REQUEST = 50


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(extra_env={"EVENTS_STORE_URL": "none"}) as running:
        yield running


async def test_concurrent_requests_share_signals_and_keep_every_event_once_in_order(
    stack: Stack,
) -> None:
    async with stack.client() as api:
        created = await api.post(
            "/automations/",
            json={
                "name": "coalesced",
                "trigger": {"posture": "Reactive", "expect": ["coalesce.me"], "threshold": 10**5,
                            "within": 3600},
                "actions": [{"type": "do-nothing"}],
            },
        )  # fmt: skip
        assert created.status_code == 201, created.text
        automation_id = created.json()["id"]
        requests = [
            [event_json("coalesce.me", f"r.{n}.{i}") for i in range(EVENTS_PER_REQUEST)]
            for n in range(REQUESTS)
        ]

        async def post(body: list[dict[str, object]]) -> None:
            response = await api.post("/events", json=body)
            assert response.status_code == 204, response.text

        await asyncio.gather(*(post(body) for body in requests))
        # Durable now; but a signal that came during a workflow task is buffered by the server
        # and enters the history only when that task completes: wait until all are taken.
        deadline = time.monotonic() + 60
        received = 0
        while time.monotonic() < deadline:
            status = (await api.get(f"/automations/{automation_id}/status")).json()
            received = status["stats"]["events_received"]
            if received >= REQUESTS * EVENTS_PER_REQUEST:
                break
            await asyncio.sleep(0.1)
        assert received == REQUESTS * EVENTS_PER_REQUEST

    # Every signal is in the workflow's history (in its earlier runs too, when it has
    # continued as new meanwhile).
    client = await Client.connect(stack.temporal_address)
    signals = await deliver_signals(client, workflow_id(UUID(automation_id)))
    delivered = await delivered_event_ids(client, workflow_id(UUID(automation_id)))
    sent = [event["id"] for body in requests for event in body]
    assert sorted(delivered) == sorted(sent)  # each exactly once
    position = {event_id: index for index, event_id in enumerate(delivered)}
    for body in requests:  # a request's events in the order it sent them
        places = [position[event["id"]] for event in body]
        assert places == sorted(places)
    assert len(signals) < REQUESTS  # concurrent requests shared signals
