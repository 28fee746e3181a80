"""Events from a Temporal user's own workers, as they happen: a worker plugin.

    from temporal_automations.plugin import AutomationsPlugin

    client = await Client.connect("...", plugins=[AutomationsPlugin("http://automations/api")])
    worker = Worker(client, task_queue="orders", workflows=[...], activities=[...])

Every worker of that client then sends, without polling:
- `temporal.activity.failed` for each failed activity attempt (its attempt number, the
  activity's type and id, the workflow it belongs to, the error's type and message);
- `temporal.workflow.failed` when a workflow run fails, with the same id the Temporal bridge
  gives that failure (so the two sources together still make one event).

It never fails or slows the user's code and never touches determinism:
- an event is put in a bounded in-memory buffer (a deque append: no I/O, no lock held, no
  await); a daemon thread sends the buffer in batches. When the API is slow or down the buffer
  holds the newest `buffer_size` events and counts the ones it dropped (`dropped`);
- the activity or workflow error is re-raised untouched; the plugin adds no command to any
  workflow, and a workflow run that is replaying (its failure already reported) sends nothing.
  Workflow code reaches the buffer through an extern function, the SDK's way out of the sandbox.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError, CancelledError, FailureError
from temporalio.plugin import SimplePlugin
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

log = logging.getLogger("automations.plugin")

EXTERN = "temporal_automations_emit"
MAX_TEXT = 4000
MAX_ID = 1000
# The bridge's UUID5 namespace: a workflow's failure has one id whichever source reports it.
EVENT_IDS = uuid.UUID("6f0b8a52-3f51-4c43-9a57-7f1d3c3c9e11")


def _cut(value: object, limit: int = MAX_TEXT) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _id(*parts: object) -> str:
    import json

    return str(uuid.uuid5(EVENT_IDS, json.dumps([str(part) for part in parts])))


def _error(error: BaseException) -> dict[str, str]:
    """The root cause's type and message: what went wrong, not the wrapper around it."""
    root: BaseException = error
    for _ in range(5):
        cause = root.__cause__
        if cause is None:
            break
        root = cause
    kind = root.type if isinstance(root, ApplicationError) and root.type else type(root).__name__
    message = root.message if isinstance(root, FailureError) else str(root)
    return {"type": _cut(kind, 256), "message": _cut(message)}


class EventBuffer:
    """Bounded, thread-safe, never blocking: `offer` appends (dropping the oldest when full);
    a daemon thread posts batches to `<api_url>/events`."""

    def __init__(
        self,
        api_url: str,
        *,
        api_key: str | None = None,
        buffer_size: int = 10_000,
        batch_size: int = 200,
        flush_interval: float = 0.1,
        timeout: float = 5.0,
    ) -> None:
        self.events_url = api_url.rstrip("/") + "/events"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.buffer: deque[dict[str, Any]] = deque(maxlen=buffer_size)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.offered = 0
        self.sent = 0
        self.dropped = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def offer(self, event: dict[str, Any]) -> None:
        """Called from user code's paths: must not raise and must not wait."""
        try:
            if len(self.buffer) == self.buffer.maxlen:
                self.dropped += 1
            self.buffer.append(event)
            self.offered += 1
            if self._thread is None:
                self._start()
            self._wake.set()
        except Exception:  # never the user's problem
            log.exception("could not buffer an event")

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="automations-events", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        backoff = 0.5
        with httpx.Client(timeout=self.timeout) as http:
            while not self._stop.is_set() or self.buffer:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                while self.buffer:
                    batch = [self.buffer[i] for i in range(min(self.batch_size, len(self.buffer)))]
                    try:
                        response = http.post(self.events_url, json=batch, headers=self.headers)
                        if response.status_code >= 500 or response.status_code == 429:
                            raise httpx.HTTPStatusError(
                                "retry", request=response.request, response=response
                            )
                    except (TypeError, ValueError) as error:  # an event that is not JSON
                        log.warning(
                            "dropped %d event(s) that cannot be sent: %s", len(batch), error
                        )
                        response = None
                    except httpx.HTTPError as error:
                        if self._stop.is_set():
                            return  # shutting down: what is left is dropped
                        log.warning("events not sent (%s); again in %.1fs", error, backoff)
                        self._stop.wait(backoff)
                        backoff = min(backoff * 2, 30.0)
                        break
                    backoff = 0.5
                    # A 4xx is an event the API will never take: not retried.
                    for _ in batch:
                        with contextlib.suppress(IndexError):
                            self.buffer.popleft()
                    if response is not None and response.status_code < 400:
                        self.sent += len(batch)

    def close(self, timeout: float = 2.0) -> None:
        """Send what is buffered (for at most `timeout` seconds), then stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


def activity_failed_event(info: activity.Info, error: BaseException) -> dict[str, Any]:
    workflow_id = _cut(info.workflow_id or "", MAX_ID)
    activity_id = _cut(info.activity_id, MAX_ID)
    namespace = _cut(info.workflow_namespace or "", 255)
    resource_id = f"temporal.activity.{workflow_id}/{activity_id}"
    return {
        "id": _id(
            namespace, workflow_id, info.workflow_run_id, "activity", activity_id, info.attempt
        ),
        "occurred": datetime.now(UTC).isoformat(),
        "event": "temporal.activity.failed",
        "resource": {
            "prefect.resource.id": resource_id,
            "prefect.resource.name": _cut(info.activity_type, 1000),
            "temporal.activity-id": activity_id,
            "temporal.activity-type": _cut(info.activity_type, 1000),
            "temporal.attempt": str(info.attempt),
            "temporal.namespace": namespace,
            "temporal.task-queue": _cut(info.task_queue, 1000),
            "temporal.run-id": _cut(info.workflow_run_id or "", 64),
        },
        "related": [
            {
                "prefect.resource.id": f"temporal.workflow.{workflow_id}",
                "prefect.resource.role": "workflow",
                "prefect.resource.name": workflow_id,
                "temporal.run-id": _cut(info.workflow_run_id or "", 64),
                "temporal.workflow-type": _cut(info.workflow_type or "", 1000),
            },
            {
                "prefect.resource.id": f"temporal.activity-type.{_cut(info.activity_type, 1000)}",
                "prefect.resource.role": "activity-type",
            },
            {
                "prefect.resource.id": f"temporal.task-queue.{_cut(info.task_queue, 1000)}",
                "prefect.resource.role": "task-queue",
            },
        ],
        "payload": {"failure": _error(error), "attempt": info.attempt, "local": info.is_local},
    }


def workflow_failed_event(info: workflow.Info, error: BaseException) -> dict[str, Any]:
    """The bridge's `temporal.workflow.failed`, from inside the worker (same id)."""
    workflow_id = _cut(info.workflow_id, MAX_ID)
    namespace = _cut(info.namespace, 255)
    related = [
        {
            "prefect.resource.id": f"temporal.workflow-type.{_cut(info.workflow_type, 1000)}",
            "prefect.resource.role": "workflow-type",
        },
        {
            "prefect.resource.id": f"temporal.task-queue.{_cut(info.task_queue, 1000)}",
            "prefect.resource.role": "task-queue",
        },
        {
            "prefect.resource.id": f"temporal.namespace.{namespace}",
            "prefect.resource.role": "namespace",
        },
    ]
    if info.parent is not None:
        related.append(
            {
                "prefect.resource.id": f"temporal.workflow.{_cut(info.parent.workflow_id, MAX_ID)}",
                "prefect.resource.role": "parent",
                "temporal.run-id": _cut(info.parent.run_id, 64),
            }
        )
    return {
        "id": _id(namespace, info.workflow_id, info.run_id, "failed"),
        "occurred": workflow.now().isoformat(),
        "event": "temporal.workflow.failed",
        "resource": {
            "prefect.resource.id": f"temporal.workflow.{workflow_id}",
            "prefect.resource.name": workflow_id,
            "temporal.run-id": _cut(info.run_id, 64),
            "temporal.namespace": namespace,
            "temporal.workflow-type": _cut(info.workflow_type, 1000),
            "temporal.task-queue": _cut(info.task_queue, 1000),
            "temporal.attempt": str(info.attempt),
        },
        "related": related,
        "payload": {"status": "failed", "failure": _error(error), "source": "worker-plugin"},
    }


class _Activities(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, buffer: EventBuffer) -> None:
        super().__init__(next)
        self.buffer = buffer

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except BaseException as error:
            if not isinstance(error, CancelledError | activity._CompleteAsyncError):
                with contextlib.suppress(Exception):
                    self.buffer.offer(activity_failed_event(activity.info(), error))
            raise


class _Workflows(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            return await super().execute_workflow(input)
        except FailureError as error:  # what fails a run (others fail a task, and retry)
            if not isinstance(error, CancelledError) and not workflow.unsafe.is_replaying():
                with contextlib.suppress(Exception):
                    event = workflow_failed_event(workflow.info(), error)
                    workflow.extern_functions()[EXTERN](event)
            raise


class AutomationsInterceptor(Interceptor):
    def __init__(self, buffer: EventBuffer) -> None:
        self.buffer = buffer

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Activities(next, self.buffer)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        extern: Mapping[str, Any] = input.unsafe_extern_functions
        extern[EXTERN] = self.buffer.offer  # type: ignore[index]
        return _Workflows


class AutomationsPlugin(SimplePlugin):
    """Add to `Client.connect(plugins=[...])` (or a Worker's plugins)."""

    def __init__(
        self, api_url: str, *, api_key: str | None = None, buffer_size: int = 10_000
    ) -> None:
        self.buffer = EventBuffer(api_url, api_key=api_key, buffer_size=buffer_size)
        super().__init__(
            "temporal_automations.AutomationsPlugin",
            interceptors=[AutomationsInterceptor(self.buffer)],
        )
