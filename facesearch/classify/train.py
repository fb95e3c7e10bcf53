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

import numpy as np

from .base import ClassifierError, model_dir, stratified_holdout
from .mlp import MLPClassifier

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
        generation = gallery.store.generation()
        _, owners, vectors = gallery.store.embeddings()
        names = gallery.store.identity_names()
        if gallery.store.generation() == generation:
            break
    else:
        raise ClassifierError(f"{gallery.home}: the gallery keeps changing; train again when enrollment is done")
    y = [names[int(o)] for o in owners]
    trained_on = {"gallery": str(gallery.home), "generation": generation, "model_id": gallery.model_id,
                  "faces": len(y), "identities": len(set(y))}
    return vectors, y, trained_on


def embed_folder(folder: str | os.PathLike, analysis, *, use_cache: bool = True) -> tuple[np.ndarray, list[str], list[str]]:
    """Embeddings of a folder-per-identity tree: ``(X float32 (M, 512), names (M,), failed paths)``.

    Each photo's largest face is used; photos without a face are left out (and listed).
    Photos already seen by any gallery or benchmark come from the face cache.
    """
    from ..bench.embeddings import embed_photos
    from ..cache import FaceCache
    from ..datasets import folder_dataset
    from ..weights import cache_dir

    items = folder_dataset(folder)
    if not items:
        raise ClassifierError(f"{folder}: no identity sub-folders with photos")
    cache = FaceCache(cache_dir() / "faces", analysis.settings) if use_cache else None
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
        from .report import write_reports

        summary = write_reports(out, history=clf.history_, y_true=held_y, y_pred=list(pred), classes=clf.classes_,
                                evaluated_on=evaluated_on, extra=summary, title="mlp")
    else:
        summary["accuracy"] = round(float(np.mean(pred == np.asarray(held_y, dtype=object))), 4) if len(held_y) else None
        summary["epochs"] = len(clf.history_.get("loss", []))
    log.info("mlp trained on %d faces of %d identities: accuracy %.3f on %s", len(y), len(clf.classes_),
             summary["accuracy"] or 0.0, evaluated_on)
    return TrainResult(clf, path, summary)
