"""``facesearch bench cluster``: how well unknown faces group into people, against the usual rules.

Every face of every photo is clustered, as a scan of an unlabelled library would; each
photo's labelled face (in LFW the one nearest the centre, elsewhere the largest) is scored
against the photo's identity, and the other faces (bystanders) cluster but are not scored.
A photo where no face is found keeps its labelled face as an unclustered item: the person is
in the photo and was not grouped, so it counts against recall.

Scores, on the labelled faces only (a face in no cluster is a cluster of its own):

* pairwise precision / recall / F1 over pairs of faces: precision is the share of pairs put
  together that are one person (1.0 when nothing is put together);
* BCubed precision / recall / F1: per face, the share of its cluster that is its person and
  the share of its person that is in its cluster, averaged over faces (large people do not
  dominate as they do pairwise);
* merged singletons: faces of people seen once (who should stay alone) that share a cluster
  with another labelled face;
* same-photo pairs: pairs of faces of one photo put together (impossible for one person).

Rows: the adopted method (:func:`facesearch.search.face_clusters.cluster_faces`) and, on the
same vectors in the same run, the baselines: Immich's rule, Chinese whispers (dlib's) on the
same similarity graph, plain DBSCAN, and HDBSCAN (scikit-learn's, considered and rejected).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from facesearch.bench.datasets import folder_dataset, lfw_root
from facesearch.bench.embeddings import make_analysis, pick_face
from facesearch.bench.speed import machine
from facesearch.models.face_cache import FaceCache
from facesearch.models.photo_faces import PhotoError, analyse_files
from facesearch.progress import ProgressFactory, no_progress
from facesearch.search.face_clusters import (DEFAULT_PAIR_THRESHOLD, DEFAULT_THRESHOLD, RECLUSTER_GROWTH, attach_faces,
                                             cluster_faces, similarity_graph)

#: Immich's defaults: maximum recognition distance (cosine) and minimum recognised faces.
IMMICH_MAX_DISTANCE = 0.5
IMMICH_MIN_FACES = 3
#: Batches of photos the incremental row adds one after another.
INCREMENTAL_BATCHES = 10
#: dlib's face clustering example runs Chinese whispers for 100 iterations.
WHISPERS_ITERATIONS = 100


@dataclass
class FaceSet:
    """Every face of a set of photos, with the scored (labelled) faces marked.

    Attributes:
        vectors: float32 (N, D) embeddings of every detected face.
        photo_ids: int64 (N,) index of each face's photo.
        identity: int64 (N,) identity index of a labelled face, -1 for bystanders.
        people: identity names, indexed by ``identity``.
        seen_once: bool per identity: the person has one photo.
        photos: photos read.
        no_face: labelled photos where no face was found (scored as unclustered items).
        errors: unreadable photos, path -> reason.
    """

    vectors: np.ndarray
    photo_ids: np.ndarray
    identity: np.ndarray
    people: list[str]
    seen_once: np.ndarray
    photos: int
    no_face: list[int] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def lfw_people(lfw: str | os.PathLike, max_people: int | None = None) -> list[tuple[Path, str]]:
    """``(photo, identity)`` of LFW: the people with two or more photos and the people seen once.

    ``max_people`` keeps the first N people (alphabetical) of each of the two groups.
    """
    items = folder_dataset(lfw_root(lfw))
    counts: dict[str, int] = {}
    for _, who in items:
        counts[who] = counts.get(who, 0) + 1
    if max_people is None:
        return items
    keep = set(sorted(w for w in counts if counts[w] >= 2)[:max_people])
    keep |= set(sorted(w for w in counts if counts[w] == 1)[:max_people])
    return [(p, w) for p, w in items if w in keep]


def collect_faces(items: list[tuple[Path, str]], *, pick: str, use_cache: bool = True,
                  progress: ProgressFactory = no_progress) -> FaceSet:
    """Detect and embed every face of every photo (through the face cache, default settings)."""
    analysis = make_analysis()
    cache = FaceCache.for_settings(analysis.settings) if use_cache else None
    people = sorted({who for _, who in items})
    index = {who: i for i, who in enumerate(people)}
    counts = np.bincount([index[who] for _, who in items], minlength=len(people))
    vectors, photo_ids, identity, no_face, errors = [], [], [], [], {}
    with progress("embedding every face") as (on_total, update):
        on_total(len(items))
        for pid, ((path, who), res) in enumerate(zip(items, analyse_files([p for p, _ in items], analysis, cache))):
            update(1)
            if isinstance(res, PhotoError):
                errors[str(path)] = res.reason
                continue
            chosen = pick_face(res.faces, res.width, res.height, pick)
            if chosen is None:
                no_face.append(index[who])
            for face in res.faces:
                vectors.append(face.embedding)
                photo_ids.append(pid)
                identity.append(index[who] if face is chosen else -1)
    dim = analysis.dim
    return FaceSet(np.asarray(vectors, np.float32).reshape(-1, dim), np.asarray(photo_ids, np.int64),
                   np.asarray(identity, np.int64), people, counts == 1, len(items), no_face, errors)


# --- baselines -----------------------------------------------------------------------------------

def immich_rule(vectors: np.ndarray, photo_ids: np.ndarray, *, max_distance: float = IMMICH_MAX_DISTANCE,
                min_faces: int = IMMICH_MIN_FACES, seed: int = 0) -> np.ndarray:
    """Immich's documented rule, faces taken in a random order (Immich takes them as scanned).

    A *core* face has at least ``min_faces`` faces (itself included, as Immich's search returns
    it) within ``max_distance``; it joins the person of its nearest assigned face within
    ``max_distance``, or starts a new person. The other faces wait for a second pass, then join
    the person of their nearest assigned face within ``max_distance`` or stay unassigned.
    Photos are ignored, as Immich's rule ignores them.
    """
    graph = similarity_graph(vectors, max_distance)
    n = len(vectors)
    degree = np.diff(graph.indptr)  # the diagonal counts the face itself
    order = np.random.default_rng(seed).permutation(n)
    labels = np.full(n, -1, np.int64)
    people = 0

    def nearest_assigned(i: int) -> int:
        cols = graph.indices[graph.indptr[i]:graph.indptr[i + 1]]
        sims = graph.data[graph.indptr[i]:graph.indptr[i + 1]]
        assigned = (labels[cols] >= 0) & (cols != i)
        return int(labels[cols[assigned][np.argmax(sims[assigned])]]) if assigned.any() else -1

    for i in order:
        if degree[i] >= min_faces:
            label = nearest_assigned(i)
            if label < 0:
                label, people = people, people + 1
            labels[i] = label
    for i in order:
        if degree[i] < min_faces:
            labels[i] = nearest_assigned(i)
    return labels


def chinese_whispers(vectors: np.ndarray, photo_ids: np.ndarray, *, max_distance: float = IMMICH_MAX_DISTANCE,
                     iterations: int = WHISPERS_ITERATIONS, seed: int = 0) -> np.ndarray:
    """Chinese whispers (Biemann 2006) as dlib runs it for face_recognition's users.

    Unweighted edges between faces within ``max_distance`` plus a self-edge per face (dlib's
    example joins i to every j >= i); each pass visits the faces in a new random order and gives
    each the label most common among its edges (ties to the lowest label). Stops after
    ``iterations`` passes or a pass that changes nothing. Photos are ignored, as dlib does.
    """
    graph = similarity_graph(vectors, max_distance)
    n = len(vectors)
    labels = np.arange(n)
    rng = np.random.default_rng(seed)
    indptr, indices = graph.indptr, graph.indices
    for _ in range(iterations):
        changed = 0
        for i in rng.permutation(n):
            neigh = labels[indices[indptr[i]:indptr[i + 1]]]
            values, counts = np.unique(neigh, return_counts=True)
            best = values[np.argmax(counts)]
            if best != labels[i]:
                labels[i] = best
                changed += 1
        if not changed:
            break
    return _drop_singletons(labels)


def plain_dbscan(vectors: np.ndarray, photo_ids: np.ndarray, *, eps: float = IMMICH_MAX_DISTANCE,
                 min_samples: int = IMMICH_MIN_FACES) -> np.ndarray:
    """scikit-learn's DBSCAN on cosine distance, with the same radius and core count as Immich."""
    from sklearn.cluster import DBSCAN

    return DBSCAN(eps=eps, min_samples=min_samples, metric="cosine", algorithm="brute").fit_predict(vectors)


def sklearn_hdbscan(vectors: np.ndarray, photo_ids: np.ndarray, *, min_cluster_size: int = 2,
                    min_samples: int = 1) -> np.ndarray:
    """scikit-learn's HDBSCAN; Euclidean distance on unit vectors orders pairs as cosine does."""
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True).fit_predict(vectors)


def incremental(vectors: np.ndarray, photo_ids: np.ndarray, *, batches: int = INCREMENTAL_BATCHES,
                seed: int = 0) -> np.ndarray:
    """The adopted method as a library grows: photos arrive in ``batches`` random batches; each
    batch's faces are attached to the existing clusters (:func:`attach_faces`), and the faces in no
    cluster yet (earlier and new) are clustered among themselves into new clusters, except that
    once the library has doubled since its last full clustering everything is clustered again,
    as a scan does."""
    photos = np.unique(photo_ids)
    batch_of_photo = dict(zip(np.random.default_rng(seed).permutation(photos).tolist(),
                              (np.arange(len(photos)) * batches // max(len(photos), 1)).tolist()))
    batch = np.array([batch_of_photo[p] for p in photo_ids.tolist()], np.int64)
    labels = np.full(len(vectors), -1, np.int64)
    reclustered = 0  # the library's size at its last full clustering
    for b in range(batches):
        seen, new = np.flatnonzero(batch < b), np.flatnonzero(batch == b)
        size = len(seen) + len(new)  # the library so far: what a scan's clustering sees
        if size >= RECLUSTER_GROWTH * reclustered:  # as a scan does (facesearch.gallery.people)
            now = np.flatnonzero(batch <= b)
            labels[now] = cluster_faces(vectors[now], photo_ids[now])
            reclustered = size
            continue
        labels[new] = attach_faces(vectors[new], photo_ids[new], vectors[seen], labels[seen], photo_ids[seen],
                                   library_size=size)
        pool = np.flatnonzero((batch <= b) & (labels < 0))
        fresh = cluster_faces(vectors[pool], photo_ids[pool], library_size=size)
        labels[pool[fresh >= 0]] = fresh[fresh >= 0] + labels.max(initial=-1) + 1
    return labels


def _drop_singletons(labels: np.ndarray) -> np.ndarray:
    """Groups of one face become -1; the others are numbered 0..K-1."""
    _, group, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    kept = sizes > 1
    number = np.where(kept, np.cumsum(kept) - 1, -1)
    return number[group].astype(np.int64)


Method = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Benchmark rows: name -> (how it is run, one-line description). The first is the adopted method.
METHODS: dict[str, tuple[Method, str]] = {
    "adopted": (lambda v, p: cluster_faces(v, p),
                f"average linkage, merge threshold {DEFAULT_PAIR_THRESHOLD} (two lone faces) rising to "
                f"{DEFAULT_THRESHOLD} (large groups) for LFW's 15,266 faces, looser for fewer faces, stricter "
                "for more; same-photo constraint"),
    "incremental": (incremental, f"the adopted method as photos arrive in {INCREMENTAL_BATCHES} batches: "
                                 "attach, then cluster what is left"),
    "immich": (immich_rule, f"Immich: core = {IMMICH_MIN_FACES} faces within {IMMICH_MAX_DISTANCE}, "
                            "others join the nearest assigned face"),
    "whispers": (chinese_whispers, f"Chinese whispers, edges within {IMMICH_MAX_DISTANCE} (dlib)"),
    "dbscan": (plain_dbscan, f"DBSCAN eps {IMMICH_MAX_DISTANCE} cosine, min_samples {IMMICH_MIN_FACES}"),
    "average-0.4": (lambda v, p: cluster_faces(v, p, threshold=0.4, pair_threshold=0.4),
                    "average linkage at one threshold, 0.4 (the adopted method without the size rule)"),
    "immich-0.35": (lambda v, p: immich_rule(v, p, max_distance=0.35),
                    "Immich's rule with the distance tightened to 0.35 for FaceNet"),
    "whispers-0.35": (lambda v, p: chinese_whispers(v, p, max_distance=0.35),
                      "Chinese whispers, edges within 0.35"),
    "dbscan-0.3": (lambda v, p: plain_dbscan(v, p, eps=0.3), "DBSCAN eps 0.3, min_samples 3"),
    "hdbscan": (sklearn_hdbscan,
                "HDBSCAN (scikit-learn), min_cluster_size 2, min_samples 1 (slow: not run by default)"),
}
#: Rows run when none are named: all but HDBSCAN (minutes on all of LFW, and no precision control).
DEFAULT_METHODS = [m for m in METHODS if m != "hdbscan"]


# --- scores --------------------------------------------------------------------------------------

def _contingency(truth: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell, cluster and identity sizes; label -1 means a cluster of its own."""
    labels = np.asarray(labels, np.int64).copy()
    alone = labels < 0
    labels[alone] = labels.max(initial=-1) + 1 + np.arange(alone.sum())
    _, cluster = np.unique(labels, return_inverse=True)
    _, person = np.unique(truth, return_inverse=True)
    cells = np.unique(cluster * (person.max(initial=0) + 1) + person, return_counts=True)[1]
    return cells, np.bincount(cluster), np.bincount(person)


def pairwise_scores(truth: np.ndarray, labels: np.ndarray) -> dict:
    """Pairwise precision, recall and F1 of ``labels`` (-1: alone) against ``truth`` identities."""
    cells, clusters, people = _contingency(truth, labels)
    pairs = lambda k: float((k * (k - 1) // 2).sum())  # noqa: E731
    together, same, both = pairs(clusters), pairs(people), pairs(cells)
    p = both / together if together else 1.0
    r = both / same if same else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def bcubed_scores(truth: np.ndarray, labels: np.ndarray) -> dict:
    """BCubed precision, recall and F1 of ``labels`` (-1: alone) against ``truth`` identities."""
    truth = np.asarray(truth)
    labels = np.asarray(labels, np.int64).copy()
    alone = labels < 0
    labels[alone] = labels.max(initial=-1) + 1 + np.arange(alone.sum())
    _, cluster = np.unique(labels, return_inverse=True)
    _, person = np.unique(truth, return_inverse=True)
    cell = cluster * (person.max(initial=0) + 1) + person
    _, cell_of, cell_size = np.unique(cell, return_inverse=True, return_counts=True)
    n_cell = cell_size[cell_of].astype(float)
    p = float(np.mean(n_cell / np.bincount(cluster)[cluster])) if len(truth) else 1.0
    r = float(np.mean(n_cell / np.bincount(person)[person])) if len(truth) else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def merged_singletons(truth: np.ndarray, labels: np.ndarray, seen_once: np.ndarray) -> int:
    """Faces of people seen once (``seen_once[truth]``) that share a cluster with another face."""
    labels = np.asarray(labels, np.int64)
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, np.int64)
    shared = (labels >= 0) & (sizes[np.maximum(labels, 0)] > 1) if len(sizes) else np.zeros(len(labels), bool)
    return int((shared & seen_once[truth]).sum())


def same_photo_pairs(labels: np.ndarray, photo_ids: np.ndarray) -> int:
    """Pairs of faces of one photo given the same label (the constraint every person obeys)."""
    keep = labels >= 0
    _, counts = np.unique(np.stack([photo_ids[keep], labels[keep]]), axis=1, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def score(faces: FaceSet, labels: np.ndarray) -> dict:
    """Every figure of one row, on the labelled faces (plus the photos with no face, alone)."""
    scored = faces.identity >= 0
    truth = np.concatenate([faces.identity[scored], np.asarray(faces.no_face, np.int64)])
    pred = np.concatenate([labels[scored], np.full(len(faces.no_face), -1, np.int64)])
    pred_sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, np.int64)
    return {
        "pairwise": pairwise_scores(truth, pred),
        "bcubed": bcubed_scores(truth, pred),
        "merged_singletons": merged_singletons(truth, pred, faces.seen_once),
        "same_photo_pairs": same_photo_pairs(labels, faces.photo_ids),
        "clusters": int((pred_sizes > 1).sum()),
        "faces_clustered": int((pred_sizes[labels[labels >= 0]] > 1).sum()) if len(pred_sizes) else 0,
    }


def run(lfw: str | os.PathLike | None = None, *, dataset: str | os.PathLike | None = None,
        max_people: int | None = None, methods: list[str] | None = None, use_cache: bool = True,
        progress: ProgressFactory = no_progress) -> dict:
    """Cluster every face of LFW (or a folder-per-identity ``dataset``) with each method and score it.

    Args:
        lfw: LFW folder or ``.tgz``.
        dataset: a folder-per-identity tree instead (the largest face of each photo is labelled).
        max_people: LFW only: the first N people with several photos and N seen once.
        methods: rows to run (keys of :data:`METHODS`, default :data:`DEFAULT_METHODS`); the
            adopted one always runs first.
    Returns:
        A JSON-ready dict: the data's counts, the machine, and one row per method.
    """
    names = list(DEFAULT_METHODS) if methods is None else ["adopted"] + [m for m in methods if m != "adopted"]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if dataset is not None:
        items, pick, source = folder_dataset(dataset), "largest", str(dataset)
    else:
        items, pick, source = lfw_people(lfw, max_people), "center", str(lfw)
    host = machine()
    t0 = time.perf_counter()
    faces = collect_faces(items, pick=pick, use_cache=use_cache, progress=progress)
    embed_s = time.perf_counter() - t0
    rows = []
    with progress("clustering") as (on_total, update):
        on_total(len(names))
        for name in names:
            fn, description = METHODS[name]
            t = time.perf_counter()
            labels = np.asarray(fn(faces.vectors, faces.photo_ids), np.int64)
            seconds = time.perf_counter() - t
            rows.append({"method": name, "description": description, "seconds": round(seconds, 3),
                         **score(faces, labels)})
            update(1)
    for row in rows:
        row["x_adopted_time"] = round(row["seconds"] / rows[0]["seconds"], 2) if rows[0]["seconds"] else None
    best = max(r["bcubed"]["f1"] for r in rows)
    adopted = rows[0]
    host["load_average_end"] = machine()["load_average"]
    return {
        "source": source, "photos": faces.photos, "faces": len(faces.vectors),
        "labelled_faces": int((faces.identity >= 0).sum()), "no_face": len(faces.no_face),
        "unreadable": len(faces.errors), "people": len(faces.people),
        "people_seen_once": int(faces.seen_once.sum()), "embed_seconds": round(embed_s, 1), "machine": host,
        "rows": rows,
        "targets": {"pairwise_precision_at_least": 0.99,
                    "pairwise_precision_met": adopted["pairwise"]["precision"] >= 0.99,
                    "best_bcubed_f1": best, "adopted_has_best_bcubed_f1": adopted["bcubed"]["f1"] >= best},
    }
