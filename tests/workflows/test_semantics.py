"""Semantics version 2 in AutomationWorkflow, on the time-skipping test server with the real
worker: stuck detection from the first Running, a lagging bridge holding a deadline and then
releasing it, a compound of a reactive and a proactive child, and a sequence whose events
arrive out of order in one batch but occurred in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from temporal_automations.domain.evaluation import TriggerState
from temporal_automations.domain.evaluation_v1 import TriggerEvaluator as EvaluatorV1
from temporal_automations.temporal import workflow_id
from temporal_automations.workflows.automation import AutomationRun, AutomationWorkflow, LagReport
from tests.support import (
    STUCK_TRIGGER,
    Receiver,
    make_automation,
    make_event,
    register_search_attributes,
    temporal_test_server_binary,
    webhook_action,
)
from tests.workflow_support import (
    automation_workflow,
    deliver,
    lifecycle_names,
    received,
    running_worker,
    status_when,
)

RUN = "prefect.flow-run.00000000-0000-4000-8000-000000000001"


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of each test's own: these tests let 30 minutes pass, which the
    shared server cannot do while an earlier module's activity is still in flight on it."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=temporal_test_server_binary(),
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


RUNNING = "prefect.flow-run.Running"


def reactive(name: str) -> dict[str, Any]:
    return {"type": "event", "posture": "Reactive", "expect": [name]}


async def test_stuck_detection_counts_from_the_first_running(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    automation = make_automation(STUCK_TRIGGER, [webhook_action(receiver, "/stuck")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        now = await env.get_current_time()
        await deliver(handle, make_event(RUNNING, RUN, occurred=now))
        await env.sleep(timedelta(minutes=10))
        # the run reports Running again (a retry, a duplicate): the deadline does not move
        await deliver(handle, make_event(RUNNING, RUN, occurred=now + timedelta(minutes=10)))
        status = await status_when(handle, received(2))
        assert status.semantics == 2
        assert status.next_deadline == now + timedelta(minutes=30)
        await env.sleep(timedelta(minutes=20, seconds=5))
        assert len(await receiver.arrived(1, "/stuck")) == 1
        status = await status_when(handle, lambda s: s.stats.firings == 1)
        assert status.next_deadline is None  # fired once for the run


async def test_a_lagging_bridge_holds_a_deadline_then_releases_it(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    held = make_automation(STUCK_TRIGGER, [webhook_action(receiver, "/held")])
    released = make_automation(STUCK_TRIGGER, [webhook_action(receiver, "/released")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, held) as held_handle,
        automation_workflow(client, task_queue, released) as released_handle,
    ):
        now = await env.get_current_time()
        for handle in (held_handle, released_handle):
            await deliver(handle, make_event(RUNNING, RUN, occurred=now))
            await status_when(handle, received(1))
        await env.sleep(timedelta(minutes=29))
        for handle in (held_handle, released_handle):
            await handle.signal(AutomationWorkflow.report_lag, LagReport(lag_seconds=40))
            await status_when(
                handle, lambda s: s.next_deadline == now + timedelta(minutes=30, seconds=40)
            )
        await env.sleep(timedelta(minutes=1, seconds=10))  # past the deadline, not the lag
        for handle in (held_handle, released_handle):
            assert (await handle.query(AutomationWorkflow.status)).stats.firings == 0
        # one bridge catches up (no event for the run): its deadline is released, it fires
        await released_handle.signal(AutomationWorkflow.report_lag, LagReport(lag_seconds=0))
        assert len(await receiver.arrived(1, "/released")) == 1
        (firing,) = (await released_handle.query(AutomationWorkflow.status)).stats.recent
        assert firing.occurred == now + timedelta(minutes=30)  # the deadline, in event time
        assert firing.window_start == now and firing.window_end == firing.occurred
        assert firing.evaluated is not None and firing.evaluated > firing.occurred
        assert firing.lag_seconds == 0 and not firing.lag_capped
        # the other delivers, late, the Completed that occurred in time: no false alarm
        await deliver(
            held_handle,
            make_event(
                "prefect.flow-run.Completed", RUN, occurred=now + timedelta(minutes=29, seconds=50)
            ),
        )
        await status_when(held_handle, received(2))
        await env.sleep(timedelta(seconds=40))  # the deadline, held back 40 s, passes
        status = await status_when(held_handle, lambda s: s.next_deadline is None)
        assert status.stats.firings == 0
        assert len(await lifecycle_names(receiver, 3)) == 3  # nothing left in flight


async def test_a_compound_of_a_reactive_and_a_proactive_child(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    automation = make_automation(
        {
            "type": "compound",
            "require": "all",
            "within": 300,
            "triggers": [
                reactive("deploy.started"),
                {"posture": "Proactive", "expect": ["heartbeat"], "within": 60},
            ],
        },
        [webhook_action(receiver, "/both", "{{ firings | length }} {{ events[0].event }}")],
    )
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        now = await env.get_current_time()
        await deliver(handle, make_event("heartbeat", RUN, occurred=now + timedelta(seconds=5)))
        await deliver(
            handle, make_event("deploy.started", RUN, occurred=now + timedelta(seconds=70))
        )
        await status_when(handle, received(2))
        status = await handle.query(AutomationWorkflow.status)
        assert status.trigger_state is not None
        assert [child["path"] for child in status.trigger_state["children"]] == ["0", "1"]
        assert status.stats.firings == 0  # the first window heard its heartbeat
        await env.sleep(timedelta(seconds=125))  # [60, 120) is silent: the second child fires
        (call,) = await receiver.arrived(1, "/both")
        assert call.body == b"2 deploy.started"
        assert len(await lifecycle_names(receiver, 3)) == 3


async def test_a_sequence_arriving_out_of_order_in_one_batch_but_occurred_in_order(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    automation = make_automation(
        {"type": "sequence", "within": 600, "triggers": [reactive("a"), reactive("b")]},
        [webhook_action(receiver, "/sequence")],
    )
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        now = await env.get_current_time()
        await deliver(
            handle,
            make_event("b", RUN, occurred=now + timedelta(seconds=20)),
            make_event("a", RUN, occurred=now + timedelta(seconds=10)),
        )
        assert len(await receiver.arrived(1, "/sequence")) == 1
        # leave nothing in flight: an activity left running holds the test server's clock
        assert len(await lifecycle_names(receiver, 3)) == 3


async def test_a_run_continuing_from_version_1_state_converts_and_keeps_its_windows(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    """What a run started before semantics v2 hands its next run at continue-as-new: a
    version 1 state. The new run evaluates with v2 and keeps the open window."""
    env, client = time_skipping_env, time_skipping_env.client
    automation = make_automation(STUCK_TRIGGER, [webhook_action(receiver, "/converted")])
    now = await env.get_current_time()
    old = EvaluatorV1(automation.trigger)  # type: ignore[arg-type]
    old.receive([make_event(RUNNING, RUN, occurred=now)], now)
    carried = AutomationRun(
        automation=automation, state=TriggerState.model_validate(old.state.model_dump())
    )
    async with running_worker(client, receiver) as task_queue:
        handle = await client.start_workflow(
            AutomationWorkflow.run,
            carried,
            id=workflow_id(automation.id),
            task_queue=task_queue,
        )
        try:
            status = await status_when(handle, lambda s: s.semantics == 2)
            assert status.next_deadline == now + timedelta(minutes=30)
            await env.sleep(timedelta(minutes=30, seconds=5))
            assert len(await receiver.arrived(1, "/converted")) == 1
        finally:
            await handle.terminate("test over")


async def test_a_lag_report_that_does_not_decode_is_recorded_and_skipped(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    automation = make_automation(STUCK_TRIGGER, [])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await handle.signal("report_lag", {"lag_seconds": "a while"})
        await handle.signal("report_lag", [1, 2, 3])
        status = await status_when(handle, lambda s: s.stats.errors == 2)
        assert status.stats.last_error is not None and "lag report" in status.stats.last_error
        await deliver(handle, make_event(RUNNING, RUN))
        await status_when(handle, lambda s: s.open_windows == 1)  # still evaluating
