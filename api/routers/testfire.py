"""POST /api/automations/test: test-fire an automation on given events, or backtest it on the
events stored in a time range. No side effect: no workflow, no activity, no event emitted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.api.deps import EventsStoreDep, SettingsDep, StoreDep
from temporal_automations.api.errors import NoEventsStore
from temporal_automations.api.events_store import StoredQuery
from temporal_automations.api.openapi import responses
from temporal_automations.api.testfire import event_name_prefixes, test_fire
from temporal_automations.domain.automations import Automation
from temporal_automations.domain.events import EventIn, _as_utc
from temporal_automations.domain.inputs import AutomationCore

router = APIRouter(
    prefix="/automations",
    tags=["automations"],
    responses=responses(400, 401, 404, 413, 422, 503),
)

MAX_GIVEN_EVENTS = 10_000
DEFAULT_MAX_EVENTS = 10_000
MAX_EVENTS = 100_000


class EventRange(BaseModel):
    """Stored events that occurred in [from, to] (to: now)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    since: datetime = Field(alias="from")
    until: datetime | None = Field(None, alias="to")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)


class TestFireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    automation: AutomationCore | None = None
    automation_id: UUID | None = None
    events: Annotated[list[EventIn], Field(max_length=MAX_GIVEN_EVENTS)] | EventRange = Field(
        description="The events to evaluate, or a range of stored events {from, to}"
    )
    until: datetime | None = Field(
        None,
        description="Given events: act on deadlines up to this instant (default: the last "
        "event plus one window)",
    )
    max_events: int = Field(DEFAULT_MAX_EVENTS, ge=1, le=MAX_EVENTS)

    @field_validator("until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)  # out of range: a 422, not a 500

    @model_validator(mode="after")
    def _one_automation(self) -> TestFireRequest:
        if (self.automation is None) == (self.automation_id is None):
            raise ValueError("give either 'automation' (a definition) or 'automation_id'")
        return self


def renderer_of(request: Request) -> TemplateRenderer:
    """The API's template renderer, started on first use (its child processes are spawned
    only when a test-fire has templates to render)."""
    state = request.app.state
    renderer = getattr(state, "test_renderer", None)
    if renderer is None:
        renderer = state.test_renderer = TemplateRenderer(processes=1)
    return renderer


@router.post("/test")
async def test_automation(
    body: TestFireRequest,
    request: Request,
    store: StoreDep,
    events_store: EventsStoreDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """The firings the automation would produce, each action rendered as it would go out
    (secrets masked, target resolved) and marked "not sent". With `events` as a list, those
    events; with `{"from": …, "to": …}`, a backtest over the events store, in occurred order,
    proactive deadlines included, at most `max_events` events (`capped` says when hit)."""
    if body.automation is not None:
        now = datetime.now(UTC)
        automation: Automation = body.automation.to_automation(uuid4(), now, now)
    else:
        assert body.automation_id is not None
        automation = store.get(body.automation_id)
    if isinstance(body.events, EventRange):
        since = body.events.since
        until = body.events.until or datetime.now(UTC)
        if until < since:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "'to' is before 'from'")
        if events_store is None:
            raise NoEventsStore()
        query = StoredQuery(
            since=since,
            until=until,
            name_prefixes=event_name_prefixes(automation.trigger),
            descending=False,
        )
        events, capped = await events_store.events(query, body.max_events)
        result = await test_fire(
            automation,
            list(events),
            renderer_of(request),
            since=since,
            until=until,
            max_events=body.max_events,
            firings_per_minute=settings.max_firings_per_minute,
            chained_firings_per_minute=settings.max_chained_firings_per_minute,
        )
        result["capped"] = result["capped"] or capped
        result["gaps"] = [gap.as_json() for gap in events_store.gaps_between(since, until)]
        return result
    return await test_fire(
        automation,
        list(body.events),
        renderer_of(request),
        until=body.until,
        max_events=body.max_events,
        firings_per_minute=settings.max_firings_per_minute,
        chained_firings_per_minute=settings.max_chained_firings_per_minute,
    )


async def close_renderer(state: Any) -> None:
    renderer: TemplateRenderer | None = getattr(state, "test_renderer", None)
    if renderer is not None:
        renderer.close()
        await asyncio.wait_for(renderer.wait_closed(), timeout=10)
