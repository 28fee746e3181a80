"""/api/events: take Prefect-shaped events in; answer only once they are durable."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from temporal_automations.api.batches import validated_events
from temporal_automations.api.deps import EventsStoreDep, LagDep, RouterDep, SettingsDep
from temporal_automations.api.lag import (
    LAG_HEADER,
    SOURCE_HEADER,
    LagHeaderError,
    parse_lag_headers,
)
from temporal_automations.api.openapi import EVENTS_SCHEMA, responses

router = APIRouter(prefix="/events", tags=["events"])


@router.post(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 413, 422, 429, 503),
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": EVENTS_SCHEMA}}
    },
)
async def ingest_events(
    request: Request,
    settings: SettingsDep,
    events_router: RouterDep,
    events_store: EventsStoreDep,
    lag: LagDep,
) -> Response:
    """A JSON list of events. 204 means every interested automation has accepted them;
    422 means none of them was taken (the detail names what was refused, and where); 413 means
    the body or one event is too large. A source that delivers late says by how much in
    `X-Events-Lag` (seconds, `X-Events-Source` naming it), even with an empty list: Proactive
    deadlines then wait for its events (at most 5 minutes)."""
    try:
        reported = parse_lag_headers(
            request.headers.get(SOURCE_HEADER), request.headers.get(LAG_HEADER)
        )
    except LagHeaderError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    body = await request.body()
    # The app's body limit refused a larger body while it streamed in; this is the same
    # bound for an app built without it.
    if len(body) > settings.max_request_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body is over {settings.max_request_bytes} bytes",
        )
    events = await validated_events(body, settings.max_event_bytes)
    await events_router.route(events, len(body))
    if reported is not None:
        lag.report(*reported)
    if events_store is not None:  # a copy for the feed, once accepted; never waited for
        events_store.record(events, raw=body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
