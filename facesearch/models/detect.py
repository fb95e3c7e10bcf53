"""Face detection with MTCNN (the `mtcnn` package; its weights ship inside the wheel).

Three backends run the same detector:

* ``"openvino"`` (default) and ``"onnx"``: :mod:`facesearch.models.mtcnn_cascade`, the
  package's cascade step for step in NumPy, its three networks (converted once from the
  wheel's weights) on OpenVINO or on ONNX Runtime. No TensorFlow; tens of times less overhead
  per photo, and OpenVINO's kernels compiled for a recurring photo size are the fastest
  measured (docs/benchmarks.md).
* ``"keras"``: the package itself (TensorFlow, eager, one call per pyramid level).

Tests check that all find the same faces with boxes within a pixel.

A detection is a :class:`DetectedFace`: a box in pixels of the original photo, five
landmarks, and the detector's confidence. Large photos are downscaled for detection and the
results mapped back, because MTCNN's cost grows with the pixel count while faces in a large
photo are large too.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Sequence

from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")
cv2 = lazy_module("cv2")

log = logging.getLogger(__name__)

#: Landmark order used everywhere in facesearch (image left/right, as seen in the photo).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class DetectedFace:
    """One face found in a photo.

    Attributes:
        box: ``(x, y, w, h)`` in pixels of the original photo, float.
        landmarks: ``(5, 2)`` float32 array of ``(x, y)`` pixels in :data:`LANDMARK_NAMES` order.
        score: detector confidence in ``[0, 1]``.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray = field(repr=False)
    score: float

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return float(self.box[2] * self.box[3])

    def as_dict(self) -> dict:
        """JSON-friendly form: box as ints ``[x, y, w, h]``, landmarks as ``[[x, y], ...]``."""
        return {
            "box": [int(round(v)) for v in self.box],
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
            "score": round(float(self.score), 4),
        }


#: What can run the detector; the first is the default. "openvino" and "onnx" run the same
#: converted graphs (OpenVINO, ONNX Runtime), "keras" the ``mtcnn`` package on TensorFlow.
BACKENDS = ("openvino", "onnx", "keras")


@functools.lru_cache(maxsize=None)
def _shared_cascade(runtime: str):
    """One cascade per process and runtime (its networks are shared and hold no per-call state)."""
    from facesearch.models.mtcnn_cascade import Cascade

    return Cascade(runtime=runtime)


@functools.lru_cache(maxsize=1)
def _shared_mtcnn():
    """One MTCNN per process: its networks hold no per-call state, and building them is slow."""
    from facesearch.models.runtime import import_tensorflow

    import_tensorflow()
    from mtcnn import MTCNN  # deferred: importing it pulls in TensorFlow

    return MTCNN()


class Detector:
    """MTCNN face detector. Load once, call :meth:`detect` per photo or :meth:`detect_batch`.

    Args:
        min_face_size: smallest face to look for, in pixels of the *original* photo.
        min_confidence: faces scored below this by MTCNN's last stage are dropped. 0.8 is
            MTCNN's own last-stage threshold; a stricter 0.9 missed 9 LFW photos whose faces
            score 0.82-0.89 (docs/benchmarks.md).
        max_side: photos whose longer side exceeds this many pixels are downscaled for
            detection (boxes are mapped back to the original); ``None`` disables it.
        backend: one of :data:`BACKENDS`.
    """

    def __init__(
        self,
        *,
        min_face_size: int = 20,
        min_confidence: float = 0.8,
        max_side: int | None = 1024,
        backend: str = BACKENDS[0],
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown detector backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.min_face_size = int(min_face_size)
        self.min_confidence = float(min_confidence)
        self.max_side = max_side
        self.backend = backend
        self._mtcnn = None

    @property
    def settings(self) -> dict:
        """The settings that change what is detected (they key embedding caches)."""
        return {
            # The package's own name for its results, so caches made before the ONNX backend stay valid;
            # OpenVINO and ONNX Runtime run the same converted graphs to the same boxes (tested).
            "detector": "mtcnn" if self.backend == "keras" else "mtcnn-onnx",
            "min_face_size": self.min_face_size,
            "min_confidence": self.min_confidence,
            "max_side": self.max_side,
        }

    def _model(self):
        if self._mtcnn is None:
            self._mtcnn = _shared_mtcnn() if self.backend == "keras" else _shared_cascade(self.backend)
        return self._mtcnn

    def load(self) -> "Detector":
        """Load the networks now (they load on first use otherwise); returns self."""
        self._model()
        return self

    def warm_up(self, height: int, width: int) -> None:
        """Detect in blank ``height`` x ``width`` frames until P-Net is ready for that size
        (OpenVINO compiles it for a photo size the second time it sees it), so that the frames
        of a video that follow do not pay for it. A blank frame has no candidate faces, so
        R-Net and O-Net still prepare each new batch size on the first real frames (a few ms)."""
        from facesearch.models.openvino_model import COMPILE_AFTER

        blank = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(COMPILE_AFTER if self.backend == "openvino" else 1):
            self.detect(blank)

    def _run(self, batch: list[np.ndarray], min_face: int) -> list[list[dict]]:
        """The package's per-photo result dicts for photos of one size."""
        if self.backend == "keras":
            raw = self._model().detect_faces(batch if len(batch) > 1 else batch[0], min_face_size=min_face)
            return raw if len(batch) > 1 else [raw]
        rows = self._model().detect(np.stack(batch), min_face)
        return [_as_package_dicts(rows[rows[:, 0] == i]) for i in range(len(batch))]

    def _scale_for(self, shape: tuple[int, ...]) -> float:
        # A face of min_face_size pixels still spans MTCNN's 20-pixel floor after this scale:
        # shrinking the photo is how a larger minimum saves work (mtcnn's own min_face_size
        # keeps the pyramid's level count and breaks once a level falls under 12 px).
        scale = min(1.0, 20.0 / max(self.min_face_size, 20))
        longest = max(shape[0], shape[1])
        if self.max_side is not None and longest * scale > self.max_side:
            scale = self.max_side / longest
        return scale

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Find every face in one photo.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.

        Returns:
            Faces sorted by box area, largest first.
        """
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        """Find every face in several photos; photos of the same size run as one batch.

        MTCNN pads a batch to its largest member, so only equal-sized photos (after the
        downscale) are grouped: mixing sizes would cost more than it saves.
        """
        results: list[list[DetectedFace]] = [[] for _ in images]
        groups: dict[tuple[int, int], list[int]] = {}
        prepared: list[tuple[np.ndarray, float]] = []
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
            if min(image.shape[:2]) < self.min_face_size:
                continue  # no face of the minimum size fits; MTCNN would fail on the tiny pyramid
            scale = self._scale_for(image.shape)
            if scale != 1.0:
                size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
                small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            else:
                small = image
            prepared.append((small, scale))
            groups.setdefault(small.shape[:2], []).append(i)

        for indices in groups.values():
            batch = [prepared[i][0] for i in indices]
            # At most 20 px: see _scale_for. Smaller when a large photo was shrunk to max_side.
            min_face = max(12, min(20, int(round(self.min_face_size * prepared[indices[0]][1]))))
            for i, faces in zip(indices, self._run(batch, min_face)):
                results[i] = self._convert(faces, prepared[i][1])
        return results

    def _convert(self, raw: list[dict], scale: float) -> list[DetectedFace]:
        faces = []
        for d in raw:
            score = float(d["confidence"])
            if score < self.min_confidence:
                continue
            x, y, w, h = (float(v) / scale for v in d["box"])
            if min(w, h) < self.min_face_size:
                continue
            kp = d["keypoints"]
            landmarks = np.array([kp[name] for name in LANDMARK_NAMES], dtype=np.float32) / scale
            faces.append(DetectedFace(box=(x, y, w, h), landmarks=landmarks, score=score))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces


def _as_package_dicts(rows: np.ndarray) -> list[dict]:
    """Cascade rows ``[photo, x1, y1, x2, y2, score, x1..x5, y1..y5]`` as the package reports
    them: box ``[x, y, w, h]`` and landmarks rounded to whole pixels (half to even), confidence."""
    faces = []
    for row in rows:
        x1, y1, x2, y2 = row[1:5]
        box = np.round(np.array([x1, y1, x2 - x1, y2 - y1])).astype(int).tolist()
        marks = np.round(row[6:16]).astype(int)
        keypoints = {name: [int(marks[k]), int(marks[k + 5])] for k, name in enumerate(LANDMARK_NAMES)}
        faces.append({"box": box, "confidence": float(row[5]), "keypoints": keypoints})
    return faces
