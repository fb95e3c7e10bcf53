"""Replace a file atomically: readers and crashes see the old file or the new one, never half.

Every file facesearch writes for later (FAISS indexes, their manifest, cached faces, model
weights and their sidecars) goes through :func:`replace_atomically`. Files are private (0600)
unless the caller says otherwise: see :mod:`facesearch.permissions`.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable

from facesearch.permissions import PRIVATE_FILE, dir_mode_for, make_dirs


def replace_atomically(path: str | os.PathLike, write: Callable[[Path], None], *, suffix: str = ".tmp",
                       mode: int = PRIVATE_FILE) -> None:
    """Call ``write(tmp)`` on a fresh temporary file beside ``path``, fsync it, rename it over ``path``.

    ``suffix`` is the temporary file's ending, for writers that insist on one (Keras wants
    ``.weights.h5``). ``mode`` is the file's permission bits, whatever the umask: owner only
    (0600) by default, since most of what facesearch keeps is biometric; model weights pass
    :data:`~facesearch.permissions.SHARED_FILE`. Missing folders above ``path`` are created with
    the matching folder mode (0700 for 0600). If ``write`` raises, the temporary file is removed
    and ``path`` is untouched.
    """
    path = Path(path)
    make_dirs(path.parent, dir_mode_for(mode))
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
