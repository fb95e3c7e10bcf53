"""On-disk cache of the faces found in a photo, keyed by the photo's content and the settings.

Detection and FaceNet cost about a second a photo on a laptop CPU; enrolling the same photo
into another gallery, or benchmarking the same dataset twice, should not pay that again. An
entry is keyed by the sha256 of the photo's bytes and a hash of every setting that changes
the result (detector thresholds, crop method, model id), so a change of settings never
returns stale faces.

Entries hold face embeddings, which are biometric data: the cache folder and everything in it
are private to the user (folders 0700, files 0600, see :mod:`facesearch.permissions`), and
:func:`forget` deletes a photo's entries when its person is removed from a gallery.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Iterable

from facesearch.models.analysis import CROP_PHOTOS, Face
from facesearch.models.crop_input import SMALL_PHOTO, crop_framing
from facesearch.atomic import replace_atomically
from facesearch.paths import faces_cache_dir
from facesearch.permissions import PRIVATE_DIR, make_dirs, tighten
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

log = logging.getLogger(__name__)


def settings_key(settings: dict) -> str:
    """A short stable hash of a settings dict."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class FaceCache:
    """Faces per photo under ``root/<settings hash>/<sha[:2]>/<sha>.npz``.

    Args:
        root: cache folder (created on first write, 0700; an existing one looser than that is
            made private on the first write).
        settings: the analysis settings this cache is for.
    """

    def __init__(self, root: str | os.PathLike, settings: dict) -> None:
        self.root = Path(root)
        self.folder = self.root / settings_key(settings)
        self.settings = settings
        self._private = False
        # Entries made before photos that are face crops were read as such
        # (facesearch.models.crop_input) live under the same settings less that key; those
        # of photos that are not crops are still exact and are read from there (never written).
        older = {k: v for k, v in settings.items() if k != CROP_PHOTOS}
        self._older = FaceCache(root, older) if older != settings else None

    @classmethod
    def for_settings(cls, settings: dict, root: str | os.PathLike | None = None) -> "FaceCache":
        """The cache of one analysis's settings, under ``root`` or the default faces cache folder."""
        return cls(faces_cache_dir() if root is None else root, settings)

    def _path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npz"

    def get(self, sha256: str) -> tuple[list[Face], tuple[int, int]] | None:
        """Cached ``(faces, (width, height))`` for a photo, or ``None``."""
        hit = self._read(sha256)
        if hit is None and self._older is not None:
            hit = self._older._read(sha256)
            faces, size = hit if hit is not None else ([], (0, 0))
            if hit is not None and ((len(faces) == 1 and crop_framing(faces[0].box, *size))
                                    or (not faces and min(size) <= SMALL_PHOTO)):
                return None  # a crop, framed differently now, or a small photo searched again
        return hit

    def _read(self, sha256: str) -> tuple[list[Face], tuple[int, int]] | None:
        path = self._path(sha256)
        try:
            with np.load(path) as z:
                boxes, marks, scores, quals, embs = (z["boxes"], z["landmarks"], z["scores"],
                                                     z["quality"], z["embeddings"])
                size = tuple(int(v) for v in z["size"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:  # a torn or foreign file: recompute
            log.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None
        faces = [Face(box=tuple(float(v) for v in b), landmarks=m, score=float(s), quality=float(q),
                      embedding=e) for b, m, s, q, e in zip(boxes, marks, scores, quals, embs)]
        return faces, size

    def put(self, sha256: str, faces: list[Face], size: tuple[int, int]) -> None:
        """Store the faces of a photo (atomically, so concurrent readers never see half a file)."""
        path = self._path(sha256)
        dim = faces[0].embedding.shape[0] if faces else 0
        arrays = {
            "boxes": np.array([f.box for f in faces], np.float32).reshape(-1, 4),
            "landmarks": np.array([f.landmarks for f in faces], np.float32).reshape(-1, 5, 2),
            "scores": np.array([f.score for f in faces], np.float32),
            "quality": np.array([f.quality for f in faces], np.float32),
            "embeddings": np.array([f.embedding for f in faces], np.float32).reshape(len(faces), dim),
            "size": np.array(size, np.int64),
        }
        # A file object, not a name: np.savez would append ".npz" to the temporary name.
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        self._make_private()
        replace_atomically(path, write)

    def _make_private(self) -> None:
        # Once per instance: the folders above the cache keep the umask's mode (they hold
        # model weights too); the cache folder itself and its settings folder are made
        # private, which also closes a cache written by an older version to others (its
        # entries can no longer be reached without search permission on these folders).
        if self._private:
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        make_dirs(self.folder, PRIVATE_DIR)
        for folder in (self.root, self.folder):
            if os.stat(folder).st_mode & 0o077:
                tighten(folder)
        self._private = True


def forget(sha256s: Iterable[str], root: str | os.PathLike | None = None) -> int:
    """Delete the cached faces of the photos with these sha256s, under every settings folder.

    Args:
        sha256s: photo content hashes, 64 lower-case hex digits each.
        root: the faces cache folder (default :func:`facesearch.paths.faces_cache_dir`).
    Returns:
        The number of files deleted (entries, and temporary files an interrupted write left).
    """
    root = faces_cache_dir() if root is None else Path(root)
    try:
        settings_folders = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except FileNotFoundError:
        return 0
    deleted = 0
    for sha in set(sha256s):
        for folder in settings_folders:
            prefix = folder / sha[:2]
            # The entry, and any ".<sha>.npz.*" temporary file left by an interrupted put().
            for path in [prefix / f"{sha}.npz", *prefix.glob(f".{sha}.npz.*")]:
                try:
                    path.unlink()
                    deleted += 1
                except FileNotFoundError:
                    pass
    return deleted
