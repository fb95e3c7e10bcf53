"""Unknown faces grouped into candidate people: clustering with "never together" constraints.

Photo managers cluster the faces nobody has named yet so that a user names a person once
instead of face by face. The users' complaint is look-alikes merged into one person, and a
wrong merge costs more than a split (a split is fixed by naming both halves alike), so the
method here is tuned for precision first.

Method (chosen by measurement, see docs/benchmarks.md, "bench cluster"): average-linkage
agglomerative clustering on cosine distance (scipy's ``linkage``), cut with a threshold that
depends on the sizes of the two groups merged (strict for two lone faces, ``pair_threshold``,
looser for large groups, up to ``threshold``: :func:`merge_threshold`) and with the
constraints built into the cut:

* two faces of the same photo are never one person (one person appears once in a photo);
* a ``cannot_link`` pair (the user said "this face is NOT that person") is never one person.

A dendrogram merge is kept when every merge below it was, it passes the size-dependent
threshold, and its two sides hold no conflicting faces, but for one face of the smaller side,
which is dropped from the cluster rather than cutting a large person in two; the clusters are
the highest kept merges. Faces that end alone are not in any cluster (label -1).

The thresholds follow the library's size (:func:`thresholds_for`): the defaults were chosen on all
of LFW (15,266 faces), where each face has thousands of strangers to meet a look-alike among; a
library of a hundred faces has a hundred times fewer, so the same rate of wrong links allows a
looser threshold (and a library of a million faces needs a stricter one). The rate of
different people's faces within each distance was measured on LFW (:data:`STRANGER_RATE`).

Average linkage only merges two groups whose mean distance is within the threshold, which
needs at least one pair of faces within it; so faces are first split into the connected
components of the "within threshold" graph and each component is linked on its own (exact,
and memory grows with the largest component, not with all faces).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import pdist

#: Mean cosine distance (1 - cosine similarity of L2-normalised FaceNet embeddings) at which
#: large groups merge, and at which two lone faces do; chosen on LFW by ``facesearch bench
#: cluster`` (docs/benchmarks.md) for pairwise precision >= 0.99 with few strangers paired.
DEFAULT_THRESHOLD = 0.45
DEFAULT_PAIR_THRESHOLD = 0.32
#: The library the two defaults were chosen on: every face of LFW's 13,233 photos.
REFERENCE_FACES = 15_266
#: Share of pairs of different people's faces within each cosine distance, measured on the
#: labelled faces of LFW's 13,233 photos (87.3M pairs of different people; docs/benchmarks.md).
STRANGER_RATE = ((0.20, 3.207e-07), (0.24, 7.445e-07), (0.28, 1.752e-06), (0.32, 6.826e-06), (0.36, 2.449e-05),
                 (0.40, 8.530e-05), (0.44, 2.604e-04), (0.48, 7.108e-04), (0.52, 1.775e-03), (0.56, 4.062e-03),
                 (0.60, 8.533e-03))
#: A growing library is clustered again from scratch once it holds this many times the faces of
#: its last full clustering: clusters cut when it was smaller were cut with looser thresholds.
RECLUSTER_GROWTH = 2
#: Faces of one side of a merge that may be dropped for conflicting with the other side (more
#: conflicts and the merge is refused: two people photographed together, not one person).
MAX_EJECTED = 1
#: The fewest faces that make a candidate person; smaller groups are left unclustered (-1).
DEFAULT_MIN_SIZE = 2
#: Rows of the similarity matrix computed at a time, at most; fewer against many faces, so that a
#: block stays within BLOCK_BYTES (2,048 rows against 100,000 faces would be 800 MB).
BLOCK = 2048
BLOCK_BYTES = 256 << 20


def _block_rows(columns: int) -> int:
    """Rows of a float32 similarity block against ``columns`` faces within :data:`BLOCK_BYTES`."""
    return max(1, min(BLOCK, BLOCK_BYTES // (4 * max(columns, 1))))


def _check(vectors: np.ndarray, photo_ids: np.ndarray, what: str = "vectors") -> tuple[np.ndarray, np.ndarray]:
    vectors = np.asarray(vectors, np.float32)
    photo_ids = np.asarray(photo_ids, np.int64)
    if vectors.ndim != 2:
        raise ValueError(f"{what}: expected an (N, D) array, got shape {vectors.shape}")
    if photo_ids.shape != (len(vectors),):
        raise ValueError(f"photo ids of {what}: expected shape ({len(vectors)},), got {photo_ids.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError(f"{what}: NaN or infinite values")
    return vectors, photo_ids


def _partners(photo_ids: np.ndarray, cannot_link: Sequence[tuple[int, int]], n: int) -> list[set[int]]:
    """For each row, the rows it may never share a label with (same photo, or a cannot-link pair)."""
    partners: list[set[int]] = [set() for _ in range(n)]
    by_photo: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(photo_ids.tolist()):
        by_photo[p].append(i)
    for rows in by_photo.values():
        if len(rows) > 1:
            for i in rows:
                partners[i].update(rows)
                partners[i].discard(i)
    for a, b in cannot_link:
        a, b = int(a), int(b)
        if not (0 <= a < n and 0 <= b < n):
            raise ValueError(f"cannot_link pair ({a}, {b}): rows must be in 0..{n - 1}")
        if a != b:
            partners[a].add(b)
            partners[b].add(a)
    return partners


def separate(labels: np.ndarray, vectors: np.ndarray, photo_ids: np.ndarray,
             cannot_link: Sequence[tuple[int, int]]) -> np.ndarray:
    """``labels`` (N,) int64 with every face that shares its label with a face of its own photo
    or with a cannot-link partner (row index pairs) set to -1, keeping the faces nearest the
    label's mean first. Whatever made the labels, no person ever holds two faces of one photo.

    Args:
        labels: (N,) int labels, -1 for faces without one.
        vectors: float32 (N, D) L2-normalised embeddings.
        photo_ids: (N,) the photo each face is in.
        cannot_link: row pairs that must never share a label.
    """
    labels = np.asarray(labels, np.int64).copy()
    partners = _partners(np.asarray(photo_ids), cannot_link, len(labels))
    for label in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == label)
        members = set(rows.tolist())
        if not any(partners[r] & members for r in rows):
            continue
        centre = vectors[rows].mean(axis=0)
        kept: set[int] = set()
        for r in rows[np.argsort(-(vectors[rows] @ centre), kind="stable")].tolist():
            if partners[r] & kept:
                labels[r] = -1
            else:
                kept.add(r)
    return labels


def similarity_graph(vectors: np.ndarray, max_distance: float) -> csr_matrix:
    """The faces within ``max_distance`` cosine distance of each other, as a sparse graph.

    Args:
        vectors: float32 (N, D) L2-normalised embeddings.
        max_distance: the largest cosine distance (1 - similarity) that makes an edge.
    Returns:
        (N, N) CSR matrix of float32 cosine similarities, symmetric, with the diagonal (every
        face is within any distance of itself); absent entries are pairs further apart.
    """
    n = len(vectors)
    rows, cols, sims = [], [], []
    step = _block_rows(n)
    for start in range(0, n, step):
        block = vectors[start:start + step] @ vectors.T
        r, c = np.nonzero(block >= 1.0 - max_distance)
        off = r + start != c  # the diagonal is set to exactly 1 below
        r, c = r[off], c[off]
        rows.append(r + start)
        cols.append(c)
        sims.append(block[r, c])
    r, c = np.concatenate(rows), np.concatenate(cols)
    diag = np.arange(n)
    return coo_matrix((np.concatenate([*sims, np.ones(n, np.float32)]), (np.concatenate([r, diag]),
                                                                         np.concatenate([c, diag]))),
                      shape=(n, n)).tocsr()


def _components(vectors: np.ndarray, threshold: float) -> list[np.ndarray]:
    """Connected components (row arrays) of the graph joining faces within ``threshold`` cosine distance."""
    count, comp = connected_components(similarity_graph(vectors, threshold), directed=False)
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    return np.split(order, bounds)


def thresholds_for(faces: int) -> tuple[float, float]:
    """``(threshold, pair_threshold)`` for a library of ``faces`` faces.

    The pair threshold is the distance within which a face expects as many strangers among
    ``faces`` faces as a face of LFW does within :data:`DEFAULT_PAIR_THRESHOLD` among
    :data:`REFERENCE_FACES` (interpolated in :data:`STRANGER_RATE`, log scale, kept within its
    range); the large-group threshold keeps the defaults' distance above it. All of LFW gets the
    defaults; 117 faces (5celeb) get about (0.62, 0.49); a million faces (0.33, 0.20), the end of the measured rates.
    """
    dist = np.array([d for d, _ in STRANGER_RATE])
    log_rate = np.log([r for _, r in STRANGER_RATE])
    wanted = np.interp(DEFAULT_PAIR_THRESHOLD, dist, log_rate) + np.log(REFERENCE_FACES / max(int(faces), 1))
    pair = float(np.interp(wanted, log_rate, dist))  # log_rate rises with distance
    return pair + (DEFAULT_THRESHOLD - DEFAULT_PAIR_THRESHOLD), pair


def _resolve(threshold: float | None, pair_threshold: float | None, faces: int) -> tuple[float, float]:
    auto_threshold, auto_pair = thresholds_for(faces)
    threshold = auto_threshold if threshold is None else float(threshold)
    pair_threshold = min(auto_pair, threshold) if pair_threshold is None else float(pair_threshold)
    if not 0.0 <= pair_threshold <= threshold:
        raise ValueError(f"pair_threshold {pair_threshold} must be between 0 and threshold {threshold}")
    return threshold, pair_threshold


def merge_threshold(threshold: float, pair_threshold: float, a: np.ndarray | float, b: np.ndarray | float):
    """The largest mean cosine distance at which groups of ``a`` and ``b`` faces merge.

    ``pair_threshold`` for two lone faces, rising towards ``threshold`` as the groups grow: a
    mean over a x b pairs varies less than one pair's distance, and a lone face has thousands of
    strangers to meet its nearest look-alike among, so one close pair means less than a close
    mean between two groups. Measured on LFW (docs/benchmarks.md): two lone faces within 0.3 are
    one person 96% of the time, within 0.35-0.4 only 42%.
    """
    return threshold - (threshold - pair_threshold) / np.sqrt(np.asarray(a, float) * np.asarray(b, float))


def _cut(merges: np.ndarray, partners: list[set[int]], rows: np.ndarray, threshold: float,
         pair_threshold: float, eject: int = MAX_EJECTED) -> list[list[int]]:
    """Clusters of a scipy linkage matrix over ``rows``, as lists of leaf positions.

    A merge is kept when both sides were kept, its distance passes :func:`merge_threshold`, and
    the two sides hold no conflicting faces (same photo, or a cannot-link pair in ``partners``),
    except that up to ``eject`` faces of the smaller side that conflict with the larger one are
    dropped from it (they stay alone) rather than refusing the merge: one bystander or look-alike
    in a large person's photo should not cut that person in two. The clusters are the groups of
    the highest kept merges.
    """
    n = len(rows)
    local = {int(r): i for i, r in enumerate(rows)}
    part = [[local[p] for p in partners[int(r)] if p in local] for r in rows]
    size = np.concatenate([np.ones(n), merges[:, 3]])
    left, right = merges[:, 0].astype(np.int64), merges[:, 1].astype(np.int64)
    passes = merges[:, 2] <= merge_threshold(threshold, pair_threshold, size[left], size[right])
    kept = np.ones(2 * n - 1, bool)
    owner = np.arange(n)  # leaf -> the kept group holding it (-1: dropped)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    clusters: list[list[int]] = []
    for step in range(n - 1):  # children come before parents in scipy's order
        a, b, node = int(left[step]), int(right[step]), n + step
        ok = bool(passes[step] and kept[a] and kept[b])
        if ok:
            small, large = (a, b) if len(members[a]) <= len(members[b]) else (b, a)
            bad = [m for m in members[small] if any(owner[p] == large for p in part[m])]
            if len(bad) > eject or len(bad) >= len(members[small]):
                ok = False
            elif bad:
                members[small] = [m for m in members[small] if m not in set(bad)]
                owner[bad] = -1
        kept[node] = ok
        if ok:
            merged = members.pop(large) + members.pop(small)
            owner[merged] = node
            members[node] = merged
        else:  # the kept children are final clusters
            clusters.extend(members.pop(x) for x in (a, b) if kept[x])
    if kept[2 * n - 2]:
        clusters.append(members.pop(2 * n - 2))
    return clusters


def cluster_faces(vectors: np.ndarray, photo_ids: np.ndarray, *, cannot_link: Sequence[tuple[int, int]] = (),
                  threshold: float | None = None, pair_threshold: float | None = None,
                  library_size: int | None = None, min_size: int = DEFAULT_MIN_SIZE,
                  method: str = "average") -> np.ndarray:
    """Group faces into candidate people.

    Args:
        vectors: float32 (N, D) L2-normalised face embeddings.
        photo_ids: int64 (N,) the photo each face comes from; faces of one photo never share a label.
        cannot_link: pairs of row indexes (into ``vectors``) that never share a label.
        threshold: the largest mean cosine distance at which two large groups merge (larger merges
            more); default from :func:`thresholds_for` the library's size.
        pair_threshold: the same for two lone faces; groups in between get a threshold in
            between (:func:`merge_threshold`). Must not exceed ``threshold``. Default likewise.
        library_size: faces in the whole library these faces belong to (default: ``len(vectors)``);
            what the default thresholds follow, so clustering the waiting faces of a large
            library stays as strict as clustering all of it.
        min_size: groups smaller than this are left unclustered.
        method: scipy linkage method on cosine distance (``"average"``, ``"complete"``, ``"single"``).
    Returns:
        int64 (N,) labels 0..K-1, numbered largest cluster first; -1 for faces in no cluster.
    """
    vectors, photo_ids = _check(vectors, photo_ids)
    n = len(vectors)
    threshold, pair_threshold = _resolve(threshold, pair_threshold, n if library_size is None else library_size)
    labels = np.full(n, -1, np.int64)
    if n < 2:
        return labels
    partners = _partners(photo_ids, cannot_link, n)
    groups: list[np.ndarray] = []
    for comp in _components(vectors, threshold):
        if len(comp) < max(min_size, 2):
            continue
        merges = linkage(pdist(vectors[comp].astype(np.float64), "cosine").clip(0.0), method=method)
        groups.extend(comp[np.asarray(leaves, np.int64)] for leaves in _cut(merges, partners, comp, threshold,
                                                                            pair_threshold)
                      if len(leaves) >= min_size)
    return _number(groups, n)


def _number(groups: list[np.ndarray], n: int) -> np.ndarray:
    """Labels from row groups, largest first (ties by lowest row, so results are repeatable)."""
    labels = np.full(n, -1, np.int64)
    for k, rows in enumerate(sorted(groups, key=lambda g: (-len(g), int(g.min())))):
        labels[rows] = k
    return labels


def attach_faces(new_vectors: np.ndarray, new_photo_ids: np.ndarray, vectors: np.ndarray, labels: np.ndarray,
                 photo_ids: np.ndarray, *, cannot_link: Sequence[tuple[int, int]] = (),
                 threshold: float | None = None, pair_threshold: float | None = None,
                 library_size: int | None = None) -> np.ndarray:
    """Give newly scanned faces to existing clusters, without re-clustering.

    A new face joins the cluster with the smallest mean cosine distance to its members (the
    average-linkage distance :func:`cluster_faces` cuts at) if that is within the threshold
    :func:`cluster_faces` would use for one face and a group of that size (:func:`merge_threshold`), and
    joining breaks no constraint: the cluster holds no face of the same photo and no face it
    is cannot-linked to, and no other new face of the same photo (or cannot-linked to it) has
    joined that cluster in this call. Closest pairs are decided first.

    Args:
        new_vectors: float32 (M, D) L2-normalised embeddings of the new faces.
        new_photo_ids: int64 (M,) their photos.
        vectors: float32 (N, D) the faces already clustered.
        labels: int64 (N,) their labels (-1: in no cluster; such faces are ignored here).
        photo_ids: int64 (N,) their photos.
        cannot_link: pairs of row indexes into the new faces *followed by* the existing ones:
            rows 0..M-1 are ``new_vectors``, rows M..M+N-1 are ``vectors``.
        threshold, pair_threshold, library_size: as for :func:`cluster_faces` (the library's
            size defaults to the new and existing faces together).
    Returns:
        int64 (M,) an existing label for each new face, or -1 (the caller clusters those among
        themselves with :func:`cluster_faces`).
    """
    new_vectors, new_photo_ids = _check(new_vectors, new_photo_ids, "new_vectors")
    vectors, photo_ids = _check(vectors, photo_ids)
    threshold, pair_threshold = _resolve(threshold, pair_threshold,
                                         len(new_vectors) + len(vectors) if library_size is None else library_size)
    labels = np.asarray(labels, np.int64)
    if labels.shape != (len(vectors),):
        raise ValueError(f"labels: expected shape ({len(vectors)},), got {labels.shape}")
    m, n = len(new_vectors), len(vectors)
    out = np.full(m, -1, np.int64)
    clustered = np.flatnonzero(labels >= 0)
    if m == 0 or len(clustered) == 0:
        return out
    if new_vectors.shape[1] != vectors.shape[1]:
        raise ValueError(f"new_vectors has {new_vectors.shape[1]} dimensions, vectors {vectors.shape[1]}")
    partners = _partners(np.concatenate([new_photo_ids, photo_ids]), cannot_link, m + n)
    names, member_label = np.unique(labels[clustered], return_inverse=True)
    onehot = csr_matrix((np.ones(len(clustered), np.float32), (np.arange(len(clustered)), member_label)),
                        shape=(len(clustered), len(names)))
    sizes = np.bincount(member_label, minlength=len(names)).astype(np.float32)
    limit = merge_threshold(threshold, pair_threshold, 1, sizes)
    candidates = []
    step = _block_rows(len(clustered))
    for start in range(0, m, step):
        sims = new_vectors[start:start + step] @ vectors[clustered].T
        mean = np.asarray((onehot.T @ sims.T).T) / sizes
        r, c = np.nonzero(1.0 - mean <= limit)
        candidates.extend(zip((1.0 - mean[r, c]).tolist(), (r + start).tolist(), c.tolist()))
    candidates.sort()
    # The labels each row (new or existing) is barred from, grown as new faces join.
    label_of = np.concatenate([np.full(m, -1, np.int64), labels])
    for _, i, c in candidates:
        if out[i] >= 0:
            continue
        name = int(names[c])
        if any(label_of[p] == name for p in partners[i]):
            continue
        out[i] = name
        label_of[i] = name
    return out
