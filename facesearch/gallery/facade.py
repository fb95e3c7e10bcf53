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

Other backends, chosen by URL (:mod:`facesearch.gallery.backends`): a PostgreSQL ``db_url`` keeps
the vectors in the same database (pgvector), and ``vectors`` puts them in Milvus; the gallery
then searches and maintains that store instead of the FAISS files (``self.vectors``).

A gallery also keeps the photo libraries scanned into it (:meth:`Gallery.scan`): every face of
every photo, the unknown ones grouped into candidate people to name (``self.people``,
:mod:`facesearch.gallery.people`). Those faces stay out of the enrolled faces until named.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from facesearch.models.analysis import Face, FaceAnalysis
from facesearch.models.face_cache import FaceCache, forget
from facesearch.errors import GalleryError, ImageError, OptionsError
from facesearch.paths import default_home, faces_cache_dir
from facesearch.permissions import PRIVATE_DIR, make_dirs, tighten
from facesearch.imaging.decode import FORMAT_EXTENSIONS, MAX_PIXELS, load_image, sniff_format
from facesearch.imaging.photo_files import collect_photos, iter_image_files
from facesearch.imaging.thumbnails import encode_jpeg, face_thumbnail
from facesearch.models.photo_faces import CHUNK, PhotoError, PhotoFaces, analyse_photos, hash_photo
from facesearch.search.faiss_index import GalleryIndex, kind_for
from facesearch.search.answers import DEFAULT_THRESHOLD, Match
from facesearch.search.verification import Verification, verify_faces
from facesearch.search.calibration import (DEFAULT_FPIR, MAX_PROBES, MAX_REFERENCE, MIN_EXCEEDANCES, Calibration,
                                           calibrate, cohort_at, probe_moments)
from facesearch.search.normalisation import CENTRE_WEIGHT, COHORT_K
from facesearch.gallery.store import FaceRecord, NewFace, Store
from facesearch.gallery import api_keys, interchange, transfer
from facesearch.gallery.people import People, ScanReport
from facesearch.gallery.lock import LOCK_FILE
from facesearch.gallery.backends import connect_vectors, open_vectors, writer_lock
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

log = logging.getLogger(__name__)

DB_FILE = "gallery.sqlite"
#: Galleries up to this many faces rewrite their index files after every write (cheap), so the
#: files always match the database; larger ones keep recent changes in the database's change
#: records until CHECKPOINT_CHANGES have piled up, so one write costs what it changes.
SMALL_GALLERY = 20_000
CHECKPOINT_CHANGES = 5_000
#: Folder under the gallery's home where photos received as bytes (HTTP uploads) are kept.
UPLOADS_DIR = "uploads"
#: Fitted matchers (one per matcher, threshold, top_k, k) a gallery keeps.
MATCHERS_KEPT = 16
#: The score whose threshold is calibrated: the best cosine similarity to an enrolled face, centred
#: on the face's cohort (facesearch.search.normalisation; docs/benchmarks.md, "Normalised scores").
CALIBRATED_SCORE = "centred"


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


class Gallery:
    """A folder of enrolled people.

    Args:
        home: gallery folder (default :func:`facesearch.paths.default_home`); holds ``db/`` and ``index/``.
        db_url: any SQLAlchemy URL instead of ``sqlite:///<home>/db/gallery.sqlite``.
        analysis: the :class:`FaceAnalysis` to use (default settings if omitted; models load
            on first use), or any object with its ``get_batch`` / ``settings`` / ``model_id``
            / ``dim`` (dlib's pipeline in benchmarks). A gallery keeps the model it was
            created with; an analysis that leaves ``flip`` open embeds as the gallery was made.
        cache: folder of the per-photo face cache used by enrollment, ``None`` for the default
            (under the model cache folder), ``False`` to disable it.
        wait: when another process is writing this gallery, wait for it (default) or fail at
            once with :class:`GalleryError`.
        on_wait: called once with a one-line message when a write has to wait.
        vectors: where the vectors live when not in the gallery's own FAISS files (a database in
            PostgreSQL keeps them in pgvector columns without this): ``milvus://HOST:PORT`` or a
            Milvus Lite file ``PATH.db`` (see :mod:`facesearch.gallery.backends`).
    """

    def __init__(self, home: str | os.PathLike | None = None, *, db_url: str | None = None,
                 analysis: FaceAnalysis | None = None, cache: str | os.PathLike | bool | None = None,
                 wait: bool = True, on_wait: Callable[[str], None] | None = None,
                 vectors: str | os.PathLike | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.index_dir = self.home / "index"
        # A vector store is reached first: when it cannot be, nothing has been written.
        connection = connect_vectors(vectors, wait=wait, on_wait=on_wait)
        try:
            self._make_private(db_url is None)
            if db_url is None:
                db_url = f"sqlite:///{(self.home / 'db' / DB_FILE).resolve()}"
            analysis = analysis or FaceAnalysis()
            # The analysis names the model: a gallery refuses to open with another one (store.py),
            # unless the analysis can embed as the gallery was made (with or without flip).
            self.dim = analysis.dim
            self.store = Store(db_url, model_id=analysis.model_id, embedding_dim=self.dim,
                               adopts=getattr(analysis, "adopts", None))
            self.model_id = self.store.model_id
            self.analysis = self._for_model(analysis)
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        if cache is False:
            self._cache_root = None
        else:
            self._cache_root = Path(cache) if cache not in (None, True) else faces_cache_dir()
        self._lock = writer_lock(self.store, self.index_dir / LOCK_FILE, wait=wait, on_wait=on_wait)
        try:
            #: The vector store outside the gallery's files (pgvector, Milvus), ``None`` for the FAISS files.
            self.vectors = open_vectors(self.store, vectors, model_id=self.model_id, dim=self.dim,
                                        lock_file=self.index_dir / LOCK_FILE, wait=wait, on_wait=on_wait,
                                        connection=connection)
        except BaseException:
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()
            self.store.close()
            raise
        self._index: GalleryIndex | None = None
        # Fitted matchers by their parameters, for the current index object (which is brought
        # up to date in place, so they stay valid until it is replaced). The most recently used
        # are kept: a server's clients may ask for any threshold.
        self._matchers: OrderedDict[tuple, object] = OrderedDict()
        self._warned_outgrown = False
        # Threads of one process (a server's requests) share the index and the matchers: this
        # lock keeps a search from running while another thread brings the index up to date.
        # Other processes are kept apart by the writer lock and the index files' atomic swaps.
        self._guard = threading.RLock()
        self._key_memo = api_keys.KeyMemo()
        #: The scanned photo library: candidate people, naming, feedback (:mod:`.people`).
        self.people = People(self)

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
        if self.vectors is not None:
            self.vectors.close()
        self.store.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- index ------------------------------------------------------------------------------

    def _load_index(self) -> GalleryIndex:
        """The index as of the database's current generation, for reading: the saved files
        (memory-mapped) plus the changes recorded since they were written, applied in memory.
        Never writes; without usable files it is built in memory from the database.
        A gallery whose vectors live in a vector store searches that store instead."""
        if self.vectors is not None:
            return self.vectors.current()
        with self._guard:
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
        A vector store outside the files (pgvector, Milvus) is rebuilt under the writer lock.
        """
        if self.vectors is not None:
            with self._exclusive():
                return self.vectors.rebuild(progress, on_total)
        if on_total:
            on_total(self.store.count_faces())
        index = self._build_index(progress)
        with self._exclusive():
            index.apply(self.store.changes_since(index.generation))
            index.save(self.index_dir)
            self._set_index(index)
        return index

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """The writer lock (other processes) and then the guard (this process's other threads)."""
        with self._lock.held(), self._guard:
            yield

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the writer lock for one write, then bring the index files up to date if it is due."""
        with self._exclusive():
            yield
            self._save_index_if_due(final=True)
            self._recalibrate_if_due()

    def _index_for_writing(self) -> GalleryIndex:
        # Called under the writer lock, so the files on disk cannot change meanwhile; if another
        # writer replaced them since this process read them, start again from theirs (folding
        # our view of the changes into their newer files would add some twice).
        if self._index is not None and self._index.folder == self.index_dir and \
                GalleryIndex.saved_generation(self.index_dir) != self._index.base_generation:
            self._index = None
        return self._load_index()

    def _save_index_if_due(self, *, final: bool) -> None:
        if self.vectors is not None:
            self.vectors.sync()
            return
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

    def ensure_enrolled(self) -> None:
        """Raise :class:`GalleryError` while nothing is enrolled (there is nothing to match against)."""
        if not self.store.has_faces():
            raise GalleryError(f"{self.home}: the gallery is empty; enroll people first")

    def faces(self, name: str | None = None) -> list[dict]:
        """The stored faces of identity ``name`` (all faces when ``None``), by id: ``{"id", "identity",
        "box" [x, y, w, h] pixels, "score", "quality", "photo"}``, ``photo`` being the source file's name.

        Raises:
            NotFoundError: no identity is called ``name``.
        """
        return [_face_dict(r) for r in self.store.faces(name)]

    def face_thumbnail(self, face_id: int, side: int = 112) -> bytes:
        """A JPEG of one stored face, ``side`` pixels square, cut from its source photo.

        Raises:
            NotFoundError: no face has that id.
            ImageError: the source photo is gone or unreadable (imported averages have none).
        """
        record = self.store.face(face_id)
        return encode_jpeg(face_thumbnail(load_image(record.path), record.box, side))

    def verify(self, photo_a: str | os.PathLike | np.ndarray, photo_b: str | os.PathLike | np.ndarray, *,
               threshold: float | None = None) -> Verification:
        """Whether the largest faces of two photos (paths or RGB arrays) are the same person.

        Raises:
            ImageError: a photo cannot be read or has no face.
        """
        names = tuple(None if isinstance(p, np.ndarray) else os.fspath(p) for p in (photo_a, photo_b))
        faces_a, faces_b = self.analysis.get_batch([load_image(photo_a), load_image(photo_b)])
        return verify_faces(faces_a, faces_b, images=names, threshold=threshold)  # type: ignore[arg-type]

    def matcher(self, name: str = "knn", *, threshold: float | None = None, top_k: int = 5, k: int = 5):
        """A fitted matcher (``"knn"`` or ``"centroid"``) over this gallery's indexes; ``threshold``
        defaults to :meth:`default_threshold`, and applies to centred scores in a calibrated
        gallery (:meth:`centre_weight`).

        The matcher searches the index this gallery keeps up to date in place: from several
        threads, search through :meth:`match_faces`, which keeps searches and updates apart.
        """
        # scikit-learn takes seconds to import: commands that match nothing (list, remove, ...) skip it.
        from facesearch.search.match import make_matcher

        if name not in ("knn", "centroid"):
            return make_matcher(name)  # raises the clear "unknown matcher" error
        with self._guard:
            index = self._load_index()  # may replace the index, and with it forget the matchers
            thr = self.default_threshold() if threshold is None else threshold
            centre = self.centre_weight()
            key = (name, thr, top_k, k, centre)
            if key in self._matchers:
                self._matchers.move_to_end(key)
                return self._matchers[key]
            if name == "knn":
                built = make_matcher("knn", k=k, threshold=thr, top_k=top_k, centre=centre).from_index(
                    index.faces, self.store.face_names, self.names)
            else:
                built = make_matcher("centroid", threshold=thr, top_k=top_k, centre=centre).from_index(
                    index.identities, self.store.identity_names_of, self.names)
            self._matchers[key] = built
            while len(self._matchers) > MATCHERS_KEPT:
                self._matchers.popitem(last=False)
            return built

    def identify(self, image: np.ndarray, *, matcher: str = "knn", threshold: float | None = None,
                 top_k: int = 5, k: int = 5) -> list[FaceMatch]:
        """Every face in an ``(H, W, 3)`` uint8 RGB image and who it is, largest face first."""
        self.ensure_enrolled()
        faces = self.analysis.get(image)
        return self.match_faces(faces, matcher=matcher, threshold=threshold, top_k=top_k, k=k)

    def match_faces(self, faces: Sequence[Face], *, matcher: str = "knn", threshold: float | None = None,
                    top_k: int = 5, k: int = 5) -> list[FaceMatch]:
        """Match faces already embedded (e.g. by :class:`FaceAnalysis`) against the gallery."""
        if not faces:
            return []
        with self._guard:
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

    def info(self) -> dict:
        """What the gallery holds and how it decides: ``{"home", "model", "identities", "faces",
        "generation", "threshold", "calibration"}`` (``calibration`` is ``None`` if never calibrated)."""
        cal = self.calibration()
        return {"home": str(self.home), "model": self.model_id, "identities": self.store.count_identities(),
                "faces": self.store.count_faces(), "generation": self.store.generation(),
                "threshold": round(self.default_threshold(), 4), "calibration": None if cal is None else cal.as_dict()}

    # -- calibration ------------------------------------------------------------------------

    def calibration(self) -> Calibration | None:
        """The threshold calibrated to this gallery (:mod:`facesearch.search.calibration`), or
        ``None`` for a gallery never calibrated (nothing enrolled yet, or made by an older version
        and not written since)."""
        stored = self.store.calibration(CALIBRATED_SCORE)
        return None if stored is None else Calibration(**stored, score=CALIBRATED_SCORE)

    def centre_weight(self) -> float:
        """The weight of cohort centring in this gallery's scores: :data:`CENTRE_WEIGHT` once it is
        calibrated (every write calibrates), 0 (plain cosines) for a gallery never calibrated."""
        return CENTRE_WEIGHT if self.calibration() is not None else 0.0

    def default_threshold(self) -> float:
        """The similarity at which queries name a face unless told otherwise: the calibrated
        threshold, else :data:`~facesearch.search.answers.DEFAULT_THRESHOLD`."""
        cal = self.calibration()
        return DEFAULT_THRESHOLD if cal is None else cal.threshold

    def calibrate(self, fpir: float | None = None, strangers: Sequence[str | os.PathLike] | None = None, *,
                  progress: Callable[[int], None] | None = None,
                  on_total: Callable[[int], None] | None = None) -> Calibration:
        """Choose and store the threshold that names a fraction ``fpir`` of strangers (default:
        the stored target, else :data:`~facesearch.search.calibration.DEFAULT_FPIR`) in this gallery.

        Strangers' best similarities are estimated from the gallery itself (each sampled face
        against the other identities) and, with ``strangers`` (photos or folders of people known
        not to be enrolled; each photo's largest face), from them too; a gallery too small to
        estimate from gets numbers measured on LFW (the result's ``method`` and ``note`` say so).

        Raises:
            GalleryError: the gallery is empty.
            ValueError: ``fpir`` outside (0, 1).
        """
        if not self.store.has_faces():
            raise GalleryError(f"{self.home}: the gallery is empty; enroll people first")
        faces = self._stranger_faces(strangers, progress=progress, on_total=on_total) if strangers else None
        with self._lock.held():
            stored = self.calibration()
            target = fpir if fpir is not None else (stored.fpir if stored is not None else DEFAULT_FPIR)
            cal = self._compute_calibration(target, faces)
            self._store_calibration(cal)
        return cal

    def _stranger_faces(self, paths: Sequence[str | os.PathLike], *, progress=None, on_total=None) -> np.ndarray:
        """The largest face of every photo under ``paths``: float32 (S, dim)."""
        photos: list[Path] = []
        for raw in paths:
            path = Path(raw)
            if not path.exists():
                raise GalleryError(f"{raw}: no such file or folder")
            photos += iter_image_files(path) if path.is_dir() else [path]
        if on_total:
            on_total(len(photos))
        cache = FaceCache.for_settings(self.analysis.settings, self._cache_root) if self._cache_root else None
        todo = []
        for path in photos:
            sha = hash_photo(path)
            if isinstance(sha, PhotoError):
                log.warning("%s: %s; skipped", path, sha.reason)
            else:
                todo.append((path, sha))
        out = []
        for photo in analyse_photos(todo, self.analysis, cache):
            if progress:
                progress(1)
            if isinstance(photo, PhotoError) or not photo.faces:
                continue
            out.append(max(photo.faces, key=lambda f: f.area).embedding)
        return np.stack(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def _reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The identities probes are scored against: all, or a random :data:`MAX_REFERENCE` of them."""
        return self.store.sample_identity_faces(MAX_REFERENCE)

    def _other_identities_best(self, vectors: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """Each enrolled face's centred best score (:data:`CENTRE_WEIGHT`) against the *other*
        identities of the whole gallery, by the faces index: float64 (S,), ``-inf`` for none."""
        index = self._load_index().faces
        k = min(max(64, 4 * (COHORT_K + 1)), max(len(index), 1))
        sims, ids = index.search(np.atleast_2d(vectors).astype(np.float32), k)
        who = self.store.face_identity_ids(np.unique(ids[ids >= 0]))
        out = np.full(len(vectors), -np.inf)
        for row, (srow, irow) in enumerate(zip(sims, ids)):
            best: dict[int, float] = {}
            for s, i in zip(srow, irow):  # descending: an identity's first face is its best
                other = who.get(int(i)) if i >= 0 else None
                if other is not None and other != owners[row]:
                    best.setdefault(other, float(s))
            scores = list(best.values())
            if scores:
                cohort = scores[1:COHORT_K + 1]
                out[row] = scores[0] - (CENTRE_WEIGHT * float(np.mean(cohort)) if cohort else 0.0)
        return out

    def _compute_calibration(self, fpir: float, strangers: np.ndarray | None = None) -> Calibration:
        ref_owners, ref_vectors = self._reference()
        owners, vectors = self.store.sample_faces(MAX_PROBES)
        identities, referenced = self.store.count_identities(), len(np.unique(ref_owners))
        g_mu, g_sd, g_cohort = probe_moments(vectors, owners, ref_vectors, ref_owners)
        # A stranger's cohort is drawn from all N identities; these were drawn from fewer.
        g_cohort = cohort_at(g_cohort, g_sd, referenced - 1, identities)
        s_mu = s_sd = s_cohort = None
        if strangers is not None and len(strangers):
            s_mu, s_sd, s_cohort = probe_moments(strangers, None, ref_vectors, ref_owners)
            s_cohort = cohort_at(s_cohort, s_sd, referenced, identities)
        # The gallery's own best non-mated scores decide directly once they are enough (large galleries).
        maxima = self._other_identities_best(vectors, owners) if len(vectors) * fpir >= MIN_EXCEEDANCES else None
        return calibrate(g_mu, g_sd, identities=identities, fpir=fpir, centre=CENTRE_WEIGHT, gallery_cohort=g_cohort,
                         stranger_mu=s_mu, stranger_sigma=s_sd, stranger_cohort=s_cohort, gallery_maxima=maxima,
                         generation=self.store.generation())

    def _store_calibration(self, cal: Calibration) -> None:
        self.store.set_calibration(CALIBRATED_SCORE, {
            "threshold": float(cal.threshold), "fpir": float(cal.fpir), "identities": int(cal.identities),
            "method": cal.method, "samples": int(cal.samples), "strangers": int(cal.strangers),
            "generation": int(cal.generation), "note": cal.note[:512]})
        self._matchers.clear()

    def _recalibrate_if_due(self) -> None:
        # Under the writer lock, after a write: a gallery is calibrated once it holds faces, and
        # again when its number of identities has moved enough to move the threshold. Strangers
        # given to `calibrate` are not kept (they are other people's faces), so a recalibration
        # rests on the gallery alone.
        if self.store.read_only or not self.store.has_faces():
            return
        stored = self.calibration()
        identities = self.store.count_identities()
        if stored is not None and not stored.due(identities):
            return
        cal = self._compute_calibration(stored.fpir if stored is not None else DEFAULT_FPIR)
        if stored is not None:
            log.info("%s: %d identities now (calibrated for %d): threshold %.3f -> %.3f", self.home, identities,
                     stored.identities, stored.threshold, cal.threshold)
        self._store_calibration(cal)

    # -- writes -----------------------------------------------------------------------------

    def _for_model(self, analysis: FaceAnalysis) -> FaceAnalysis:
        """``analysis`` made to embed as this gallery's faces were, where it can and must change."""
        if analysis.model_id == self.model_id or not hasattr(analysis, "for_model"):
            return analysis  # as it is: wrappers and other pipelines keep their identity
        return analysis.for_model(self.model_id)

    def own_analysis(self, analysis: FaceAnalysis | None = None) -> FaceAnalysis:
        """``analysis`` (default: the gallery's own) set to embed as this gallery's faces were
        embedded (with or without flip, when it leaves that open).

        Raises:
            OptionsError: it embeds with another model.
        """
        analysis = self._for_model(analysis or self.analysis)
        if analysis.model_id != self.model_id:
            raise OptionsError(f"{self.home}: the gallery uses {self.model_id}, not {analysis.model_id}")
        return analysis

    def enroll(self, paths: Sequence[str | os.PathLike] | str | os.PathLike, name: str | None = None, *,
               progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None,
               analysis: FaceAnalysis | None = None,
               ray: str | None = None, ray_workers: int | None = None) -> EnrollReport:
        """Enroll photos: folders of ``<identity>/<photos>``, or photos of one person with ``name``.

        Each photo contributes its largest face (photos with several faces are reported). A
        photo already enrolled (same bytes) is skipped. Unreadable photos are reported and
        the rest carry on. Work is committed in batches of :data:`CHUNK` photos, so an
        interrupted enrollment keeps every finished batch and leaves the gallery consistent.

        Args:
            progress: called with the number of photos just processed (for progress bars).
            on_total: called once with the number of photos found.
            analysis: detect and embed with this instead of the gallery's own (e.g. a larger
                minimum face size); it must use the gallery's embedding model.
            ray: decode, detect and embed on a Ray cluster (:mod:`facesearch.models.ray_analysis`):
                its address, or ``""`` for a local cluster started for this call. This process
                still stores every batch, in order, under the writer lock: the gallery is the one a
                plain enrollment makes.
            ray_workers: Ray actors (default: one per CPU of the cluster).
        """
        analysis = self.own_analysis(analysis)
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if name is not None and not name.strip():
            raise GalleryError("--name is empty")
        items, errors = collect_photos(paths, name.strip() if name else None)
        report = EnrollReport(errors=list(errors))
        if on_total:
            on_total(len(items))
        cache = FaceCache.for_settings(analysis.settings, self._cache_root) if self._cache_root else None
        seen: dict[str, str] = {}
        # Hashing and the in-run duplicate check run in this process, batch by batch, as the
        # analysis (here or on the cluster) asks for more.
        batches = ((chunk, self._photos_to_analyse(chunk, report, seen))
                   for chunk in (items[start:start + CHUNK] for start in range(0, len(items), CHUNK)))
        analyser = None
        try:
            if ray is None:
                analysed = ((chunk, todo, analyse_photos([(p, sha) for p, sha, _ in todo], analysis, cache))
                            for chunk, todo in batches)
            else:
                from facesearch.models.ray_analysis import RayAnalyser  # Ray loads only for --ray

                analyser = RayAnalyser(analysis, self._cache_root if cache else None, address=ray, workers=ray_workers)
                analysed = ((chunk, todo, photos) for (chunk, todo), photos in
                            analyser.map(((chunk, todo), [(p, sha) for p, sha, _ in todo]) for chunk, todo in batches))
            for chunk, todo, photos in analysed:
                self._store_analysed(todo, photos, report)
                if progress:
                    progress(len(chunk))
        finally:
            if analyser is not None:
                analyser.close()
            # Also after an interruption: what was committed gets its index files now, when due,
            # rather than being caught up by every reader.
            if report.enrolled:
                with self._writing():
                    pass
        return report

    def _photos_to_analyse(self, chunk, report: EnrollReport, seen: dict[str, str]) -> list[tuple[Path, str, str]]:
        """The ``(path, sha256, identity)`` of a batch's photos that are readable and not already
        in this run; the others go into ``report``."""
        todo = []
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
            todo.append((Path(path), sha, identity))
        return todo

    def _store_analysed(self, todo: Sequence[tuple[Path, str, str]], photos: Sequence[PhotoFaces | PhotoError],
                        report: EnrollReport) -> None:
        """Store the largest face of each analysed photo (``photos`` in the order of ``todo``)."""
        rows, enrolled = [], []
        for (_, _, identity), photo in zip(todo, photos):
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
        with self._exclusive():
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

        Every copy of the person's face data that facesearch keeps goes: the database rows (their
        scanned faces too, identified or named, with the cached faces of those photos)
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
        with self._exclusive():
            photos = self.store.identity_photo_hashes(name)
            uploads = self._uploads_of(self.store.faces(name))
            photos += self.people.forget_identity(name)
            removed = self.store.remove_identity(name)
            self._erase_removed()
            self._forget_uploads(uploads)
        forget(photos, self._cache_root or faces_cache_dir())
        return removed

    def _erase_removed(self) -> None:
        """After a removal: index files rewritten without the removed vectors, the threshold
        recalibrated if the gallery shrank enough, and the database's write-ahead log emptied."""
        self._index_for_writing().save(self.index_dir)
        self._recalibrate_if_due()
        if not self.store.checkpoint():
            log.warning("%s: another process is reading the gallery, so the database's write-ahead log "
                        "keeps the removed faces until the next removal", self.home)

    def scan(self, paths: Sequence[str | os.PathLike] | str | os.PathLike, *, recursive: bool = False,
             recluster: bool = False, cluster: bool = True, progress: Callable[[int], None] | None = None,
             on_total: Callable[[int], None] | None = None, analysis: FaceAnalysis | None = None) -> ScanReport:
        """Scan a photo library: every face of every photo stored, enrolled people identified, the
        unknown faces clustered into candidate people (``self.people``). See :meth:`.People.scan`."""
        return self.people.scan(paths, recursive=recursive, recluster=recluster, cluster=cluster, progress=progress,
                                on_total=on_total, analysis=analysis)

    def rename(self, old: str, new: str) -> None:
        """Rename an identity (merging into ``new`` if it already exists). A rename changes no
        vector; a merge updates one identity average."""
        with self._writing():
            self.people.merge_identity(old, new)
            self.store.rename_identity(old, new)

    def remove_face(self, face_id: int) -> dict:
        """Remove one face (an identity left without faces goes too), with every copy :meth:`remove`
        erases (the cached faces of its photo once no other stored face comes from it). Returns ``{"removed_face",
        "identity", "faces_left"}``.

        Raises:
            NotFoundError: no face has that id.
        """
        with self._exclusive():
            record = self.store.face(face_id)
            photo = self.store.face_photo_hash(face_id)
            scanned = self.people.forget_enrolled_face(face_id)
            name, left = self.store.remove_face(face_id)
            if not left:
                self.people.release_orphans()
            self._erase_removed()
            self._forget_uploads(self._uploads_of([record]))
        # A scanned photo's cached faces go even while it is in use: they hold the removed face.
        gone = [p for p in {photo} if p is not None and not self.store.photo_hash_in_use(p)] + scanned
        if gone:
            forget(gone, self._cache_root or faces_cache_dir())
        return {"removed_face": face_id, "identity": name, "faces_left": left}

    @staticmethod
    def _check_uploads(photos: Sequence[tuple[str, bytes]], max_pixels: int | None) -> None:
        """Raise :class:`ImageError` naming the first photo that is not a readable image within ``max_pixels``."""
        for filename, data in photos:
            if sniff_format(data) is None:
                raise ImageError(filename, "not a JPEG, PNG, WebP, BMP or TIFF image")
            try:
                load_image(data, max_pixels=max_pixels)
            except ImageError as exc:
                raise ImageError(filename, exc.reason) from None

    def _uploads_of(self, records: Sequence[FaceRecord]) -> list[str]:
        """The source photos of ``records`` that are the gallery's own copies of uploads."""
        folder = (self.home / UPLOADS_DIR).resolve()
        return sorted({r.path for r in records if Path(r.path).parent == folder})

    def _forget_uploads(self, paths: Sequence[str]) -> None:
        """Delete the kept uploads among ``paths`` that no stored photo uses any more."""
        if not paths:
            return
        # A scanned photo keeps its copy while the scan holds it (its other faces' thumbnails).
        for path in set(paths) - self.store.paths_in_use(paths) - self.people.paths_in_use(paths):
            Path(path).unlink(missing_ok=True)

    def enroll_uploads(self, photos: Sequence[tuple[str, bytes]], name: str, *, max_pixels: int | None = MAX_PIXELS,
                       analysis: FaceAnalysis | None = None) -> EnrollReport:
        """Enroll photos received as bytes, ``(file name, data)`` each, as the person ``name``.

        Every photo is checked first (format read from its content, decodable, within
        ``max_pixels``); if one fails, :class:`ImageError` names it and nothing is stored. The
        photos are then kept under ``<home>/uploads/<sha256><ext>``, the gallery's own copy (for
        thumbnails and export), and enrolled like files; the report names them by the given
        file names. Copies of photos that were not enrolled (no face, already enrolled) are not kept.
        """
        if not name or not name.strip():
            raise GalleryError("the name is empty")
        report, stored = self._from_uploads(photos, max_pixels, lambda paths: self.enroll(paths, name, analysis=analysis),
                                            lambda report: [p for p, _ in report.enrolled])
        return _renamed_report(report, stored)

    def _from_uploads(self, photos: Sequence[tuple[str, bytes]], max_pixels: int | None,
                      run: Callable[[list[str]], object],
                      kept: Callable[[object], Sequence[str]]) -> tuple[object, dict[str, str]]:
        """Check ``photos`` (bytes), keep them under ``<home>/uploads/``, ``run`` on their paths,
        and delete the new copies that ``kept(report)`` does not name, or all of them if ``run``
        fails (but for copies a scan already holds). Returns the report and ``{stored path: given
        file name}``."""
        self._check_uploads(photos, max_pixels)
        folder = self.home / UPLOADS_DIR
        make_dirs(folder, PRIVATE_DIR)
        stored: dict[str, str] = {}   # stored path -> given name
        created: list[Path] = []
        try:
            for filename, data in photos:
                path, new = _keep_upload(folder, data)
                if new:
                    created.append(path)
                stored.setdefault(str(path), filename)
            report = run(list(stored))
        except BaseException:
            for path in created:
                if str(path.resolve()) not in self.people.paths_in_use([str(path.resolve())]):
                    path.unlink(missing_ok=True)
            raise
        used = set(kept(report))
        for path in created:
            if str(path) not in used:
                path.unlink(missing_ok=True)
        return report, stored

    def scan_uploads(self, photos: Sequence[tuple[str, bytes]], *, max_pixels: int | None = MAX_PIXELS,
                     analysis: FaceAnalysis | None = None, cluster: bool = True) -> ScanReport:
        """Scan photos received as bytes, ``(file name, data)`` each, as :meth:`scan` scans files.

        Every photo is checked first, as :meth:`enroll_uploads` does (nothing is stored if one
        fails); the photos scanned are kept under ``<home>/uploads/`` (thumbnails are cut from
        them), the others are not. The report names them by the given file names. ``cluster``: as
        for :meth:`scan`.
        """
        report, stored = self._from_uploads(photos, max_pixels,
                                            lambda paths: self.scan(paths, analysis=analysis, cluster=cluster),
                                            lambda report: [p for p, _ in report.scanned])
        return report.renamed(stored)

    # -- API keys ---------------------------------------------------------------------------

    def create_key(self, role: str, name: str = "") -> dict:
        """A new API key for the HTTP server. Returns ``{"key", "id", "name", "role", "created_at"}``;
        ``key`` is shown this once: the gallery keeps only a salted hash of it.

        Raises:
            OptionsError: ``role`` is not ``"read"`` or ``"write"``.
        """
        if role not in api_keys.ROLES:
            raise OptionsError(f"role must be one of {', '.join(api_keys.ROLES)}, not {role!r}")
        made = api_keys.new_key()
        record = self.store.add_api_key(made.key_id, name.strip(), role, made.salt, made.key_hash)
        return {"key": made.key, **_key_dict(record)}

    def api_keys(self) -> list[dict]:
        """Every API key ever created (revoked ones too): ``{"id", "name", "role", "created_at", "revoked_at"}``."""
        return [_key_dict(r) for r in self.store.api_keys()]

    def revoke_key(self, key_id: str) -> dict:
        """Revoke an API key, given its id (as ``api_keys()`` shows it) or the whole key; returns it.

        Raises:
            NotFoundError: no key has that id.
        """
        return _key_dict(self.store.revoke_api_key(api_keys.key_id_of(key_id)))

    def check_key(self, key: str) -> str | None:
        """The role (``"read"`` or ``"write"``) of a valid, unrevoked API key, else ``None``."""
        parts = api_keys.split_key(key)
        if parts is None:
            return None
        record = self.store.api_key(parts[0])
        if record is None or record.revoked_at is not None:
            return None
        return record.role if self._key_memo.matches(parts[1], record.salt, record.key_hash) else None

    def has_keys(self) -> bool:
        """True when at least one API key is in force."""
        return self.store.count_active_api_keys() > 0

    # -- for classifiers and other tools ----------------------------------------------------

    def face_count(self) -> int:
        """How many faces are stored (a full count: for reports, not for every query)."""
        return self.store.count_faces()

    def index_info(self) -> dict:
        """What the index this gallery searches is: ``{"faces", "identities", "generation", "kind",
        "identities_kind", "cells", "nprobe", "pending"}`` (``cells``/``nprobe`` None unless an inverted file)."""
        index = self._load_index()
        if self.vectors is not None:  # pgvector, Milvus: one kind of index for both sets, no cells
            return {**index.summary(), "identities_kind": index.kind, "cells": None, "nprobe": None, "pending": 0}
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
        with self._guard:
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

    def check_copyable(self, *, without_people: bool = False) -> None:
        """Raise GalleryError if :meth:`copy_to` would leave something behind: the scanned photo
        library (``facesearch scan``) is not copied yet, so a gallery holding one is only copied
        when ``without_people`` says that is meant (the source keeps it either way)."""
        scanned = 0 if without_people else self.people.scanned_faces()
        if scanned:
            raise GalleryError(f"{transfer.where(self)}: holds a scanned photo library ({scanned} faces) that "
                               "migrate does not copy yet; pass --without-people to copy everything else")

    def copy_to(self, dest: "Gallery", *, sample: int = transfer.SAMPLE, progress: Callable[[int], None] | None = None,
                on_total: Callable[[int], None] | None = None, without_people: bool = False) -> transfer.CopyReport:
        """Copy this gallery into the empty gallery ``dest`` (another backend, see
        :mod:`.transfer`), then check that both hold the same people and answer alike on
        ``sample`` stored faces. ``progress`` gets the faces copied after each chunk.

        Raises:
            GalleryError: ``dest`` is not empty, the source holds a scanned library and
                ``without_people`` is not set (:meth:`check_copyable`), or the copy answers
                differently (it is kept, for a look).
        """
        self.check_copyable(without_people=without_people)
        report = transfer.CopyReport(transfer.where(self), transfer.where(dest))
        transfer.ensure_empty(dest)
        if on_total:
            on_total(self.store.count_faces())
        with dest._writing(), (dest.vectors.bulk_load() if dest.vectors is not None else contextlib.nullcontext()):
            transfer.copy_photos(self, dest, report, progress)
        transfer.check_copy(self, dest, report, sample)
        if report.differences:
            raise GalleryError(f"{report.destination}: the copy differs from {report.source}: "
                               f"{'; '.join(report.differences[:3])}")
        return report

    def import_averages(self, path: str | os.PathLike) -> dict:
        """Enroll every identity of an ``average_embeddings.json`` as one synthetic face (see
        :func:`.interchange.import_averages`); returns ``{"file", "imported", "duplicates"}``."""
        with self._writing():
            return interchange.import_averages(self, path)


def _face_dict(record: FaceRecord) -> dict:
    return {"id": record.id, "identity": record.identity, "box": [int(round(v)) for v in record.box],
            "score": round(record.score, 4), "quality": round(record.quality, 1), "photo": Path(record.path).name}


def _iso(moment: dt.datetime | None) -> str | None:
    """UTC time as ``2024-05-01T12:00:00Z`` (the database keeps it without a zone)."""
    return None if moment is None else moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _key_dict(record) -> dict:
    return {"id": record.key_id, "name": record.name, "role": record.role, "created_at": _iso(record.created_at),
            "revoked_at": _iso(record.revoked_at)}


def _keep_upload(folder: Path, data: bytes) -> tuple[Path, bool]:
    """Write ``data`` as ``folder/<sha256><ext>``; returns that path and whether this call created it
    (False when the same content was already kept)."""
    path = folder / f"{hashlib.sha256(data).hexdigest()}{FORMAT_EXTENSIONS[sniff_format(data)]}"
    if path.exists():
        return path, False
    fd, tmp = tempfile.mkstemp(prefix=".upload.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path, True


def _renamed_report(report: EnrollReport, names: dict[str, str]) -> EnrollReport:
    """``report`` with stored upload paths replaced by the names the photos were sent under."""
    def given(path: str) -> str:
        return names.get(path, path)

    return EnrollReport(enrolled=[(given(p), n) for p, n in report.enrolled],
                        duplicates=[(given(p), n) for p, n in report.duplicates],
                        no_face=[given(p) for p in report.no_face],
                        multiple_faces=[(given(p), n) for p, n in report.multiple_faces],
                        errors=[(given(p), e) for p, e in report.errors])
