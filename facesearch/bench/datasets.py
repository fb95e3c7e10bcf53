"""Datasets for benchmarks: LFW as distributed, and any folder-per-identity tree.

LFW comes as the ``lfw-deepfunneled`` folder or its ``.tgz`` (extracted once into the cache
folder), with the official pairs files: ``pairs.txt`` (View 2: 10 folds), ``pairsDevTrain.txt``
and ``pairsDevTest.txt`` (View 1).
"""
from __future__ import annotations

import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from facesearch.errors import DataError
from facesearch.imaging.photo_files import iter_image_files
from facesearch.paths import cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    """Two LFW images and whether they show the same person; ``fold`` counts from 0."""

    a: Path
    b: Path
    same: bool
    fold: int


def read_pairs(pairs_file: str | os.PathLike, images_root: str | os.PathLike) -> list[Pair]:
    """Parse an LFW pairs file (View 1 or View 2) into :class:`Pair` objects.

    View 2 files start with ``<folds> <n>``: each fold is ``n`` same-person lines then ``n``
    different-person lines. View 1 files start with ``<n>`` and are one fold.
    """
    root = Path(images_root)
    try:
        lines = Path(pairs_file).read_text().split("\n")
    except UnicodeDecodeError:
        raise DataError(f"{pairs_file}: not an LFW pairs file (not text)") from None
    header = lines[0].split()
    if not header or len(header) > 2 or not all(h.isdigit() for h in header):
        raise DataError(f"{pairs_file}: not an LFW pairs file (the first line should be '<folds> <n>' or '<n>')")
    folds, per_fold = (int(header[0]), int(header[1])) if len(header) == 2 else (1, int(header[0]))
    body = [ln.split("\t") if "\t" in ln else ln.split() for ln in lines[1:] if ln.strip()]
    if len(body) != folds * 2 * per_fold:
        raise DataError(f"{pairs_file}: expected {folds * 2 * per_fold} pairs, found {len(body)}")

    def image(name: str, n: str) -> Path:
        return root / name / f"{name}_{int(n):04d}.jpg"

    pairs = []
    for i, parts in enumerate(body):
        fold = i // (2 * per_fold)
        if len(parts) == 3:
            pairs.append(Pair(image(parts[0], parts[1]), image(parts[0], parts[2]), True, fold))
        elif len(parts) == 4:
            pairs.append(Pair(image(parts[0], parts[1]), image(parts[2], parts[3]), False, fold))
        else:
            raise DataError(f"{pairs_file}: line {i + 2} is not a pair: {parts!r}")
    return pairs


def lfw_root(source: str | os.PathLike, extract_to: str | os.PathLike | None = None) -> Path:
    """The folder of LFW identity sub-folders, from the folder itself or the ``.tgz``.

    A ``.tgz`` is extracted once into ``extract_to`` (default: the facesearch cache folder).
    """
    source = Path(source)
    if source.is_dir():
        inner = source / "lfw-deepfunneled"
        return inner if inner.is_dir() else source
    if not source.is_file():
        raise DataError(f"{source}: no such LFW folder or archive")
    if extract_to is None:
        extract_to = cache_dir() / "datasets"
    dest = Path(extract_to) / source.name.split(".")[0]
    done = dest / ".extracted"
    if not done.exists():
        log.info("extracting %s into %s", source, dest)
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(source) as tar:
            tar.extractall(dest, filter="data")
        done.touch()
    subdirs = [p for p in dest.iterdir() if p.is_dir()]
    return subdirs[0] if len(subdirs) == 1 else dest


def find_lfw_pairs(source: str | os.PathLike, name: str) -> Path:
    """A pairs file named ``name`` next to the LFW folder or archive ``source``."""
    source = Path(source)
    for folder in (source.parent, source, source.parent.parent):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{name}: not found next to {source}; pass --pairs PATH")


def folder_dataset(root: str | os.PathLike) -> list[tuple[Path, str]]:
    """``(photo, identity)`` for every photo of a folder-per-identity tree, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder of people (one sub-folder of photos per identity)")
    return [(p, sub.name) for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
            for p in iter_image_files(sub)]
