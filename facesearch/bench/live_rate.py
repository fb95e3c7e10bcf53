"""``facesearch bench live``: analysed frames per second of live identification, tracking on and off.

Without a video of your own, a 640x480 clip is made from photos, one face per photo, each in its
own cell of the frame: the faces drift and zoom a little from frame to frame, as people in front
of a webcam do, so the tracker has real work. Each rate is also given as the frame's time in
FaceNet faces at the float32 matmul ceiling measured in the same run (the speed issue's yardstick:
15 fps is a frame within about 7 such faces on the 2-core reference machine).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facesearch.bench.speed import GFLOP_PER_FACE, matmul_ceiling
from facesearch.errors import DataError
from facesearch.imaging.decode import load_image
from facesearch.paths import data_dir
from facesearch.video.analyser import DEFAULT_DETECT_SIDE, DEFAULT_EVERY
from facesearch.video.session import run as run_live
from facesearch.video.sources import Source


def moving_faces_video(photos: Sequence[str | os.PathLike], path: str | os.PathLike, *, frames: int = 60,
                       size: tuple[int, int] = (640, 480), fps: float = 10.0) -> Path:
    """Write an mp4 of ``frames`` frames (``size`` = (width, height)) showing each of ``photos``
    in its own cell of a grid (one photo fills the frame; four make a 2x2 grid), moving gently."""
    width, height = size
    images = [load_image(p) for p in photos]
    cols = int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / cols))
    cell_w, cell_h = width // cols, height // rows
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: cannot write an mp4 video here")
    try:
        for i in range(frames):
            frame = np.full((height, width, 3), 40, np.uint8)
            for k, image in enumerate(images):
                cx, cy = (k % cols) * cell_w, (k // cols) * cell_h
                scale = 0.8 * min(cell_w / image.shape[1], cell_h / image.shape[0])
                zoom = scale * (1.0 + 0.05 * np.sin((i + 3 * k) / 7.0))
                w, h = int(image.shape[1] * zoom), int(image.shape[0] * zoom)
                small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
                x = int(cx + (cell_w - w) / 2 + 0.03 * cell_w * np.sin((i + 5 * k) / 5.0))
                y = int(cy + (cell_h - h) / 2 + 0.02 * cell_h * np.cos((i + 2 * k) / 6.0))
                x0, y0 = max(x, cx), max(y, cy)
                x1, y1 = min(x + w, cx + cell_w), min(y + h, cy + cell_h)
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
    """One row with tracking and one without, on the same video and gallery; each row also gives
    ``faces_at_ceiling``: an analysed frame's time over one FaceNet face's time at the float32
    matmul ceiling measured just before that row."""
    rows = []
    for tracking in (True, False):
        ceiling = matmul_ceiling(2048, 3)["gflops"]
        row = benchmark(gallery, video, tracking=tracking)
        face_s = GFLOP_PER_FACE / ceiling
        row["ceiling_gflops"] = ceiling
        row["faces_at_ceiling"] = round(1.0 / max(row["analysed_fps"], 1e-9) / face_s, 2)
        rows.append(row)
    return rows


def run_clip(gallery, *, video: str | os.PathLike | None = None, photos: Sequence[str | os.PathLike] = (),
             frames: int = 60) -> dict:
    """``facesearch bench live``: :func:`run` on ``video``, or on a clip of ``frames`` frames made
    from ``photos`` (one face each) in a temporary folder (removed afterwards). Returns the dict
    ``--json`` prints."""
    if video is not None:
        return {"benchmark": "live", "faces": None, "rows": run(gallery, video)}
    if not photos:
        raise DataError("pass --video FILE or --photo PHOTO (or set FACESEARCH_DATA for the fixture photos)")
    with tempfile.TemporaryDirectory() as tmp:
        clip = moving_faces_video(photos, Path(tmp) / "faces.mp4", frames=frames)
        return {"benchmark": "live", "faces": len(photos), "rows": run(gallery, clip)}


#: One-face photos of four different people among the shared fixtures, for clips of 1-4 faces.
DEFAULT_PHOTOS = ("obama1.jpg", "alex_lacamoire1.jpg", "johnsnow_test1.jpg", "lin-manuel-miranda.png")


def default_photos(faces: int = 1) -> list[Path]:
    """``faces`` one-face photos of different people from ``fixtures/queries`` under
    ``$FACESEARCH_DATA`` (empty when it is not set). Raises DataError above four."""
    if not 1 <= faces <= len(DEFAULT_PHOTOS):
        raise DataError(f"--faces {faces}: the default clips have 1 to {len(DEFAULT_PHOTOS)} faces; pass --photo for more")
    data = data_dir()
    return [data / "fixtures" / "queries" / name for name in DEFAULT_PHOTOS[:faces]] if data is not None else []
