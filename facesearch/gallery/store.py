"""The gallery's metadata and embeddings in a relational database (SQLAlchemy).

The database is the source of truth: it holds every face's embedding, so the FAISS files can
always be rebuilt from it. Each change runs in one transaction and bumps a ``generation``
counter; an index whose recorded generation differs is stale and gets rebuilt.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from sqlalchemy import create_engine, delete, event, exists, func, insert, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from facesearch.errors import GalleryError, NotFoundError, one_line
from facesearch.gallery.schema import (REVISION, SCHEMA_VERSION, ApiKey, CalibrationRow, FaceRow, GalleryState, Identity,
                                       RemovedFace, RemovedIdentity, SourceImage)
from facesearch.permissions import create_private_file, tighten
from facesearch.search.faiss_index import IndexChanges, group_sums, normalise
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")


@dataclass(frozen=True)
class NewFace:
    """A face to store: what :class:`Store.add_image` needs of it."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    quality: float
    embedding: np.ndarray


@dataclass(frozen=True)
class FaceSource:
    """A stored face and where it came from: ``box`` is ``(x, y, w, h)`` pixels of ``path``."""

    identity: str
    path: str
    image_width: int
    box: tuple[float, float, float, float]
    embedding: np.ndarray


@dataclass(frozen=True)
class FaceRecord:
    """A stored face without its embedding: ``box`` is ``(x, y, w, h)`` pixels of the photo at ``path``."""

    id: int
    identity: str
    path: str
    box: tuple[float, float, float, float]
    score: float
    quality: float


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored API key: its public id, label, role, salted hash and dates (UTC, naive)."""

    key_id: str
    name: str
    role: str
    salt: str
    key_hash: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class IdentitySummary:
    id: int
    name: str
    faces: int
    images: int


def _sqlite_read_only_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _writable(database: str) -> bool:
    """Whether this process may write an existing SQLite file and create its side files."""
    return os.access(database, os.W_OK) and os.access(os.path.dirname(database) or ".", os.W_OK)


#: Page size of a new SQLite gallery database, bytes.
PAGE_SIZE = 16384


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets a second process read while one enrolls, and a killed writer leaves the last
    # committed state intact; foreign keys make deletes cascade.
    cursor = dbapi_connection.cursor()
    # A new database gets 16 KB pages (an existing one keeps its own): a face row (its 2 KB
    # embedding and the rest) leaves half of a 4 KB page empty, seven of them fill 16 KB
    # (docs/benchmarks.md, "Gallery scale"). Set before WAL, which fixes the page size.
    cursor.execute(f"PRAGMA page_size={PAGE_SIZE}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted rows and freed pages are overwritten with zeros: a removed person's embeddings
    # must not linger in the file's free space.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


#: Files kept beside a database file: SQLite's (made with the main file's permissions) and
#: the schema upgrade's lock.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal", ".lock")


def _sqlite_file(engine: Engine) -> str | None:
    """The file an SQLite engine opens, or ``None`` (in memory, a ``file:`` URI, another database)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _make_private(database: str) -> None:
    # Created 0600 before SQLite opens it, so the journal and WAL files it makes from the
    # main file's mode are private too; an older, looser gallery is tightened here.
    try:
        create_private_file(database)
    except OSError:
        return  # a missing folder or a read-only place: SQLite's own error says it better
    for suffix in SQLITE_SIDE_FILES:
        tighten(database + suffix)


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _reason(exc: SQLAlchemyError) -> str:
    # The driver's own message, without SQLAlchemy's SQL echo and background link.
    return one_line(getattr(exc, "orig", None) or exc)


class Store:
    """Tables, sessions and the queries the gallery needs.

    Args:
        url: any SQLAlchemy URL, e.g. ``sqlite:////path/to/gallery.sqlite``.
        model_id, embedding_dim: the embedding model this gallery is for. A new database
            records them; an existing one must match, or :class:`GalleryError` is raised.
        adopts: says whether an existing gallery's other model id is acceptable as well (the
            analysis can embed that way too); the store's :attr:`model_id` is then the recorded one.
    """

    def __init__(self, url: str, *, model_id: str, embedding_dim: int,
                 adopts: Callable[[str], bool] | None = None) -> None:
        self.url = url
        self.where = masked_url(url)
        try:
            self.engine: Engine = create_engine(url)
        except (ArgumentError, ValueError) as exc:
            raise GalleryError(f"{self.where}: not a database URL ({one_line(exc)})") from None
        except ImportError as exc:  # the URL names a driver that is not installed
            raise GalleryError(f"{self.where}: database driver not installed ({one_line(exc)})") from None
        database = _sqlite_file(self.engine)
        #: True for a gallery this process may read but not write (a read-only mount, another
        #: user's gallery): it answers queries; writes fail in one line.
        self.read_only = bool(database and os.path.exists(database) and not _writable(database))
        if self.read_only:
            # SQLite needs write access for its WAL index even to read; a file nobody writes
            # meanwhile can be read as immutable instead.
            self.engine.dispose()
            self.engine = create_engine(f"sqlite:///file:{database}?mode=ro&immutable=1&uri=true")
            event.listen(self.engine, "connect", _sqlite_read_only_pragmas)
        elif self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            if database:
                _make_private(database)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: Called inside each transaction that changed the gallery, before it commits, with the
        #: session and the new generation: stores kept in the same database (pgvector) update there.
        self._change_hooks: list[Callable[[Session, int], None]] = []
        try:
            if self._recorded_revision() != REVISION:
                # Alembic costs half a second to import: only a gallery to create or upgrade needs it.
                from facesearch.gallery import revisions

                if self.read_only:
                    revisions.check(self.engine, self.where)
                else:
                    revisions.upgrade(self.engine, self.where)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise GalleryError(f"{self.where}: cannot open the gallery database: {_reason(exc)}") from None
        if self.read_only:
            with self.session() as s:
                state = s.get(GalleryState, 1)
            if state is None:
                raise GalleryError(f"{self.where}: not a facesearch gallery (and read-only)")
        model_id = self._record_model(model_id, embedding_dim, adopts)
        with self.session() as s:
            #: Which database this is (its creation time): index files name it in their manifest.
            self.identity = s.get(GalleryState, 1).created_at.isoformat()
        self.model_id = model_id
        self.embedding_dim = embedding_dim

    def _record_model(self, model_id: str, embedding_dim: int, adopts: Callable[[str], bool] | None) -> str:
        """A new gallery records its embedding model; an existing one must have been made with it
        (or with one ``adopts`` accepts). Returns the gallery's model id."""
        for attempt in range(2):
            try:
                with self._sessions.begin() as s:
                    state = s.get(GalleryState, 1)
                    if state is None:
                        s.add(GalleryState(id=1, schema_version=SCHEMA_VERSION, model_id=model_id,
                                           embedding_dim=embedding_dim, generation=0))
                        return model_id
            except IntegrityError:
                if attempt:
                    raise
                continue  # another process created the gallery at the same moment: read its row
            except SQLAlchemyError as exc:
                raise GalleryError(f"{self.where}: database error: {_reason(exc)}") from None
            if state.model_id != model_id and adopts is not None and adopts(state.model_id):
                model_id = state.model_id
            if state.model_id != model_id or state.embedding_dim != embedding_dim:
                raise GalleryError(
                    f"{self.where}: gallery was built with {state.model_id} ({state.embedding_dim}-d), "
                    f"not {model_id} ({embedding_dim}-d); use another --home or re-enroll")
            return model_id

    def _recorded_revision(self) -> str | None:
        with self.engine.connect() as connection:
            if not connection.dialect.has_table(connection, "alembic_version"):
                return None
            return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        """The database's SQLAlchemy dialect name: ``"sqlite"``, ``"postgresql"``, ..."""
        return self.engine.dialect.name

    def on_change(self, hook: Callable[[Session, int], None]) -> None:
        """Run ``hook(session, generation)`` inside every transaction that changes the gallery, just
        before it commits (what it writes commits or rolls back with the change)."""
        self._change_hooks.append(hook)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any exception.

        Database failures (locked, unreachable, corrupt, a constraint broken by another writer)
        become one :class:`GalleryError` line naming the database without its password.
        """
        try:
            with self._sessions.begin() as s:
                yield s
                generation = s.info.get("generation")
                if generation is not None:
                    for hook in self._change_hooks:
                        hook(s, generation)
        except SQLAlchemyError as exc:
            raise GalleryError(f"{self.where}: database error: {_reason(exc)}") from None

    @staticmethod
    def _bump(s: Session) -> int:
        """Start a change: the generation it will be known by (committed with it)."""
        s.execute(text("UPDATE gallery_state SET generation = generation + 1 WHERE id = 1"))
        s.info["generation"] = int(s.scalar(select(GalleryState.generation).where(GalleryState.id == 1)))
        return s.info["generation"]

    def _add_to_sums(self, s: Session, identity: Identity, vectors: np.ndarray, generation: int) -> None:
        # Each identity keeps the float64 sum of its faces, so its average is known without
        # reading them again (the identities index is updated from it).
        total = np.asarray(vectors, dtype=np.float64).reshape(-1, self.embedding_dim).sum(axis=0)
        if identity.vector_sum is not None:
            total = total + np.frombuffer(identity.vector_sum, dtype="<f8")
        identity.vector_sum = total.astype("<f8").tobytes()
        identity.face_count = (identity.face_count or 0) + len(vectors)
        identity.updated_gen = generation

    @staticmethod
    def _tombstone_faces(s: Session, face_ids: Sequence[int], generation: int) -> None:
        # Upsert by hand (portable): an id SQLite reused and removed again gets the newer generation.
        if not face_ids:
            return
        s.execute(delete(RemovedFace).where(RemovedFace.face_id.in_(list(face_ids))))
        s.execute(insert(RemovedFace), [{"face_id": int(f), "generation": generation} for f in face_ids])

    @staticmethod
    def _tombstone_identity(s: Session, identity_id: int, generation: int) -> None:
        s.execute(delete(RemovedIdentity).where(RemovedIdentity.identity_id == identity_id))
        s.add(RemovedIdentity(identity_id=identity_id, generation=generation))

    def generation(self) -> int:
        """The change counter: it grows with every committed change to faces or identities."""
        with self.session() as s:
            return int(s.scalar(select(GalleryState.generation).where(GalleryState.id == 1)))

    # -- reads ------------------------------------------------------------------------------

    def image_owner(self, sha256: str) -> str | None:
        """Name of the identity an image (by content hash) is enrolled under, else ``None``."""
        with self.session() as s:
            row = s.execute(
                select(Identity.name).join(FaceRow, FaceRow.identity_id == Identity.id)
                .join(SourceImage, SourceImage.id == FaceRow.image_id)
                .where(SourceImage.sha256 == sha256).limit(1)).first()
            return None if row is None else row[0]

    def identities(self) -> list[IdentitySummary]:
        """Every identity with its face and image counts, by name."""
        with self.session() as s:
            rows = s.execute(
                select(Identity.id, Identity.name, func.count(FaceRow.id),
                       func.count(func.distinct(FaceRow.image_id)))
                .outerjoin(FaceRow, FaceRow.identity_id == Identity.id)
                .group_by(Identity.id).order_by(Identity.name)).all()
        return [IdentitySummary(int(i), n, int(f), int(im)) for i, n, f, im in rows]

    def identity_names(self) -> dict[int, str]:
        with self.session() as s:
            return {int(i): n for i, n in s.execute(select(Identity.id, Identity.name))}

    def face_owners(self) -> dict[int, str]:
        """Face id -> identity name, for every stored face (no embeddings read)."""
        with self.session() as s:
            return {int(f): n for f, n in s.execute(
                select(FaceRow.id, Identity.name).join(Identity, FaceRow.identity_id == Identity.id))}

    def embeddings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All stored faces: ``(face_ids int64 (N,), identity_ids int64 (N,), embeddings float32 (N, D))``."""
        with self.session() as s:
            rows = s.execute(select(FaceRow.id, FaceRow.identity_id, FaceRow.embedding)
                             .order_by(FaceRow.id)).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        owners = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        if rows:
            vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), -1)
        else:
            vectors = np.zeros((0, self.embedding_dim), dtype=np.float32)
        return ids, owners, vectors.astype(np.float32, copy=True)

    def face_sources(self) -> list[FaceSource]:
        """Every stored face with its identity, source photo and box, by face id."""
        with self.session() as s:
            rows = s.execute(
                select(Identity.name, SourceImage.path, SourceImage.width, FaceRow.x, FaceRow.y, FaceRow.w,
                       FaceRow.h, FaceRow.embedding)
                .join(FaceRow, FaceRow.identity_id == Identity.id)
                .join(SourceImage, SourceImage.id == FaceRow.image_id).order_by(FaceRow.id)).all()
        return [FaceSource(name, path, int(width), (x, y, w, h), np.frombuffer(emb, dtype="<f4").astype(np.float32))
                for name, path, width, x, y, w, h, emb in rows]

    def identity_photo_hashes(self, name: str) -> list[str]:
        """The sha256 of every photo that holds a face of identity ``name``, sorted (none if unknown)."""
        with self.session() as s:
            return sorted(s.scalars(
                select(SourceImage.sha256).distinct().join(FaceRow, FaceRow.image_id == SourceImage.id)
                .join(Identity, Identity.id == FaceRow.identity_id).where(Identity.name == name)))

    def face_photo_hash(self, face_id: int) -> str | None:
        """The sha256 of the photo face ``face_id`` was found in (``None`` for no such face)."""
        with self.session() as s:
            return s.scalar(select(SourceImage.sha256).join(FaceRow, FaceRow.image_id == SourceImage.id)
                            .where(FaceRow.id == face_id))

    def photo_hash_in_use(self, sha256: str | None) -> bool:
        """Whether some stored photo still has content hash ``sha256``."""
        if sha256 is None:
            return False
        with self.session() as s:
            return s.scalar(select(SourceImage.id).where(SourceImage.sha256 == sha256).limit(1)) is not None

    def faces(self, name: str | None = None) -> list[FaceRecord]:
        """The stored faces of identity ``name`` (every face when ``None``), by face id.

        Raises:
            NotFoundError: no identity is called ``name``.
        """
        query = (select(FaceRow.id, Identity.name, SourceImage.path, FaceRow.x, FaceRow.y, FaceRow.w, FaceRow.h,
                        FaceRow.score, FaceRow.quality)
                 .join(Identity, FaceRow.identity_id == Identity.id)
                 .join(SourceImage, SourceImage.id == FaceRow.image_id).order_by(FaceRow.id))
        with self.session() as s:
            if name is not None:
                if s.scalar(select(Identity.id).where(Identity.name == name)) is None:
                    raise NotFoundError(f"no identity named {name!r} in the gallery")
                query = query.where(Identity.name == name)
            rows = s.execute(query).all()
        return [FaceRecord(int(i), n, p, (x, y, w, h), float(sc), float(q)) for i, n, p, x, y, w, h, sc, q in rows]

    def face(self, face_id: int) -> FaceRecord:
        """One stored face by id.

        Raises:
            NotFoundError: no face has that id.
        """
        with self.session() as s:
            row = s.execute(
                select(FaceRow.id, Identity.name, SourceImage.path, FaceRow.x, FaceRow.y, FaceRow.w, FaceRow.h,
                       FaceRow.score, FaceRow.quality)
                .join(Identity, FaceRow.identity_id == Identity.id)
                .join(SourceImage, SourceImage.id == FaceRow.image_id).where(FaceRow.id == face_id)).first()
        if row is None:
            raise NotFoundError(f"no face with id {face_id} in the gallery")
        i, n, p, x, y, w, h, sc, q = row
        return FaceRecord(int(i), n, p, (x, y, w, h), float(sc), float(q))

    def paths_in_use(self, paths: Sequence[str]) -> set[str]:
        """Which of ``paths`` some stored photo still has."""
        with self.session() as s:
            return set(s.scalars(select(SourceImage.path).where(SourceImage.path.in_(list(paths)))))

    def count_faces(self) -> int:
        """How many faces are stored (a full count: for reports, not for every query)."""
        with self.session() as s:
            return int(s.scalar(select(func.count(FaceRow.id))))

    def has_faces(self) -> bool:
        """Whether any face is stored (one index probe, whatever the size)."""
        with self.session() as s:
            return bool(s.scalar(select(exists().where(FaceRow.id.is_not(None)))))

    def face_names(self, face_ids: Sequence[int]) -> dict[int, str]:
        """Identity name of each of ``face_ids`` that still exists (a query's neighbours only)."""
        ids = sorted({int(i) for i in face_ids if i >= 0})
        if not ids:
            return {}
        with self.session() as s:
            return {int(f): n for f, n in s.execute(
                select(FaceRow.id, Identity.name).join(Identity, FaceRow.identity_id == Identity.id)
                .where(FaceRow.id.in_(ids)))}

    def identity_names_of(self, identity_ids: Sequence[int]) -> dict[int, str]:
        """Name of each of ``identity_ids`` that still exists."""
        ids = sorted({int(i) for i in identity_ids if i >= 0})
        if not ids:
            return {}
        with self.session() as s:
            return {int(i): n for i, n in s.execute(select(Identity.id, Identity.name).where(Identity.id.in_(ids)))}

    def face_vectors_of(self, face_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored vectors of those of ``face_ids`` that still exist: ``(face ids int64 (n,),
        vectors float32 (n, D))``, ids ascending (what an approximate search re-ranks with)."""
        return self._vectors_of(FaceRow.id, FaceRow.embedding, face_ids, "<f4")

    def identity_averages_of(self, identity_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The current average embedding (re-normalised) of those of ``identity_ids`` that have
        faces: ``(identity ids int64 (n,), averages float32 (n, D))``, ids ascending."""
        ids, sums = self._vectors_of(Identity.id, Identity.vector_sum, identity_ids, "<f8")
        return ids, normalise(sums)

    def _vectors_of(self, id_column, blob_column, wanted: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
        # Every query of an approximate index comes here with a few hundred ids: one plain SQL
        # statement on a pooled connection costs a fifth of the ORM's (the ids are integers
        # from numpy, written into the statement).
        wanted = np.unique(np.asarray(wanted, np.int64))
        wanted = wanted[wanted >= 0]
        table = id_column.class_.__table__.name
        rows = []
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            for start in range(0, len(wanted), 10_000):
                listed = ",".join(map(str, wanted[start:start + 10_000].tolist()))
                cursor.execute(f"SELECT {id_column.key}, {blob_column.key} FROM {table} "
                               f"WHERE {id_column.key} IN ({listed}) AND {blob_column.key} IS NOT NULL")
                rows += cursor.fetchall()
            cursor.close()
        except Exception as exc:  # the driver's own errors: one line naming the database
            raise GalleryError(f"{self.where}: database error: {one_line(exc)}") from None
        finally:
            connection.close()  # back to the pool
        rows.sort(key=lambda r: r[0])
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, self.embedding_dim), np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=dtype).reshape(len(rows), self.embedding_dim)
        return ids, vectors.astype(np.float32)

    def count_identities(self) -> int:
        """How many identities have faces (a full count: for rebuilds, not for every query)."""
        with self.session() as s:
            return int(s.scalar(select(func.count(Identity.id)).where(Identity.face_count > 0)))

    def sample_identity_averages(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` identity averages chosen at random (float32 (n, D)), e.g. to train an index."""
        with self.session() as s:
            ids = np.asarray(s.scalars(select(Identity.id).where(Identity.face_count > 0)).all(), np.int64)
        chosen = np.random.default_rng(seed).choice(ids, size=min(n, len(ids)), replace=False)
        return self.identity_averages_of(chosen)[1]

    def changes_since(self, generation: int) -> IndexChanges:
        """What an index at ``generation`` lacks: faces stored and removed, identity averages
        changed and identities removed since. Reads only the changed rows."""
        with self.session() as s:
            now = int(s.scalar(select(GalleryState.generation).where(GalleryState.id == 1)))
            # No ORDER BY: SQLite would rather walk the whole table in id order than sort the few
            # rows its generation index finds (seconds at a million faces); sorted below.
            faces = sorted(s.execute(select(FaceRow.id, FaceRow.embedding).where(FaceRow.added_gen > generation)).all())
            removed = s.scalars(select(RemovedFace.face_id).where(RemovedFace.generation > generation)).all()
            idents = sorted(s.execute(select(Identity.id, Identity.vector_sum)
                                      .where(Identity.updated_gen > generation)).all())
            gone = s.scalars(select(RemovedIdentity.identity_id)
                             .where(RemovedIdentity.generation > generation)).all()
        face_ids, face_vectors = self._unpack(faces, "<f4")
        ident_ids, sums = self._unpack([(i, v) for i, v in idents if v is not None], "<f8")
        return IndexChanges(now, face_ids, face_vectors, np.asarray(removed, np.int64), ident_ids,
                            normalise(sums), np.asarray(gone, np.int64))

    def _unpack(self, rows, dtype: str) -> tuple[np.ndarray, np.ndarray]:
        # Row by row into one array: joining the blobs first would hold every vector twice more.
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.empty((len(rows), self.embedding_dim), np.float32)
        for k, row in enumerate(rows):
            vectors[k] = np.frombuffer(row[1], dtype=dtype)
        return ids, vectors

    def iter_face_vectors(self, chunk: int = 4_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored face as ``(face_ids int64 (n,), vectors float32 (n, D))`` chunks of at most
        ``chunk`` rows, by id, so a rebuild holds one chunk at a time."""
        last = -1
        while True:
            with self.session() as s:
                rows = s.execute(select(FaceRow.id, FaceRow.embedding).where(FaceRow.id > last)
                                 .order_by(FaceRow.id).limit(chunk)).all()
            if not rows:
                return
            yield self._unpack(rows, "<f4")
            last = rows[-1][0]

    def iter_identity_averages(self, chunk: int = 4_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every identity with faces as ``(identity_ids int64 (n,), averages float32 (n, D))`` chunks."""
        last = -1
        while True:
            with self.session() as s:
                rows = s.execute(select(Identity.id, Identity.vector_sum)
                                 .where(Identity.id > last, Identity.face_count > 0)
                                 .order_by(Identity.id).limit(chunk)).all()
            if not rows:
                return
            ids, sums = self._unpack(rows, "<f8")
            yield ids, normalise(sums)
            last = rows[-1][0]

    def iter_photos(self, chunk: int = 2_000) -> Iterator[list[tuple[str, str, str, int, int, int, list[NewFace]]]]:
        """Every stored photo with its faces, as :meth:`add_images` takes them: chunks of
        ``(identity_name, path, sha256, size_bytes, width, height, faces)`` by photo id (a photo
        whose faces belong to several identities comes once per identity)."""
        last = -1
        while True:
            with self.session() as s:
                images = s.execute(select(SourceImage.id, SourceImage.path, SourceImage.sha256, SourceImage.size_bytes,
                                          SourceImage.width, SourceImage.height).where(SourceImage.id > last)
                                   .order_by(SourceImage.id).limit(chunk)).all()
                if not images:
                    return
                faces = s.execute(
                    select(FaceRow.image_id, Identity.name, FaceRow.x, FaceRow.y, FaceRow.w, FaceRow.h,
                           FaceRow.landmarks, FaceRow.score, FaceRow.quality, FaceRow.embedding)
                    .join(Identity, Identity.id == FaceRow.identity_id)
                    .where(FaceRow.image_id.in_([i[0] for i in images])).order_by(FaceRow.id)).all()
            by_photo: dict[tuple[int, str], list[NewFace]] = {}
            for image_id, name, x, y, w, h, landmarks, score, quality, blob in faces:
                by_photo.setdefault((image_id, name), []).append(NewFace(
                    (x, y, w, h), np.asarray(json.loads(landmarks), dtype=float), score, quality,
                    np.frombuffer(blob, "<f4").astype(np.float32)))
            info = {i[0]: i[1:] for i in images}
            yield [(name, *info[image_id], found) for (image_id, name), found in by_photo.items()]
            last = images[-1][0]

    def sample_face_vectors(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` stored face vectors chosen at random (float32 (n, D)), e.g. to train an index."""
        with self.session() as s:
            ids = np.asarray(s.scalars(select(FaceRow.id)).all(), np.int64)
        chosen = np.sort(np.random.default_rng(seed).choice(ids, size=min(n, len(ids)), replace=False))
        out = []
        for start in range(0, len(chosen), 10_000):
            part = chosen[start:start + 10_000].tolist()
            with self.session() as s:
                rows = s.execute(select(FaceRow.id, FaceRow.embedding).where(FaceRow.id.in_(part))).all()
            out.append(self._unpack(rows, "<f4")[1])
        return np.concatenate(out) if out else np.zeros((0, self.embedding_dim), np.float32)

    def sample_faces(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` stored faces chosen at random (all when fewer): ``(identity ids int64 (n,),
        vectors float32 (n, D))``, by face id."""
        with self.session() as s:
            ids = np.asarray(s.scalars(select(FaceRow.id)).all(), np.int64)
        chosen = np.sort(np.random.default_rng(seed).choice(ids, size=min(n, len(ids)), replace=False))
        owners, vectors = [], []
        for start in range(0, len(chosen), 10_000):
            part = chosen[start:start + 10_000].tolist()
            with self.session() as s:
                rows = s.execute(select(FaceRow.id, FaceRow.identity_id, FaceRow.embedding)
                                 .where(FaceRow.id.in_(part)).order_by(FaceRow.id)).all()
            owners.append(np.fromiter((r[1] for r in rows), np.int64, count=len(rows)))
            vectors.append(self._unpack([(r[0], r[2]) for r in rows], "<f4")[1])
        if not vectors:
            return np.zeros(0, np.int64), np.zeros((0, self.embedding_dim), np.float32)
        return np.concatenate(owners), np.concatenate(vectors)

    def sample_identity_faces(self, n: int, seed: int = 0, max_faces: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
        """Every face of ``n`` identities chosen at random (all when fewer), at most ``max_faces``
        in all: ``(identity ids int64 (m,), vectors float32 (m, D))``."""
        with self.session() as s:
            idents = np.asarray(s.scalars(select(Identity.id).where(Identity.face_count > 0)).all(), np.int64)
        chosen = np.sort(np.random.default_rng(seed).choice(idents, size=min(n, len(idents)), replace=False))
        owners, vectors, total = [], [], 0
        for start in range(0, len(chosen), 1_000):
            with self.session() as s:
                rows = s.execute(select(FaceRow.id, FaceRow.identity_id, FaceRow.embedding)
                                 .where(FaceRow.identity_id.in_(chosen[start:start + 1_000].tolist()))
                                 .order_by(FaceRow.id).limit(max_faces - total)).all()
            owners.append(np.fromiter((r[1] for r in rows), np.int64, count=len(rows)))
            vectors.append(self._unpack([(r[0], r[2]) for r in rows], "<f4")[1])
            total += len(rows)
            if total >= max_faces:
                break
        if not vectors:
            return np.zeros(0, np.int64), np.zeros((0, self.embedding_dim), np.float32)
        return np.concatenate(owners), np.concatenate(vectors)

    def face_identity_ids(self, face_ids: Sequence[int]) -> dict[int, int]:
        """Identity id of each of ``face_ids`` that still exists."""
        ids = sorted({int(i) for i in face_ids if i >= 0})
        out: dict[int, int] = {}
        for start in range(0, len(ids), 10_000):
            with self.session() as s:
                out.update((int(f), int(o)) for f, o in s.execute(
                    select(FaceRow.id, FaceRow.identity_id).where(FaceRow.id.in_(ids[start:start + 10_000]))))
        return out

    def calibration(self, score: str) -> dict | None:
        """The stored calibration of ``score`` as a dict of :class:`CalibrationRow`'s columns, or ``None``."""
        with self.session() as s:
            row = s.get(CalibrationRow, score)
            if row is None:
                return None
            return {c: getattr(row, c) for c in ("threshold", "fpir", "identities", "method", "samples",
                                                 "strangers", "generation", "note")}

    def set_calibration(self, score: str, values: dict) -> None:
        """Store (or replace) the calibration of ``score``: ``values`` holds :class:`CalibrationRow`'s
        columns. Not a change of faces or identities: the generation is not bumped."""
        with self.session() as s:
            s.execute(delete(CalibrationRow).where(CalibrationRow.score == score))
            s.add(CalibrationRow(score=score, **values))

    # -- writes -----------------------------------------------------------------------------

    def add_images(self, items: Sequence[tuple[str, str, str, int, int, int, Sequence[NewFace]]]) -> list[list[int]]:
        """Store photos and their faces in one transaction.

        Args:
            items: ``(identity_name, path, sha256, size_bytes, width, height, faces)`` each.
        Returns:
            The new face ids, one list per item.
        """
        out: list[list[int]] = []
        with self.session() as s:
            generation = self._bump(s)
            for name, path, sha, size, width, height, faces in items:
                identity = s.scalar(select(Identity).where(Identity.name == name))
                if identity is None:
                    identity = Identity(name=name)
                    s.add(identity)
                image = SourceImage(path=path, sha256=sha, size_bytes=size, width=width, height=height)
                s.add(image)
                rows = []
                for f in faces:
                    emb = np.asarray(f.embedding, dtype="<f4")
                    if emb.shape != (self.embedding_dim,):
                        raise ValueError(f"embedding has shape {emb.shape}, expected ({self.embedding_dim},)")
                    rows.append(FaceRow(
                        image=image, identity=identity, x=float(f.box[0]), y=float(f.box[1]),
                        w=float(f.box[2]), h=float(f.box[3]),
                        landmarks=json.dumps(np.round(np.asarray(f.landmarks, dtype=float), 2).tolist()),
                        score=float(f.score), quality=float(f.quality), embedding=emb.tobytes(),
                        added_gen=generation))
                s.add_all(rows)
                s.flush()
                if faces:
                    self._add_to_sums(s, identity, np.stack([np.asarray(f.embedding) for f in faces]), generation)
                out.append([r.id for r in rows])
        return out

    def add_vectors(self, names: Sequence[str], vectors: np.ndarray, *, source: str = "synthetic",
                    chunk: int = 20_000) -> int:
        """Store faces without a photo: one vector (float32 (D,)) per name, each under a placeholder
        photo row (path ``<source>:<n>``, 0x0 pixels), in one transaction, with bulk statements
        (a million synthetic faces for benchmarks). Returns how many."""
        vectors = np.asarray(vectors, dtype="<f4").reshape(len(names), self.embedding_dim)
        wanted = sorted(set(names))
        position = {n: k for k, n in enumerate(wanted)}
        # Each name's sum and count first, so a new identity is inserted whole: inserting it
        # without its 4 KB sum and adding that after would grow every row in place and split
        # the table's pages, leaving them half empty (docs/benchmarks.md, "Gallery scale").
        _, sums, counts = group_sums(np.array([position[n] for n in names], np.int64), vectors)
        with self.session() as s:
            generation = self._bump(s)
            known = dict(s.execute(select(Identity.name, Identity.id).where(Identity.name.in_(wanted))).all())
            old = {i: (blob, c) for i, blob, c in s.execute(
                select(Identity.id, Identity.vector_sum, Identity.face_count)
                .where(Identity.id.in_(list(known.values()))))} if known else {}
            updates = []
            for name, identity_id in known.items():
                blob, count = old[identity_id]
                k = position[name]
                total = sums[k] + (np.frombuffer(blob, dtype="<f8") if blob is not None else 0.0)
                updates.append({"i": identity_id, "s": total.astype("<f8").tobytes(),
                                "c": (count or 0) + int(counts[k]), "g": generation})
            if updates:
                s.execute(text("UPDATE identities SET vector_sum = :s, face_count = :c, updated_gen = :g "
                               "WHERE id = :i"), updates)
            new = [n for n in wanted if n not in known]
            if new:
                s.execute(insert(Identity), [
                    {"name": n, "vector_sum": sums[position[n]].astype("<f8").tobytes(),
                     "face_count": int(counts[position[n]]), "updated_gen": generation} for n in new])
                known.update(s.execute(select(Identity.name, Identity.id).where(Identity.name.in_(new))).all())
            first = int(s.scalar(select(func.coalesce(func.max(SourceImage.id), 0)))) + 1
            for start in range(0, len(names), chunk):
                part = range(start, min(start + chunk, len(names)))
                # Core inserts of the tables: the ORM's bulk path costs more than SQLite here.
                s.execute(insert(SourceImage.__table__), [
                    {"id": first + i, "path": f"{source}:{first + i}", "sha256": f"{source}:{first + i}",
                     "size_bytes": 0, "width": 0, "height": 0} for i in part])
                s.execute(insert(FaceRow.__table__), [
                    {"image_id": first + i, "identity_id": known[names[i]], "x": 0.0, "y": 0.0, "w": 0.0, "h": 0.0,
                     "landmarks": "[]", "score": 1.0, "quality": 0.0, "embedding": vectors[i].tobytes(),
                     "added_gen": generation} for i in part])
        return len(names)

    def remove_identity(self, name: str) -> int:
        """Delete an identity, its faces and the photos left without faces. Returns faces removed."""
        with self.session() as s:
            identity = s.scalar(select(Identity).where(Identity.name == name))
            if identity is None:
                raise NotFoundError(f"no identity named {name!r} in the gallery")
            generation = self._bump(s)
            image_ids = {f.image_id for f in identity.faces}
            face_ids = [f.id for f in identity.faces]
            self._tombstone_faces(s, face_ids, generation)
            self._tombstone_identity(s, identity.id, generation)
            s.delete(identity)
            s.flush()
            for image_id in image_ids:
                if not s.scalar(select(func.count(FaceRow.id)).where(FaceRow.image_id == image_id)):
                    s.delete(s.get(SourceImage, image_id))
        return len(face_ids)

    def checkpoint(self) -> bool:
        """Copy SQLite's write-ahead log into the database file and empty the log.

        Deleted rows are zeroed in the database (``secure_delete``), but the log still holds
        the pages as they were written until it is truncated. Returns False when a reader kept
        the log from being emptied (it is emptied by a later checkpoint); True otherwise,
        and always for other databases.
        """
        if self.engine.dialect.name != "sqlite":
            return True
        try:
            with self.engine.connect() as connection:
                busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        except SQLAlchemyError as exc:
            raise GalleryError(f"{self.where}: database error: {_reason(exc)}") from None
        return not busy

    def remove_face(self, face_id: int) -> tuple[str, int]:
        """Delete one face; its photo goes when no other face uses it, its identity when it had no
        other face. The face is tombstoned and its vector leaves its identity's sum, as for any
        removal. Returns ``(identity name, faces the identity has left)``.

        Raises:
            NotFoundError: no face has that id.
        """
        with self.session() as s:
            face = s.get(FaceRow, face_id)
            if face is None:
                raise NotFoundError(f"no face with id {face_id} in the gallery")
            name = face.identity.name
            left = self._remove_faces(s, [face_id], self._bump(s))
        return name, left[name]

    def _remove_faces(self, s: Session, face_ids: Sequence[int], generation: int) -> dict[str, int]:
        """Delete the faces ``face_ids`` in the open session: tombstoned, their vectors out of their
        identities' sums, each identity gone with its last face and each photo with its last face.
        Returns the faces each touched identity has left, by name (0: it is gone)."""
        found = s.execute(select(FaceRow.id, FaceRow.identity_id, FaceRow.image_id, FaceRow.embedding)
                          .where(FaceRow.id.in_(list(face_ids)))).all()
        if not found:
            return {}
        self._tombstone_faces(s, [r[0] for r in found], generation)
        s.execute(delete(FaceRow).where(FaceRow.id.in_([r[0] for r in found])))
        removed: dict[int, list[np.ndarray]] = {}
        for _, identity_id, _, blob in found:
            removed.setdefault(identity_id, []).append(np.frombuffer(blob, "<f4").astype(np.float64))
        left_by_name = {}
        for identity_id, vectors in removed.items():
            identity = s.get(Identity, identity_id)
            left = int(s.scalar(select(func.count(FaceRow.id)).where(FaceRow.identity_id == identity_id)))
            left_by_name[identity.name] = left
            if not left:
                self._tombstone_identity(s, identity_id, generation)
                s.delete(identity)
                continue
            if identity.vector_sum is not None:
                total = np.frombuffer(identity.vector_sum, "<f8") - np.sum(vectors, axis=0)
                identity.vector_sum = total.astype("<f8").tobytes()
            identity.face_count, identity.updated_gen = left, generation
        s.flush()
        for image_id in {r[2] for r in found}:
            if not s.scalar(select(func.count(FaceRow.id)).where(FaceRow.image_id == image_id)):
                s.execute(delete(SourceImage).where(SourceImage.id == image_id))
        return left_by_name

    def rename_identity(self, old: str, new: str) -> None:
        """Rename ``old`` to ``new``; if ``new`` exists, ``old``'s faces are merged into it."""
        new = new.strip()
        if not new:
            raise GalleryError("the new name is empty")
        with self.session() as s:
            identity = s.scalar(select(Identity).where(Identity.name == old))
            if identity is None:
                raise NotFoundError(f"no identity named {old!r} in the gallery")
            target = s.scalar(select(Identity).where(Identity.name == new))
            # A rename changes no vector (names are looked up per query), but it is a change:
            # classifiers trained before it are stale.
            generation = self._bump(s)
            if target is None:
                identity.name = new
            elif target.id != identity.id:
                s.execute(update(FaceRow).where(FaceRow.identity_id == identity.id).values(identity_id=target.id))
                if identity.vector_sum is not None:
                    merged = np.frombuffer(identity.vector_sum, dtype="<f8")
                    target.vector_sum = (merged + (np.frombuffer(target.vector_sum, dtype="<f8")
                                                   if target.vector_sum is not None else 0)).astype("<f8").tobytes()
                target.face_count = (target.face_count or 0) + (identity.face_count or 0)
                target.updated_gen = generation
                self._tombstone_identity(s, identity.id, generation)
                s.expire(identity)
                s.delete(identity)

    # -- API keys (not gallery content: no generation bump) ------------------------------------

    def add_api_key(self, key_id: str, name: str, role: str, salt: str, key_hash: str, *,
                    created_at: dt.datetime | None = None, revoked_at: dt.datetime | None = None) -> ApiKeyRecord:
        """Store a key (``created_at`` now unless given, as when a gallery is copied)."""
        with self.session() as s:
            row = ApiKey(key_id=key_id, name=name, role=role, salt=salt, key_hash=key_hash, revoked_at=revoked_at,
                         **({"created_at": created_at} if created_at is not None else {}))
            s.add(row)
            s.flush()
            return _key_record(row)

    def api_keys(self) -> list[ApiKeyRecord]:
        """Every key ever created, revoked ones too, oldest first."""
        with self.session() as s:
            return [_key_record(r) for r in s.scalars(select(ApiKey).order_by(ApiKey.id))]

    def api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
            return None if row is None else _key_record(row)

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Mark a key revoked (kept, so ``keys list`` still shows it). Revoking twice keeps the first date.

        Raises:
            NotFoundError: no key has that id.
        """
        with self.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
            if row is None:
                raise NotFoundError(f"no API key with id {key_id!r} in the gallery")
            if row.revoked_at is None:
                row.revoked_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            s.flush()
            return _key_record(row)

    def count_active_api_keys(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count(ApiKey.id)).where(ApiKey.revoked_at.is_(None))))


def _key_record(row: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(row.key_id, row.name, row.role, row.salt, row.key_hash, row.created_at, row.revoked_at)
