"""/api/events: take Prefect-shaped events in; answer only once they are durable."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from temporal_automations.api.deps import RouterDep, SettingsDep
from temporal_automations.domain.events import Event

router = APIRouter(prefix="/events", tags=["events"])

_events = TypeAdapter(list[Event])


@router.post(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _events.json_schema()}},
        }
    },
)
async def ingest_events(
    request: Request, settings: SettingsDep, events_router: RouterDep
) -> Response:
    """A JSON list of events. 204 means every interested automation has accepted them;
    422 means none of them was taken; 413 means the body or one event is too large."""
    body = await request.body()
    if len(body) > settings.max_request_bytes:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"request body is over {settings.max_request_bytes} bytes",
        )
    try:
        events = _events.validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None
    if len(body) > settings.max_event_bytes:
        _refuse_oversized_events(body, settings.max_event_bytes)
    await events_router.route(events, len(body))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _refuse_oversized_events(body: bytes, limit: int) -> None:
    for index, raw in enumerate(json.loads(body)):
        size = len(json.dumps(raw, separators=(",", ":")))
        if size > limit:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                f"event {index} is {size} bytes; events are limited to {limit} bytes",
            )
