"""Faces of photos that arrive together, found and embedded together.

Every identify request, verify request and live frame hands its decoded photo to one
:class:`FaceBatcher`. Its worker thread takes the oldest waiting photo plus whatever else is
waiting (up to ``max_batch``) and runs :meth:`FaceAnalysis.get_batch
<facesearch.models.analysis.FaceAnalysis.get_batch>` on them: photos of the same size are
detected as one MTCNN batch and every face of the batch is embedded in one FaceNet call. A lone
request is not held back waiting for company; under load, the requests that arrive while a batch
runs make the next one.

On two CPU cores a batch of eight equal photos cost about 0.3 s of CPU per photo against 0.5 s
one by one, and larger TensorFlow operations spread over both cores by themselves. A second
worker thread halves the batches without adding a core (the threads share the interpreter
lock), so one is the default (docs/benchmarks.md, ``facesearch bench serve``).
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from facesearch.models.analysis import Face, FaceAnalysis

log = logging.getLogger(__name__)


@dataclass
class _Job:
    image: np.ndarray
    future: Future = field(default_factory=Future)


class FaceBatcher:
    """Worker threads that detect and embed faces for many callers at once.

    Args:
        analysis: the detector and embedder (shared with the gallery).
        workers: threads that run batches concurrently.
        max_batch: photos taken into one batch at most; 1 turns batching off.
        ready: the workers start once this event is set (after the models are loaded).
    """

    def __init__(self, analysis: FaceAnalysis, *, workers: int = 1, max_batch: int = 8,
                 ready: threading.Event | None = None) -> None:
        self.analysis = analysis
        self.max_batch = max(1, int(max_batch))
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._ready = ready or threading.Event()
        if ready is None:
            self._ready.set()
        self._lock = threading.Lock()
        self._stats = {"photos": 0, "batches": 0, "largest_batch": 0}
        self._threads = [threading.Thread(target=self._work, name=f"faces-{i}", daemon=True)
                         for i in range(max(1, int(workers)))]
        for t in self._threads:
            t.start()

    def submit(self, image: np.ndarray) -> Future:
        """A future of the faces in an ``(H, W, 3)`` uint8 RGB photo, largest first (``list[Face]``)."""
        job = _Job(image)
        self._queue.put(job)
        return job.future

    async def faces(self, image: np.ndarray) -> list[Face]:
        """The faces of one photo, awaited without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(image))

    def stats(self) -> dict:
        """``{"workers", "max_batch", "photos", "batches", "largest_batch", "mean_batch"}`` so far."""
        with self._lock:
            s = dict(self._stats)
        s["mean_batch"] = round(s["photos"] / s["batches"], 2) if s["batches"] else None
        return {"workers": len(self._threads), "max_batch": self.max_batch, **s}

    def close(self) -> None:
        """Finish the photos already waiting, then stop the workers."""
        self._ready.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()

    def _take(self) -> list[_Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        jobs = [first]
        while len(jobs) < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:  # a stop signal: leave it for this or another worker's next take
                self._queue.put(None)
                break
            jobs.append(job)
        return jobs

    def _work(self) -> None:
        self._ready.wait()
        while True:
            jobs = self._take()
            if jobs is None:
                return
            jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            if jobs:
                self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        try:
            faces = self.analysis.get_batch([job.image for job in jobs])
        except Exception as exc:  # noqa: BLE001 - the callers get it; the worker carries on
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
                return
            for job in jobs:  # one bad photo must not fail the others: each on its own
                self._run([job])
            return
        with self._lock:
            self._stats["photos"] += len(jobs)
            self._stats["batches"] += 1
            self._stats["largest_batch"] = max(self._stats["largest_batch"], len(jobs))
        for job, found in zip(jobs, faces):
            job.future.set_result(found)
