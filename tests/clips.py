"""Test videos for Chromium's fake camera: Y4M files made from fixture photos."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image


def letterbox(image: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """``image`` ((H, W, 3) uint8 RGB) scaled to fit ``size`` (width, height), centred on black."""
    width, height = size
    picture = Image.fromarray(image)
    picture.thumbnail((width, height), Image.LANCZOS)
    canvas = Image.new("RGB", (width, height))
    canvas.paste(picture, ((width - picture.width) // 2, (height - picture.height) // 2))
    return canvas


def write_y4m(path: Path, scenes: Sequence[tuple[np.ndarray, int]], size: tuple[int, int] = (640, 480),
              fps: int = 5) -> Path:
    """A 4:2:0 Y4M video of ``scenes``: each photo held for its number of frames, in order.

    Chromium plays it as the camera with ``--use-file-for-fake-video-capture`` (and loops it).
    """
    width, height = size
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image, frames in scenes:
            y, cb, cr = letterbox(image, size).convert("YCbCr").split()
            half = (width // 2, height // 2)
            frame = b"".join([y.tobytes(), cb.resize(half, Image.BILINEAR).tobytes(),
                              cr.resize(half, Image.BILINEAR).tobytes()])
            for _ in range(frames):
                out.write(b"FRAME\n" + frame)
    return path
