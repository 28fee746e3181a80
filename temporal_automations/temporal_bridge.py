"""`automations bridge temporal`: a Temporal cluster's workflow visibility in, our events out.

Every poll interval (default 1 s), for each watched namespace, two visibility queries over time
windows: `StartTime` in `[cursor - overlap, until)` gives `temporal.workflow.started`, and
`CloseTime` in the same kind of window gives the closing event named by the run's status
(`completed`, `failed`, `timed-out`, `canceled`, `terminated`, `continued-as-new`). The cost of a
poll follows what happened in its window, never the size of the cluster's history.

Exactly once, as the automations see it:
- each event's id is a UUID5 of namespace, workflow id, run id and what happened, so the same
  close read twice (the overlap re-reads the last seconds, for visibility's own delay; a restart
  repeats a poll) is the same event, which the bridge skips and the automations deduplicate;
- the cursor (per namespace: the window's end for starts and closes, and the ids emitted in the
  overlap) is written to a file atomically, only after our API accepted the events.

The bridge reports its lag with every POST (also an empty one when nothing happened): the header
`X-Events-Source` names it and `X-Events-Lag` says, in seconds, how far behind wall time the end of
its last fully delivered window is. That is the "how far its cursor is behind" that the events
clock holds proactive deadlines back for (docs/semantics.md).

Every few seconds (`health_interval`) it also describes the task queues it knows (those of the
workflows it saw, and any named) and lists the schedules: `temporal.task-queue.ready|not-ready`
when pollers appear or none was seen for `queue_not_ready_after`, `temporal.schedule.paused|
unpaused` when that changes. Their states are kept in the cursor and each event's id is derived
from the previous change's, so a change is sent once.

Everything read from the cluster is bounded: ids and names cut to label size, failure messages to
a few KB, rows per query capped (a window holding more is halved until it fits), task queues,
pollers and schedule pages capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import (
    HistoryEventFilterType,
    TaskQueueType,
    WorkflowExecutionStatus,
)
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    GetWorkflowExecutionHistoryRequest,
    ListSchedulesRequest,
    ListWorkflowExecutionsRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from temporal_automations.domain.events import MAX_LABEL_VALUE, RESOURCE_ID, RESOURCE_ROLE

log = logging.getLogger("automations.bridge.temporal")

SOURCE_HEADER = "X-Events-Source"
LAG_HEADER = "X-Events-Lag"

EVENT_IDS = uuid.UUID("6f0b8a52-3f51-4c43-9a57-7f1d3c3c9e11")  # the UUID5 namespace of our ids
CLOSED_EVENT = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: "completed",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED: "failed",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "timed-out",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: "canceled",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED: "terminated",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "continued-as-new",
}
PAGE_SIZE = 1000
MAX_ROWS_PER_WINDOW = 10_000  # more in one window: the window is halved
MIN_WINDOW = timedelta(milliseconds=1)
MAX_MESSAGE = 4000
MAX_TYPE = 256
MAX_CAUSES = 5
POST_BATCH = 200
DETAIL_CONCURRENCY = 16
KNOWN_RUNS = 100_000
MAX_QUEUES = 1000  # task queues watched per namespace
MAX_POLLERS = 1000
MAX_SCHEDULE_PAGES = 10
MAX_BACKOFF = 30.0
DELIVERY_GRACE = 10.0


def bounded(value: object, limit: int = MAX_LABEL_VALUE) -> str:
    """A string read from the cluster, cut to `limit` characters (hostile input)."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_id(namespace: str, workflow_id: str, run_id: str, what: str) -> str:
    return str(uuid.uuid5(EVENT_IDS, json.dumps([namespace, workflow_id, run_id, what])))


def rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------- the cursor


@dataclass
class NamespaceCursor:
    """Starts and closes before these instants have been delivered; `seen` are the ids emitted
    whose time lies within the overlap before them (id -> occurred, ISO)."""

    started_until: datetime
    closed_until: datetime
    seen: dict[str, str] = field(default_factory=dict)
    # Task queue -> [state, id of its last event]; schedule -> [paused, id of its last event].
    # The next event's id is derived from the last one, so a change is one id however often
    # it is re-sent, and two pauses of one schedule are two events.
    queues: dict[str, list[Any]] = field(default_factory=dict)
    schedules: dict[str, list[Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "started_until": self.started_until.isoformat(),
            "closed_until": self.closed_until.isoformat(),
            "seen": self.seen,
            "queues": self.queues,
            "schedules": self.schedules,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NamespaceCursor:
        return cls(
            started_until=datetime.fromisoformat(data["started_until"]),
            closed_until=datetime.fromisoformat(data["closed_until"]),
            seen=dict(data.get("seen") or {}),
            queues=dict(data.get("queues") or {}),
            schedules=dict(data.get("schedules") or {}),
        )

    def prune(self, overlap: timedelta) -> None:
        horizon = min(self.started_until, self.closed_until) - overlap
        self.seen = {
            id_: when for id_, when in self.seen.items() if datetime.fromisoformat(when) >= horizon
        }


class CursorError(RuntimeError):
    """The cursor file exists but cannot be read."""


class CursorFile:
    """The cursors of every namespace in one JSON file, replaced atomically."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> dict[str, NamespaceCursor]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            namespaces = data.get("namespaces", {})
            return {ns: NamespaceCursor.from_json(one) for ns, one in namespaces.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            # Starting over silently could resend hours of events, or skip them: refuse.
            raise CursorError(
                f"the bridge's cursor file {self.path} cannot be read ({error!r}); move it "
                "away to start from now"
            ) from error

    def save(self, cursors: dict[str, NamespaceCursor]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        body = {"version": 1, "namespaces": {ns: c.to_json() for ns, c in cursors.items()}}
        with temporary.open("w") as file:
            json.dump(body, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)


# --------------------------------------------------------------------------- events


def _one_failure(failure: Failure) -> dict[str, str]:
    if failure.HasField("application_failure_info"):
        kind = failure.application_failure_info.type or "Error"
    else:
        kind = (failure.WhichOneof("failure_info") or "unknown").removesuffix("_failure_info")
    return {"message": bounded(failure.message, MAX_MESSAGE), "type": bounded(kind, MAX_TYPE)}


def _failure(failure: Failure) -> dict[str, Any]:
    """The root cause's message and type (an activity's error rather than "Activity task
    failed"), and the chain from the workflow's own failure down, bounded."""
    chain, cause = [_one_failure(failure)], failure
    while cause.HasField("cause") and len(chain) < MAX_CAUSES:
        cause = cause.cause
        chain.append(_one_failure(cause))
    info: dict[str, Any] = dict(chain[-1])
    if len(chain) > 1:
        info["causes"] = chain
    return info


def close_details(close: HistoryEvent | None) -> dict[str, Any]:
    """What the close event says: the failure for failed runs, the reason for terminated ones,
    the new run for continue-as-new."""
    if close is None:
        return {}
    if close.HasField("workflow_execution_failed_event_attributes"):
        return {"failure": _failure(close.workflow_execution_failed_event_attributes.failure)}
    if close.HasField("workflow_execution_timed_out_event_attributes"):
        return {"failure": {"message": "the workflow timed out", "type": "TimeoutError"}}
    if close.HasField("workflow_execution_terminated_event_attributes"):
        attributes = close.workflow_execution_terminated_event_attributes
        return {"reason": bounded(attributes.reason, MAX_MESSAGE)}
    if close.HasField("workflow_execution_continued_as_new_event_attributes"):
        continued = close.workflow_execution_continued_as_new_event_attributes
        return {"new_run_id": bounded(continued.new_execution_run_id, 64)}
    return {}


def _search_attribute(info: WorkflowExecutionInfo, name: str) -> str | None:
    payload = info.search_attributes.indexed_fields.get(name)
    if payload is None:
        return None
    try:
        value = json.loads(payload.data[: MAX_LABEL_VALUE * 2])
    except ValueError:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    return bounded(value) if isinstance(value, str) and value else None


def workflow_event(
    namespace: str,
    info: WorkflowExecutionInfo,
    what: str,
    *,
    attempt: int | None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`temporal.workflow.<what>` in Prefect's event shape."""
    workflow_id = bounded(info.execution.workflow_id, MAX_LABEL_VALUE - 32)
    run_id = bounded(info.execution.run_id, 64)
    workflow_type = bounded(info.type.name, 1000)
    task_queue = bounded(info.task_queue, 1000)
    occurred = info.start_time if what == "started" else info.close_time
    resource = {
        RESOURCE_ID: f"temporal.workflow.{workflow_id}",
        "prefect.resource.name": workflow_id,
        "temporal.run-id": run_id,
        "temporal.namespace": bounded(namespace, 255),
        "temporal.workflow-type": workflow_type,
        "temporal.task-queue": task_queue,
        "temporal.attempt": str(attempt or 1),
    }
    related = [
        {
            RESOURCE_ID: f"temporal.workflow-type.{workflow_type}",
            RESOURCE_ROLE: "workflow-type",
            "prefect.resource.name": workflow_type,
        },
        {
            RESOURCE_ID: f"temporal.task-queue.{task_queue}",
            RESOURCE_ROLE: "task-queue",
            "prefect.resource.name": task_queue,
        },
        {
            RESOURCE_ID: f"temporal.namespace.{bounded(namespace, 255)}",
            RESOURCE_ROLE: "namespace",
            "prefect.resource.name": bounded(namespace, 255),
        },
    ]
    schedule = _search_attribute(info, "TemporalScheduledById")
    if schedule:
        related.append(
            {
                RESOURCE_ID: f"temporal.schedule.{bounded(schedule, MAX_LABEL_VALUE - 32)}",
                RESOURCE_ROLE: "schedule",
                "prefect.resource.name": schedule,
                "temporal.namespace": bounded(namespace, 255),
            }
        )
    if info.HasField("parent_execution") and info.parent_execution.workflow_id:
        parent = bounded(info.parent_execution.workflow_id, MAX_LABEL_VALUE - 32)
        related.append(
            {
                RESOURCE_ID: f"temporal.workflow.{parent}",
                RESOURCE_ROLE: "parent",
                "prefect.resource.name": parent,
                "temporal.run-id": bounded(info.parent_execution.run_id, 64),
            }
        )
    payload: dict[str, Any] = {"status": what}
    if what != "started" and info.HasField("execution_duration"):
        payload["duration_seconds"] = info.execution_duration.ToTimedelta().total_seconds()
    payload |= details or {}
    return {
        "id": event_id(namespace, info.execution.workflow_id, info.execution.run_id, what),
        "occurred": occurred.ToDatetime(tzinfo=UTC).isoformat(),
        "event": f"temporal.workflow.{what}",
        "resource": resource,
        "related": related,
        "payload": payload,
    }


def queue_event(
    namespace: str,
    queue: str,
    state: str,
    id_: str,
    last_poll: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    """`temporal.task-queue.ready|not-ready`: pollers present, or none for the set time."""
    namespace = bounded(namespace, 255)
    return {
        "id": id_,
        # Not-ready is when the last poller went silent (the same instant however late we look).
        "occurred": (last_poll if state == "not-ready" and last_poll else now).isoformat(),
        "event": f"temporal.task-queue.{state}",
        "resource": {
            RESOURCE_ID: f"temporal.task-queue.{bounded(queue, 1000)}",
            "prefect.resource.name": bounded(queue, 1000),
            "temporal.namespace": namespace,
        },
        "related": [
            {
                RESOURCE_ID: f"temporal.namespace.{namespace}",
                RESOURCE_ROLE: "namespace",
                "prefect.resource.name": namespace,
            }
        ],
        "payload": {"last_poll": last_poll.isoformat() if last_poll else None},
    }


def schedule_event(
    namespace: str,
    schedule_id: str,
    what: str,
    note: str,
    workflow_type: str,
    id_: str,
    now: datetime,
) -> dict[str, Any]:
    """`temporal.schedule.paused|unpaused`."""
    namespace = bounded(namespace, 255)
    related = [
        {
            RESOURCE_ID: f"temporal.namespace.{namespace}",
            RESOURCE_ROLE: "namespace",
            "prefect.resource.name": namespace,
        }
    ]
    if workflow_type:
        related.append(
            {
                RESOURCE_ID: f"temporal.workflow-type.{workflow_type}",
                RESOURCE_ROLE: "workflow-type",
                "prefect.resource.name": workflow_type,
            }
        )
    return {
        "id": id_,
        "occurred": now.isoformat(),
        "event": f"temporal.schedule.{what}",
        "resource": {
            RESOURCE_ID: f"temporal.schedule.{schedule_id}",
            "prefect.resource.name": schedule_id,
            "temporal.namespace": namespace,
        },
        "related": related,
        "payload": {"note": note},
    }


# --------------------------------------------------------------------------- the bridge


@dataclass
class PollResult:
    events: list[dict[str, Any]]
    started_until: datetime
    closed_until: datetime


class TemporalBridge:
    def __init__(
        self,
        client: Client,
        namespaces: Iterable[str],
        automations_api_url: str,
        *,
        automations_api_key: str | None = None,
        cursor_file: Path | None = None,
        poll_interval: float = 1.0,
        overlap: float = 10.0,
        start_from: datetime | None = None,
        exclude_types: Iterable[str] = (),
        task_queues: Iterable[str] = (),
        queue_not_ready_after: float = 60.0,
        health_interval: float = 5.0,
        watch_health: bool = True,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.namespaces = list(dict.fromkeys(namespaces)) or [client.namespace]
        self.events_url = automations_api_url.rstrip("/") + "/events"
        self.headers = (
            {"Authorization": f"Bearer {automations_api_key}"} if automations_api_key else {}
        )
        self.cursor_file = CursorFile(cursor_file)
        self.poll_interval = poll_interval
        self.overlap = timedelta(seconds=overlap)
        self.now = now
        # The engine's own workflows, when the bridge watches the engine's namespace.
        self.excluded = "".join(
            f" AND WorkflowType != {json.dumps(name)}" for name in sorted(set(exclude_types))
        )
        self.source = f"temporal-bridge:{','.join(self.namespaces)}"
        first = start_from or self.now()
        self.cursors = self.cursor_file.load()
        for namespace in self.namespaces:
            self.cursors.setdefault(namespace, NamespaceCursor(first, first))
        self.task_queues = list(task_queues)
        self.queue_not_ready_after = timedelta(seconds=queue_not_ready_after)
        self.health_interval = health_interval
        self.watch_health = watch_health
        self._health_checked = -float("inf")
        self._delivering: asyncio.Future[None] | None = None
        self._attempts: OrderedDict[str, int] = OrderedDict()
        self._details = asyncio.Semaphore(DETAIL_CONCURRENCY)
        self.emitted = 0
        self.refused = 0
        self.lag = 0.0

    async def run(self) -> None:
        """Poll until cancelled; a failure (cluster or API unreachable) is retried with
        backoff from the same cursor."""
        backoff = 0.5
        async with httpx.AsyncClient(timeout=30) as http:
            while True:
                started = time.monotonic()
                try:
                    caught_up = await self.poll_once(http)
                    backoff = 0.5
                except asyncio.CancelledError:
                    await self._finish_delivery()
                    raise
                except Exception as error:
                    log.warning("poll failed (%r); again in %.1fs", error, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                if caught_up:
                    elapsed = time.monotonic() - started
                    await asyncio.sleep(max(0.0, self.poll_interval - elapsed))

    async def _finish_delivery(self) -> None:
        """On a stop: let a delivery in flight (POST, then cursor) finish, for a while."""
        delivering = self._delivering
        if delivering is not None and not delivering.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(delivering, DELIVERY_GRACE)

    async def poll_once(self, http: httpx.AsyncClient) -> bool:
        """One poll of every namespace; True when every window reached the present."""
        caught_up = True
        for namespace in self.namespaces:
            cursor = self.cursors[namespace]
            result = await self._poll_namespace(namespace, cursor)
            fresh = [event for event in result.events if event["id"] not in cursor.seen]
            for event in fresh:  # the task queues it names are watched from now on
                queue = event["resource"].get("temporal.task-queue")
                if queue and queue not in cursor.queues and len(cursor.queues) < MAX_QUEUES:
                    cursor.queues[queue] = ["unknown", ""]
            health_events: list[dict[str, Any]] = []
            health_changes: list[tuple[dict[str, list[Any]], str, list[Any]]] = []
            if self.watch_health and time.monotonic() - self._health_checked >= (
                self.health_interval
            ):
                health_events, health_changes = await self._health(namespace, cursor)
            now = self.now()
            self.lag = max(
                0.0, (now - min(result.started_until, result.closed_until)).total_seconds()
            )

            async def deliver(
                cursor: NamespaceCursor = cursor,
                result: PollResult = result,
                fresh: list[dict[str, Any]] = fresh,
                health_events: list[dict[str, Any]] = health_events,
                health_changes: list[Any] = health_changes,
            ) -> None:
                await self._post(http, fresh + health_events)
                for states, key, state in health_changes:
                    states[key] = state
                for event in fresh:
                    cursor.seen[event["id"]] = event["occurred"]
                cursor.started_until = result.started_until
                cursor.closed_until = result.closed_until
                cursor.prune(self.overlap)
                self.cursor_file.save(self.cursors)
                self.emitted += len(fresh)

            # Sent and recorded together: a stop (SIGTERM) waits for both, so events that
            # reached the API are never sent again by the next run.
            self._delivering = asyncio.ensure_future(deliver())
            await asyncio.shield(self._delivering)
            if now - min(cursor.started_until, cursor.closed_until) > timedelta(
                seconds=self.poll_interval * 2
            ):
                caught_up = False
        if self.watch_health and time.monotonic() - self._health_checked >= self.health_interval:
            self._health_checked = time.monotonic()
        return caught_up

    # ------------------------------------------------------------ task queues and schedules

    async def _health(
        self, namespace: str, cursor: NamespaceCursor
    ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, list[Any]], str, list[Any]]]]:
        """Task queues that gained or lost their pollers, schedules paused or unpaused: the
        events, and the state changes to record once they are sent."""
        events: list[dict[str, Any]] = []
        changes: list[tuple[dict[str, list[Any]], str, list[Any]]] = []
        for queue in self.task_queues:
            cursor.queues.setdefault(queue, ["unknown", ""])
        now = self.now()
        for queue, (state, last_id) in list(cursor.queues.items()):
            newest = await self._newest_poll(namespace, queue)
            ready = newest is not None and now - newest < self.queue_not_ready_after
            new_state = "ready" if ready else "not-ready"
            if new_state == state:
                continue
            new_id = str(
                uuid.uuid5(EVENT_IDS, json.dumps([namespace, "queue", queue, new_state, last_id]))
            )
            events.append(queue_event(namespace, queue, new_state, new_id, newest, now))
            changes.append((cursor.queues, queue, [new_state, new_id]))
        async for schedule_id, paused, note, workflow_type in self._schedules(namespace):
            known = cursor.schedules.get(schedule_id)
            if known is None:  # first seen: its state is not a change
                changes.append((cursor.schedules, schedule_id, [paused, ""]))
                continue
            if bool(known[0]) == paused:
                continue
            what = "paused" if paused else "unpaused"
            new_id = str(
                uuid.uuid5(
                    EVENT_IDS, json.dumps([namespace, "schedule", schedule_id, what, known[1]])
                )
            )
            events.append(
                schedule_event(namespace, schedule_id, what, note, workflow_type, new_id, now)
            )
            changes.append((cursor.schedules, schedule_id, [paused, new_id]))
        return events, changes

    async def _newest_poll(self, namespace: str, queue: str) -> datetime | None:
        """When a worker last polled the queue (workflow or activity tasks), if ever."""
        newest: datetime | None = None
        for kind in (
            TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        ):
            try:
                answer = await self.client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind
                    )
                )
            except RPCError as error:
                log.debug("cannot describe task queue %s: %s", queue, error)
                continue
            for poller in answer.pollers[:MAX_POLLERS]:
                when = poller.last_access_time.ToDatetime(tzinfo=UTC)
                newest = when if newest is None else max(newest, when)
        return newest

    async def _schedules(self, namespace: str) -> AsyncIterator[tuple[str, bool, str, str]]:
        token, pages = b"", 0
        while pages < MAX_SCHEDULE_PAGES:
            answer = await self.client.workflow_service.list_schedules(
                ListSchedulesRequest(
                    namespace=namespace, maximum_page_size=PAGE_SIZE, next_page_token=token
                )
            )
            pages += 1
            for entry in answer.schedules:
                yield (
                    bounded(entry.schedule_id, MAX_LABEL_VALUE - 32),
                    bool(entry.info.paused),
                    bounded(entry.info.notes, MAX_MESSAGE),
                    bounded(entry.info.workflow_type.name, 1000),
                )
            token = answer.next_page_token
            if not token:
                return

    async def _poll_namespace(self, namespace: str, cursor: NamespaceCursor) -> PollResult:
        now = self.now()
        started_rows, started_until = await self._window(
            namespace, "StartTime", cursor.started_until, now
        )
        closed_rows, closed_until = await self._window(
            namespace, "CloseTime", cursor.closed_until, now
        )
        events = await asyncio.gather(
            *(self._started_event(namespace, info) for info in started_rows),
            *(self._closed_event(namespace, info) for info in closed_rows),
        )
        return PollResult(
            [event for event in events if event is not None], started_until, closed_until
        )

    async def _window(
        self, namespace: str, field_name: str, since: datetime, now: datetime
    ) -> tuple[list[WorkflowExecutionInfo], datetime]:
        """The rows of `[since - overlap, until)`, `until` being now unless the window holds
        more than MAX_ROWS_PER_WINDOW rows, in which case it is halved until it does not."""
        until = max(now, since)
        while True:
            rows = await self._list(namespace, field_name, since - self.overlap, until)
            if rows is not None:
                return rows, until
            half = (until - since) / 2
            if half < MIN_WINDOW:
                raise RuntimeError(f"more than {MAX_ROWS_PER_WINDOW} rows in 1 ms of {field_name}")
            until = since + half

    async def _list(
        self, namespace: str, field_name: str, since: datetime, until: datetime
    ) -> list[WorkflowExecutionInfo] | None:
        query = f'{field_name} >= "{rfc3339(since)}" AND {field_name} < "{rfc3339(until)}"'
        query += self.excluded
        rows: list[WorkflowExecutionInfo] = []
        token = b""
        service = self.client.workflow_service
        while True:
            page = await service.list_workflow_executions(
                ListWorkflowExecutionsRequest(
                    namespace=namespace, page_size=PAGE_SIZE, next_page_token=token, query=query
                )
            )
            rows.extend(page.executions)
            if len(rows) > MAX_ROWS_PER_WINDOW:
                return None
            token = page.next_page_token
            if not token:
                return rows

    async def _history_event(
        self, namespace: str, info: WorkflowExecutionInfo, close: bool
    ) -> HistoryEvent | None:
        """The run's first event (its attempt) or its close event (failure, reason)."""
        request = GetWorkflowExecutionHistoryRequest(
            namespace=namespace,
            execution=WorkflowExecution(
                workflow_id=info.execution.workflow_id, run_id=info.execution.run_id
            ),
            maximum_page_size=1,
            history_event_filter_type=(
                HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT
                if close
                else HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT
            ),
        )
        async with self._details:
            try:
                answer = await self.client.workflow_service.get_workflow_execution_history(request)
            except RPCError as error:  # deleted by retention meanwhile: emit without details
                log.debug("no history for %s: %s", info.execution.workflow_id, error)
                return None
        return answer.history.events[0] if answer.history.events else None

    async def _attempt(self, namespace: str, info: WorkflowExecutionInfo) -> int | None:
        run_id = info.execution.run_id
        known = self._attempts.get(run_id)
        if known is not None:
            return known
        if info.first_run_id and info.first_run_id == run_id:
            return 1  # the first run of its chain: no retry before it (and no history read)
        first = await self._history_event(namespace, info, close=False)
        if first is None or not first.HasField("workflow_execution_started_event_attributes"):
            return None
        attempt = int(first.workflow_execution_started_event_attributes.attempt) or 1
        self._attempts[run_id] = attempt
        while len(self._attempts) > KNOWN_RUNS:
            self._attempts.popitem(last=False)
        return attempt

    async def _started_event(
        self, namespace: str, info: WorkflowExecutionInfo
    ) -> dict[str, Any] | None:
        if event_id(namespace, info.execution.workflow_id, info.execution.run_id, "started") in (
            self.cursors[namespace].seen
        ):
            return None
        return workflow_event(
            namespace, info, "started", attempt=await self._attempt(namespace, info)
        )

    async def _closed_event(
        self, namespace: str, info: WorkflowExecutionInfo
    ) -> dict[str, Any] | None:
        what = CLOSED_EVENT.get(info.status)
        if what is None:
            return None
        if event_id(namespace, info.execution.workflow_id, info.execution.run_id, what) in (
            self.cursors[namespace].seen
        ):
            return None
        attempt = await self._attempt(namespace, info)
        details = {}
        if what in ("failed", "timed-out", "terminated", "continued-as-new"):
            details = close_details(await self._history_event(namespace, info, close=True))
        return workflow_event(namespace, info, what, attempt=attempt, details=details)

    async def _post(self, http: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
        """Send in order of occurrence, in batches; an empty poll still reports the lag."""
        headers = {**self.headers, SOURCE_HEADER: self.source, LAG_HEADER: f"{self.lag:.3f}"}
        events.sort(key=lambda event: event["occurred"])
        batches = [events[i : i + POST_BATCH] for i in range(0, len(events), POST_BATCH)] or [[]]
        for batch in batches:
            response = await http.post(self.events_url, json=batch, headers=headers)
            if _refused(response) and len(batch) > 1:
                # One event our API will never take must not hold back the others forever:
                # each is sent alone, and the one refused is logged and skipped.
                for event in batch:
                    alone = await http.post(self.events_url, json=[event], headers=headers)
                    if _refused(alone):
                        self.refused += 1
                        log.warning("event %s refused: %s", event["id"], alone.text[:300])
                    else:
                        alone.raise_for_status()
                continue
            if _refused(response):
                self.refused += 1
                log.warning("event refused: %s", response.text[:300])
                continue
            response.raise_for_status()  # unavailable: the cursor stays, the poll repeats


def _refused(response: httpx.Response) -> bool:
    """A 4xx that retrying cannot change (408 and 429 can)."""
    return 400 <= response.status_code < 500 and response.status_code not in (401, 403, 408, 429)


async def run_bridge(bridge: TemporalBridge) -> None:
    log.info(
        "watching namespaces %s every %.1fs -> %s",
        ", ".join(bridge.namespaces),
        bridge.poll_interval,
        bridge.events_url,
    )
    with contextlib.suppress(asyncio.CancelledError):
        await bridge.run()
