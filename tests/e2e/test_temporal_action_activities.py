"""The Temporal actions' activities against a real dev server (the user's cluster, with its own
worker): a retried action acts once, and an inferred target is acted on in its namespace."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowExecutionStatus,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.activities.temporal_actions import (
    TemporalActivities,
)
from temporal_automations.devserver import DevServer
from temporal_automations.domain.events import EventIn
from temporal_automations.settings import TemporalConnection
from temporal_automations.temporal_bridge import TemporalBridge
from tests.support import Receiver
from tests.temporal_user import ACTIVITIES, WORKFLOWS, Echo, WaitsForSignal
from tests.workflows.test_temporal_action_models import request


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[tuple[Client, TemporalActivities]]:
    with DevServer(namespace="shop") as server:  # "default" and "shop"
        client = await Client.connect(server.address)
        async with (
            Worker(client, task_queue="user-work", workflows=WORKFLOWS, activities=ACTIVITIES),
            TemplateRenderer() as renderer,
        ):
            yield client, TemporalActivities(TemporalConnection(address=server.address), renderer)


def retried(environment: ActivityEnvironment) -> ActivityEnvironment:
    environment.info = dataclasses.replace(environment.info, attempt=2)
    return environment


async def test_a_retried_start_starts_one_workflow(
    cluster: tuple[Client, TemporalActivities],
) -> None:
    client, activities = cluster
    prefix = f"start-{uuid.uuid4().hex[:6]}"
    started = request(
        {
            "type": "temporal-start-workflow",
            "workflow_type": "Echo",
            "task_queue": "user-work",
            "workflow_id": prefix + "-{{ firing.key }}",
            "args": ["{{ automation.name }}"],
        }
    )
    first = await ActivityEnvironment().run(activities.start_workflow, started)
    second = await retried(ActivityEnvironment()).run(activities.start_workflow, started)
    assert first == second  # the same run: the server recognised the request id
    assert await client.get_workflow_handle(f"{prefix}-k").result() == "t"
    runs = [run async for run in client.list_workflows(f'WorkflowId = "{prefix}-k"')]
    assert len(runs) == 1
    # Another firing with the same rendered id while it is... closed: a new run is allowed,
    # while a running one with that id makes the action fail with a reason.
    blocker = await client.start_workflow(
        WaitsForSignal.run, id=f"{prefix}-busy", task_queue="user-work"
    )
    busy = request(
        {
            "type": "temporal-start-workflow",
            "workflow_type": "Echo",
            "task_queue": "user-work",
            "workflow_id": f"{prefix}-busy",
            "args": ["x"],
        }
    )
    with pytest.raises(ApplicationError, match="a workflow with that id is running"):
        await ActivityEnvironment().run(activities.start_workflow, busy)
    await blocker.terminate()


async def test_a_retried_signal_is_delivered_once_and_a_retried_trigger_runs_once(
    cluster: tuple[Client, TemporalActivities],
) -> None:
    client, activities = cluster
    workflow_id = f"signal-{uuid.uuid4().hex[:6]}"
    handle = await client.start_workflow(WaitsForSignal.run, id=workflow_id, task_queue="user-work")
    signal = request(
        {
            "type": "temporal-signal-workflow",
            "workflow_id": workflow_id,
            "signal": "finish",
            "args": ["{{ automation.name }}"],
        }
    )
    await ActivityEnvironment().run(activities.signal_workflow, signal)
    await retried(ActivityEnvironment()).run(activities.signal_workflow, signal)
    assert await handle.result() == "t"
    history = await handle.fetch_history()
    signals = [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert len(signals) == 1

    schedule_id = f"sched-{uuid.uuid4().hex[:6]}"
    schedule = await client.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                Echo.run, "s", id=f"{schedule_id}-run", task_queue="user-work"
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
        ),
    )
    trigger = request({"type": "temporal-trigger-schedule", "schedule_id": schedule_id})
    await ActivityEnvironment().run(activities.patch_schedule, trigger)
    await retried(ActivityEnvironment()).run(activities.patch_schedule, trigger)
    for _ in range(50):
        described = await schedule.describe()
        if described.info.num_actions:
            break
    runs = [run async for run in client.list_workflows(f'TemporalScheduledById = "{schedule_id}"')]
    assert described.info.num_actions == 1 and len(runs) <= 1
    await schedule.delete()


async def test_terminating_a_workflow_that_a_first_attempt_terminated_is_not_a_failure(
    cluster: tuple[Client, TemporalActivities],
) -> None:
    client, activities = cluster
    workflow_id = f"term-{uuid.uuid4().hex[:6]}"
    await client.start_workflow(WaitsForSignal.run, id=workflow_id, task_queue="user-work")
    terminate = request({"type": "temporal-terminate-workflow", "workflow_id": workflow_id})
    assert "terminated" in await ActivityEnvironment().run(activities.terminate_workflow, terminate)
    again = await retried(ActivityEnvironment()).run(activities.terminate_workflow, terminate)
    assert "already terminated" in again
    with pytest.raises(ApplicationError, match="cannot terminate"):  # a new firing: a real error
        await ActivityEnvironment().run(activities.terminate_workflow, terminate)


async def test_an_inferred_target_is_acted_on_in_the_namespace_its_event_names(
    cluster: tuple[Client, TemporalActivities], receiver: Receiver, tmp_path: Path
) -> None:
    """Two namespaces of one cluster: the bridge watches both, and an action inferred from an
    event of "shop" acts in "shop" though the actions' default namespace is "default"."""
    default_client, activities = cluster
    shop = Client(default_client.service_client, namespace="shop")
    workflow_id = f"cart-{uuid.uuid4().hex[:6]}"
    bridge = TemporalBridge(
        default_client,
        ["default", "shop"],
        receiver.url,
        cursor_file=tmp_path / "c",
        poll_interval=0.2,
    )
    task = asyncio.create_task(bridge.run())
    try:
        handle = await shop.start_workflow("Nobody", id=workflow_id, task_queue="nowhere")
        for _ in range(300):
            started = [
                e
                for e in receiver.lifecycle_events()
                if e["resource"]["prefect.resource.name"] == workflow_id
            ]
            if started:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    (event,) = started
    assert event["resource"]["temporal.namespace"] == "shop"
    terminate = request(
        {"type": "temporal-terminate-workflow", "source": "inferred"}, EventIn.model_validate(event)
    )
    await ActivityEnvironment().run(activities.terminate_workflow, terminate)
    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.TERMINATED
