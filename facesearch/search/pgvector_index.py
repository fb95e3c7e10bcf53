"""Face vectors in PostgreSQL with pgvector, in the same database and transactions as the metadata.

Two tables (created by the schema revision ``0005``): ``face_vectors`` (face id, embedding) and
``identity_vectors`` (identity id, normalised average). Every change the gallery commits writes
them inside its own transaction (:meth:`facesearch.gallery.store.Store.on_change`): the new
faces of that generation are copied in, the changed identity averages replaced, and deleted
faces and identities leave with their rows (foreign keys, ``ON DELETE CASCADE``). So there are
no index files to keep in step and nothing to catch up after a crash: a transaction either
committed both or neither.

Both columns carry an HNSW index (inner product); a search is ``ORDER BY embedding <#> query
LIMIT k`` through SQLAlchemy, with ``hnsw.ef_search`` set for the transaction.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
from pgvector.psycopg.vector import register_vector_info
from pgvector.sqlalchemy import Vector
from psycopg.types import TypeInfo
from sqlalchemy import Column, Integer, MetaData, Table, delete, func, select, text
from sqlalchemy.orm import Session

from facesearch.errors import GalleryError
from facesearch.search.faiss_index import normalise
from facesearch.search.vector_store import VectorStore, padded

if TYPE_CHECKING:
    from facesearch.gallery.store import Store

log = logging.getLogger(__name__)

#: HNSW graph parameters: neighbours per node and build-time candidate list (pgvector's defaults).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
#: Candidate list per search (at least the k asked for).
HNSW_EF_SEARCH = 100
#: Memory an index build may use (PostgreSQL's maintenance_work_mem, for that transaction only), in
#: bytes per byte of the table: pgvector's graph of a 512-d face takes about what its row does
#: (2.6 KB against 2.7 KB); a graph that outgrows it is finished by slow on-disk inserts.
BUILD_MEMORY_PER_TABLE_BYTE = 1.5
#: Bounds of that memory, MB: the floor for small tables, the ceiling for a server's RAM (a
#: parallel build reserves it in shared memory up front).
BUILD_MEMORY_MB = (64, 8192)
#: Table size from which an index build uses PostgreSQL's parallel maintenance workers (smaller
#: tables build in seconds, and a parallel build reserves its memory up front).
PARALLEL_BUILD_BYTES = 64 * 2**20
#: Rows read and written at once when vectors are copied in bulk.
COPY_CHUNK = 5_000
#: Advisory lock key held while the vector columns are given their dimension and indexes.
PREPARE_LOCK_KEY = 0x66616365_7303

_META = MetaData()
FACE_VECTORS = Table("face_vectors", _META, Column("face_id", Integer, primary_key=True),
                     Column("embedding", Vector()))
IDENTITY_VECTORS = Table("identity_vectors", _META, Column("identity_id", Integer, primary_key=True),
                         Column("average", Vector()))


@dataclass(frozen=True)
class Sources:
    """The gallery's columns the vector tables copy, handed in by the gallery (its schema is its own:
    search/ never imports gallery/). Each is a SQLAlchemy column expression.

    Attributes:
        face_id, face_embedding, face_generation: a face's id, its float32 little-endian embedding
            (bytes), and the generation that added it.
        identity_id, identity_sum, identity_count, identity_generation: an identity's id, the float64
            little-endian sum of its embeddings (bytes), its face count, and the generation that last
            changed it.
    """

    face_id: Any
    face_embedding: Any
    face_generation: Any
    identity_id: Any
    identity_sum: Any
    identity_count: Any
    identity_generation: Any


class _Column:
    """One table's vectors, searched by inner product."""

    def __init__(self, owner: "PgvectorStore", table: Table, id_column: str, vector_column: str) -> None:
        self.owner = owner
        self.table = table
        self.ids = table.c[id_column]
        self.vectors = table.c[vector_column]
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if k <= 0:
            return padded([[] for _ in queries], 0)
        found = []
        with self.owner.store.session() as s:
            s.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"),
                      {"ef": str(max(HNSW_EF_SEARCH, k))})
            for query in queries:
                distance = self.vectors.max_inner_product(query)  # the negative inner product
                rows = s.execute(select(self.ids, distance).order_by(distance).limit(k)).all()
                found.append([(int(i), -float(d)) for i, d in rows])
        return padded(found, k)

    def counted(self, s: Session) -> None:
        self.count = int(s.scalar(select(func.count()).select_from(self.table)))


class PgvectorStore(VectorStore):
    """The vectors of a gallery whose database is PostgreSQL.

    Args:
        store: the gallery's :class:`~facesearch.gallery.store.Store` (a PostgreSQL database at
            schema revision 0005 or later).
        dim: the embedding's length.
        sources: the gallery's columns the vector tables are copied from.
    """

    kind = "pgvector-hnsw"

    def __init__(self, store: "Store", dim: int, sources: Sources) -> None:
        if store.dialect != "postgresql":
            raise GalleryError(f"{store.where}: pgvector needs a PostgreSQL database, not {store.dialect}")
        self.store = store
        self.dim = dim
        self.sources = sources
        self.faces = _Column(self, FACE_VECTORS, "face_id", "embedding")
        self.identities = _Column(self, IDENTITY_VECTORS, "identity_id", "average")
        self._vector_type: TypeInfo | None = None  # pgvector's type, looked up once for COPY
        self._prepare()
        store.on_change(self._record)

    def _prepare(self) -> None:
        """Give the vector columns the gallery's dimension and their HNSW indexes, once."""
        with self.store.session() as s:
            if self._dimension(s) == self.dim and self._indexed(s):
                return
            s.execute(text(f"SELECT pg_advisory_xact_lock({PREPARE_LOCK_KEY})"))
            found = self._dimension(s)
            if found not in (None, self.dim):
                raise GalleryError(f"{self.store.where}: the face vectors are {found}-d, not {self.dim}-d")
            if found is None:
                for table, column in (("face_vectors", "embedding"), ("identity_vectors", "average")):
                    s.execute(text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE vector({self.dim})"))
            self._create_indexes(s)

    @staticmethod
    def _create_indexes(s: Session) -> None:
        # An HNSW build is much faster when its graph fits in maintenance_work_mem (pgvector's
        # advice), and pgvector 0.6 builds a large table's graph in parallel workers, but
        # PostgreSQL plans workers from the main heap's size, which holds almost nothing here
        # (a 2 KB vector is stored out of line, in TOAST): the table is told how many to use.
        for table, column in (("face_vectors", "embedding"), ("identity_vectors", "average")):
            table_bytes = int(s.scalar(text(f"SELECT pg_table_size('{table}')")))  # TOAST included
            low, high = BUILD_MEMORY_MB
            memory_mb = int(min(max(table_bytes * BUILD_MEMORY_PER_TABLE_BYTE / 2**20, low), high))
            s.execute(text("SELECT set_config('maintenance_work_mem', :m, true)"), {"m": f"{memory_mb}MB"})
            if table_bytes >= PARALLEL_BUILD_BYTES:
                workers = int(s.scalar(text("SELECT current_setting('max_parallel_maintenance_workers')")))
                s.execute(text(f"ALTER TABLE {table} SET (parallel_workers = {workers})"))
            else:
                s.execute(text(f"ALTER TABLE {table} RESET (parallel_workers)"))
            s.execute(text(f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} USING hnsw ({column} "
                           f"vector_ip_ops) WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"))

    @staticmethod
    def _dimension(s: Session) -> int | None:
        # A vector column's type modifier is its dimension; -1 when it has none yet.
        typmod = s.scalar(text("SELECT atttypmod FROM pg_attribute WHERE attrelid = 'face_vectors'::regclass "
                               "AND attname = 'embedding'"))
        return None if typmod is None or typmod < 0 else int(typmod)

    @staticmethod
    def _indexed(s: Session) -> bool:
        return s.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname IN "
                             "('face_vectors_hnsw', 'identity_vectors_hnsw')")) == 2

    # -- inside the gallery's transactions --------------------------------------------------

    def _record(self, s: Session, generation: int) -> None:
        """Write what the transaction at ``generation`` changed into the vector tables."""
        src = self.sources
        last = -1
        while True:  # in chunks: a bulk import may add a million faces in one transaction
            rows = s.execute(select(src.face_id, src.face_embedding)
                             .where(src.face_generation == generation, src.face_id > last)
                             .order_by(src.face_id).limit(COPY_CHUNK)).all()
            if not rows:
                break
            self._put_faces(s, rows)
            last = rows[-1][0]
        changed = s.execute(select(src.identity_id, src.identity_sum, src.identity_count)
                            .where(src.identity_generation == generation)).all()
        self._put_identities(s, changed)

    def _copy_in(self, s: Session, table: Table, ids: list[int], vectors) -> None:
        """Replace the rows of ``ids`` in ``table`` by ``vectors`` (float32 or float64 (D,) each):
        a delete, then a binary COPY in the session's transaction. The text form of a 512-d vector
        (what an INSERT's parameters are sent as) took half of a bulk load's time to format."""
        if not ids:
            return
        id_column, vector_column = (c.name for c in table.columns)
        s.execute(delete(table).where(table.columns[id_column].in_(ids)))
        connection = s.connection().connection.driver_connection  # the psycopg connection, same transaction
        if self._vector_type is None:
            self._vector_type = TypeInfo.fetch(connection, "vector")
        with connection.cursor() as cursor:
            register_vector_info(cursor, self._vector_type)
            with cursor.copy(f"COPY {table.name} ({id_column}, {vector_column}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "vector"])
                for i, v in zip(ids, vectors):
                    copy.write_row((i, v))

    def _put_faces(self, s: Session, rows) -> None:
        self._copy_in(s, FACE_VECTORS, [int(i) for i, _ in rows], [np.frombuffer(blob, "<f4") for _, blob in rows])

    def _put_identities(self, s: Session, rows) -> None:
        live = [(int(i), blob) for i, blob, count in rows if count and blob is not None]
        gone = [int(i) for i, blob, count in rows if not count or blob is None]
        if gone:
            s.execute(delete(IDENTITY_VECTORS).where(IDENTITY_VECTORS.c.identity_id.in_(gone)))
        if live:
            averages = normalise(np.stack([np.frombuffer(blob, "<f8") for _, blob in live])).astype(np.float32)
            self._copy_in(s, IDENTITY_VECTORS, [i for i, _ in live], averages)

    # -- the gallery's calls ------------------------------------------------------------------

    def current(self) -> "PgvectorStore":
        # Always current (same transactions); only the counts the matchers read are refreshed.
        with self.store.session() as s:
            generation = int(s.scalar(text("SELECT generation FROM gallery_state WHERE id = 1")))
            if generation != self.generation:
                self.faces.counted(s)
                self.identities.counted(s)
                self.generation = generation
        return self

    def sync(self) -> None:
        pass  # every write already changed the vectors in its own transaction

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Without the HNSW indexes while a copy fills the tables, then built once: growing the
        graph row by row costs several times more than building it (docs/benchmarks.md)."""
        with self.store.session() as s:
            s.execute(text("DROP INDEX IF EXISTS face_vectors_hnsw, identity_vectors_hnsw"))
        try:
            yield
        finally:
            with self.store.session() as s:
                self._create_indexes(s)

    def rebuild(self, progress: Callable[[int], None] | None = None,
                on_total: Callable[[int], None] | None = None) -> "PgvectorStore":
        """Copy every vector again from the faces and identities, and build both HNSW indexes
        anew (after the copy: inserting into a built graph costs more), in one transaction;
        queries wait for it (dropping the indexes locks the tables)."""
        src = self.sources
        with self.store.session() as s:
            total = int(s.scalar(select(func.count(src.face_id))))
            if on_total:
                on_total(total)
            s.execute(text("DROP INDEX IF EXISTS face_vectors_hnsw, identity_vectors_hnsw"))
            s.execute(delete(FACE_VECTORS))
            s.execute(delete(IDENTITY_VECTORS))
            last = -1
            while True:
                rows = s.execute(select(src.face_id, src.face_embedding).where(src.face_id > last)
                                 .order_by(src.face_id).limit(COPY_CHUNK)).all()
                if not rows:
                    break
                self._put_faces(s, rows)
                last = rows[-1][0]
                if progress:
                    progress(len(rows))
            self._put_identities(s, s.execute(select(src.identity_id, src.identity_sum, src.identity_count)).all())
            self._create_indexes(s)
        self.generation = -1
        return self.current()
