"""What is drawn on each frame: the tracks' boxes and names, and a status line with the rates."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from facesearch.imaging.annotate import draw_faces


@dataclass(frozen=True)
class TrackView:
    """What the overlay draws for one track: box ``(x, y, w, h)`` pixels, identity, similarity."""

    id: int
    box: tuple[float, float, float, float]
    identity: str | None
    similarity: float


class RateMeter:
    """Events per second over the last ``span`` seconds (for the status line)."""

    def __init__(self, span: float = 2.0) -> None:
        self.span = span
        self.times: deque[float] = deque()

    def tick(self, now: float) -> None:
        """Count one event at ``now`` seconds (any clock, as long as ``rate`` uses the same)."""
        self.times.append(now)

    def rate(self, now: float) -> float:
        while self.times and self.times[0] < now - self.span:
            self.times.popleft()
        return len(self.times) / self.span


def render(image: np.ndarray, view: Sequence[TrackView]) -> np.ndarray:
    """A BGR copy of the ``(H, W, 3)`` uint8 RGB ``image`` with each track's box, name and similarity."""
    drawn = draw_faces(image, [(v.box, v.identity, v.similarity) for v in view])
    return cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)


def draw_status(bgr: np.ndarray, text: str, warn: bool = False) -> None:
    """Write a status line in the top-left corner of a BGR frame, in place (red when ``warn``)."""
    colour = (0, 0, 255) if warn else (255, 255, 255)
    for thickness, col in ((3, (0, 0, 0)), (1, colour)):  # dark outline keeps it readable anywhere
        cv2.putText(bgr, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, col, thickness, cv2.LINE_AA)
