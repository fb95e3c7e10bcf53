"""Draw boxes and names on a photo (for ``query --annotate`` and ``live``)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

KNOWN_COLOUR = (46, 204, 64)     # RGB green
UNKNOWN_COLOUR = (255, 65, 54)   # RGB red


def label_for(identity: str | None, similarity: float) -> str:
    """``"obama 0.83"`` or ``"Unknown 0.21"``."""
    name = identity if identity is not None else "Unknown"
    return name if np.isnan(similarity) else f"{name} {similarity:.2f}"


def draw_faces(image: np.ndarray, faces: Sequence[tuple[tuple[float, float, float, float], str | None, float]]) -> np.ndarray:
    """A copy of ``image`` ((H, W, 3) uint8 RGB) with a labelled box per ``(box, identity, similarity)``."""
    out = np.ascontiguousarray(image.copy())
    scale = max(out.shape[:2]) / 1000.0
    thick = max(1, int(round(2 * scale)))
    font_scale = max(0.4, 0.6 * scale)
    for (x, y, w, h), identity, similarity in faces:
        colour = KNOWN_COLOUR if identity is not None else UNKNOWN_COLOUR
        p0, p1 = (int(x), int(y)), (int(x + w), int(y + h))
        cv2.rectangle(out, p0, p1, colour, thick)
        text = label_for(identity, similarity)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        top = max(0, p0[1] - th - base - 4)
        cv2.rectangle(out, (p0[0], top), (p0[0] + tw + 4, top + th + base + 4), colour, -1)
        cv2.putText(out, text, (p0[0] + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return out


def save_image(path: str, image: np.ndarray) -> None:
    """Write an RGB image; the format follows the file's extension."""
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write image (unsupported extension or unwritable folder)")
