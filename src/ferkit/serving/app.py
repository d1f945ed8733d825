"""``create_app()``: the FastAPI application, with the model loaded once at start-up."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image

from .. import __version__
from ..inference import Recognizer
from .engine import Engine, clone_recognizer
from .errors import install_error_handlers
from .jobs import JobStore
from .live import live
from .origins import OriginGuard
from .routes import router
from .settings import ServeSettings

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"

DESCRIPTION = """Faces and emotions in photos, videos and live webcam frames.

* `POST /v1/analyze`: a photo (raw body or multipart field `file`) -> faces, labels, probabilities.
* `POST /v1/jobs`: a video -> a job id; `GET /v1/jobs/{id}` for progress, then `/results/...`.
* WebSocket `/v1/live`: binary JPEG frames in, one JSON reply per frame.

Every refusal is a 4xx with `{"error": {"status", "code", "message"}}`.
"""


def create_app(settings: ServeSettings | None = None, *, recognizer: Recognizer | None = None) -> FastAPI:
    """The web service and its page. The model loads when the app starts (not per request).

    ``recognizer`` replaces the one built from ``settings.options``
    (tests pass one in to share it between apps).
    """
    settings = settings or ServeSettings()
    # Uploads are held to settings.max_image_pixels; Pillow's own bomb warning would only add noise.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rec = recognizer or await run_in_threadpool(settings.options.recognizer)
        engine = Engine(rec, workers=settings.workers, max_pending=settings.max_pending)
        await run_in_threadpool(engine.warm_up)
        jobs = JobStore(settings, clone_recognizer(rec))
        jobs.recover()
        jobs.start()
        app.state.settings, app.state.engine, app.state.jobs = settings, engine, jobs
        app.state.started = time.time()
        log.info("ferkit service ready: %s, %d inference worker(s), jobs in %s", rec.info.name, engine.workers,
                 settings.jobs_dir)
        try:
            yield
        finally:
            jobs.stop()
            engine.close()

    # No /docs or /redoc: FastAPI serves their viewers from a CDN, and nothing here may need the internet.
    app = FastAPI(title="ferkit", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    install_error_handlers(app)
    if settings.allowed_origins:  # their pages read the answers too: CORS headers, preflights
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.allowed_origins), allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["Location", "Retry-After"])
    app.add_middleware(OriginGuard, settings=settings)  # added last: runs first, before CORS and the routes
    app.include_router(router)
    app.add_api_websocket_route("/v1/live", live)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> RedirectResponse:
        return RedirectResponse("/static/favicon.svg")

    return app
