"""Serves the page (plain HTML, CSS and JavaScript modules; no build step) and its config.

Everything is one router, so the app needs a single `include_router` line:
`/` redirects to `/automations`, the page's assets are under `/automations/static/`, and
`/api/ui-config` tells the page where the Temporal Web UI is and whether to ask for a key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse

from temporal_automations.api.deps import SettingsDep

STATIC = (Path(__file__).parent / "static").resolve()
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",  # module scripts need a JavaScript type
}
# Revalidate every time (cheap: ETag / Last-Modified), so an upgrade never runs stale JS.
NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/automations")


@router.get("/automations")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=MEDIA_TYPES[".html"], headers=NO_CACHE)


@router.get("/automations/static/{path:path}")
async def asset(path: str) -> FileResponse:
    file = (STATIC / path).resolve()
    if not file.is_relative_to(STATIC) or not file.is_file() or file.suffix not in MEDIA_TYPES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return FileResponse(file, media_type=MEDIA_TYPES[file.suffix], headers=NO_CACHE)


@router.get("/api/ui-config")
async def ui_config(settings: SettingsDep) -> dict[str, Any]:
    """What the page needs before anything else: where the Temporal Web UI is (for the link
    to each automation's workflow) and whether it must ask for an API key. Open on purpose,
    so the page can ask for the key first; it never holds the key itself."""
    ui_url = settings.temporal_ui_url
    return {
        "temporal_ui_url": ui_url.rstrip("/") if ui_url else None,
        "namespace": settings.temporal_namespace,
        "auth_required": settings.api_key is not None,
    }
