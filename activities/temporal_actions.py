"""Actions on Temporal itself: the user's workflows and schedules, on the target cluster
(TARGET_TEMPORAL_*, by default the engine's own).

Every call carries a request id drawn from the action's idempotency key where Temporal takes
one (start, signal, cancel, reset, schedule patches), so a retried activity acts once: a start
retried after it succeeded returns the run it started, a signal is delivered once, a schedule is
triggered once. A target that is gone (not found, already closed) fails the action with that
reason; an unreachable cluster is retried.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio import activity
from temporalio.api.common.v1 import Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.api.schedule.v1 import SchedulePatch, TriggerImmediatelyRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    GetWorkflowExecutionHistoryRequest,
    GetWorkflowExecutionHistoryReverseRequest,
    PatchScheduleRequest,
    RequestCancelWorkflowExecutionRequest,
    ResetWorkflowExecutionRequest,
    SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations.activities.errors import ActionErrorType, fail
from temporal_automations.activities.prefect import render_all
from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.activities.requests import ActionRequest
from temporal_automations.domain.automations import (
    TEMPORAL_NAMESPACE_LABEL,
    TEMPORAL_RUN_ID_LABEL,
    Source,
    TemporalAction,
    TemporalCancelWorkflow,
    TemporalPauseSchedule,
    TemporalResetWorkflow,
    TemporalScheduleAction,
    TemporalSignalWorkflow,
    TemporalStartWorkflow,
    TemporalTerminateWorkflow,
    TemporalTriggerSchedule,
    TemporalUnpauseSchedule,
)
from temporal_automations.domain.targets import NoTarget, infer_resource
from temporal_automations.domain.templates import TemplateRenderError, action_context
from temporal_automations.settings import TemporalConnection
from temporal_automations.temporal import TemporalConnectionError, connect_to

MAX_TEMPORAL_ID = 1000
MAX_REASON = 2000
# Reset looks for a workflow task completion among this many history events at most.
MAX_HISTORY_SCAN = 50_000
HISTORY_PAGE = 1000
# Answers that say the target is gone or will never take this action: fail, do not retry.
PERMANENT = {
    RPCStatusCode.NOT_FOUND,
    RPCStatusCode.INVALID_ARGUMENT,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.PERMISSION_DENIED,
    RPCStatusCode.UNAUTHENTICATED,
    RPCStatusCode.ALREADY_EXISTS,
}


@dataclass(frozen=True)
class Target:
    id: str
    namespace: str
    run_id: str = ""

    def describe(self, what: str) -> str:
        run = f" (run {self.run_id})" if self.run_id else ""
        return f"{what} {self.id!r}{run} in namespace {self.namespace!r}"


def request_id(idempotency_key: str, step: str = "") -> str:
    """The same for every attempt of one action of one firing."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"temporal-automations:{idempotency_key}:{step}"))


def resolve_target(
    action: TemporalAction, request: ActionRequest, default_namespace: str
) -> Target:
    """The selected target, or the first `temporal.<what>.<id>` of the triggering event; its
    namespace is the action's, else the resource's `temporal.namespace`, else the default."""
    if action.source == Source.selected:
        assert action.selected_id is not None  # the edge's validator guarantees it
        return Target(
            id=action.selected_id,
            namespace=action.namespace or default_namespace,
            run_id=getattr(action, "run_id", None) or "",
        )
    try:
        target_id, labels = infer_resource(action.target_prefix, request.firing)
    except NoTarget as error:
        raise fail(str(error), ActionErrorType.NO_TARGET) from error
    if len(target_id) > MAX_TEMPORAL_ID:
        raise fail(f"the inferred id is over {MAX_TEMPORAL_ID} characters")
    event = request.firing.event
    namespace = (
        action.namespace
        or labels.get(TEMPORAL_NAMESPACE_LABEL)
        or (event.resource.get(TEMPORAL_NAMESPACE_LABEL) if event is not None else None)
        or default_namespace
    )
    # Only a reset pins the event's run (it resets *that* run); the others act on the
    # workflow's current run, which is the one still running after a continue-as-new.
    pinned = isinstance(action, TemporalResetWorkflow)
    run_id = labels.get(TEMPORAL_RUN_ID_LABEL, "") if pinned else ""
    return Target(id=target_id, namespace=namespace, run_id=run_id)


class TemporalClients:
    """Clients of the target cluster, one per namespace, connected on first use and shared."""

    def __init__(self, connection: TemporalConnection) -> None:
        self.connection = connection
        self._base: Client | None = None
        self._by_namespace: dict[str, Client] = {}
        self._lock = asyncio.Lock()

    async def get(self, namespace: str) -> Client:
        async with self._lock:
            if self._base is None:
                try:
                    self._base = await connect_to(self.connection)
                except TemporalConnectionError as error:
                    wrong = f"the Temporal connection settings are wrong: {error}"
                    raise fail(wrong, ActionErrorType.NOT_CONFIGURED) from error
                except RuntimeError as error:  # unreachable: retried
                    raise RuntimeError(
                        f"cannot reach Temporal at {self.connection.address}: {error}"
                    ) from error
            client = self._by_namespace.get(namespace)
            if client is None:
                client = Client(
                    self._base.service_client,
                    namespace=namespace,
                    data_converter=self._base.data_converter,
                )
                self._by_namespace[namespace] = client
            return client


def _rpc_failure(error: RPCError, what: str) -> Exception:
    """A permanent answer fails the action with Temporal's reason; anything else is retried."""
    if error.status == RPCStatusCode.NOT_FOUND:
        return fail(f"{what}: {error.message}", ActionErrorType.TARGET_NOT_FOUND)
    if error.status in PERMANENT:
        return fail(f"{what}: {error.message}", ActionErrorType.REFUSED_ANSWER)
    return RuntimeError(f"{what}: {error.status.name if error.status else '?'} {error.message}")


class TemporalActivities:
    def __init__(self, connection: TemporalConnection, renderer: TemplateRenderer) -> None:
        self.clients = TemporalClients(connection)
        self.default_namespace = connection.namespace
        self.renderer = renderer

    async def _render(self, request: ActionRequest, value: Any) -> Any:
        context = action_context(request.automation, request.firing, request.firing_id)
        try:
            return await render_all(value, context, self.renderer)
        except TemplateRenderError as error:
            raise fail(str(error), ActionErrorType.TEMPLATE_ERROR) from error

    def _identity(self, request: ActionRequest) -> str:
        return f"temporal-automations automation {request.automation.id}"

    async def _target(self, request: ActionRequest) -> tuple[Target, Client]:
        action = request.action
        assert isinstance(action, TemporalAction)
        target = resolve_target(action, request, self.default_namespace)
        return target, await self.clients.get(target.namespace)

    async def _status(self, client: Client, target: Target) -> WorkflowExecutionStatus.ValueType:
        answer = await client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=target.namespace,
                execution=WorkflowExecution(workflow_id=target.id, run_id=target.run_id),
            )
        )
        return answer.workflow_execution_info.status

    async def _already(
        self, client: Client, target: Target, status: WorkflowExecutionStatus.ValueType
    ) -> bool:
        """After "already completed": did an earlier attempt of this action do it?"""
        if activity.info().attempt <= 1:
            return False
        try:
            return await self._status(client, target) == status
        except RPCError:
            return False

    # ------------------------------------------------------------------ workflows

    @activity.defn(name="cancel_temporal_workflow")
    async def cancel_workflow(self, request: ActionRequest) -> str:
        assert isinstance(request.action, TemporalCancelWorkflow)
        target, client = await self._target(request)
        what = target.describe("workflow")
        try:
            await client.workflow_service.request_cancel_workflow_execution(
                RequestCancelWorkflowExecutionRequest(
                    namespace=target.namespace,
                    workflow_execution=WorkflowExecution(
                        workflow_id=target.id, run_id=target.run_id
                    ),
                    identity=self._identity(request),
                    request_id=request_id(request.idempotency_key),
                    reason=f"by automation {request.automation.name!r}"[:MAX_REASON],
                )
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND and await self._already(
                client, target, WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
            ):
                return f"{what} was already canceled"
            raise _rpc_failure(error, f"cannot cancel {what}") from error
        return f"{what}: cancellation requested"

    @activity.defn(name="terminate_temporal_workflow")
    async def terminate_workflow(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, TemporalTerminateWorkflow)
        target, client = await self._target(request)
        what = target.describe("workflow")
        reason = str(await self._render(request, action.reason))[:MAX_REASON]
        try:
            await client.workflow_service.terminate_workflow_execution(
                TerminateWorkflowExecutionRequest(
                    namespace=target.namespace,
                    workflow_execution=WorkflowExecution(
                        workflow_id=target.id, run_id=target.run_id
                    ),
                    reason=reason,
                    identity=self._identity(request),
                )
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND and await self._already(
                client, target, WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
            ):
                return f"{what} was already terminated"
            raise _rpc_failure(error, f"cannot terminate {what}") from error
        return f"{what} terminated: {reason}"

    @activity.defn(name="signal_temporal_workflow")
    async def signal_workflow(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, TemporalSignalWorkflow)
        target, client = await self._target(request)
        what = target.describe("workflow")
        args = await self._render(request, action.args)
        try:
            payloads = await client.data_converter.encode(args)
            await client.workflow_service.signal_workflow_execution(
                SignalWorkflowExecutionRequest(
                    namespace=target.namespace,
                    workflow_execution=WorkflowExecution(
                        workflow_id=target.id, run_id=target.run_id
                    ),
                    signal_name=action.signal,
                    input=Payloads(payloads=payloads),
                    identity=self._identity(request),
                    # The server drops a second signal with the same request id.
                    request_id=request_id(request.idempotency_key),
                )
            )
        except RPCError as error:
            raise _rpc_failure(error, f"cannot signal {what}") from error
        return f"{what}: signal {action.signal!r} sent"

    @activity.defn(name="start_temporal_workflow")
    async def start_workflow(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, TemporalStartWorkflow)
        namespace = action.namespace or self.default_namespace
        client = await self.clients.get(namespace)
        workflow_id, args = await self._render(request, [action.workflow_id, action.args])
        workflow_id = str(workflow_id).strip()
        if not workflow_id or len(workflow_id) > MAX_TEMPORAL_ID:
            raise fail(f"the rendered workflow id must be 1 to {MAX_TEMPORAL_ID} characters")
        timeout = None
        if action.execution_timeout is not None:
            timeout = Duration()
            timeout.FromTimedelta(timedelta(seconds=action.execution_timeout))
        what = f"workflow {workflow_id!r} in namespace {namespace!r}"
        try:
            payloads = await client.data_converter.encode(args)
            answer = await client.workflow_service.start_workflow_execution(
                StartWorkflowExecutionRequest(
                    namespace=namespace,
                    workflow_id=workflow_id,
                    workflow_type=WorkflowType(name=action.workflow_type),
                    task_queue=TaskQueue(name=action.task_queue),
                    input=Payloads(payloads=payloads),
                    workflow_execution_timeout=timeout,
                    identity=self._identity(request),
                    # A retried start with the same request id returns the run it started.
                    request_id=request_id(request.idempotency_key),
                )
            )
        except RPCError as error:
            if error.status == RPCStatusCode.ALREADY_EXISTS:
                raise fail(f"cannot start {what}: a workflow with that id is running") from error
            raise _rpc_failure(error, f"cannot start {what}") from error
        return f"{what} started ({action.workflow_type}, run {answer.run_id})"

    @activity.defn(name="reset_temporal_workflow")
    async def reset_workflow(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, TemporalResetWorkflow)
        target, client = await self._target(request)
        what = target.describe("workflow")
        reason = str(await self._render(request, action.reason))[:MAX_REASON]
        try:
            event_id = await self._reset_point(client, target, action.reset_to)
            answer = await client.workflow_service.reset_workflow_execution(
                ResetWorkflowExecutionRequest(
                    namespace=target.namespace,
                    workflow_execution=WorkflowExecution(
                        workflow_id=target.id, run_id=target.run_id
                    ),
                    reason=reason,
                    workflow_task_finish_event_id=event_id,
                    request_id=request_id(request.idempotency_key),
                    identity=self._identity(request),
                )
            )
        except RPCError as error:
            raise _rpc_failure(error, f"cannot reset {what}") from error
        return f"{what} reset to its {action.reset_to} (event {event_id}): new run {answer.run_id}"

    async def _reset_point(self, client: Client, target: Target, reset_to: str) -> int:
        """The id of the first or last WorkflowTaskCompleted event, reading at most
        MAX_HISTORY_SCAN events (the last one from the end of the history)."""
        execution = WorkflowExecution(workflow_id=target.id, run_id=target.run_id)
        completed = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        token, read = b"", 0
        while read < MAX_HISTORY_SCAN:
            if reset_to == "first-workflow-task":
                page = await client.workflow_service.get_workflow_execution_history(
                    GetWorkflowExecutionHistoryRequest(
                        namespace=target.namespace,
                        execution=execution,
                        maximum_page_size=HISTORY_PAGE,
                        next_page_token=token,
                    )
                )
            else:
                page = await client.workflow_service.get_workflow_execution_history_reverse(  # type: ignore[assignment]
                    GetWorkflowExecutionHistoryReverseRequest(
                        namespace=target.namespace,
                        execution=execution,
                        maximum_page_size=HISTORY_PAGE,
                        next_page_token=token,
                    )
                )
            for event in page.history.events:
                if event.event_type == completed:
                    return int(event.event_id)
            read += len(page.history.events)
            token = page.next_page_token
            if not token:
                break
        raise fail(
            f"{target.describe('workflow')} has no completed workflow task to reset to"
            f"{' in its last ' + str(read) + ' events' if read >= MAX_HISTORY_SCAN else ''}"
        )

    # ------------------------------------------------------------------ schedules

    @activity.defn(name="patch_temporal_schedule")
    async def patch_schedule(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, TemporalScheduleAction)
        target, client = await self._target(request)
        what = target.describe("schedule")
        note = str(await self._render(request, action.note))[:MAX_REASON]
        if isinstance(action, TemporalPauseSchedule):
            patch, done = SchedulePatch(pause=note), "paused"
        elif isinstance(action, TemporalUnpauseSchedule):
            patch, done = SchedulePatch(unpause=note), "unpaused"
        else:
            assert isinstance(action, TemporalTriggerSchedule)
            now = TriggerImmediatelyRequest()
            patch, done = SchedulePatch(trigger_immediately=now), "triggered"
        try:
            await client.workflow_service.patch_schedule(
                PatchScheduleRequest(
                    namespace=target.namespace,
                    schedule_id=target.id,
                    patch=patch,
                    identity=self._identity(request),
                    # The schedule applies one patch per request id: triggered once.
                    request_id=request_id(request.idempotency_key),
                )
            )
        except RPCError as error:
            raise _rpc_failure(error, f"cannot change {what}") from error
        return f"{what} {done}"

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.cancel_workflow,
            self.terminate_workflow,
            self.signal_workflow,
            self.start_workflow,
            self.reset_workflow,
            self.patch_schedule,
        ]
