"""``facesearch.search.faiss_index.VectorIndex``: exact and HNSW indexes, saved and loaded as real FAISS files."""
from __future__ import annotations

import numpy as np
import pytest

from facesearch.search.faiss_index import HNSW_EF_SEARCH, VectorIndex


def _unit(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 64)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_index_round_trip_finds_each_stored_vector(kind, tmp_path):
    vectors = _unit(2000)
    ids = np.arange(100, 2100, dtype=np.int64)
    index = VectorIndex.build(ids, vectors, kind=kind)
    path = tmp_path / f"{kind}.faiss"
    index.save(path)
    loaded = VectorIndex.load(path)
    assert loaded.kind == kind and len(loaded) == 2000
    np.testing.assert_array_equal(np.sort(loaded.ids()), ids)
    sims, found = loaded.search(vectors[:50], 1)
    np.testing.assert_array_equal(found[:, 0], ids[:50])  # each vector is its own nearest neighbour
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)


def test_loaded_hnsw_searches_with_the_current_ef_search(tmp_path):
    index = VectorIndex.build(np.arange(300, dtype=np.int64), _unit(300), kind="hnsw")
    index.set_ef_search(16)  # as a file from an older version
    assert index.graph_params()["ef_search"] == 16
    index.save(tmp_path / "old.faiss")
    loaded = VectorIndex.load(tmp_path / "old.faiss")
    assert loaded.graph_params()["ef_search"] == HNSW_EF_SEARCH


def test_exact_search_is_exact_and_hnsw_recall_is_measured_against_it():
    """Held-out queries: flat's top-1 is the brute-force answer; HNSW finds it almost always."""
    stored, queries = _unit(5000, seed=1), _unit(200, seed=2)
    ids = np.arange(5000, dtype=np.int64) * 7  # ids unlike positions, so a mix-up shows
    truth = ids[np.argmax(queries @ stored.T, axis=1)]
    _, flat = VectorIndex.build(ids, stored, kind="flat").search(queries, 1)
    np.testing.assert_array_equal(flat[:, 0], truth)
    _, approx = VectorIndex.build(ids, stored, kind="hnsw").search(queries, 1)
    recall = float(np.mean(approx[:, 0] == truth))
    assert recall >= 0.95, f"HNSW recall@1 {recall:.3f} against exact search"


def test_inverted_file_reranked_with_stored_vectors_gives_exact_similarities(tmp_path):
    """The inverted file holds 4-bit codes, not vectors: its own similarities are approximate;
    re-ranked with the stored vectors they are exact, and vectors gone from the store drop out."""
    from facesearch.search.faiss_index import LayeredIndex

    stored = _unit(20_000, seed=3)
    ids = np.arange(20_000, dtype=np.int64) * 3 + 1
    index = VectorIndex.build(ids, stored, kind="ivf")
    index.save(tmp_path / "ivf.faiss")
    loaded = VectorIndex.load(tmp_path / "ivf.faiss", mmap=True)
    assert loaded.kind == "ivf" and loaded.approximate and len(loaded) == 20_000
    np.testing.assert_array_equal(np.sort(loaded.ids()), ids)
    gone = {int(ids[0])}

    def lookup(wanted):
        keep = np.array([w for w in wanted if int(w) not in gone], np.int64)
        return keep, stored[(keep - 1) // 3]

    layered = LayeredIndex(loaded, int(ids.max()), exact=lookup)
    sims, found = layered.search(stored[:50], 5)
    np.testing.assert_array_equal(found[1:, 0], ids[1:50])  # each stored vector finds itself
    np.testing.assert_allclose(sims[1:, 0], 1.0, atol=1e-5)
    assert found[0, 0] != ids[0] and ids[0] not in found  # the one the store lost is not answered
    # Every similarity returned is the exact inner product with the stored vector.
    ok = found >= 0
    exact = np.einsum("qd,qkd->qk", stored[:50], stored[(np.where(ok, found, 1) - 1) // 3])
    np.testing.assert_allclose(sims[ok], exact[ok], atol=1e-5)
