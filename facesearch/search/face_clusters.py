"""TEMPORARY stand-in (branch `people`) for the clustering module the `cluster` branch builds:
scikit-learn's DBSCAN on cosine distance, with the agreed API. The `cluster` branch's version
replaces this file at merge.

Faces are L2-normalised float32 rows; labels are int64, -1 for a face in no cluster.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: Cosine distance within which two faces are neighbours.
EPS = 0.45
#: Neighbours (the face included) a face needs to be a core face.
MIN_SAMPLES = 3


def _enforce(labels: np.ndarray, vectors: np.ndarray, photo_ids: np.ndarray,
             cannot_link: Sequence[tuple[int, int]]) -> np.ndarray:
    """Drop to -1 the faces that share a cluster with a face of their own photo or a cannot-link
    partner, keeping the one nearest the cluster's centre."""
    labels = labels.copy()
    banned = {(min(a, b), max(a, b)) for a, b in cannot_link}
    for label in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == label)
        centre = vectors[rows].mean(axis=0)
        kept: list[int] = []
        for r in rows[np.argsort(-(vectors[rows] @ centre))]:
            if any(photo_ids[r] == photo_ids[k] or (min(r, k), max(r, k)) in banned for k in kept):
                labels[r] = -1
            else:
                kept.append(int(r))
    return labels


def cluster_faces(vectors: np.ndarray, photo_ids: np.ndarray, *, cannot_link: Sequence[tuple[int, int]] = (),
                  eps: float = EPS, min_samples: int = MIN_SAMPLES) -> np.ndarray:
    """Labels (N,) int64 of ``vectors`` (N, D) float32, -1 for noise; no two faces of one photo
    (``photo_ids`` (N,) int64) nor of one ``cannot_link`` pair share a label."""
    from sklearn.cluster import DBSCAN

    vectors = np.asarray(vectors, np.float32)
    if len(vectors) == 0:
        return np.zeros(0, np.int64)
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit_predict(vectors).astype(np.int64)
    return _enforce(labels, vectors, np.asarray(photo_ids), cannot_link)


def attach_faces(new_vectors: np.ndarray, new_photo_ids: np.ndarray, vectors: np.ndarray, labels: np.ndarray,
                 photo_ids: np.ndarray, *, cannot_link: Sequence[tuple[int, int]] = (),
                 eps: float = EPS) -> np.ndarray:
    """Labels (M,) for new faces: the cluster of their nearest clustered face within ``eps``, unless
    that cluster already holds a face of their photo or a cannot-link partner (indexes into the
    concatenation new + existing); else -1."""
    new_vectors = np.asarray(new_vectors, np.float32)
    out = np.full(len(new_vectors), -1, np.int64)
    clustered = np.flatnonzero(np.asarray(labels) >= 0)
    if not len(new_vectors) or not len(clustered):
        return out
    m = len(new_vectors)
    banned: dict[int, set[int]] = {}
    for a, b in cannot_link:
        banned.setdefault(a, set()).add(b)
        banned.setdefault(b, set()).add(a)
    sims = new_vectors @ np.asarray(vectors, np.float32)[clustered].T
    for i in range(m):
        for j in np.argsort(-sims[i]):
            if 1 - sims[i, j] > eps:
                break
            label = labels[clustered[j]]
            members = np.flatnonzero(labels == label)
            if np.any(photo_ids[members] == new_photo_ids[i]) or \
                    any(m + int(k) in banned.get(i, ()) for k in members):
                continue
            out[i] = label
            break
    return out
