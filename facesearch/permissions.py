"""Who may read the files facesearch writes.

A gallery (its database, FAISS indexes, manifest and lock files) and the per-photo face cache
hold biometric data: face embeddings, face boxes, photo hashes. They are private to the user
who made them: folders :data:`PRIVATE_DIR` (0700), files :data:`PRIVATE_FILE` (0600), whatever
the umask. Model weights are not personal; they stay readable by others who share a cache
(:data:`SHARED_FILE`, 0644, in :data:`SHARED_DIR` folders, 0755).

On Windows ``chmod`` only sets the read-only flag; privacy there comes from the user's profile
folders' access lists.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SHARED_DIR = 0o755
SHARED_FILE = 0o644

# Group and others' bits: what tightening takes away.
_OTHERS = 0o077


def dir_mode_for(file_mode: int) -> int:
    """The folder mode that goes with ``file_mode``: search (x) wherever read (r) is allowed.

    0600 -> 0700, 0644 -> 0755.
    """
    return file_mode | ((file_mode & 0o444) >> 2)


def make_dirs(path: str | os.PathLike, mode: int = PRIVATE_DIR) -> None:
    """Create the folder ``path`` and its missing parents, each new one with exactly ``mode``.

    Unlike ``Path.mkdir(mode=...)`` the umask cannot loosen or tighten it. Folders that already
    exist keep their mode (see :func:`tighten`).
    """
    path = Path(path)
    missing = []
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode)
        except FileExistsError:  # another process was quicker; it sets the mode
            continue
        os.chmod(folder, mode)


def create_private_file(path: str | os.PathLike) -> None:
    """Make sure ``path`` exists and only its owner can read or write it (0600 at most).

    A missing file is created empty and 0600 before anything is written into it, so no other
    user can open it in between; an existing one loses group and others' permissions.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    except FileExistsError:
        tighten(path)
        return
    try:
        os.chmod(path, PRIVATE_FILE)  # the umask may have taken owner bits away
    finally:
        os.close(fd)


def tighten(path: str | os.PathLike) -> int:
    """Take group and others' permissions off ``path`` and, for a folder, everything inside it.

    Files become at most 0600 and folders at most 0700; symbolic links are neither followed
    nor changed. A file that cannot be changed (someone else's, a read-only file system) is
    logged and skipped: reading such a gallery must still work. Returns the number changed.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return 0
    changed = int(_tighten_one(path))
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in dirnames + filenames:
                changed += _tighten_one(Path(dirpath) / name)
    return changed


def _tighten_one(path: Path) -> bool:
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or not stat.S_IMODE(st.st_mode) & _OTHERS:
            return False
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~_OTHERS)
        return True
    except OSError as exc:
        log.info("%s: cannot make it private (%s)", path, exc.strerror or exc)
        return False
