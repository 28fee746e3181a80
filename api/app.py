"""The FastAPI application: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.routing import Match
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations.api import openapi
from temporal_automations.api.deps import require_api_key
from temporal_automations.api.edge import TooLargeAsJson
from temporal_automations.api.events_store import EventsStore
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
from temporal_automations.api.routing import CatalogNotReady, EventRouter
from temporal_automations.api.store import AutomationNotFound, AutomationStore
from temporal_automations.settings import Settings, events_store_url, get_settings
from temporal_automations.temporal import connect, ensure_search_attributes

log = logging.getLogger("automations.api")

CATALOG_RETRY_AFTER = 1  # seconds: 10,000 automations load in about that


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = await connect(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)
        store = AutomationStore(client, settings)
        router = EventRouter(client, ready=lambda: store.ready)
        store.on_change(router.catalog_changed)
        # Served at once: the catalog loads meanwhile (events get 503 until it is complete)
        # and then follows the changes other API processes make.
        catalog = asyncio.create_task(store.load_and_follow(), name="automations catalog")
        app.state.client, app.state.store, app.state.router = client, store, router
        app.state.lag = LagForwarder(client, store.all)
        app.state.events_store = await _start_events_store(settings)
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
        dependencies=protected,
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

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
        if error.status_code == 413 and error.detail == "Content Too Large" and limit:
            detail = f"the request body is over the {limit} bytes this route takes"
            error = HTTPException(413, detail)
        if error.status_code == 405:
            # Starlette names the methods of the first route on this path only; FastAPI has
            # one route per method, so name them all.
            allowed = sorted(
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE
                for method in route.methods or ()
            )
            error = HTTPException(405, "method not allowed", {"Allow": ", ".join(allowed)})
        return await http_exception_handler(request, error)

    @app.exception_handler(AutomationNotFound)
    async def not_found(request: Request, error: AutomationNotFound) -> JSONResponse:
        return JSONResponse({"detail": f"automation {error.args[0]} not found"}, status_code=404)

    @app.exception_handler(CatalogNotReady)
    async def catalog_loading(request: Request, error: CatalogNotReady) -> JSONResponse:
        return JSONResponse(
            {"detail": f"{error}: try again shortly (see /api/health)"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(CATALOG_RETRY_AFTER)},
        )

    @app.exception_handler(RPCError)
    async def temporal_refused(request: Request, error: RPCError) -> JSONResponse:
        log.warning("Temporal call failed: %s %s", error.status.name, error.message)
        code = _STATUS_OF_RPC.get(error.status, status.HTTP_503_SERVICE_UNAVAILABLE)
        return JSONResponse(
            {"detail": f"Temporal did not accept the request: {error.message}"},
            status_code=code,
        )

    return app


async def _start_events_store(settings: Settings) -> EventsStore | None:
    url = events_store_url(settings)
    if url is None:
        return None
    store = EventsStore(url, settings.events_retention)
    await store.start()
    return store


# What Temporal refuses because of the request itself is the client's error (4xx); the rest
# (unavailable, deadline exceeded, internal) is ours for now (503).
_STATUS_OF_RPC = {
    RPCStatusCode.INVALID_ARGUMENT: status.HTTP_422_UNPROCESSABLE_CONTENT,
    RPCStatusCode.OUT_OF_RANGE: status.HTTP_422_UNPROCESSABLE_CONTENT,
    RPCStatusCode.RESOURCE_EXHAUSTED: status.HTTP_429_TOO_MANY_REQUESTS,
}
