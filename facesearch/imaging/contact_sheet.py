"""A contact sheet: rows of face thumbnails, each row labelled, as one RGB picture (``people list --sheet``)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

#: Width in pixels of the label column on the left of each row.
LABEL_WIDTH = 150
#: Background grey and the gap between thumbnails, pixels.
BACKGROUND = 32
GAP = 4


def contact_sheet(rows: Sequence[tuple[str, Sequence[np.ndarray]]], side: int, per_row: int) -> np.ndarray:
    """One ``(H, W, 3)`` uint8 RGB picture: per ``(label, thumbnails)`` row, the label then up to
    ``per_row`` of its ``(side, side, 3)`` uint8 RGB thumbnails, left to right."""
    width = LABEL_WIDTH + per_row * (side + GAP) + GAP
    height = max(1, len(rows)) * (side + GAP) + GAP
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    for r, (label, thumbs) in enumerate(rows):
        top = GAP + r * (side + GAP)
        for line, text in enumerate(label.split("\n")[:3]):
            cv2.putText(sheet, text[:18], (GAP, top + 22 + 22 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                        (235, 235, 235), 1, cv2.LINE_AA)
        for c, thumb in enumerate(list(thumbs)[:per_row]):
            left = LABEL_WIDTH + GAP + c * (side + GAP)
            sheet[top:top + side, left:left + side] = cv2.resize(thumb, (side, side), interpolation=cv2.INTER_AREA)
    return sheet
