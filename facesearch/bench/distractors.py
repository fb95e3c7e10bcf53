"""Synthetic distractor faces, to grow a benchmark gallery far past the real photos we have.

Two kinds (:data:`KINDS`):

* ``"faces"``: identities that follow real FaceNet statistics. :class:`FaceStatistics` holds,
  fitted on real embeddings, the centre of the identities, the covariance of identity centres
  around it (*between*) and the covariance of faces around their identity's centre (*within*).
  A synthetic identity's centre is drawn from N(mean, between), each of its faces as
  centre + N(0, within), and every face is L2-normalised like a real embedding. What a real
  large gallery of strangers looks like to a matcher.
* ``"random"``: unit vectors uniform on the sphere (normalised Gaussians), one identity each.
  Nearly orthogonal to everything, they are the worst case for graph indexes, which rely on
  the clusters real faces form, and an easy case for a matcher.

Statistics fitted on LFW ship with the package (:data:`LFW_STATISTICS`, see
:func:`refit_lfw_statistics` and docs/benchmarks.md), so a benchmark needs no LFW embeddings
to draw faces. Galleries of a million faces are made in chunks (:func:`stream_distractors`)
so that 1M x 512 float32 (2 GB) never exists twice.

Every draw is reproducible from a seed, and the faces drawn do not depend on the chunk size:
counts, centres and within-identity offsets come from three separate random streams, each
consumed in identity order.

Refit the shipped statistics (embeds LFW's 9,164 photos of people with 2+ photos through the
face cache, ~20 minutes the first time on two cores)::

    python -m facesearch.bench.distractors --refit [--lfw PATH] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from facesearch.bench.datasets import folder_dataset, lfw_root
from facesearch.bench.embeddings import embed_photos
from facesearch.bench.lfw import default_lfw
from facesearch.errors import DataError
from facesearch.models.analysis import FaceAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.progress import ProgressFactory, no_progress

log = logging.getLogger(__name__)

#: The kinds of distractor :func:`stream_distractors` makes.
KINDS = ("faces", "random")
#: Statistics fitted on LFW's people with 2+ photos (FaceNet 20180402-114759, box crop), shipped.
LFW_STATISTICS = Path(__file__).parent / "data" / "lfw_face_statistics.npz"
#: Faces per chunk of :func:`stream_distractors` (64k x 512 float32 = 128 MB).
CHUNK = 65_536
#: Pairs of each kind drawn by :func:`similarity_check`.
CHECK_PAIRS = 200_000
#: Counts are drawn in fixed blocks, so the stream of counts never depends on the chunk size.
_COUNT_BLOCK = 4096

def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _streams(rng: np.random.Generator | int | None, n: int) -> list[np.random.Generator]:
    """``n`` independent generators seeded from ``rng`` (which advances, so a second call differs)."""
    seeds = _generator(rng).integers(0, 2 ** 63, size=n)
    return [np.random.default_rng(int(s)) for s in seeds]


def _unit_rows(block: np.ndarray) -> np.ndarray:
    """``block`` (float32 (n, D)) with every row divided by its L2 norm, in place."""
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    return block


# --- random unit vectors -----------------------------------------------------------------------


def random_unit_vectors(n: int, dim: int, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit vectors uniform on the sphere, float32 (n, dim).

    Made in chunks to keep temporaries small; the result does not depend on ``chunk``.
    """
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32)
        out[start:start + len(block)] = _unit_rows(block)
    return out


# --- statistics of real faces ------------------------------------------------------------------


def _psd_factor(cov: np.ndarray, rel_floor: float = 1e-9) -> np.ndarray:
    """``F`` float32 (D, r) with ``F @ F.T`` = ``cov`` (symmetric, D x D), dropping directions whose
    variance is below ``rel_floor`` of the largest (and any negative eigenvalue)."""
    w, v = np.linalg.eigh(np.asarray(cov, np.float64))
    keep = w > rel_floor * max(w.max(), 0.0) if w.max() > 0 else np.zeros(len(w), bool)
    return (v[:, keep] * np.sqrt(w[keep])).astype(np.float32)


def _psd_part(cov: np.ndarray) -> tuple[np.ndarray, float]:
    """The nearest positive semi-definite matrix to symmetric ``cov`` (negative eigenvalues set
    to 0), and the trace removed as a fraction of the positive trace."""
    w, v = np.linalg.eigh(cov)
    removed = float(-w[w < 0].sum() / max(w[w > 0].sum(), 1e-30))
    return (v * np.clip(w, 0, None)) @ v.T, removed


def _groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, starts, counts)``: ``order`` sorts rows by label (stable); identity ``j`` owns
    ``order[starts[j]:starts[j] + counts[j]]``."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


@dataclass(frozen=True, eq=False)
class FaceStatistics:
    """Between- and within-identity statistics of real face embeddings.

    Attributes:
        mean: float32 (D,), the average identity centre (each identity counts once).
        between: float32 (D, D), covariance of identity centres around ``mean``.
        within: float32 (D, D), covariance of a face around its identity's centre.
        counts: int64 (I,), faces per identity in the fitted data (a realistic distribution to
            draw gallery sizes per identity from).
        model: the embedding model the statistics were fitted for (e.g. ``facenet-20180402-114759``).
        source: where the embeddings came from, for the record.
        between_scale, within_scale: factors on ``between`` and ``within`` when sampling (1 =
            the covariances as fitted; see :meth:`calibrated`).
    """

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray
    counts: np.ndarray
    model: str = ""
    source: str = ""
    between_scale: float = 1.0
    within_scale: float = 1.0

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: Sequence, *, model: str = "", source: str = "") -> "FaceStatistics":
        """Fit on real embeddings: float (N, D) unit rows, one label per row (any hashable values).

        Only identities with 2+ faces count (a single face says nothing about the spread within
        an identity). Each identity weighs the same, however many photos it has:

        * within = mean over identities of the unbiased covariance of its faces (divisor n_i - 1);
        * mean = mean of identity means;
        * between = covariance of identity means (divisor I - 1) minus within x mean(1 / n_i).
          A mean of n_i faces scatters around the true centre by within / n_i; without this
          correction the identities of LFW (most have 2-4 photos) would come out too spread
          out. Negative eigenvalues left by the subtraction are set to 0.

        Raises:
            DataError: fewer than two identities have 2+ faces, or the shapes do not match.
        """
        x = np.asarray(vectors, np.float64)
        y = np.asarray(labels)
        if x.ndim != 2 or len(x) != len(y):
            raise DataError(f"statistics: expected vectors (N, D) and N labels, got {x.shape} and {len(y)}")
        order, starts, counts = _groups(y)
        several = counts >= 2
        if several.sum() < 2:
            raise DataError(f"statistics: need 2+ identities with 2+ faces, got {int(several.sum())}")
        rows = np.concatenate([order[s:s + c] for s, c in zip(starts[several], counts[several])])
        counts = counts[several]
        owner = np.repeat(np.arange(len(counts)), counts)
        x = x[rows]
        means = np.zeros((len(counts), x.shape[1]))
        np.add.at(means, owner, x)
        means /= counts[:, None]
        # Each deviation weighted so that dev.T @ dev is the mean over identities of their covariances.
        dev = (x - means[owner]) / np.sqrt((counts[owner] - 1) * len(counts))[:, None]
        within = dev.T @ dev
        centre = means.mean(axis=0)
        spread = (means - centre).T @ (means - centre) / (len(counts) - 1)
        between, removed = _psd_part(spread - within * np.mean(1.0 / counts))
        log.info("statistics: %d identities, %d faces; %.2f%% of the between trace was negative and dropped",
                 len(counts), len(x), 100 * removed)
        return cls(centre.astype(np.float32), between.astype(np.float32), within.astype(np.float32),
                   counts.astype(np.int64), model, source)

    def calibrated(self, between_scale: float, within_scale: float) -> "FaceStatistics":
        """The same statistics sampled with ``between`` and ``within`` multiplied by these factors."""
        return FaceStatistics(self.mean, self.between, self.within, self.counts, self.model, self.source,
                              float(between_scale), float(within_scale))

    @cached_property
    def between_factor(self) -> np.ndarray:
        """float32 (D, r): ``F @ F.T`` = between_scale x between."""
        return _psd_factor(self.between * self.between_scale)

    @cached_property
    def within_factor(self) -> np.ndarray:
        """float32 (D, r): ``F @ F.T`` = within_scale x within."""
        return _psd_factor(self.within * self.within_scale)

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` (.npz, compressed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to other names
            np.savez_compressed(f, mean=self.mean, between=self.between, within=self.within, counts=self.counts,
                                model=np.str_(self.model), source=np.str_(self.source),
                                scales=np.array([self.between_scale, self.within_scale], np.float64))

    @classmethod
    def load(cls, path: str | os.PathLike, model: str | None = None) -> "FaceStatistics":
        """Read statistics written by :meth:`save`.

        Raises:
            DataError: the file is missing or unreadable, or was fitted for another model than
                ``model`` (when given).
        """
        try:
            with np.load(path) as z:
                scales = z["scales"]
                stats = cls(z["mean"].astype(np.float32), z["between"].astype(np.float32),
                            z["within"].astype(np.float32), z["counts"].astype(np.int64), str(z["model"]),
                            str(z["source"]), float(scales[0]), float(scales[1]))
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: not a face statistics file ({exc})") from exc
        if model is not None and stats.model != model:
            raise DataError(f"{path}: statistics fitted for model {stats.model!r}, not {model!r}")
        return stats


def lfw_statistics(model: str | None = None) -> FaceStatistics:
    """The statistics shipped with the package (:data:`LFW_STATISTICS`), checked against ``model``."""
    return FaceStatistics.load(LFW_STATISTICS, model)


# --- sampling ----------------------------------------------------------------------------------


def _draw_counts(stream: np.random.Generator, faces_per_identity: int | np.ndarray, n: int) -> np.ndarray:
    """``n`` faces-per-identity values: all equal to an int, or drawn uniformly from an array of counts."""
    if np.ndim(faces_per_identity) == 0:
        if int(faces_per_identity) < 1:
            raise ValueError(f"faces_per_identity must be >= 1, got {faces_per_identity}")
        return np.full(n, int(faces_per_identity), np.int64)
    pool = np.asarray(faces_per_identity, np.int64)
    if not len(pool) or pool.min() < 1:
        raise ValueError("faces_per_identity: an array of counts must be non-empty and >= 1")
    # Floats, not integers(): a float64 draw takes one 64-bit word, so blocks concatenate exactly.
    return pool[np.minimum((stream.random(n) * len(pool)).astype(np.int64), len(pool) - 1)]


def _counts_for(stream: np.random.Generator, faces_per_identity: int | np.ndarray, *,
                n_identities: int | None = None, n_faces: int | None = None) -> np.ndarray:
    """Faces per identity, int64 (I,): for ``n_identities`` identities, or for identities until
    ``n_faces`` faces (the last identity cut short to land on ``n_faces`` exactly)."""
    if n_identities is not None:
        return _draw_counts(stream, faces_per_identity, n_identities)
    blocks, total = [], 0
    while total < n_faces:
        block = _draw_counts(stream, faces_per_identity, _COUNT_BLOCK)
        blocks.append(block)
        total += int(block.sum())
    counts = np.concatenate(blocks) if blocks else np.zeros(0, np.int64)
    end = int(np.searchsorted(np.cumsum(counts), n_faces)) + 1 if n_faces else 0
    counts = counts[:end].copy()
    if end:
        counts[-1] -= int(counts.sum()) - n_faces
    return counts


def _raw_faces(stats: FaceStatistics, counts: np.ndarray, centres_rng: np.random.Generator,
               faces_rng: np.random.Generator) -> np.ndarray:
    """Faces of identities with ``counts`` faces each, before normalisation: float32 (sum(counts), D)."""
    fb, fw = stats.between_factor, stats.within_factor
    centres = centres_rng.standard_normal((len(counts), fb.shape[1]), dtype=np.float32) @ fb.T
    centres += stats.mean
    faces = faces_rng.standard_normal((int(counts.sum()), fw.shape[1]), dtype=np.float32) @ fw.T
    faces += np.repeat(centres, counts, axis=0)
    return faces


def _chunks_of(counts: np.ndarray, chunk: int) -> Iterator[tuple[int, int]]:
    """``(first, end)`` identity ranges whose faces add up to at most ``chunk`` (at least one identity)."""
    ends = np.cumsum(counts)
    first, done = 0, 0
    while first < len(counts):
        end = max(int(np.searchsorted(ends, done + chunk, side="right")), first + 1)
        yield first, end
        done = int(ends[end - 1])
        first = end


def _face_chunks(stats: FaceStatistics, counts: np.ndarray, streams: list[np.random.Generator],
                 chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for first, end in _chunks_of(counts, chunk):
        part = counts[first:end]
        labels = np.repeat(np.arange(first, end, dtype=np.int64), part)
        yield labels, _unit_rows(_raw_faces(stats, part, streams[1], streams[2]))


def sample_identities(stats: FaceStatistics, n_identities: int, faces_per_identity: int | np.ndarray | None = None,
                      rng: np.random.Generator | int | None = None, *,
                      normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``n_identities`` synthetic identities: ``(labels int64 (N,), vectors float32 (N, D))``.

    Labels run from 0 to ``n_identities - 1``, faces of one identity next to each other, every
    vector of unit length (``normalise=False`` keeps the Gaussian draws as they are, to check
    the sampler against the statistics). ``faces_per_identity`` is an int (every identity has
    that many), an array of counts to draw each identity's count from uniformly, or ``None`` for
    the counts of the data the statistics were fitted on (LFW's: most people have 2-4 photos,
    a few have hundreds).
    """
    streams = _streams(rng, 3)
    pool = stats.counts if faces_per_identity is None else faces_per_identity
    counts = _counts_for(streams[0], pool, n_identities=n_identities)
    labels = np.repeat(np.arange(n_identities, dtype=np.int64), counts)
    faces = _raw_faces(stats, counts, streams[1], streams[2])
    return labels, _unit_rows(faces) if normalise else faces


def stream_distractors(kind: str, n: int, rng: np.random.Generator | int | None = None, *,
                       stats: FaceStatistics | None = None, faces_per_identity: int | np.ndarray | None = None,
                       dim: int | None = None, chunk: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``n`` distractor faces of ``kind`` (:data:`KINDS`), as chunks ``(labels int64 (c,), vectors
    float32 (c, D))`` of at most ``chunk`` faces (a larger identity gets a chunk of its own).

    Labels count identities from 0 across the whole stream; a chunk never splits an identity.
    ``"faces"``: identities drawn from ``stats`` (default: the shipped LFW statistics) with
    ``faces_per_identity`` as in :func:`sample_identities`; the last identity is cut short so the
    total is exactly ``n``. ``"random"``: one identity per vector, ``dim`` (default 512 or
    ``stats.dim``) long. The concatenated chunks are the same whatever ``chunk`` is.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown distractor kind {kind!r}; choose from {', '.join(KINDS)}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if kind == "random":
        gen = _generator(rng)
        dim = dim or (stats.dim if stats is not None else 512)
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            yield (np.arange(start, start + size, dtype=np.int64),
                   _unit_rows(gen.standard_normal((size, dim), dtype=np.float32)))
        return
    stats = stats or lfw_statistics()
    streams = _streams(rng, 3)
    pool = stats.counts if faces_per_identity is None else faces_per_identity
    counts = _counts_for(streams[0], pool, n_faces=n)
    yield from _face_chunks(stats, counts, streams, chunk)


def sample_distractors(kind: str, n: int, rng: np.random.Generator | int | None = None, *,
                       stats: FaceStatistics | None = None, faces_per_identity: int | np.ndarray | None = None,
                       dim: int | None = None, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """All of :func:`stream_distractors` in one pair of arrays, filled chunk by chunk (one copy)."""
    labels, vectors = np.empty(n, np.int64), None
    done = 0
    for lab, vec in stream_distractors(kind, n, rng, stats=stats, faces_per_identity=faces_per_identity,
                                       dim=dim, chunk=chunk):
        if vectors is None:
            vectors = np.empty((n, vec.shape[1]), np.float32)
        labels[done:done + len(lab)] = lab
        vectors[done:done + len(lab)] = vec
        done += len(lab)
    if vectors is None:
        vectors = np.empty((0, dim or (stats.dim if stats is not None else 512)), np.float32)
    return labels, vectors


# --- realism: do synthetic faces look like real ones to a matcher? ---------------------------


def pair_similarities(labels: np.ndarray, vectors: np.ndarray, n_pairs: int,
                      rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of ``n_pairs`` same-identity and ``n_pairs`` different-identity pairs.

    Every identity weighs the same (as in :meth:`FaceStatistics.fit`): a same pair is an identity
    with 2+ faces drawn uniformly, then two of its faces; a different pair is two distinct
    identities drawn uniformly, then a face of each. ``vectors`` are float (N, D) unit rows.
    Returns ``(same, different)``, float64 (n_pairs,) each.
    """
    gen = _generator(rng)
    order, starts, counts = _groups(np.asarray(labels))
    if len(counts) < 2 or counts.max() < 2:
        raise DataError("pairs: need 2+ identities and one with 2+ faces")

    def face_of(ids: np.ndarray, k: np.ndarray) -> np.ndarray:
        return order[starts[ids] + np.minimum((gen.random(len(ids)) * k).astype(np.int64), k - 1)]

    several = np.flatnonzero(counts >= 2)
    ids = several[gen.integers(0, len(several), n_pairs)]
    first = np.minimum((gen.random(n_pairs) * counts[ids]).astype(np.int64), counts[ids] - 1)
    second = np.minimum((gen.random(n_pairs) * (counts[ids] - 1)).astype(np.int64), counts[ids] - 2)
    second += second >= first
    same = np.einsum("ij,ij->i", vectors[order[starts[ids] + first]], vectors[order[starts[ids] + second]])
    a = gen.integers(0, len(counts), n_pairs)
    b = (a + gen.integers(1, len(counts), n_pairs)) % len(counts)
    different = np.einsum("ij,ij->i", vectors[face_of(a, counts[a])], vectors[face_of(b, counts[b])])
    return same.astype(np.float64), different.astype(np.float64)


def summary(values: np.ndarray) -> dict:
    """Mean, standard deviation and the 1% / 50% / 99% quantiles of ``values``, rounded to 4 places."""
    q01, q50, q99 = np.quantile(values, [0.01, 0.5, 0.99])
    return {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4),
            "q01": round(float(q01), 4), "q50": round(float(q50), 4), "q99": round(float(q99), 4)}


def similarity_check(stats: FaceStatistics, vectors: np.ndarray, labels: Sequence, *, n_pairs: int = CHECK_PAIRS,
                     seed: int = 0) -> dict:
    """Real against synthetic: cosine similarity of same- and different-identity pairs.

    The synthetic side has as many identities as the real data, with the same faces per
    identity (the fitted counts). Also reports the norms of synthetic faces before
    normalisation (real embeddings have norm 1): far from 1 would mean the Gaussian misses the
    scale of real faces.
    """
    real_same, real_diff = pair_similarities(np.asarray(labels), np.asarray(vectors, np.float32), n_pairs, seed)
    streams = _streams(seed, 3)
    counts = stats.counts
    raw = _raw_faces(stats, counts, streams[1], streams[2])
    norms = np.linalg.norm(raw, axis=1)
    syn_labels = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    syn_same, syn_diff = pair_similarities(syn_labels, _unit_rows(raw), n_pairs, seed + 1)
    return {"pairs": n_pairs, "identities": len(counts), "faces": int(counts.sum()),
            "between_scale": stats.between_scale, "within_scale": stats.within_scale,
            "same": {"real": summary(real_same), "synthetic": summary(syn_same)},
            "different": {"real": summary(real_diff), "synthetic": summary(syn_diff)},
            "synthetic_norm_before_normalising": summary(norms)}


# --- the shipped LFW statistics ----------------------------------------------------------------


def lfw_embeddings(lfw: str | os.PathLike, analysis: FaceAnalysis | None = None, *, use_cache: bool = True,
                   progress: ProgressFactory = no_progress) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors float32 (N, 512), names (N,))`` of LFW's people with 2+ photos (1,680 people,
    9,164 photos), the face nearest each photo's centre; photos without a face are left out."""
    items = folder_dataset(lfw_root(lfw))
    names, counts = np.unique([who for _, who in items], return_counts=True)
    several = set(names[counts >= 2])
    items = [(p, who) for p, who in items if who in several]
    analysis = analysis or FaceAnalysis()
    cache = FaceCache.for_settings(analysis.settings) if use_cache else None
    with progress("embedding LFW") as (on_total, update):
        emb = embed_photos([p for p, _ in items], analysis, cache, pick="center", progress=update, on_total=on_total)
    of = emb.of()
    rows = np.array([of[p] for p, _ in items])
    ok = emb.ok[rows]
    if emb.errors:
        log.info("LFW: %d photos without a face left out", len(emb.errors))
    return emb.vectors[rows[ok]], np.array([who for (_, who), good in zip(items, ok) if good])


def refit_lfw_statistics(lfw: str | os.PathLike, out: str | os.PathLike = LFW_STATISTICS, *,
                         analysis: FaceAnalysis | None = None, n_pairs: int = CHECK_PAIRS, seed: int = 0,
                         progress: ProgressFactory = no_progress) -> dict:
    """Fit :class:`FaceStatistics` on LFW's people with 2+ photos, write them to ``out`` and
    return the realism check (:func:`similarity_check`) with the counts behind it."""
    analysis = analysis or FaceAnalysis()
    vectors, names = lfw_embeddings(lfw, analysis, progress=progress)
    stats = FaceStatistics.fit(vectors, names, model=analysis.model_id,
                               source=f"LFW deep-funneled, people with 2+ photos, {analysis.settings}")
    stats.save(out)
    return {"statistics": str(out), "model": stats.model, "photos_embedded": len(vectors),
            "check": similarity_check(stats, vectors, names, n_pairs=n_pairs, seed=seed)}


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facesearch.bench.distractors",
                                     description="Refit the face statistics shipped with facesearch.")
    parser.add_argument("--refit", action="store_true", help="embed LFW, fit, write --out and print the check")
    parser.add_argument("--lfw", type=Path, default=None, help="LFW folder or .tgz (default: from FACESEARCH_DATA)")
    parser.add_argument("--out", type=Path, default=LFW_STATISTICS, help="where to write the statistics")
    args = parser.parse_args(argv)
    if not args.refit:
        parser.print_help()
        return 2
    lfw = args.lfw or default_lfw()
    if lfw is None:
        print("no LFW data: pass --lfw PATH or set FACESEARCH_DATA", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(refit_lfw_statistics(lfw, args.out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
