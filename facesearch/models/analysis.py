"""Photo in, faces with embeddings out: detection, cropping and FaceNet in one object.

Like insightface's ``FaceAnalysis``: build one :class:`FaceAnalysis` (it loads its models
once, on first use) and call :meth:`FaceAnalysis.get` on each photo.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Sequence

from facesearch.models import crop_input
from facesearch.models.align import crop_face, sharpness
from facesearch.models.detect import DetectedFace, Detector
from facesearch.models.embed import Embedder
from facesearch.models.weights import EMBEDDING_DIM, MODEL_ID, resolve_weights
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")


#: The settings key saying that photos which are face crops are read as such
#: (:mod:`facesearch.models.crop_input`); caches made before it are still read where no photo
#: was a crop (:class:`facesearch.models.face_cache.FaceCache`).
CROP_PHOTOS = "crop_photos"
#: A new gallery embeds each face and its mirror image unless told otherwise: +1.1 to 1.9 points
#: of DIR at FPIR 1% and +0.2 of rank-1 on the full LFW protocol for one more FaceNet pass a face
#: (docs/benchmarks.md, "Flip by default for new galleries").
DEFAULT_FLIP = True
#: Appended to the embedding model's id by a flipping analysis: its embeddings are not plain
#: FaceNet's, and a gallery records which of the two it holds.
FLIP_SUFFIX = "+flip"


@dataclass
class Face:
    """A detected face and its embedding.

    Attributes:
        box: ``(x, y, w, h)`` pixels in the original photo.
        landmarks: ``(5, 2)`` float32 pixels (left eye, right eye, nose, mouth left, mouth right).
        score: detector confidence in ``[0, 1]``.
        quality: sharpness of the 160x160 crop (variance of the Laplacian; higher is sharper).
        embedding: ``(512,)`` float32, L2-normalised.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray = field(repr=False)
    score: float
    quality: float
    embedding: np.ndarray = field(repr=False)

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


class FaceAnalysis:
    """Detector + aligner + embedder.

    Args:
        detector: a :class:`~facesearch.models.detect.Detector` (default settings if omitted).
        embedder: an :class:`~facesearch.models.embed.Embedder`; built on first use if omitted, so
            that creating a ``FaceAnalysis`` is cheap.
        align: ``"box"`` or ``"5point"``, see :mod:`facesearch.models.align`.
        flip: also embed each crop mirrored left-right and use the normalised sum of both
            embeddings (test-time augmentation, as FaceNet's authors evaluated LFW): twice the
            FaceNet work for fewer strangers named (docs/benchmarks.md). ``None`` (default):
            :data:`DEFAULT_FLIP`, or whatever the gallery this analysis opens was made with
            (:meth:`for_model`); ``True``/``False`` insist.
        aligned: every photo *is* one face crop of this kind (one of
            :data:`facesearch.models.crop_input.FRAMINGS`: ``"facenet"`` box + margin,
            ``"arcface"`` 112x112 five-point template, ``"box"`` tight box): no detection, the
            whole photo is embedded. Its one face has the whole photo as box, the landmarks the
            convention puts there, and score 1.0.
        crop_photos: without ``aligned``, recognise a photo whose one face fills it as a face
            crop and frame it by its kind, and search a small photo where no face is found again
            with a border (:mod:`facesearch.models.crop_input`). ``False`` reads every photo as
            an ordinary photo, as versions before it did.
    """

    def __init__(self, detector: Detector | None = None, embedder: Embedder | None = None,
                 align: str = "box", flip: bool | None = None, aligned: str | None = None,
                 crop_photos: bool = True) -> None:
        if aligned is not None and aligned not in crop_input.FRAMINGS:
            raise ValueError(f"unknown aligned input {aligned!r}; choose one of {', '.join(crop_input.FRAMINGS)}")
        self.detector = detector or Detector()
        self._embedder = embedder
        self.align = align
        #: Whether the caller chose ``flip``; if not, a gallery made the other way may change it.
        self.flip_chosen = flip is not None
        self.flip = DEFAULT_FLIP if flip is None else bool(flip)
        self.aligned = aligned
        self.crop_photos = bool(crop_photos)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder

    @property
    def dim(self) -> int:
        """Embedding length."""
        return EMBEDDING_DIM

    @property
    def embedder_id(self) -> str:
        """The embedding model's id (``MODEL_ID``), flip or not."""
        # Known without loading the model, so caches can be checked before any photo is embedded.
        return self._embedder.model_id if self._embedder is not None else MODEL_ID

    @property
    def model_id(self) -> str:
        """What a gallery records as the model of its embeddings: :attr:`embedder_id`, with
        :data:`FLIP_SUFFIX` when each face is embedded with its mirror image."""
        return self.embedder_id + FLIP_SUFFIX if self.flip else self.embedder_id

    def adopts(self, model_id: str) -> bool:
        """Whether :meth:`for_model` would turn this analysis into one for ``model_id``."""
        return not self.flip_chosen and model_id in (self.embedder_id, self.embedder_id + FLIP_SUFFIX)

    def for_model(self, model_id: str) -> "FaceAnalysis":
        """This analysis as a gallery whose embeddings are ``model_id`` needs it: with or without
        flip when the caller left flip open (galleries made before flip became the default hold
        plain embeddings), else itself unchanged. Shares the detector and the embedder."""
        if model_id == self.model_id or not self.adopts(model_id):
            return self
        other = copy.copy(self)
        other.flip, other.flip_chosen = model_id.endswith(FLIP_SUFFIX), True
        return other

    @property
    def settings(self) -> dict:
        """Everything that changes an embedding besides the pixels (keys embedding caches)."""
        # "model" is the embedder's own id, so caches made before flip was a model suffix still match.
        settings = {**self.detector.settings, "align": self.align, "model": self.embedder_id}
        if self.flip:  # only when set, so caches made before the option existed stay valid
            settings["flip"] = True
        if self.aligned:
            settings["aligned"] = self.aligned
        elif self.align == "box" and self.crop_photos:
            settings[CROP_PHOTOS] = True
        return settings

    def get(self, image: np.ndarray) -> list[Face]:
        """Every face in one ``(H, W, 3)`` uint8 RGB photo, largest first."""
        return self.get_batch([image])[0]

    def get_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Every face in each photo; detection and embedding run batched across photos."""
        if self.aligned:
            return self.embed_detections(images, [[whole_photo_face(image, self.aligned)] for image in images])
        detections = self.detector.detect_batch(images)
        if self.crop_photos:
            self._search_with_border(images, detections)
        return self.embed_detections(images, detections)

    def _search_with_border(self, images: Sequence[np.ndarray], detections: list[list[DetectedFace]]) -> None:
        """Search small photos where no face was found again with a border around them (MTCNN
        misses a face that fills the photo); faces found replace the empty lists in place."""
        todo = [i for i, (image, found) in enumerate(zip(images, detections))
                if not found and min(image.shape[:2]) <= crop_input.SMALL_PHOTO]
        if not todo:
            return
        bordered = [crop_input.search_border(images[i]) for i in todo]
        for i, (_, pad), faces in zip(todo, bordered, self.detector.detect_batch([b for b, _ in bordered])):
            # Coordinates back in the photo, boxes cut to it.
            height, width = images[i].shape[:2]
            shifted = [DetectedFace(box=(f.box[0] - pad, f.box[1] - pad, f.box[2], f.box[3]),
                                    landmarks=f.landmarks - pad, score=f.score) for f in faces]
            # A "face" centred in the repeated border is a pattern of the border, not in the photo.
            detections[i] = [DetectedFace(clip_box(f.box, width, height), f.landmarks, f.score) for f in shifted
                             if 0 <= f.box[0] + f.box[2] / 2 < width and 0 <= f.box[1] + f.box[3] / 2 < height]

    def framing(self, image: np.ndarray, faces: Sequence[DetectedFace]) -> str | None:
        """How a photo with these faces is read as one face crop (one of
        :data:`~facesearch.models.crop_input.FRAMINGS`), or ``None`` to crop each face from it."""
        if self.aligned:
            return self.aligned
        if not self.crop_photos or self.align != "box" or len(faces) != 1:
            return None
        return crop_input.crop_framing(faces[0].box, image.shape[1], image.shape[0])

    def add_mirrors(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> list[list[Face]]:
        """The faces of each photo as this (``flip``) analysis gives them, from the same faces
        found and embedded *without* flip: only the mirrored crops are embedded, in one batch (half
        the FaceNet work and no detection, for turning an unflipped cache into a flipped one)."""
        crops, owners = [], []
        for i, (image, found) in enumerate(zip(images, faces)):
            dets = [DetectedFace(box=f.box, landmarks=f.landmarks, score=f.score) for f in found]
            framing = self.framing(image, dets)
            for f, d in zip(found, dets):
                crops.append(crop_input.framed_crop(image, framing) if framing else crop_face(image, d, self.align))
                owners.append((i, f))
        results: list[list[Face]] = [[] for _ in images]
        if not crops:
            return results
        mirrored = self.embedder.embed(np.stack(crops)[:, :, ::-1])
        for (i, f), m in zip(owners, mirrored):
            e = f.embedding + m
            results[i].append(Face(box=f.box, landmarks=f.landmarks, score=f.score, quality=f.quality,
                                   embedding=e / np.linalg.norm(e)))
        return results

    def embed_detections(self, images: Sequence[np.ndarray],
                         detections: Sequence[Sequence[DetectedFace]]) -> list[list[Face]]:
        """Crop and embed faces already detected in ``images`` (one list per photo)."""
        crops, owners = [], []
        for i, (image, faces) in enumerate(zip(images, detections)):
            framing = self.framing(image, faces)
            for face in faces:
                crops.append(crop_input.framed_crop(image, framing) if framing else crop_face(image, face, self.align))
                owners.append((i, face))
        results: list[list[Face]] = [[] for _ in images]
        if not crops:
            return results
        stack = np.stack(crops)
        if self.flip:
            # One batch of the crops and their mirror images: a query's single face runs as a
            # batch of two, which FaceNet does in less time than two batches of one.
            both = self.embedder.embed(np.concatenate([stack, stack[:, :, ::-1]]))
            embeddings = both[:len(stack)] + both[len(stack):]
            embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        else:
            embeddings = self.embedder.embed(stack)
        for crop, (i, det), emb in zip(stack, owners, embeddings):
            results[i].append(Face(box=det.box, landmarks=det.landmarks, score=det.score,
                                   quality=sharpness(crop), embedding=emb))
        return results


def whole_photo_face(image: np.ndarray, framing: str) -> DetectedFace:
    """The one face of an aligned input photo: the whole photo, the landmarks its ``framing``
    puts there, score 1 (nothing was detected)."""
    height, width = image.shape[:2]
    return DetectedFace(box=(0.0, 0.0, float(width), float(height)),
                        landmarks=crop_input.framed_landmarks(image, framing), score=1.0)


def clip_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` cut to the ``width`` x ``height`` photo (a face found with a border
    around the photo may reach past its edges)."""
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[0] + box[2], float(width)), min(box[1] + box[3], float(height))
    return (x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0))


def model_inventory() -> dict:
    """Which models run, from where: the FaceNet weights in use (resolved and verified, so this
    may convert them on first use) and the MTCNN package. The dict ``facesearch models`` prints."""
    # importlib.metadata costs a third of a second to import: only this report needs it.
    from importlib.metadata import PackageNotFoundError, version

    info = resolve_weights()
    try:
        mtcnn_version = version("mtcnn")
    except PackageNotFoundError:
        mtcnn_version = "not installed"
    return {"embedder": {"model": MODEL_ID, "path": str(info.path), "sha256": info.sha256, "source": info.source},
            "detector": {"model": "mtcnn", "package": mtcnn_version}}
