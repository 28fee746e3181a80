"""/api/events: take Prefect-shaped events in; answer only once they are durable."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from temporal_automations.api.deps import EventsStoreDep, RouterDep, SettingsDep
from temporal_automations.domain.events import EventIn

router = APIRouter(prefix="/events", tags=["events"])

_events = TypeAdapter(list[EventIn])


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
    request: Request,
    settings: SettingsDep,
    events_router: RouterDep,
    events_store: EventsStoreDep,
) -> Response:
    """A JSON list of events. 204 means every interested automation has accepted them;
    422 means none of them was taken (the detail names what was refused, and where); 413 means
    the body or one event is too large."""
    body = await request.body()
    if len(body) > settings.max_request_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body is over {settings.max_request_bytes} bytes",
        )
    events = _validated(body)
    if len(body) > settings.max_event_bytes:
        _refuse_oversized_events(body, settings.max_event_bytes)
    await events_router.route(events, len(body))
    if events_store is not None:  # a copy for the feed, once accepted; never waited for
        events_store.record(events, raw=body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _validated(body: bytes) -> list[EventIn]:
    """The events in `body`, or a 422 saying what is wrong where; never an unhandled error."""
    try:
        return _events.validate_json(body)
    except ValidationError as error:
        # Without the input: echoing it would send back up to the whole body, and a body that
        # is not UTF-8 cannot be encoded into the response at all (a 500). Without the context:
        # the message already says it all, and a ValueError in it serializes as `{}`.
        details = error.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError(details) from None
    except RecursionError:
        # The JSON parser has its own depth limit and reports it as invalid JSON; this is the
        # guard should any later stage recurse deeper than Python allows.
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": (), "msg": "the body is nested too deeply"}]
        ) from None


def _refuse_oversized_events(body: bytes, limit: int) -> None:
    for index, raw in enumerate(json.loads(body)):
        size = len(json.dumps(raw, separators=(",", ":")))
        if size > limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"event {index} is {size} bytes; events are limited to {limit} bytes",
            )
