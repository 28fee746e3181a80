"""The FastAPI application: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from temporal_automations.api import errors, openapi
from temporal_automations.api.deps import automation_log_context, require_api_key
from temporal_automations.api.edge import TooLargeAsJson
from temporal_automations.api.events_store import EventsStore
from temporal_automations.api.inbox import InboxSender
from temporal_automations.api.lag import LagForwarder
from temporal_automations.api.page import router as page
from temporal_automations.api.routers import (
    automations,
    events,
    events_feed,
    health,
    temporal,
    testfire,
)
from temporal_automations.api.routing import EventRouter
from temporal_automations.api.store import AutomationStore
from temporal_automations.settings import Settings, events_store_url, get_settings
from temporal_automations.temporal import connect, ensure_search_attributes

log = logging.getLogger("automations.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = await connect(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)
        store = AutomationStore(client, settings)
        inbox = InboxSender(client, settings.task_queue, settings.inbox_high_water_bytes)
        router = EventRouter(
            client,
            ready=lambda: store.ready,
            inbox=inbox,
            inbox_min_automations=settings.inbox_min_automations,
            inbox_min_events=settings.inbox_min_events,
        )
        store.on_change(router.catalog_changed)
        # Served at once: the catalog loads meanwhile (events get 503 until it is complete)
        # and then follows the changes other API processes make.
        # The catalog loaded lives as long as the process too, and is frozen like start-up
        # below: at 10,000 automations each full collection walked it, 94-178 ms with
        # nothing to free, every ~25 s under light traffic, holding every request meanwhile.
        catalog = asyncio.create_task(
            store.load_and_follow(loaded=_freeze_what_lives_on), name="automations catalog"
        )
        app.state.client, app.state.store, app.state.router = client, store, router
        app.state.lag = LagForwarder(client, store.all)
        app.state.events_store = await _start_events_store(settings)
        # What start-up made (FastAPI's routes and models, pydantic's validators, the clients)
        # lives as long as the process: out of the collector's sight, full collections no
        # longer walk it. Ingest at 1% matching, alternating with and without: API CPU
        # 15.5-16.2 -> 11.0-13.1 µs an event, 51,797-54,426 -> 60,935-71,946 events/s.
        _freeze_what_lives_on()
        try:
            yield
        finally:
            await testfire.close_renderer(app.state)
            await app.state.lag.close()
            catalog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await catalog
            if app.state.events_store is not None:
                await app.state.events_store.close()

    app = FastAPI(
        title="temporal-automations",
        summary="Prefect-compatible automations, made durable by Temporal",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(TooLargeAsJson)
    openapi.install(app)

    protected = [Depends(require_api_key)]
    app.include_router(health.router, prefix="/api")
    # Every body is counted while it streams in and refused (413) past its route's limit.
    app.include_router(
        testfire.router,
        prefix="/api",
        dependencies=protected,
        max_body_size=settings.max_request_bytes,
    )
    app.include_router(
        automations.router,
        prefix="/api",
        dependencies=[*protected, Depends(automation_log_context)],
        max_body_size=settings.max_definition_bytes,
    )
    app.include_router(
        events.router,
        prefix="/api",
        dependencies=protected,
        max_body_size=settings.max_request_bytes,
    )
    app.include_router(
        events_feed.router,
        prefix="/api",
        dependencies=protected,
        max_body_size=settings.max_definition_bytes,
    )
    app.include_router(events_feed.sockets, prefix="/api")  # authenticated in their handshake
    app.include_router(
        temporal.router,
        prefix="/api",
        dependencies=protected,
        max_body_size=settings.max_definition_bytes,
    )
    app.include_router(page.router)

    errors.install(app)
    return app


def _freeze_what_lives_on() -> None:
    """Out of the collector's sight from now on: what exists lives as long as the process.
    Garbage in cycles goes first (frozen, it would never be freed)."""
    gc.collect()
    gc.freeze()


async def _start_events_store(settings: Settings) -> EventsStore | None:
    url = events_store_url(settings)
    if url is None:
        return None
    store = EventsStore(url, settings.events_retention)
    await store.start()
    return store
