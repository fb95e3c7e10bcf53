"""MTCNN's cascade (P-Net proposals, R-Net and O-Net refinement) in NumPy and OpenVINO or ONNX Runtime.

This reproduces the ``mtcnn`` package's own detection (version 1.0: its stages, thresholds,
pyramid, box arithmetic and non-maximum suppression, step for step) on its own weights
converted by :mod:`facesearch.models.mtcnn_onnx`, without TensorFlow's per-call cost: each
pyramid level is one call of the runtime, and R-Net and O-Net each take every candidate box of
every photo in one batch. Half of P-Net's levels run on a second thread, resizes included, while
the caller resizes and runs the other half: on a 250x250 photo the area resizes alone cost about
two thirds of P-Net's own time, and one thread left the second core idle. Tests compare its
boxes, landmarks and scores with the package's.

Boxes travel as float64 rows ``[photo, x1, y1, x2, y2, score]`` (+ 10 landmark columns
``x1..x5, y1..y5`` after O-Net), in pixels of the photos given.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from facesearch.lazy_import import lazy_module
from facesearch.models.mtcnn_onnx import mtcnn_sessions
from facesearch.models.onnx_session import usable_cores

cv2 = lazy_module("cv2")

#: Pyramid step and the P-Net window (the package's defaults).
SCALE_FACTOR = 0.709
PNET_WINDOW = 12
#: Smallest side P-Net accepts: 3x3 conv, 2x2 pool, two 3x3 convs leave one cell.
PNET_MIN_SIDE = 11


def _conv_flops(h: int, w: int, k_h: int, k_w: int, c_in: int, c_out: int) -> int:
    """Multiply-adds x 2 of a valid convolution on an ``h`` x ``w`` map."""
    return max(0, h - k_h + 1) * max(0, w - k_w + 1) * k_h * k_w * c_in * c_out * 2


def pnet_flops(height: int, width: int) -> int:
    """Arithmetic of P-Net on one ``height`` x ``width`` image (convolutions only)."""
    h, w = height - 2, width - 2
    ph, pw = (h + 1) // 2, (w + 1) // 2
    return (_conv_flops(height, width, 3, 3, 3, 10) + _conv_flops(ph, pw, 3, 3, 10, 16)
            + _conv_flops(ph - 2, pw - 2, 3, 3, 16, 32) + _conv_flops(ph - 4, pw - 4, 1, 1, 32, 6))


#: Arithmetic of R-Net and O-Net per candidate box (convolutions and dense layers).
RNET_FLOPS = (_conv_flops(24, 24, 3, 3, 3, 28) + _conv_flops(11, 11, 3, 3, 28, 48) + _conv_flops(4, 4, 2, 2, 48, 64)
              + 2 * (576 * 128 + 128 * 6))
ONET_FLOPS = (_conv_flops(48, 48, 3, 3, 3, 32) + _conv_flops(23, 23, 3, 3, 32, 64) + _conv_flops(10, 10, 3, 3, 64, 64)
              + _conv_flops(4, 4, 2, 2, 64, 128) + 2 * (1152 * 256 + 256 * 16))


@dataclass(frozen=True)
class Thresholds:
    """Score floors and NMS overlaps of each stage (the package's defaults)."""

    pnet: float = 0.6
    rnet: float = 0.7
    onet: float = 0.8
    nms_pnet_level: float = 0.5
    nms_pnet_all: float = 0.7
    nms_rnet: float = 0.7
    nms_onet: float = 0.7


def pyramid_scales(width: int, height: int, min_face_size: int) -> np.ndarray:
    """The package's pyramid: ``(12 / min_face_size) * 0.709 ** k``; its level count depends on
    the photo's shorter side only."""
    count = round(-((np.log(min(width, height) / PNET_WINDOW) / np.log(SCALE_FACTOR)) + 1))
    return (PNET_WINDOW / min_face_size) * SCALE_FACTOR ** np.arange(count)


def normalise(images: np.ndarray) -> np.ndarray:
    """``(x - 127.5) / 128`` as float32, the package's input scaling."""
    return (images.astype(np.float32) - np.float32(127.5)) / np.float32(128.0)


def _resize_area(batch: np.ndarray, width: int, height: int) -> np.ndarray:
    # Area averaging, as the package's tf.image.resize(AREA) (equal to ~1e-4 in these units).
    return np.stack([cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA) for im in batch])


def overlaps(earlier: np.ndarray, later: np.ndarray, method: str = "union") -> np.ndarray:
    """Overlap of each ``x1, y1, x2, y2`` box of ``earlier`` (n, 4) with each of ``later`` (m, 4):
    intersection over union, or over the smaller area (``"min"``); ``(n, m)``. Areas without the
    +1 pixel, as the package computes them."""
    a, b = earlier, later
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iw = np.maximum(0.0, np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]))
    ih = np.maximum(0.0, np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]))
    inter = iw * ih
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "union":
            return inter / (area_a[:, None] + area_b[None, :] - inter)
        return inter / np.minimum(area_a[:, None], area_b[None, :])


def _nms_keep(boxes: np.ndarray, threshold: float, method: str, chunk: int = 1024) -> np.ndarray:
    """Indices of rows (sorted best first) that overlap no *earlier* row by more than ``threshold``.

    Earlier rows suppress even when they are suppressed themselves: that is the package's rule
    (a one-pass upper-triangle test), kept so that the same boxes come out.
    """
    n = len(boxes)
    keep = np.ones(n, bool)
    for start in range(0, n, chunk):  # column blocks bound the memory of the n x n test
        stop = min(n, start + chunk)
        block = overlaps(boxes[:stop], boxes[start:stop], method)
        earlier = np.arange(stop)[:, None] < np.arange(start, stop)[None, :]
        keep[start:stop] = ~np.any((block > threshold) & earlier, axis=0)
    return np.flatnonzero(keep)


def _by_score(rows: np.ndarray, column: int = 5) -> np.ndarray:
    """Rows best first, ordered as the package orders them (a reversed ascending argsort)."""
    return rows[np.argsort(rows[:, column])[::-1]]


def nms(rows: np.ndarray, threshold: float, method: str = "union", sort: bool = True) -> np.ndarray:
    """Non-maximum suppression per photo (column 0); rows come out grouped by photo, best first."""
    if len(rows) == 0:
        return rows
    if sort:
        rows = _by_score(rows)
    if len(rows) == 1:
        return rows
    photo_column = rows[:, 0]
    if photo_column[0] == photo_column[-1] and (photo_column == photo_column[0]).all():
        # One photo (every query, every video frame): no grouping to do.
        return rows[_nms_keep(rows[:, 1:5], threshold, method)]
    out = []
    for photo in np.unique(photo_column):
        subset = rows[rows[:, 0] == photo]
        out.append(subset[_nms_keep(subset[:, 1:5], threshold, method)])
    return np.concatenate(out, axis=0)


def square(rows: np.ndarray) -> np.ndarray:
    """Each box widened or heightened about its centre to a square of its longer side."""
    rows = rows.copy()
    w = rows[:, 3] - rows[:, 1]
    h = rows[:, 4] - rows[:, 2]
    side = np.maximum(w, h)
    rows[:, 1] = rows[:, 1] + w * 0.5 - side * 0.5
    rows[:, 2] = rows[:, 2] + h * 0.5 - side * 0.5
    rows[:, 3] = rows[:, 1] + side
    rows[:, 4] = rows[:, 2] + side
    return rows


def refine(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by the network's regression, in units of the box's size (+1 pixel)."""
    rows = rows.copy()
    w = rows[:, 3] - rows[:, 1] + 1
    h = rows[:, 4] - rows[:, 2] + 1
    rows[:, 1:5] += offsets * np.stack([w, h, w, h], axis=-1)
    return rows


def crop_and_resize(images: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """Bilinear ``size`` x ``size`` patches of each row's box, as ``tf.image.crop_and_resize``
    samples them for the package: corners at ``x1 / W * (W - 1)`` .. ``x2 / W * (W - 1)``,
    samples outside the photo 0.

    Args:
        images: ``(B, H, W, 3)`` float32 normalised photos.
        rows: ``(K, >=5)`` boxes with the photo index in column 0.
    Returns:
        ``(K, size, size, 3)`` float32.
    """
    _, height, width, _ = images.shape
    k = len(rows)
    if k == 0:
        return np.zeros((0, size, size, 3), np.float32)
    boxes = rows[:, 1:5].astype(np.float32)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    y1n, y2n = y1 / np.float32(height), y2 / np.float32(height)
    x1n, x2n = x1 / np.float32(width), x2 / np.float32(width)
    steps = np.arange(size, dtype=np.float32)
    hs, ws = np.float32(height - 1), np.float32(width - 1)
    ys = y1n[:, None] * hs + steps[None, :] * ((y2n - y1n) * hs / np.float32(size - 1))[:, None]
    xs = x1n[:, None] * ws + steps[None, :] * ((x2n - x1n) * ws / np.float32(size - 1))[:, None]
    inside = ((ys >= 0) & (ys <= hs))[:, :, None] & ((xs >= 0) & (xs <= ws))[:, None, :]
    top, left = np.floor(ys), np.floor(xs)
    dy, dx = (ys - top)[:, :, None, None], (xs - left)[:, None, :, None]
    t = np.clip(top, 0, height - 1).astype(np.intp)
    b = np.clip(np.ceil(ys), 0, height - 1).astype(np.intp)
    l_ = np.clip(left, 0, width - 1).astype(np.intp)[:, None, :]
    r = np.clip(np.ceil(xs), 0, width - 1).astype(np.intp)[:, None, :]
    # Pixels gathered by flat row numbers: one take of a 1-d index is ~2.5x faster than
    # indexing with three broadcast index arrays.
    pixels = images.reshape(-1, 3)
    first_row = (rows[:, 0].astype(np.intp) * height)[:, None]
    top_at, bottom_at = ((first_row + t) * width)[:, :, None], ((first_row + b) * width)[:, :, None]
    tl, tr, bl, br = (pixels.take((row + column).ravel(), axis=0).reshape(k, size, size, 3)
                      for row, column in ((top_at, l_), (top_at, r), (bottom_at, l_), (bottom_at, r)))
    upper = tl + (tr - tl) * dx
    lower = bl + (br - bl) * dx
    out = upper + (lower - upper) * dy
    out[~inside] = 0.0
    return out.astype(np.float32, copy=False)


_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _pnet_pool() -> ThreadPoolExecutor:
    """The threads that run P-Net levels beside their callers (the runtimes and OpenCV release the
    GIL). A detection hands over one task, so one caller uses one of them; there is one per core
    so that callers detecting at once (the server's threads) do not queue behind a single one."""
    # One pool per process: a forked child inherits the pool object but not its threads.
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(usable_cores(), thread_name_prefix="pnet"))
        return _POOL[1]


def _proposals(reg: np.ndarray, prob: np.ndarray, threshold: float, scale: float) -> np.ndarray:
    """P-Net cells scoring above ``threshold`` as boxes in photo pixels, best first.

    ``reg`` (B, 4, h, w) and ``prob`` (B, 2, h, w): cell (y, x) covers the 12x12 window at
    (2x + 1, 2y + 1) of the scaled photo, moved by the regression in units of 11 pixels.
    """
    face = prob[:, 1]
    b, y, x = np.nonzero(face > threshold)
    if len(b) == 0:
        return np.empty((0, 6))
    dx1, dy1, dx2, dy2 = (reg[b, i, y, x] for i in range(4))
    span = PNET_WINDOW - 1
    rows = np.stack([b, 2 * x + 1 + dx1 * span, 2 * y + 1 + dy1 * span,
                     2 * x + PNET_WINDOW + dx2 * span, 2 * y + PNET_WINDOW + dy2 * span, face[b, y, x]],
                    axis=1).astype(np.float64)
    rows = _by_score(rows)
    rows[:, 1:5] /= scale
    return rows


class Cascade:
    """MTCNN on OpenVINO (default) or ONNX Runtime (``runtime="onnx"``): :meth:`detect` takes
    photos of one size and returns the package's rows."""

    def __init__(self, thresholds: Thresholds = Thresholds(), *, runtime: str = "openvino") -> None:
        self.thresholds = thresholds
        self.runtime = runtime
        #: Floating-point operations of the networks in the last :meth:`detect` call (for benchmarks;
        #: shared by the threads that use this cascade, so meaningful when one thread detects).
        self.last_flops = 0
        sessions = mtcnn_sessions(runtime)
        self._pnet, self._rnet, self._onet = sessions["pnet"], sessions["rnet"], sessions["onet"]

    def stage_pnet(self, images: np.ndarray, min_face_size: int) -> np.ndarray:
        """Candidate squares from every pyramid level, after the package's two NMS rounds."""
        t = self.thresholds
        _, height, width, _ = images.shape
        sizes = [(scale, int(height * scale), int(width * scale))
                 for scale in pyramid_scales(width, height, min_face_size)]
        sizes = [(scale, h, w) for scale, h, w in sizes if min(h, w) >= PNET_MIN_SIDE]
        self.last_flops += len(images) * sum(pnet_flops(h, w) for _, h, w in sizes)

        def run(part: list[tuple[float, int, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
            return [self._pnet.run(None, {"images": _resize_area(images, w, h)}) for _, h, w in part]

        def read(part: list[tuple[float, int, int]], outputs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
            return [nms(_proposals(reg, prob, t.pnet, scale), t.nms_pnet_level, sort=False)
                    for (scale, _, _), (reg, prob) in zip(part, outputs)]

        # Every other level, the largest first, goes to a second thread in one task (a hand-over
        # between threads costs about as much as a small level); area resizes cost the same at
        # every level, P-Net's time halves from one level to the next, so the halves balance.
        theirs = _pnet_pool().submit(run, sizes[0::2])
        ours = read(sizes[1::2], run(sizes[1::2]))
        others = read(sizes[0::2], theirs.result())
        levels = [None] * len(sizes)
        levels[0::2], levels[1::2] = others, ours
        rows = np.concatenate(levels, axis=0) if levels else np.empty((0, 6))
        return square(nms(rows, t.nms_pnet_all))

    def stage_rnet(self, images: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """P-Net's ``(K, 6)`` float64 candidate rows re-scored and moved by R-Net on ``images``
        (``(B, H, W, 3)`` float32, normalised), kept above its threshold, squared: ``(K', 6)``."""
        if len(rows) == 0:
            return rows
        reg, prob = self._rnet.run(None, {"images": crop_and_resize(images, rows, 24)})
        self.last_flops += len(rows) * RNET_FLOPS
        rows = rows.copy()
        rows[:, 5] = prob[:, 1]
        rows = refine(rows, reg)
        rows = rows[rows[:, 5] > self.thresholds.rnet]
        return square(nms(rows, self.thresholds.nms_rnet))

    def stage_onet(self, images: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """R-Net's ``(K, 6)`` rows re-scored and moved by O-Net, with its landmarks: ``(K', 16)``
        float64 rows above its threshold after NMS by the smaller area."""
        if len(rows) == 0:
            return np.empty((0, 16))
        reg, marks, prob = self._onet.run(None, {"images": crop_and_resize(images, rows, 48)})
        self.last_flops += len(rows) * ONET_FLOPS
        w = rows[:, 3:4] - rows[:, 1:2] + 1
        h = rows[:, 4:5] - rows[:, 2:3] + 1
        marks = marks.astype(np.float64)
        marks[:, 0:5] = w * marks[:, 0:5] + rows[:, 1:2] - 1
        marks[:, 5:10] = h * marks[:, 5:10] + rows[:, 2:3] - 1
        rows = rows.copy()
        rows[:, 5] = prob[:, 1]
        rows = np.concatenate([refine(rows, reg), marks], axis=1)
        rows = rows[rows[:, 5] > self.thresholds.onet]
        return nms(rows, self.thresholds.nms_onet, method="min")

    def detect(self, images: np.ndarray, min_face_size: int = 20) -> np.ndarray:
        """Faces in ``(B, H, W, 3)`` uint8 RGB photos of one size.

        Returns:
            ``(K, 16)`` float64 rows ``[photo, x1, y1, x2, y2, score, x1..x5, y1..y5]``; box
            corners clipped to the photo as the package's ``fit_to_image`` does, landmarks not.
        """
        self.last_flops = 0
        norm = normalise(images)
        rows = self.stage_onet(norm, self.stage_rnet(norm, self.stage_pnet(norm, min_face_size)))
        _, height, width, _ = images.shape
        rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, width - 1)
        rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, height - 1)
        return rows
