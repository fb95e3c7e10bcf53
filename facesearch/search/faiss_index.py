"""FAISS indexes of face embeddings: saved files, brought up to date by what changed since.

A gallery keeps two indexes under ``<home>/index/``:

* ``faces.faiss``: every stored face, ids = the faces' database ids;
* ``identities.faiss``: each identity's average embedding (re-normalised), ids = identity ids;

plus ``manifest.json`` naming the database generation the files reflect. Embeddings are
L2-normalised, so inner product is cosine similarity.

The files are a *base*. A write does not rewrite them: the database records what each write
changed (faces added, faces and identities removed, identity averages updated), and whoever
opens the index applies the changes since the base's generation in memory
(:meth:`GalleryIndex.apply`): changed ids are hidden in the base and their new vectors kept in a
small exact *delta* index; a search asks both and merges. Once the delta is large, a writer
folds it into new base files (:meth:`GalleryIndex.save`), written beside the old ones and
renamed into place, so readers never see half a file and a reader that mapped the old file
keeps it until it reopens.

Index kinds, chosen by size (:func:`kind_for`): exact search (``flat``) while one query stays
fast, then an inverted file (``ivf``: k-means cells; the ``nprobe`` nearest cells are scanned
with 4-bit product-quantised codes, 32 bytes a 512-d vector, FAISS's "fast scan"), which
supports removing and adding vectors. Its similarities are approximate: a
:class:`LayeredIndex` given the stored vectors (``exact``, the database) re-ranks the best
:data:`RERANK` candidates exactly, so the similarities it returns are exact ones and only
which faces become candidates is approximate. Its files hold no full vectors (about 40 bytes
a face), so rewriting them after a removal costs little. HNSW (``hnsw``) stays available for
comparison; it cannot remove vectors and linked real faces poorly among a million random
ones (docs/benchmarks.md).
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeAlias

from facesearch.lazy_import import lazy_module
from facesearch.atomic import replace_atomically

np = lazy_module("numpy")
faiss = lazy_module("faiss")

log = logging.getLogger(__name__)

FACES_FILE = "faces.faiss"
IDENTITIES_FILE = "identities.faiss"
MANIFEST_FILE = "manifest.json"

#: Galleries up to this many faces use exact search; above it, an inverted file (docs/benchmarks.md).
EXACT_LIMIT = 50_000
#: HNSW candidate list per search (recall@1 0.995 at 300k random distractors, 0.859 at 1M).
HNSW_EF_SEARCH = 256
#: Cells scanned per query by an inverted-file index, as a fraction of its cells (at least
#: IVF_MIN_NPROBE), read when an index is made or loaded: chosen by ``scripts/ivf_sweep.py``
#: and ``scripts/scale_tune.py`` at 1M faces: recall@1 0.992 against exact search among
#: faces-like distractors (0.978 among random vectors, which need 1/2; docs/benchmarks.md).
IVF_NPROBE_FRACTION = 1 / 4
IVF_MIN_NPROBE = 16
#: Training vectors per inverted-file cell (FAISS warns under 39), and k-means iterations.
IVF_TRAIN_PER_CELL = 40
IVF_TRAIN_ITERATIONS = 10
#: Candidates of an approximate search re-ranked with the stored vectors (100 lose 1-2 points
#: of recall@1 at 1M faces; each costs a database row read).
RERANK = 200
#: Fewer queries than this at once are searched on one thread.
_PARALLEL_QUERIES = 16
#: FAISS fast-scan implementation used for them (10: one query at a time, heap of candidates).
_FEW_QUERIES_FAST_SCAN = 10

Chunks: TypeAlias = "Iterable[tuple[np.ndarray, np.ndarray]]"


def kind_for(n: int) -> str:
    """The index kind for ``n`` stored vectors: ``"flat"`` up to :data:`EXACT_LIMIT`, else ``"ivf"``."""
    return "flat" if n <= EXACT_LIMIT else "ivf"


def ivf_cells(n: int) -> int:
    """Inverted-file cells for ``n`` vectors: about 4 sqrt(n), a power of two, 256 to 4096
    (more cells would cost more to train than they save per query, docs/benchmarks.md)."""
    return int(min(4096, max(256, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))))


def _pq_subquantizers(dim: int) -> int:
    # 8 dimensions per 4-bit code: 32 bytes a 512-d FaceNet vector, 16 a 128-d dlib one.
    return max(1, dim // 8) if dim % 8 == 0 else dim


def _as_ids(ids) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def _as_vectors(vectors, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (N, {dim}), got {vectors.shape}")
    return vectors


class VectorIndex:
    """A FAISS inner-product index over L2-normalised vectors with int64 ids.

    Args:
        dim: vector length.
        kind: ``"flat"`` (exact), ``"ivf"`` (inverted file; needs :meth:`train`), ``"hnsw"``,
            or ``"auto"`` (:func:`kind_for` the size given to :meth:`build`).
        cells: inverted-file cells (default :func:`ivf_cells` of ``expected``).
        expected: how many vectors the index is built for (sizes an inverted file).
    """

    def __init__(self, dim: int, kind: str = "flat", *, cells: int | None = None, expected: int = 0) -> None:
        self.dim = dim
        if kind == "auto":
            kind = kind_for(expected)
        self.kind = kind
        if kind == "flat":
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = HNSW_EF_SEARCH
            self._index = faiss.IndexIDMap2(inner)
        elif kind == "ivf":
            nlist = cells or ivf_cells(expected)
            self._index = faiss.index_factory(dim, f"IVF{nlist},PQ{_pq_subquantizers(dim)}x4fs",
                                              faiss.METRIC_INNER_PRODUCT)
            self._index.cp.niter = IVF_TRAIN_ITERATIONS
            self._index.nprobe = min(nlist, max(IVF_MIN_NPROBE, int(nlist * IVF_NPROBE_FRACTION)))
        else:
            raise ValueError(f"unknown index kind {kind!r}; choose flat, ivf, hnsw or auto")

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, kind: str = "auto") -> "VectorIndex":
        """A new index holding ``vectors`` (N, dim) float32 under ``ids`` (N,) int64."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 512
        index = cls(dim, kind, expected=len(vectors))
        if index.needs_training:
            index.train(vectors)
        index.add(ids, vectors)
        return index

    @classmethod
    def filled_flat(cls, dim: int, chunks: Chunks, expected: int,
                    progress: Callable[[int], None] | None = None) -> tuple["VectorIndex", int]:
        """An exact index holding every ``(ids, vectors)`` chunk, its storage allocated once for
        ``expected`` vectors and filled in place: adding chunk by chunk would grow FAISS's
        buffer by doubling, holding up to twice the vectors while it copies. Returns the index
        and the largest id stored (-1 if none)."""
        index = cls(dim, "flat")
        flat = faiss.downcast_index(index._index.index)
        flat.codes.resize(expected * dim * 4)
        index._index.id_map.resize(expected)
        codes = faiss.rev_swig_ptr(flat.codes.data(), expected * dim * 4).view(np.float32).reshape(expected, dim) \
            if expected else np.zeros((0, dim), np.float32)
        ids_out = faiss.rev_swig_ptr(index._index.id_map.data(), expected) if expected else np.zeros(0, np.int64)
        filled, extra_ids, extra_vectors, max_id = 0, [], [], -1
        for ids, vectors in chunks:
            # The database may have grown since it was counted: what does not fit is added after.
            fit = max(0, min(len(ids), expected - filled))
            codes[filled:filled + fit] = vectors[:fit]
            ids_out[filled:filled + fit] = ids[:fit]
            filled += fit
            if fit < len(ids):
                extra_ids.append(ids[fit:])
                extra_vectors.append(vectors[fit:])
            max_id = max(max_id, int(np.max(ids, initial=-1)))
            if progress:
                progress(len(ids))
        if filled < expected:  # fewer than counted: shrink to what was filled
            flat.codes.resize(filled * dim * 4)
            index._index.id_map.resize(filled)
        flat.ntotal = index._index.ntotal = filled
        index._index.construct_rev_map()
        for ids, vectors in zip(extra_ids, extra_vectors):
            index.add(ids, vectors)
        return index, max_id

    @property
    def approximate(self) -> bool:
        """Whether the similarities it returns are approximations (to be re-ranked exactly)."""
        return self.kind == "ivf"

    @property
    def needs_training(self) -> bool:
        return not self._index.is_trained

    @property
    def cells(self) -> int | None:
        """An inverted file's cells (``None`` for other kinds)."""
        return int(self._index.nlist) if self.kind == "ivf" else None

    def train(self, sample: np.ndarray) -> None:
        """Fit an inverted file's cells and codes on ``sample`` (float32 (M, dim), M >= the cells)."""
        self._index.train(_as_vectors(sample, self.dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def nprobe(self) -> int | None:
        """Cells an inverted file scans per query (``None`` for other kinds)."""
        return int(self._index.nprobe) if self.kind == "ivf" else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.kind == "ivf":
            self._index.nprobe = int(value)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (N, dim) float32 under ``ids`` (N,) int64."""
        if len(ids) == 0:
            return
        self._index.add_with_ids(_as_vectors(vectors, self.dim), _as_ids(ids))

    def remove(self, ids: np.ndarray) -> int:
        """Drop the vectors stored under ``ids`` (absent ids are ignored). Returns how many went."""
        ids = _as_ids(ids)
        if not len(ids) or not len(self):
            return 0
        if self.kind == "hnsw":
            raise ValueError("an HNSW index cannot remove vectors; rebuild it")
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    def _params(self, exclude: np.ndarray | None):
        selector = None if exclude is None or not len(exclude) else faiss.IDSelectorNot(faiss.IDSelectorBatch(exclude))
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(sel=selector, nprobe=int(self._index.nprobe))
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=int(self._graph().efSearch))
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def search(self, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar stored vectors to each query, skipping the ids in ``exclude``.

        Returns:
            ``(similarities float32 (Q, k), ids int64 (Q, k))``; missing neighbours have id -1
            and similarity -inf.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if len(self) == 0 or k <= 0:
            q = len(queries)
            return np.full((q, max(k, 0)), -np.inf, np.float32), np.full((q, max(k, 0)), -1, np.int64)
        params = self._params(None if exclude is None else _as_ids(exclude))
        if len(queries) < _PARALLEL_QUERIES:
            # A handful of queries gains nothing from OpenMP threads, and on a busy machine
            # waiting for the second thread costs more than the search itself (docs/benchmarks.md).
            previous = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            fast_scan = isinstance(self._index, faiss.IndexIVFFastScan)
            if fast_scan:
                # FAISS's query-by-query fast scan: half the time of its default for a few queries,
                # slower for a batch (docs/benchmarks.md).
                self._index.implem = _FEW_QUERIES_FAST_SCAN
            try:
                sims, ids = self._index.search(queries, k, params=params)
            finally:
                faiss.omp_set_num_threads(previous)
                if fast_scan:
                    self._index.implem = 0
        else:
            sims, ids = self._index.search(queries, k, params=params)
        sims[ids < 0] = -np.inf
        return sims, ids

    def _graph(self):
        # The HNSW graph inside the id map, or None for the other kinds.
        if self.kind != "hnsw":
            return None
        return faiss.downcast_index(self._index.index).hnsw

    def graph_params(self) -> dict:
        """``{"M", "ef_search", "ef_construction"}`` of an HNSW index; ``{}`` for the other kinds."""
        hnsw = self._graph()
        if hnsw is None:
            return {}
        return {"M": int(hnsw.nb_neighbors(1)), "ef_search": int(hnsw.efSearch),
                "ef_construction": int(hnsw.efConstruction)}

    def set_ef_search(self, ef: int) -> None:
        """An HNSW index's candidate list per search (recall against latency); other kinds ignore it."""
        hnsw = self._graph()
        if hnsw is not None:
            hnsw.efSearch = int(ef)

    def ids(self) -> np.ndarray:
        """Stored ids, int64 (N,) (an inverted file's in cell order)."""
        if self.kind != "ivf":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = self._index.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(c), lists.list_size(c)).copy()
                 for c in range(self._index.nlist) if lists.list_size(c)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def save(self, path: str | os.PathLike) -> None:
        """Atomically write the index to ``path``."""
        replace_atomically(path, lambda tmp: faiss.write_index(self._index, str(tmp)))

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = False) -> "VectorIndex":
        """Read an index file; ``mmap`` maps it instead of reading it (opening a large one costs
        nothing until it is searched, and the page cache is shared between processes)."""
        raw = faiss.read_index(os.fspath(path), faiss.IO_FLAG_MMAP if mmap else 0)
        index = cls.__new__(cls)
        index.dim = raw.d
        index._index = raw
        if isinstance(raw, faiss.IndexIVF):
            index.kind = "ivf"
            index._index.nprobe = min(index._index.nlist,
                                      max(IVF_MIN_NPROBE, int(index._index.nlist * IVF_NPROBE_FRACTION)))
        else:
            inner = faiss.downcast_index(raw.index)
            index.kind = "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"
            if index.kind == "hnsw":  # files written with an older setting search like new ones
                inner.hnsw.efSearch = HNSW_EF_SEARCH
        return index


def centroids(owners: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each identity's average embedding, re-normalised.

    Args:
        owners: identity id of each vector, int64 (N,).
        vectors: float32 (N, D).
    Returns:
        ``(identity_ids int64 (M,), centroids float32 (M, D))``, ids ascending.
    """
    if len(owners) == 0:
        return np.zeros(0, np.int64), np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), np.float32)
    uniq, sums, _ = group_sums(owners, vectors)
    return uniq, normalise(sums)


def group_sums(owners: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum the rows of ``vectors`` (N, D) per owner: ``(owner ids int64 (M,) ascending, sums
    float64 (M, D), counts int64 (M,))``."""
    owners = np.asarray(owners, dtype=np.int64)
    order = np.argsort(owners, kind="stable")
    uniq, starts, counts = np.unique(owners[order], return_index=True, return_counts=True)
    sums = np.add.reduceat(np.asarray(vectors, dtype=np.float64)[order], starts, axis=0) if len(order) else \
        np.zeros((0, vectors.shape[1]), np.float64)
    return uniq, sums, counts.astype(np.int64)


def normalise(sums: np.ndarray) -> np.ndarray:
    """Rows of ``sums`` (float (M, D)) scaled to unit length, float32; all-zero rows stay zero."""
    sums = np.asarray(sums, dtype=np.float64)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass
class IndexChanges:
    """What changed in the database after some generation, as the indexes need it.

    ``face_ids`` / ``face_vectors``: faces stored since (their vectors, float32 (N, D));
    ``removed_faces``: faces deleted since; ``identity_ids`` / ``identity_vectors``: identities
    whose average changed (the new averages); ``removed_identities``: identities deleted or
    merged away. ``generation`` is the database generation the changes bring an index to.
    """

    generation: int
    face_ids: np.ndarray
    face_vectors: np.ndarray
    removed_faces: np.ndarray
    identity_ids: np.ndarray
    identity_vectors: np.ndarray
    removed_identities: np.ndarray

    @property
    def size(self) -> int:
        return len(self.face_ids) + len(self.removed_faces) + len(self.identity_ids) + len(self.removed_identities)


#: ``ids int64 (n,) -> (ids found int64 (m,) ascending, vectors float32 (m, D))``: the stored
#: vectors of those ids that still exist (the database's), for exact re-ranking.
VectorLookup: TypeAlias = "Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]"


def rerank(queries: np.ndarray, candidates: np.ndarray, lookup: VectorLookup, k: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each query's ``candidates`` (int64 (Q, R), -1 for none) by exact inner
    product with their stored vectors; candidates ``lookup`` no longer finds are dropped.

    Returns ``(similarities float32 (Q, k), ids int64 (Q, k))``, -inf / -1 where fewer remain.
    """
    found, vectors = lookup(np.unique(candidates[candidates >= 0]))
    q = len(queries)
    if not len(found):
        return np.full((q, k), -np.inf, np.float32), np.full((q, k), -1, np.int64)
    at = np.clip(np.searchsorted(found, candidates), 0, len(found) - 1)
    known = (candidates >= 0) & (found[at] == candidates)
    sims = np.where(known, (queries @ vectors.T)[np.arange(q)[:, None], at], -np.inf).astype(np.float32)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    sims = np.take_along_axis(sims, order, 1)
    ids = np.where(np.isfinite(sims), np.take_along_axis(candidates, order, 1), -1)
    if sims.shape[1] < k:
        pad = k - sims.shape[1]
        sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    return sims, ids


class LayeredIndex:
    """A base index with some of its ids hidden, and an exact delta index of newer vectors.

    Searching asks the base (skipping the hidden ids) and the delta and keeps the best ``k``.
    An approximate base is asked for :data:`RERANK` candidates, re-ranked with ``exact`` (the
    stored vectors) when it is set.
    """

    def __init__(self, base: VectorIndex, max_id: int = -1, exact: VectorLookup | None = None) -> None:
        self.base = base
        #: The largest id the base may hold: ids above it are new, so only the delta has them.
        self.max_id = int(max_id)
        self.delta = VectorIndex(base.dim, "flat")
        self.hidden = np.zeros(0, np.int64)  # base ids superseded by a removal or a newer vector
        self.exact = exact

    def replace(self, remove_ids: np.ndarray, add_ids: np.ndarray, add_vectors: np.ndarray) -> None:
        """Forget ``remove_ids`` and ``add_ids``, then store ``add_vectors`` under ``add_ids``."""
        gone = np.union1d(_as_ids(remove_ids), _as_ids(add_ids))
        if not len(gone):
            return
        self.hidden = np.union1d(self.hidden, gone[gone <= self.max_id])
        self.delta.remove(gone)
        self.delta.add(add_ids, add_vectors)

    def reset(self, base: VectorIndex) -> None:
        """Use ``base`` (which holds every change) with no hidden ids and an empty delta."""
        if len(self.delta):
            self.max_id = max(self.max_id, int(self.delta.ids().max()))
        self.base, self.delta, self.hidden = base, VectorIndex(base.dim, "flat"), np.zeros(0, np.int64)

    @property
    def pending(self) -> int:
        """Changes not yet folded into the base."""
        return len(self.hidden) + len(self.delta)

    def __len__(self) -> int:
        return max(len(self.base) - len(self.hidden), 0) + len(self.delta)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`VectorIndex.search`, over the base minus the hidden ids plus the delta."""
        hidden = self.hidden if len(self.hidden) else None
        if self.base.approximate and self.exact is not None and len(self.base) and k > 0:
            queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
            _, candidates = self.base.search(queries, max(k, RERANK), exclude=hidden)
            sims, ids = rerank(queries, candidates, self.exact, k)
        else:
            sims, ids = self.base.search(queries, k, exclude=hidden)
        if not len(self.delta):
            return sims, ids
        d_sims, d_ids = self.delta.search(queries, k)
        all_sims, all_ids = np.concatenate([sims, d_sims], axis=1), np.concatenate([ids, d_ids], axis=1)
        order = np.argsort(-all_sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(all_sims, order, axis=1), np.take_along_axis(all_ids, order, axis=1)

    def folded(self, writable_base: VectorIndex) -> VectorIndex:
        """``writable_base`` (the base read into memory) with the hidden ids removed and the delta added."""
        writable_base.remove(self.hidden)
        if len(self.delta):
            ids = faiss.vector_to_array(self.delta._index.id_map).astype(np.int64)
            vectors = self.delta._index.index.reconstruct_n(0, len(self.delta))
            writable_base.add(ids, vectors)
        return writable_base


@dataclass
class GalleryIndex:
    """The faces index and the identities (centroid) index, each a base plus the changes since.

    ``generation`` is the database generation the whole reflects; ``base_generation`` the one
    its files were written at.
    """

    faces: LayeredIndex
    identities: LayeredIndex
    generation: int
    base_generation: int
    model_id: str
    folder: Path | None = None
    files_mapped: bool = field(default=False, repr=False)
    #: Names the database the index was built from (its creation time), so files left by
    #: another database at the same path are not mistaken for this one's.
    database: str | None = None

    @classmethod
    def build(cls, face_chunks: Chunks, identity_chunks: Chunks, *, faces: int, generation: int, model_id: str,
              dim: int, kind: str = "auto", train_sample: Callable[[int], np.ndarray] | None = None,
              progress: Callable[[int], None] | None = None, identities: int = 0,
              identity_sample: Callable[[int], np.ndarray] | None = None) -> "GalleryIndex":
        """Both indexes from chunks of ``(ids int64 (n,), vectors float32 (n, D))``, one chunk in
        memory at a time besides the index itself (what ``facesearch reindex`` does).

        ``faces`` and ``identities`` are how many vectors the chunks hold (they choose and size
        each index); an inverted file is trained on ``train_sample(m)`` (or
        ``identity_sample(m)``), ``m`` random stored vectors. ``progress`` gets the number of
        faces added after each chunk.
        """
        kind = kind_for(faces) if kind == "auto" else kind
        face_index, max_face = cls._filled(dim, kind, face_chunks, faces, train_sample, progress)
        ident_kind = "ivf" if kind_for(identities) == "ivf" and identity_sample is not None else "flat"
        ident_index, max_identity = cls._filled(dim, ident_kind, identity_chunks, identities, identity_sample)
        return cls(LayeredIndex(face_index, max_face), LayeredIndex(ident_index, max_identity), generation,
                   generation, model_id)

    @staticmethod
    def _filled(dim: int, kind: str, chunks: Chunks, expected: int,
                sample: Callable[[int], np.ndarray] | None = None,
                progress: Callable[[int], None] | None = None) -> tuple[VectorIndex, int]:
        """One index of ``kind`` holding every chunk, and the largest id stored."""
        if kind == "flat":
            return VectorIndex.filled_flat(dim, chunks, expected, progress)
        index = VectorIndex(dim, kind, expected=expected)
        if index.needs_training:
            if sample is None:
                raise ValueError("an inverted-file index needs a training sample")
            index.train(sample(min(expected, index.cells * IVF_TRAIN_PER_CELL)))
        max_id = -1
        for ids, vectors in chunks:
            index.add(ids, vectors)
            max_id = max(max_id, int(np.max(ids, initial=-1)))
            if progress:
                progress(len(ids))
        return index, max_id

    def use_exact(self, faces: VectorLookup, identities: VectorLookup) -> None:
        """Re-rank approximate searches with the stored face vectors and identity averages."""
        self.faces.exact, self.identities.exact = faces, identities

    def apply(self, changes: IndexChanges) -> None:
        """Bring the index to ``changes.generation`` (idempotent: applying a change twice is harmless)."""
        self.faces.replace(changes.removed_faces, changes.face_ids, changes.face_vectors)
        self.identities.replace(changes.removed_identities, changes.identity_ids, changes.identity_vectors)
        self.generation = max(self.generation, changes.generation)

    @property
    def pending(self) -> int:
        """Changes held in memory on top of the files."""
        return self.faces.pending + self.identities.pending

    def summary(self) -> dict:
        """``{"faces", "identities", "generation", "kind"}``: what the indexes hold."""
        return {"faces": len(self.faces), "identities": len(self.identities), "generation": self.generation,
                "kind": self.faces.base.kind}

    def save(self, folder: str | os.PathLike) -> None:
        """Write both indexes with every change folded in, then the manifest, each atomically.

        The manifest goes last and names the generation: a crash before it leaves the old
        manifest, whose generation the database's change records still cover.
        """
        folder = Path(folder)
        if self.files_mapped and self.saved_generation(self.folder) != self.base_generation:
            # Another writer replaced the files this index maps: its changes would be folded twice.
            raise RuntimeError(f"{self.folder}: the index files changed since they were read; reload them")
        for name, layered in ((FACES_FILE, self.faces), (IDENTITIES_FILE, self.identities)):
            if not layered.pending and self.folder == folder and (folder / name).exists():
                continue
            # A mapped base shares pages with its file: fold into a private copy instead.
            base = VectorIndex.load(self.folder / name) if self.files_mapped else layered.base
            layered.reset(layered.folded(base))
            layered.base.save(folder / name)
        manifest = {"generation": self.generation, "model_id": self.model_id, "database": self.database,
                    "max_face_id": self.faces.max_id, "max_identity_id": self.identities.max_id,
                    "faces": len(self.faces),
                    "identities": len(self.identities), "faces_kind": self.faces.base.kind,
                    "identities_kind": self.identities.base.kind,
                    "nprobe": self.faces.base.nprobe}
        replace_atomically(folder / MANIFEST_FILE, lambda tmp: tmp.write_text(json.dumps(manifest, indent=2)))
        self.base_generation = self.generation
        self.folder = folder
        self.files_mapped = False

    @staticmethod
    def saved_generation(folder: str | os.PathLike) -> int | None:
        """The generation the files in ``folder`` name, ``None`` without a readable manifest."""
        try:
            return int(json.loads((Path(folder) / MANIFEST_FILE).read_text())["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def load(cls, folder: str | os.PathLike, *, model_id: str, mmap: bool = True) -> "GalleryIndex | None":
        """The saved indexes at the generation their manifest names, or ``None`` if they are
        missing, unreadable, for another model, or disagree with their manifest."""
        folder = Path(folder)
        try:
            manifest = json.loads((folder / MANIFEST_FILE).read_text())
            if manifest.get("model_id") != model_id:
                log.info("index in %s is for %s, not %s; rebuilding", folder, manifest.get("model_id"), model_id)
                return None
            faces = VectorIndex.load(folder / FACES_FILE, mmap=mmap)
            identities = VectorIndex.load(folder / IDENTITIES_FILE, mmap=mmap)
            generation = int(manifest["generation"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            log.warning("index in %s is unreadable (%s); rebuilding", folder, exc)
            return None
        if len(faces) != manifest.get("faces") or len(identities) != manifest.get("identities"):
            log.warning("index in %s disagrees with its manifest; rebuilding", folder)
            return None
        # Files without the largest ids (none are written so any more) are read as "any id may be there".
        huge = np.iinfo(np.int64).max
        return cls(LayeredIndex(faces, manifest.get("max_face_id", huge)),
                   LayeredIndex(identities, manifest.get("max_identity_id", huge)), generation, generation, model_id,
                   folder, mmap, manifest.get("database"))


def chunked(ids: np.ndarray, vectors: np.ndarray, size: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(ids, vectors)`` in slices of ``size`` rows, for :meth:`GalleryIndex.build` on arrays."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size], vectors[start:start + size]
