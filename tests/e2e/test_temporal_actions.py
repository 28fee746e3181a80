"""Temporal as the orchestrator, end to end, on two real dev servers: the engine's own (the
stack: worker and API) and the user's cluster, where a user's worker runs their workflows
(tests/temporal_user.py) and `automations bridge temporal` watches them. Each scenario fires an
automation whose Temporal action really changes the user's workflow or schedule."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError

from temporal_automations.devserver import DevServer, die_with_parent, stop_process
from tests.stack import ROOT, Stack, running_stack
from tests.support import Receiver, automation_status, eventually_async, send
from tests.temporal_user import Echo, Fails, FailsOnce, WaitsForSignal

TASK_QUEUE = "user-work"
CLOSED = [
    "temporal.workflow.completed",
    "temporal.workflow.failed",
    "temporal.workflow.timed-out",
    "temporal.workflow.canceled",
    "temporal.workflow.terminated",
]
T = TypeVar("T")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )


@pytest.fixture(scope="module")
def user_cluster() -> Iterator[DevServer]:
    """The user's own Temporal cluster, with the user's worker on it."""
    logs = Path(tempfile.mkdtemp(prefix="temporal-user-"))
    with DevServer(log_file=logs / "temporal.log") as server:
        worker = spawn(
            ["-m", "tests.temporal_user", server.address, TASK_QUEUE], {}, logs / "worker.log"
        )
        try:
            yield server
        finally:
            stop_process(worker)


@pytest.fixture(scope="module")
def stack(user_cluster: DevServer) -> Iterator[Stack]:
    """The engine (its own dev server), its Temporal actions pointed at the user's cluster, and
    the bridge watching that cluster, started as a user runs it: `automations bridge temporal`."""
    env = {"TARGET_TEMPORAL_ADDRESS": user_cluster.address}
    with running_stack(extra_env=env) as running:
        bridge = spawn(
            [
                *("-m", "temporal_automations.cli", "bridge", "temporal"),
                *("--poll-interval", "0.2", "--not-ready-after", "3"),
                *("--cursor-file", str(running.logs / "bridge-cursor.json")),
            ],
            running.env,
            running.logs / "bridge.log",
        )
        try:
            yield running
        finally:
            stop_process(bridge)


@pytest.fixture
async def user(user_cluster: DevServer) -> AsyncIterator[Client]:
    yield await Client.connect(user_cluster.address)


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/automations/", json={"name": f"temporal {uuid.uuid4()}", **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def until(check: Callable[[], Awaitable[T | None]], timeout: float = 90.0) -> T:
    """Await `check` until it answers; Temporal's RPCError (e.g. no such workflow yet) is "not
    yet" here too."""
    return await eventually_async(check, timeout, 0.2, not_yet=(AssertionError, RPCError))


def firings(api: httpx.Client, automation_id: str) -> list[dict[str, Any]]:
    return automation_status(api, automation_id)["stats"]["recent"]


async def action_done(api: httpx.Client, automation_id: str) -> list[dict[str, Any]]:
    async def done() -> list[dict[str, Any]] | None:
        recent = await asyncio.to_thread(firings, api, automation_id)
        actions = [a for f in recent for a in f["actions"]]
        finished = actions and all(a["status"] in ("executed", "failed") for a in actions)
        return actions if finished else None

    return await until(done)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- scenarios


async def test_a_failed_workflow_is_reset_and_its_new_run_completes(
    api: httpx.Client, user: Client, receiver: Receiver, tmp_path: Path
) -> None:
    workflow_id = unique("order")
    automation = create(
        api,
        trigger={
            "posture": "Reactive",
            "expect": ["temporal.workflow.failed"],
            "match": {"prefect.resource.id": f"temporal.workflow.{workflow_id}"},
        },
        actions=[
            {
                "type": "call-webhook",
                "url": f"{receiver.url}/alert",
                "payload": "{{ event.payload.failure.type }}: {{ event.payload.failure.message }}"
                " (attempt {{ event.resource['temporal.attempt'] }})",
            },
            {
                "type": "temporal-reset-workflow",
                "source": "inferred",
                "reset_to": "first-workflow-task",
            },
        ],
    )
    handle = await user.start_workflow(
        FailsOnce.run, str(tmp_path / "marker"), id=workflow_id, task_queue=TASK_QUEUE
    )
    failed_run = handle.first_execution_run_id

    async def completed_after_reset() -> bool:
        current = await user.get_workflow_handle(workflow_id).describe()
        return current.run_id != failed_run and current.status == WorkflowExecutionStatus.COMPLETED

    await until(completed_after_reset)
    assert await user.get_workflow_handle(workflow_id).result() == "done"
    actions = await action_done(api, automation["id"])
    assert [a["status"] for a in actions] == ["executed", "executed"], actions
    (alert,) = receiver.wait_for(1, "/alert")
    assert "DiskFull: the disk was full (attempt 1)" in alert.body.decode()
    described = await user.get_workflow_handle(workflow_id, run_id=failed_run).describe()
    assert described.status == WorkflowExecutionStatus.FAILED


async def test_a_timed_out_workflow_is_started_again_once_with_templated_id_and_args(
    api: httpx.Client, user: Client
) -> None:
    workflow_id = unique("report")
    create(
        api,
        trigger={
            "posture": "Reactive",
            "expect": ["temporal.workflow.timed-out"],
            "match": {"prefect.resource.id": f"temporal.workflow.{workflow_id}"},
        },
        actions=[
            {
                "type": "temporal-start-workflow",
                "workflow_type": "Echo",
                "task_queue": TASK_QUEUE,
                "workflow_id": "{{ event.resource['prefect.resource.name'] }}-again",
                "args": ["retry of {{ event.resource['prefect.resource.name'] }}"],
            }
        ],
    )
    await user.start_workflow(
        WaitsForSignal.run,
        id=workflow_id,
        task_queue=TASK_QUEUE,
        execution_timeout=timedelta(seconds=2),
    )
    rerun = user.get_workflow_handle(f"{workflow_id}-again")
    assert await until(rerun.result) == f"retry of {workflow_id}"
    runs = [e async for e in user.list_workflows(f'WorkflowId = "{workflow_id}-again"')]
    assert len(runs) == 1


async def test_a_workflow_running_too_long_is_signalled_and_one_that_finished_is_not(
    api: httpx.Client, user: Client
) -> None:
    prefix = unique("batch")
    automation = create(
        api,
        trigger={
            "posture": "Proactive",
            "after": ["temporal.workflow.started"],
            "expect": CLOSED,
            "for_each": ["prefect.resource.id"],
            "match": {"prefect.resource.id": f"temporal.workflow.{prefix}-*"},
            "within": 10,
        },
        actions=[
            {
                "type": "temporal-signal-workflow",
                "source": "inferred",
                "signal": "finish",
                "args": ["rescued by {{ automation.name }}"],
            }
        ],
    )
    stuck = await user.start_workflow(
        WaitsForSignal.run, id=f"{prefix}-stuck", task_queue=TASK_QUEUE
    )
    healthy = await user.start_workflow(
        WaitsForSignal.run, id=f"{prefix}-healthy", task_queue=TASK_QUEUE
    )
    await healthy.signal(WaitsForSignal.finish, "finished by itself")
    assert await until(stuck.result, timeout=120) == f"rescued by {automation['name']}"
    assert await healthy.result() == "finished by itself"
    actions = await action_done(api, automation["id"])
    assert [a["status"] for a in actions] == ["executed"]
    # Fired once, for the stuck run (which resolves once the signal has closed it).
    triggered = [f for f in firings(api, automation["id"]) if f["state"] == "triggered"]
    assert [f["labels"] for f in triggered] == [
        {"prefect.resource.id": f"temporal.workflow.{prefix}-stuck"}
    ]


async def test_workflows_of_a_forbidden_kind_are_terminated_or_cancelled_as_they_start(
    api: httpx.Client, user: Client
) -> None:
    prefix = unique("rogue")
    for kind, action in (
        ("terminate", {"reason": "{{ event.resource['temporal.workflow-type'] }} is forbidden"}),
        ("cancel", {}),
    ):
        create(
            api,
            trigger={
                "posture": "Reactive",
                "expect": ["temporal.workflow.started"],
                "match": {"prefect.resource.id": f"temporal.workflow.{prefix}-{kind}-*"},
            },
            actions=[{"type": f"temporal-{kind}-workflow", "source": "inferred", **action}],
        )
    terminated = await user.start_workflow(
        WaitsForSignal.run, id=f"{prefix}-terminate-1", task_queue=TASK_QUEUE
    )
    cancelled = await user.start_workflow(
        WaitsForSignal.run, id=f"{prefix}-cancel-1", task_queue=TASK_QUEUE
    )

    async def status(handle: Any, wanted: WorkflowExecutionStatus) -> Any:
        described = await handle.describe()
        return described if described.status == wanted else None

    await until(lambda: status(terminated, WorkflowExecutionStatus.TERMINATED))
    await until(lambda: status(cancelled, WorkflowExecutionStatus.CANCELED))
    history = await terminated.fetch_history()
    close = history.events[-1].workflow_execution_terminated_event_attributes
    assert close.reason == "WaitsForSignal is forbidden"


async def test_a_schedule_whose_runs_fail_three_times_in_ten_minutes_is_paused(
    api: httpx.Client, user: Client
) -> None:
    schedule_id = unique("nightly")
    automation = create(
        api,
        trigger={
            "posture": "Reactive",
            "expect": ["temporal.workflow.failed"],
            "match_related": {
                "prefect.resource.role": "schedule",
                "prefect.resource.id": f"temporal.schedule.{schedule_id}",
            },
            "for_each": ["related:schedule:prefect.resource.id"],
            "threshold": 3,
            "within": 600,
        },
        actions=[
            {
                "type": "temporal-pause-schedule",
                "source": "inferred",
                "note": "paused by {{ automation.name }} after {{ firing.count }} failures",
            }
        ],
    )
    schedule = await user.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                Fails.run, id=f"{schedule_id}-run", task_queue=TASK_QUEUE
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))]),
        ),
    )
    try:

        async def paused() -> Any:
            described = await schedule.describe()
            return described if described.schedule.state.paused else None

        described = await until(paused)
        assert described.schedule.state.note.startswith(f"paused by {automation['name']}")
        actions = await action_done(api, automation["id"])
        assert [a["status"] for a in actions] == ["executed"]
    finally:
        await schedule.delete()


async def test_a_paused_schedule_is_triggered_once_by_a_selected_action(
    api: httpx.Client, user: Client
) -> None:
    schedule_id = unique("on-demand")
    name = unique("ops.run-now")
    schedule = await user.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                Echo.run, "scheduled", id=f"{schedule_id}-run", task_queue=TASK_QUEUE
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
        ),
    )
    await schedule.pause(note="manual only")
    try:
        automation = create(
            api,
            trigger={"posture": "Reactive", "expect": [name]},
            actions=[{"type": "temporal-trigger-schedule", "schedule_id": schedule_id}],
        )
        send(api, {"event": name, "resource": {"prefect.resource.id": "ops.console"}})
        actions = await action_done(api, automation["id"])
        assert [a["status"] for a in actions] == ["executed"]

        async def ran() -> Any:
            described = await schedule.describe()
            return described if described.info.num_actions == 1 else None

        await until(ran)
    finally:
        await schedule.delete()


async def test_an_action_on_a_workflow_that_is_gone_fails_with_a_reason(
    api: httpx.Client,
) -> None:
    name = unique("ops.cleanup")
    automation = create(
        api,
        trigger={"posture": "Reactive", "expect": [name]},
        actions=[
            {"type": "temporal-cancel-workflow", "workflow_id": "no-such-workflow"},
            {"type": "temporal-pause-schedule", "source": "inferred"},
        ],
    )
    send(api, {"event": name, "resource": {"prefect.resource.id": "ops.console"}})
    actions = await action_done(api, automation["id"])
    assert [a["status"] for a in actions] == ["failed", "failed"], actions
    assert "workflow 'no-such-workflow'" in actions[0]["detail"]
    assert "not found" in actions[0]["detail"]
    assert "no 'temporal.schedule.<id>' resource" in actions[1]["detail"]


async def test_a_task_queue_losing_its_worker_pauses_the_schedule_that_feeds_it(
    api: httpx.Client, user: Client, user_cluster: DevServer, tmp_path: Path
) -> None:
    queue = unique("exports")
    schedule_id = unique("exports-schedule")
    schedule = await user.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                Echo.run, "export", id=f"{schedule_id}-run", task_queue=queue
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
        ),
    )
    automation = create(
        api,
        trigger={
            "posture": "Reactive",
            "expect": ["temporal.task-queue.not-ready"],
            "match": {"prefect.resource.id": f"temporal.task-queue.{queue}"},
        },
        actions=[
            {
                "type": "temporal-pause-schedule",
                "schedule_id": schedule_id,
                "note": "{{ event.resource['prefect.resource.name'] }} has no worker",
            }
        ],
    )
    worker = spawn(
        ["-m", "tests.temporal_user", user_cluster.address, queue], {}, tmp_path / "worker.log"
    )
    try:
        # A run on the queue makes the bridge watch it; then its only worker goes away.
        assert (
            await user.execute_workflow(Echo.run, "x", id=unique("probe"), task_queue=queue) == "x"
        )
    finally:
        stop_process(worker)
    try:

        async def paused() -> Any:
            described = await schedule.describe()
            return described if described.schedule.state.paused else None

        described = await until(paused, timeout=120)
        assert described.schedule.state.note == f"{queue} has no worker"
        actions = await action_done(api, automation["id"])
        assert [a["status"] for a in actions] == ["executed"]
    finally:
        await schedule.delete()
