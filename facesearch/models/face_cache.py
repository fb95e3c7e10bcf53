"""On-disk cache of the faces found in a photo, keyed by the photo's content and the settings.

Detection and FaceNet cost about a second a photo on a laptop CPU; enrolling the same photo
into another gallery, or benchmarking the same dataset twice, should not pay that again. An
entry is keyed by the sha256 of the photo's bytes and a hash of every setting that changes
the result (detector thresholds, crop method, model id), so a change of settings never
returns stale faces.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from facesearch.models.analysis import Face
from facesearch.atomic import replace_atomically
from facesearch.paths import faces_cache_dir

log = logging.getLogger(__name__)


def settings_key(settings: dict) -> str:
    """A short stable hash of a settings dict."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class FaceCache:
    """Faces per photo under ``root/<settings hash>/<sha[:2]>/<sha>.npz``.

    Args:
        root: cache folder (created on first write).
        settings: the analysis settings this cache is for.
    """

    def __init__(self, root: str | os.PathLike, settings: dict) -> None:
        self.folder = Path(root) / settings_key(settings)
        self.settings = settings

    @classmethod
    def for_settings(cls, settings: dict, root: str | os.PathLike | None = None) -> "FaceCache":
        """The cache of one analysis's settings, under ``root`` or the default faces cache folder."""
        return cls(faces_cache_dir() if root is None else root, settings)

    def _path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npz"

    def get(self, sha256: str) -> tuple[list[Face], tuple[int, int]] | None:
        """Cached ``(faces, (width, height))`` for a photo, or ``None``."""
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

        replace_atomically(path, write)
