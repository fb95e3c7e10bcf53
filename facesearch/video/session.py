"""Identify enrolled people live, in a camera, a network stream or a video file.

    >>> from facesearch import live
    >>> from facesearch.gallery import Gallery
    >>> summary = live.run(Gallery("~/celebs"), live.Source.video("party.mp4"),
    ...                    output="party.annotated.mp4", display=False, on_event=print)

Each *analysed* frame goes through detection (on a copy downscaled to ``detect_side``), the
IoU tracker of :mod:`facesearch.video.tracker`, FaceNet for the faces the tracker asks about, and
the gallery's matcher. Every frame, analysed or not, is drawn with the latest known tracks.

Frame policy:

* **Video files** are processed in order, every frame, as fast as the machine allows (not
  paced to the video's fps): the result is deterministic and the output video has exactly
  as many frames as the input. Every frame is analysed unless ``analyse_every`` is above 1;
  frames in between are drawn with the tracks of the last analysed frame.
* **Cameras and streams** never wait on the model: a worker thread analyses the *latest*
  frame only. Frames that arrive while it works replace the one waiting, i.e. they are
  dropped for analysis (still shown and written), never queued, so the picture stays live.
  The window says so when that happens.

Events (``on_event`` gets dicts): ``appeared`` (a new track, with its first match),
``identified`` (a track's identity settled, or a settled identity changed), ``left`` (a
track missed ``max_missed`` analysed frames in a row, or the source ended) and a final
``summary``. ``time`` is the video timestamp (frame / fps) for files and seconds since the
start for cameras and streams.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from facesearch.models.analysis import FaceAnalysis
from facesearch.models.detect import Detector
from facesearch.errors import FaceSearchError, GalleryError
from facesearch.search.match import DEFAULT_THRESHOLD
from facesearch.video.tracker import Track, Tracker, drop_nested

log = logging.getLogger(__name__)

#: Re-embed a steady, settled track every this many analysed frames.
DEFAULT_EVERY = 10
#: Longest side, in pixels, of the copy of each frame that detection runs on.
DEFAULT_DETECT_SIDE = 640
#: Analysed frames in a row without its face after which a track is over.
DEFAULT_MAX_MISSED = 5
#: Output containers and the codec written into each.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
#: Used when a source does not report a usable frame rate.
FALLBACK_FPS = 25.0
WINDOW = "facesearch live"

Event = dict
EventSink = Callable[[Event], None]


class LiveError(FaceSearchError):
    """A camera, stream, video or output file cannot be used, or a video broke off."""


@dataclass(frozen=True)
class Source:
    """Where frames come from: ``Source.camera(0)``, ``Source.video(path)``, ``Source.stream(url)``."""

    kind: str          # "camera", "video" or "stream"
    target: int | str  # camera index, file path or URL

    @classmethod
    def camera(cls, index: int = 0) -> "Source":
        return cls("camera", int(index))

    @classmethod
    def video(cls, path: str | os.PathLike) -> "Source":
        return cls("video", os.fspath(path))

    @classmethod
    def stream(cls, url: str) -> "Source":
        return cls("stream", str(url))

    @property
    def name(self) -> str:
        """How messages name it: ``camera 0``, the path, or the URL."""
        return f"camera {self.target}" if self.kind == "camera" else str(self.target)

    @property
    def is_file(self) -> bool:
        return self.kind == "video"


@dataclass(frozen=True)
class TrackView:
    """What the overlay draws for one track: box ``(x, y, w, h)`` pixels, identity, similarity."""

    id: int
    box: tuple[float, float, float, float]
    identity: str | None
    similarity: float


# -- opening things --------------------------------------------------------------------------

@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's and FFmpeg's own stderr chatter (our errors say what went wrong).

    OpenCV routes FFmpeg's messages ("moov atom not found", ...) through its logger, but once
    TensorFlow is loaded some still get through; ``OPENCV_FFMPEG_LOGLEVEL`` (read when FFmpeg
    is first used in the process, so it stays set; a value the user set wins) stops those.
    Left alone with ``-vv`` (debug logging).
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def open_source(source: Source) -> tuple[cv2.VideoCapture, float, int]:
    """Open a source. Returns ``(capture, fps, frame_count)``; ``frame_count`` is 0 when unknown.

    Raises:
        LiveError: no camera at that index, no such file, or nothing that can be decoded.
    """
    if source.kind == "camera":
        cap = cv2.VideoCapture(int(source.target))
        if not cap.isOpened():
            raise LiveError(f"{source.name}: cannot be opened (no camera at index {source.target}, or it is busy)")
    elif source.kind == "video":
        path = Path(source.target)
        if not path.exists():
            raise LiveError(f"{path}: no such video file")
        if path.is_dir():
            raise LiveError(f"{path}: is a folder, not a video file")
        # FFmpeg only: the catch-all backends would read e.g. a single image as a "video".
        api = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
        cap = cv2.VideoCapture(str(path), api)
        if not cap.isOpened():
            raise LiveError(f"{path}: cannot be opened as a video (not a video, or an unsupported or broken file)")
    elif source.kind == "stream":
        cap = cv2.VideoCapture(str(source.target))
        if not cap.isOpened():
            raise LiveError(f"{source.name}: cannot open the stream")
    else:
        raise ValueError(f"unknown source kind {source.kind!r}")
    fps = cap.get(cv2.CAP_PROP_FPS)
    if not (0 < fps <= 1000):  # cameras and some streams report 0, or nonsense
        log.info("%s: no usable frame rate reported (%s); assuming %s", source.name, fps, FALLBACK_FPS)
        fps = FALLBACK_FPS
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if source.is_file else 0
    return cap, float(fps), max(count, 0)


def check_output(path: str | os.PathLike) -> str:
    """The fourcc for an output video path; refuses extensions we cannot write."""
    ext = Path(path).suffix.lower()
    if ext not in FOURCC:
        raise LiveError(f"{path}: cannot write this kind of video; use one of {', '.join(sorted(FOURCC))}")
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise LiveError(f"{path}: folder {folder} does not exist")
    return FOURCC[ext]


def open_writer(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """A video writer for ``size`` = ``(width, height)`` frames at ``fps`` (codec by extension)."""
    fourcc = check_output(path)
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise LiveError(f"{path}: cannot write a video there")
    return writer


def check_display() -> None:
    """Refuse to start when no window can be shown (instead of crashing in the GUI toolkit)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise LiveError("no display to show the video on (DISPLAY is not set); use --no-display")


# -- analysis -------------------------------------------------------------------------------

def _round(value: float, digits: int = 4) -> float | None:
    # JSON has no NaN: a similarity that does not exist is null.
    return None if value is None or np.isnan(value) else round(float(value), digits)


class Analyser:
    """Detect, track, embed and match on analysed frames, and turn what happens into events.

    Args:
        gallery: a :class:`~facesearch.gallery.Gallery` with at least one enrolled face.
        matcher: ``"knn"`` or ``"centroid"``.
        threshold: cosine similarity under which a face is unknown (default: the matcher's).
        every: re-embed a steady track every this many analysed frames.
        detect_side: detection runs on a copy of the frame with this longest side (pixels).
        tracking: ``False`` embeds every face on every analysed frame and shows each frame's
            own answer (no smoothing); tracks still link the boxes for the events.
        max_missed: analysed frames in a row without its face after which a track ends.
        on_event: called with each event dict, from whichever thread analyses.

    Raises:
        GalleryError: the gallery is empty.
    """

    def __init__(self, gallery, *, matcher: str = "knn", threshold: float | None = None,
                 every: int = DEFAULT_EVERY, detect_side: int | None = DEFAULT_DETECT_SIDE, tracking: bool = True,
                 max_missed: int = DEFAULT_MAX_MISSED, on_event: EventSink | None = None) -> None:
        if not gallery.store.count_faces():
            raise GalleryError(f"{gallery.home}: the gallery is empty; enroll people first")
        base = gallery.analysis
        # Same detector settings as the gallery, except the detection size: a frame is only
        # as large as it needs to be for the faces a camera sees, and MTCNN's cost grows with it.
        self.detector = Detector(min_face_size=base.detector.min_face_size,
                                 min_confidence=base.detector.min_confidence, max_side=detect_side)
        self.analysis = FaceAnalysis(detector=self.detector, embedder=base.embedder, align=base.align)
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
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
        blank = np.zeros((shape[0], shape[1], 3), dtype=np.uint8)
        self.detector.detect(blank)
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
        event = {"event": kind, "time": round(seconds, 3), "frame": frame, "track": track.id,
                 "identity": track.identity, "similarity": _round(track.similarity)}
        if kind == "left":
            event["last_frame"] = track.last_frame
        with self._lock:
            self.on_event(event)


# -- drawing --------------------------------------------------------------------------------

class RateMeter:
    """Events per second over the last ``span`` seconds (for the overlay)."""

    def __init__(self, span: float = 2.0) -> None:
        self.span = span
        self.times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self.times.append(now)

    def rate(self, now: float) -> float:
        while self.times and self.times[0] < now - self.span:
            self.times.popleft()
        return len(self.times) / self.span


def render(image: np.ndarray, view: tuple[TrackView, ...]) -> np.ndarray:
    """A BGR copy of the RGB ``image`` with each track's box, name and similarity drawn."""
    from facesearch.imaging.annotate import draw_faces

    drawn = draw_faces(image, [(v.box, v.identity, v.similarity) for v in view])
    return cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)


def draw_status(bgr: np.ndarray, text: str, warn: bool = False) -> None:
    """Write a status line in the top-left corner of a BGR frame, in place."""
    colour = (0, 0, 255) if warn else (255, 255, 255)
    for thickness, col in ((3, (0, 0, 0)), (1, colour)):  # dark outline keeps it readable anywhere
        cv2.putText(bgr, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, col, thickness, cv2.LINE_AA)


class _Screen:
    """The window (when shown) and the output video (when asked); frames are BGR."""

    def __init__(self, display: bool, output: str | None, fps: float) -> None:
        self.display = display
        self.output = output
        self.fps = fps
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.written = 0

    def write(self, bgr: np.ndarray) -> None:
        if self.output is None:
            return
        if self.writer is None:
            self.size = (bgr.shape[1], bgr.shape[0])
            self.writer = open_writer(self.output, self.fps, self.size)
        if (bgr.shape[1], bgr.shape[0]) != self.size:  # a stream changed resolution midway
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(bgr)
        self.written += 1

    def show(self, bgr: np.ndarray) -> bool:
        """Show a frame; ``False`` when the user asked to quit (q, Esc, or closed the window)."""
        if not self.display:
            return True
        try:
            cv2.imshow(WINDOW, bgr)
            key = cv2.waitKey(1) & 0xFF
            closed = cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error as exc:
            raise LiveError(f"cannot show a window ({str(exc).strip().splitlines()[-1]}); use --no-display") from None
        return key not in (ord("q"), 27) and not closed

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()  # writes the index (mp4 'moov'), making the file playable
            self.writer = None
        if self.display:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(WINDOW)
                cv2.waitKey(1)


# -- the loops ------------------------------------------------------------------------------

@dataclass
class _Run:
    """Counters of one run, filled in by the loops; ``interrupt`` is set by Ctrl-C."""

    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    stopped: str = "end"       # end, quit, interrupted, error
    error: str | None = None
    interrupt: threading.Event = field(default_factory=threading.Event)

    def interrupted(self) -> bool:
        """True (and ``stopped`` set) once Ctrl-C was pressed: the loops end at the next frame."""
        if self.interrupt.is_set():
            self.stopped = "interrupted"
            return True
        return False


@contextlib.contextmanager
def _ctrl_c_sets(flag: threading.Event) -> Iterator[None]:
    """While inside, SIGINT sets ``flag`` instead of raising KeyboardInterrupt.

    A KeyboardInterrupt is raised wherever the main thread happens to be, which includes
    clean-up callbacks (``__del__``, finalizers; TensorFlow has many) whose exceptions Python
    prints and drops; under load a run once went on to its last frame after Ctrl-C. A flag the
    loops check once a frame cannot be lost. A second Ctrl-C raises KeyboardInterrupt as
    usual, for a run stuck inside one call. (Only the main thread may set signal handlers;
    elsewhere KeyboardInterrupt handling stays.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame) -> None:
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _video_loop(cap, source: Source, expected: int, fps: float, analyser: Analyser, screen: _Screen,
                analyse_every: int, state: _Run) -> None:
    """Every frame in order; analyse every ``analyse_every``-th. Raises LiveError if the file breaks off."""
    meter = RateMeter()
    start = time.perf_counter()
    while not state.interrupted():
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        n = state.frames
        if n % analyse_every == 0:
            analyser.analyse(rgb, n, n / fps)
        out = render(rgb, analyser.view)
        screen.write(out)
        state.frames += 1
        state.seconds = time.perf_counter() - start
        if screen.display:
            meter.tick(state.seconds)
            draw_status(out, f"frame {n + 1}/{expected or '?'}  {meter.rate(state.seconds):.1f} fps")
            if not screen.show(out):
                state.stopped = "quit"
                return
    if state.stopped == "interrupted":
        return
    if state.frames == 0:
        raise LiveError(f"{source.name}: no frame could be read (not a video, or broken from the start)")
    # Some containers only estimate their frame count, so allow a frame (or 1%) of slack.
    if expected and state.frames < expected - max(1, expected // 100):
        raise LiveError(f"{source.name}: video breaks off at frame {state.frames} of {expected} "
                        f"(corrupt or truncated); output closed there")


class _Mailbox:
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
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item


class _Worker(threading.Thread):
    """Analyses the latest frame from a mailbox until stopped; keeps the first error."""

    def __init__(self, analyser: Analyser, mailbox: _Mailbox) -> None:
        super().__init__(name="facesearch-analysis", daemon=True)
        self.analyser = analyser
        self.mailbox = mailbox
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.last = (0, 0.0)  # frame number and time of the last analysed frame

    def run(self) -> None:
        while not self.stop.is_set():
            item = self.mailbox.take(timeout=0.1)
            if item is None:
                continue
            rgb, n, seconds = item
            try:
                self.analyser.analyse(rgb, n, seconds)
                self.last = (n, seconds)
            except BaseException as exc:  # handed to the capture thread, which raises it
                self.error = exc
                self.stop.set()


def _live_loop(cap, source: Source, analyser: Analyser, screen: _Screen, state: _Run) -> None:
    """Show every frame as it comes; analysis runs beside it on the latest frame only."""
    mailbox = _Mailbox()
    worker = _Worker(analyser, mailbox)
    start = time.perf_counter()
    worker.start()
    try:
        _pump(cap, source, analyser, screen, state, mailbox, worker, start)
    finally:
        worker.stop.set()
        # An analysis in flight finishes first (a fraction of a second); it is a daemon thread,
        # so a stuck one cannot keep the process alive.
        worker.join(timeout=10)
        if mailbox.take(timeout=0) is not None:
            state.dropped += 1
        state.seconds = time.perf_counter() - start
    if worker.error is not None:
        raise worker.error


def _pump(cap, source: Source, analyser: Analyser, screen: _Screen, state: _Run, mailbox: _Mailbox,
          worker: _Worker, start: float) -> None:
    """The capture thread's loop: read, hand to analysis, draw, write, show."""
    shown, analysed_at, dropped_at = RateMeter(), RateMeter(), RateMeter()
    analysed_before = 0
    failures = 0
    while not state.interrupted():
        ok, bgr = cap.read()
        now = time.perf_counter() - start
        if not ok:
            # Cameras hiccup now and then; a few failed reads in a row end the run.
            failures += 1
            if failures < 5:
                time.sleep(0.05)
                continue
            if state.frames == 0:
                raise LiveError(f"{source.name}: opened, but delivered no frame")
            if source.kind == "camera":
                raise LiveError(f"{source.name}: stopped delivering frames after frame {state.frames}")
            log.info("%s: stream ended after %d frames", source.name, state.frames)
            return
        failures = 0
        if worker.error is not None:
            return  # raised by the caller once the worker has stopped
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if mailbox.put((rgb, state.frames, now)):
            state.dropped += 1
            dropped_at.tick(now)
        out = render(rgb, analyser.view)
        screen.write(out)
        state.frames += 1
        shown.tick(now)
        for _ in range(analyser.analysed - analysed_before):
            analysed_at.tick(now)
        analysed_before = analyser.analysed
        if screen.display:
            dropping = dropped_at.rate(now) > 0
            text = f"{shown.rate(now):.1f} fps shown, {analysed_at.rate(now):.1f} analysed"
            draw_status(out, text + ("  (dropping frames for analysis)" if dropping else ""), warn=dropping)
            if not screen.show(out):
                state.stopped = "quit"
                return


def run(gallery, source: Source, *, output: str | os.PathLike | None = None, display: bool = True,
        on_event: EventSink | None = None, matcher: str = "knn", threshold: float | None = None,
        every: int = DEFAULT_EVERY, detect_side: int | None = DEFAULT_DETECT_SIDE, tracking: bool = True,
        analyse_every: int = 1, max_missed: int = DEFAULT_MAX_MISSED) -> dict:
    """Identify people in a camera, stream or video until it ends or the user quits.

    Args:
        gallery: the :class:`~facesearch.gallery.Gallery` to identify against (not empty).
        source: where frames come from, see :class:`Source`.
        output: write the annotated video here (``.mp4``/``.mov``/``.m4v``: mp4v, ``.avi``:
            MJPG), at the source's frame rate; it is closed properly on every way out.
        display: show a window (``q`` or Esc quits).
        on_event: called with each event dict; the last one is the ``summary``.
        analyse_every: video files only: analyse every this many frames (1: all of them).
        Others: see :class:`Analyser`.

    Returns:
        The ``summary`` event: ``frames`` (read, drawn and written), ``analysed``, ``dropped``
        (live sources: frames not analysed because analysis was busy), ``tracks``,
        ``embedded`` (face embeddings computed), ``identities`` (settled names seen),
        ``seconds`` (wall time), ``analysed_fps``, ``displayed_fps``, ``stopped`` (``end``,
        ``quit`` or ``interrupted``). Ctrl-C ends the run like ``q``.

    Raises:
        LiveError: the source or output cannot be opened, or a video file breaks off midway
            (after the output is closed and the summary emitted).
        GalleryError: the gallery is empty.
    """
    if analyse_every < 1:
        raise ValueError("analyse_every must be at least 1")
    if output is not None:
        check_output(output)
    if display:
        check_display()
    analyser = Analyser(gallery, matcher=matcher, threshold=threshold, every=every, detect_side=detect_side,
                        tracking=tracking, max_missed=max_missed, on_event=on_event)
    state = _Run()
    with quiet_opencv():
        cap, fps, expected = open_source(source)
        screen = _Screen(display, None if output is None else os.fspath(output), fps)
        failure: LiveError | None = None
        try:
            width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            analyser.warm_up((height or 480, width or 640))
            with _ctrl_c_sets(state.interrupt):
                if source.is_file:
                    _video_loop(cap, source, expected, fps, analyser, screen, analyse_every, state)
                else:
                    _live_loop(cap, source, analyser, screen, state)
        except KeyboardInterrupt:
            state.stopped = "interrupted"
        except LiveError as exc:
            # The summary still goes out, and the output is closed, before the error is raised.
            failure, state.stopped, state.error = exc, "error", str(exc)
        finally:
            screen.close()
            cap.release()
    end_frame = max(state.frames - 1, 0)
    analyser.finish(end_frame, end_frame / fps if source.is_file else state.seconds)
    summary = _summary(source, analyser, state)
    if on_event is not None:
        on_event(summary)
    if failure is not None:
        raise failure
    return summary


def _summary(source: Source, analyser: Analyser, state: _Run) -> dict:
    seconds = max(state.seconds, 1e-9)
    summary = {"event": "summary", "source": source.name, "frames": state.frames, "analysed": analyser.analysed,
               "dropped": state.dropped, "tracks": analyser.tracker.created, "embedded": analyser.embedded,
               "identities": sorted(analyser.identities), "seconds": round(state.seconds, 3),
               "analysed_fps": round(analyser.analysed / seconds, 2) if state.seconds else 0.0,
               "displayed_fps": round(state.frames / seconds, 2) if state.seconds else 0.0,
               "stopped": state.stopped}
    if state.error:
        summary["error"] = state.error
    return summary


def benchmark(gallery, video_path: str | os.PathLike, tracking: bool = True, *,
              detect_side: int | None = DEFAULT_DETECT_SIDE, every: int = DEFAULT_EVERY) -> dict:
    """Analysed frames per second on a video file, every frame analysed, headless, no output.

    The models are warmed up before the clock starts. Returns ``{"video", "tracking",
    "frames", "analysed", "embedded", "seconds", "analysed_fps", "embeddings_per_frame"}``.
    """
    summary = run(gallery, Source.video(video_path), display=False, tracking=tracking, detect_side=detect_side,
                  every=every)
    return {"video": os.fspath(video_path), "tracking": tracking, "frames": summary["frames"],
            "analysed": summary["analysed"], "embedded": summary["embedded"], "seconds": summary["seconds"],
            "analysed_fps": summary["analysed_fps"],
            "embeddings_per_frame": round(summary["embedded"] / max(summary["analysed"], 1), 3)}
