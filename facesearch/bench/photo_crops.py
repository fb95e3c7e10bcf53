"""The photos of a benchmark split turned into face crops, to measure crops as input.

``facesearch bench identify --input KIND`` replaces every photo of the split (enrolled photos
and probes alike) by a crop of its face made here from the full photo, with the product's
own detection (the face the split is about, e.g. the one nearest the centre for LFW):

* ``box-crop``: the detector's box, no margin, at its own size and shape (a tight crop);
* ``aligned112``: a five-point similarity warp onto ArcFace's 112x112 template (how face
  datasets such as insightface's ship their faces);
* ``facesearch-crop``: what ``facesearch crop`` writes: the product's crop (box + 32 px) at
  224x224, JPEG quality 95;
* ``full``: the photos themselves.

Crops are written once as files under ``<cache>/bench-crops/<kind>/<identity>/`` (private,
like the face cache: they are faces) and then read back like any user's photo, so the
identification run goes through the same loading, detection and embedding as ``enroll`` and
``query``, and repeated runs hit the face cache. A photo without a face gets no crop: its
entry then points at a file that does not exist and counts as a failure, as the full photo
does.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from facesearch.atomic import replace_atomically
from facesearch.bench.embeddings import pick_face
from facesearch.imaging.annotate import save_image
from facesearch.imaging.decode import load_image
from facesearch.models.align import align_5point, crop_box
from facesearch.models.analysis import Face, FaceAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.models.photo_faces import PhotoError, analyse_files
from facesearch.paths import cache_dir

#: The inputs ``bench identify --input`` compares; the first is the photos themselves.
INPUTS = ("full", "box-crop", "aligned112", "facesearch-crop")
#: File extension of each kind of crop (lossless where the crop is the point).
_SUFFIX = {"box-crop": ".png", "aligned112": ".png", "facesearch-crop": ".jpg"}


def crops_folder(kind: str) -> Path:
    """Where crops of ``kind`` are kept: ``<cache>/bench-crops/<kind>``."""
    return cache_dir() / "bench-crops" / kind


def make_crop(image: np.ndarray, face: Face, kind: str) -> np.ndarray:
    """The crop of ``kind`` (one of :data:`INPUTS` but ``full``) of ``face`` in ``image`` (uint8 RGB)."""
    if kind == "box-crop":
        x, y, w, h = face.box
        x0, y0 = max(int(round(x)), 0), max(int(round(y)), 0)
        return np.ascontiguousarray(image[y0:int(round(y + h)), x0:int(round(x + w))])
    if kind == "aligned112":
        return align_5point(image, face.landmarks, size=112, zoom=1.0)
    if kind == "facesearch-crop":
        return crop_box(image, face.box, size=224)
    raise ValueError(f"unknown input {kind!r}; choose one of {', '.join(INPUTS)}")


def crop_path(photo: Path, kind: str, folder: Path | None = None) -> Path:
    """Where the crop of ``photo`` (``.../<identity>/<name>``) is written: under its identity,
    its name plus a hash of its full path (a gallery tree and a probes tree may both hold
    ``<identity>/1.jpg``)."""
    tag = hashlib.sha1(str(Path(photo).resolve()).encode()).hexdigest()[:8]
    return (folder or crops_folder(kind)) / photo.parent.name / f"{photo.stem}-{tag}{_SUFFIX[kind]}"


def crop_photos(photos: list[Path], kind: str, analysis: FaceAnalysis, cache: FaceCache | None, *,
                pick: str = "largest", folder: str | os.PathLike | None = None,
                progress: Callable[[int], None] | None = None,
                on_total: Callable[[int], None] | None = None) -> dict[Path, Path]:
    """Each photo's crop of ``kind`` (written unless there already), as ``{photo: crop file}``.

    The face is found in the full photo with ``analysis`` (through ``cache``); a photo with no
    face (or unreadable) maps to a crop path that is never written.
    """
    folder = Path(folder) if folder is not None else crops_folder(kind)
    out = {p: crop_path(p, kind, folder) for p in photos}
    todo = [p for p in photos if not out[p].exists()]
    if on_total:
        on_total(len(todo))
    for res in analyse_files(todo, analysis, cache):
        if progress:
            progress(1)
        if isinstance(res, PhotoError):
            continue
        face = pick_face(res.faces, res.width, res.height, pick)
        if face is None:
            continue
        crop = make_crop(load_image(res.path), face, kind)
        replace_atomically(out[res.path], lambda tmp: save_image(tmp, crop), suffix=_SUFFIX[kind])
    return out
