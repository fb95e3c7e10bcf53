"""Where frames come from (a camera, a video file or a network stream) and opening one with OpenCV."""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2

from facesearch.errors import LiveError

log = logging.getLogger(__name__)

#: Used when a source does not report a usable frame rate.
FALLBACK_FPS = 25.0


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
