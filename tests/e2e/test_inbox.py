"""The inbox: a request whose events go to many automations is answered once the inbox workflow
holds it (one signal), and each automation then gets every one of its events exactly once, in
the order the client sent them, also when the worker is killed mid-stream."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from temporal_automations.temporal import workflow_id
from temporal_automations.workflows.inbox import EventInboxWorkflow, InboxStatus, inbox_workflow_id
from tests.stack import Stack, running_stack
from tests.support import (
    Receiver,
    delivered_event_ids,
    event_json,
    eventually,
    eventually_async,
    webhook_action,
)

pytestmark = pytest.mark.e2e

# At least INBOX_MIN_AUTOMATIONS (8) and INBOX_MIN_EVENTS (100): every request goes through
# the inbox.
AUTOMATIONS = 10
REQUESTS = 20
EVENTS_PER_REQUEST = 100


async def create(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    created = await api.post("/automations/", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def counting(name: str) -> dict[str, Any]:
    """Counts the events named `name` and never fires."""
    return {
        "name": f"counts {name}",
        "trigger": {"posture": "Reactive", "expect": [name], "threshold": 10**5, "within": 3600},
        "actions": [{"type": "do-nothing"}],
    }


async def inbox_status(stack: Stack) -> InboxStatus:
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    handle = client.get_workflow_handle(inbox_workflow_id(stack.env["TASK_QUEUE"]))
    return await handle.query(EventInboxWorkflow.status)


async def test_each_automation_gets_its_events_once_in_the_order_they_were_sent(
    stack: Stack,
) -> None:
    async with stack.client() as api:
        ids = [await create(api, counting(f"inbox.order.{n}")) for n in range(AUTOMATIONS)]
        sent: dict[str, list[str]] = {automation: [] for automation in ids}
        for request in range(REQUESTS):
            body = []
            for position in range(EVENTS_PER_REQUEST):
                target = position % AUTOMATIONS
                event = event_json(f"inbox.order.{target}", f"r.{request}.{position}")
                sent[ids[target]].append(event["id"])
                body.append(event)
            response = await api.post("/events", json=body)
            assert response.status_code == 204, response.text

        expected = REQUESTS * EVENTS_PER_REQUEST // AUTOMATIONS

        async def all_received() -> bool:
            answers = await asyncio.gather(*(api.get(f"/automations/{i}/status") for i in ids))
            return all(a.json()["stats"]["events_received"] == expected for a in answers)

        await eventually_async(all_received, timeout=60, what="every event received")

    status = await inbox_status(stack)
    assert status.stats.parcels == REQUESTS, status  # each request was one signal to the inbox
    health = httpx.get(f"{stack.api_url}/health", headers=stack.headers, timeout=30).json()
    assert health["inbox"]["parcels_sent"] == REQUESTS, health
    assert (status.stats.gone, status.stats.refused, status.stats.skipped) == (0, 0, 0), status
    assert status.pending_bytes == 0, status
    client = await Client.connect(stack.temporal_address)
    for automation in ids:
        delivered = await delivered_event_ids(client, workflow_id(UUID(automation)))
        assert delivered == sent[automation]  # once each, in the order sent


def test_a_worker_killed_mid_stream_loses_no_event_of_the_inbox() -> None:
    """kill -9 between rounds or in one: a round that was not recorded runs again, and the
    automations skip the events they already have: every event acts once per automation."""
    automations, requests, per_request = 8, 12, 5
    small_requests_too = {"EVENTS_STORE_URL": "none", "INBOX_MIN_EVENTS": "1"}
    with Receiver() as receiver, running_stack(extra_env=small_requests_too) as stack:

        async def scenario() -> set[tuple[str, str]]:
            expected: set[tuple[str, str]] = set()
            async with stack.client() as api:
                for n in range(automations):
                    await create(
                        api,
                        {
                            "name": f"hook {n}",
                            "trigger": {
                                "posture": "Reactive",
                                "expect": ["inbox.fault"],
                                "for_each": ["prefect.resource.id"],
                            },
                            "actions": [webhook_action(receiver, f"/inbox/{n}", "{{ event.id }}")],
                        },
                    )
                for request in range(requests):
                    if request == requests // 3:
                        stack.kill_worker()
                    if request == 2 * requests // 3:
                        stack.start_worker()
                    body = [
                        event_json("inbox.fault", f"run.{request}.{i}") for i in range(per_request)
                    ]
                    response = await api.post("/events", json=body)
                    assert response.status_code == 204, response.text
                    expected |= {
                        (f"/inbox/{n}", event["id"]) for n in range(automations) for event in body
                    }
            return expected

        expected = asyncio.run(scenario())

        def acted() -> set[tuple[str, str]]:
            return {(r.path, r.body.decode()) for r in receiver.requests_snapshot()}

        eventually(lambda: acted() >= expected, timeout=120, what="every event acted on")
        assert acted() == expected, stack.log_tails()
        status = asyncio.run(inbox_status(stack))
        assert status.stats.parcels == requests, status
        assert status.pending_bytes == 0, status
