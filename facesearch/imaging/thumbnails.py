"""Small square pictures of faces, for the web page's gallery, and JPEG bytes to send them as."""
from __future__ import annotations

import io

from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")
Image = lazy_module("PIL.Image")
cv2 = lazy_module("cv2")

#: Side in pixels of a face thumbnail.
THUMBNAIL_SIDE = 112


def face_thumbnail(image: np.ndarray, box: tuple[float, float, float, float], side: int = THUMBNAIL_SIDE,
                   margin: float = 0.25) -> np.ndarray:
    """A ``(side, side, 3)`` uint8 RGB square around ``box`` (``x, y, w, h`` pixels of the ``(H, W, 3)``
    uint8 RGB ``image``), widened by ``margin`` of the box's longer side on every edge; parts outside
    the photo are black."""
    x, y, w, h = (float(v) for v in box)
    half = max(w, h) * (0.5 + margin)
    cx, cy = x + w / 2, y + h / 2
    x0, y0, x1, y1 = (int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))
    height, width = image.shape[:2]
    square = np.zeros((max(1, y1 - y0), max(1, x1 - x0), 3), dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if sx1 > sx0 and sy1 > sy0:
        square[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA)


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of an ``(H, W, 3)`` uint8 RGB image."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
