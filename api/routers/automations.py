"""/api/automations: Prefect-compatible CRUD. Each automation is a Temporal workflow."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from temporal_automations.api.deps import StoreDep
from temporal_automations.api.openapi import responses
from temporal_automations.api.routers.health import monitor
from temporal_automations.api.schemas import (
    AutomationCountRequest,
    AutomationFilterRequest,
    AutomationSort,
    EnabledPatch,
)
from temporal_automations.domain.automations import Automation
from temporal_automations.domain.inputs import AutomationCore

router = APIRouter(prefix="/automations", tags=["automations"])

_SORT_KEYS = {
    AutomationSort.NAME_ASC: (lambda a: (a.name, a.created), False),
    AutomationSort.NAME_DESC: (lambda a: (a.name, a.created), True),
    AutomationSort.CREATED_DESC: (lambda a: a.created, True),
    AutomationSort.UPDATED_DESC: (lambda a: a.updated, True),
}


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=Automation,
    responses=responses(400, 401, 413, 422, 429, 503),
)
async def create_automation(automation: AutomationCore, store: StoreDep) -> dict[str, Any]:
    return (await store.create(automation)).without_secrets()


@router.get("/{automation_id:uuid}", response_model=Automation, responses=responses(401, 404, 422))
async def read_automation(automation_id: UUID, store: StoreDep) -> dict[str, Any]:
    """Secrets (webhook header values, notification URLs) come back masked; send the mask back
    in a PUT to keep them."""
    return store.get(automation_id).without_secrets()


@router.get("/{automation_id:uuid}/status", responses=responses(401, 404, 422, 429, 503))
async def read_automation_status(automation_id: UUID, store: StoreDep) -> dict[str, Any]:
    """Counters, recent firings with each action's result, and the next deadline."""
    current = await store.status(automation_id)
    data = current.model_dump(mode="json")
    data["automation"] = current.automation.without_secrets()
    return data


MAX_STATUS_IDS = 500


class StatusesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[UUID] = Field(max_length=MAX_STATUS_IDS)


class AutomationCounters(BaseModel):
    """One automation's counters in a bulk answer. `state`: `ok` (counters as of its last
    workflow task), `unknown` (its workflow was not listed in time: just created, or Temporal
    slow; ask again), `not_found` (no automation has this id)."""

    id: UUID
    state: Literal["ok", "unknown", "not_found"]
    firings: int | None = None
    last_fired: datetime | None = None
    events_received: int | None = None
    errors: int | None = None
    last_error: str | None = None


class StatusesAnswer(BaseModel):
    statuses: list[AutomationCounters]


@router.post("/statuses", responses=responses(400, 401, 413, 422, 429, 503))
async def read_automation_statuses(request: StatusesRequest, store: StoreDep) -> StatusesAnswer:
    """The counters of up to 500 automations in one request (the page's list), in the order
    asked, one entry per id. Read from the automations' memos in Temporal's visibility index
    (about one call per 100 ids, whether or not a worker runs), within about 3 s: an
    automation not read by then (or whose call Temporal refused) is `unknown`, not a failed
    answer; only when Temporal answers none of it, a 503. The counters are as of each
    automation's last workflow task; `/{id}/status` has the live ones and recent firings."""
    store.require_ready()  # while loading, "not found" would be a guess: 503
    found = await store.counters(request.ids)
    return StatusesAnswer(
        statuses=[
            AutomationCounters(id=i, state="ok", **found[i])
            if i in found
            else AutomationCounters(id=i, state="unknown" if i in store.catalog else "not_found")
            for i in request.ids
        ]
    )


@router.get("/{automation_id:uuid}/health", responses=responses(401, 404, 422, 429, 503))
async def read_automation_health(automation_id: UUID, request: Request) -> dict[str, Any]:
    """`{"evaluating": bool, "problem": str | None}`: False with the reason when no worker runs
    or its workflow task keeps failing (it answers even when the status query cannot)."""
    request.app.state.store.get(automation_id)  # 404 for one that does not exist (or no more)
    return await monitor(request.app).automation(automation_id)


@router.put(
    "/{automation_id:uuid}",
    response_model=Automation,
    responses=responses(400, 401, 404, 413, 422, 429, 503),
)
async def replace_automation(
    automation_id: UUID, automation: AutomationCore, store: StoreDep
) -> dict[str, Any]:
    return (await store.replace(automation_id, automation)).without_secrets()


@router.patch(
    "/{automation_id:uuid}",
    response_model=Automation,
    responses=responses(400, 401, 404, 413, 422, 429, 503),
)
async def patch_automation(
    automation_id: UUID, patch: EnabledPatch, store: StoreDep
) -> dict[str, Any]:
    return (await store.set_enabled(automation_id, patch.enabled)).without_secrets()


@router.delete(
    "/{automation_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 404, 422, 429, 503),
)
async def delete_automation(automation_id: UUID, store: StoreDep) -> Response:
    await store.delete(automation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/filter", responses=responses(400, 401, 413, 422))
async def filter_automations(
    store: StoreDep, request: AutomationFilterRequest | None = None
) -> list[dict[str, Any]]:
    """Secrets are masked here, as everywhere the API answers."""
    request = request or AutomationFilterRequest()
    selected = [a for a in store.all() if not request.automations or request.automations.matches(a)]
    key, reverse = _SORT_KEYS[request.sort or AutomationSort.NAME_ASC]
    selected.sort(key=key, reverse=reverse)
    offset = request.offset or 0
    end = None if request.limit is None else offset + request.limit
    return [a.without_secrets() for a in selected[offset:end]]


@router.post("/count", responses=responses(400, 401, 413, 422))
async def count_automations(store: StoreDep, request: AutomationCountRequest | None = None) -> int:
    request = request or AutomationCountRequest()
    return sum(1 for a in store.all() if not request.automations or request.automations.matches(a))
