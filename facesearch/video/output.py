"""Where annotated frames go: the output video file and the window on screen."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from facesearch.errors import LiveError

#: Output containers and the codec written into each.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
WINDOW = "facesearch live"


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


class Screen:
    """The window (when shown) and the output video (when asked); frames are ``(H, W, 3)`` uint8 BGR.

    The writer opens on the first frame, at that frame's size.
    """

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
