"""The FastAPI application: `create_app(settings)`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse
from temporalio.service import RPCError

from temporal_automations.api.deps import require_api_key
from temporal_automations.api.page import router as page
from temporal_automations.api.routers import automations, events, health, temporal
from temporal_automations.api.routing import EventRouter
from temporal_automations.api.store import AutomationNotFound, AutomationStore
from temporal_automations.settings import Settings, get_settings
from temporal_automations.temporal import connect, ensure_search_attributes

log = logging.getLogger("automations.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = await connect(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)
        store = AutomationStore(client, settings)
        router = EventRouter(client)
        store.on_change(lambda: router.reindex(store.all()))
        await store.load()
        app.state.client, app.state.store, app.state.router = client, store, router
        yield

    app = FastAPI(
        title="temporal-automations",
        summary="Prefect-compatible automations, made durable by Temporal",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings

    protected = [Depends(require_api_key)]
    app.include_router(health.router, prefix="/api")
    app.include_router(automations.router, prefix="/api", dependencies=protected)
    app.include_router(events.router, prefix="/api", dependencies=protected)
    app.include_router(temporal.router, prefix="/api", dependencies=protected)
    app.include_router(page.router)

    @app.exception_handler(AutomationNotFound)
    async def not_found(request: Request, error: AutomationNotFound) -> JSONResponse:
        return JSONResponse({"detail": f"automation {error.args[0]} not found"}, status_code=404)

    @app.exception_handler(RPCError)
    async def temporal_unavailable(request: Request, error: RPCError) -> JSONResponse:
        log.warning("Temporal call failed: %s", error.message)
        return JSONResponse(
            {"detail": f"Temporal did not accept the request: {error.message}"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    return app
