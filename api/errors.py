"""Where the API's errors become HTTP answers: every error type a route lets through maps to
its status code here, in one table, and `install` registers the handlers. Routes raise what
went wrong (AutomationNotFound, StoreUnavailable, ...), never an HTTPException for one of these
kinds, so the same kind of failure answers the same way on every route."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.routing import Match
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations.api.events_store import StoreUnavailable
from temporal_automations.api.routing import CatalogNotReady
from temporal_automations.api.store import AutomationNotFound

log = logging.getLogger("automations.api")

CATALOG_RETRY_AFTER = 1  # seconds: 10,000 automations load in about that


class NoEventsStore(LookupError):
    """The API runs without an events store (EVENTS_STORE_URL=none): no feed, no backtest."""


@dataclass(frozen=True)
class Answer:
    """How one error type answers: its status, its `detail`, and headers if any."""

    status: int
    detail: Callable[[Exception], str]
    headers: dict[str, str] | None = None
    logged: bool = False  # an operator's concern (a database down), not the client's


ANSWERS: dict[type[Exception], Answer] = {
    AutomationNotFound: Answer(
        status.HTTP_404_NOT_FOUND, lambda error: f"automation {error.args[0]} not found"
    ),
    CatalogNotReady: Answer(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        lambda error: f"{error}: try again shortly (see /api/health)",
        {"Retry-After": str(CATALOG_RETRY_AFTER)},
    ),
    StoreUnavailable: Answer(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        lambda error: f"the events store is unavailable: {error}",
        logged=True,
    ),
    NoEventsStore: Answer(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        lambda error: "no events store (EVENTS_STORE_URL=none)",
    ),
}

# What Temporal refuses because of the request itself is the client's error (4xx); the rest
# (unavailable, deadline exceeded, internal) is ours for now (503).
STATUS_OF_RPC = {
    RPCStatusCode.INVALID_ARGUMENT: status.HTTP_422_UNPROCESSABLE_CONTENT,
    RPCStatusCode.OUT_OF_RANGE: status.HTTP_422_UNPROCESSABLE_CONTENT,
    RPCStatusCode.RESOURCE_EXHAUSTED: status.HTTP_429_TOO_MANY_REQUESTS,
}


async def _answer(request: Request, error: Exception) -> Response:
    answer = next(a for kind, a in ANSWERS.items() if isinstance(error, kind))
    if answer.logged:
        log.warning(
            "%s %s: %s",
            request.method,
            request.url.path,
            error,
            extra={"error_type": type(error).__name__},
        )
    return JSONResponse(
        {"detail": answer.detail(error)}, status_code=answer.status, headers=answer.headers
    )


async def _temporal_refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, RPCError)
    log.warning(
        "Temporal call failed: %s %s",
        error.status.name,
        error.message,
        extra={"error_type": "RPCError", "rpc_status": error.status.name},
    )
    code = STATUS_OF_RPC.get(error.status, status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(
        {"detail": f"Temporal did not accept the request: {error.message}"}, status_code=code
    )


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own answers, said better: the body limit names the route's limit, and a
    405 names every method of the path."""
    assert isinstance(error, HTTPException)
    limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    if error.status_code == 413 and error.detail == "Content Too Large" and limit:
        detail = f"the request body is over the {limit} bytes this route takes"
        error = HTTPException(413, detail)
    if error.status_code == 405:
        # Starlette names the methods of the first route on this path only; FastAPI has
        # one route per method, so name them all.
        allowed = sorted(
            method
            for route in request.app.routes
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE
            for method in route.methods or ()
        )
        error = HTTPException(405, "method not allowed", {"Allow": ", ".join(allowed)})
    return await http_exception_handler(request, error)


def install(app: FastAPI) -> None:
    """Register the handlers of every error type above on `app`."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RPCError, _temporal_refused)
    for kind in ANSWERS:
        app.add_exception_handler(kind, _answer)
