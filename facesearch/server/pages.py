"""The web page: plain HTML, CSS and JavaScript from ``static/``, no build step.

``/`` identifies an uploaded photo, ``/gallery`` shows, renames, removes and enrolls people,
``/live`` identifies the camera's frames over the WebSocket of :mod:`.api_live`, ``/people`` names and
corrects the candidate people a scan found (:mod:`.api_people`).
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "index.html", "/gallery": "gallery.html", "/live": "live.html", "/people": "people.html"}

router = APIRouter(include_in_schema=False)


def _page(file: str):
    async def page() -> FileResponse:
        return FileResponse(STATIC / file, media_type="text/html", headers={"Cache-Control": "no-cache"})
    return page


for _path, _file in PAGES.items():
    router.add_api_route(_path, _page(_file), methods=["GET"])


def static_files() -> StaticFiles:
    """The page's stylesheet, scripts and icon, mounted at ``/static``."""
    return StaticFiles(directory=STATIC)
