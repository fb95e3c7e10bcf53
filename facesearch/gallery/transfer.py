"""Copying a gallery to another backend (``facesearch migrate --to``), and checking the copy.

Every photo row with its faces (boxes, landmarks, scores, embeddings) and identity is copied in
chunks, each one transaction of the destination, whose vectors (FAISS files, pgvector columns,
a Milvus collection) follow as they do for any write; then the API keys. The destination must
be empty. The copy is then checked: the same identities with the same face and photo counts, and
the same answers from both matchers on a random sample of stored faces. Face and identity ids
are the destination's own; names, photos and vectors are what carries over.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sqlalchemy.engine import make_url

from facesearch.errors import GalleryError
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

if TYPE_CHECKING:
    from facesearch.gallery.facade import Gallery

#: Stored faces whose answers are compared after a copy, by default.
SAMPLE = 200
#: Similarities may differ by float32 rounding between engines.
SIMILARITY_TOLERANCE = 1e-4


@dataclass
class CopyReport:
    """What a copy moved and how its check went."""

    source: str
    destination: str
    identities: int = 0
    photos: int = 0
    faces: int = 0
    api_keys: int = 0
    checked: int = 0
    differences: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"source": self.source, "destination": self.destination, "identities": self.identities,
                "photos": self.photos, "faces": self.faces, "api_keys": self.api_keys,
                "checked_faces": self.checked, "same_answers": not self.differences}


def where(gallery: "Gallery") -> str:
    """How messages name a gallery: its database URL without password, and its vector store if not its files."""
    vectors = getattr(gallery.vectors, "where", None)
    return gallery.store.where + (f" + {vectors}" if vectors else "")


def destination_settings(to: str, *, source_home: Path, home: str | os.PathLike | None = None) -> dict:
    """``Gallery`` arguments for ``migrate --to``: a folder is an embedded gallery there; a database
    URL is used as it is, with ``home`` (default: the SQLite file's folder, or the source's home for
    a server database, where only the writer lock of an SQLite gallery would be kept)."""
    if "://" not in to:
        return {"home": Path(to), "db_url": None}
    url = make_url(to)
    if home is None:
        home = Path(url.database).resolve().parent if url.get_backend_name() == "sqlite" and url.database else source_home
    return {"home": Path(home), "db_url": to}


def ensure_empty(dest: "Gallery") -> None:
    """Raise :class:`GalleryError` unless ``dest`` holds no face, identity or API key."""
    if not dest.is_empty() or dest.names() or dest.api_keys():
        raise GalleryError(f"{where(dest)}: the destination already holds a gallery; migrate copies into an "
                           "empty one")


def copy_photos(source: "Gallery", dest: "Gallery", report: CopyReport,
                progress: Callable[[int], None] | None = None) -> None:
    """Copy every photo with its faces and identity, then the API keys, into the empty ``dest``."""
    ensure_empty(dest)
    for chunk in source.store.iter_photos():
        dest.store.add_images(chunk)
        faces = sum(len(item[6]) for item in chunk)
        report.photos += len({item[2] for item in chunk})
        report.faces += faces
        if progress:
            progress(faces)
    for key in source.store.api_keys():
        dest.store.add_api_key(key.key_id, key.name, key.role, key.salt, key.key_hash, created_at=key.created_at,
                               revoked_at=key.revoked_at)
        report.api_keys += 1
    report.identities = len(dest.names())


def check_copy(source: "Gallery", dest: "Gallery", report: CopyReport, sample: int = SAMPLE) -> None:
    """Compare counts and answers; what differs goes into ``report.differences``."""
    if source.identities() != dest.identities():
        report.differences.append("identities or their face and photo counts differ")
    vectors = source.store.sample_face_vectors(sample)
    report.checked = len(vectors)
    if not len(vectors):
        return
    for matcher in ("knn", "centroid"):
        here = source.matcher(matcher).identify(vectors)
        there = dest.matcher(matcher).identify(vectors)
        for row, (a, b) in enumerate(zip(here, there)):
            same = (a.identity == b.identity and [c.identity for c in a.candidates] == [c.identity for c in b.candidates]
                    and np.allclose([c.similarity for c in a.candidates], [c.similarity for c in b.candidates],
                                    atol=SIMILARITY_TOLERANCE))
            if not same:
                report.differences.append(f"{matcher} answers differ for sampled face {row}")
