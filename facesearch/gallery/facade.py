"""The library's front door: a gallery of enrolled people you can query.

    >>> from facesearch import Gallery
    >>> g = Gallery("~/celebs")                      # holds index/ and db/
    >>> report = g.enroll(["photos/"])               # photos/<name>/*.jpg
    >>> for face in g.query("group.jpg")[0].faces:
    ...     print(face.box, face.match.identity, face.match.similarity)

A gallery is a folder (``home``) with ``db/gallery.sqlite`` (identities, photos, faces and
their embeddings: the source of truth) and ``index/`` (FAISS files derived from it). Both hold
biometric data, so they are private to their owner: folders 0700 and files 0600 whatever the
umask (``home`` too when facesearch creates it), and an older, looser gallery is tightened
when it is opened (see :mod:`facesearch.permissions`).
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from facesearch.models.analysis import Face, FaceAnalysis
from facesearch.models.face_cache import FaceCache, forget
from facesearch.errors import GalleryError
from facesearch.paths import default_home, faces_cache_dir
from facesearch.permissions import PRIVATE_DIR, make_dirs, tighten
from facesearch.imaging.decode import IMAGE_EXTENSIONS, iter_image_files, load_image, not_regular_reason
from facesearch.models.photo_faces import CHUNK, PhotoError, analyse_photos, hash_photo
from facesearch.search.faiss_index import GalleryIndex, kind_for
from facesearch.search.answers import DEFAULT_THRESHOLD, Match
from facesearch.gallery.store import NewFace, Store
from facesearch.gallery import interchange
from facesearch.gallery.lock import LOCK_FILE, WriterLock

log = logging.getLogger(__name__)

DB_FILE = "gallery.sqlite"
#: Galleries up to this many faces rewrite their index files after every write (cheap), so the
#: files always match the database; larger ones keep recent changes in the database's change
#: records until CHECKPOINT_CHANGES have piled up, so one write costs what it changes.
SMALL_GALLERY = 20_000
CHECKPOINT_CHANGES = 5_000


@dataclass
class EnrollReport:
    """What an enrollment did. Paths are strings as given."""

    enrolled: list[tuple[str, str]] = field(default_factory=list)      # (path, identity)
    duplicates: list[tuple[str, str]] = field(default_factory=list)    # (path, identity it is under)
    no_face: list[str] = field(default_factory=list)
    multiple_faces: list[tuple[str, int]] = field(default_factory=list)  # (path, faces found); largest kept
    errors: list[tuple[str, str]] = field(default_factory=list)        # (path, one-line reason)

    @property
    def identities(self) -> list[str]:
        return sorted({name for _, name in self.enrolled})

    def as_dict(self) -> dict:
        return {
            "enrolled": [{"path": p, "identity": n} for p, n in self.enrolled],
            "duplicates": [{"path": p, "identity": n} for p, n in self.duplicates],
            "no_face": list(self.no_face),
            "multiple_faces": [{"path": p, "faces": n} for p, n in self.multiple_faces],
            "errors": [{"path": p, "error": e} for p, e in self.errors],
            "identities": self.identities,
        }


@dataclass
class FaceMatch:
    """One face of a queried photo and who it is."""

    face: Face
    match: Match

    def as_dict(self) -> dict:
        return {"box": [int(round(v)) for v in self.face.box], "score": round(self.face.score, 4),
                **self.match.as_dict()}


@dataclass
class QueryResult:
    image: str | None
    faces: list[FaceMatch]

    def as_dict(self) -> dict:
        return {"image": self.image, "faces": [f.as_dict() for f in self.faces]}

    def labelled_boxes(self) -> list[tuple[tuple[float, float, float, float], str | None, float]]:
        """``(box, identity or None, similarity)`` per face, what :mod:`facesearch.imaging.annotate` draws."""
        return [(f.face.box, f.match.identity, f.match.similarity) for f in self.faces]


def collect_photos(paths: Sequence[str | os.PathLike], name: str | None) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Expand enrollment arguments into ``(photo, identity)`` pairs, plus ``(path, reason)`` errors.

    With ``name``, every path is a photo of that person or a folder of them. Without it,
    every path is a folder holding one sub-folder of photos per identity. Nothing is opened
    here: a FIFO, socket or device among the photos is refused when it is hashed.
    """
    items: list[tuple[Path, str]] = []
    errors: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            errors.append((str(raw), "no such file or folder"))
        elif name is not None:
            photos = iter_image_files(path) if path.is_dir() else [path]
            if not photos:
                errors.append((str(raw), "folder holds no photos"))
            items += [(p, name) for p in photos]
        elif not path.is_dir():
            errors.append((str(raw), not_regular_reason(path) or "a single photo needs --name NAME"))
        else:
            subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            loose = [p for p in path.iterdir() if not p.is_dir() and p.suffix.lower() in IMAGE_EXTENSIONS]
            for p in sorted(loose):
                errors.append((str(p), "photo is not inside an identity folder; use --name NAME"))
            if not subdirs and not loose:
                errors.append((str(raw), "folder holds no identity sub-folders"))
            for sub in subdirs:
                items += [(p, sub.name) for p in iter_image_files(sub)]
    return items, errors


class Gallery:
    """A folder of enrolled people.

    Args:
        home: gallery folder (default :func:`facesearch.paths.default_home`); holds ``db/`` and ``index/``.
        db_url: any SQLAlchemy URL instead of ``sqlite:///<home>/db/gallery.sqlite``.
        analysis: the :class:`FaceAnalysis` to use (default settings if omitted; models load
            on first use), or any object with its ``get_batch`` / ``settings`` / ``model_id``
            / ``dim`` (dlib's pipeline in benchmarks). A gallery keeps the model it was
            created with.
        cache: folder of the per-photo face cache used by enrollment, ``None`` for the default
            (under the model cache folder), ``False`` to disable it.
        wait: when another process is writing this gallery, wait for it (default) or fail at
            once with :class:`GalleryError`.
        on_wait: called once with a one-line message when a write has to wait.
    """

    def __init__(self, home: str | os.PathLike | None = None, *, db_url: str | None = None,
                 analysis: FaceAnalysis | None = None, cache: str | os.PathLike | bool | None = None,
                 wait: bool = True, on_wait: Callable[[str], None] | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.index_dir = self.home / "index"
        self._make_private(db_url is None)
        if db_url is None:
            db_url = f"sqlite:///{(self.home / 'db' / DB_FILE).resolve()}"
        self.analysis = analysis or FaceAnalysis()
        # The analysis names the model: a gallery refuses to open with another one (store.py).
        self.model_id = self.analysis.model_id
        self.dim = self.analysis.dim
        self.store = Store(db_url, model_id=self.model_id, embedding_dim=self.dim)
        if cache is False:
            self._cache_root = None
        else:
            self._cache_root = Path(cache) if cache not in (None, True) else faces_cache_dir()
        self._lock = WriterLock(self.index_dir / LOCK_FILE, wait=wait, on_wait=on_wait)
        self._index: GalleryIndex | None = None
        # Fitted matchers by their parameters, for the current index object (which is brought
        # up to date in place, so they stay valid until it is replaced).
        self._matchers: dict[tuple, object] = {}
        self._warned_outgrown = False

    def __repr__(self) -> str:
        return f"Gallery({str(self.home)!r})"

    def _make_private(self, local_db: bool) -> None:
        # The folders above home keep the umask's mode; home itself, if new, db/ and index/
        # are 0700. One chmod pass over db/ and index/ tightens a gallery made by an older version.
        if local_db and os.path.isfile(self.home / "db" / DB_FILE) and not os.access(self.home / "db", os.W_OK):
            return  # a gallery this process may only read: change nothing
        self.home.parent.mkdir(parents=True, exist_ok=True)
        if local_db:
            make_dirs(self.home / "db", PRIVATE_DIR)
            tighten(self.home / "db")
        tighten(self.index_dir)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- index ------------------------------------------------------------------------------

    def _load_index(self) -> GalleryIndex:
        """The index as of the database's current generation, for reading: the saved files
        (memory-mapped) plus the changes recorded since they were written, applied in memory.
        Never writes; without usable files it is built in memory from the database."""
        generation = self.store.generation()
        index = self._index
        if index is None:
            index = GalleryIndex.load(self.index_dir, model_id=self.model_id)
            if index is not None and (index.generation > generation or index.database != self.store.identity):
                log.info("%s: the index files belong to another database state; rebuilding", self.index_dir)
                index = None
            if index is None:
                index = self._build_index()
            self._set_index(index)
        if index.generation < generation:
            index.apply(self.store.changes_since(index.generation))
        return index

    def _set_index(self, index: GalleryIndex) -> None:
        index.database = self.store.identity
        # An approximate index re-ranks its candidates with the vectors the database holds.
        index.use_exact(self.store.face_vectors_of, self.store.identity_averages_of)
        self._index = index
        self._matchers.clear()

    def _build_index(self, progress: Callable[[int], None] | None = None) -> GalleryIndex:
        # Read the generation first: whatever changes while the chunks stream in is recorded
        # after it and applied on top (applying a change twice is harmless).
        generation = self.store.generation()
        faces = self.store.count_faces()
        index = GalleryIndex.build(self.store.iter_face_vectors(), self.store.iter_identity_averages(),
                                   faces=faces, generation=generation, model_id=self.model_id, dim=self.dim,
                                   kind=kind_for(faces), train_sample=self.store.sample_face_vectors,
                                   progress=progress, identities=self.store.count_identities(),
                                   identity_sample=self.store.sample_identity_averages)
        index.database = self.store.identity
        index.use_exact(self.store.face_vectors_of, self.store.identity_averages_of)
        index.apply(self.store.changes_since(generation))
        return index

    def reindex(self, *, progress: Callable[[int], None] | None = None,
                on_total: Callable[[int], None] | None = None) -> GalleryIndex:
        """Rebuild both indexes from the database, choosing the index kind for the gallery's size,
        and save them. Returns the new index.

        The build streams the stored faces in chunks (memory: the index plus one chunk) and
        holds no lock, so queries and writes go on meanwhile; only the swap (catching up with
        what changed during the build, then replacing the files atomically) takes the writer lock.
        """
        if on_total:
            on_total(self.store.count_faces())
        index = self._build_index(progress)
        with self._lock.held():
            index.apply(self.store.changes_since(index.generation))
            index.save(self.index_dir)
            self._set_index(index)
        return index

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the writer lock for one write, then bring the index files up to date if it is due."""
        with self._lock.held():
            yield
            self._save_index_if_due(final=True)

    def _index_for_writing(self) -> GalleryIndex:
        # Called under the writer lock, so the files on disk cannot change meanwhile; if another
        # writer replaced them since this process read them, start again from theirs (folding
        # our view of the changes into their newer files would add some twice).
        if self._index is not None and self._index.folder == self.index_dir and \
                GalleryIndex.saved_generation(self.index_dir) != self._index.base_generation:
            self._index = None
        return self._load_index()

    def _save_index_if_due(self, *, final: bool) -> None:
        index = self._index_for_writing()
        base = len(index.faces.base)
        if index.folder != self.index_dir:
            due = True  # no files, or built in memory: write them once
        elif final and base <= SMALL_GALLERY:
            due = index.pending > 0 or index.base_generation != index.generation
        else:
            due = index.pending >= max(CHECKPOINT_CHANGES, base // 50)
        if due:
            index.save(self.index_dir)
        if kind_for(len(index.faces)) != index.faces.base.kind and not self._warned_outgrown:
            self._warned_outgrown = True
            log.warning("%s: the gallery has %d faces, beyond what its index (%s) suits; run `facesearch reindex` "
                        "to build the %s index (queries keep working meanwhile)", self.home, len(index.faces),
                        index.faces.base.kind, kind_for(len(index.faces)))

    # -- reads ------------------------------------------------------------------------------

    def identities(self) -> list[dict]:
        """Every enrolled identity: ``{"name", "faces", "images"}``, by name."""
        return [{"name": s.name, "faces": s.faces, "images": s.images} for s in self.store.identities()]

    def __len__(self) -> int:
        return len(self.store.identities())

    def is_empty(self) -> bool:
        """True while no face is enrolled (nothing to match against)."""
        return not self.store.has_faces()

    def matcher(self, name: str = "knn", *, threshold: float | None = None, top_k: int = 5, k: int = 5):
        """A fitted matcher (``"knn"`` or ``"centroid"``) over this gallery's indexes."""
        index = self._load_index()
        # scikit-learn takes seconds to import: commands that match nothing (list, remove, ...) skip it.
        from facesearch.search.match import make_matcher

        thr = DEFAULT_THRESHOLD if threshold is None else threshold
        key = (name, thr, top_k, k)
        if key not in self._matchers:
            if name == "knn":
                built = make_matcher("knn", k=k, threshold=thr, top_k=top_k).from_index(
                    index.faces, self.store.face_names, self.names)
            elif name == "centroid":
                built = make_matcher("centroid", threshold=thr, top_k=top_k).from_index(
                    index.identities, self.store.identity_names_of, self.names)
            else:
                return make_matcher(name)  # raises the clear "unknown matcher" error
            self._matchers[key] = built
        return self._matchers[key]

    def identify(self, image: np.ndarray, *, matcher: str = "knn", threshold: float | None = None,
                 top_k: int = 5, k: int = 5) -> list[FaceMatch]:
        """Every face in an ``(H, W, 3)`` uint8 RGB image and who it is, largest face first."""
        if not self.store.has_faces():
            raise GalleryError(f"{self.home}: the gallery is empty; enroll people first")
        faces = self.analysis.get(image)
        return self.match_faces(faces, matcher=matcher, threshold=threshold, top_k=top_k, k=k)

    def match_faces(self, faces: Sequence[Face], *, matcher: str = "knn", threshold: float | None = None,
                    top_k: int = 5, k: int = 5) -> list[FaceMatch]:
        """Match faces already embedded (e.g. by :class:`FaceAnalysis`) against the gallery."""
        if not faces:
            return []
        m = self.matcher(matcher, threshold=threshold, top_k=top_k, k=k)
        matches = m.identify(np.stack([f.embedding for f in faces]))
        return [FaceMatch(f, mt) for f, mt in zip(faces, matches)]

    def query(self, photo: str | os.PathLike | np.ndarray, *, matcher: str = "knn",
              threshold: float | None = None, top_k: int = 5, k: int = 5) -> QueryResult:
        """Identify every face in one photo (a path or an RGB array).

        Raises:
            ImageError: the photo cannot be read.
            GalleryError: the gallery is empty.
        """
        name = None if isinstance(photo, np.ndarray) else os.fspath(photo)
        image = load_image(photo)
        return QueryResult(name, self.identify(image, matcher=matcher, threshold=threshold, top_k=top_k, k=k))

    # -- writes -----------------------------------------------------------------------------

    def enroll(self, paths: Sequence[str | os.PathLike] | str | os.PathLike, name: str | None = None, *,
               progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None) -> EnrollReport:
        """Enroll photos: folders of ``<identity>/<photos>``, or photos of one person with ``name``.

        Each photo contributes its largest face (photos with several faces are reported). A
        photo already enrolled (same bytes) is skipped. Unreadable photos are reported and
        the rest carry on. Work is committed in batches of :data:`CHUNK` photos, so an
        interrupted enrollment keeps every finished batch and leaves the gallery consistent.

        Args:
            progress: called with the number of photos just processed (for progress bars).
            on_total: called once with the number of photos found.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if name is not None and not name.strip():
            raise GalleryError("--name is empty")
        items, errors = collect_photos(paths, name.strip() if name else None)
        report = EnrollReport(errors=list(errors))
        if on_total:
            on_total(len(items))
        cache = FaceCache.for_settings(self.analysis.settings, self._cache_root) if self._cache_root else None
        seen: dict[str, str] = {}
        try:
            for start in range(0, len(items), CHUNK):
                chunk = items[start:start + CHUNK]
                self._enroll_chunk(chunk, report, seen, cache)
                if progress:
                    progress(len(chunk))
        finally:
            # Also after an interruption: what was committed gets its index files now, when due,
            # rather than being caught up by every reader.
            if report.enrolled:
                with self._writing():
                    pass
        return report

    def _enroll_chunk(self, chunk, report: EnrollReport, seen: dict[str, str], cache) -> None:
        todo, names = [], []
        for path, identity in chunk:
            sha = hash_photo(path)
            if isinstance(sha, PhotoError):
                report.errors.append((str(path), sha.reason))
                continue
            owner = seen.get(sha)
            if owner is not None:
                report.duplicates.append((str(path), owner))
                continue
            seen[sha] = identity
            todo.append((path, sha))
            names.append(identity)

        rows, enrolled = [], []
        for identity, photo in zip(names, analyse_photos(todo, self.analysis, cache)):
            if isinstance(photo, PhotoError):
                report.errors.append((str(photo.path), photo.reason))
                continue
            if not photo.faces:
                report.no_face.append(str(photo.path))
                log.info("%s: no face found", photo.path)
                continue
            if len(photo.faces) > 1:
                report.multiple_faces.append((str(photo.path), len(photo.faces)))
            face = max(photo.faces, key=lambda f: f.area)
            rows.append((identity, str(photo.path.resolve()), photo.sha256, photo.size_bytes, photo.width,
                         photo.height, [NewFace(face.box, face.landmarks, face.score, face.quality, face.embedding)]))
            enrolled.append((str(photo.path), identity))
        if not rows:
            return
        # Detection and embedding ran without the lock; whether a photo is already enrolled is
        # decided under it, since another writer may have enrolled it meanwhile.
        with self._lock.held():
            fresh, added = [], []
            for row, done in zip(rows, enrolled):
                owner = self.store.image_owner(row[2])
                if owner is None:
                    fresh.append(row)
                    added.append(done)
                else:
                    report.duplicates.append((done[0], owner))
            if fresh:
                self.store.add_images(fresh)
                report.enrolled += added
                self._save_index_if_due(final=False)

    def remove(self, name: str) -> int:
        """Remove an identity and its faces. Returns the number of faces removed.

        Every copy of the person's face data that facesearch keeps goes: the database rows
        (overwritten with zeros, not just unlinked, and the write-ahead log emptied), the
        index files (rewritten without them at once, although other writes leave their changes
        in the database until a checkpoint is due; past 50,000 faces the files hold 40-byte
        codes, not vectors, so this costs little even at a million faces, docs/benchmarks.md),
        and the face cache entries of their photos under every
        analysis setting in this gallery's cache folder (the default one when the gallery runs
        without a cache). Not covered: the photos themselves (they are the user's), exports and
        trained classifiers written earlier, other galleries holding the same photos, a cache
        folder this gallery does not use, and copies the file system or backups may keep of
        deleted blocks.
        """
        with self._lock.held():
            photos = self.store.identity_photo_hashes(name)
            removed = self.store.remove_identity(name)
            self._index_for_writing().save(self.index_dir)
            if not self.store.checkpoint():
                log.warning("%s: another process is reading the gallery, so the database's write-ahead log "
                            "keeps the removed faces until the next removal", self.home)
        forget(photos, self._cache_root or faces_cache_dir())
        return removed

    def rename(self, old: str, new: str) -> None:
        """Rename an identity (merging into ``new`` if it already exists). A rename changes no
        vector; a merge updates one identity average."""
        with self._writing():
            self.store.rename_identity(old, new)

    # -- for classifiers and other tools ----------------------------------------------------

    def face_count(self) -> int:
        """How many faces are stored (a full count: for reports, not for every query)."""
        return self.store.count_faces()

    def index_info(self) -> dict:
        """What the index this gallery searches is: ``{"faces", "identities", "generation", "kind",
        "identities_kind", "cells", "nprobe", "pending"}`` (``cells``/``nprobe`` None unless an inverted file)."""
        index = self._load_index()
        return {**index.summary(), "identities_kind": index.identities.base.kind, "cells": index.faces.base.cells,
                "nprobe": index.faces.base.nprobe, "pending": index.pending}

    def generation(self) -> int:
        """The change counter: it grows with every committed enrollment, removal or rename."""
        return self.store.generation()

    def names(self) -> list[str]:
        """Every enrolled identity's name, sorted."""
        return sorted(self.store.identity_names().values())

    def face_vectors(self, chunk: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored face as ``(face ids int64 (n,), vectors float32 (n, dim))`` chunks."""
        return self.store.iter_face_vectors(chunk)

    def search_faces(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` stored faces most similar to each query (float32 (Q, dim)) by the gallery's
        index: ``(similarities float32 (Q, k), face ids int64 (Q, k))``."""
        return self._load_index().faces.search(np.atleast_2d(queries), k)

    def add_embeddings(self, names: Sequence[str], vectors: np.ndarray, *, source: str = "synthetic",
                       update_index: bool = True) -> int:
        """Store faces that have no photo (synthetic or imported vectors): ``vectors`` float32
        (N, dim), L2-normalised, one per entry of ``names``. Returns how many were stored.

        ``update_index=False`` leaves the index files as they are, for a bulk load in many
        calls followed by :meth:`reindex`: folding each call's faces into a large exact index
        would rewrite its files every time. Until then readers apply the stored faces from the
        database on top of the old files (correct, but slower to open the more there are).
        """
        if not update_index:
            with self._lock.held():
                return self.store.add_vectors(names, vectors, source=source)
        with self._writing():
            return self.store.add_vectors(names, vectors, source=source)

    def embeddings(self) -> tuple[list[str], np.ndarray]:
        """Every stored face by face id: its identity's name (N,) and embedding, float32 (N, dim).

        Names and vectors are read in one transaction, so they always belong together.
        """
        rows = self.store.face_sources()
        vectors = np.stack([r.embedding for r in rows]) if rows else np.zeros((0, self.dim), np.float32)
        return [r.identity for r in rows], vectors.astype(np.float32, copy=False)

    def export(self, out: str | os.PathLike, *, size: int = 160) -> dict:
        """Write the faces as NumPy arrays and ``average_embeddings.json`` into ``out`` (see
        :func:`.interchange.export_gallery`); returns the summary, also written as ``export.json``."""
        return interchange.export_gallery(self, out, size=size)

    def import_averages(self, path: str | os.PathLike) -> dict:
        """Enroll every identity of an ``average_embeddings.json`` as one synthetic face (see
        :func:`.interchange.import_averages`); returns ``{"file", "imported", "duplicates"}``."""
        with self._writing():
            return interchange.import_averages(self, path)
