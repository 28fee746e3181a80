"""/api/temporal/catalog: what the page's pickers offer for Temporal actions, read from the
user's cluster (TARGET_TEMPORAL_*, by default the engine's): workflow types and task queues of
recent runs, and schedules. Bounded: one page of recent runs, one page of schedules."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel
from temporalio.api.workflowservice.v1 import ListSchedulesRequest, ListWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations.api.deps import SettingsDep
from temporal_automations.temporal import WORKFLOW_TYPE, TemporalConnectionError, connect_to

router = APIRouter(prefix="/temporal", tags=["temporal"])

RECENT_RUNS = 1000
MAX_NAMES = 200
MAX_SCHEDULES = 500
MAX_NAME = 1000


class ScheduleEntry(BaseModel):
    id: str
    paused: bool
    workflow_type: str


class Catalog(BaseModel):
    namespace: str
    workflow_types: list[str]
    task_queues: list[str]
    schedules: list[ScheduleEntry]


async def _target_client(request: Request, settings: SettingsDep, namespace: str) -> Client:
    """The user's cluster, connected on first use and kept in the app's state."""
    state = request.app.state
    lock = getattr(state, "temporal_target_lock", None)
    if lock is None:
        lock = state.temporal_target_lock = asyncio.Lock()
    async with lock:
        base: Client | None = getattr(state, "temporal_target", None)
        if base is None:
            try:
                base = await connect_to(settings.target_connection())
            except (RuntimeError, TemporalConnectionError) as error:
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    f"the Temporal cluster is unreachable: {error}",
                ) from None
            state.temporal_target = base
    return Client(base.service_client, namespace=namespace, data_converter=base.data_converter)


@router.get(
    "/catalog",
    response_model=Catalog,
    responses={
        401: {"description": "an API key is needed"},
        404: {"description": "no such namespace"},
        422: {"description": "the namespace is not a valid name"},
        503: {"description": "the Temporal cluster is unreachable"},
    },
)
async def catalog(
    request: Request,
    settings: SettingsDep,
    namespace: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
) -> Catalog:
    """Workflow types and task queues of the most recent runs, and the schedules, of a
    namespace of the user's cluster (default: TARGET_TEMPORAL_NAMESPACE)."""
    connection = settings.target_connection()
    namespace = namespace or connection.namespace
    client = await _target_client(request, settings, namespace)
    own = connection.address == settings.temporal_address
    try:
        runs = await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace=namespace, page_size=RECENT_RUNS)
        )
        schedules = await client.workflow_service.list_schedules(
            ListSchedulesRequest(namespace=namespace, maximum_page_size=MAX_SCHEDULES)
        )
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise HTTPException(status.HTTP_404_NOT_FOUND, error.message) from None
        raise
    types: dict[str, None] = {}
    queues: dict[str, None] = {}
    for run in runs.executions:
        if own and run.type.name == WORKFLOW_TYPE:
            continue  # the engine's own automations are not the user's workflows
        if len(types) < MAX_NAMES:
            types.setdefault(run.type.name[:MAX_NAME], None)
        if len(queues) < MAX_NAMES:
            queues.setdefault(run.task_queue[:MAX_NAME], None)
    return Catalog(
        namespace=namespace,
        workflow_types=sorted(types),
        task_queues=sorted(queues),
        schedules=[
            ScheduleEntry(
                id=entry.schedule_id[:MAX_NAME],
                paused=entry.info.paused,
                workflow_type=entry.info.workflow_type.name[:MAX_NAME],
            )
            for entry in schedules.schedules[:MAX_SCHEDULES]
        ],
    )
