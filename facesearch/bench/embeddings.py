"""One embedding per photo of a dataset, batched and cached by photo content.

Benchmarks need the face each photo is *about*: in LFW that is the face nearest the centre
(photos are centred on their subject, and other people may appear beside them); elsewhere the
largest face. A photo where no face is found gets a row of NaN and counts as a failure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from facesearch.models.analysis import Face, FaceAnalysis
from facesearch.models.detect import Detector
from facesearch.models.dlib_pipeline import DlibAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.models.photo_faces import PhotoError, analyse_files

#: The pipelines a benchmark can run: ours, and face_recognition's (dlib) for comparison.
EMBEDDERS = ("facenet", "dlib")


def make_analysis(embedder: str = "facenet", *, align: str = "box", min_confidence: float = 0.8,
                  min_face_size: int = 20, flip: bool | None = None, aligned: str | None = None,
                  crop_photos: bool = True) -> FaceAnalysis | DlibAnalysis:
    """The pipeline a benchmark row runs: FaceNet with these detector and crop settings (and
    ``aligned`` input; ``flip`` None for the product's default; see :class:`FaceAnalysis`), or
    dlib's (which has settings of its own and ignores these)."""
    if embedder == "dlib":
        return DlibAnalysis()
    if embedder != "facenet":
        raise ValueError(f"unknown embedder {embedder!r}; choose from {', '.join(EMBEDDERS)}")
    return FaceAnalysis(Detector(min_confidence=min_confidence, min_face_size=min_face_size), align=align, flip=flip,
                        aligned=aligned, crop_photos=crop_photos)


def pick_face(faces: Sequence[Face], width: int, height: int, how: str = "largest") -> Face | None:
    """The face a photo is about: ``"largest"`` box, or ``"center"`` (nearest the photo's centre)."""
    if not faces:
        return None
    if how == "largest":
        return max(faces, key=lambda f: f.area)
    cx, cy = width / 2, height / 2
    return min(faces, key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2)


#: Columns of :attr:`DatasetEmbeddings.quality`.
QUALITY_COLUMNS = ("detector_score", "face_pixels", "sharpness")


@dataclass
class DatasetEmbeddings:
    """``vectors`` float32 (N, D), NaN rows where ``ok`` is False; ``errors`` maps path -> reason.

    ``quality`` float32 (N, 3): per photo the chosen face's detector score, box height in pixels
    and sharpness (:data:`QUALITY_COLUMNS`), NaN where no face.
    """

    paths: list[Path]
    vectors: np.ndarray
    ok: np.ndarray
    errors: dict[str, str] = field(default_factory=dict)
    quality: np.ndarray | None = None

    def of(self) -> dict[Path, int]:
        return {p: i for i, p in enumerate(self.paths)}


def embed_photos(paths: Sequence[Path], analysis: FaceAnalysis, cache: FaceCache | None, *,
                 pick: str = "largest", progress: Callable[[int], None] | None = None,
                 on_total: Callable[[int], None] | None = None) -> DatasetEmbeddings:
    """Embed the chosen face of every photo in ``paths`` (duplicates are embedded once).

    ``on_total`` is called once with the number of distinct photos, ``progress`` with 1 per photo.
    """
    paths = list(dict.fromkeys(Path(p) for p in paths))
    if on_total:
        on_total(len(paths))
    vectors = np.full((len(paths), analysis.dim), np.nan, np.float32)
    ok = np.zeros(len(paths), bool)
    quality = np.full((len(paths), len(QUALITY_COLUMNS)), np.nan, np.float32)
    errors: dict[str, str] = {}
    for i, res in enumerate(analyse_files(paths, analysis, cache)):
        if isinstance(res, PhotoError):
            errors[str(res.path)] = res.reason
        else:
            face = pick_face(res.faces, res.width, res.height, pick)
            if face is None:
                errors[str(res.path)] = "no face found"
            else:
                vectors[i] = face.embedding
                quality[i] = (face.score, face.box[3], face.quality)
                ok[i] = True
        if progress:
            progress(1)
    return DatasetEmbeddings(paths, vectors, ok, errors, quality)
