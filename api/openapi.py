"""The OpenAPI document: every status code a route answers is documented with its body, and
the events body's schema lives in `components` (a `$defs` reference inside a path is broken
for OpenAPI tools: openapi-spec-validator and schemathesis refuse it)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from temporal_automations.api.batches import events_adapter

_REF = "#/components/schemas/{model}"
_events_schema = events_adapter.json_schema(ref_template=_REF)
EVENT_COMPONENTS: dict[str, Any] = _events_schema.pop("$defs", {})
EVENTS_SCHEMA = {"schema": _events_schema}


class Problem(BaseModel):
    """Every error answer: what was wrong, in words."""

    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """A 422: each refused value, where it is and why."""

    detail: list[ValidationIssue]


_WHY = {
    400: "The body is not JSON (or not UTF-8)",
    401: "An API key is required (API_KEY is set) and was missing or wrong",
    403: "The page token is not one this server issued",
    404: "No automation has this id",
    413: "The body (or one event) is larger than the server takes",
    422: "The body, a path or a query value is not valid; `detail` says where and why",
    429: "Temporal is busy (rate limited); try again",
    503: "Temporal is not reachable, or did not accept the request in time",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "model": ValidationProblem if code == 422 else Problem,
            "description": _WHY[code],
        }
        for code in codes
    }


def install(app: FastAPI) -> None:
    """Build the document once, with the events' schemas among the components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in EVENT_COMPONENTS.items():
                schemas.setdefault(name, schema)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
