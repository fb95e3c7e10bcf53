"""Synthetic distractors: statistics fitted on real faces, sampling, streaming, the shipped LFW fit."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import CELEB, KNOWN
from facesearch.bench.datasets import folder_dataset
from facesearch.bench.distractors import (
    fit_within_spread, lfw_statistics, pair_similarities, random_unit_vectors, sample_distractors, sample_identities,
    similarity_check, statistics_file, stream_distractors,
)
from facesearch.bench.face_statistics import FaceStatistics, fit_mixture, select_components
from facesearch.bench.embeddings import embed_photos
from facesearch.errors import DataError
from facesearch.models.face_cache import FaceCache
from facesearch.models.weights import MODEL_ID


@pytest.fixture(scope="module")
def real(analysis):
    """Embeddings of 5celeb (train + val) and fixtures/known: float32 (N, 512) and names (N,)."""
    items = folder_dataset(CELEB / "train") + folder_dataset(CELEB / "val") + folder_dataset(KNOWN)
    emb = embed_photos([p for p, _ in items], analysis, FaceCache.for_settings(analysis.settings))
    of = emb.of()
    rows = np.array([of[p] for p, _ in items])
    ok = emb.ok[rows]
    return emb.vectors[rows[ok]], np.array([who for (_, who), good in zip(items, ok) if good])


@pytest.fixture(scope="module")
def stats(real):
    return FaceStatistics.fit(*real, model=MODEL_ID, source="5celeb + fixtures")


def _relative_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


def test_fit_keeps_identities_with_two_faces_and_gives_symmetric_psd_covariances(real, stats):
    vectors, names = real
    _, per_name = np.unique(names, return_counts=True)
    assert sorted(stats.counts) == sorted(per_name[per_name >= 2])
    assert stats.dim == 512 and stats.mean.dtype == np.float32
    for cov in (stats.between, stats.within):
        assert cov.shape == (512, 512) and cov.dtype == np.float32
        np.testing.assert_allclose(cov, cov.T, atol=1e-6)
        assert np.linalg.eigvalsh(cov.astype(np.float64)).min() > -1e-5
    # Unit vectors: the squared centre plus the total variance is about 1.
    total = stats.mean @ stats.mean + np.trace(stats.between) + np.trace(stats.within)
    assert 0.8 < total < 1.2


def test_fit_refuses_data_without_two_identities_of_two_faces():
    x = random_unit_vectors(3, 8, np.random.default_rng(0))
    with pytest.raises(DataError, match="2\\+ identities"):
        FaceStatistics.fit(x, ["a", "a", "b"])


def test_save_and_load_keep_everything_and_check_the_model(stats, tmp_path):
    path = tmp_path / "stats.npz"
    stats.with_within(1.1, 0.5).save(path)
    back = FaceStatistics.load(path, model=MODEL_ID)
    for name in ("mean", "between", "within", "counts", "basis", "weights", "component_means", "component_covs"):
        np.testing.assert_array_equal(getattr(back, name), getattr(stats, name))
    assert (back.model, back.source, back.within_scale, back.within_spread) == (MODEL_ID, stats.source, 1.1, 0.5)
    with pytest.raises(DataError, match="fitted for model"):
        FaceStatistics.load(path, model="another-model")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        FaceStatistics.load(tmp_path / "junk.npz")


def test_samples_are_unit_float32_rows_grouped_by_identity(stats):
    labels, vectors = sample_identities(stats, 50, 3, rng=1)
    assert labels.dtype == np.int64 and vectors.dtype == np.float32
    assert vectors.shape == (150, 512)
    np.testing.assert_array_equal(labels, np.repeat(np.arange(50), 3))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_faces_per_identity_is_fixed_or_drawn_from_counts(stats):
    labels, _ = sample_identities(stats, 400, np.array([1, 5]), rng=2)
    assert set(np.bincount(labels)) == {1, 5}
    labels, _ = sample_identities(stats, 400, rng=2)  # the fitted data's counts
    assert set(np.bincount(labels)) <= set(stats.counts)
    with pytest.raises(ValueError):
        sample_identities(stats, 5, 0)


def test_a_large_sample_recovers_the_statistics(stats):
    # Two faces per identity, as most of LFW: the between covariance comes back only because
    # the fit subtracts the within-identity scatter of a two-face mean. A per-face spread keeps
    # the within covariance (its scale s^2 has mean 1).
    labels, raw = sample_identities(stats.with_within(1.0, 0.7), 6000, 2, rng=3, normalise=False)
    refit = FaceStatistics.fit(raw, labels)
    assert _relative_error(refit.within, stats.within) < 0.1
    assert _relative_error(refit.between, stats.between) < 0.1
    spread = (refit.mean - stats.mean) @ (refit.mean - stats.mean)
    assert spread < 0.01 * np.trace(stats.between)


def test_the_within_scale_multiplies_the_within_covariance(stats):
    labels, raw = sample_identities(stats.with_within(2.0, 0.0), 3000, 4, rng=4, normalise=False)
    assert _relative_error(FaceStatistics.fit(raw, labels).within, 2 * stats.within) < 0.1


def test_the_mixture_finds_separate_groups_of_identities():
    # Two groups of identity centres far apart along one axis, each spread over 6 others.
    rng = np.random.default_rng(0)
    group = np.repeat([0, 1], 300)
    centres = 0.1 * rng.standard_normal((600, 8))
    centres[:, 0] += np.where(group == 1, 1.0, -1.0)
    weights, means, covs, resp = fit_mixture(centres, 2, 0.1)
    found = np.argmax(resp, axis=1)
    assert max(np.mean(found == group), np.mean(found != group)) > 0.99
    np.testing.assert_allclose(np.sort(means[:, 0]), [-1, 1], atol=0.05)
    np.testing.assert_allclose(weights, [0.5, 0.5], atol=0.02)
    (components, _), table = select_components(centres, [(1, 1.0), (2, 0.1)], folds=3)
    assert components == 2 and len(table) == 2


def test_a_mixture_of_centres_keeps_the_between_covariance():
    # Statistics of made-up identities in two groups: sampled centres keep the fitted between
    # covariance whatever the number of components.
    rng = np.random.default_rng(1)
    centres = 0.3 * rng.standard_normal((800, 16))
    centres[:, 0] += np.where(np.arange(800) % 2, 0.6, -0.6)
    labels = np.repeat(np.arange(800), 3)
    faces = centres[labels] + 0.1 * rng.standard_normal((2400, 16))
    one = FaceStatistics.fit(faces, labels)
    two = FaceStatistics.fit(faces, labels, components=2)
    assert two.components == 2
    lab, raw = sample_identities(two, 20_000, 2, rng=5, normalise=False)
    assert _relative_error(FaceStatistics.fit(raw, lab).between, one.between) < 0.1


def test_the_same_seed_gives_the_same_faces(stats):
    a = sample_identities(stats, 20, 4, rng=7)
    b = sample_identities(stats, 20, 4, rng=np.random.default_rng(7))
    c = sample_identities(stats, 20, 4, rng=8)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[1], c[1])


@pytest.mark.parametrize("kind", ["faces", "random"])
def test_streaming_in_chunks_equals_one_shot(stats, kind):
    n = 5003
    one_labels, one_vectors = sample_distractors(kind, n, 11, stats=stats, chunk=n)
    chunks = list(stream_distractors(kind, n, 11, stats=stats, chunk=700))
    assert len(chunks) > 1 and all(len(lab) <= 700 for lab, _ in chunks)
    labels = np.concatenate([lab for lab, _ in chunks])
    np.testing.assert_array_equal(labels, one_labels)
    # The same random draws; BLAS may round a product of another shape differently in the last bit.
    np.testing.assert_allclose(np.concatenate([vec for _, vec in chunks]), one_vectors, atol=1e-6)
    assert len(one_labels) == n and one_vectors.shape == (n, 512)
    np.testing.assert_allclose(np.linalg.norm(one_vectors, axis=1), 1, atol=1e-5)
    # A chunk never splits an identity.
    starts = [lab[0] for lab, _ in chunks[1:]]
    ends = [lab[-1] for lab, _ in chunks[:-1]]
    assert all(s == e + 1 for s, e in zip(starts, ends))


def test_random_distractors_are_one_identity_each_and_match_random_unit_vectors():
    labels, vectors = sample_distractors("random", 300, 4, dim=64)
    np.testing.assert_array_equal(labels, np.arange(300))
    np.testing.assert_array_equal(vectors, random_unit_vectors(300, 64, np.random.default_rng(4)))
    with pytest.raises(ValueError, match="unknown distractor kind"):
        next(stream_distractors("people", 3))


def test_pair_similarities_separate_same_from_different():
    centres = random_unit_vectors(40, 32, np.random.default_rng(0))
    labels = np.repeat(np.arange(40), 3)
    vectors = centres[labels] + 0.02 * np.random.default_rng(1).standard_normal((120, 32))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    same, different = pair_similarities(labels, vectors, 500, 0)
    assert same.shape == different.shape == (500,)
    assert same.min() > 0.9 and abs(different.mean()) < 0.1
    assert same.max() < 0.9999  # two different faces, never one face with itself


def test_similarity_check_reports_real_and_synthetic(real, stats):
    report = similarity_check(stats, *real, n_pairs=2000)
    assert set(report["same"]) == {"real", "synthetic"}
    assert set(report["different"]) == {"real", "synthetic", "real_vs_synthetic"}
    assert set(report["same"]["real"]) == {"mean", "std", "q001", "q01", "q50", "q99", "q999", "above_threshold"}
    assert report["same"]["real"]["mean"] > report["different"]["real"]["mean"] + 0.3


def test_fit_within_spread_matches_the_real_same_identity_similarities(real, stats):
    fitted = fit_within_spread(stats, *real, n_pairs=5000)
    assert fitted.within_spread > 0  # real faces vary more than one Gaussian spread gives
    labels, vectors = sample_identities(fitted, 2000, rng=6)
    real_same, _ = pair_similarities(real[1], real[0], 20_000, 0)
    same, _ = pair_similarities(labels, vectors, 20_000, 0)
    # Nine real identities make a between covariance of eight directions: the draw of centres
    # moves the mean by about 0.01, hence the margin.
    assert abs(same.mean() - real_same.mean()) < 0.025
    assert abs(same.std() - real_same.std()) < 0.025


# Real LFW, people with 2+ photos (docs/benchmarks.md, "Synthetic distractors" and "Flip by
# default"): same-identity cosine mean and spread, different-identity mean and spread.
@pytest.mark.parametrize("model, real", [(MODEL_ID, (0.699, 0.124, 0.036, 0.135)),
                                         (MODEL_ID + "+flip", (0.706, 0.124, 0.037, 0.136))])
def test_the_shipped_lfw_statistics_give_realistic_similarities(model, real):
    stats = lfw_statistics(model=model)
    assert stats.model == model and stats.dim == 512 and len(stats.counts) > 1500 and stats.components >= 1
    labels, vectors = sample_identities(stats, 5000, 2, rng=0)
    same, different = pair_similarities(labels, vectors, 200_000, 0)
    assert abs(same.mean() - real[0]) < 0.02 and abs(same.std() - real[1]) < 0.02
    assert abs(different.mean() - real[2]) < 0.01 and abs(different.std() - real[3]) < 0.01
    # 0.29-0.32% of real pairs at or above 0.45.
    assert 0.001 < np.mean(different >= 0.45) < 0.004


def test_the_default_statistics_are_those_of_a_new_gallery():
    from facesearch.models.analysis import FaceAnalysis

    assert lfw_statistics().model == FaceAnalysis().model_id == MODEL_ID + "+flip"
    with pytest.raises(DataError, match="fitted for model"):
        FaceStatistics.load(statistics_file(MODEL_ID), MODEL_ID + "+flip")


def test_refitting_from_a_folder_without_lfw_is_one_line_and_exit_1(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "facesearch.bench.distractors", "--refit", "--lfw", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and str(tmp_path) in done.stderr and "Traceback" not in done.stderr
