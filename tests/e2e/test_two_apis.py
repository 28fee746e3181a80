"""Two API processes on one Temporal server share one catalog (a real stack: dev server,
worker, two API processes, a webhook receiver): an automation created through one is routed
by the other, and acts once; a pause and a deletion through one reach the other."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

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
