"""``facesearch bench lfw``: the LFW verification protocol on our own detection and crops."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from facesearch.models.analysis import FaceAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.bench.datasets import Pair, find_lfw_pairs, lfw_root, read_pairs
from facesearch.bench.embeddings import DatasetEmbeddings, embed_photos


def limit_pairs(pairs: list[Pair], per_class: int) -> list[Pair]:
    """The first ``per_class`` same and ``per_class`` different pairs of each fold (quick runs)."""
    kept, counts = [], {}
    for p in pairs:
        key = (p.fold, p.same)
        if counts.get(key, 0) < per_class:
            counts[key] = counts.get(key, 0) + 1
            kept.append(p)
    return kept


def lfw_pairs(lfw: str | os.PathLike, pairs_file: str | os.PathLike | None = None,
              limit: int | None = None) -> list[Pair]:
    """Pairs of ``pairs_file`` (default ``pairs.txt`` beside ``lfw``) resolved to image paths."""
    root = lfw_root(lfw)
    pairs = read_pairs(pairs_file or find_lfw_pairs(lfw, "pairs.txt"), root)
    return limit_pairs(pairs, limit) if limit else pairs


def embed_pairs(pairs: list[Pair], analysis: FaceAnalysis, cache: FaceCache | None, *,
                progress: Callable[[int], None] | None = None,
                on_total: Callable[[int], None] | None = None) -> DatasetEmbeddings:
    """Embed each distinct photo of ``pairs`` once (the face nearest the centre, as LFW is centred)."""
    photos = [p for pair in pairs for p in (pair.a, pair.b)]
    return embed_photos(photos, analysis, cache, pick="center", progress=progress, on_total=on_total)


def default_lfw() -> Path | None:
    """``$FACESEARCH_LFW``, or the shared data folder beside a checkout, if present."""
    env = os.environ.get("FACESEARCH_LFW")
    if env:
        return Path(env)
    guess = Path(__file__).resolve().parents[3] / "shared" / "data" / "lfw" / "lfw-deepfunneled.tgz"
    return guess if guess.exists() else None
