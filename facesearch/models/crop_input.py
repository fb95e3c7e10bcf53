"""Photos that are already face crops: give FaceNet the framing it gets from a full photo.

The product's crop (:func:`facesearch.models.align.crop_box`) is the detector's box widened by
32 pixels and squeezed to 160x160. A photo that is itself a face crop has no room for that
margin, or holds the face at another scale: detecting in it and cropping again frames the
face tighter than FaceNet saw it in full photos (on LFW, up to 5 points of rank-1 and 15 of
DIR at FPIR 1% lost, and faces not found at all; docs/benchmarks.md "Face crops as input"). Each kind of crop carries its framing by
convention, so the remedy is to read it by that convention (:data:`FRAMINGS`):

* ``"facenet"``: the photo is box + margin already (a 160x160 FaceNet crop, the 224x224
  output of ``facesearch crop``): the whole photo is resized to 160x160.
* ``"arcface"``: a 112x112 five-point aligned face (ArcFace's template, as insightface's
  datasets ship them): warped from that template onto where the landmarks sit, on average,
  in the product's crop of a full photo (:data:`FACENET_TEMPLATE`), black beyond the photo.
* ``"box"``: the photo is the detector's box and nothing more (a tight crop): the margin is
  added as a black border, as wide as the product's 32 pixels are on a typical face, and the
  whole is resized to 160x160.

``FaceAnalysis(aligned=KIND)`` (``--aligned KIND`` on the CLI) reads every photo so, without
detection. Without it, :func:`crop_framing` recognises a crop from its one detected face
(a face filling the photo) and chooses the framing itself; a small photo where no face is
found is searched again with a border, since MTCNN misses faces that touch every edge.
Measured alternatives (framing every crop by its landmarks, re-detecting in a bordered copy)
lost to these; docs/benchmarks.md has the figures.
"""
from __future__ import annotations

from facesearch.lazy_import import lazy_module
from facesearch.models.align import ARCFACE_TEMPLATE_112
from facesearch.models.embed import FACE_SIZE

np = lazy_module("numpy")
cv2 = lazy_module("cv2")

#: How a photo that is one face crop can be framed; see the module docstring.
FRAMINGS = ("facenet", "arcface", "box")

#: Mean positions of the five landmarks in the product's 160x160 box crop (box + 32 px,
#: resized), five (x, y) pixels in :data:`~facesearch.models.detect.LANDMARK_NAMES` order;
#: measured on the 1,680 first photos of LFW's people with 2+ photos (default detector).
#: Horizontal distances are about 1.26 times what a square crop would give: the box is taller
#: than wide and the crop squeezes it to a square, as FaceNet's authors did.
FACENET_TEMPLATE = ((54.14, 65.64), (107.95, 64.67), (81.53, 90.43), (58.11, 112.23), (106.13, 111.41))
#: The product's 32-pixel margin as a fraction of the box height of a typical face it was
#: chosen on (LFW's median box is 91x123 pixels), added on every side of a ``"box"`` crop.
BOX_BORDER = 16 / 123

#: A detected face whose box spans at least these fractions of the photo's width and height
#: (:func:`crop_framing`) means the photo is a face crop. A full LFW photo's face spans 0.36 x
#: 0.49 (median; at most about 0.6 x 0.7); crops made by ``facesearch crop`` 0.70 x 0.84 and
#: tight boxes 0.98 x 0.99.
CROP_FILL = (0.6, 0.75)
#: ... and at least these: the photo is the box itself (a tight crop).
BOX_FILL = (0.9, 0.9)
#: Photos with no face found whose shorter side is at most this many pixels are searched again
#: with a border; larger photos are not crops of one face.
SMALL_PHOTO = 400
#: That border, as a fraction of the photo's longer side on each edge.
SEARCH_BORDER = 0.25


def crop_framing(box: tuple[float, float, float, float], width: int, height: int) -> str | None:
    """The framing (one of :data:`FRAMINGS`) of a ``width`` x ``height`` photo whose only face
    has ``box`` ``(x, y, w, h)``, or ``None`` when the face does not fill the photo (a photo,
    not a crop)."""
    fx, fy = box[2] / width, box[3] / height
    if fx >= BOX_FILL[0] and fy >= BOX_FILL[1]:
        return "box"
    if fx >= CROP_FILL[0] and fy >= CROP_FILL[1]:
        return "arcface" if (height, width) == (112, 112) else "facenet"
    return None


def landmark_transform(landmarks: np.ndarray, template: np.ndarray | tuple = FACENET_TEMPLATE) -> np.ndarray:
    """The ``(2, 3)`` float32 affine map ``u = sx x + tx, v = sy y + ty`` (no rotation, as the box
    crop has none) that puts ``landmarks`` (``(5, 2)`` pixels) closest to ``template``."""
    pts = np.asarray(landmarks, np.float64)
    template = np.asarray(template, np.float32)
    sx, tx = np.polyfit(pts[:, 0], template[:, 0], 1)
    sy, ty = np.polyfit(pts[:, 1], template[:, 1], 1)
    return np.array([[sx, 0.0, tx], [0.0, sy, ty]], np.float32)


def framed_crop(image: np.ndarray, framing: str, size: int = FACE_SIZE) -> np.ndarray:
    """The ``(size, size, 3)`` uint8 crop FaceNet reads from a photo that *is* one face crop of
    the kind ``framing`` (one of :data:`FRAMINGS`)."""
    if framing == "arcface":
        matrix = landmark_transform(framed_landmarks(image, "arcface")) * (size / FACE_SIZE)
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if framing == "box":
        pad = int(round(BOX_BORDER * image.shape[0]))
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    elif framing != "facenet":
        raise ValueError(f"unknown framing {framing!r}; choose one of {', '.join(FRAMINGS)}")
    interp = cv2.INTER_AREA if max(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def framed_landmarks(image: np.ndarray, framing: str) -> np.ndarray:
    """Where a photo read with ``framing`` has its landmarks by convention, ``(5, 2)`` float32 pixels."""
    height, width = image.shape[:2]
    if framing == "arcface":
        return np.asarray(ARCFACE_TEMPLATE_112, np.float32) * np.array([width / 112, height / 112], np.float32)
    # The inverse of framed_crop's resize (and border) applied to the template.
    pad = int(round(BOX_BORDER * height)) if framing == "box" else 0
    scale = np.array([(width + 2 * pad) / FACE_SIZE, (height + 2 * pad) / FACE_SIZE], np.float32)
    return np.asarray(FACENET_TEMPLATE, np.float32) * scale - pad


def search_border(image: np.ndarray) -> tuple[np.ndarray, int]:
    """``image`` with :data:`SEARCH_BORDER` of its longer side repeated around it, and that
    border's width in pixels (subtract it from what is found there)."""
    pad = int(round(SEARCH_BORDER * max(image.shape[:2])))
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE), pad
