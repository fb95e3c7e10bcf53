"""Photo files in, faces out, in batches and through the face cache.

Enrollment and the benchmarks both read many photo files; this is the one place that loads
them, detects and embeds in batches, and remembers the result per photo content.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from facesearch.models.analysis import Face, FaceAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.errors import ImageError
from facesearch.imaging.decode import image_sha256, load_image

#: Photos decoded, detected and embedded together by :func:`analyse_files`.
CHUNK = 32


@dataclass
class PhotoFaces:
    """The faces of one photo file."""

    path: Path
    sha256: str
    size_bytes: int
    width: int
    height: int
    faces: list[Face]


@dataclass
class PhotoError:
    """A photo file that could not be read; ``reason`` is one line."""

    path: Path
    reason: str


def hash_photo(path: str | os.PathLike) -> str | PhotoError:
    """The sha256 of a photo file, or a :class:`PhotoError` if it cannot be read."""
    try:
        return image_sha256(path)
    except ImageError as exc:
        return PhotoError(Path(path), exc.reason)
    except OSError as exc:
        return PhotoError(Path(path), (exc.strerror or str(exc)).lower())


def analyse_photos(photos: Sequence[tuple[Path, str]], analysis: FaceAnalysis,
                   cache: FaceCache | None = None) -> list[PhotoFaces | PhotoError]:
    """Faces of each ``(path, sha256)`` photo, one result per photo in order.

    Cached photos are not decoded at all; the others are loaded, detected and embedded as
    one batch and then cached.
    """
    results: list[PhotoFaces | PhotoError | None] = [None] * len(photos)
    fresh, images, mirror = [], [], []
    # With flip, faces cached without it need only their mirrored crops embedded.
    unflipped = (FaceCache(cache.root, {k: v for k, v in cache.settings.items() if k != "flip"})
                 if cache and getattr(analysis, "flip", False) else None)  # dlib's pipeline has no flip
    for i, (path, sha) in enumerate(photos):
        path = Path(path)
        hit = cache.get(sha) if cache else None
        if hit is not None:
            faces, (width, height) = hit
            results[i] = PhotoFaces(path, sha, path.stat().st_size, width, height, faces)
            continue
        try:
            image = load_image(path)
        except ImageError as exc:
            results[i] = PhotoError(path, exc.reason)
            continue
        base = unflipped.get(sha) if unflipped else None
        if base is not None:
            mirror.append((i, image, base))
            continue
        fresh.append(i)
        images.append(image)
    if mirror:
        for (i, image, (_, (width, height))), faces in zip(mirror, analysis.add_mirrors(
                [image for _, image, _ in mirror], [base[0] for _, _, base in mirror])):
            path, sha = Path(photos[i][0]), photos[i][1]
            cache.put(sha, faces, (width, height))
            results[i] = PhotoFaces(path, sha, path.stat().st_size, width, height, faces)
    if images:
        for i, image, faces in zip(fresh, images, analysis.get_batch(images)):
            path, sha = Path(photos[i][0]), photos[i][1]
            height, width = image.shape[:2]
            if cache:
                cache.put(sha, faces, (width, height))
            results[i] = PhotoFaces(path, sha, path.stat().st_size, width, height, faces)
    return results  # type: ignore[return-value]


def analyse_files(paths: Iterable[str | os.PathLike], analysis: FaceAnalysis, cache: FaceCache | None = None, *,
                  chunk: int = CHUNK) -> Iterator[PhotoFaces | PhotoError]:
    """Faces of each photo file, one result per path in order, analysed ``chunk`` photos at a time.

    A file that cannot be read gives a :class:`PhotoError`. Only one chunk of decoded photos
    is held in memory at a time; cached photos are not decoded at all.
    """
    paths = [Path(p) for p in paths]
    for start in range(0, len(paths), chunk):
        block = paths[start:start + chunk]
        results: list[PhotoFaces | PhotoError | None] = [None] * len(block)
        todo, where = [], []
        for i, path in enumerate(block):
            sha = hash_photo(path)
            if isinstance(sha, PhotoError):
                results[i] = sha
            else:
                todo.append((path, sha))
                where.append(i)
        for i, res in zip(where, analyse_photos(todo, analysis, cache)):
            results[i] = res
        yield from results  # type: ignore[misc]
