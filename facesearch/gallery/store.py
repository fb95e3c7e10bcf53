"""The gallery's metadata and embeddings in a relational database (SQLAlchemy).

The database is the source of truth: it holds every face's embedding, so the FAISS files can
always be rebuilt from it. Each change runs in one transaction and bumps a ``generation``
counter; an index whose recorded generation differs is stale and gets rebuilt.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from facesearch.errors import GalleryError, NotFoundError, one_line
from facesearch.gallery.revisions import upgrade as upgrade_schema
from facesearch.gallery.schema import SCHEMA_VERSION, ApiKey, FaceRow, GalleryState, Identity, SourceImage

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


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets a second process read while one enrolls, and a killed writer leaves the last
    # committed state intact; foreign keys make deletes cascade.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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
    """

    def __init__(self, url: str, *, model_id: str, embedding_dim: int) -> None:
        self.url = url
        self.where = masked_url(url)
        try:
            self.engine: Engine = create_engine(url)
        except (ArgumentError, ValueError) as exc:
            raise GalleryError(f"{self.where}: not a database URL ({one_line(exc)})") from None
        except ImportError as exc:  # the URL names a driver that is not installed
            raise GalleryError(f"{self.where}: database driver not installed ({one_line(exc)})") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            upgrade_schema(self.engine, self.where)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise GalleryError(f"{self.where}: cannot open the gallery database: {_reason(exc)}") from None
        with self.session() as s:
            state = s.get(GalleryState, 1)
            if state is None:
                s.add(GalleryState(id=1, schema_version=SCHEMA_VERSION, model_id=model_id,
                                   embedding_dim=embedding_dim, generation=0))
            elif state.model_id != model_id or state.embedding_dim != embedding_dim:
                raise GalleryError(
                    f"{self.where}: gallery was built with {state.model_id} ({state.embedding_dim}-d), "
                    f"not {model_id} ({embedding_dim}-d); use another --home or re-enroll")
        self.model_id = model_id
        self.embedding_dim = embedding_dim

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any exception.

        Database failures (locked, unreachable, corrupt, a constraint broken by another writer)
        become one :class:`GalleryError` line naming the database without its password.
        """
        try:
            with self._sessions.begin() as s:
                yield s
        except SQLAlchemyError as exc:
            raise GalleryError(f"{self.where}: database error: {_reason(exc)}") from None

    @staticmethod
    def _bump(s: Session) -> None:
        s.execute(text("UPDATE gallery_state SET generation = generation + 1 WHERE id = 1"))

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
        with self.session() as s:
            return int(s.scalar(select(func.count(FaceRow.id))))

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
                        score=float(f.score), quality=float(f.quality), embedding=emb.tobytes()))
                s.add_all(rows)
                s.flush()
                out.append([r.id for r in rows])
            self._bump(s)
        return out

    def remove_identity(self, name: str) -> int:
        """Delete an identity, its faces and the photos left without faces. Returns faces removed."""
        with self.session() as s:
            identity = s.scalar(select(Identity).where(Identity.name == name))
            if identity is None:
                raise NotFoundError(f"no identity named {name!r} in the gallery")
            image_ids = {f.image_id for f in identity.faces}
            removed = len(identity.faces)
            s.delete(identity)
            s.flush()
            for image_id in image_ids:
                if not s.scalar(select(func.count(FaceRow.id)).where(FaceRow.image_id == image_id)):
                    s.delete(s.get(SourceImage, image_id))
            self._bump(s)
        return removed

    def remove_face(self, face_id: int) -> tuple[str, int]:
        """Delete one face; its photo goes when no other face uses it, its identity when it had no
        other face. Returns ``(identity name, faces the identity has left)``.

        Raises:
            NotFoundError: no face has that id.
        """
        with self.session() as s:
            face = s.get(FaceRow, face_id)
            if face is None:
                raise NotFoundError(f"no face with id {face_id} in the gallery")
            identity, image_id = face.identity, face.image_id
            s.delete(face)
            s.flush()
            if not s.scalar(select(func.count(FaceRow.id)).where(FaceRow.image_id == image_id)):
                s.delete(s.get(SourceImage, image_id))
            left = int(s.scalar(select(func.count(FaceRow.id)).where(FaceRow.identity_id == identity.id)))
            name = identity.name
            if not left:
                s.delete(identity)
            self._bump(s)
        return name, left

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
            if target is None:
                identity.name = new
            elif target.id != identity.id:
                for face in list(identity.faces):
                    face.identity = target
                s.flush()
                s.delete(identity)
            self._bump(s)

    # -- API keys (not gallery content: no generation bump) ------------------------------------

    def add_api_key(self, key_id: str, name: str, role: str, salt: str, key_hash: str) -> ApiKeyRecord:
        with self.session() as s:
            row = ApiKey(key_id=key_id, name=name, role=role, salt=salt, key_hash=key_hash)
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
