"""Actions on a Prefect server (PREFECT_API_URL): flow runs, deployments, work queues and pools."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import aiohttp
from temporalio import activity

from temporal_automations.activities.errors import ActionErrorType
from temporal_automations.activities.http import RefusedAnswer, fail, send
from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.activities.requests import ActionRequest
from temporal_automations.domain.automations import (
    CancelFlowRun,
    ChangeFlowRunState,
    FlowRunAction,
    PauseDeployment,
    PauseWorkPool,
    PauseWorkQueue,
    RunDeployment,
    SuspendFlowRun,
    TargetedAction,
)
from temporal_automations.domain.targets import NoTarget, infer_target_id, target_id
from temporal_automations.domain.templates import (
    TemplateRenderError,
    action_context,
    template_variables,
)
from temporal_automations.settings import Settings

# Objects a template may name, fetched from Prefect only when a template uses them
# (`flow` through the flow run, `work_pool` by a filter on its id).
PREFECT_OBJECTS = {
    "flow_run": ("flow-run", "/flow_runs/{}"),
    "deployment": ("deployment", "/deployments/{}"),
    "work_queue": ("work-queue", "/work_queues/{}"),
    "flow": ("flow", "/flows/{}"),
}


class PrefectClient:
    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.http = http

    @property
    def configured(self) -> bool:
        return bool(self.settings.prefect_api_url)

    def _headers(self) -> dict[str, str]:
        if self.settings.prefect_api_key:
            return {"Authorization": f"Bearer {self.settings.prefect_api_key.get_secret_value()}"}
        if self.settings.prefect_api_auth_string:
            raw = self.settings.prefect_api_auth_string.get_secret_value().encode()
            return {"Authorization": f"Basic {base64.b64encode(raw).decode()}"}
        return {}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        if not self.configured:
            raise fail(
                "no Prefect server is configured: set PREFECT_API_URL",
                ActionErrorType.NOT_CONFIGURED,
            )
        url = f"{str(self.settings.prefect_api_url).rstrip('/')}{path}"
        _, answer = await send(self.http, method, url, json=body, headers=self._headers())
        return answer

    async def get(self, what: str, path: str) -> Any:
        try:
            return await self.call("GET", path)
        except RefusedAnswer as error:
            if error.status == 404:
                not_found = ActionErrorType.TARGET_NOT_FOUND
                raise fail(f"{what} not found in Prefect ({path})", not_found) from error
            raise

    async def block_data(self, block_document_id: UUID) -> dict[str, Any]:
        """A block document's fields, secrets included (a webhook's URL and headers)."""
        document = await self.get(
            "block document", f"/block_documents/{block_document_id}?include_secrets=true"
        )
        return document.get("data") or {}

    async def template_objects(
        self, request: ActionRequest, templates: list[str]
    ) -> dict[str, Any]:
        """`flow_run`, `deployment`, `work_queue`, `flow` for the templates that use them."""
        used: set[str] = set()
        for template in templates:
            used |= template_variables(template)
        wanted = used & {*PREFECT_OBJECTS, "work_pool"}
        if not wanted or not self.configured:
            return {}
        objects: dict[str, Any] = {}
        for name in sorted(wanted - {"flow", "work_pool"}):
            kind, path = PREFECT_OBJECTS[name]
            try:
                objects[name] = await self.get(
                    kind, path.format(infer_target_id(kind, request.firing))
                )
            except NoTarget:
                objects[name] = None
        if "flow" in wanted:
            flow_id = (objects.get("flow_run") or {}).get("flow_id")
            if flow_id is None and "flow_run" not in objects:
                try:
                    run_id = infer_target_id("flow-run", request.firing)
                    flow_id = (await self.get("flow run", f"/flow_runs/{run_id}"))["flow_id"]
                except NoTarget:
                    flow_id = None
            objects["flow"] = await self.get("flow", f"/flows/{flow_id}") if flow_id else None
        if "work_pool" in wanted:
            objects["work_pool"] = await self.work_pool(request)
        return objects

    async def work_pool(self, request: ActionRequest) -> dict[str, Any] | None:
        try:
            return await self.work_pool_by_id(infer_target_id("work-pool", request.firing))
        except NoTarget:
            return None

    async def work_pool_by_id(self, pool_id: UUID) -> dict[str, Any] | None:
        """Work pools are addressed by name in Prefect's API; events name them by id."""
        found = await self.call(
            "POST", "/work_pools/filter", {"work_pools": {"id": {"any_": [str(pool_id)]}}}
        )
        return found[0] if found else None


async def render_all(value: Any, context: dict[str, Any], renderer: TemplateRenderer) -> Any:
    """Render every string in a JSON-like value (run-deployment's parameters), in one batch."""
    rendered = iter(await renderer.render(_strings(value), context))
    return _replace_strings(value, rendered)


def _replace_strings(value: Any, rendered: Iterator[str]) -> Any:
    # Walks the value in the order _strings lists its strings.
    if isinstance(value, str):
        return next(rendered)
    if isinstance(value, dict):
        return {key: _replace_strings(item, rendered) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_strings(item, rendered) for item in value]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _target(action: TargetedAction | FlowRunAction, request: ActionRequest) -> UUID:
    try:
        return target_id(action, request.firing)
    except NoTarget as error:
        raise fail(str(error), ActionErrorType.NO_TARGET) from error


class PrefectActivities:
    def __init__(self, prefect: PrefectClient, renderer: TemplateRenderer) -> None:
        self.prefect = prefect
        self.renderer = renderer

    @activity.defn(name="run_deployment")
    async def run_deployment(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, RunDeployment)
        deployment = _target(action, request)
        context = action_context(request.automation, request.firing, request.firing_id)
        try:
            context |= await self.prefect.template_objects(request, _strings(action.parameters))
            parameters = await render_all(action.parameters or {}, context, self.renderer)
        except TemplateRenderError as error:
            raise fail(str(error), ActionErrorType.TEMPLATE_ERROR) from error
        scheduled = datetime.now(UTC) + timedelta(seconds=action.schedule_after)
        body = {
            "parameters": parameters,
            "job_variables": action.job_variables or {},
            # Prefect creates one run per key: a retried activity never runs it twice.
            "idempotency_key": request.idempotency_key,
            "state": {
                "type": "SCHEDULED",
                "name": "Scheduled",
                "state_details": {"scheduled_time": scheduled.isoformat()},
            },
        }
        await self.prefect.get("deployment", f"/deployments/{deployment}")
        run = await self.prefect.call("POST", f"/deployments/{deployment}/create_flow_run", body)
        return f"deployment {deployment} runs as flow run {run['id']}"

    @activity.defn(name="set_deployment_paused")
    async def set_deployment_paused(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, TargetedAction)
        deployment = _target(action, request)
        verb = "pause" if isinstance(action, PauseDeployment) else "resume"
        await self.prefect.get("deployment", f"/deployments/{deployment}")
        await self.prefect.call("POST", f"/deployments/{deployment}/{verb}_deployment")
        return f"deployment {deployment}: schedule {verb}d"

    @activity.defn(name="set_work_queue_paused")
    async def set_work_queue_paused(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, TargetedAction)
        queue = _target(action, request)
        paused = isinstance(action, PauseWorkQueue)
        await self.prefect.get("work queue", f"/work_queues/{queue}")
        await self.prefect.call("PATCH", f"/work_queues/{queue}", {"is_paused": paused})
        return f"work queue {queue} {'paused' if paused else 'resumed'}"

    @activity.defn(name="set_work_pool_paused")
    async def set_work_pool_paused(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, TargetedAction)
        pool_id = _target(action, request)
        paused = isinstance(action, PauseWorkPool)
        pool = await self.prefect.work_pool_by_id(pool_id)
        if pool is None:
            raise fail(
                f"work pool {pool_id} not found in Prefect", ActionErrorType.TARGET_NOT_FOUND
            )
        name = pool["name"]
        await self.prefect.call("PATCH", f"/work_pools/{name}", {"is_paused": paused})
        return f"work pool {name} {'paused' if paused else 'resumed'}"

    @activity.defn(name="set_flow_run_state")
    async def set_flow_run_state(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, FlowRunAction)
        run = _target(action, request)
        message = f"by automation {request.automation.name!r}"
        state: dict[str, Any]
        if isinstance(action, CancelFlowRun):
            state, force = {"type": "CANCELLING", "name": "Cancelling", "message": message}, True
        elif isinstance(action, SuspendFlowRun):
            details = {"pause_reschedule": True}
            state = {
                "type": "PAUSED",
                "name": "Suspended",
                "message": message,
                "state_details": details,
            }
            force = True
        else:
            assert isinstance(action, ChangeFlowRunState)
            state = {
                "type": action.state,
                "name": action.name,
                "message": action.message or message,
            }
            force = action.force
        await self.prefect.get("flow run", f"/flow_runs/{run}")
        answer = await self.prefect.call(
            "POST", f"/flow_runs/{run}/set_state", {"state": state, "force": force}
        )
        if answer and answer.get("status") == "REJECT":
            reason = (answer.get("details") or {}).get("reason", "rejected")
            refused = f"Prefect refused the state change of flow run {run}: {reason}"
            raise fail(refused, ActionErrorType.REFUSED_ANSWER)
        return f"flow run {run} -> {state['type']} ({answer.get('status') if answer else '?'})"

    @activity.defn(name="resume_flow_run")
    async def resume_flow_run(self, request: ActionRequest) -> str:
        run = _target(request.action, request)  # type: ignore[arg-type]
        await self.prefect.get("flow run", f"/flow_runs/{run}")
        answer = await self.prefect.call("POST", f"/flow_runs/{run}/resume", {})
        if answer and answer.get("status") == "REJECT":
            raise fail(f"Prefect refused to resume flow run {run}", ActionErrorType.REFUSED_ANSWER)
        return f"flow run {run} resumed"

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.run_deployment,
            self.set_deployment_paused,
            self.set_work_queue_paused,
            self.set_work_pool_paused,
            self.set_flow_run_state,
            self.resume_flow_run,
        ]
