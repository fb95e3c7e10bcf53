"""Replace a file atomically: readers and crashes see the old file or the new one, never half.

Every file facesearch writes for later (FAISS indexes, their manifest, cached faces, model
weights and their sidecars) goes through :func:`replace_atomically`.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable

#: mkstemp makes 0600 files; these are plain data that other users of a shared cache may read.
FILE_MODE = 0o644


def replace_atomically(path: str | os.PathLike, write: Callable[[Path], None], *, suffix: str = ".tmp") -> None:
    """Call ``write(tmp)`` on a fresh temporary file beside ``path``, fsync it, rename it over ``path``.

    ``suffix`` is the temporary file's ending, for writers that insist on one (Keras wants
    ``.weights.h5``). If ``write`` raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
