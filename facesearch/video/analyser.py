"""Analysis of video frames: detect, track, embed and match; and the worker thread that keeps
live sources from waiting on it.

Each analysed frame goes through detection (on a copy downscaled to ``detect_side``), the IoU
tracker of :mod:`facesearch.video.tracker`, FaceNet for the faces the tracker asks about, and
the gallery's matcher. Cameras and streams hand their frames to an :class:`AnalysisWorker`
through a one-frame :class:`Mailbox`, so only the latest frame is ever analysed.
"""
from __future__ import annotations

import threading

import numpy as np

from facesearch.errors import GalleryError
from facesearch.models.analysis import FaceAnalysis
from facesearch.models.detect import Detector
from facesearch.video.events import EventSink, track_event
from facesearch.video.overlay import TrackView
from facesearch.video.tracker import Track, Tracker, drop_nested

#: Re-embed a steady, settled track every this many analysed frames.
DEFAULT_EVERY = 10
#: Longest side, in pixels, of the copy of each frame that detection runs on.
DEFAULT_DETECT_SIDE = 640
#: Analysed frames in a row without its face after which a track is over.
DEFAULT_MAX_MISSED = 5


class Analyser:
    """Detect, track, embed and match on analysed frames, and turn what happens into events.

    Args:
        gallery: a :class:`~facesearch.gallery.Gallery` with at least one enrolled face.
        matcher: ``"knn"`` or ``"centroid"``.
        threshold: cosine similarity under which a face is unknown (default: the gallery's calibrated one).
        every: re-embed a steady track every this many analysed frames.
        detect_side: detection runs on a copy of the frame with this longest side (pixels).
        tracking: ``False`` embeds every face on every analysed frame and shows each frame's
            own answer (no smoothing); tracks still link the boxes for the events.
        max_missed: analysed frames in a row without its face after which a track ends.
        on_event: called with each event dict (:mod:`facesearch.video.events`), from whichever
            thread analyses.

    Raises:
        GalleryError: the gallery is empty.
    """

    def __init__(self, gallery, *, matcher: str = "knn", threshold: float | None = None,
                 every: int = DEFAULT_EVERY, detect_side: int | None = DEFAULT_DETECT_SIDE, tracking: bool = True,
                 max_missed: int = DEFAULT_MAX_MISSED, on_event: EventSink | None = None) -> None:
        if gallery.is_empty():
            raise GalleryError(f"{gallery.home}: the gallery is empty; enroll people first")
        base = gallery.analysis
        # Same detector settings as the gallery, except the detection size: a frame is only
        # as large as it needs to be for the faces a camera sees, and MTCNN's cost grows with it.
        self.detector = Detector(min_face_size=base.detector.min_face_size,
                                 min_confidence=base.detector.min_confidence, max_side=detect_side,
                                 backend=base.detector.backend)
        self.analysis = FaceAnalysis(detector=self.detector, embedder=base.embedder, align=base.align, flip=base.flip)
        self.threshold = gallery.default_threshold() if threshold is None else float(threshold)
        # Fitted once: the gallery is read at the start, not on every frame.
        self.matcher = gallery.matcher(matcher, threshold=self.threshold)
        self.tracker = Tracker(self.threshold, every=every, max_missed=max_missed, smoothing=tracking)
        self.on_event = on_event
        self.view: tuple[TrackView, ...] = ()
        self.analysed = 0
        self.embedded = 0
        self.identities: set[str] = set()
        self._lock = threading.Lock()

    def warm_up(self, shape: tuple[int, ...]) -> None:
        """Build and trace the models on a blank frame of ``shape``, so timing starts warm."""
        self.detector.warm_up(shape[0], shape[1])
        self.analysis.embedder.embed(np.zeros((1, 160, 160, 3), dtype=np.uint8))

    def analyse(self, image: np.ndarray, frame: int, seconds: float) -> None:
        """Analyse one ``(H, W, 3)`` uint8 RGB frame number ``frame`` taken at ``seconds``."""
        detections = self.detector.detect(image)
        detections = [detections[i] for i in drop_nested([d.box for d in detections])]
        step = self.tracker.update([d.box for d in detections], frame)
        for track in step.died:
            self._emit("left", track, frame, seconds)
        todo = [(det, track) for det, track in zip(detections, step.tracks) if self.tracker.needs_embedding(track)]
        settled = []
        if todo:
            faces = self.analysis.embed_detections([image], [[det for det, _ in todo]])[0]
            matches = self.matcher.identify(np.stack([f.embedding for f in faces]))
            self.embedded += len(faces)
            for (_, track), match in zip(todo, matches):
                if self.tracker.record(track, match.identity, match.similarity):
                    settled.append(track)
        for track in step.born:
            self._emit("appeared", track, frame, seconds)
        for track in settled:
            self._emit("identified", track, frame, seconds)
            if track.identity is not None:
                self.identities.add(track.identity)
        self.analysed += 1
        # One assignment: the display thread reads a complete snapshot, never a half-built one.
        self.view = tuple(TrackView(t.id, t.box, t.identity, t.similarity) for t in self.tracker.tracks
                          if t.missed == 0)

    def finish(self, frame: int, seconds: float) -> None:
        """The source ended: every remaining track leaves."""
        for track in self.tracker.finish():
            self._emit("left", track, frame, seconds)
        self.view = ()

    def _emit(self, kind: str, track: Track, frame: int, seconds: float) -> None:
        if self.on_event is None:
            return
        event = track_event(kind, track, frame, seconds)
        with self._lock:
            self.on_event(event)


class Mailbox:
    """A one-frame slot between capture and analysis: a new frame replaces one not yet taken."""

    def __init__(self) -> None:
        self._item = None
        self._cond = threading.Condition()

    def put(self, item) -> bool:
        """Leave ``item`` for the worker; ``True`` when it replaced (dropped) a waiting frame."""
        with self._cond:
            dropped = self._item is not None
            self._item = item
            self._cond.notify()
            return dropped

    def take(self, timeout: float):
        """The waiting item, emptying the slot; ``None`` when none came within ``timeout`` seconds."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item


class AnalysisWorker(threading.Thread):
    """Analyses the latest ``(rgb, frame, seconds)`` from a mailbox until stopped; keeps the first error."""

    def __init__(self, analyser: Analyser, mailbox: Mailbox) -> None:
        super().__init__(name="facesearch-analysis", daemon=True)
        self.analyser = analyser
        self.mailbox = mailbox
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            item = self.mailbox.take(timeout=0.1)
            if item is None:
                continue
            rgb, n, seconds = item
            try:
                self.analyser.analyse(rgb, n, seconds)
            except BaseException as exc:  # handed to the capture thread, which raises it
                self.error = exc
                self.stop.set()
