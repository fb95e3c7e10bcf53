"""Face crops of a folder-per-identity photo tree, the training data of the face-crop classifiers.

:func:`crop_tree` turns every photo of ``src/<identity>/`` into its face crop under
``dst/<identity>/`` and logs the photos with no face or several faces.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from facesearch.bench.datasets import folder_dataset
from facesearch.errors import DataError
from facesearch.imaging.annotate import save_image
from facesearch.imaging.decode import load_image
from facesearch.models.align import crop_box
from facesearch.models.analysis import FaceAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.models.photo_faces import PhotoError, analyse_files


@dataclass
class CropReport:
    """What :func:`crop_tree` did; paths are the source photos, as strings."""

    cropped: list[tuple[str, str]] = field(default_factory=list)       # (source photo, crop written)
    no_face: list[str] = field(default_factory=list)
    multiple_faces: list[tuple[str, int]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"cropped": len(self.cropped), "no_face": list(self.no_face),
                "multiple_faces": [{"path": p, "faces": n} for p, n in self.multiple_faces],
                "errors": [{"path": p, "error": e} for p, e in self.errors]}


def crop_tree(src: str | os.PathLike, dst: str | os.PathLike, *, size: int = 224, analysis=None,
              all_faces: bool = False, use_cache: bool = True, progress: Callable[[int], None] | None = None,
              on_total: Callable[[int], None] | None = None) -> CropReport:
    """Detect the faces of every photo under ``src/<identity>/`` and write crops to ``dst/<identity>/``.

    Each crop is the detector's box widened by the product's 32-pixel margin, resized to
    ``size`` x ``size`` (uint8 RGB, written as ``<photo stem>.jpg``, JPEG quality 95). A photo
    with several faces contributes its largest (the labelled person, as in enrollment), or
    every face as ``<stem>_<n>.jpg`` with ``all_faces``. Writes ``dst/crop_log.json``.
    ``on_total`` is called once with the number of photos, ``progress`` with 1 per photo done.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DataError(f"{src}: no such folder")
    items = folder_dataset(src)
    if not items:
        raise DataError(f"{src}: no identity sub-folders with photos")
    if on_total:
        on_total(len(items))
    analysis = analysis or FaceAnalysis()
    cache = FaceCache.for_settings(analysis.settings) if use_cache else None
    report = CropReport()
    for (_, who), res in zip(items, analyse_files([p for p, _ in items], analysis, cache)):
        if progress:
            progress(1)
        if isinstance(res, PhotoError):
            report.errors.append((str(res.path), res.reason))
            continue
        if not res.faces:
            report.no_face.append(str(res.path))
            continue
        if len(res.faces) > 1:
            report.multiple_faces.append((str(res.path), len(res.faces)))
        faces = sorted(res.faces, key=lambda f: -f.area)
        image = load_image(res.path)
        folder = dst / who
        folder.mkdir(parents=True, exist_ok=True)
        for n, face in enumerate(faces if all_faces else faces[:1]):
            name = f"{res.path.stem}_{n}.jpg" if all_faces and len(faces) > 1 else f"{res.path.stem}.jpg"
            save_image(str(folder / name), crop_box(image, face.box, size=size))
            report.cropped.append((str(res.path), str(folder / name)))
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "crop_log.json").write_text(json.dumps({"source": str(src), "size": size, **report.as_dict()}, indent=2))
    return report
