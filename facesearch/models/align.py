"""Turn a detected face into the square crop FaceNet reads.

Two methods:

* ``"box"`` (default): the way FaceNet 20180402-114759 was evaluated by its authors — the
  MTCNN box widened by a 32-pixel margin (16 px each side), clipped to the photo, resized to
  160x160. No rotation.
* ``"5point"``: a similarity transform (rotation, uniform scale, shift) that puts the five
  landmarks onto a fixed template, the way ArcFace-style models are fed.

The default was picked by measurement on LFW ``pairsDevTrain.txt``; both figures are in
``docs/benchmarks.md``.
"""
from __future__ import annotations

from facesearch.lazy_import import lazy_module
from facesearch.models.detect import DetectedFace
from facesearch.models.embed import FACE_SIZE

np = lazy_module("numpy")
cv2 = lazy_module("cv2")

METHODS = ("box", "5point")

#: ArcFace's 112x112 five-point template (five (x, y) pixels: eyes, nose, mouth corners); a
#: tuple, so that importing this module does not load numpy (``list`` never needs it).
ARCFACE_TEMPLATE_112 = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655),
                        (70.7299, 92.2041))


def crop_box(image: np.ndarray, box: tuple[float, float, float, float], *, margin: int = 32,
             size: int = FACE_SIZE) -> np.ndarray:
    """Crop ``box`` widened by ``margin`` pixels in all (half on each side), resized to ``size``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        box: ``(x, y, w, h)`` pixels.
    Returns:
        ``(size, size, 3)`` uint8 RGB.
    """
    height, width = image.shape[:2]
    x, y, w, h = box
    x0 = int(max(np.floor(x - margin / 2), 0))
    y0 = int(max(np.floor(y - margin / 2), 0))
    x1 = int(min(np.ceil(x + w + margin / 2), width))
    y1 = int(min(np.ceil(y + h + margin / 2), height))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {box} lies outside the {width}x{height} image")
    crop = image[y0:y1, x0:x1]
    # INTER_AREA when shrinking avoids aliasing; bilinear when enlarging, as the authors did.
    interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def template(size: int = FACE_SIZE, *, zoom: float = 0.8) -> np.ndarray:
    """The five-point template for a ``size`` crop, ``(5, 2)`` float32 pixels.

    ``zoom`` < 1 shrinks the template about the crop centre so the crop keeps some forehead,
    chin and cheeks, closer to what FaceNet saw in training than ArcFace's tight framing.
    """
    centre = np.array([56.0, 56.0], dtype=np.float32)
    return ((np.asarray(ARCFACE_TEMPLATE_112, np.float32) - centre) * zoom + centre) * (size / 112.0)


def align_5point(image: np.ndarray, landmarks: np.ndarray, *, size: int = FACE_SIZE,
                 zoom: float = 0.8) -> np.ndarray:
    """Warp the face so its landmarks land on :func:`template`.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(5, 2)`` pixels in :data:`facesearch.models.detect.LANDMARK_NAMES` order.
    Returns:
        ``(size, size, 3)`` uint8 RGB.
    """
    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(landmarks, dtype=np.float32), template(size, zoom=zoom), method=cv2.LMEDS
    )
    if matrix is None:
        raise ValueError("landmarks are degenerate; cannot estimate a similarity transform")
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_face(image: np.ndarray, face: DetectedFace, method: str = "box", *, size: int = FACE_SIZE,
              margin: int = 32) -> np.ndarray:
    """Crop one detected face with ``method`` (``"box"`` or ``"5point"``) → ``(size, size, 3)`` uint8."""
    if method == "box":
        return crop_box(image, face.box, margin=margin, size=size)
    if method == "5point":
        return align_5point(image, face.landmarks, size=size)
    raise ValueError(f"unknown alignment method {method!r}; choose one of {', '.join(METHODS)}")


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop: a cheap blur measure (higher is sharper)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
