"""A gallery's faces as files for other tools, and averages from such files enrolled back.

* :func:`export_gallery`: a gallery's faces as NumPy arrays (crops, labels, label mapping,
  embeddings) and ``average_embeddings.json`` (identity -> L2-normalised mean embedding).
* :func:`import_averages`: ``average_embeddings.json`` read back as an enrolled set. An identity
  known only by its average is stored as **one synthetic face row**: the average is its
  embedding, and its "photo" is a placeholder image row (path ``average-embedding:<json>``,
  0x0 pixels, 0 bytes, box ``(0, 0, 0, 0)``, detector score 0) whose sha256 is that of the
  name and vector, so importing the same file twice adds nothing. Matchers treat it like any
  face; :func:`export_gallery` leaves it out of the image arrays (it has no pixels) but counts
  it in the averages.

Reached through :meth:`Gallery.export <facesearch.gallery.Gallery.export>` and
:meth:`Gallery.import_averages <facesearch.gallery.Gallery.import_averages>`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from facesearch.errors import GalleryError, ImageError
from facesearch.gallery.store import NewFace
from facesearch.imaging.decode import load_image
from facesearch.models.align import crop_box
from facesearch.models.embed import prewhiten
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

if TYPE_CHECKING:  # pragma: no cover
    from facesearch.gallery.facade import Gallery

log = logging.getLogger(__name__)

#: Path prefix of the placeholder image rows that carry imported average embeddings.
AVERAGE_PATH_PREFIX = "average-embedding:"
AVERAGES_FILE = "average_embeddings.json"


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit L2 norm, float32 (D,).

    A vector already of unit norm (within 1e-6) is returned as is: renormalising it would only
    add rounding noise, and leaving it alone makes export -> import -> export exact.
    """
    v = np.asarray(v, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise GalleryError("an embedding is zero or not finite")
    return (v if abs(norm - 1.0) < 1e-6 else v / norm).astype(np.float32)


def average_embeddings(names: Sequence[str], vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Identity -> L2-normalised mean of its rows of ``vectors`` (N, D); float32 (D,) each, by name."""
    out = {}
    names_arr = np.asarray(names, dtype=object)
    for name in sorted(set(names)):
        out[name] = unit(vectors[names_arr == name].astype(np.float64).mean(axis=0))
    return out


def export_gallery(gallery: "Gallery", out: str | os.PathLike, *, size: int = 160) -> dict:
    """Write a gallery's faces as arrays into ``out``; returns a summary (also ``export.json``).

    Files (rows aligned across the first four):

    * ``all_images.npy``: float32 (N, size, size, 3) face crops re-cut from the source photos
      (the stored box, 32-pixel margin) and preprocessed as FaceNet reads them:
      ``(pixel - 127.5) / 128``, RGB, values in about [-1, 1];
    * ``all_labels.npy``: int64 (N,) index into the label mapping;
    * ``label_mapping.npy``: str (C,) identity names, sorted (every identity, even one with
      no image row);
    * ``face_embeddings.npy``: float32 (N, 512) the stored embeddings of those faces;
    * ``average_embeddings.json``: ``{name: [512 floats]}``, each identity's L2-normalised
      mean over **all** its stored faces (imported averages included).

    Faces whose source photo is gone or unreadable, and imported averages (no pixels), are
    left out of the arrays and listed in the summary.
    """
    out = Path(out)
    rows = gallery.store.face_sources()
    if not rows:
        raise GalleryError(f"{gallery.home}: the gallery is empty; nothing to export")
    classes = sorted({r.identity for r in rows})
    code = {c: i for i, c in enumerate(classes)}
    vectors = np.stack([r.embedding for r in rows])
    images, labels, keep, missing, synthetic = [], [], [], [], 0
    loaded: dict[str, np.ndarray | None] = {}
    for i, row in enumerate(rows):
        path = row.path
        if path.startswith(AVERAGE_PATH_PREFIX) or row.image_width == 0:
            synthetic += 1
            continue
        if path not in loaded:
            try:
                loaded[path] = load_image(path)
            except (ImageError, OSError) as exc:
                log.warning("%s: cannot re-read the photo (%s); its face is left out of the arrays", path, exc)
                loaded[path] = None
        if loaded[path] is None:
            missing.append(path)
            continue
        images.append(crop_box(loaded[path], row.box, size=size))
        labels.append(code[row.identity])
        keep.append(i)
    out.mkdir(parents=True, exist_ok=True)
    crops = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    np.save(out / "all_images.npy", prewhiten(crops))
    np.save(out / "all_labels.npy", np.asarray(labels, dtype=np.int64))
    np.save(out / "label_mapping.npy", np.asarray(classes, dtype=str))
    np.save(out / "face_embeddings.npy", vectors[keep])
    averages = average_embeddings([r.identity for r in rows], vectors)
    (out / AVERAGES_FILE).write_text(json.dumps({n: [float(x) for x in v] for n, v in averages.items()}))
    summary = {"gallery": str(gallery.home), "generation": gallery.store.generation(), "model_id": gallery.model_id,
               "faces": len(rows), "exported_images": len(keep), "identities": len(classes), "size": size,
               "preprocessing": "(pixel - 127.5) / 128, RGB, float32", "synthetic_faces": synthetic,
               "missing_photos": sorted(set(missing)), "folder": str(out)}
    (out / "export.json").write_text(json.dumps(summary, indent=2))
    return summary


def read_averages(path: str | os.PathLike, dim: int) -> dict[str, np.ndarray]:
    """``average_embeddings.json`` as name -> float32 (dim,) unit vectors; one-line errors."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GalleryError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise GalleryError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise GalleryError(f"{path}: expected a JSON object {{name: [{dim} numbers]}}")
    out = {}
    for name, values in data.items():
        v = np.asarray(values, dtype=np.float64) if isinstance(values, list) else np.zeros(0)
        if not str(name).strip() or v.shape != (dim,):
            raise GalleryError(f"{path}: {name!r} is not a name with {dim} numbers")
        try:
            out[str(name).strip()] = unit(v)
        except GalleryError:
            raise GalleryError(f"{path}: {name!r}: the embedding is zero or not finite") from None
    return out


def import_averages(gallery: "Gallery", path: str | os.PathLike) -> dict:
    """Enroll each identity of ``average_embeddings.json`` as one synthetic face (see module docstring).

    An identity already in the gallery gets the average as one more face; the same name and
    vector imported again is skipped as a duplicate. Returns ``{"file", "imported": [...], "duplicates": [...]}``.
    """
    averages = read_averages(path, gallery.dim)
    rows, imported, duplicates = [], [], []
    for name, v in averages.items():
        sha = hashlib.sha256(b"average-embedding\0" + name.encode() + b"\0" + v.astype("<f4").tobytes()).hexdigest()
        if gallery.store.image_owner(sha) is not None:
            duplicates.append(name)
            continue
        face = NewFace((0.0, 0.0, 0.0, 0.0), np.zeros((5, 2), np.float32), 0.0, 0.0, v)
        rows.append((name, f"{AVERAGE_PATH_PREFIX}{Path(path).resolve()}", sha, 0, 0, 0, [face]))
        imported.append(name)
    if rows:
        gallery.store.add_images(rows)
    return {"file": str(path), "imported": imported, "duplicates": duplicates}
