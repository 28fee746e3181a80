"""/api/health: 200 once Temporal answers and a worker polls our task queue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from temporal_automations.api.deps import SettingsDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request, settings: SettingsDep) -> JSONResponse:
    client = request.app.state.client
    report: dict[str, Any] = {"temporal": False, "workers": 0}
    try:
        report["temporal"] = await client.service_client.check_health()
        queue = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=settings.temporal_namespace,
                task_queue=TaskQueue(name=settings.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        report["workers"] = len(queue.pollers)
    except Exception as error:  # unreachable Temporal is a health answer, not a crash
        report["error"] = str(error)
    healthy = bool(report["temporal"]) and report["workers"] > 0
    report["status"] = "ok" if healthy else "unavailable"
    return JSONResponse(report, status_code=200 if healthy else 503)
