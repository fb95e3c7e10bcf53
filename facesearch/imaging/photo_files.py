"""Finding photo files: which names count as photos, the photos under a folder, and enrollment
arguments (folders of ``<identity>/<photos>``, or photos of one person) as ``(photo, identity)`` pairs.

Standard library only, so that a client with no models (``facesearch --server URL enroll``)
expands the same arguments the same way and still starts fast; reading pixels is
:mod:`facesearch.imaging.decode`'s job.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Sequence

from facesearch.errors import ImageError

#: File extensions (lower-case, with the dot) that :func:`iter_image_files` picks up.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
)


# What a path can be besides a regular file or a folder, in words for messages.
_SPECIAL_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def not_regular_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a photo without opening it, or ``None`` if it may be.

    ``"is a directory, not an image file"`` or ``"not a regular file (a FIFO)"`` (a socket, a
    character or block device): such files are never opened, since reading a FIFO or a device
    can block forever. ``None`` for a regular file (symbolic links followed) and for a path
    that cannot be looked at (missing, no permission): opening it reports that.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return mode_reason(mode)


def mode_reason(mode: int) -> str | None:
    """Why a file of ``st_mode`` ``mode`` cannot be read as a photo, or ``None`` for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not an image file"
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "a special file")
    return f"not a regular file ({kind})"


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def iter_image_files(root: str | os.PathLike) -> list[Path]:
    """Every photo under the folder ``root``, recursively, sorted.

    A file counts when its extension is in :data:`IMAGE_EXTENSIONS` (any case: ``.JPG``
    too). Hidden files and folders (name starting with ``.``, e.g. ``.thumbnails``,
    macOS ``._x.jpg`` resource forks) are skipped, and symlinked folders are not followed
    (avoids cycles). Paths are ``root / relative path``, sorted by path components, so a
    folder's photos stay together. Nothing is opened: a FIFO, socket or device named like a
    photo is listed, and the reader refuses it in one line (:func:`not_regular_reason`), so
    that callers report it with the other unusable photos.

    Raises:
        ImageError: ``root`` does not exist or is not a folder.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise ImageError(root_path, "folder does not exist")
    if not root_path.is_dir():
        raise ImageError(root_path, "not a folder")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root_path):
        # Assigning in place is what stops os.walk from descending into hidden folders.
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        base = Path(dirpath)
        for name in filenames:
            if not _is_hidden(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(base / name)
    found.sort(key=lambda p: p.relative_to(root_path).parts)
    return found


def collect_photos(paths: Sequence[str | os.PathLike], name: str | None) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Expand enrollment arguments into ``(photo, identity)`` pairs, plus ``(path, reason)`` errors.

    With ``name``, every path is a photo of that person or a folder of them. Without it,
    every path is a folder holding one sub-folder of photos per identity. Nothing is opened
    here: a FIFO, socket or device among the photos is refused when it is read.
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


def library_photos(paths: Sequence[str | os.PathLike], recursive: bool) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand ``scan`` arguments (photos, or folders of them: only their own photos unless
    ``recursive``) into photo paths in order, without repeats, plus ``(path, reason)`` errors.
    Nothing is opened: special files are refused when read."""
    photos: list[Path] = []
    errors: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            errors.append((str(raw), "no such file or folder"))
            continue
        if not path.is_dir():
            photos.append(path)
            continue
        if recursive:
            found = iter_image_files(path)
        else:
            found = sorted(p for p in path.iterdir() if not _is_hidden(p.name) and not p.is_dir()
                           and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not found:
            errors.append((str(raw), "folder holds no photos" + ("" if recursive else " (--recursive looks in sub-folders)")))
        photos += found
    seen: set[Path] = set()
    unique = [p for p in photos if not (p in seen or seen.add(p))]
    return unique, errors
