"""Synthetic distractor faces, to grow a benchmark gallery far past the real photos we have.

Two kinds (:data:`KINDS`):

* ``"faces"``: identities drawn from :class:`~facesearch.bench.face_statistics.FaceStatistics`
  fitted on real FaceNet embeddings, several faces each, every face L2-normalised like a real
  embedding. What a real large gallery of strangers looks like to a matcher.
* ``"random"``: unit vectors uniform on the sphere (normalised Gaussians), one identity each.
  Nearly orthogonal to everything, they are the worst case for graph indexes, which rely on
  the clusters real faces form, and an easy case for a matcher.

Statistics fitted on LFW ship with the package, one file for plain embeddings and one for
embeddings with flip, the default (:func:`statistics_file`, :func:`lfw_statistics`; refit them
with :func:`refit_lfw_statistics`), so a benchmark needs no LFW embeddings to draw faces. A
gallery of a million faces is made in chunks (:func:`stream_distractors`), so that
1M x 512 float32 (2 GB) never exists twice.

Every draw is reproducible from a seed, and does not depend on the chunk size (up to the last
bit of float rounding): faces per identity, component picks, centres, offsets and offset
scales come from five separate random streams, each consumed in identity order.

:func:`similarity_check` compares synthetic with real faces the way a matcher sees them: the
cosine similarity of same-identity and of different-identity pairs.

Refit the shipped statistics (embeds the 9,164 LFW photos of people with 2+ photos through the
face cache, ~20 minutes the first time on two cores; the fit and the check take ~5 minutes)::

    python -m facesearch.bench.distractors --refit [--lfw PATH] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from facesearch.bench.datasets import folder_dataset, lfw_root
from facesearch.bench.embeddings import embed_photos
from facesearch.bench.face_statistics import FaceStatistics, MIXTURE_DIMS, group_rows, select_components
from facesearch.bench.lfw import default_lfw
from facesearch.errors import DataError, FaceSearchError
from facesearch.models.analysis import FLIP_SUFFIX, FaceAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.progress import ProgressFactory, no_progress
from facesearch.search.match import DEFAULT_THRESHOLD

log = logging.getLogger(__name__)

#: The kinds of distractor :func:`stream_distractors` makes.
KINDS = ("faces", "random")
#: Statistics fitted on LFW's people with 2+ photos (FaceNet 20180402-114759, box crop), shipped.
LFW_STATISTICS = Path(__file__).parent / "data" / "lfw_face_statistics.npz"
#: The same for embeddings made with flip (``facenet-...+flip``), what new galleries hold.
LFW_STATISTICS_FLIP = Path(__file__).parent / "data" / "lfw_face_statistics_flip.npz"
#: Faces per chunk of :func:`stream_distractors` (64k x 512 float32 = 128 MB).
CHUNK = 65_536
#: Pairs of each kind drawn by :func:`similarity_check`.
CHECK_PAIRS = 200_000
#: Synthetic identities (at least) that :func:`fit_within_spread` fits on.
FIT_IDENTITIES = 2000
#: ``(components, shrink)`` of the centre mixture tried by :func:`refit_lfw_statistics`.
MIXTURE_GRID = ((1, 1.0), (2, 0.1), (2, 0.3), (4, 0.05), (4, 0.1), (4, 0.3), (8, 0.1), (8, 0.3))
#: Counts are drawn in fixed blocks, so the stream of counts never depends on the chunk size.
_COUNT_BLOCK = 4096
#: The random streams of a face draw, in the order they are seeded.
_STREAMS = ("counts", "picks", "centres", "offsets", "scales")


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _streams(rng: np.random.Generator | int | None) -> dict[str, np.random.Generator]:
    """One generator per name of :data:`_STREAMS`, seeded from ``rng`` (which advances, so a
    second call with the same generator draws other faces)."""
    seeds = _generator(rng).integers(0, 2 ** 63, size=len(_STREAMS))
    return {name: np.random.default_rng(int(s)) for name, s in zip(_STREAMS, seeds)}


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


# --- synthetic identities ----------------------------------------------------------------------


def statistics_file(model: str) -> Path:
    """The shipped statistics for embeddings of ``model`` (a gallery's model id)."""
    return LFW_STATISTICS_FLIP if model.endswith(FLIP_SUFFIX) else LFW_STATISTICS


def lfw_statistics(model: str | None = None) -> FaceStatistics:
    """The statistics shipped for ``model`` (default: what a new gallery embeds with), checked
    against it."""
    model = model or FaceAnalysis().model_id
    return FaceStatistics.load(statistics_file(model), model)


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


def _raw_faces(stats: FaceStatistics, counts: np.ndarray, streams: dict[str, np.random.Generator]) -> np.ndarray:
    """Faces of identities with ``counts`` faces each, before normalisation: float32 (sum(counts), D)."""
    n, faces = len(counts), int(counts.sum())
    centres = stats.centres(streams["picks"].random(n),
                            streams["centres"].standard_normal((n, stats.centre_draws), dtype=np.float32))
    out = stats.offsets(streams["offsets"].standard_normal((faces, stats.offset_draws), dtype=np.float32),
                        streams["scales"].standard_normal(faces, dtype=np.float32))
    out += np.repeat(centres, counts, axis=0)
    return out


def sample_identities(stats: FaceStatistics, n_identities: int, faces_per_identity: int | np.ndarray | None = None,
                      rng: np.random.Generator | int | None = None, *,
                      normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``n_identities`` synthetic identities: ``(labels int64 (N,), vectors float32 (N, D))``.

    Labels run from 0 to ``n_identities - 1``, faces of one identity next to each other, every
    vector of unit length (``normalise=False`` keeps the draws as they are, to check the sampler
    against the statistics). ``faces_per_identity`` is an int (every identity has that many), an
    array of counts to draw each identity's count from uniformly, or ``None`` for the counts of
    the data the statistics were fitted on (LFW's: most people have 2-4 photos, a few hundreds).
    """
    streams = _streams(rng)
    pool = stats.counts if faces_per_identity is None else faces_per_identity
    counts = _counts_for(streams["counts"], pool, n_identities=n_identities)
    labels = np.repeat(np.arange(n_identities, dtype=np.int64), counts)
    faces = _raw_faces(stats, counts, streams)
    return labels, _unit_rows(faces) if normalise else faces


def _chunks_of(counts: np.ndarray, chunk: int) -> Iterator[tuple[int, int]]:
    """``(first, end)`` identity ranges whose faces add up to at most ``chunk`` (at least one identity)."""
    ends = np.cumsum(counts)
    first, done = 0, 0
    while first < len(counts):
        end = max(int(np.searchsorted(ends, done + chunk, side="right")), first + 1)
        yield first, end
        done = int(ends[end - 1])
        first = end


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
    streams = _streams(rng)
    pool = stats.counts if faces_per_identity is None else faces_per_identity
    counts = _counts_for(streams["counts"], pool, n_faces=n)
    for first, end in _chunks_of(counts, chunk):
        part = counts[first:end]
        yield np.repeat(np.arange(first, end, dtype=np.int64), part), _unit_rows(_raw_faces(stats, part, streams))


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


def _pair_rows(labels: np.ndarray, n_pairs: int, rng: np.random.Generator | int | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(same_a, same_b, diff_a, diff_b)`` of ``n_pairs`` pairs of each kind (see
    :func:`pair_similarities`)."""
    gen = _generator(rng)
    order, starts, counts = group_rows(np.asarray(labels))
    if len(counts) < 2 or counts.max() < 2:
        raise DataError("pairs: need 2+ identities and one with 2+ faces")

    def nth(values: np.ndarray, k: np.ndarray) -> np.ndarray:  # uniform in [0, k)
        return np.minimum((values * k).astype(np.int64), k - 1)

    several = np.flatnonzero(counts >= 2)
    ids = several[nth(gen.random(n_pairs), len(several))]
    first = nth(gen.random(n_pairs), counts[ids])
    second = nth(gen.random(n_pairs), counts[ids] - 1)
    second += second >= first
    a = nth(gen.random(n_pairs), len(counts))
    b = (a + 1 + nth(gen.random(n_pairs), len(counts) - 1)) % len(counts)
    face_a = order[starts[a] + nth(gen.random(n_pairs), counts[a])]
    face_b = order[starts[b] + nth(gen.random(n_pairs), counts[b])]
    return order[starts[ids] + first], order[starts[ids] + second], face_a, face_b


def _cosines(vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", vectors[a], vectors[b]).astype(np.float64)


def pair_similarities(labels: np.ndarray, vectors: np.ndarray, n_pairs: int,
                      rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of ``n_pairs`` same-identity and ``n_pairs`` different-identity pairs.

    Every identity weighs the same (as in :meth:`FaceStatistics.fit`): a same pair is an identity
    with 2+ faces drawn uniformly, then two of its faces; a different pair is two distinct
    identities drawn uniformly, then a face of each. ``vectors`` are float (N, D) unit rows.
    Returns ``(same, different)``, float64 (n_pairs,) each.
    """
    sa, sb, da, db = _pair_rows(labels, n_pairs, rng)
    return _cosines(vectors, sa, sb), _cosines(vectors, da, db)


def summary(values: np.ndarray, threshold: float | None = DEFAULT_THRESHOLD) -> dict:
    """Mean, standard deviation and quantiles (0.1% ... 99.9%) of ``values``, rounded; with a
    ``threshold`` (default: the product's), also the fraction at or above it."""
    q = np.quantile(values, [0.001, 0.01, 0.5, 0.99, 0.999])
    out = {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4),
           **{name: round(float(v), 4) for name, v in zip(("q001", "q01", "q50", "q99", "q999"), q)}}
    if threshold is not None:
        out["above_threshold"] = float(f"{np.mean(values >= threshold):.4g}")
    return out


def fit_within_spread(stats: FaceStatistics, vectors: np.ndarray, labels: Sequence, *, n_pairs: int = 50_000,
                      seed: int = 0) -> FaceStatistics:
    """``stats`` with ``within_scale`` and ``within_spread`` fitted so that synthetic
    same-identity pairs have the mean and standard deviation of cosine similarity of the real
    ones (``vectors`` float (N, D) unit rows, ``labels`` (N,)).

    The spread (log-sd of a per-face scale s^2 with mean 1) sets the width, the scale then
    brings the mean back (a wider spread raises it). Both by bisection on one fixed draw
    (common random numbers), so the fit is smooth and repeatable. A real spread narrower than
    the plain Gaussian's keeps ``within_spread`` 0.
    """
    real_same, _ = pair_similarities(np.asarray(labels), np.asarray(vectors, np.float32), n_pairs, seed)
    target_mean, target_std = float(real_same.mean()), float(real_same.std())
    streams = _streams(seed)
    # At least FIT_IDENTITIES synthetic identities, so that the fit does not follow one small draw.
    counts = _counts_for(streams["counts"], stats.counts, n_identities=max(len(stats.counts), FIT_IDENTITIES))
    n, faces = len(counts), int(counts.sum())
    base = stats.with_within(1.0, 0.0)
    centres = base.centres(streams["picks"].random(n),
                           streams["centres"].standard_normal((n, base.centre_draws), dtype=np.float32))
    noise = base.offsets(streams["offsets"].standard_normal((faces, base.offset_draws), dtype=np.float32),
                         np.zeros(faces, np.float32))
    g = streams["scales"].standard_normal(faces)
    owner = np.repeat(np.arange(n), counts)
    sa, sb, _, _ = _pair_rows(owner, n_pairs, seed + 1)
    # A pair's cosine as a function of the faces' offset scales t_a, t_b, from six dot products
    # taken once: the bisections below then cost O(pairs) per step.
    c = centres[owner[sa]].astype(np.float64)
    ea, eb = noise[sa].astype(np.float64), noise[sb].astype(np.float64)
    cc, ca, cb = (c * c).sum(1), (c * ea).sum(1), (c * eb).sum(1)
    ab, aa, bb = (ea * eb).sum(1), (ea * ea).sum(1), (eb * eb).sum(1)

    def moments(scale: float, spread: float) -> tuple[float, float]:
        t = np.sqrt(scale * np.exp(spread * g - spread ** 2 / 2))
        ta, tb = t[sa], t[sb]
        cos = (cc + ta * ca + tb * cb + ta * tb * ab) / np.sqrt(
            (cc + 2 * ta * ca + ta * ta * aa) * (cc + 2 * tb * cb + tb * tb * bb))
        return float(cos.mean()), float(cos.std())

    def scale_for(spread: float) -> float:  # the mean falls as the scale grows
        lo, hi = np.log(0.05), np.log(20.0)
        for _ in range(30):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if moments(np.exp(mid), spread)[0] > target_mean else (lo, mid)
        return float(np.exp((lo + hi) / 2))

    spread, scale = 0.0, scale_for(0.0)
    if moments(scale, 0.0)[1] < target_std:
        lo, hi = 0.0, 2.5
        for _ in range(20):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if moments(scale_for(mid), mid)[1] < target_std else (lo, mid)
        spread = (lo + hi) / 2
        scale = scale_for(spread)
    log.info("within: scale %.4f, spread %.4f (real same-identity cosine %.4f +- %.4f)", scale, spread,
             target_mean, target_std)
    return stats.with_within(scale, spread)


def similarity_check(stats: FaceStatistics, vectors: np.ndarray, labels: Sequence, *, n_pairs: int = CHECK_PAIRS,
                     seed: int = 0) -> dict:
    """Real against synthetic faces, as a matcher sees them: :func:`summary` of the cosine
    similarity of same-identity pairs, different-identity pairs, and pairs of a real face with
    a synthetic one (a probe against a distractor), all identity-weighted.

    The synthetic side has the real data's faces per identity (the fitted counts). Also the
    norms of synthetic faces before normalisation (real embeddings have norm 1).
    """
    labels = np.asarray(labels)
    vectors = np.asarray(vectors, np.float32)
    real_same, real_diff = pair_similarities(labels, vectors, n_pairs, seed)
    counts = stats.counts
    raw = _raw_faces(stats, counts, _streams(seed))
    norms = np.linalg.norm(raw, axis=1)
    syn_labels = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    syn_same, syn_diff = pair_similarities(syn_labels, _unit_rows(raw), n_pairs, seed + 1)
    # A real face against a synthetic one: stack both, the synthetic labels after the real ones,
    # and keep the different pairs that cross.
    order, starts, real_counts = group_rows(labels)
    real_ids = np.empty(len(labels), np.int64)
    real_ids[order] = np.repeat(np.arange(len(real_counts)), real_counts)
    both = np.concatenate([vectors, raw])
    both_labels = np.concatenate([real_ids, syn_labels + len(real_counts)])
    cross = []
    rng = np.random.default_rng(seed + 2)
    while sum(map(len, cross)) < n_pairs:
        _, _, da, db = _pair_rows(both_labels, n_pairs, rng)
        crossing = (da < len(vectors)) != (db < len(vectors))
        cross.append(_cosines(both, da[crossing], db[crossing]))
    cross = np.concatenate(cross)[:n_pairs]
    return {"pairs": n_pairs, "identities": len(counts), "faces": int(counts.sum()),
            "components": stats.components, "within_scale": round(stats.within_scale, 4),
            "within_spread": round(stats.within_spread, 4), "threshold": DEFAULT_THRESHOLD,
            "same": {"real": summary(real_same), "synthetic": summary(syn_same)},
            "different": {"real": summary(real_diff), "synthetic": summary(syn_diff),
                          "real_vs_synthetic": summary(cross)},
            "synthetic_norm_before_normalising": summary(norms, threshold=None)}


# --- the shipped LFW statistics ----------------------------------------------------------------


def lfw_embeddings(lfw: str | os.PathLike, analysis: FaceAnalysis | None = None, *, use_cache: bool = True,
                   progress: ProgressFactory = no_progress) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors float32 (N, 512), names (N,))`` of LFW's people with 2+ photos (1,680 people,
    9,164 photos), the face nearest each photo's centre; photos without a face are left out."""
    items = folder_dataset(lfw_root(lfw))
    names, counts = np.unique([who for _, who in items], return_counts=True)
    several = set(names[counts >= 2])
    items = [(p, who) for p, who in items if who in several]
    if not items:
        raise DataError(f"{lfw}: no people with two or more photos (expected LFW: one folder per person)")
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


def fit_statistics(vectors: np.ndarray, labels: Sequence, *, model: str = "", source: str = "",
                   grid: Sequence[tuple[int, float]] = MIXTURE_GRID,
                   seed: int = 0) -> tuple[FaceStatistics, list[dict]]:
    """The whole fit: the centre mixture chosen from ``grid`` by held-out likelihood
    (:func:`~facesearch.bench.face_statistics.select_components`), then the per-face spread
    (:func:`fit_within_spread`). Returns the statistics and the selection table."""
    base = FaceStatistics.fit(vectors, labels, model=model, source=source, seed=seed)
    z = _identity_means(vectors, labels, base)
    (components, shrink), table = select_components(z, grid, seed=seed)
    stats = FaceStatistics.fit(vectors, labels, components=components, shrink=shrink, model=model, source=source,
                               seed=seed)
    return fit_within_spread(stats, vectors, labels, seed=seed), table


def _identity_means(vectors: np.ndarray, labels: Sequence, stats: FaceStatistics) -> np.ndarray:
    """Means of identities with 2+ faces in ``stats.basis`` coordinates, float64 (I, d)."""
    order, starts, counts = group_rows(np.asarray(labels))
    x = np.asarray(vectors, np.float64)
    means = np.stack([x[order[s:s + c]].mean(axis=0) for s, c in zip(starts, counts) if c >= 2])
    return (means - stats.mean) @ stats.basis.astype(np.float64)


def refit_lfw_statistics(lfw: str | os.PathLike, out: str | os.PathLike | None = None, *,
                         analysis: FaceAnalysis | None = None, n_pairs: int = CHECK_PAIRS, seed: int = 0,
                         progress: ProgressFactory = no_progress) -> dict:
    """Fit the statistics (:func:`fit_statistics`) on LFW's people with 2+ photos, write them to
    ``out`` (default: the shipped file for ``analysis``'s model, :func:`statistics_file`), and
    return the realism check (:func:`similarity_check`), the mixture selection and the same check
    for a single Gaussian with one face spread (the plain model, for comparison)."""
    analysis = analysis or FaceAnalysis()
    out = out or statistics_file(analysis.model_id)
    vectors, names = lfw_embeddings(lfw, analysis, progress=progress)
    source = f"LFW deep-funneled, people with 2+ photos, {json.dumps(analysis.settings, sort_keys=True)}"
    stats, table = fit_statistics(vectors, names, model=analysis.model_id, source=source, seed=seed)
    stats.save(out)
    plain = FaceStatistics.fit(vectors, names, model=analysis.model_id)
    return {"statistics": str(out), "model": stats.model, "photos": len(vectors), "mixture_dims": MIXTURE_DIMS,
            "mixture_selection": table,
            "check": similarity_check(stats, vectors, names, n_pairs=n_pairs, seed=seed),
            "check_plain_gaussian": similarity_check(plain, vectors, names, n_pairs=n_pairs, seed=seed)}


def refit_command(argv: Sequence[str] | None, *, module: str, description: str, refit: Callable[[Path, Path], dict],
                  out: Path | None, refit_help: str, out_help: str) -> int:
    """``python -m MODULE --refit [--lfw PATH] [--out FILE]``: the entry point of each module that
    refits numbers shipped with facesearch from LFW; prints ``refit(lfw, out)``'s dict as JSON.
    Returns the exit status."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--refit", action="store_true", help=refit_help)
    parser.add_argument("--lfw", type=Path, default=None, help="LFW folder or .tgz (default: from FACESEARCH_DATA)")
    parser.add_argument("--out", type=Path, default=out, help=out_help)
    args = parser.parse_args(argv)
    if not args.refit:
        parser.print_help()
        return 2
    lfw = args.lfw or default_lfw()
    if lfw is None:
        print("no LFW data: pass --lfw PATH or set FACESEARCH_DATA", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = refit(lfw, args.out)
    except FaceSearchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _main(argv: Sequence[str] | None = None) -> int:
    return refit_command(argv, module="facesearch.bench.distractors",
                         description="Refit the face statistics shipped with facesearch.", refit=refit_lfw_statistics,
                         out=None, refit_help="embed LFW, fit, write --out and print the check",
                         out_help="where to write the statistics (default: the shipped file for the default "
                                  "analysis, with flip)")


if __name__ == "__main__":
    sys.exit(_main())
