"""The Temporal actions' models and targets (no server), and their activities' idempotency
against a real dev server: a retried action acts once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
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
from temporal_automations.activities.requests import (
    ACTIVITY_FOR_ACTION,
    ActionRequest,
    AutomationSummary,
)
from temporal_automations.activities.temporal_actions import (
    Target,
    TemporalActivities,
    resolve_target,
)
from temporal_automations.devserver import DevServer
from temporal_automations.domain.automations import TEMPORAL_ACTIONS, Automation
from temporal_automations.domain.evaluation import Firing
from temporal_automations.domain.events import EventIn
from temporal_automations.domain.inputs import AutomationCore
from temporal_automations.settings import Settings, TemporalConnection
from temporal_automations.temporal_bridge import TemporalBridge
from tests.support import Receiver, make_event
from tests.temporal_user import ACTIVITIES, WORKFLOWS, Echo, WaitsForSignal

TRIGGER = {"posture": "Reactive", "expect": ["temporal.workflow.failed"]}


def core(*actions: dict[str, Any]) -> AutomationCore:
    return AutomationCore.model_validate({"name": "t", "trigger": TRIGGER, "actions": actions})


def test_every_temporal_action_has_an_activity_and_reads_back_as_stored() -> None:
    assert {cls.model_fields["type"].default for cls in TEMPORAL_ACTIONS} <= set(
        ACTIVITY_FOR_ACTION
    )
    made = core(
        {"type": "temporal-cancel-workflow", "source": "inferred"},
        {"type": "temporal-terminate-workflow", "workflow_id": "w", "reason": "r"},
        {"type": "temporal-signal-workflow", "workflow_id": "w", "signal": "s", "args": [1]},
        {"type": "temporal-start-workflow", "workflow_type": "T", "task_queue": "q"},
        {
            "type": "temporal-reset-workflow",
            "source": "inferred",
            "reset_to": "first-workflow-task",
        },
        {"type": "temporal-pause-schedule", "schedule_id": "s"},
        {"type": "temporal-unpause-schedule", "source": "inferred"},
        {"type": "temporal-trigger-schedule", "schedule_id": "s", "namespace": "other"},
    )
    now = datetime.now(UTC)
    stored = made.to_automation(uuid.uuid4(), now, now)
    again = Automation.model_validate_json(stored.model_dump_json())
    assert again == stored
    assert [type(a).__name__ for a in again.actions] == [
        c.__name__ for c in TEMPORAL_ACTIONS[:2]
    ] + [
        "TemporalSignalWorkflow",
        "TemporalStartWorkflow",
        "TemporalResetWorkflow",
        "TemporalPauseSchedule",
        "TemporalUnpauseSchedule",
        "TemporalTriggerSchedule",
    ]


@pytest.mark.parametrize(
    ("action", "complaint"),
    [
        ({"type": "temporal-cancel-workflow"}, "workflow_id is required"),
        (
            {"type": "temporal-cancel-workflow", "source": "inferred", "workflow_id": "w"},
            "not allowed",
        ),
        (
            {"type": "temporal-cancel-workflow", "source": "inferred", "run_id": "r"},
            "run_id is not allowed",
        ),
        ({"type": "temporal-pause-schedule"}, "schedule_id is required"),
        ({"type": "temporal-cancel-workflow", "workflow_id": "w" * 1001}, "at most 1000"),
        ({"type": "temporal-signal-workflow", "workflow_id": "w", "signal": ""}, "at least 1"),
        (
            {
                "type": "temporal-signal-workflow",
                "workflow_id": "w",
                "signal": "s",
                "args": ["x" * 70_000],
            },
            "64000 bytes",
        ),
        ({"type": "temporal-start-workflow", "workflow_type": "T"}, "task_queue"),
        (
            {
                "type": "temporal-start-workflow",
                "workflow_type": "T",
                "task_queue": "q",
                "execution_timeout": 0,
            },
            "greater than 0",
        ),
        ({"type": "temporal-reset-workflow", "workflow_id": "w", "reset_to": "middle"}, "reset_to"),
        ({"type": "temporal-cancel-workflow", "workflow_id": "w", "surprise": 1}, "Extra inputs"),
    ],
)
def test_the_edge_refuses_bad_temporal_actions(action: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError) as refused:
        core(action)
    assert complaint in str(refused.value)


def request(
    action: dict[str, Any], event: Any = None, labels: dict[str, str] | None = None
) -> ActionRequest:
    stored = core(action).to_automation(uuid.uuid4(), datetime.now(UTC), datetime.now(UTC))
    firing = Firing(
        state="triggered", key="k", labels=labels or {}, event=event, occurred=datetime.now(UTC)
    )
    return ActionRequest(
        automation=AutomationSummary.of(stored),
        action=stored.actions[0],
        action_index=0,
        firing=firing,
        firing_id=uuid.uuid4(),
    )


def test_targets_are_inferred_from_the_resource_then_related_then_the_key() -> None:
    event = make_event(
        "temporal.workflow.failed",
        "temporal.workflow.order-7",
        related=[
            {
                "prefect.resource.id": "temporal.schedule.nightly",
                "prefect.resource.role": "schedule",
                "temporal.namespace": "shop",
            }
        ],
        **{"temporal.namespace": "shop", "temporal.run-id": "run-1"},
    )
    cancel = request({"type": "temporal-cancel-workflow", "source": "inferred"}, event)
    assert resolve_target(cancel.action, cancel, "default") == Target("order-7", "shop", "")  # type: ignore[arg-type]
    reset = request({"type": "temporal-reset-workflow", "source": "inferred"}, event)
    assert resolve_target(reset.action, reset, "default").run_id == "run-1"  # type: ignore[arg-type]
    pause = request({"type": "temporal-pause-schedule", "source": "inferred"}, event)
    target = resolve_target(pause.action, pause, "default")  # type: ignore[arg-type]
    assert (target.id, target.namespace) == ("nightly", "shop")
    keyed = request(
        {"type": "temporal-cancel-workflow", "source": "inferred"},
        None,
        {"prefect.resource.id": "temporal.workflow.stuck-1"},
    )
    assert resolve_target(keyed.action, keyed, "users").id == "stuck-1"  # type: ignore[arg-type]
    chosen = request(
        {"type": "temporal-cancel-workflow", "workflow_id": "w", "namespace": "x"}, event
    )
    assert resolve_target(chosen.action, chosen, "default").namespace == "x"  # type: ignore[arg-type]


def test_the_target_cluster_defaults_to_the_engines_and_can_differ() -> None:
    same = Settings(temporal_address="a:1", temporal_namespace="engine")
    assert same.target_connection() == same.engine_connection()
    other = Settings(
        temporal_address="a:1",
        target_temporal_address="b:2",
        target_temporal_namespace="users",
        target_temporal_api_key="k",
    )
    target = other.target_connection()
    assert (target.address, target.namespace, target.uses_tls) == ("b:2", "users", True)
    assert not other.engine_connection().uses_tls


# --------------------------------------------------------------------------- a real cluster


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
