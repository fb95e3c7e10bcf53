"""Identify enrolled people live, in a camera, a network stream or a video file.

    >>> from facesearch import video
    >>> from facesearch.gallery import Gallery
    >>> summary = video.run(Gallery("~/celebs"), video.Source.video("party.mp4"),
    ...                     output="party.annotated.mp4", display=False, on_event=print)

:func:`run` opens the source (:mod:`.sources`), analyses frames (:mod:`.analyser`), draws the
latest known tracks on every frame, analysed or not (:mod:`.overlay`), writes and shows them
(:mod:`.output`) and reports what happens as events (:mod:`.events`).

Frame policy:

* **Video files** are processed in order, every frame, as fast as the machine allows (not
  paced to the video's fps): the result is deterministic and the output video has exactly
  as many frames as the input. Every frame is analysed unless ``analyse_every`` is above 1;
  frames in between are drawn with the tracks of the last analysed frame.
* **Cameras and streams** never wait on the model: a worker thread analyses the *latest*
  frame only. Frames that arrive while it works replace the one waiting, i.e. they are
  dropped for analysis (still shown and written), never queued, so the picture stays live.
  The window says so when that happens.

Ctrl-C ends a run like ``q`` does: the output is closed and the summary still goes out.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import cv2

from facesearch.errors import LiveError
from facesearch.video.analyser import (DEFAULT_DETECT_SIDE, DEFAULT_EVERY, DEFAULT_MAX_MISSED, AnalysisWorker,
                                       Analyser, Mailbox)
from facesearch.video.events import EventSink, summary_event
from facesearch.video.output import Screen, check_display, check_output
from facesearch.video.overlay import RateMeter, draw_status, render
from facesearch.video.sources import Source, open_source, quiet_opencv

log = logging.getLogger(__name__)


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


def _video_loop(cap, source: Source, expected: int, fps: float, analyser: Analyser, screen: Screen,
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


def _live_loop(cap, source: Source, analyser: Analyser, screen: Screen, state: _Run) -> None:
    """Show every frame as it comes; analysis runs beside it on the latest frame only."""
    mailbox = Mailbox()
    worker = AnalysisWorker(analyser, mailbox)
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


def _pump(cap, source: Source, analyser: Analyser, screen: Screen, state: _Run, mailbox: Mailbox,
          worker: AnalysisWorker, start: float) -> None:
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
        on_event: called with each event dict (see :mod:`facesearch.video.events`); the last
            one is the ``summary``.
        analyse_every: video files only: analyse every this many frames (1: all of them).
        Others: see :class:`~facesearch.video.analyser.Analyser`.

    Returns:
        The ``summary`` event: ``frames`` (read, drawn and written), ``analysed``, ``dropped``
        (live sources: frames not analysed because analysis was busy), ``tracks``,
        ``embedded`` (face embeddings computed), ``identities`` (settled names seen),
        ``seconds`` (wall time), ``analysed_fps``, ``displayed_fps``, ``stopped`` (``end``,
        ``quit``, ``interrupted``, or ``error`` with ``error`` saying why). Ctrl-C ends the
        run like ``q``.

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
        screen = Screen(display, None if output is None else os.fspath(output), fps)
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
    return summary_event(source.name, frames=state.frames, analysed=analyser.analysed, dropped=state.dropped,
                         tracks=analyser.tracker.created, embedded=analyser.embedded,
                         identities=analyser.identities, seconds=state.seconds, stopped=state.stopped,
                         error=state.error)
