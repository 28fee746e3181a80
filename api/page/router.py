"""Serves the page (plain HTML, CSS and JavaScript modules; no build step) and its config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.deps import SettingsDep

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
static_files = StaticFiles(directory=STATIC)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/automations")


@router.get("/automations")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.get("/api/ui-config")
async def ui_config(settings: SettingsDep) -> dict[str, Any]:
    """What the page needs to link to the Temporal Web UI and to know it must ask for a key
    (never the key itself)."""
    return {
        "temporal_ui_url": settings.temporal_ui_url,
        "namespace": settings.temporal_namespace,
        "auth_required": settings.api_key is not None,
    }
