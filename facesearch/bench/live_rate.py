"""``facesearch bench live``: analysed frames per second of live identification, tracking on and off.

Without a video of your own, a 640x480 clip with one face is made from a photo: the face
drifts and zooms a little from frame to frame, as a person in front of a webcam does, so the
tracker has real work.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from facesearch.errors import DataError
from facesearch.imaging.decode import load_image
from facesearch.paths import data_dir
from facesearch.video.analyser import DEFAULT_DETECT_SIDE, DEFAULT_EVERY
from facesearch.video.session import run as run_live
from facesearch.video.sources import Source


def one_face_video(photo: str | os.PathLike, path: str | os.PathLike, *, frames: int = 60,
                   size: tuple[int, int] = (640, 480), fps: float = 10.0) -> Path:
    """Write an mp4 of ``frames`` frames (``size`` = (width, height)) showing ``photo`` moving gently."""
    width, height = size
    image = load_image(photo)
    scale = 0.8 * min(width / image.shape[1], height / image.shape[0])
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: cannot write an mp4 video here")
    try:
        for i in range(frames):
            zoom = scale * (1.0 + 0.05 * np.sin(i / 7.0))
            w, h = int(image.shape[1] * zoom), int(image.shape[0] * zoom)
            small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            x = int((width - w) / 2 + 20 * np.sin(i / 5.0))
            y = int((height - h) / 2 + 10 * np.cos(i / 6.0))
            frame = np.full((height, width, 3), 40, np.uint8)
            x0, y0 = max(x, 0), max(y, 0)
            x1, y1 = min(x + w, width), min(y + h, height)
            frame[y0:y1, x0:x1] = small[y0 - y:y1 - y, x0 - x:x1 - x]
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return Path(path)


def benchmark(gallery, video_path: str | os.PathLike, tracking: bool = True, *,
              detect_side: int | None = DEFAULT_DETECT_SIDE, every: int = DEFAULT_EVERY) -> dict:
    """Analysed frames per second on a video file, every frame analysed, headless, no output.

    The models are warmed up before the clock starts. Returns ``{"video", "tracking",
    "frames", "analysed", "embedded", "seconds", "analysed_fps", "embeddings_per_frame"}``.
    """
    summary = run_live(gallery, Source.video(video_path), display=False, tracking=tracking,
                       detect_side=detect_side, every=every)
    return {"video": os.fspath(video_path), "tracking": tracking, "frames": summary["frames"],
            "analysed": summary["analysed"], "embedded": summary["embedded"], "seconds": summary["seconds"],
            "analysed_fps": summary["analysed_fps"],
            "embeddings_per_frame": round(summary["embedded"] / max(summary["analysed"], 1), 3)}


def run(gallery, video: str | os.PathLike) -> list[dict]:
    """One row with tracking and one without, on the same video and gallery."""
    return [benchmark(gallery, video, tracking=True), benchmark(gallery, video, tracking=False)]


def run_clip(gallery, *, video: str | os.PathLike | None = None, photo: str | os.PathLike | None = None,
             frames: int = 60) -> dict:
    """``facesearch bench live``: :func:`run` on ``video``, or on a clip of ``frames`` frames made
    from ``photo`` in a temporary folder (removed afterwards). Returns the dict ``--json`` prints."""
    if video is not None:
        return {"benchmark": "live", "rows": run(gallery, video)}
    if photo is None:
        raise DataError("pass --video FILE or --photo PHOTO (or set FACESEARCH_DATA for its obama1.jpg)")
    with tempfile.TemporaryDirectory() as tmp:
        clip = one_face_video(photo, Path(tmp) / "one-face.mp4", frames=frames)
        return {"benchmark": "live", "rows": run(gallery, clip)}


def default_photo() -> Path | None:
    """The one-face photo of the shared data (``fixtures/queries/obama1.jpg`` under ``$FACESEARCH_DATA``)."""
    data = data_dir()
    return data / "fixtures" / "queries" / "obama1.jpg" if data is not None else None
