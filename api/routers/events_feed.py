"""Prefect's events read API over the events store, and its two websockets.

- `POST /api/events/filter` {filter, limit} → EventPage {events, total, next_page} (+ `gaps`);
- `GET /api/events/filter/next?page-token=…` → the next page;
- `POST /api/events/count-by/{day|time|event|resource}` {filter, time_unit, time_interval};
- websocket `/api/events/out`: matching events live, after a backfill from the store;
- websocket `/api/events/in`: emit events, one JSON event per message (Prefect's client).

The websockets speak Prefect's protocol: the `prefect` subprotocol, then `{"type": "auth",
"token": …}` answered by `{"type": "auth_success"}` (the token is checked against API_KEY when
one is set); a client without the subprotocol is accepted as Prefect's legacy clients are,
only when no API key is set.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from temporal_automations.api.deps import EventsStoreDep
from temporal_automations.api.errors import NoEventsStore
from temporal_automations.api.events_store import (
    EventsStore,
    StoredQuery,
    StoreUnavailable,
    from_micros,
    to_micros,
)
from temporal_automations.api.openapi import responses
from temporal_automations.domain.event_filters import EventFilter, EventOrder
from temporal_automations.domain.events import END_OF_INSTANTS, Event, EventIn

log = logging.getLogger("automations.events_feed")

router = APIRouter(prefix="/events", tags=["events"], responses=responses(400, 401, 413, 422, 503))
sockets = APIRouter(prefix="/events", tags=["events"])

PAGE_SIZE = 50  # Prefect's INTERACTIVE_PAGE_SIZE
MAX_PAGE_SIZE = 200
BACKFILL_LIMIT = 1_000  # Prefect's maximum websocket backfill
BACKFILL_SPAN = timedelta(minutes=15)  # Prefect's PREFECT_EVENTS_MAXIMUM_WEBSOCKET_BACKFILL
BACKFILL_WAIT = 5.0  # seconds a backfill waits for the events accepted before it to be written
MAX_TOKEN_CHARS = 64_000
MAX_SOCKET_MESSAGE = 2_000_000
WS_POLICY_VIOLATION = 1008
WS_PROTOCOL_ERROR = 1002


class FilterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: EventFilter | None = None
    limit: int = Field(PAGE_SIZE, ge=0, le=MAX_PAGE_SIZE)


class TimeUnit(StrEnum):
    week = "week"
    day = "day"
    hour = "hour"
    minute = "minute"
    second = "second"

    def span(self, interval: float) -> timedelta:
        seconds = {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}
        return timedelta(seconds=seconds[self.value] * interval)


class Countable(StrEnum):
    day = "day"
    time = "time"
    event = "event"
    resource = "resource"


class CountRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: EventFilter = Field(default_factory=EventFilter)
    time_unit: TimeUnit = TimeUnit.day
    time_interval: float = Field(1.0, ge=0.01, le=1_000_000)


def _store(store: EventsStore | None) -> EventsStore:
    if store is None:
        raise NoEventsStore()
    return store


def stored_query(event_filter: EventFilter) -> StoredQuery:
    """The filter's indexed parts for SQL, the rest as a Python check."""
    names = event_filter.event
    resource = event_filter.resource
    return StoredQuery(
        since=event_filter.occurred.since,
        until=event_filter.occurred.until,
        names=names.name if names and names.name else None,
        name_prefixes=names.prefix if names and names.prefix else None,
        exclude_names=names.exclude_name if names else None,
        exclude_prefixes=names.exclude_prefix if names else None,
        resource_ids=resource.id if resource and resource.id else None,
        resource_prefixes=resource.id_prefix if resource and resource.id_prefix else None,
        ids=[str(i) for i in event_filter.id.id] if event_filter.id.id else None,
        descending=event_filter.order == EventOrder.DESC,
        matches=event_filter.includes_beyond_sql if event_filter.needs_python() else None,
    )


async def _page(
    request: Request, store: EventsStore, event_filter: EventFilter, limit: int, offset: int
) -> dict[str, Any]:
    events, total, capped = await store.read(stored_query(event_filter), limit, offset)
    next_offset = offset + len(events)
    next_page = None
    if events and next_offset < total:
        token = json.dumps(
            {"filter": event_filter.model_dump(mode="json"), "limit": limit, "offset": next_offset}
        )
        next_page = (
            f"{request.base_url}api/events/filter/next"
            f"?page-token={base64.urlsafe_b64encode(token.encode()).decode()}"
        )
    occurred = event_filter.occurred
    gaps = store.gaps_between(occurred.since, occurred.until)
    page: dict[str, Any] = {
        "events": [event.model_dump(mode="json") for event in events],
        "total": total,
        "next_page": next_page,
        # Ours: the feed says where it is incomplete (the store was down, or fell behind),
        # and when a label filter stopped scanning (the total is then a lower bound).
        "gaps": [gap.as_json() for gap in gaps],
    }
    if capped:
        page["scan_capped"] = True
    return page


@router.post("/filter")
async def read_events(
    request: Request, store: EventsStoreDep, body: FilterRequest | None = None
) -> dict[str, Any]:
    """Events matching the filter (Prefect's EventFilter), newest first unless `order` is ASC,
    `limit` (≤ 200, default 50) a page, with `next_page` (a URL) while there are more."""
    body = body or FilterRequest()
    return await _page(request, _store(store), body.filter or EventFilter(), body.limit, 0)


@router.get(
    "/filter/next",
    responses={
        **responses(403),
        # uvicorn itself refuses a request line it cannot parse, before the app sees it.
        400: {
            "description": "The request line is not valid HTTP (answered by the server)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
)
async def read_next_page(
    request: Request,
    store: EventsStoreDep,
    page_token: str = Query(
        ...,
        alias="page-token",
        max_length=MAX_TOKEN_CHARS,
        pattern=r"^[A-Za-z0-9_=-]+$",  # what this server issues: URL-safe base64
    ),
) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(page_token.encode()))
        event_filter = EventFilter.model_validate(data["filter"])
        limit = FilterRequest(limit=data["limit"]).limit
        offset = int(data["offset"])
        if offset < 0:
            raise ValueError("negative offset")
    except (ValueError, KeyError, TypeError, binascii.Error, ValidationError) as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not a valid page token") from error
    return await _page(request, _store(store), event_filter, limit, offset)


@router.post("/count-by/{countable}")
async def count_events(
    countable: Countable, body: CountRequest, store: EventsStoreDep
) -> list[dict[str, Any]]:
    """Prefect's EventCount list: {value, label, count, start_time, end_time}."""
    store = _store(store)
    event_filter = body.filter
    query = stored_query(event_filter)
    span = body.time_unit.span(body.time_interval)
    since = event_filter.occurred.since
    if countable in (Countable.day, Countable.time):
        buckets = (event_filter.occurred.until - since) / span
        if buckets > 1_000:
            raise RequestValidationError(
                [{"type": "value_error", "loc": ("body", "time_interval"),
                  "msg": f"that is {buckets:.0f} time buckets; at most 1000"}]
            )  # fmt: skip
    kind = "day" if countable in (Countable.day, Countable.time) else countable.value
    rows = await store.count_by(query, kind, span)
    counts: list[dict[str, Any]] = []
    for value, count, first, last in rows:
        if kind == "day":
            start = since + span * int(value)
            counts.append(
                {
                    "value": start.isoformat(),
                    "label": start.isoformat(),
                    "count": count,
                    "start_time": start.isoformat(),
                    "end_time": (start + span).isoformat(),
                }
            )
        else:
            counts.append(
                {
                    "value": value,
                    "label": value,
                    "count": count,
                    "start_time": from_micros(first).isoformat(),
                    "end_time": from_micros(last).isoformat(),
                }
            )
    counts.sort(key=lambda c: c["start_time"] if kind == "day" else (-c["count"], c["value"]))
    return counts


@router.get("/store")
async def store_status(store: EventsStoreDep) -> dict[str, Any]:
    """Ours: the events store's backend, health, retention, backlog and gaps."""
    if store is None:
        return {"backend": None, "healthy": False, "gaps": []}
    return store.status()


# --------------------------------------------------------------------------- websockets


async def _accept(websocket: WebSocket) -> bool:
    """Prefect's handshake; False (and the socket closed) when the client may not go on."""
    api_key = websocket.app.state.settings.api_key
    expected = api_key.get_secret_value() if api_key else None
    protocols = [
        p.strip()
        for header in websocket.headers.getlist("sec-websocket-protocol")
        for p in header.split(",")
    ]
    if "prefect" not in protocols:
        if expected is not None:
            await websocket.close(WS_PROTOCOL_ERROR, "the 'prefect' subprotocol is required")
            return False
        await websocket.accept()
        return True
    await websocket.accept(subprotocol="prefect")
    try:
        message = json.loads(await asyncio.wait_for(websocket.receive_text(), timeout=30))
    except (TimeoutError, ValueError, WebSocketDisconnect):
        await _close(websocket, WS_POLICY_VIOLATION, "expected an 'auth' message")
        return False
    if not isinstance(message, dict) or message.get("type") != "auth":
        await _close(websocket, WS_POLICY_VIOLATION, "expected an 'auth' message")
        return False
    token = message.get("token")
    bearer = websocket.headers.get("authorization", "")
    if expected is not None and token != expected and bearer != f"Bearer {expected}":
        await _close(websocket, WS_POLICY_VIOLATION, "invalid token")
        return False
    await websocket.send_json({"type": "auth_success"})
    return True


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state != WebSocketState.DISCONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code, reason)


@sockets.websocket("/out")
async def stream_events_out(websocket: WebSocket) -> None:
    """Send `{"filter": EventFilter, "backfill": true}` first; then get `{"type": "event",
    "event": …}` for stored events since `filter.occurred.since` (at most 1,000, from the
    last 15 minutes), followed by every matching event the API accepts from then on."""
    if not await _accept(websocket):
        return
    store: EventsStore | None = getattr(websocket.app.state, "events_store", None)
    try:
        raw = await asyncio.wait_for(websocket.receive_text(), timeout=60)
        if len(raw) > MAX_SOCKET_MESSAGE:
            raise ValueError("the filter message is too large")
        message = json.loads(raw)
        if not isinstance(message, dict) or message.get("type") != "filter":
            raise ValueError("expected a 'filter' message")
        event_filter = EventFilter.model_validate(message.get("filter") or {})
        wants_backfill = message.get("backfill", True) is not False
    except (TimeoutError, ValueError, ValidationError) as error:
        await _close(websocket, WS_PROTOCOL_ERROR, f"invalid filter: {str(error)[:100]}")
        return
    except WebSocketDisconnect:
        return
    if store is None:
        await _close(websocket, 1011, "no events store")
        return
    occurred = event_filter.occurred
    occurred.since = max(occurred.since, datetime.now(UTC) - BACKFILL_SPAN)
    # Live: whatever arrives from now on, whatever its `until` said.
    live = event_filter.model_copy(
        update={"occurred": occurred.model_copy(update={"until": END_OF_INSTANTS})}
    )
    subscriber = store.subscribe(live.includes)  # first, so nothing falls between the two
    sent: set[Any] = set()
    event: Event | None  # the backfill's, then the live queue's (None: the queue closed)
    try:
        if wants_backfill:
            backfill = event_filter.model_copy(update={"order": EventOrder.ASC})
            # What was accepted before the subscription is in the store before it is read
            # (or in neither the backfill nor the stream); bounded, for a writer far behind.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(store.written_so_far(), BACKFILL_WAIT)
            try:
                events, _ = await store.events(stored_query(backfill), BACKFILL_LIMIT)
            except StoreUnavailable:
                events = []
            for event in events:
                sent.add(event.id)
                await websocket.send_json({"type": "event", "event": _json(event)})
        receiving = asyncio.create_task(_until_closed(websocket))
        while True:
            getting = asyncio.create_task(subscriber.queue.get())
            done, _ = await asyncio.wait({getting, receiving}, return_when=asyncio.FIRST_COMPLETED)
            if receiving in done:
                getting.cancel()
                return
            event = getting.result()
            if event is None:  # too slow a reader, or the API stops
                await _close(websocket, 1013, "the stream fell behind; reconnect to backfill")
                return
            if event.id in sent:
                sent.discard(event.id)
                continue
            await websocket.send_json({"type": "event", "event": _json(event)})
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        store.unsubscribe(subscriber)


async def _until_closed(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


def _json(event: Event) -> dict[str, Any]:
    data = event.model_dump(mode="json")
    if data.get("received") is None:
        data["received"] = data["occurred"]
    return data


@sockets.websocket("/in")
async def stream_events_in(websocket: WebSocket) -> None:
    """One JSON event per message, validated as `POST /api/events` validates; each is routed
    to the automations (durably) before the next is read. An invalid event closes the socket
    with the reason."""
    if not await _accept(websocket):
        return
    app = websocket.app
    settings = app.state.settings
    try:
        while True:
            raw = await websocket.receive_text()
            size = len(raw.encode())
            if size > settings.max_event_bytes:
                await _close(websocket, 1009, f"event over {settings.max_event_bytes} bytes")
                return
            try:
                event = EventIn.model_validate_json(raw)
            except ValidationError as error:
                reason = error.errors(include_url=False, include_input=False)[0]["msg"]
                await _close(websocket, WS_PROTOCOL_ERROR, f"invalid event: {reason}"[:120])
                return
            await app.state.router.route([event], size)
            store: EventsStore | None = getattr(app.state, "events_store", None)
            if store is not None:
                store.record([event])
    except WebSocketDisconnect:
        return


__all__ = ["router", "sockets", "stored_query", "to_micros"]
