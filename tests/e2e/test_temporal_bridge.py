"""The Temporal bridge against a real dev server (the user's cluster), its events received by a
real HTTP server standing in for our API's /events (the Receiver records every POST)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.history.v1 import HistoryEvent, WorkflowExecutionFailedEventAttributes
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowFailureError,
)
from temporalio.worker import Worker

from temporal_automations.devserver import DevServer
from temporal_automations.domain.events import MAX_LABEL_VALUE, EventIn
from temporal_automations.temporal_bridge import (
    LAG_HEADER,
    SOURCE_HEADER,
    CursorError,
    CursorFile,
    NamespaceCursor,
    TemporalBridge,
    close_details,
    event_id,
    workflow_event,
)
from tests.support import Receiver, eventually_async
from tests.temporal_user import ACTIVITIES, WORKFLOWS, Echo, Fails, WaitsForSignal

# --------------------------------------------------------------------------- without a server


def test_hostile_visibility_rows_make_bounded_valid_events() -> None:
    info = WorkflowExecutionInfo()
    info.execution.workflow_id = "w" * 1_000_000
    info.execution.run_id = "r" * 100_000
    info.type.name = "T" * 100_000
    info.task_queue = "q" * 100_000
    info.start_time.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    info.close_time.FromDatetime(datetime(2026, 1, 1, 0, 5, tzinfo=UTC))
    info.parent_execution.workflow_id = "p" * 1_000_000
    failure = Failure(
        message="m" * 1_000_000,
        application_failure_info=ApplicationFailureInfo(type="E" * 100_000),
    )
    inner = failure
    for _ in range(60):  # a deep cause chain (protobuf itself refuses beyond ~100)
        inner.cause.message = "c" * 10_000
        inner = inner.cause
    close = HistoryEvent(
        workflow_execution_failed_event_attributes=WorkflowExecutionFailedEventAttributes(
            failure=failure
        )
    )
    event = workflow_event("default", info, "failed", attempt=3, details=close_details(close))
    parsed = EventIn.model_validate(event)  # what our API takes: every bound holds
    assert all(len(value) <= MAX_LABEL_VALUE for value in parsed.resource.values())
    assert len(event["payload"]["failure"]["message"]) <= 4000
    assert len(event["payload"]["failure"]["type"]) <= 256
    assert len(event["payload"]["failure"]["causes"]) == 5
    assert parsed.resource["temporal.attempt"] == "3"
    assert [r["prefect.resource.role"] for r in event["related"]] == [
        "workflow-type",
        "task-queue",
        "namespace",
        "parent",
    ]


def test_event_ids_are_deterministic_and_distinct_per_run_and_kind() -> None:
    one = event_id("default", "order-1", "run-a", "failed")
    assert one == event_id("default", "order-1", "run-a", "failed")
    others = [event_id("default", "order-1", "run-b", "failed")]
    others.append(event_id("default", "order-1", "run-a", "started"))
    assert len({one, *others}) == 3
    assert event_id("other", "order-1", "run-a", "failed") != one


def test_a_damaged_cursor_file_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "cursor.json"
    for damaged in ("{not json", '{"namespaces": {"default": {"started_until": 5}}}'):
        path.write_text(damaged)
        with pytest.raises(CursorError, match="move it away"):
            CursorFile(path).load()


def test_the_cursor_survives_a_round_trip(tmp_path: Path) -> None:
    file = CursorFile(tmp_path / "cursor.json")
    now = datetime(2026, 12, 5, tzinfo=UTC)
    cursor = NamespaceCursor(now, now - timedelta(seconds=1), {"x": now.isoformat()})
    file.save({"default": cursor})
    assert file.load()["default"] == cursor


# --------------------------------------------------------------------------- a real cluster


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Client]:
    with DevServer() as server:
        client = await Client.connect(server.address)
        task_queue = "user-work"
        async with Worker(
            client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES
        ):
            yield client


@contextlib.asynccontextmanager
async def bridge_running(bridge: TemporalBridge) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(bridge.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def received(receiver: Receiver) -> list[dict[str, Any]]:
    return receiver.lifecycle_events()


async def wait_until(check: Any, timeout: float = 60.0, poll: float = 0.05) -> None:
    await eventually_async(check, timeout, poll)


async def test_failed_and_completed_workflows_become_events_with_labels_and_failure(
    cluster: Client, receiver: Receiver, tmp_path: Path
) -> None:
    prefix = f"b-{uuid.uuid4().hex[:6]}"
    bridge = TemporalBridge(
        cluster, ["default"], receiver.url, cursor_file=tmp_path / "c.json", poll_interval=0.2
    )
    async with bridge_running(bridge):
        with pytest.raises(WorkflowFailureError):
            await cluster.execute_workflow(Fails.run, id=f"{prefix}-fails", task_queue="user-work")
        await cluster.execute_workflow(Echo.run, "hi", id=f"{prefix}-echo", task_queue="user-work")

        def names() -> set[tuple[str, str]]:
            return {
                (e["resource"]["prefect.resource.name"], e["event"])
                for e in received(receiver)
                if e["resource"]["prefect.resource.name"].startswith(prefix)
            }

        wanted = {
            (f"{prefix}-fails", "temporal.workflow.started"),
            (f"{prefix}-fails", "temporal.workflow.failed"),
            (f"{prefix}-echo", "temporal.workflow.started"),
            (f"{prefix}-echo", "temporal.workflow.completed"),
        }
        await wait_until(lambda: names() >= wanted)
    (failed,) = [
        e
        for e in received(receiver)
        if e["event"] == "temporal.workflow.failed"
        and e["resource"]["prefect.resource.name"] == f"{prefix}-fails"
    ]
    assert failed["resource"]["prefect.resource.id"] == f"temporal.workflow.{prefix}-fails"
    assert failed["resource"]["temporal.namespace"] == "default"
    assert failed["resource"]["temporal.workflow-type"] == "Fails"
    assert failed["resource"]["temporal.task-queue"] == "user-work"
    assert failed["resource"]["temporal.attempt"] == "1"
    assert failed["resource"]["temporal.run-id"]
    assert failed["payload"]["failure"] == {"message": "nothing works today", "type": "Broken"}
    roles = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in failed["related"]}
    assert roles == {
        "workflow-type": "temporal.workflow-type.Fails",
        "task-queue": "temporal.task-queue.user-work",
        "namespace": "temporal.namespace.default",
    }
    EventIn.model_validate(failed)
    posts = [r for r in receiver.requests_snapshot() if r.path == "/events"]
    assert all(SOURCE_HEADER in r.headers and LAG_HEADER in r.headers for r in posts)
    assert all(0 <= float(r.headers[LAG_HEADER]) < 60 for r in posts)


async def test_a_restarted_bridge_loses_no_event_and_repeats_none(
    cluster: Client, receiver: Receiver, tmp_path: Path
) -> None:
    """Workflows keep starting and closing while the bridge is stopped in the middle of the
    stream and started again from its cursor file."""
    prefix = f"r-{uuid.uuid4().hex[:6]}"
    cursor = tmp_path / "cursor.json"
    count = 40
    handles = []

    async def produce() -> None:
        for index in range(count):
            handle = await cluster.start_workflow(
                WaitsForSignal.run, id=f"{prefix}-{index}", task_queue="user-work"
            )
            handles.append(handle)
            if index % 2:  # half of them close at once, half later
                await handle.signal(WaitsForSignal.finish, "done")
            await asyncio.sleep(0.05)
        for index, handle in enumerate(handles):
            if not index % 2:
                await handle.signal(WaitsForSignal.finish, "done")

    def ours() -> list[dict[str, Any]]:
        return [
            e
            for e in received(receiver)
            if e["resource"]["prefect.resource.name"].startswith(prefix)
        ]

    first = TemporalBridge(
        cluster, ["default"], receiver.url, cursor_file=cursor, poll_interval=0.2
    )
    producer = asyncio.create_task(produce())
    async with bridge_running(first):
        await wait_until(lambda: len(ours()) >= 10)
        # Stopped (as SIGTERM stops `automations bridge temporal`) while a POST is in flight.
        await wait_until(
            lambda: first._delivering is not None and not first._delivering.done(), poll=0.001
        )
    stopped_with = len(ours())
    second = TemporalBridge(
        cluster, ["default"], receiver.url, cursor_file=cursor, poll_interval=0.2
    )
    await producer  # the rest starts and closes while no bridge runs
    async with bridge_running(second):
        await wait_until(lambda: len({e["id"] for e in ours()}) >= 2 * count)
        # Nothing else may arrive: a repeat would come from a later poll re-reading its overlap
        # window. Two more workflows (not ours()), each seen in turn, are two such polls.
        for marker in range(2):
            name = f"marker-{prefix}-{marker}"
            await cluster.start_workflow(WaitsForSignal.run, id=name, task_queue="user-work")
            await wait_until(
                lambda name=name: any(
                    e["resource"]["prefect.resource.name"] == name for e in received(receiver)
                )
            )
    events = ours()
    assert stopped_with < 2 * count  # the restart was in the middle of the stream
    per_id = Counter(e["id"] for e in events)
    assert max(per_id.values()) == 1, [i for i, n in per_id.items() if n > 1]
    kinds = Counter((e["resource"]["prefect.resource.name"], e["event"]) for e in events)
    assert set(kinds) == {
        (f"{prefix}-{index}", f"temporal.workflow.{what}")
        for index in range(count)
        for what in ("started", "completed")
    }
    assert all(n == 1 for n in kinds.values())


async def test_a_task_queue_losing_its_worker_and_a_paused_schedule_become_events(
    cluster: Client, receiver: Receiver, tmp_path: Path
) -> None:
    queue = f"tq-{uuid.uuid4().hex[:6]}"
    schedule_id = f"s-{uuid.uuid4().hex[:6]}"
    bridge = TemporalBridge(
        cluster,
        ["default"],
        receiver.url,
        cursor_file=tmp_path / "c.json",
        poll_interval=0.2,
        task_queues=[queue],
        queue_not_ready_after=2,
        health_interval=0.2,
    )

    def named(*names: str) -> list[dict[str, Any]]:
        """Events of these names about this test's queue or schedule (the cluster holds other
        tests' task queues too, which the bridge watches as well)."""
        ours = {f"temporal.task-queue.{queue}", f"temporal.schedule.{schedule_id}"}
        return [
            e
            for e in received(receiver)
            if e["event"] in names and e["resource"]["prefect.resource.id"] in ours
        ]

    schedule = await cluster.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                Echo.run, "x", id=f"{schedule_id}-run", task_queue=queue
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
        ),
    )
    async with bridge_running(bridge):
        async with Worker(cluster, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
            await wait_until(lambda: named("temporal.task-queue.ready"))
            await schedule.pause(note="maintenance")
            await wait_until(lambda: named("temporal.schedule.paused"))
        # The worker is gone: no poller for 2 s makes the queue not-ready.
        await wait_until(lambda: named("temporal.task-queue.not-ready"))
        await schedule.unpause(note="back")
        await wait_until(lambda: named("temporal.schedule.unpaused"))
    await schedule.delete()
    # A loaded machine may see the queue flap (a poll later than the 2 s threshold): what
    # matters is that it was ready with the worker, and that the last word, once it left, is
    # not-ready (dated at its last poll).
    readiness = named("temporal.task-queue.ready", "temporal.task-queue.not-ready")
    kinds = [e["event"] for e in readiness]
    assert "temporal.task-queue.ready" in kinds, kinds
    ready = readiness[kinds.index("temporal.task-queue.ready")]
    not_ready = readiness[-1]
    assert not_ready["event"] == "temporal.task-queue.not-ready", kinds
    assert ready["resource"]["prefect.resource.id"] == f"temporal.task-queue.{queue}"
    assert not_ready["occurred"] == not_ready["payload"]["last_poll"]
    (paused,) = named("temporal.schedule.paused")
    assert paused["resource"]["prefect.resource.id"] == f"temporal.schedule.{schedule_id}"
    assert paused["payload"]["note"] == "maintenance"
    assert [e["payload"]["note"] for e in named("temporal.schedule.unpaused")] == ["back"]
    for event in (ready, not_ready, paused):
        EventIn.model_validate(event)


async def test_a_first_start_with_backfill_sends_runs_that_began_before_it(
    cluster: Client, receiver: Receiver, tmp_path: Path
) -> None:
    workflow_id = f"early-{uuid.uuid4().hex[:6]}"
    await cluster.start_workflow(WaitsForSignal.run, id=workflow_id, task_queue="user-work")
    late = TemporalBridge(
        cluster,
        ["default"],
        receiver.url,
        cursor_file=tmp_path / "c.json",
        poll_interval=0.2,
        overlap=0,  # so only the backfill can reach back to the run's start
        start_from=datetime.now(UTC) - timedelta(minutes=5),
    )

    def started() -> list[dict[str, Any]]:
        return [
            e
            for e in received(receiver)
            if e["resource"]["prefect.resource.name"] == workflow_id
            and e["event"] == "temporal.workflow.started"
        ]

    async with bridge_running(late):
        await wait_until(started)
    await cluster.get_workflow_handle(workflow_id).terminate()


async def test_an_event_our_api_refuses_does_not_hold_back_the_others(
    cluster: Client, receiver: Receiver, tmp_path: Path
) -> None:
    prefix = f"refused-{uuid.uuid4().hex[:6]}"
    bridge = TemporalBridge(
        cluster, ["default"], receiver.url, cursor_file=tmp_path / "c.json", poll_interval=0.2
    )
    for index in range(3):
        await cluster.execute_workflow(
            Echo.run, "x", id=f"{prefix}-{index}", task_queue="user-work"
        )
    # The first batch (all of them) and the first event sent alone are refused with a 422.
    receiver.fail_next(422, times=2, path="/events")
    async with bridge_running(bridge):

        def ours() -> set[str]:
            return {
                e["id"]
                for e in received(receiver)
                if e["resource"]["prefect.resource.name"].startswith(prefix)
            }

        await wait_until(lambda: len(ours()) >= 5)
    assert bridge.refused == 1
