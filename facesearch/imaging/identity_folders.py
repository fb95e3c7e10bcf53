"""Enrollment arguments to photo files: folders of ``<identity>/<photos>``, or photos of one person.

Kept apart from the gallery so that a client with no models (``facesearch --server URL enroll``)
can expand the same arguments the same way without importing the gallery.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from facesearch.imaging.decode import IMAGE_EXTENSIONS, iter_image_files


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
