"""The FastAPI app: the versioned API (``/api/v1``), health checks, the web page, one-line errors.

    >>> from facesearch.server.app import create_app
    >>> app = create_app(home="~/celebs")            # or create_app(Gallery(...))

Run it with ``facesearch serve`` (uvicorn), which also applies the rule on API keys for
addresses other than loopback. The models load on a thread at start-up; ``/api/v1/health/ready``
answers 200 once they have, and requests that need them wait until then.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facesearch import __version__
from facesearch.errors import FaceSearchError, GalleryError, ImageError, NotFoundError, OptionsError, one_line
from facesearch.gallery import Gallery
from facesearch.server import api_gallery, api_live, api_people, api_photos, pages, schemas
from facesearch.server.state import ServerSettings, ServerState
from facesearch.server.uploads import BODY_TOO_LARGE, BodyLimit, UploadRejected, too_large_message

log = logging.getLogger(__name__)

API_DESCRIPTION = """Identify enrolled people in photos from their faces.

Every answer is JSON; its shapes are those of the CLI's `--json`. Errors are
`{"error": "one line naming the file or object and the reason"}`. Send an API key as
`Authorization: Bearer KEY` where one is needed (see `facesearch keys`)."""


def create_app(gallery: Gallery | None = None, *, home: str | os.PathLike | None = None, db_url: str | None = None,
               settings: ServerSettings | None = None) -> FastAPI:
    """The app over ``gallery``, or over the gallery at ``home`` / ``db_url`` (opened now, closed at shutdown).

    Raises:
        GalleryError: the gallery cannot be opened.
    """
    settings = settings or ServerSettings()
    owned = gallery is None
    gallery = gallery if gallery is not None else Gallery(home, db_url=db_url)
    state = ServerState(gallery, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.load_models:
            state.start_loading()
        else:
            state.models_ready.set()
        try:
            yield
        finally:
            state.close()
            if owned:
                gallery.close()

    app = FastAPI(title="facesearch", version=__version__, description=API_DESCRIPTION, lifespan=lifespan)
    app.state.facesearch = state
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_request_bytes)
    _add_error_handlers(app)
    _add_health(app)
    app.include_router(api_photos.router)
    app.include_router(api_gallery.router)
    app.include_router(api_people.router)
    app.include_router(api_live.router)
    app.include_router(pages.router)
    app.mount("/static", pages.static_files(), name="static")
    return app


def _add_health(app: FastAPI) -> None:
    @app.get("/api/v1/health/live", response_model=schemas.Health, tags=["health"])
    async def live() -> dict:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/api/v1/health/ready", response_model=schemas.Health, tags=["health"],
             responses={503: {"model": schemas.Error}})
    async def ready(request: Request):
        """200 once the models are loaded, 503 until then (or with the reason they failed to load)."""
        state: ServerState = request.app.state.facesearch
        if state.ready:
            return {"status": "ok"}
        if state.load_error:
            return JSONResponse({"error": f"the models could not be loaded: {state.load_error}"}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503)


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": one_line(message), **extra}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadRejected)
    async def upload_rejected(_: Request, exc: UploadRejected) -> JSONResponse:
        extra = {"path": exc.path, "reason": exc.reason} if exc.path else {}
        return _error(exc.status, str(exc), **extra)

    @app.exception_handler(ImageError)
    async def image_error(_: Request, exc: ImageError) -> JSONResponse:
        return _error(422, str(exc), path=exc.path, reason=exc.reason)

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(GalleryError)
    async def gallery_error(_: Request, exc: GalleryError) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(OptionsError)
    async def options_error(_: Request, exc: OptionsError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(FaceSearchError)
    async def other_error(_: Request, exc: FaceSearchError) -> JSONResponse:
        return _error(500, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if request.scope.get(BODY_TOO_LARGE):
            return _error(413, too_large_message(request.scope[BODY_TOO_LARGE]))
        response = _error(exc.status_code, str(exc.detail))
        if exc.status_code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "; ".join(_describe(e) for e in exc.errors()) or "invalid request")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")


def _describe(error: dict) -> str:
    """``query.top_k: Input should be greater than or equal to 1`` from one pydantic error."""
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid"))
