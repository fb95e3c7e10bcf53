"""Photos analysed on a Ray cluster: decoding, detection and embedding in worker processes.

``facesearch enroll --ray [ADDRESS]`` hands each batch of photos to a pool of Ray actors, one per
CPU the cluster offers; each actor builds its :class:`~facesearch.models.analysis.FaceAnalysis`
once and keeps its models loaded for every batch it is given. The results come back in the
order the batches went out, so the one writer (the gallery in the driver) stores them exactly
as a plain enrollment would.

Ray is imported here and only here, on first use: nothing else in facesearch pays for it, and
without the ``[ray]`` extra only ``--ray`` fails (in one line).

Workers read the photo files by the paths the driver gives them, so on a real cluster the
photos must be on a filesystem every node mounts at the same path, and every node needs
facesearch and its model weights (``FACESEARCH_CACHE``) installed.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, TypeVar

from facesearch.errors import GalleryError, OptionsError
from facesearch.models.analysis import FaceAnalysis
from facesearch.models.detect import Detector
from facesearch.models.face_cache import FaceCache
from facesearch.models.photo_faces import PhotoError, PhotoFaces, analyse_photos

#: Batches queued per actor beyond the one it works on, so no worker waits for the driver.
QUEUED_PER_ACTOR = 1
#: Seconds to wait for a cluster's head to accept a connection.
CONNECT_TIMEOUT_S = 5

T = TypeVar("T")


def _recipe(analysis: FaceAnalysis) -> dict:
    """What a worker needs to build the same analysis: its settings, not its loaded models
    (ONNX Runtime sessions do not travel between processes)."""
    if type(analysis) is not FaceAnalysis:
        raise OptionsError(f"--ray runs the FaceNet pipeline only, not {type(analysis).__name__}")
    det = analysis.detector
    return {"detector": {"min_face_size": det.min_face_size, "min_confidence": det.min_confidence,
                         "max_side": det.max_side, "backend": det.backend},
            "align": analysis.align, "flip": analysis.flip, "aligned": analysis.aligned,
            "crop_photos": analysis.crop_photos}


class PhotoWorker:
    """One Ray actor's state: an analysis (models load on its first batch) and the face cache."""

    def __init__(self, recipe: dict, cache_root: str | None) -> None:
        self.analysis = FaceAnalysis(Detector(**recipe["detector"]), align=recipe["align"], flip=recipe["flip"],
                                     aligned=recipe["aligned"], crop_photos=recipe["crop_photos"])
        self.cache = FaceCache.for_settings(self.analysis.settings, cache_root) if cache_root else None

    def analyse(self, photos: Sequence[tuple[str, str]]) -> list[PhotoFaces | PhotoError]:
        """Faces of each ``(path, sha256)``, as :func:`~facesearch.models.photo_faces.analyse_photos`."""
        return analyse_photos([(Path(p), sha) for p, sha in photos], self.analysis, self.cache)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise OptionsError("--ray needs Ray: pip install 'facesearch[ray]'") from None
    return ray


def check_reachable(address: str | None) -> None:
    """Fail in one line, at once, when a ``HOST:PORT`` or ``ray://HOST:PORT`` cluster does not
    answer: Ray itself retries an unreachable head for minutes, logging a warning every few
    seconds. ``None``, ``""`` (a local cluster) and ``auto`` pass: Ray answers those at once.

    Raises:
        GalleryError: the address does not accept a TCP connection.
    """
    where = (address or "").split("://", 1)[-1]
    if ":" not in where:
        return
    host, _, port = where.rpartition(":")
    host = host.strip("[]")  # an IPv6 address: [::1]:6379
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise GalleryError(f"Ray cluster {address}: unreachable ({reason.lower()})") from None


class RayAnalyser:
    """A pool of :class:`PhotoWorker` actors on a Ray cluster.

    Args:
        analysis: the driver's analysis; the workers build one with the same settings.
        cache_root: the face cache folder the workers use, ``None`` for none.
        address: the cluster (``ray.init(address=...)``: ``HOST:PORT``, ``ray://HOST:10001`` or
            ``auto``); ``None`` or ``""`` starts a local one for this run. A process that has
            already called ``ray.init`` uses its cluster whatever this says.
        workers: actors to start (default: one per CPU of the cluster).
    """

    def __init__(self, analysis: FaceAnalysis, cache_root: str | os.PathLike | None, *, address: str | None = None,
                 workers: int | None = None) -> None:
        recipe = _recipe(analysis)
        self._ray = ray = _import_ray()
        self._started = False
        if not ray.is_initialized():
            shown = address or "a local cluster"
            check_reachable(address)
            try:
                ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise GalleryError(f"Ray cluster {shown}: {reason}") from None
            self._started = True
        self._actors = []
        try:
            if workers is None:
                workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            actor = ray.remote(num_cpus=1)(PhotoWorker)
            root = str(cache_root) if cache_root else None
            self._actors = [actor.remote(recipe, root) for _ in range(workers)]
            self._pool = ray.util.ActorPool(self._actors)
        except BaseException:
            self.close()  # a cluster this object started must not outlive it
            raise

    @property
    def workers(self) -> int:
        return len(self._actors)

    def map(self, batches: Iterable[tuple[T, Sequence[tuple[Path, str]]]]
            ) -> Iterator[tuple[T, list[PhotoFaces | PhotoError]]]:
        """Analyse each ``(tag, [(path, sha256), ...])`` batch on the cluster; yields ``(tag, results)``
        in the order the batches came, while later batches are still being analysed. Batches are
        drawn from ``batches`` only as workers free up (a few queued), so a long list of photos
        is never held as decoded pixels, nor hashed far ahead of what is stored."""
        pending: list[Any] = []
        limit = self.workers * (1 + QUEUED_PER_ACTOR)
        # An interrupted run leaves its queued batches to close(), which stops the actors.
        for tag, photos in batches:
            if len(pending) >= limit:
                yield pending.pop(0), self._next()
            self._pool.submit(lambda a, v: a.analyse.remote(v), [(str(p), sha) for p, sha in photos])
            pending.append(tag)
        while pending:
            yield pending.pop(0), self._next()

    def _next(self) -> list[PhotoFaces | PhotoError]:
        try:
            return self._pool.get_next()
        except self._ray.exceptions.RayError as exc:
            text = str(exc).strip().splitlines()
            raise GalleryError(f"Ray worker failed: {text[-1] if text else type(exc).__name__}") from None

    def close(self) -> None:
        """Stop the actors, and the local cluster if this object started it."""
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._started:
            self._ray.shutdown()

    def __enter__(self) -> "RayAnalyser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
