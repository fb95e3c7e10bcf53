"""Draw boxes and names on a photo (for ``query --annotate`` and ``live``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from facesearch.lazy_import import lazy_module
from facesearch.imaging.decode import load_image
from facesearch.imaging.photo_files import IMAGE_EXTENSIONS

cv2 = lazy_module("cv2")

LabelledBox = tuple[tuple[float, float, float, float], "str | None", float]

KNOWN_COLOUR = (46, 204, 64)     # RGB green
UNKNOWN_COLOUR = (255, 65, 54)   # RGB red


def label_for(identity: str | None, similarity: float) -> str:
    """``"obama 0.83"`` or ``"Unknown 0.21"``."""
    name = identity if identity is not None else "Unknown"
    return name if np.isnan(similarity) else f"{name} {similarity:.2f}"


def draw_faces(image: np.ndarray, faces: Sequence[LabelledBox]) -> np.ndarray:
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


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB image; the format follows the file's extension.

    Raises:
        OSError: naming ``path``, when it cannot be written.
    """
    path = os.fspath(path)
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(0, "could not write image (unsupported extension or unwritable folder)", path)


def annotated_path(photo: str | os.PathLike, out: str | os.PathLike, *, single: bool) -> Path:
    """Where ``query --annotate OUT`` writes ``photo``: OUT itself when it names an image file and
    only one photo is annotated, else ``OUT/<photo stem>.annotated.jpg`` (the folder is created)."""
    target = Path(out)
    if single and target.suffix.lower() in IMAGE_EXTENSIONS:
        return target
    target.mkdir(parents=True, exist_ok=True)
    return target / f"{Path(photo).stem}.annotated.jpg"


def annotate_photo(photo: str | os.PathLike, faces: Sequence[LabelledBox], out: str | os.PathLike, *,
                   single: bool = True) -> Path:
    """Draw ``faces`` on ``photo`` and write it where :func:`annotated_path` says. Returns that path."""
    target = annotated_path(photo, out, single=single)
    save_image(target, draw_faces(load_image(photo), faces))
    return target
