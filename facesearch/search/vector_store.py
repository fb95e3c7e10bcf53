"""Vectors kept outside the gallery's own files: what the gallery asks of such a store.

An embedded gallery keeps its vectors in FAISS files (:mod:`facesearch.search.faiss_index`).
A gallery may instead keep them in a vector database: in PostgreSQL beside the metadata
(:mod:`facesearch.search.pgvector_index`) or in a Milvus collection
(:mod:`facesearch.search.milvus_index`). Each such store holds two sets of vectors, every
stored face by face id and every identity's normalised average by identity id, searched by
inner product (cosine similarity: the vectors are L2-normalised), and reflects one generation
of the gallery's database, the source of truth.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Protocol

from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")


class VectorSet(Protocol):
    """Vectors searched by inner product, what the matchers need of an index."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities float32 (Q, k), ids int64 (Q, k))`` best first; missing neighbours have
        id -1 and similarity -inf."""
        ...

    def __len__(self) -> int: ...


def padded(rows: list[list[tuple[int, float]]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query ``[(id, similarity), ...]`` best first, as ``(similarities float32 (Q, k), ids int64 (Q, k))``
    padded with similarity -inf and id -1."""
    sims = np.full((len(rows), k), -np.inf, np.float32)
    ids = np.full((len(rows), k), -1, np.int64)
    for q, found in enumerate(rows):
        for j, (i, s) in enumerate(found[:k]):
            ids[q, j], sims[q, j] = i, s
    return sims, ids


class VectorStore:
    """Base of the stores kept outside the gallery's files. The gallery calls:

    - :meth:`current` before searching (the store catches up with the database if it is behind);
    - :meth:`sync` after each write, holding the writer lock;
    - :meth:`rebuild` for ``reindex``;

    and searches :attr:`faces` and :attr:`identities`.
    """

    #: How ``reindex`` and ``bench`` name the store's search.
    kind = "external"
    faces: VectorSet
    identities: VectorSet
    #: The database generation the store reflects.
    generation: int = -1

    def current(self) -> "VectorStore":
        """The store, brought up to the database's generation; for reading."""
        raise NotImplementedError

    def sync(self) -> None:
        """After a write, under the writer lock: record the database's changes."""
        raise NotImplementedError

    def save(self, folder=None) -> None:
        """What the gallery calls to write its index files after a removal: here, :meth:`sync`
        (the store has no files)."""
        self.sync()

    def rebuild(self, progress: Callable[[int], None] | None = None,
                on_total: Callable[[int], None] | None = None) -> "VectorStore":
        """Everything again from the database (``reindex``); returns the store."""
        raise NotImplementedError

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Around a large copy into an empty gallery: a store whose index is cheaper to build once
        than to grow one vector at a time builds it at the end."""
        yield

    def summary(self) -> dict:
        """``{"faces", "identities", "generation", "kind"}``, as the FAISS index reports them."""
        return {"faces": len(self.faces), "identities": len(self.identities), "generation": self.generation,
                "kind": self.kind}

    def close(self) -> None:
        """Let go of connections."""
