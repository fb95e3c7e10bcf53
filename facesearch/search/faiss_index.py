"""FAISS indexes of face embeddings, saved atomically.

A gallery keeps two indexes under ``<home>/index/``:

* ``faces.faiss``: every stored face, ids = the faces' database ids;
* ``identities.faiss``: each identity's average embedding (re-normalised), ids = identity ids;

plus ``manifest.json`` saying which database generation they were built from. Embeddings are
L2-normalised, so inner product is cosine similarity. The files are derived data: anything
missing, stale or unreadable is rebuilt from the database.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from facesearch.atomic import replace_atomically

log = logging.getLogger(__name__)

FACES_FILE = "faces.faiss"
IDENTITIES_FILE = "identities.faiss"
MANIFEST_FILE = "manifest.json"

#: Galleries up to this many faces use exact search; above it, HNSW (see docs/benchmarks.md).
EXACT_LIMIT = 200_000
#: HNSW candidate list per search. Among random distractors, recall@1 at 300k stored faces
#: was 0.945 at 64 and 0.995 at 256; at 1M, 0.608 at 64 and 0.859 at 256 (3.9 ms a query).
#: Larger values trade latency for recall (docs/benchmarks.md).
HNSW_EF_SEARCH = 256
#: Fewer queries than this at once are searched on one thread.
_PARALLEL_QUERIES = 16


class VectorIndex:
    """A FAISS inner-product index over L2-normalised vectors with int64 ids.

    Args:
        dim: vector length.
        kind: ``"flat"`` (exact), ``"hnsw"`` (approximate, for large galleries) or ``"auto"``
            (exact up to :data:`EXACT_LIMIT` vectors).
    """

    def __init__(self, dim: int, kind: str = "auto") -> None:
        self.dim = dim
        self.kind = kind
        self._index = self._empty(kind, 0)

    def _empty(self, kind: str, n: int) -> faiss.Index:
        if kind == "auto":
            kind = "flat" if n <= EXACT_LIMIT else "hnsw"
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = HNSW_EF_SEARCH
            return faiss.IndexIDMap2(inner)
        raise ValueError(f"unknown index kind {kind!r}; choose flat, hnsw or auto")

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, kind: str = "auto") -> "VectorIndex":
        """A new index holding ``vectors`` (N, dim) float32 under ``ids`` (N,) int64."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = cls(vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 512, kind)
        index._index = index._empty(kind, len(vectors))
        index.add(ids, vectors)
        return index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (N, dim) float32 under ``ids`` (N,) int64."""
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (N, {self.dim}), got {vectors.shape}")
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar stored vectors to each query.

        Returns:
            ``(similarities float32 (Q, k), ids int64 (Q, k))``; missing neighbours have id -1.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if len(self) == 0 or k <= 0:
            q = len(queries)
            return np.full((q, max(k, 0)), -np.inf, np.float32), np.full((q, max(k, 0)), -1, np.int64)
        if len(queries) < _PARALLEL_QUERIES:
            # A handful of queries gains nothing from OpenMP threads, and on a busy machine
            # waiting for the second thread costs more than the search itself (docs/benchmarks.md).
            previous = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                sims, ids = self._index.search(queries, k)
            finally:
                faiss.omp_set_num_threads(previous)
        else:
            sims, ids = self._index.search(queries, k)
        sims[ids < 0] = -np.inf
        return sims, ids

    def _graph(self):
        # The HNSW graph inside the id map, or None for exact search ("auto" decides by size).
        inner = faiss.downcast_index(self._index.index)
        return inner.hnsw if isinstance(inner, faiss.IndexHNSW) else None

    def graph_params(self) -> dict:
        """``{"M", "ef_search", "ef_construction"}`` of an HNSW index; ``{}`` for exact search."""
        hnsw = self._graph()
        if hnsw is None:
            return {}
        return {"M": int(hnsw.nb_neighbors(1)), "ef_search": int(hnsw.efSearch),
                "ef_construction": int(hnsw.efConstruction)}

    def set_ef_search(self, ef: int) -> None:
        """An HNSW index's candidate list per search (recall against latency); exact search ignores it."""
        hnsw = self._graph()
        if hnsw is not None:
            hnsw.efSearch = int(ef)

    def ids(self) -> np.ndarray:
        """Stored ids, int64 (N,)."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def save(self, path: str | os.PathLike) -> None:
        """Atomically write the index to ``path``."""
        replace_atomically(path, lambda tmp: faiss.write_index(self._index, str(tmp)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "VectorIndex":
        raw = faiss.read_index(os.fspath(path))
        index = cls(raw.d)
        index._index = raw
        inner = faiss.downcast_index(raw.index)
        index.kind = "hnsw" if "HNSW" in type(inner).__name__ else "flat"
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
    uniq, inverse = np.unique(owners, return_inverse=True)
    sums = np.zeros((len(uniq), vectors.shape[1]), np.float64)
    np.add.at(sums, inverse, vectors)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return uniq.astype(np.int64), (sums / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass
class GalleryIndex:
    """The faces index and the identities (centroid) index, with the generation they reflect."""

    faces: VectorIndex
    identities: VectorIndex
    generation: int
    model_id: str

    @classmethod
    def build(cls, face_ids: np.ndarray, owners: np.ndarray, vectors: np.ndarray, *, generation: int,
              model_id: str, dim: int, kind: str = "auto") -> "GalleryIndex":
        """Both indexes from the stored faces (what ``facesearch reindex`` does)."""
        vectors = vectors.reshape(-1, dim)
        ident_ids, means = centroids(owners, vectors)
        faces = VectorIndex(dim, kind)
        faces._index = faces._empty(kind, len(vectors))
        faces.add(face_ids, vectors)
        identities = VectorIndex(dim, "flat")
        identities.add(ident_ids, means.reshape(-1, dim))
        return cls(faces, identities, generation, model_id)

    def summary(self) -> dict:
        """``{"faces", "identities", "generation"}``: what the indexes hold."""
        return {"faces": len(self.faces), "identities": len(self.identities), "generation": self.generation}

    def save(self, folder: str | os.PathLike) -> None:
        """Write both indexes, then the manifest, each atomically.

        The manifest goes last: if the process dies before it, the manifest still names the
        older generation and the next open rebuilds.
        """
        folder = Path(folder)
        self.faces.save(folder / FACES_FILE)
        self.identities.save(folder / IDENTITIES_FILE)
        manifest = {"generation": self.generation, "model_id": self.model_id,
                    "faces": len(self.faces), "identities": len(self.identities),
                    "faces_kind": self.faces.kind}
        replace_atomically(folder / MANIFEST_FILE, lambda tmp: tmp.write_text(json.dumps(manifest, indent=2)))

    @classmethod
    def load(cls, folder: str | os.PathLike, *, generation: int, model_id: str,
             faces: int) -> "GalleryIndex | None":
        """The saved indexes if they match the database's ``generation`` and face count, else ``None``."""
        folder = Path(folder)
        try:
            manifest = json.loads((folder / MANIFEST_FILE).read_text())
            if (manifest.get("generation") != generation or manifest.get("model_id") != model_id
                    or manifest.get("faces") != faces):
                log.info("index in %s is stale (generation %s, database %s); rebuilding",
                         folder, manifest.get("generation"), generation)
                return None
            face_index = VectorIndex.load(folder / FACES_FILE)
            ident_index = VectorIndex.load(folder / IDENTITIES_FILE)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("index in %s is unreadable (%s); rebuilding", folder, exc)
            return None
        if len(face_index) != faces:
            return None
        return cls(face_index, ident_index, generation, model_id)
