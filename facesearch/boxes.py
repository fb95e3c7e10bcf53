"""Geometry of face boxes: ``(x, y, w, h)`` in pixels (or any one unit), x and y the top-left corner."""
from __future__ import annotations

from typing import Sequence

import numpy as np

Box = tuple[float, float, float, float]


def iou(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> np.ndarray:
    """Intersection over union of ``(x, y, w, h)`` boxes, in ``[0, 1]``.

    ``a`` and ``b`` are array-likes of shape ``(..., 4)`` that broadcast against each other:
    two boxes give a 0-d float64 array, two ``(N, 4)`` arrays give ``(N,)`` (row by row), and
    ``a[:, None]`` against ``b[None]`` gives every pair (see :func:`iou_matrix`). Boxes that
    only touch, or have no area, have IoU 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    overlap_w = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    overlap_h = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(overlap_w, 0.0, None) * np.clip(overlap_h, 0.0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    # Where union is 0 so is inter; the maximum only keeps the division quiet there.
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def iou_matrix(boxes_a: Sequence[Box] | np.ndarray, boxes_b: Sequence[Box] | np.ndarray) -> np.ndarray:
    """IoU of every pair: float64 ``(len(boxes_a), len(boxes_b))``."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    return iou(a[:, None, :], b[None, :, :])
