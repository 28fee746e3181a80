"""Two API processes on one Temporal server share one catalog (a real stack: dev server,
worker, two API processes, a webhook receiver): an automation created through one is routed
by the other, and acts once; a pause and a deletion through one reach the other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from temporal_automations.api.store import CATALOG_OVERLAP, CATALOG_POLL_SECONDS
from temporal_automations.temporal import workflow_id
from tests.stack import START_TIMEOUT, Stack
from tests.support import Receiver, event_json, eventually, send, settled, webhook_action


@pytest.fixture
def second_api(stack: Stack) -> Iterator[httpx.Client]:
    """Another API process on the same Temporal server and task queue, its own port."""
    with stack.another_api() as url, httpx.Client(base_url=url, timeout=30) as client:
        eventually(
            lambda: client.get("/health").json()["catalog"]["loaded"],
            timeout=START_TIMEOUT,
            what="second API's catalog loaded",
        )
        yield client


def test_created_through_one_routed_by_the_other(
    stack: Stack, second_api: httpx.Client, receiver: Receiver
) -> None:
    with stack.sync_client() as first_api:
        created = first_api.post(
            "/automations/",
            json={
                "name": "made through the first API",
                "trigger": {
                    "posture": "Reactive",
                    "expect": ["two.apis.happened"],
                    "threshold": 1,
                    "within": 0,
                },
                "actions": [webhook_action(receiver)],
            },
        )
        assert created.status_code == 201, created.text
        automation_id = created.json()["id"]

        # The second API's catalog follows the first's creation (its change feed).
        eventually(
            lambda: second_api.get(f"/automations/{automation_id}").status_code == 200,
            what="the second API knows the automation",
        )
        send(second_api, event_json("two.apis.happened", "two.apis.resource"))
        receiver.wait_for(1, path="/hook", timeout=30)
        status = settled(first_api, automation_id, received=1)
        assert status["stats"]["firings"] == 1
        assert len(receiver.requests_snapshot("/hook")) == 1  # the action ran once

        # A pause through the first: the second sees it (and stops routing to it).
        paused = first_api.patch(f"/automations/{automation_id}", json={"enabled": False})
        assert paused.status_code == 200, paused.text
        eventually(
            lambda: second_api.get(f"/automations/{automation_id}").json()["enabled"] is False,
            what="the second API sees the pause",
        )

        # A deletion through the first: the second forgets it.
        assert first_api.delete(f"/automations/{automation_id}").status_code == 204
        eventually(
            lambda: second_api.get(f"/automations/{automation_id}").status_code == 404,
            what="the second API forgets the deleted automation",
        )


def test_an_automation_cancelled_in_temporal_leaves_both_catalogs(
    stack: Stack, second_api: httpx.Client
) -> None:
    """Cancelled from the Web UI or the CLI, not deleted through an API: the change feed's
    rarer queries (runs ended otherwise than by a deletion) find it for both processes."""
    with stack.sync_client() as first_api:
        created = first_api.post(
            "/automations/",
            json={
                "name": "cancelled in Temporal",
                "trigger": {"posture": "Reactive", "expect": ["two.apis.cancelled"]},
                "actions": [{"type": "do-nothing"}],
            },
        )
        assert created.status_code == 201, created.text
        automation_id = created.json()["id"]
        eventually(
            lambda: second_api.get(f"/automations/{automation_id}").status_code == 200,
            what="the second API knows the automation",
        )
        # Past the window of the query that saw its creation (which would see the end too).
        created_at = datetime.fromisoformat(created.json()["updated"])
        window = CATALOG_OVERLAP.total_seconds() + 2 * CATALOG_POLL_SECONDS
        eventually(
            lambda: (datetime.now(UTC) - created_at).total_seconds() > window,
            timeout=window + 5,
            what="the creation is older than the change feed's window",
        )

        async def cancel() -> WorkflowExecutionStatus | None:
            client = await Client.connect(stack.temporal_address)
            handle = client.get_workflow_handle(workflow_id(uuid.UUID(automation_id)))
            await handle.cancel()
            while (status := (await handle.describe()).status) == WorkflowExecutionStatus.RUNNING:
                await asyncio.sleep(0.05)
            return status

        assert asyncio.run(cancel()) == WorkflowExecutionStatus.CANCELED
        for api in (first_api, second_api):
            eventually(
                lambda api=api: api.get(f"/automations/{automation_id}").status_code == 404,
                what="the cancelled automation is gone from the catalog",
            )
