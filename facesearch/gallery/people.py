"""People found in a scanned photo library: every face of every scanned photo, the unknown ones
clustered into candidate people, and what the user says about them (name, not, split, undo).

A scanned face is in one of three states (``scanned_faces.state``, :mod:`.schema`):

- ``identified``: matched to an enrolled identity at the gallery's calibrated threshold when its
  photo was scanned. Recorded, never enrolled: it neither answers queries nor moves the average.
- ``unknown``: kept with its embedding, in a candidate person (``cluster_id``) or waiting for
  enough look-alikes. Unknown faces live only in ``scanned_faces``, so queries never see them.
- ``named``: enrolled as an identity by ``people name`` (or back by undoing a ``not``): a copy
  of it is a gallery face (``enrolled_face_id``), so queries and later scans find the person.

Feedback is recorded as constraints: a split keeps the faces that left a cluster apart from those
that stayed (cannot-link pairs, honoured by every later clustering), and ``not FACE NAME`` keeps
that face from ever being given to NAME again (naming and undo respect it). Every action is
logged with what undoing it needs; ``undo`` reverts the newest one not yet undone.

Only :class:`People`, reached through the :class:`~facesearch.gallery.facade.Gallery`, touches
these tables; each change is one transaction under the gallery's writer lock, except that naming
then identifies the waiting faces in a second one (the matcher must see the committed faces): a
crash between the two leaves the naming done and those faces waiting for the next scan.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from facesearch.errors import GalleryError, NotFoundError
from facesearch.gallery.schema import (FaceRow, Identity, PeopleAction, PeopleCluster, PeopleConstraint, ScannedFace,
                                       ScannedPhoto, SourceImage)
from facesearch.imaging.decode import load_image
from facesearch.imaging.photo_files import library_photos
from facesearch.imaging.thumbnails import encode_jpeg, face_thumbnail
from facesearch.models.face_cache import FaceCache
from facesearch.models.photo_faces import CHUNK, PhotoError, analyse_photos, hash_photo
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

if TYPE_CHECKING:
    from facesearch.gallery.facade import Gallery
    from facesearch.models.analysis import FaceAnalysis

log = logging.getLogger(__name__)

UNKNOWN, IDENTIFIED, NAMED = "unknown", "identified", "named"
#: Actions ``undo`` can revert, newest first.
UNDOABLE = ("name", "not", "split")


@dataclass
class ScanReport:
    """What a scan did. Paths are strings as found."""

    scanned: list[tuple[str, int]] = field(default_factory=list)          # (path, faces found)
    already_scanned: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    identified: list[tuple[str, str, float]] = field(default_factory=list)  # (path, identity, similarity)
    unknown: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)           # (path, one-line reason)
    clusters: dict = field(default_factory=dict)

    def renamed(self, names: dict[str, str]) -> "ScanReport":
        """This report with the paths in ``names`` (stored path -> given name) replaced."""
        def given(path: str) -> str:
            return names.get(path, path)

        return ScanReport([(given(p), n) for p, n in self.scanned], [given(p) for p in self.already_scanned],
                          [given(p) for p in self.no_face], [(given(p), n, s) for p, n, s in self.identified],
                          self.unknown, [(given(p), e) for p, e in self.errors], dict(self.clusters))

    def as_dict(self) -> dict:
        return {"scanned": [{"path": p, "faces": n} for p, n in self.scanned],
                "already_scanned": list(self.already_scanned), "no_face": list(self.no_face),
                "identified": [{"path": p, "identity": n, "similarity": round(s, 4)} for p, n, s in self.identified],
                "unknown": self.unknown, "errors": [{"path": p, "error": e} for p, e in self.errors],
                "clusters": dict(self.clusters)}


def _box(face: ScannedFace) -> list[int]:
    return [int(round(v)) for v in (face.x, face.y, face.w, face.h)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class People:
    """The scanned library of one gallery (``gallery.people``). See the module's docstring."""

    def __init__(self, gallery: "Gallery") -> None:
        self.gallery = gallery
        self.store = gallery.store

    # -- scanning ---------------------------------------------------------------------------

    def scan(self, paths: Sequence[str | os.PathLike] | str | os.PathLike, *, recursive: bool = False,
             recluster: bool = False, cluster: bool = True, progress: Callable[[int], None] | None = None,
             on_total: Callable[[int], None] | None = None, analysis: "FaceAnalysis | None" = None) -> ScanReport:
        """Scan photos (files, or folders: their own photos, sub-folders too with ``recursive``).

        Every face of every new photo is stored with its photo and box; faces of enrolled people
        (at the calibrated threshold) are recorded as identified, the rest kept as unknown and
        then clustered into candidate people (attached to the existing ones, or a full
        re-clustering with ``recluster``). A photo already scanned (same bytes) costs its hash
        only: it is neither decoded nor searched for faces. Unreadable photos are reported and the
        rest carry on. Each batch of :data:`CHUNK` photos is committed in one transaction, so an
        interrupted scan keeps the finished batches (their faces are clustered by the next scan).
        With ``cluster=False`` the new unknown faces are left waiting, for a caller that scans a
        library in parts and then calls :meth:`update_clusters` once (``--server`` uploads).
        """
        g = self.gallery
        analysis = g.own_analysis(analysis)
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        photos, errors = library_photos(paths, recursive)
        report = ScanReport(errors=list(errors))
        if on_total:
            on_total(len(photos))
        cache = FaceCache.for_settings(analysis.settings, g._cache_root) if g._cache_root else None
        seen: set[str] = set()
        for start in range(0, len(photos), CHUNK):
            chunk = photos[start:start + CHUNK]
            self._scan_chunk(chunk, report, seen, cache, analysis)
            if progress:
                progress(len(chunk))
        if recluster:
            report.clusters = self.recluster()
        else:
            report.clusters = self.update_clusters(only_new=True) if cluster else self.cluster_counts()
        return report

    def _scan_chunk(self, chunk: Sequence[Path], report: ScanReport, seen: set[str], cache, analysis) -> None:
        hashed = []
        for path in chunk:
            sha = hash_photo(path)
            if isinstance(sha, PhotoError):
                report.errors.append((str(path), sha.reason))
            elif sha in seen:
                report.already_scanned.append(str(path))
            else:
                seen.add(sha)
                hashed.append((path, sha))
        done = self._scanned_hashes([sha for _, sha in hashed])
        report.already_scanned += [str(p) for p, sha in hashed if sha in done]
        todo = [(p, sha) for p, sha in hashed if sha not in done]
        results = []
        for photo in analyse_photos(todo, analysis, cache):
            if isinstance(photo, PhotoError):
                report.errors.append((str(photo.path), photo.reason))
            else:
                results.append(photo)
        faces = [f for photo in results for f in photo.faces]
        # Matched without the lock, like enrollment's detection; stored under it.
        matches = [m.match for m in self.gallery.match_faces(faces)] if faces and not self.gallery.is_empty() \
            else [None] * len(faces)
        with self.gallery._exclusive(), self.store.session() as s:
            already = set(s.scalars(select(ScannedPhoto.sha256).where(
                ScannedPhoto.sha256.in_([p.sha256 for p in results]))))
            ids = self._identity_ids(s)
            k = 0
            for photo in results:
                found = matches[k:k + len(photo.faces)]
                k += len(photo.faces)
                if photo.sha256 in already:  # another writer scanned it meanwhile
                    report.already_scanned.append(str(photo.path))
                    continue
                row = ScannedPhoto(path=str(photo.path.resolve()), sha256=photo.sha256, size_bytes=photo.size_bytes,
                                   width=photo.width, height=photo.height)
                s.add(row)
                s.flush()
                report.scanned.append((str(photo.path), len(photo.faces)))
                if not photo.faces:
                    report.no_face.append(str(photo.path))
                # One person appears once in a photo: of two faces matched to the same person,
                # the more similar one is them and the other waits among the unknown faces.
                best: dict[str, float] = {}
                for match in found:
                    if match is not None and match.identity:
                        best[match.identity] = max(best.get(match.identity, -2.0), float(match.similarity))
                for face, match in zip(photo.faces, found):
                    who = ids.get(match.identity) if match is not None and match.identity else None
                    if who is not None and float(match.similarity) < best[match.identity]:
                        who = None
                    if who is not None:
                        report.identified.append((str(photo.path), match.identity, float(match.similarity)))
                    else:
                        report.unknown += 1
                    s.add(ScannedFace(
                        photo_id=row.id, x=float(face.box[0]), y=float(face.box[1]), w=float(face.box[2]),
                        h=float(face.box[3]),
                        landmarks=json.dumps(np.round(np.asarray(face.landmarks, float), 2).tolist()),
                        score=float(face.score), quality=float(face.quality),
                        embedding=np.asarray(face.embedding, "<f4").tobytes(),
                        state=IDENTIFIED if who is not None else UNKNOWN,
                        similarity=float(match.similarity) if who is not None else None, identity_id=who))

    def _scanned_hashes(self, hashes: Sequence[str]) -> set[str]:
        if not hashes:
            return set()
        with self.store.session() as s:
            return set(s.scalars(select(ScannedPhoto.sha256).where(ScannedPhoto.sha256.in_(list(hashes)))))

    @staticmethod
    def _identity_ids(s: Session) -> dict[str, int]:
        return {n: int(i) for i, n in s.execute(select(Identity.id, Identity.name))}

    # -- clustering -------------------------------------------------------------------------

    def _unknown(self, s: Session) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every unknown face: ``(face ids int64 (N,), photo ids int64 (N,), vectors float32 (N, D),
        cluster ids int64 (N,), -1 for none)``, by face id."""
        rows = s.execute(select(ScannedFace.id, ScannedFace.photo_id, ScannedFace.embedding, ScannedFace.cluster_id)
                         .where(ScannedFace.state == UNKNOWN).order_by(ScannedFace.id)).all()
        ids = np.fromiter((r[0] for r in rows), np.int64, count=len(rows))
        photos = np.fromiter((r[1] for r in rows), np.int64, count=len(rows))
        clusters = np.fromiter((-1 if r[3] is None else r[3] for r in rows), np.int64, count=len(rows))
        vectors = np.empty((len(rows), self.gallery.dim), np.float32)
        for k, r in enumerate(rows):
            vectors[k] = np.frombuffer(r[2], "<f4")
        return ids, photos, vectors, clusters

    @staticmethod
    def _links(s: Session, ids: np.ndarray) -> list[tuple[int, int]]:
        """Cannot-link pairs among ``ids`` (face ids), as row index pairs."""
        row = {int(f): k for k, f in enumerate(ids)}
        pairs = s.execute(select(PeopleConstraint.face_id, PeopleConstraint.other_face_id)
                          .where(PeopleConstraint.other_face_id.is_not(None))).all()
        return [(row[a], row[b]) for a, b in pairs if a in row and b in row]

    @staticmethod
    def _newest_face(s: Session) -> int:
        return int(s.scalar(select(func.coalesce(func.max(ScannedFace.id), 0))))

    @staticmethod
    def _clustered_upto(s: Session) -> int:
        """The newest scanned face id the last clustering saw (0 if none ran)."""
        last = s.scalar(select(PeopleAction.payload).where(PeopleAction.kind.in_(["cluster", "recluster"]))
                        .order_by(PeopleAction.id.desc()).limit(1))
        return int(json.loads(last)["upto"]) if last else 0

    @staticmethod
    def _reclustered_size(s: Session) -> int:
        """How many unknown faces the last full clustering saw (0 if none ran)."""
        last = s.scalar(select(PeopleAction.payload).where(PeopleAction.kind == "recluster")
                        .order_by(PeopleAction.id.desc()).limit(1))
        return int(json.loads(last).get("faces", 0)) if last else 0

    def update_clusters(self, *, only_new: bool = False) -> dict:
        """Cluster the unknown faces that wait (new ones, and those not yet in any candidate
        person): each joins an existing candidate person if it fits one, the rest are clustered
        among themselves into new ones. With ``only_new`` (what a scan does), nothing happens
        unless faces were stored since the last clustering (also by a scan that was killed), so
        a re-scan changes nothing. Once the library holds ``RECLUSTER_GROWTH`` (2) times the faces
        of its last full clustering (or never had one), every unknown face is clustered again
        instead, as :meth:`recluster` does (the thresholds follow the library's size, so clusters
        cut when it was half as large were cut looser than it now allows). Returns
        ``{"attached", "new_clusters", "clusters", "waiting"}``."""
        from facesearch.search.face_clusters import RECLUSTER_GROWTH, attach_faces, cluster_faces, separate

        with self.gallery._exclusive(), self.store.session() as s:
            upto = self._newest_face(s)
            if only_new and upto <= self._clustered_upto(s):
                return self._counts(s)
            ids, photos, vectors, clusters = self._unknown(s)
            links = self._links(s, ids)
            before = self._reclustered_size(s)
            if len(ids) >= RECLUSTER_GROWTH * before:
                # The thresholds follow the library's size: clusters formed when it was half as
                # large were cut looser than it now allows, so everything is clustered again.
                return self._recluster(s, ids, photos, vectors, clusters, links,
                                       "the library has doubled" if before else "first clustering")
            waiting = np.flatnonzero(clusters < 0)
            attached = new = 0
            labels = clusters.copy()
            if len(waiting):
                placed = np.flatnonzero(clusters >= 0)
                if len(placed):
                    # attach_faces indexes its cannot-link pairs into [new rows, existing rows].
                    where = {int(r): k for k, r in enumerate(waiting)}
                    where.update({int(r): len(waiting) + k for k, r in enumerate(placed)})
                    got = attach_faces(vectors[waiting], photos[waiting], vectors[placed], clusters[placed],
                                       photos[placed], cannot_link=[(where[a], where[b]) for a, b in links],
                                       library_size=len(ids))
                    labels[waiting] = got
                    labels = separate(labels, vectors, photos, links)
                    attached = int((labels[waiting] >= 0).sum())
                rest = waiting[labels[waiting] < 0]
                if len(rest):
                    where = {int(r): k for k, r in enumerate(rest)}
                    inner = [(where[a], where[b]) for a, b in links if a in where and b in where]
                    # As strict as clustering the whole library: the thresholds follow its size.
                    fresh = cluster_faces(vectors[rest], photos[rest], cannot_link=inner, library_size=len(ids))
                    fresh = separate(fresh, vectors[rest], photos[rest], inner)
                    for label in np.unique(fresh[fresh >= 0]):
                        cluster = PeopleCluster()
                        s.add(cluster)
                        s.flush()
                        labels[rest[fresh == label]] = cluster.id
                        new += 1
            self._write_labels(s, ids, clusters, labels)
            self._log(s, "cluster", {"upto": upto, "summary": f"clustered: {new} new candidate(s), {attached} face(s) "
                                                              "joined one"})
            return {"attached": attached, "new_clusters": new, "clusters": int(len(np.unique(labels[labels >= 0]))),
                    "waiting": int((labels < 0).sum())}

    def cluster_counts(self) -> dict:
        """How the candidate people stand, nothing clustered: ``{"attached": 0, "new_clusters": 0,
        "clusters", "waiting"}``."""
        with self.store.session() as s:
            return self._counts(s)

    @staticmethod
    def _counts(s: Session) -> dict:
        counts = dict(s.execute(select(ScannedFace.cluster_id.is_(None), func.count(func.distinct(
            func.coalesce(ScannedFace.cluster_id, -ScannedFace.id)))).where(ScannedFace.state == UNKNOWN)
            .group_by(ScannedFace.cluster_id.is_(None))).all())
        return {"attached": 0, "new_clusters": 0, "clusters": int(counts.get(False, 0)),
                "waiting": int(counts.get(True, 0))}

    def recluster(self) -> dict:
        """Cluster every unknown face again from scratch (split cannot-links and photos honoured).
        A new candidate person keeps the id of the old one that held most of its faces. Returns
        ``{"attached": 0, "new_clusters", "clusters", "waiting"}``."""
        with self.gallery._exclusive(), self.store.session() as s:
            ids, photos, vectors, clusters = self._unknown(s)
            return self._recluster(s, ids, photos, vectors, clusters, self._links(s, ids), "on request")

    def _recluster(self, s: Session, ids: np.ndarray, photos: np.ndarray, vectors: np.ndarray, clusters: np.ndarray,
                   links: list[tuple[int, int]], why: str) -> dict:
        from facesearch.search.face_clusters import cluster_faces, separate

        fresh = separate(cluster_faces(vectors, photos, cannot_link=links), vectors, photos, links) \
            if len(ids) else np.zeros(0, np.int64)
        labels = np.full(len(ids), -1, np.int64)
        taken: set[int] = set()
        new = 0
        groups = sorted((np.flatnonzero(fresh == label) for label in np.unique(fresh[fresh >= 0])),
                        key=len, reverse=True)
        for rows in groups:
            votes = Counter(int(c) for c in clusters[rows] if c >= 0 and int(c) not in taken)
            if votes:
                cluster_id = votes.most_common(1)[0][0]
            else:
                cluster = PeopleCluster()
                s.add(cluster)
                s.flush()
                cluster_id, new = cluster.id, new + 1
            taken.add(cluster_id)
            labels[rows] = cluster_id
        self._write_labels(s, ids, clusters, labels)
        self._log(s, "recluster", {"upto": self._newest_face(s), "faces": len(ids),
                                   "summary": f"re-clustered ({why}): {len(groups)} candidate(s)"})
        return {"attached": 0, "new_clusters": new, "clusters": len(groups), "waiting": int((labels < 0).sum())}

    @staticmethod
    def _write_labels(s: Session, ids: np.ndarray, before: np.ndarray, after: np.ndarray) -> None:
        changed = np.flatnonzero(before != after)
        if len(changed):
            s.execute(update(ScannedFace), [{"id": int(ids[k]), "cluster_id": None if after[k] < 0 else int(after[k])}
                                            for k in changed])

    # -- reading ----------------------------------------------------------------------------

    def list(self, sample: int = 8) -> dict:
        """The candidate people, largest first, and how the scanned library stands:
        ``{"clusters": [{"id", "faces", "photos", "sample": [face ids, sharpest first], "suggestion"}],
        "waiting", "people": [{"name", "faces", "photos"}], "photos", "faces"}``.

        ``suggestion`` is ``{"name", "faces"}`` when at least half of a candidate's faces match that
        enrolled person at the calibrated threshold (faces said not to be them do not count):
        most likely a part of someone already named, to merge by naming it alike. Else ``None``.
        """
        with self.store.session() as s:
            rows = s.execute(select(ScannedFace.cluster_id, ScannedFace.id, ScannedFace.photo_id)
                             .where(ScannedFace.state == UNKNOWN, ScannedFace.cluster_id.is_not(None))
                             .order_by(ScannedFace.quality.desc(), ScannedFace.id)).all()
            waiting = s.scalar(select(func.count(ScannedFace.id)).where(
                ScannedFace.state == UNKNOWN, ScannedFace.cluster_id.is_(None)))
            people = s.execute(select(Identity.name, func.count(ScannedFace.id),
                                      func.count(func.distinct(ScannedFace.photo_id)))
                               .join(ScannedFace, ScannedFace.identity_id == Identity.id)
                               .group_by(Identity.name).order_by(func.count(ScannedFace.id).desc(), Identity.name)).all()
            n_photos = s.scalar(select(func.count(ScannedPhoto.id)))
            n_faces = s.scalar(select(func.count(ScannedFace.id)))
        faces: dict[int, list[int]] = defaultdict(list)
        photos: dict[int, set[int]] = defaultdict(set)
        for cluster, face, photo in rows:
            faces[cluster].append(int(face))
            photos[cluster].add(int(photo))
        order = sorted(faces, key=lambda c: (-len(faces[c]), c))
        suggestions = self._suggestions(faces)
        return {"clusters": [{"id": int(c), "faces": len(faces[c]), "photos": len(photos[c]), "sample": faces[c][:sample],
                              "suggestion": suggestions.get(c)} for c in order],
                "waiting": int(waiting), "people": [{"name": n, "faces": int(f), "photos": int(p)} for n, f, p in people],
                "photos": int(n_photos), "faces": int(n_faces)}

    def _suggestions(self, faces: dict[int, list[int]]) -> dict[int, dict]:
        """``{cluster: {"name", "faces"}}`` for the candidates most of whose faces match one enrolled
        person at the calibrated threshold (see :meth:`list`)."""
        if not faces or self.gallery.is_empty():
            return {}
        ids = [f for members in faces.values() for f in members]
        with self.store.session() as s:
            vectors = {int(i): np.frombuffer(e, "<f4") for i, e in s.execute(
                select(ScannedFace.id, ScannedFace.embedding).where(ScannedFace.id.in_(ids)))}
            refused = {(int(f), n) for f, n in s.execute(
                select(PeopleConstraint.face_id, Identity.name).join(Identity, Identity.id == PeopleConstraint.identity_id))}
        with self.gallery._guard:
            matches = self.gallery.matcher().identify(np.stack([vectors[f] for f in ids]).astype(np.float32))
        who = {f: m.identity for f, m in zip(ids, matches) if m.identity is not None and (f, m.identity) not in refused}
        out = {}
        for cluster, members in faces.items():
            votes = Counter(who[f] for f in members if f in who)
            if votes:
                name, count = votes.most_common(1)[0]
                if 2 * count >= len(members):
                    out[cluster] = {"name": name, "faces": count}
        return out

    def show(self, cluster: int) -> dict:
        """One candidate person's faces: ``{"id", "faces": [{"face", "path", "box", "quality"}]}``.

        Raises:
            NotFoundError: no candidate person has that id (or it has no face left).
        """
        with self.store.session() as s:
            rows = s.execute(select(ScannedFace, ScannedPhoto.path).join(ScannedPhoto, ScannedPhoto.id == ScannedFace.photo_id)
                             .where(ScannedFace.cluster_id == cluster, ScannedFace.state == UNKNOWN)
                             .order_by(ScannedFace.id)).all()
        if not rows:
            raise NotFoundError(f"no candidate person {cluster} (see `facesearch people list`)")
        return {"id": cluster, "faces": [{"face": f.id, "path": p, "box": _box(f), "quality": round(f.quality, 1)}
                                         for f, p in rows]}

    def photos(self, name: str) -> dict:
        """Every scanned photo in which ``name`` appears (identified when scanned, or named):
        ``{"name", "photos": [{"path", "faces": [{"face", "box", "state", "similarity"}]}]}``.

        Raises:
            NotFoundError: no identity is called ``name``.
        """
        with self.store.session() as s:
            identity = self._identity(s, name)
            rows = s.execute(select(ScannedFace, ScannedPhoto.path).join(ScannedPhoto, ScannedPhoto.id == ScannedFace.photo_id)
                             .where(ScannedFace.identity_id == identity.id).order_by(ScannedPhoto.path, ScannedFace.id)).all()
        out: dict[str, list[dict]] = {}
        for face, path in rows:
            out.setdefault(path, []).append({"face": face.id, "box": _box(face), "state": face.state,
                                             "similarity": None if face.similarity is None else round(face.similarity, 4)})
        return {"name": name, "photos": [{"path": p, "faces": f} for p, f in out.items()]}

    def face_thumbnail(self, face_id: int, side: int = 112) -> bytes:
        """A JPEG of one scanned face, ``side`` pixels square, cut from its photo.

        Raises:
            NotFoundError: no scanned face has that id.
            ImageError: its photo is gone or unreadable.
        """
        with self.store.session() as s:
            row = s.execute(select(ScannedFace, ScannedPhoto.path).join(ScannedPhoto, ScannedPhoto.id == ScannedFace.photo_id)
                            .where(ScannedFace.id == face_id)).first()
        if row is None:
            raise NotFoundError(f"no scanned face with id {face_id}")
        return encode_jpeg(face_thumbnail(load_image(row[1]), _box(row[0]), side))

    def sheet(self, out: str | os.PathLike, *, per_row: int = 8, side: int = 96, max_rows: int = 50) -> dict:
        """Write a contact sheet PNG to ``out``: one row per candidate person, largest first (at most
        ``max_rows``), with up to ``per_row`` of its sharpest faces. Private (0600): faces are
        biometric. Returns ``{"sheet", "rows"}``; photos that cannot be read leave a black square."""
        from PIL import Image

        from facesearch.atomic import replace_atomically
        from facesearch.imaging.contact_sheet import contact_sheet

        listing = self.list(sample=per_row)["clusters"][:max_rows]
        wanted = [f for c in listing for f in c["sample"]]
        with self.store.session() as s:
            rows = {f.id: (f, p) for f, p in s.execute(
                select(ScannedFace, ScannedPhoto.path).join(ScannedPhoto, ScannedPhoto.id == ScannedFace.photo_id)
                .where(ScannedFace.id.in_(wanted)))}
        images: dict[str, np.ndarray | None] = {}

        def thumb(face_id: int) -> np.ndarray:
            face, path = rows[face_id]
            if path not in images:
                try:
                    images[path] = load_image(path)
                except Exception as exc:  # a moved photo leaves a gap, not a failed sheet
                    log.warning("%s: %s", path, exc)
                    images[path] = None
            image = images[path]
            return np.zeros((side, side, 3), np.uint8) if image is None else face_thumbnail(image, _box(face), side)

        picture = contact_sheet([(f"#{c['id']}\n{c['faces']} faces", [thumb(f) for f in c["sample"]]) for c in listing],
                                side, per_row)
        replace_atomically(out, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))
        return {"sheet": str(out), "rows": len(listing)}

    def scanned_faces(self) -> int:
        """How many scanned faces the library holds (unknown, identified or named)."""
        with self.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(ScannedFace)) or 0)

    def history(self) -> list[dict]:
        """Every name, not and split, newest first: ``{"id", "kind", "summary", "at", "undone"}``
        (clusterings are logged too, but are not for undoing and not listed)."""
        with self.store.session() as s:
            rows = s.scalars(select(PeopleAction).where(PeopleAction.kind.in_(UNDOABLE))
                             .order_by(PeopleAction.id.desc())).all()
        return [{"id": a.id, "kind": a.kind, **{k: v for k, v in json.loads(a.payload).items() if k == "summary"},
                 "at": a.created_at.replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
                 "undone": a.undone_at is not None} for a in rows]

    # -- feedback ---------------------------------------------------------------------------

    @staticmethod
    def _identity(s: Session, name: str) -> Identity:
        identity = s.scalar(select(Identity).where(Identity.name == name))
        if identity is None:
            raise NotFoundError(f"no identity named {name!r} in the gallery")
        return identity

    def _enroll(self, s: Session, identity: Identity, faces: Sequence[tuple[ScannedFace, ScannedPhoto]],
                generation: int) -> None:
        """Copy scanned faces into the gallery's faces as ``identity`` (its sum updated); each scanned
        face becomes ``named`` and points at its copy."""
        rows = []
        for face, photo in faces:
            image = s.scalar(select(SourceImage).where(SourceImage.sha256 == photo.sha256))
            if image is None:
                image = SourceImage(path=photo.path, sha256=photo.sha256, size_bytes=photo.size_bytes,
                                    width=photo.width, height=photo.height)
                s.add(image)
                s.flush()
            row = FaceRow(image_id=image.id, identity_id=identity.id, x=face.x, y=face.y, w=face.w, h=face.h,
                          landmarks=face.landmarks, score=face.score, quality=face.quality, embedding=face.embedding,
                          added_gen=generation)
            s.add(row)
            rows.append((face, row))
        s.flush()
        for face, row in rows:
            face.state, face.identity_id, face.enrolled_face_id = NAMED, identity.id, row.id
            face.cluster_id, face.similarity = None, None
        if rows:
            self.store._add_to_sums(s, identity, np.stack([np.frombuffer(f.embedding, "<f4") for f, _ in rows]),
                                    generation)

    def _unenroll(self, s: Session, face_ids: Sequence[int], generation: int) -> None:
        """Remove gallery faces as any removal does (:meth:`Store._remove_faces`); the scanned faces
        they were made from lose their copy, and the identified ones of an identity that went with
        its last face wait among the unknown faces again."""
        s.execute(update(ScannedFace).where(ScannedFace.enrolled_face_id.in_(list(face_ids)))
                  .values(enrolled_face_id=None))
        gone = [name for name, left in self.store._remove_faces(s, face_ids, generation).items() if not left]
        if gone:
            # The identity's deletion has set their identity_id to NULL (ON DELETE SET NULL).
            s.execute(update(ScannedFace).where(ScannedFace.identity_id.is_(None), ScannedFace.state == IDENTIFIED)
                      .values(state=UNKNOWN, similarity=None))

    @staticmethod
    def _log(s: Session, kind: str, payload: dict) -> PeopleAction:
        action = PeopleAction(kind=kind, payload=json.dumps(payload))
        s.add(action)
        s.flush()
        return action

    def name(self, cluster: int, name: str) -> dict:
        """Enroll candidate person ``cluster`` as ``name``: a new identity, or merged into the one of
        that name. Its faces become gallery faces, so queries and later scans find the person.
        Faces the user said are not ``name`` (``people not``), and faces from a photo where ``name``
        already appears, stay unknown. Returns ``{"action", "cluster", "name", "created", "named",
        "left_out", "identified"}``.

        Then the unknown faces still waiting (in no candidate person) that now match ``name`` at the
        calibrated threshold, as a later scan would match them, are recorded as identified
        (``"identified"``: their ids); undoing the naming returns them.

        Raises:
            NotFoundError: no candidate person has that id.
            GalleryError: the name is empty.
        """
        name = name.strip()
        if not name:
            raise GalleryError("the name is empty")
        with self.gallery._writing():
            named = self._name(cluster, name)
            # Waiting faces of the photos scanned so far are matched as a later scan's would be.
            named["identified"] = self._identify_waiting(name, named["action"])
        return named

    def _name(self, cluster: int, name: str) -> dict:
        with self.store.session() as s:
            rows = s.execute(select(ScannedFace, ScannedPhoto).join(ScannedPhoto, ScannedPhoto.id == ScannedFace.photo_id)
                             .where(ScannedFace.cluster_id == cluster, ScannedFace.state == UNKNOWN)
                             .order_by(ScannedFace.id)).all()
            if not rows:
                raise NotFoundError(f"no candidate person {cluster} (see `facesearch people list`)")
            identity = s.scalar(select(Identity).where(Identity.name == name))
            created = identity is None
            refused: set[int] = set()
            busy: set[int] = set()
            if not created:
                refused = set(s.scalars(select(PeopleConstraint.face_id).where(PeopleConstraint.identity_id == identity.id)))
                busy = set(s.scalars(select(ScannedFace.photo_id).where(ScannedFace.identity_id == identity.id)))
            generation = self.store._bump(s)
            if created:
                identity = Identity(name=name)
                s.add(identity)
                s.flush()
            keep, left_out = [], []
            for face, photo in rows:
                if face.id in refused or face.photo_id in busy:
                    left_out.append(face.id)
                    face.cluster_id = None
                else:
                    keep.append((face, photo))
                    busy.add(face.photo_id)
            self._enroll(s, identity, keep, generation)
            named = [f.id for f, _ in keep]
            action = self._log(s, "name", {"cluster": cluster, "name": name, "created": created, "faces": named,
                                           "left_out": left_out,
                                           "summary": f"named candidate person {cluster} {name!r} ({len(named)} faces)"})
        return {"action": action.id, "cluster": cluster, "name": name, "created": created, "named": len(named),
                "left_out": left_out}

    def _identify_waiting(self, name: str, action_id: int) -> list[int]:
        """Waiting unknown faces whose best match at the calibrated threshold is now ``name`` become
        identified as ``name`` (not refused, one a photo, none in a photo that already has them);
        recorded in action ``action_id`` for undo. Returns their ids."""
        with self.store.session() as s:
            identity = self._identity(s, name)
            rows = s.execute(select(ScannedFace.id, ScannedFace.photo_id, ScannedFace.embedding).where(
                ScannedFace.state == UNKNOWN, ScannedFace.cluster_id.is_(None))).all()
            refused = set(s.scalars(select(PeopleConstraint.face_id).where(PeopleConstraint.identity_id == identity.id)))
            busy = set(s.scalars(select(ScannedFace.photo_id).where(ScannedFace.identity_id == identity.id)))
        rows = [r for r in rows if r[0] not in refused and r[1] not in busy]
        if not rows:
            return []
        with self.gallery._guard:
            matches = self.gallery.matcher().identify(np.stack([np.frombuffer(r[2], "<f4") for r in rows]))
        best: dict[int, tuple[float, int]] = {}
        for (face, photo, _), match in zip(rows, matches):
            if match.identity == name and match.similarity > best.get(photo, (-np.inf, 0))[0]:
                best[photo] = (float(match.similarity), int(face))
        if not best:
            return []
        with self.store.session() as s:
            s.execute(update(ScannedFace), [{"id": face, "state": IDENTIFIED, "identity_id": identity.id,
                                             "similarity": sim} for sim, face in best.values()])
            action = s.get(PeopleAction, action_id)
            action.payload = json.dumps({**json.loads(action.payload), "identified": sorted(f for _, f in best.values())})
        return sorted(f for _, f in best.values())

    def reject(self, face_id: int, name: str) -> dict:
        """``people not FACE NAME``: scanned face ``face_id`` is not ``name``. If it was given to
        ``name`` (identified, or named and enrolled) it goes back to the unknown faces (its gallery
        copy removed); from now on neither naming nor undoing gives it to ``name`` again.
        Returns ``{"action", "face", "name", "was"}`` (``was``: its state before).

        Raises:
            NotFoundError: no scanned face ``face_id``, or no identity ``name``.
        """
        with self.gallery._writing(), self.store.session() as s:
            face = s.get(ScannedFace, face_id)
            if face is None:
                raise NotFoundError(f"no scanned face with id {face_id}")
            identity = self._identity(s, name)
            before = {"state": face.state, "identity_id": face.identity_id, "similarity": face.similarity,
                      "cluster_id": face.cluster_id}
            identity_id = identity.id
            if face.identity_id == identity_id:
                if face.enrolled_face_id is not None:
                    self._unenroll(s, [face.enrolled_face_id], self.store._bump(s))
                    s.refresh(face)
                face.state, face.identity_id, face.similarity, face.cluster_id = UNKNOWN, None, None, None
            # Its last gallery face gone, the identity is too: nothing is left to keep the face from.
            remains = s.scalar(select(func.count(Identity.id)).where(Identity.id == identity_id)) > 0
            action = self._log(s, "not", {"face": face_id, "name": name, "before": before,
                                          "summary": f"face {face_id} is not {name!r}"})
            if remains:
                s.add(PeopleConstraint(face_id=face_id, identity_id=identity_id, action_id=action.id))
        return {"action": action.id, "face": face_id, "name": name, "was": before["state"]}

    def split(self, cluster: int, faces: Sequence[int]) -> dict:
        """Take ``faces`` out of candidate person ``cluster`` into a new candidate person of their
        own; they are never clustered with the faces that stayed again. Returns ``{"action",
        "cluster", "new_cluster", "faces"}``.

        Raises:
            NotFoundError: no such candidate person, or a face is not in it.
            GalleryError: no face given, or all of them (nothing would stay).
        """
        wanted = sorted({int(f) for f in faces})
        if not wanted:
            raise GalleryError("name at least one face to split off")
        with self.gallery._writing(), self.store.session() as s:
            members = set(s.scalars(select(ScannedFace.id).where(ScannedFace.cluster_id == cluster,
                                                                 ScannedFace.state == UNKNOWN)))
            if not members:
                raise NotFoundError(f"no candidate person {cluster} (see `facesearch people list`)")
            stray = [f for f in wanted if f not in members]
            if stray:
                raise NotFoundError(f"face {stray[0]} is not in candidate person {cluster}")
            stay = sorted(members - set(wanted))
            if not stay:
                raise GalleryError(f"splitting every face off candidate person {cluster} leaves nothing behind")
            new = PeopleCluster()
            s.add(new)
            s.flush()
            s.execute(update(ScannedFace).where(ScannedFace.id.in_(wanted)).values(cluster_id=new.id))
            action = self._log(s, "split", {"cluster": cluster, "new_cluster": new.id, "faces": wanted,
                                            "summary": f"split {len(wanted)} face(s) off candidate person {cluster}"})
            s.execute(insert(PeopleConstraint), [{"face_id": a, "other_face_id": b, "action_id": action.id}
                                                 for a in wanted for b in stay])
        return {"action": action.id, "cluster": cluster, "new_cluster": new.id, "faces": wanted}

    def undo(self) -> dict:
        """Revert the newest name, not or split not yet undone. Returns ``{"undone": action id,
        "kind", "summary"}``.

        Raises:
            NotFoundError: nothing is left to undo.
        """
        with self.gallery._writing(), self.store.session() as s:
            action = s.scalar(select(PeopleAction).where(PeopleAction.undone_at.is_(None),
                                                         PeopleAction.kind.in_(UNDOABLE))
                              .order_by(PeopleAction.id.desc()).limit(1))
            if action is None:
                raise NotFoundError("nothing to undo")
            payload = json.loads(action.payload)
            getattr(self, f"_undo_{action.kind}")(s, payload, action.id)
            action.undone_at = _now()
        return {"undone": action.id, "kind": action.kind, "summary": payload.get("summary", "")}

    def _undo_name(self, s: Session, payload: dict, action_id: int) -> None:
        faces = payload["faces"]
        enrolled = list(s.scalars(select(ScannedFace.enrolled_face_id).where(
            ScannedFace.id.in_(faces), ScannedFace.enrolled_face_id.is_not(None))))
        self._unenroll(s, enrolled, self.store._bump(s))
        s.execute(update(ScannedFace).where(ScannedFace.id.in_(payload.get("identified", [])),
                                            ScannedFace.state == IDENTIFIED)
                  .values(state=UNKNOWN, identity_id=None, similarity=None, cluster_id=None))
        back = faces + payload["left_out"]
        s.execute(update(ScannedFace).where(ScannedFace.id.in_(back), ScannedFace.state.in_([NAMED, UNKNOWN]))
                  .values(state=UNKNOWN, identity_id=None, enrolled_face_id=None, similarity=None,
                          cluster_id=payload["cluster"]))

    def _undo_not(self, s: Session, payload: dict, action_id: int) -> None:
        s.execute(delete(PeopleConstraint).where(PeopleConstraint.action_id == action_id))
        before = payload["before"]
        face = s.get(ScannedFace, payload["face"])
        if face is None or face.state != UNKNOWN:
            return
        face.cluster_id = before["cluster_id"]
        if before["identity_id"] is None:
            return
        # By name: the identity may have gone with the face (its last) or been merged since.
        identity = s.scalar(select(Identity).where(Identity.name == payload["name"]))
        if identity is None and before["state"] == NAMED:
            identity = Identity(name=payload["name"])
            s.add(identity)
            s.flush()
        if before["state"] == IDENTIFIED and identity is not None:
            face.state, face.identity_id, face.similarity, face.cluster_id = IDENTIFIED, identity.id, before["similarity"], None
        elif before["state"] == NAMED:
            photo = s.get(ScannedPhoto, face.photo_id)
            self._enroll(s, identity, [(face, photo)], self.store._bump(s))

    def _undo_split(self, s: Session, payload: dict, action_id: int) -> None:
        s.execute(delete(PeopleConstraint).where(PeopleConstraint.action_id == action_id))
        s.execute(update(ScannedFace).where(ScannedFace.id.in_(payload["faces"]), ScannedFace.state == UNKNOWN)
                  .values(cluster_id=payload["cluster"]))

    # -- removal ----------------------------------------------------------------------------

    def forget_identity(self, name: str) -> list[str]:
        """Delete every scanned face given to identity ``name`` (identified or named), before the
        identity itself is removed; returns the content hashes of their photos (whose cached faces
        the caller forgets). Nothing for an unknown name."""
        with self.store.session() as s:
            identity = s.scalar(select(Identity).where(Identity.name == name))
            if identity is None:
                return []
            hashes = sorted(set(s.scalars(select(ScannedPhoto.sha256).join(ScannedFace, ScannedFace.photo_id == ScannedPhoto.id)
                                          .where(ScannedFace.identity_id == identity.id))))
            s.execute(delete(ScannedFace).where(ScannedFace.identity_id == identity.id))
        return hashes

    def merge_identity(self, old: str, new: str) -> None:
        """Before identity ``old`` is merged into ``new`` (``facesearch rename`` onto an existing
        name): its scanned faces and the faces said not to be it move to ``new``. Nothing to do for
        a plain rename (the identity keeps its id)."""
        with self.store.session() as s:
            source = s.scalar(select(Identity.id).where(Identity.name == old))
            target = s.scalar(select(Identity.id).where(Identity.name == new.strip()))
            if source is None or target is None or source == target:
                return
            s.execute(update(ScannedFace).where(ScannedFace.identity_id == source).values(identity_id=target))
            s.execute(update(PeopleConstraint).where(PeopleConstraint.identity_id == source).values(identity_id=target))

    def release_orphans(self) -> int:
        """Scanned faces whose identity went with its last gallery face become unknown (waiting to be
        clustered) again; returns how many."""
        with self.store.session() as s:
            return s.execute(update(ScannedFace).where(ScannedFace.state != UNKNOWN, ScannedFace.identity_id.is_(None))
                             .values(state=UNKNOWN, similarity=None, enrolled_face_id=None, cluster_id=None)).rowcount

    def paths_in_use(self, paths: Sequence[str]) -> set[str]:
        """Which of ``paths`` a scanned photo still has."""
        if not paths:
            return set()
        with self.store.session() as s:
            return set(s.scalars(select(ScannedPhoto.path).where(ScannedPhoto.path.in_(list(paths)))))

    def forget_enrolled_face(self, face_id: int) -> list[str]:
        """Delete the scanned face whose gallery copy is ``face_id`` (before that is removed); returns
        its photo's content hash, if there was one."""
        with self.store.session() as s:
            hashes = sorted(set(s.scalars(select(ScannedPhoto.sha256).join(ScannedFace, ScannedFace.photo_id == ScannedPhoto.id)
                                          .where(ScannedFace.enrolled_face_id == face_id))))
            s.execute(delete(ScannedFace).where(ScannedFace.enrolled_face_id == face_id))
        return hashes
