"""Photo in, faces with embeddings out: detection, cropping and FaceNet in one object.

Like insightface's ``FaceAnalysis``: build one :class:`FaceAnalysis` (it loads its models
once, on first use) and call :meth:`FaceAnalysis.get` on each photo.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from facesearch.models.align import crop_face, sharpness
from facesearch.models.detect import DetectedFace, Detector
from facesearch.models.embed import Embedder
from facesearch.models.weights import EMBEDDING_DIM, MODEL_ID, resolve_weights


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
            embeddings (test-time augmentation, as FaceNet's authors evaluated LFW). Twice
            the embedding cost for about +0.1 point of LFW accuracy (docs/benchmarks.md), so
            off by default.
    """

    def __init__(self, detector: Detector | None = None, embedder: Embedder | None = None,
                 align: str = "box", flip: bool = False) -> None:
        self.detector = detector or Detector()
        self._embedder = embedder
        self.align = align
        self.flip = bool(flip)

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
    def model_id(self) -> str:
        # Known without loading the model, so caches can be checked before any photo is embedded.
        return self._embedder.model_id if self._embedder is not None else MODEL_ID

    @property
    def settings(self) -> dict:
        """Everything that changes an embedding besides the pixels (keys embedding caches)."""
        settings = {**self.detector.settings, "align": self.align, "model": self.model_id}
        if self.flip:  # only when set, so caches made before the option existed stay valid
            settings["flip"] = True
        return settings

    def get(self, image: np.ndarray) -> list[Face]:
        """Every face in one ``(H, W, 3)`` uint8 RGB photo, largest first."""
        return self.get_batch([image])[0]

    def get_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Every face in each photo; detection and embedding run batched across photos."""
        detections = self.detector.detect_batch(images)
        return self.embed_detections(images, detections)

    def embed_detections(self, images: Sequence[np.ndarray],
                         detections: Sequence[Sequence[DetectedFace]]) -> list[list[Face]]:
        """Crop and embed faces already detected in ``images`` (one list per photo)."""
        crops, owners = [], []
        for i, (image, faces) in enumerate(zip(images, detections)):
            for face in faces:
                crops.append(crop_face(image, face, self.align))
                owners.append((i, face))
        results: list[list[Face]] = [[] for _ in images]
        if not crops:
            return results
        stack = np.stack(crops)
        embeddings = self.embedder.embed(stack)
        if self.flip:
            embeddings = embeddings + self.embedder.embed(stack[:, :, ::-1])
            embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        for crop, (i, det), emb in zip(stack, owners, embeddings):
            results[i].append(Face(box=det.box, landmarks=det.landmarks, score=det.score,
                                   quality=sharpness(crop), embedding=emb))
        return results


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
