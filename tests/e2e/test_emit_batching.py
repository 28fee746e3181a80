"""A firing's lifecycle events go out together: its actions run as local activities inside the
workflow task that started them, and the events wait for them (`emit-after-local-actions`),
so a lone firing costs one emit activity, not two."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.support import Receiver, make_automation, make_event, webhook_action
from tests.workflow_support import (
    actions_done,
    automation_workflow,
    deliver,
    lifecycle_names,
    running_worker,
    status_when,
)

LIFECYCLE = {
    "prefect.automation.triggered",
    "prefect.automation.action.triggered",
    "prefect.automation.action.executed",
}


def emits_scheduled(history: Any) -> int:
    return sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == "emit_events"
    )


async def test_a_lone_firing_emits_its_three_lifecycle_events_in_one_activity(
    dev_client: Client, receiver: Receiver
) -> None:
    automation = make_automation(
        {"posture": "Reactive", "expect": ["x"]}, [webhook_action(receiver, "/lone")]
    )
    async with (
        running_worker(dev_client, receiver) as task_queue,
        automation_workflow(dev_client, task_queue, automation) as handle,
    ):
        for firing in range(1, 3):  # two lone firings, one after the other
            await deliver(handle, make_event("x"))
            await status_when(handle, lambda s, n=firing: s.stats.firings == n and actions_done(s))
            names = await lifecycle_names(receiver, 3 * firing)
            assert len(names) == 3 * firing and set(names) == LIFECYCLE
            # one POST of the three to the events API, and one emit activity, per firing
            assert len(receiver.requests_snapshot("/api/events")) == firing
            assert emits_scheduled(await handle.fetch_history()) == firing
