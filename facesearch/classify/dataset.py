"""Dataset tools around classifiers: crop a photo tree, export / import a gallery, split, augment.

* :func:`crop_tree`: every photo of a folder-per-identity tree -> its face crop, same layout,
  with a log of photos with no face or several faces.
* :func:`export_gallery`: a gallery's faces as NumPy arrays (crops, labels, label mapping,
  embeddings) and ``average_embeddings.json`` (identity -> L2-normalised mean embedding).
* :func:`import_averages`: ``average_embeddings.json`` read back as an enrolled set. An identity
  known only by its average is stored as **one synthetic face row**: the average is its
  embedding, and its "photo" is a placeholder image row (path ``average-embedding:<json>``,
  0x0 pixels, 0 bytes, box ``(0, 0, 0, 0)``, detector score 0) whose sha256 is that of the
  name and vector, so importing the same file twice adds nothing. Matchers treat it like any
  face; :func:`export_gallery` leaves it out of the image arrays (it has no pixels) but counts
  it in the averages.
* :func:`split_items`, :func:`write_split`: stratified, seeded train/val/test split (per
  identity) and a class-distribution bar chart.
* :func:`augmentation`, :func:`preview_augmentation`: Keras preprocessing layers (rotation,
  shifts, shear, horizontal flip, brightness) and a preview grid.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from facesearch.errors import FaceSearchError

log = logging.getLogger(__name__)

#: Path prefix of the placeholder image rows that carry imported average embeddings.
AVERAGE_PATH_PREFIX = "average-embedding:"
#: Photos per detection batch in :func:`crop_tree`.


class DatasetError(FaceSearchError):
    """A dataset file or folder cannot be used (one-line message)."""


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit L2 norm, float32 (D,).

    A vector already of unit norm (within 1e-6) is returned as is: renormalising it would only
    add rounding noise, and leaving it alone makes export -> import -> export exact.
    """
    v = np.asarray(v, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise DatasetError("an embedding is zero or not finite")
    return (v if abs(norm - 1.0) < 1e-6 else v / norm).astype(np.float32)


# -- crop -------------------------------------------------------------------------------------

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
    from facesearch.models.align import crop_box
    from facesearch.models.analysis import FaceAnalysis
    from facesearch.imaging.annotate import save_image
    from facesearch.models.face_cache import FaceCache
    from facesearch.bench.datasets import folder_dataset
    from facesearch.imaging.decode import load_image
    from facesearch.models.photo_faces import PhotoError, analyse_files

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DatasetError(f"{src}: no such folder")
    items = folder_dataset(src)
    if not items:
        raise DatasetError(f"{src}: no identity sub-folders with photos")
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


# -- export / import --------------------------------------------------------------------------

def average_embeddings(names: Sequence[str], vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Identity -> L2-normalised mean of its rows of ``vectors`` (N, D); float32 (D,) each, by name."""
    out = {}
    names_arr = np.asarray(names, dtype=object)
    for name in sorted(set(names)):
        out[name] = unit(vectors[names_arr == name].astype(np.float64).mean(axis=0))
    return out


def export_gallery(gallery, out: str | os.PathLike, *, size: int = 160) -> dict:
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
    from facesearch.models.align import crop_box
    from facesearch.models.embed import prewhiten
    from facesearch.errors import ImageError
    from facesearch.imaging.decode import load_image

    out = Path(out)
    rows = gallery.store.face_sources()
    if not rows:
        raise DatasetError(f"{gallery.home}: the gallery is empty; nothing to export")
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
    (out / "average_embeddings.json").write_text(json.dumps({n: [float(x) for x in v] for n, v in averages.items()}))
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
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise DatasetError(f"{path}: expected a JSON object {{name: [{dim} numbers]}}")
    out = {}
    for name, values in data.items():
        v = np.asarray(values, dtype=np.float64) if isinstance(values, list) else np.zeros(0)
        if not str(name).strip() or v.shape != (dim,):
            raise DatasetError(f"{path}: {name!r} is not a name with {dim} numbers")
        try:
            out[str(name).strip()] = unit(v)
        except DatasetError:
            raise DatasetError(f"{path}: {name!r}: the embedding is zero or not finite") from None
    return out


def import_averages(gallery, path: str | os.PathLike) -> dict:
    """Enroll each identity of ``average_embeddings.json`` as one synthetic face (see module docstring).

    An identity already in the gallery gets the average as one more face; the same name and
    vector imported again is skipped as a duplicate. Returns ``{"imported": [...], "duplicates": [...]}``.
    """
    from facesearch.gallery.store import NewFace

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
        gallery.reindex()
    return {"file": str(path), "imported": imported, "duplicates": duplicates}


# -- split ------------------------------------------------------------------------------------

SPLITS = ("train", "val", "test")


def split_items(items: Sequence[tuple[Path, str]], *, val: float = 0.15, test: float = 0.15,
                seed: int = 0) -> dict[str, list[tuple[Path, str]]]:
    """Stratified, seeded split of ``(photo, identity)`` pairs into train / val / test.

    Each identity's photos are shuffled (NumPy generator seeded with ``seed``) and cut by
    itself: ``round(test * n)`` to test, ``round(val * n)`` to val, the rest to train, always
    keeping at least one photo in train. Per-identity cutting keeps the class proportions
    in every split, and, unlike a global stratified split, works for identities with one or two
    photos.
    """
    if val < 0 or test < 0 or val + test >= 1:
        raise DatasetError(f"val ({val}) and test ({test}) must be >= 0 and sum to less than 1")
    rng = np.random.default_rng(seed)
    by_name: dict[str, list[Path]] = {}
    for path, who in items:
        by_name.setdefault(who, []).append(Path(path))
    out: dict[str, list[tuple[Path, str]]] = {s: [] for s in SPLITS}
    for who in sorted(by_name):
        photos = sorted(by_name[who])
        order = rng.permutation(len(photos))
        n_test = min(int(round(test * len(photos))), len(photos) - 1)
        n_val = min(int(round(val * len(photos))), len(photos) - 1 - n_test)
        cut = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        for name in SPLITS:
            out[name] += [(photos[i], who) for i in sorted(cut[name])]
    return out


def plot_class_distribution(splits: dict[str, list[tuple[Path, str]]], path: str | os.PathLike) -> Path:
    """Grouped bar chart: photos per identity in each split."""
    from facesearch.classify.report import _pyplot

    plt = _pyplot()
    names = sorted({who for items in splits.values() for _, who in items})
    x = np.arange(len(names))
    width = 0.8 / max(len(splits), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 4))
    for j, (split, items) in enumerate(splits.items()):
        counts = [sum(1 for _, w in items if w == n) for n in names]
        ax.bar(x + (j - (len(splits) - 1) / 2) * width, counts, width, label=f"{split} ({len(items)})")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("photos")
    ax.set_title("class distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_split(src: str | os.PathLike, dst: str | os.PathLike, *, val: float = 0.15, test: float = 0.15,
                seed: int = 0) -> dict:
    """Copy a folder-per-identity tree into ``dst/{train,val,test}/<identity>/``.

    Also writes ``dst/split.json`` (counts per split and identity, the seed) and
    ``dst/class_distribution.png``. Returns the ``split.json`` content.
    """
    from facesearch.bench.datasets import folder_dataset

    items = folder_dataset(src)
    if not items:
        raise DatasetError(f"{src}: no identity sub-folders with photos")
    splits = split_items(items, val=val, test=test, seed=seed)
    dst = Path(dst)
    for name, pairs in splits.items():
        for path, who in pairs:
            (dst / name / who).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst / name / who / path.name)
    plot_class_distribution(splits, dst / "class_distribution.png")
    counts = {name: {who: sum(1 for _, w in pairs if w == who) for who in sorted({w for _, w in items})}
              for name, pairs in splits.items()}
    info = {"source": str(src), "seed": seed, "val": val, "test": test,
            "totals": {name: len(pairs) for name, pairs in splits.items()}, "per_identity": counts,
            "class_distribution_png": str(dst / "class_distribution.png")}
    (dst / "split.json").write_text(json.dumps(info, indent=2))
    return info


# -- augmentation -----------------------------------------------------------------------------

def augmentation(seed: int = 0, *, rotation: float = 0.05, shift: float = 0.1, shear: float = 0.1,
                 brightness: float = 0.2):
    """Keras preprocessing layers that augment ``(N, H, W, 3)`` float images in 0..255 while training.

    Rotation by up to ``rotation`` of a full turn (0.05 = 18 degrees), shifts by up to
    ``shift`` of the size, shear up to ``shear``, horizontal flips (faces are roughly
    symmetric; vertical flips are not faces), brightness by up to ``brightness`` of the range.
    Active only when called with ``training=True`` (Keras's ``fit``), identity otherwise.
    """
    from facesearch.classify.base import import_keras

    keras = import_keras()
    from keras import layers

    return keras.Sequential([
        layers.RandomRotation(rotation, fill_mode="reflect", seed=seed),
        layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seed + 1),
        layers.RandomShear(x_factor=shear, y_factor=shear, fill_mode="reflect", seed=seed + 2),
        layers.RandomFlip("horizontal", seed=seed + 3),
        layers.RandomBrightness(brightness, value_range=(0, 255), seed=seed + 4),
    ], name="augmentation")


def preview_augmentation(image: np.ndarray, path: str | os.PathLike, *, n: int = 8, seed: int = 0) -> Path:
    """A grid PNG: ``image`` ((H, W, 3) uint8 RGB) and ``n`` augmented versions of it."""
    from facesearch.classify.report import _pyplot

    aug = augmentation(seed)
    batch = np.repeat(np.asarray(image, np.float32)[None], n, axis=0)
    from facesearch.classify.base import import_keras

    keras = import_keras()
    out = keras.ops.convert_to_numpy(aug(batch, training=True))
    plt = _pyplot()
    cols = min(3, n + 1)
    rows = int(np.ceil((n + 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.5 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    tiles = [("original", np.asarray(image))] + [(f"augmented {i + 1}", out[i]) for i in range(n)]
    for ax, (title, tile) in zip(axes.ravel(), tiles):
        ax.imshow(np.clip(tile, 0, 255).astype(np.uint8))
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
