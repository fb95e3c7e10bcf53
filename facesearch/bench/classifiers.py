"""Closed-set benchmark rows for classifiers: alone, and as rerankers of the gallery's matchers.

Given a training split (enrolled) and a test split of the same identities, every method
names each test face, and a row reports closed-set accuracy and support-weighted precision,
recall and F1 (scikit-learn's ``average="weighted"`` over the enrolled identities):

* ``knn`` / ``centroid`` (role ``matcher``): the gallery's matchers at ``threshold``; a face
  they call unknown counts as wrong (closed set: every test face is someone enrolled);
* ``<classifier>`` (role ``alone``): the classifier's most probable identity, no threshold;
* ``<matcher>+<classifier>`` (role ``reranker``): :func:`.rerank.rerank_match` on the
  matcher's candidates, so unknown stays unknown and only candidates above the threshold
  compete. ``changed`` counts faces whose answer differs from the matcher's alone.

This module only computes rows; ``facesearch bench classify`` prints them. (The open-set
figures — DIR at FPIR, unknown rejection — are :mod:`facesearch.bench.identify`'s.)
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from facesearch.bench.datasets import folder_dataset
from facesearch.classify.base import Classifier
from facesearch.classify.kinds import load_classifier
from facesearch.classify.mlp import MLPClassifier
from facesearch.classify.rerank import rerank_match
from facesearch.classify.train import embed_folder
from facesearch.errors import OptionsError
from facesearch.imaging.decode import load_image
from facesearch.models.align import crop_box
from facesearch.models.analysis import FaceAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.models.photo_faces import PhotoError, analyse_files
from facesearch.search.match import DEFAULT_THRESHOLD, make_matcher

log = logging.getLogger(__name__)


@dataclass
class Probes:
    """Test faces: names (N,) and inputs for every kind of classifier, rows aligned.

    ``embeddings`` float32 (N, 512); ``crops`` uint8 (N, S, S, 3) face crops and ``photos``
    uint8 (N, S, S, 3) whole photos, at the size of the image models (``None`` when unused).
    """

    names: list[str]
    embeddings: np.ndarray
    crops: np.ndarray | None = None
    photos: np.ndarray | None = None

    def inputs(self, clf: Classifier) -> np.ndarray:
        """What ``clf`` reads: embeddings, crops or photos."""
        data = {"embedding": self.embeddings, "crop": self.crops, "photo": self.photos}[clf.input_kind]
        if data is None:
            raise ValueError(f"no {clf.input_kind} inputs were prepared for the {clf.kind} classifier")
        return data


def scores(y_true: Sequence[str], y_pred: Sequence[str | None], classes: Sequence[str]) -> dict:
    """Closed-set accuracy and weighted P/R/F1 over ``classes``; ``None`` predictions are wrong."""
    pred = ["<unknown>" if p is None else str(p) for p in y_pred]
    p, r, f, _ = precision_recall_fscore_support(list(y_true), pred, labels=list(classes), average="weighted",
                                                 zero_division=0)
    return {"accuracy": round(float(np.mean(np.asarray(pred, dtype=object) == np.asarray(y_true, dtype=object))), 4),
            "weighted_precision": round(float(p), 4), "weighted_recall": round(float(r), 4),
            "weighted_f1": round(float(f), 4), "unknown": int(sum(x is None for x in y_pred))}


def _open_set(answers: Sequence[str | None]) -> dict:
    """Open-set figures of the answers given to never-enrolled faces."""
    named = sum(a is not None for a in answers)
    return {"unknown_probes": len(answers), "unknown_rejected": round(1 - named / len(answers), 4) if answers else None}


def classifier_rows(train_x: np.ndarray, train_y: Sequence[str], probes: Probes, classifiers: Sequence[Classifier],
                    *, threshold: float = DEFAULT_THRESHOLD, matchers: Sequence[str] = ("knn", "centroid"),
                    k: int = 5, top_k: int = 5, unknown: Probes | None = None) -> list[dict]:
    """One row per matcher, per classifier alone, and per (matcher, classifier) reranker.

    Args:
        train_x, train_y: enrolled embeddings float32 (M, 512) and their names.
        probes: the test faces (their identities must be enrolled: closed set).
        classifiers: trained classifiers (any kind; their inputs come from ``probes``).
        unknown: faces of people never enrolled. Each row then adds ``unknown_rejected``, the
            share of them left unknown: a classifier alone names everyone (a softmax has no
            "none of them"), while a reranker keeps its matcher's figure by construction.
    """
    classes = sorted(set(train_y))
    rows = []
    matches, strangers = {}, {}
    for name in matchers:
        params = {"k": k} if name == "knn" else {}
        m = make_matcher(name, threshold=threshold, top_k=top_k, **params).fit(train_x, list(train_y))
        matches[name] = m.identify(probes.embeddings)
        row = {"method": name, "role": "matcher", "threshold": threshold,
               **scores(probes.names, [mt.identity for mt in matches[name]], classes)}
        if unknown is not None:
            strangers[name] = m.identify(unknown.embeddings) if len(unknown.names) else []
            row.update(_open_set([mt.identity for mt in strangers[name]]))
        rows.append(row)
    for clf in classifiers:
        proba = clf.predict_proba(probes.inputs(clf))
        pred = list(clf.classes_[np.argmax(proba, axis=1)])
        row = {"method": clf.kind, "role": "alone", **scores(probes.names, pred, classes)}
        if unknown is not None:
            row.update(_open_set(["named"] * len(unknown.names)))  # argmax always names someone
            stranger_proba = clf.predict_proba(unknown.inputs(clf)) if len(unknown.names) else None
        rows.append(row)
        for name, mts in matches.items():
            reranked = [rerank_match(mt, p, clf.classes_, threshold=threshold, by=clf.kind) for mt, p in zip(mts, proba)]
            row = scores(probes.names, [r.identity for r in reranked], classes)
            row["changed"] = int(sum(r.identity != mt.identity for r, mt in zip(reranked, mts)))
            if unknown is not None:
                answers = [rerank_match(mt, p, clf.classes_, threshold=threshold).identity
                           for mt, p in zip(strangers[name], stranger_proba if stranger_proba is not None else [])]
                row.update(_open_set(answers))
            rows.append({"method": f"{name}+{clf.kind}", "role": "reranker", "threshold": threshold, **row})
    return rows


def folder_probes(folder: str | os.PathLike, analysis, *, crop_size: int | None = None,
                  photo_size: int | None = None) -> Probes:
    """:class:`Probes` of a folder-per-identity tree: each photo's largest face (photos without one left out).

    Crops (the product's box crop at ``crop_size``) and resized whole photos (``photo_size``) are
    made only when asked for. Detections and embeddings come through the face cache.
    """
    cache = FaceCache.for_settings(analysis.settings)
    names, vectors, crops, photos = [], [], [], []
    items = folder_dataset(folder)
    for (path, who), res in zip(items, analyse_files([p for p, _ in items], analysis, cache)):
        if isinstance(res, PhotoError) or not res.faces:
            continue
        face = max(res.faces, key=lambda f: f.area)
        names.append(who)
        vectors.append(face.embedding)
        if crop_size or photo_size:
            image = load_image(Path(path))
            if crop_size:
                crops.append(crop_box(image, face.box, size=crop_size))
            if photo_size:
                photos.append(cv2.resize(image, (photo_size, photo_size), interpolation=cv2.INTER_AREA))
    return Probes(names, np.asarray(vectors, np.float32).reshape(len(names), -1),
                  np.stack(crops) if crops else None, np.stack(photos) if photos else None)


def run(train_dir: str | os.PathLike, test_dir: str | os.PathLike, *, models: Sequence[str | os.PathLike] = (),
        unknown_dir: str | os.PathLike | None = None, threshold: float | None = None, seed: int = 0) -> dict:
    """``facesearch bench classify``: enroll ``train_dir``, fit a fresh mlp on it, load ``models``,
    and score matchers, classifiers alone and classifiers as rerankers on ``test_dir`` (and on the
    strangers of ``unknown_dir``). Returns the dict ``--json`` prints.

    Raises:
        OptionsError: a person of ``unknown_dir`` is also in ``train_dir``.
    """
    analysis = FaceAnalysis()
    train_x, train_y, failed = embed_folder(train_dir, analysis)
    loaded = [load_classifier(m) for m in models]
    crop_sizes = [c.input_size for c in loaded if c.input_kind == "crop"]
    photo_sizes = [c.input_size for c in loaded if c.input_kind == "photo"]
    inputs = dict(crop_size=max(crop_sizes, default=None), photo_size=max(photo_sizes, default=None))
    probes = folder_probes(test_dir, analysis, **inputs)
    strangers = folder_probes(unknown_dir, analysis, **inputs) if unknown_dir else None
    if strangers is not None:
        overlap = sorted(set(strangers.names) & set(train_y))
        if overlap:
            raise OptionsError(f"--unknown {unknown_dir}: {', '.join(overlap[:3])} "
                            f"{'is' if len(overlap) == 1 else 'are'} enrolled from --train, so not unknown")
    mlp = MLPClassifier(seed=seed).fit(train_x, train_y)
    thr = DEFAULT_THRESHOLD if threshold is None else threshold
    rows = classifier_rows(train_x, train_y, probes, [mlp, *loaded], threshold=thr, unknown=strangers)
    return {"benchmark": "classify", "train": str(train_dir), "test": str(test_dir), "train_faces": len(train_y),
            "train_no_face": len(failed), "test_faces": len(probes.names), "identities": len(set(train_y)),
            "unknown": None if unknown_dir is None else str(unknown_dir),
            "unknown_faces": len(strangers.names) if strangers else None, "threshold": thr, "rows": rows}
