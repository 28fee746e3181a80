"""AutomationWorkflow on a real dev server (not the time-skipping one): continue-as-new with
many signals and when the server suggests it early, and the memo and search attributes that
visibility lists (the time-skipping server has no visibility)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from temporal_automations.domain.automations import Automation
from temporal_automations.domain.events import Event
from temporal_automations.temporal import AUTOMATION_ENABLED, AUTOMATION_NAME
from temporal_automations.workflows.automation import (
    MAX_SIGNALS_PER_RUN,
    YIELD_TASK,
    AutomationWorkflow,
)
from temporal_automations.workflows.timer_lead import FIRST_LEAD, MAX_LEAD
from tests.support import (
    STUCK_TRIGGER,
    Receiver,
    eventually_async,
    make_automation,
    make_event,
    webhook_action,
)
from tests.workflow_support import (
    actions_done,
    automation_workflow,
    current_run_id,
    deliver,
    received,
    running_worker,
    status_when,
)

REACTIVE_X: dict[str, Any] = {"posture": "Reactive", "expect": ["x"]}


async def signal_many(handle: WorkflowHandle[Any, Any], events: list[Event]) -> None:
    """One signal per event, a few in flight at a time (so some race the continue-as-new)."""
    for start in range(0, len(events), 20):
        await asyncio.gather(*(deliver(handle, e) for e in events[start : start + 20]))


async def test_state_survives_continue_as_new_after_many_signals(
    dev_client: Client, receiver: Receiver
) -> None:
    """More signals than a run takes (MAX_SIGNALS_PER_RUN + 50, one event each): the count of a
    reactive threshold and the seen event ids carry over to the next run."""
    client = dev_client
    total = MAX_SIGNALS_PER_RUN + 50
    automation = make_automation(
        {"posture": "Reactive", "expect": ["x"], "threshold": total, "within": 3600},
        [webhook_action(receiver, "/counted")],
    )
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        first_run = await current_run_id(client, handle)
        events = [make_event("x") for _ in range(total)]
        await signal_many(handle, events[:-1])
        await deliver(handle, events[0])  # a duplicate of an event seen in the first run
        status = await status_when(handle, received(total), timeout=30)
        assert await current_run_id(client, handle) != first_run
        assert status.stats.firings == 0  # total - 1 distinct events: one short

        await deliver(handle, events[-1])
        assert len(await receiver.arrived(1, "/counted", timeout=15)) == 1
        status = await status_when(handle, lambda s: s.stats.firings == 1 and actions_done(s))
        assert status.stats.events_received == total + 1
        assert [a.status for a in status.stats.recent[0].actions] == ["executed"]


WINDOW_S = 30


async def test_an_open_window_survives_a_server_suggested_continue_as_new(
    eager_continue_as_new_client: Client, receiver: Receiver
) -> None:
    """The dev server suggests continue-as-new after a few history events (far fewer than
    MAX_SIGNALS_PER_RUN signals); the stuck-run window opened before must still fire after."""
    client = eager_continue_as_new_client
    automation = make_automation(
        # Long enough that the run continues as new before it ends, even on a loaded machine
        # (51 signals once took over 10 s in CI, and the window fired in the first run).
        {**STUCK_TRIGGER, "within": WINDOW_S},
        [webhook_action(receiver, "/late", "{{ event.resource.id }}")],
    )
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        first_run = await current_run_id(client, handle)
        slow = make_event("prefect.flow-run.Running", "prefect.flow-run.slow")
        await deliver(handle, slow)
        others = 25
        for index in range(others):  # unrelated traffic grows the history past the limit
            run = f"prefect.flow-run.q{index}"
            await deliver(handle, make_event("prefect.flow-run.Running", run))
            await deliver(handle, make_event("prefect.flow-run.Completed", run))
        signals = 1 + 2 * others
        assert signals < MAX_SIGNALS_PER_RUN  # so the server's suggestion is what continues
        await status_when(handle, received(signals))
        assert await current_run_id(client, handle) != first_run
        assert receiver.requests_snapshot("/late") == []  # the window was open across it

        calls = await receiver.arrived(1, "/late", timeout=WINDOW_S + 20)
        assert [c.body.decode() for c in calls] == ["prefect.flow-run.slow"]
        assert calls[0].received_at >= slow.occurred.timestamp() + WINDOW_S - 0.01  # its deadline
        status = await status_when(handle, lambda s: s.stats.firings == 1)
        assert status.stats.events_received == signals
        assert status.stats.recent[0].event_id == slow.id


@pytest.mark.parametrize("enabled", [True, False])
async def test_memo_and_search_attributes_describe_the_automation(
    dev_client: Client, receiver: Receiver, enabled: bool
) -> None:
    name = f"memo check {enabled} {uuid.uuid4()}"
    secret_action = {
        "type": "call-webhook",
        "url": f"{receiver.url}/secret",
        "headers": {"Authorization": "Bearer very-secret"},
    }
    automation = make_automation(REACTIVE_X, [secret_action], name=name)
    async with (
        running_worker(dev_client, receiver) as task_queue,
        automation_workflow(dev_client, task_queue, automation) as handle,
    ):
        await handle.execute_update(AutomationWorkflow.set_enabled, enabled)
        description = await handle.describe()
        memo = await description.memo()
        assert memo["automation"]["name"] == name
        assert "very-secret" not in str(memo)
        assert description.typed_search_attributes.get(AUTOMATION_NAME) == name
        assert description.typed_search_attributes.get(AUTOMATION_ENABLED) is enabled

        query = f"AutomationName = '{name}' AND AutomationEnabled = {str(enabled).lower()}"

        async def listed() -> list[str]:
            return [w.id async for w in dev_client.list_workflows(query)]

        assert await eventually_async(listed, 5, what="the workflow listed") == [handle.id]


def stuck_for_10_s(receiver: Receiver) -> Automation:
    """A run that stays Running 10 s fires a webhook whose body is the run's resource id."""
    return make_automation(
        {**STUCK_TRIGGER, "within": 10},
        [webhook_action(receiver, "/stuck", "{{ event.resource.id }}")],
    )


async def start_runs(
    handle: WorkflowHandle[Any, Any], names: list[str], apart: float
) -> dict[str, datetime]:
    """A Running event for each run, `apart` seconds after the previous; each run's deadline."""
    deadlines: dict[str, datetime] = {}
    for name in names:
        occurred = datetime.now(UTC)
        await deliver(handle, make_event("prefect.flow-run.Running", name, occurred=occurred))
        deadlines[name] = occurred + timedelta(seconds=10)
        await asyncio.sleep(apart)
    return deadlines


async def test_a_deadline_armed_beside_a_running_webhook_is_armed_early(
    dev_client: Client, receiver: Receiver
) -> None:
    """Two stuck runs 3 s apart: the second deadline is armed while the first firing's webhook
    runs as a local activity, in a task the server completes (and starts its timers) only when
    the webhook returns. That timer is armed to fire at once, and the deadline re-armed in the
    next task; no webhook comes before its deadline."""
    async with (
        running_worker(dev_client, receiver) as task_queue,
        automation_workflow(dev_client, task_queue, stuck_for_10_s(receiver)) as handle,
    ):
        deadlines = await start_runs(handle, ["first", "second"], apart=3)
        calls = await receiver.arrived(2, "/stuck", timeout=30)
        for call in calls:
            assert call.received_at >= deadlines[call.body.decode()].timestamp()

        events = (await handle.fetch_history()).events
        local_activity_tasks = {
            e.marker_recorded_event_attributes.workflow_task_completed_event_id
            for e in events
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        }
        held_timers = [
            e.timer_started_event_attributes
            for e in events
            if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
            and e.timer_started_event_attributes.workflow_task_completed_event_id
            in local_activity_tasks
        ]
        assert held_timers, "the first firing's task armed no timer"
        assert all(timer.start_to_fire_timeout.ToTimedelta() == YIELD_TASK for timer in held_timers)


async def test_deadlines_are_armed_ahead_by_how_late_timers_woke_the_workflow(
    dev_client: Client, receiver: Receiver
) -> None:
    """Six stuck runs 400 ms apart: the first deadline's timer is armed FIRST_LEAD ahead (no
    timer has fired yet in the run), and after the first timer has fired each deadline's timer
    is armed earlier than `deadline - now` by at most MAX_LEAD (the arming task's length and
    the dispatch it learned); still no webhook comes before its deadline."""
    async with (
        running_worker(dev_client, receiver) as task_queue,
        automation_workflow(dev_client, task_queue, stuck_for_10_s(receiver)) as handle,
    ):
        deadlines = await start_runs(handle, [f"run-{index}" for index in range(6)], apart=0.4)
        calls = await receiver.arrived(6, "/stuck", timeout=40)
        assert sorted(call.body.decode() for call in calls) == sorted(deadlines)
        for call in calls:
            assert call.received_at >= deadlines[call.body.decode()].timestamp()

        events = {e.event_id: e for e in (await handle.fetch_history()).events}
        first_deadline = min(deadlines.values())
        led = 0
        first_led = False
        for event in events.values():
            if event.event_type != EventType.EVENT_TYPE_TIMER_STARTED:
                continue
            timer = event.timer_started_event_attributes
            completed = events[timer.workflow_task_completed_event_id]
            started = events[completed.workflow_task_completed_event_attributes.started_event_id]
            due = started.event_time.ToDatetime(UTC) + timer.start_to_fire_timeout.ToTimedelta()
            armed_ahead = any(timedelta(0) < d - due <= MAX_LEAD for d in deadlines.values())
            if armed_ahead and timer.start_to_fire_timeout.ToTimedelta() > YIELD_TASK:
                led += 1
            first_led |= abs(first_deadline - due - FIRST_LEAD) < timedelta(milliseconds=1)
        assert first_led, "the first deadline's timer was not armed FIRST_LEAD ahead"
        assert led >= 4, "the deadlines after the first were not armed ahead"
