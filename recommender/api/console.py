"""The console (GET /api/ui): a page to try the loop as a listener and watch it learn, and its
script and style files, served from `ui/`. Its API calls carry the key typed into it."""

from __future__ import annotations

import azure.functions as func
from pydantic import TypeAdapter, ValidationError

from config import PROJECT_DIR
from recommender.api.endpoint import endpoint
from recommender.api.errors import ApiError
from recommender.schemas import UiFile

UI_DIR = PROJECT_DIR / "ui"
UI_FILE = TypeAdapter(UiFile)
UI_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
UI_HEADERS = {  # the page runs its own files only (no inline script, no CDN) and calls this app alone
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

bp = func.Blueprint()


def ui_response(name: str) -> func.HttpResponse:
    path = UI_DIR / name
    return func.HttpResponse(
        path.read_bytes(), mimetype=UI_TYPES[path.suffix], charset="utf-8", headers=UI_HEADERS
    )


@endpoint(bp, "GET", "ui", auth_level=func.AuthLevel.ANONYMOUS)
def ui(req: func.HttpRequest) -> func.HttpResponse:
    return ui_response("index.html")


@endpoint(bp, "GET", "ui/{file}", auth_level=func.AuthLevel.ANONYMOUS)
def ui_file(req: func.HttpRequest) -> func.HttpResponse:
    """Only the names in `schemas.UiFile`, never a path."""
    try:
        name = UI_FILE.validate_python(req.route_params.get("file", ""))
    except ValidationError as exc:
        raise ApiError(404, "not_found", "no such file") from exc
    return ui_response(name)
