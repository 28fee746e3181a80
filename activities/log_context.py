"""Every record an activity logs (through `activity.logger` or any module's logger) carries
the automation it works for and, for an action, the firing and which action: bound for the
activity's task by this worker interceptor (temporal_automations/logs.py)."""

from __future__ import annotations

import logging
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from temporal_automations.activities.requests import ActionRequest
from temporal_automations.logs import automation_of_workflow, bind

log = logging.getLogger("automations.activities")


class ActionLogContext(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindsContext(next)


class _BindsContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        request = input.args[0] if input.args else None
        fields: dict[str, Any] = {"automation_id": automation_of_workflow(info.workflow_id)}
        if isinstance(request, ActionRequest):
            fields |= {
                "automation_id": str(request.automation.id),
                "firing_id": str(request.firing_id),
                "action_index": request.action_index,
                "action_type": request.action.type,
            }
        with bind(**fields):
            try:
                return await super().execute_activity(input)
            except ApplicationError:
                raise  # permanent: the workflow logs the action's failure, once
            except Exception as error:
                # Transient: retried (the workflow logs the action's failure if none succeeds).
                log.info(
                    "%s attempt %d failed: %s",
                    info.activity_type,
                    info.attempt,
                    error,
                    extra={"error_type": type(error).__name__},
                )
                raise
