"""Finding photo files: which names count as photos, the photos under a folder, and enrollment
arguments (folders of ``<identity>/<photos>``, or photos of one person) as ``(photo, identity)`` pairs.

Standard library only, so that a client with no models (``facesearch --server URL enroll``)
expands the same arguments the same way and still starts fast; reading pixels is
:mod:`facesearch.imaging.decode`'s job.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from facesearch.errors import ImageError

#: File extensions (lower-case, with the dot) that :func:`iter_image_files` picks up.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def iter_image_files(root: str | os.PathLike) -> list[Path]:
    """Every photo under the folder ``root``, recursively, sorted.

    A file counts when its extension is in :data:`IMAGE_EXTENSIONS` (any case: ``.JPG``
    too). Hidden files and folders (name starting with ``.``, e.g. ``.thumbnails``,
    macOS ``._x.jpg`` resource forks) are skipped, and symlinked folders are not followed
    (avoids cycles). Paths are ``root / relative path``, sorted by path components, so a
    folder's photos stay together.

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
    every path is a folder holding one sub-folder of photos per identity.
    """
    items: list[tuple[Path, str]] = []
    errors: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            errors.append((str(raw), "no such file or folder"))
        elif name is not None:
            photos = [path] if path.is_file() else iter_image_files(path)
            if not photos:
                errors.append((str(raw), "folder holds no photos"))
            items += [(p, name) for p in photos]
        elif path.is_file():
            errors.append((str(raw), "a single photo needs --name NAME"))
        else:
            subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            loose = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
            for p in sorted(loose):
                errors.append((str(p), "photo is not inside an identity folder; use --name NAME"))
            if not subdirs and not loose:
                errors.append((str(raw), "folder holds no identity sub-folders"))
            for sub in subdirs:
                items += [(p, sub.name) for p in iter_image_files(sub)]
    return items, errors
