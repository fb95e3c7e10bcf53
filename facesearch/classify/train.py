"""Train the embedding classifier on a gallery's own faces, save it, write its reports.

    >>> from facesearch import Gallery
    >>> from facesearch.classify.train import train_mlp
    >>> result = train_mlp(Gallery("~/celebs"), out="reports/", eval_dir="val/")
    >>> result.summary["accuracy"], result.path      # saved under <home>/models/mlp/
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facesearch.bench.datasets import folder_dataset
from facesearch.bench.embeddings import embed_photos
from facesearch.boxes import iou
from facesearch.classify.base import ClassifierError, model_dir, stratified_holdout
from facesearch.classify.image_models import BASES, IMAGE_MODELS
from facesearch.classify.mlp import MLPClassifier
from facesearch.classify.report import write_reports
from facesearch.classify.splits import split_items
from facesearch.imaging.decode import load_image
from facesearch.models.analysis import FaceAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.models.photo_faces import PhotoError, analyse_files

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """A trained and saved classifier and its evaluation summary (see :func:`.report.write_reports`)."""

    classifier: Any
    path: Path
    summary: dict


def gallery_embeddings(gallery) -> tuple[np.ndarray, list[str], dict]:
    """Every stored face of ``gallery``: embeddings float32 (N, 512), identity names (N,), provenance.

    The provenance (``trained_on``) names the gallery, its generation and its embedding model;
    the generation is read before and after the embeddings so that a concurrent change is
    never recorded under the wrong generation.
    """
    for _ in range(5):
        generation = gallery.generation()
        y, vectors = gallery.embeddings()
        if gallery.generation() == generation:
            break
    else:
        raise ClassifierError(f"{gallery.home}: the gallery keeps changing; train again when enrollment is done")
    trained_on = {"gallery": str(gallery.home), "generation": generation, "model_id": gallery.model_id,
                  "faces": len(y), "identities": len(set(y))}
    return vectors, y, trained_on


def embed_folder(folder: str | os.PathLike, analysis, *, use_cache: bool = True) -> tuple[np.ndarray, list[str], list[str]]:
    """Embeddings of a folder-per-identity tree: ``(X float32 (M, 512), names (M,), failed paths)``.

    Each photo's largest face is used; photos without a face are left out (and listed).
    Photos already seen by any gallery or benchmark come from the face cache.
    """
    items = folder_dataset(folder)
    if not items:
        raise ClassifierError(f"{folder}: no identity sub-folders with photos")
    cache = FaceCache.for_settings(analysis.settings) if use_cache else None
    emb = embed_photos([p for p, _ in items], analysis, cache)
    where = emb.of()
    keep = [(where[p], who) for p, who in items if emb.ok[where[p]]]
    X = emb.vectors[[i for i, _ in keep]] if keep else np.zeros((0, emb.vectors.shape[1]), np.float32)
    return X.astype(np.float32), [who for _, who in keep], sorted(emb.errors)


def train_mlp(gallery, *, out: str | os.PathLike | None = None, eval_dir: str | os.PathLike | None = None,
              save_to: str | os.PathLike | None = None, **params) -> TrainResult:
    """Train :class:`MLPClassifier` on ``gallery``'s stored embeddings and save it.

    Args:
        out: folder for the reports (none written when ``None``).
        eval_dir: a folder-per-identity tree of photos to evaluate on (e.g. ``5celeb/val``);
            identities the gallery does not hold are left out. Without it the reports describe
            the stratified validation split, or, for galleries too small for one, the
            training faces themselves (said so in ``evaluated_on``).
        save_to: where to save (default ``<home>/models/mlp``).
        params: :class:`MLPClassifier` parameters.
    """
    X, y, trained_on = gallery_embeddings(gallery)
    if len(set(y)) < 2:
        raise ClassifierError(f"{gallery.home}: the gallery holds {len(set(y))} identity with faces; "
                              f"a classifier needs at least two")
    clf = MLPClassifier(**params)
    split = stratified_holdout(y, clf.validation_split, clf.seed)
    started = time.perf_counter()
    if split is None:
        clf.fit(X, y, trained_on=trained_on)
        held_x, held_y = X, y
        evaluated_on = f"training faces ({len(y)}; too few for a validation split)"
    else:
        train, held = split
        held_x, held_y = X[held], [y[i] for i in held]
        clf.fit(X[train], [y[i] for i in train], validation_data=(held_x, held_y), trained_on=trained_on)
        evaluated_on = f"validation split ({len(held)} of {len(y)} gallery faces)"
    train_s = time.perf_counter() - started
    path = clf.save(save_to or model_dir(gallery.home, clf.kind))
    if eval_dir is not None:
        held_x, held_y, failed = embed_folder(eval_dir, gallery.analysis)
        known = set(clf.classes_)
        keep = [i for i, v in enumerate(held_y) if v in known]
        if not keep:
            raise ClassifierError(f"{eval_dir}: none of its identities is in the gallery")
        held_x, held_y = held_x[keep], [held_y[i] for i in keep]
        evaluated_on = f"{eval_dir} ({len(held_y)} photos, {len(failed)} without a face left out)"
    summary = {"kind": clf.kind, "model_dir": str(path), "trained_on": trained_on, "train_seconds": round(train_s, 2),
               "params": clf.get_params(), "evaluated_on": evaluated_on}
    pred = clf.predict(held_x) if len(held_y) else np.array([], dtype=object)
    if out is not None:
        summary = write_reports(out, history=clf.history_, y_true=held_y, y_pred=list(pred), classes=clf.classes_,
                                evaluated_on=evaluated_on, extra=summary, title="mlp")
    else:
        summary["accuracy"] = round(float(np.mean(pred == np.asarray(held_y, dtype=object))), 4) if len(held_y) else None
        summary["epochs"] = len(clf.history_.get("loss", []))
    log.info("mlp trained on %d faces of %d identities: accuracy %.3f on %s", len(y), len(clf.classes_),
             summary["accuracy"] or 0.0, evaluated_on)
    return TrainResult(clf, path, summary)


# -- image models -------------------------------------------------------------------------------

def load_images(items: list[tuple[Path, str]], size: int) -> np.ndarray:
    """The photos of ``(path, identity)`` pairs resized to ``size`` x ``size``: uint8 (N, size, size, 3) RGB."""
    out = np.zeros((len(items), size, size, 3), np.uint8)
    for i, (path, _) in enumerate(items):
        img = load_image(path)
        interp = cv2.INTER_AREA if max(img.shape[:2]) > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(img, (size, size), interpolation=interp)
    return out


def data_splits(data: str | os.PathLike, *, val: float = 0.15, test: float = 0.15,
                seed: int = 0) -> dict[str, list[tuple[Path, str]]]:
    """``{"train", "val", "test"}`` -> ``(photo, identity)`` pairs of a dataset folder.

    A folder with ``train/`` (and optionally ``val/``, ``test/``) sub-folders, as written by
    ``facesearch split``, is used as split; any other folder-per-identity tree is split here
    with :func:`.splits.split_items` (stratified, seeded).
    """
    data = Path(data)
    if (data / "train").is_dir():
        return {name: folder_dataset(data / name) if (data / name).is_dir() else [] for name in ("train", "val", "test")}
    items = folder_dataset(data)
    if not items:
        raise ClassifierError(f"{data}: no identity sub-folders with images")
    return split_items(items, val=val, test=test, seed=seed)


def photo_boxes(items: list[tuple[Path, str]], size: int, analysis) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """Whole photos and their largest face box, for boxnet.

    Returns ``(photos uint8 (M, size, size, 3), names (M,), boxes float32 (M, 4) as fractions
    (x, y, w, h) of the photo, paths without a face)``. Detections come through the face cache.
    """
    cache = FaceCache.for_settings(analysis.settings)
    keep, boxes, skipped = [], [], []
    for (path, who), res in zip(items, analyse_files([p for p, _ in items], analysis, cache)):
        if isinstance(res, PhotoError) or not res.faces:
            skipped.append(str(path))
            continue
        x, y, w, h = max(res.faces, key=lambda f: f.area).box
        W, H = res.width, res.height
        box = np.clip([x / W, y / H, w / W, h / H], 0.0, 1.0)
        keep.append((path, who))
        boxes.append(box)
    photos = load_images(keep, size)
    return photos, [who for _, who in keep], np.asarray(boxes, np.float32).reshape(-1, 4), skipped


def train_image_model(kind: str, data: str | os.PathLike, *, save_to: str | os.PathLike,
                      out: str | os.PathLike | None = None, val: float = 0.15, test: float = 0.15,
                      analysis=None, gallery=None, **params) -> TrainResult:
    """Train an image classifier (``inception``, ``ensemble`` or ``boxnet``) on a dataset folder.

    Args:
        data: folder-per-identity images (face crops from ``facesearch crop`` for inception and
            ensemble; whole photos for boxnet), or a folder with train/ val/ test/ inside.
        save_to: where to save the model.
        out: folder for the reports (evaluated on test/, else val/, else the training images).
        val, test: fractions for the split when ``data`` is not split already.
        analysis: the :class:`~facesearch.models.analysis.FaceAnalysis` finding boxnet's boxes.
        gallery: the :class:`~facesearch.gallery.Gallery` the model is trained for: its state
            (generation, embedding model) is recorded, so that ``query --rerank`` uses the
            model only until that gallery changes. ``None``: a model of the data alone.
        params: the classifier's parameters (:class:`.image_models.ImageClassifier`).
    """
    clf = IMAGE_MODELS[kind](**params)
    clf.check_weights()  # a missing ImageNet file fails here, before minutes of data loading
    splits = data_splits(data, val=val, test=test, seed=clf.seed)
    size = clf.input_size
    arrays, skipped = {}, []
    for name, items in splits.items():
        if kind == "boxnet":
            X, y, B, missed = photo_boxes(items, size, analysis or FaceAnalysis())
            skipped += missed
        else:
            X, y, B = load_images(items, size), [who for _, who in items], None
        arrays[name] = (X, y, B)
    X, y, B = arrays["train"]
    if len(set(y)) < 2:
        raise ClassifierError(f"{data}: the training split holds {len(set(y))} identity; need at least two")
    vx, vy, vb = arrays["val"]
    validation = None if not len(vy) else ((vx, vy, vb) if kind == "boxnet" else (vx, vy))
    trained_on = {"data": str(data), "gallery": None, "generation": None, "model_id": None,
                  "bases": "+".join(BASES[b].name for b in clf.bases),
                  "base_weights": str(clf.base_weights), "input_size": size,
                  "split": {k: len(v[1]) for k, v in arrays.items()}}
    if gallery is not None:
        trained_on.update(gallery=str(gallery.home), generation=gallery.generation(),
                          model_id=gallery.model_id)
    started = time.perf_counter()
    if kind == "boxnet":
        clf.fit(X, y, boxes=B, validation_data=validation, trained_on=trained_on)
    else:
        clf.fit(X, y, validation_data=validation, trained_on=trained_on)
    train_s = time.perf_counter() - started
    path = clf.save(save_to)
    eval_name = next((n for n in ("test", "val", "train") if len(arrays[n][1])), "train")
    ex, ey, eb = arrays[eval_name]
    known = set(clf.classes_)
    keep = [i for i, v in enumerate(ey) if v in known]
    ex, ey = ex[keep], [ey[i] for i in keep]
    pred = list(clf.predict(ex)) if len(ey) else []
    summary = {"kind": kind, "model_dir": str(path), "trained_on": trained_on, "train_seconds": round(train_s, 2),
               "params": clf.get_params(), "skipped_photos": skipped}
    if kind == "boxnet" and len(ey):
        summary["box_mean_iou"] = round(float(iou(clf.predict_boxes(ex), eb[keep]).mean()), 4)
    evaluated_on = f"{eval_name} split ({len(ey)} images)"
    if out is not None:
        summary = write_reports(out, history=clf.history_, y_true=ey, y_pred=pred, classes=clf.classes_,
                                evaluated_on=evaluated_on, images=ex, extra=summary, title=kind)
    else:
        summary.update(evaluated_on=evaluated_on, samples=len(ey), epochs=len(clf.history_.get("loss", [])),
                       accuracy=round(float(np.mean(np.asarray(pred, dtype=object) == np.asarray(ey, dtype=object))), 4)
                       if len(ey) else None)
    return TrainResult(clf, path, summary)
