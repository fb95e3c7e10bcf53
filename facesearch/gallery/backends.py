"""Where a gallery keeps its vectors and how its writers take turns, chosen by its URLs.

- embedded (the default): an SQLite database and FAISS files under the gallery's folder, a lock
  file for writers;
- a PostgreSQL database (``--db-url postgresql+psycopg://...``): the vectors in pgvector columns
  of the same database, written in the same transactions, and PostgreSQL's advisory lock for
  writers;
- ``--vectors milvus://HOST:PORT`` (a Milvus server) or ``--vectors PATH.db`` (a Milvus Lite
  file): the vectors in Milvus collections, metadata in whichever SQL database the gallery uses.

The vector stores' own packages (pgvector, pymilvus) are imported here, on first use only.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from facesearch.errors import OptionsError
from facesearch.gallery.lock import AdvisoryLock, WriterLock
from facesearch.gallery.schema import FaceRow, Identity
from facesearch.gallery.store import Store
from facesearch.search.vector_store import VectorStore

#: URL schemes of a Milvus server; a path ending in this suffix is a Milvus Lite file.
MILVUS_SCHEMES = ("milvus://", "milvus+https://")
MILVUS_LITE_SUFFIX = ".db"


def is_milvus(vectors: str) -> bool:
    """Whether ``vectors`` names Milvus: a ``milvus://`` URL or a Milvus Lite ``.db`` file."""
    return vectors.startswith(MILVUS_SCHEMES) or vectors.endswith(MILVUS_LITE_SUFFIX)


def _checked(vectors: str | os.PathLike) -> str:
    vectors = os.fspath(vectors)
    if not is_milvus(vectors):
        raise OptionsError(f"--vectors {vectors}: not a Milvus URL (milvus://HOST:PORT) or a Milvus Lite "
                           f"file (PATH{MILVUS_LITE_SUFFIX})")
    return vectors


def connect_vectors(vectors: str | os.PathLike | None, *, wait: bool = True,
                    on_wait: Callable[[str], None] | None = None) -> Any:
    """Reach the vector store ``vectors`` names (``None``: nothing to reach), before the gallery
    writes anything: an unreachable server or an unusable path fails here, with no database
    file or folder made. Returns the connection :func:`open_vectors` takes.

    Raises:
        OptionsError: ``vectors`` names no vector store facesearch knows.
        GalleryError: the store cannot be reached.
    """
    if vectors is None:
        return None
    from facesearch.search.milvus_index import connect

    return connect(_checked(vectors), wait=wait, on_wait=on_wait)


def open_vectors(store: Store, vectors: str | os.PathLike | None, *, model_id: str, dim: int,
                 lock_file: str | os.PathLike, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None, connection: Any = None) -> VectorStore | None:
    """The gallery's vector store: ``None`` for the embedded FAISS files (the façade's own), else a
    :class:`~facesearch.search.vector_store.VectorStore`. ``lock_file``, ``wait`` and ``on_wait`` are
    the gallery's writer lock settings (:func:`writer_lock`); ``connection``, from
    :func:`connect_vectors`, is used (and closed with the store) instead of connecting again.

    A PostgreSQL database always keeps its pgvector columns up to date (they are written in the
    gallery's transactions), also when Milvus answers the searches.

    Raises:
        OptionsError: ``vectors`` names no vector store facesearch knows.
        GalleryError: the store cannot be reached or holds vectors of another model.
    """
    in_postgres = None
    if store.dialect == "postgresql":
        from facesearch.search.pgvector_index import PgvectorStore, Sources

        in_postgres = PgvectorStore(store, dim, Sources(
            face_id=FaceRow.id, face_embedding=FaceRow.embedding, face_generation=FaceRow.added_gen,
            identity_id=Identity.id, identity_sum=Identity.vector_sum, identity_count=Identity.face_count,
            identity_generation=Identity.updated_gen))
    if vectors is None:
        return in_postgres
    vectors = _checked(vectors)
    from facesearch.search.milvus_index import MilvusStore

    return MilvusStore(vectors, store, model_id=model_id, dim=dim,
                       lock=writer_lock(store, lock_file, wait=wait, on_wait=on_wait),
                       try_lock=writer_lock(store, lock_file, wait=False, on_wait=None), wait=wait, on_wait=on_wait,
                       client=connection)


def writer_lock(store: Store, lock_file: str | os.PathLike, *, wait: bool,
                on_wait: Callable[[str], None] | None) -> WriterLock | AdvisoryLock:
    """The lock a gallery's writers take: PostgreSQL's advisory lock for a gallery in PostgreSQL
    (writers may be on other machines), else ``lock_file`` beside the index."""
    if store.dialect == "postgresql":
        return AdvisoryLock(store.engine, store.where, wait=wait, on_wait=on_wait)
    return WriterLock(Path(lock_file), wait=wait, on_wait=on_wait)
