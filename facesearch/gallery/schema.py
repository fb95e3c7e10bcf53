"""The gallery's tables (SQLAlchemy ORM): identities, source photos, faces with their embeddings,
one row of gallery state (embedding model, change counter), the calibrated threshold, the
server's API keys, and the faces found by scanning a photo library (``facesearch scan``) with
their candidate people and the user's feedback (:mod:`facesearch.gallery.people`).

Changing a table here needs a new Alembic revision in ``migrations/versions/`` (see
:mod:`facesearch.gallery.revisions`), so that galleries made by earlier releases are upgraded.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: The Alembic revision these tables are (the newest script in ``migrations/versions/``; a test
#: keeps the two equal). Opening a gallery at this revision needs no Alembic at all.
REVISION = "0007"

#: Written into ``gallery_state.schema_version`` by 0.1.0, which had no migrations. The schema's
#: revision is now Alembic's (:mod:`facesearch.gallery.revisions`); the column keeps this value so
#: that a 0.1.0 reader of a newer gallery still finds what it expects.
SCHEMA_VERSION = 1


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class GalleryState(Base):
    """One row: which embedding model the gallery uses, and its change counter."""

    __tablename__ = "gallery_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schema_version: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[str] = mapped_column(String(128))
    embedding_dim: Mapped[int] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


class Identity(Base):
    """A person. ``vector_sum`` (float64 (D,), little-endian) and ``face_count`` keep the sum of
    their faces' embeddings, so their average is updated by each write instead of re-read;
    ``updated_gen`` is the generation at which that average last changed."""

    __tablename__ = "identities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    vector_sum: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    face_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_gen: Mapped[int] = mapped_column(Integer, default=0, server_default="0", index=True)
    faces: Mapped[list["FaceRow"]] = relationship(back_populates="identity", cascade="all, delete-orphan")


class SourceImage(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4096))
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    enrolled_at: Mapped[dt.datetime] = mapped_column(default=_now)
    faces: Mapped[list["FaceRow"]] = relationship(back_populates="image", cascade="all, delete-orphan")


class FaceRow(Base):
    __tablename__ = "faces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    landmarks: Mapped[str] = mapped_column(String(512))  # JSON [[x, y] * 5]
    score: Mapped[float] = mapped_column(Float)
    quality: Mapped[float] = mapped_column(Float)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    #: The generation that stored this face: an index at an older generation lacks it.
    added_gen: Mapped[int] = mapped_column(Integer, default=0, server_default="0", index=True)
    image: Mapped[SourceImage] = relationship(back_populates="faces")
    identity: Mapped[Identity] = relationship(back_populates="faces")


class RemovedFace(Base):
    """A face deleted at ``generation``: an index older than that still holds it and must drop it."""

    __tablename__ = "removed_faces"
    face_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer, index=True)


class RemovedIdentity(Base):
    """An identity deleted (or merged into another) at ``generation``: its average leaves the index."""

    __tablename__ = "removed_identities"
    identity_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer, index=True)


class ApiKey(Base):
    """A key for the HTTP API (``facesearch keys``). Only a salted scrypt hash of its secret is kept
    (:mod:`facesearch.gallery.api_keys`); ``key_id`` is the public part that finds the row."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # "read" or "write"
    salt: Mapped[str] = mapped_column(String(64))  # hex
    key_hash: Mapped[str] = mapped_column(String(128))  # hex scrypt digest of the secret
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class CalibrationRow(Base):
    """The threshold calibrated to this gallery for one kind of score (see
    :mod:`facesearch.search.calibration`): the target FPIR, the number of identities it was
    computed for and how it was estimated."""

    __tablename__ = "calibrations"
    score: Mapped[str] = mapped_column(String(32), primary_key=True)
    threshold: Mapped[float] = mapped_column(Float)
    fpir: Mapped[float] = mapped_column(Float)
    identities: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(32))
    samples: Mapped[int] = mapped_column(Integer, default=0)
    strangers: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


class ScannedPhoto(Base):
    """A photo of a scanned library, by content: scanning it again costs nothing."""

    __tablename__ = "scanned_photos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4096))
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    scanned_at: Mapped[dt.datetime] = mapped_column(default=_now)


class PeopleCluster(Base):
    """A candidate person: scanned unknown faces that look alike. Ids are never reused
    (``sqlite_autoincrement``), so an action log entry names the cluster it acted on for good."""

    __tablename__ = "people_clusters"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


class ScannedFace(Base):
    """One face of a scanned photo. ``state`` says what it is: ``unknown`` (``cluster_id`` its
    candidate person, or none while it waits), ``identified`` (matched to ``identity_id`` at the
    calibrated threshold; not enrolled), or ``named`` (enrolled as ``identity_id`` through
    ``people name``: ``enrolled_face_id`` is the gallery face made from it). Only named faces are
    in the gallery's faces, so unknown ones never answer a query nor move an identity's average.
    Ids are never reused (``sqlite_autoincrement``): undo and clustering name faces by id."""

    __tablename__ = "scanned_faces"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("scanned_photos.id", ondelete="CASCADE"), index=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    landmarks: Mapped[str] = mapped_column(String(512))  # JSON [[x, y] * 5]
    score: Mapped[float] = mapped_column(Float)
    quality: Mapped[float] = mapped_column(Float)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    state: Mapped[str] = mapped_column(String(16), index=True)
    similarity: Mapped[float | None] = mapped_column(Float, nullable=True)
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("identities.id", ondelete="SET NULL"),
                                                    nullable=True, index=True)
    enrolled_face_id: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="SET NULL"),
                                                         nullable=True, index=True)
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("people_clusters.id", ondelete="SET NULL"),
                                                   nullable=True, index=True)


class PeopleAction(Base):
    """One step of ``facesearch people`` (name, not, split, recluster), with what undoing it needs
    (``payload``, JSON); ``undone_at`` is set once it has been undone."""

    __tablename__ = "people_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    undone_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class PeopleConstraint(Base):
    """Negative feedback: face ``face_id`` is not the same person as face ``other_face_id`` (a
    split), or not identity ``identity_id`` (``people not``). Deleted with the action that made it
    when that is undone."""

    __tablename__ = "people_constraints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("scanned_faces.id", ondelete="CASCADE"), index=True)
    other_face_id: Mapped[int | None] = mapped_column(ForeignKey("scanned_faces.id", ondelete="CASCADE"),
                                                      nullable=True, index=True)
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"),
                                                    nullable=True, index=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("people_actions.id", ondelete="CASCADE"), index=True)
