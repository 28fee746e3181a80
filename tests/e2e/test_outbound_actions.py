"""The outbound guard in the production worker: a send-notification action whose apprise URL
aims at loopback is refused (and not retried) unless ALLOW_PRIVATE_WEBHOOKS allows it, as a
call-webhook is. Real Temporal dev server (nothing here needs time skipped, and actions left in
flight would hold a shared time-skipping server's clock for the tests after), real worker, real
loopback receiver."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client

from tests.support import Receiver, make_automation, make_event
from tests.workflow_support import (
    actions_done,
    automation_workflow,
    deliver,
    running_worker,
    status_when,
)

REACTIVE_X: dict[str, Any] = {"posture": "Reactive", "expect": ["x"]}


def notification(receiver: Receiver, scheme: str) -> dict[str, Any]:
    host_port = receiver.url.split("://", 1)[1]
    return {"type": "send-notification", "url": f"{scheme}://{host_port}/notify-{scheme}"}


@pytest.mark.parametrize("scheme", ["json", "form", "xml"])
async def test_a_notification_to_loopback_is_refused_unless_allowed(
    dev_client: Client, receiver: Receiver, scheme: str
) -> None:
    client = dev_client
    automation = make_automation(REACTIVE_X, [notification(receiver, scheme)])
    async with (
        running_worker(client, receiver, allow_private_webhooks=False) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, make_event("x"))
        status = await status_when(handle, lambda s: s.stats.firings == 1 and actions_done(s))
        (action,) = status.stats.recent[0].actions
        assert action.status == "failed", action
        assert "private or loopback" in (action.detail or "")
        assert receiver.requests_snapshot(f"/notify-{scheme}") == []

    allowed = make_automation(REACTIVE_X, [notification(receiver, scheme)])
    async with (
        running_worker(client, receiver, allow_private_webhooks=True) as task_queue,
        automation_workflow(client, task_queue, allowed) as handle,
    ):
        await deliver(handle, make_event("x"))
        await receiver.arrived(1, f"/notify-{scheme}")
