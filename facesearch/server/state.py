"""What a running server holds: the gallery, the face batcher, the one writer thread, the limits,
the key check, and whether the models are loaded."""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import numpy as np
from fastapi import Request, WebSocket
from starlette.concurrency import run_in_threadpool

from facesearch.errors import one_line
from facesearch.gallery import Gallery
from facesearch.models.analysis import FaceAnalysis
from facesearch.models.detect import Detector
from facesearch.server.batcher import FaceBatcher
from facesearch.server.keys import KeyCheck, is_loopback
from facesearch.server.uploads import UploadLimits, decode_photo

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class ServerSettings:
    """How a server runs.

    Attributes:
        host: the address it listens on; anything but loopback makes API keys compulsory.
        limits: upload caps.
        workers: threads that detect and embed faces concurrently.
        max_batch: photos embedded together at most (1: no batching).
        load_models: load the models at start-up (readiness waits for it); tests of the web
            page alone may skip it.
    """

    host: str = "127.0.0.1"
    limits: UploadLimits = field(default_factory=UploadLimits)
    workers: int = 1
    max_batch: int = 8
    load_models: bool = True


class ServerState:
    """Shared by every request of one app (``app.state.facesearch``)."""

    def __init__(self, gallery: Gallery, settings: ServerSettings) -> None:
        self.gallery = gallery
        self.settings = settings
        self.limits = settings.limits
        self.keys = KeyCheck(gallery, loopback=is_loopback(settings.host))
        self.models_ready = threading.Event()
        self.load_error: str | None = None
        self.batcher = FaceBatcher(gallery.analysis, workers=settings.workers, max_batch=settings.max_batch,
                                   ready=self.models_ready)
        # Every change to the gallery runs on this one thread, in arrival order.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gallery-writer")
        # Photos are decoded on a few threads of their own: decoding allocates whole images, and
        # each thread that does keeps its own allocator arena, so many threads mean more memory.
        self._decoder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")
        self._analyses: dict[int, FaceAnalysis] = {}
        self._loader: threading.Thread | None = None

    # -- models ---------------------------------------------------------------------------------

    def start_loading(self) -> None:
        """Load the detector and embedder on a thread; :attr:`models_ready` is set when done."""
        self._loader = threading.Thread(target=self._load, name="model-loader", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        try:
            analysis = self.gallery.analysis
            analysis.embedder.embed(np.zeros((1, 160, 160, 3), np.uint8))  # builds and traces FaceNet
            analysis.detector.detect(np.zeros((64, 64, 3), np.uint8))     # builds MTCNN
            log.info("models loaded; ready")
        except Exception as exc:  # noqa: BLE001 - reported by /health/ready and each request
            self.load_error = one_line(exc)
            log.error("could not load the models: %s", self.load_error)
        finally:
            self.models_ready.set()

    @property
    def ready(self) -> bool:
        return self.models_ready.is_set() and self.load_error is None

    def enrollment_analysis(self, min_face_size: int | None) -> FaceAnalysis:
        """The gallery's analysis, or one with another minimum face size sharing its embedder."""
        if min_face_size is None or min_face_size == self.gallery.analysis.detector.min_face_size:
            return self.gallery.analysis
        if min_face_size not in self._analyses:
            self._analyses[min_face_size] = FaceAnalysis(Detector(min_face_size=min_face_size),
                                                         embedder=self.gallery.analysis.embedder,
                                                         flip=self.gallery.analysis.flip)
        return self._analyses[min_face_size]

    # -- running work ---------------------------------------------------------------------------

    async def read(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run a gallery read on a worker thread (reads run concurrently, also with the writer)."""
        return await run_in_threadpool(fn, *args, **kwargs)

    async def decode(self, name: str, data: bytes) -> np.ndarray:
        """An uploaded photo's ``(H, W, 3)`` uint8 RGB pixels (see :func:`~.uploads.decode_photo`)."""
        return await asyncio.wrap_future(self._decoder.submit(decode_photo, name, data, self.limits))

    async def write(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run a gallery change on the one writer thread, after the changes submitted before it."""
        return await asyncio.wrap_future(self._writer.submit(fn, *args, **kwargs))

    def close(self) -> None:
        """Finish queued work, then stop the threads."""
        self.batcher.close()
        self._writer.shutdown(wait=True)
        self._decoder.shutdown(wait=True)


def server_state(request: Request) -> ServerState:
    """FastAPI dependency: the app's :class:`ServerState`."""
    return request.app.state.facesearch


def socket_state(websocket: WebSocket) -> ServerState:
    return websocket.app.state.facesearch
