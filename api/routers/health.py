"""/api/health: are automations being evaluated right now?

Workers. The task queue's poller list cannot say so in time: the server remembers a poller for
about 5 minutes after it last polled (a SIGKILLed worker stayed "present" ~300 s), and an idle
live worker's long poll is up to ~60 s old, so no age threshold tells dead from idle within 5 s.
What does: ask a worker something. We send the SDK's built-in `__temporal_workflow_metadata`
query (read-only, no code of ours runs) to up to 3 running automation workflows at once. A live
worker answers in milliseconds, idle or not; with no worker the query finds no poller and times
out (`health_probe_timeout`, 2 s). Any answer from a worker, even a failed query, proves one
alive. A query the server refuses itself (the workflow is wedged or gone) proves nothing, so
that target is swapped for another. A query also waits behind a workflow task a worker holds
(a slow webhook runs as a local activity inside one), so silence counts as death only for a
workflow with no task in flight (one DescribeWorkflowExecution, only when silent); if every
workflow asked is mid-task, a worker started those tasks within the task timeout: alive
(`worker_check: "busy"`). With no automation to ask, the poller list is all there is
(`worker_check: "pollers"`, which may lag by minutes).

Wedged automations. The server marks a workflow whose workflow task failed or timed out several
times in a row with the `TemporalReportedProblems` search attribute (server 1.30+; the dev
server we start flags it after 2, see devserver.py) and clears it after a task succeeds. One
visibility query, bounded to `WEDGED_LIMIT` ids, finds them however many automations there are.
A wedged automation keeps /api/health at 200 ("degraded"): the service works and restarting it
would not help; the list says which automations need attention. No worker, or no Temporal: 503.

Answers are cached for `health_cache_seconds` (1 s), and concurrent checks share one probe, so
a busy load balancer costs Temporal at most one round of these calls a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import (
    EventType,
    PendingWorkflowTaskState,
    TaskQueueType,
    TimeoutType,
    WorkflowExecutionStatus,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse,
    GetWorkflowExecutionHistoryReverseRequest,
)
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations.api.store import AutomationNotFound
from temporal_automations.settings import Settings
from temporal_automations.temporal import WORKFLOW_TYPE, automation_id_of, workflow_id

log = logging.getLogger("automations.api")

router = APIRouter(tags=["health"])

PROBE_QUERY = "__temporal_workflow_metadata"  # answered by every SDK worker, no user code runs
PROBE_TARGETS = 3  # one busy workflow (a task held by a slow local activity) must not look dead
PROBE_ROUNDS = 3  # rounds of fresh targets when the last were refused or busy
WEDGED_LIMIT = 20
PROBLEM_ATTRIBUTE = "TemporalReportedProblems"
# A client-side rpc_timeout surfaces as CANCELLED ("Timeout expired"), a server one as
# DEADLINE_EXCEEDED: either way no worker took the query.
NO_ANSWER = {RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED}
MESSAGE_CHARS = 300

WorkerCheck = Literal["query", "busy", "pollers", "none"]


@dataclass(frozen=True)
class Health:
    temporal: bool
    workers: bool
    worker_check: WorkerCheck
    wedged: list[str] = field(default_factory=list)
    wedged_more: bool = False
    error: str | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def status(self) -> str:
        if not (self.temporal and self.workers):
            return "unavailable"
        return "degraded" if self.wedged else "ok"

    @property
    def status_code(self) -> int:
        return 503 if self.status == "unavailable" else 200

    def as_json(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "status": self.status,
            "temporal": self.temporal,
            "workers": self.workers,
            "worker_check": self.worker_check,
            "wedged": self.wedged,
            "wedged_more": self.wedged_more,
            "checked_at": self.checked_at.isoformat(),
        }
        if self.error:
            report["error"] = self.error
        return report


class HealthMonitor:
    """Checks Temporal, the workers and wedged automations; caches the answer briefly."""

    def __init__(
        self, client: Client, settings: Settings, automation_ids: Callable[[], Iterable[UUID]]
    ) -> None:
        self.client = client
        self.settings = settings
        self.automation_ids = automation_ids
        self.probe_timeout = timedelta(seconds=settings.health_probe_timeout)
        self._targets: list[str] = []
        self._refused: set[str] = set()  # targets the server would not query (wedged, gone)
        self._last: Health | None = None
        self._last_at = 0.0
        self._lock = asyncio.Lock()

    async def current(self) -> Health:
        if (cached := self._fresh()) is not None:
            return cached
        async with self._lock:  # concurrent checks wait for one probe instead of each sending one
            if (cached := self._fresh()) is not None:
                return cached
            health = await self._check()
            self._last, self._last_at = health, time.monotonic()
            return health

    def _fresh(self) -> Health | None:
        age = time.monotonic() - self._last_at
        return self._last if age < self.settings.health_cache_seconds else None

    async def _check(self) -> Health:
        try:
            serving = await self.client.service_client.check_health(timeout=timedelta(seconds=2))
        except Exception as error:  # unreachable Temporal is an answer, not a crash
            return Health(temporal=False, workers=False, worker_check="none", error=str(error))
        if not serving:
            return Health(temporal=False, workers=False, worker_check="none")
        try:
            (workers, check), (wedged, more) = await asyncio.gather(
                self._workers_alive(), self._wedged()
            )
        except RPCError as error:
            return Health(temporal=False, workers=False, worker_check="none", error=error.message)
        return Health(
            temporal=True, workers=workers, worker_check=check, wedged=wedged, wedged_more=more
        )

    # ------------------------------------------------------------------ workers

    async def _workers_alive(self) -> tuple[bool, WorkerCheck]:
        tried: set[str] = set()
        busy_rounds = 0
        # A refused target is replaced at once (the server refuses in a millisecond); a busy
        # one costs a probe timeout, so at most two such rounds keep the answer within 5 s.
        for _ in range(PROBE_ROUNDS):
            targets = await self._probe_targets(exclude=tried)
            if not targets:
                break
            tried.update(targets)
            answered, silent = await self._probe(targets)
            if answered:
                # Keep targets that answer: their workflows stay in the worker's cache, so a
                # probe seldom makes it replay a history. Drop one that stayed silent meanwhile
                # (busy); it may come back later.
                self._targets = [t for t in self._targets if t not in silent]
                return True, "query"
            if not silent:
                continue  # every target was refused: try others
            busy = await self._busy(silent)
            self._targets = [t for t in self._targets if t not in busy]
            if silent - busy:
                # A workflow with no task in flight, and no worker took a query to it.
                return False, "query"
            busy_rounds += 1
            if busy_rounds == 2:
                break
        if busy_rounds:
            # Every workflow asked holds a workflow task a worker started within the task
            # timeout (10 s), e.g. a slow webhook run as a local activity: a worker was alive
            # then. (One that died mid-task reads alive until that task times out.)
            return True, "busy"
        return await self._pollers_present(), "pollers"

    async def _busy(self, targets: set[str]) -> set[str]:
        """The targets whose workflow task is in a worker's hands: a query waits behind it
        (measured: a webhook taking 8 s held a probe for 8 s), which says nothing of death."""

        async def started(target: str) -> bool:
            try:
                described = await self.client.workflow_service.describe_workflow_execution(
                    DescribeWorkflowExecutionRequest(
                        namespace=self.settings.temporal_namespace,
                        execution=WorkflowExecution(workflow_id=target),
                    )
                )
            except RPCError:
                return False
            state = described.pending_workflow_task.state
            return state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED

        ordered = list(targets)
        found = await asyncio.gather(*(started(t) for t in ordered))
        return {t for t, busy in zip(ordered, found, strict=True) if busy}

    async def _probe(self, targets: list[str]) -> tuple[bool, set[str]]:
        """(a worker answered, the targets that stayed silent). Returns at the first answer."""
        pending = {asyncio.ensure_future(self._answers(t)): t for t in targets}
        silent: set[str] = set()
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    target = pending.pop(task)
                    result = task.result()
                    if result is True:
                        return True, silent
                    if result is False:
                        silent.add(target)
                    else:
                        self._refused.add(target)
                        self._targets = [t for t in self._targets if t != target]
            return False, silent
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _answers(self, target: str) -> bool | None:
        """True: a worker answered; False: none did in time; None: the server refused."""
        try:
            await self.client.get_workflow_handle(target).query(
                PROBE_QUERY, rpc_timeout=self.probe_timeout
            )
        except WorkflowQueryFailedError:
            return True  # a worker ran the query and reported a failure: it is alive
        except RPCError as error:
            if error.status in NO_ANSWER:
                return False
            if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                # Gone, closed differently, or "Workflow Task in failed state": the server
                # answered for the worker, which says nothing about whether one is running.
                return None
            raise
        return True

    async def _probe_targets(self, exclude: set[str]) -> list[str]:
        """Up to PROBE_TARGETS running automation workflows to ask, the same ones each time
        while they answer."""
        if len(self._targets) < PROBE_TARGETS:
            known = [workflow_id(a) for a in self.automation_ids()]
            if not known:
                # No automation known to this API (another replica made them?): ask visibility.
                query = f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
                known = [e.id async for e in self.client.list_workflows(query, limit=PROBE_TARGETS)]
            present = set(known)
            self._refused &= present  # forget automations that no longer exist
            if self._refused and len(self._refused) == len(present):
                self._refused.clear()  # all refused once: a wedged one may have recovered
            for candidate in known:
                if len(self._targets) >= PROBE_TARGETS:
                    break
                if candidate not in self._targets and candidate not in self._refused:
                    self._targets.append(candidate)
        return [t for t in self._targets if t not in exclude]

    async def _pollers_present(self) -> bool:
        queue = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.settings.temporal_namespace,
                task_queue=TaskQueue(name=self.settings.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return len(queue.pollers) > 0

    # ------------------------------------------------------------------ wedged automations

    async def _wedged(self) -> tuple[list[str], bool]:
        queue = self.settings.task_queue.replace("'", "")  # keep the query well-formed
        query = (
            f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' "
            f"AND TaskQueue = '{queue}' AND {PROBLEM_ATTRIBUTE} IS NOT NULL"
        )
        ids: list[str] = []
        try:
            async for execution in self.client.list_workflows(
                query, limit=WEDGED_LIMIT + 1, page_size=WEDGED_LIMIT + 1
            ):
                with contextlib.suppress(ValueError):  # not one of ours: automation-<uuid>
                    ids.append(str(automation_id_of(execution.id)))
        except RPCError as error:
            if error.status != RPCStatusCode.INVALID_ARGUMENT:
                raise
            # A server older than 1.30 does not know the attribute: nothing to report.
            log.debug("wedged automations cannot be listed here: %s", error.message)
        return ids[:WEDGED_LIMIT], len(ids) > WEDGED_LIMIT

    # ------------------------------------------------------------------ one automation

    async def automation(self, automation_id: UUID) -> dict[str, Any]:
        """`{"evaluating": bool, "problem": str | None}` for one automation (for the page)."""
        health, described = await asyncio.gather(self.current(), self._describe(automation_id))
        info = described.workflow_execution_info
        problem: str | None = None
        if info.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
            state = WorkflowExecutionStatus.Name(info.status).rsplit("_", 1)[-1].lower()
            problem = f"its workflow is {state}"
        elif not health.temporal:
            problem = "Temporal is unreachable"
        elif not health.workers:
            problem = "no worker is running"
        elif described.pending_workflow_task.attempt > 1 or str(automation_id) in health.wedged:
            problem = await self._task_problem(automation_id, described)
        return {"evaluating": problem is None, "problem": problem}

    async def _describe(self, automation_id: UUID) -> DescribeWorkflowExecutionResponse:
        try:
            return await self.client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(
                    namespace=self.settings.temporal_namespace,
                    execution=WorkflowExecution(workflow_id=workflow_id(automation_id)),
                )
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise AutomationNotFound(automation_id) from None
            raise

    async def _task_problem(
        self, automation_id: UUID, described: DescribeWorkflowExecutionResponse
    ) -> str:
        """Why its workflow task keeps failing: the latest failure recorded in its history
        (Temporal writes only the first of a run of failed attempts; it is the same cause)."""
        attempt = described.pending_workflow_task.attempt
        cause = "its workflow task keeps failing"
        if attempt > 1:
            cause += f" (attempt {attempt})"
        response = await self.client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=self.settings.temporal_namespace,
                execution=WorkflowExecution(
                    workflow_id=workflow_id(automation_id),
                    run_id=described.workflow_execution_info.execution.run_id,
                ),
                maximum_page_size=50,
            )
        )
        for event in response.history.events:
            detail = _task_failure(event)
            if detail is not None:
                return f"{cause}: {detail}"
        return cause


def _task_failure(event: HistoryEvent) -> str | None:
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
        message = event.workflow_task_failed_event_attributes.failure.message or "failed"
        return message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "…"
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        kind = event.workflow_task_timed_out_event_attributes.timeout_type
        if kind == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE:
            return "a worker took it and did not finish it in time"
        return "no worker took it in time"
    return None


def monitor(app: FastAPI) -> HealthMonitor:
    """The app's monitor, made on first use (after the lifespan connected the client)."""
    existing: HealthMonitor | None = getattr(app.state, "health_monitor", None)
    if existing is None:
        store = app.state.store
        existing = HealthMonitor(
            app.state.client, app.state.settings, lambda: [a.id for a in store.known()]
        )
        app.state.health_monitor = existing
    return existing


@router.get(
    "/health",
    responses={503: {"description": "Temporal or every worker is unreachable (same body)"}},
)
async def health(request: Request) -> JSONResponse:
    """200 when Temporal answers and a worker does ("degraded" if some automations are wedged);
    503 when Temporal or every worker is gone, or while the catalog of automations loads
    (`"status": "loading"`, with `Retry-After`; events are refused until it is complete).
    `inbox`: this API process's parcels to the inbox and the backlog it believes is there."""
    current = await monitor(request.app).current()
    report = current.as_json()
    report["catalog"] = request.app.state.store.catalog_health()
    inbox = request.app.state.router.inbox
    report["inbox"] = inbox.report() if inbox is not None else None
    if report["status"] != "unavailable" and not report["catalog"]["loaded"]:
        report["status"] = "loading"
        return JSONResponse(report, status_code=503, headers={"Retry-After": "1"})
    return JSONResponse(report, status_code=current.status_code)
