"""``facesearch bench lfw / identify / speed`` on small slices of real data (through the face cache)."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np

from conftest import CELEB, DATA, KNOWN, QUERIES

LFW = DATA / "lfw" / "lfw-deepfunneled.tgz"


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _rate(v) -> bool:
    """A fraction; ``None`` (nothing to measure) does not pass: every test here has probes of each kind."""
    return v is not None and 0.0 <= v <= 1.0


def test_bench_lfw_dev_test_slice(cli):
    d = _json(cli("bench", "lfw", "--lfw", LFW, "--pairs", DATA / "lfw" / "pairsDevTest.txt", "--limit", 5, "--json"))
    (row,) = d["rows"]
    assert row["embedder"] == "facenet" and row["flip"] is True  # as a new gallery embeds
    # pairsDevTest.txt is one fold; --limit 5 keeps 5 same and 5 different pairs, 18 distinct photos.
    assert row["pairs"] == 10 and row["photos"] == 18
    assert row["failed_pairs"] == 0 and row["failed_photos"] == 0 and row["no_face"] == []
    # FaceNet separates these ten pairs: one threshold accepts every same pair and no other.
    assert row["fold_accuracies"] == [1.0] and row["accuracy"] == 1.0
    assert row["tar_at_far"] == {"0.001": 1.0, "0.01": 1.0}
    (threshold,) = row["thresholds"]
    assert math.isfinite(threshold) and -1.0 < threshold < 1.0


def test_bench_lfw_no_flip(cli):
    args = ("bench", "lfw", "--lfw", LFW, "--pairs", DATA / "lfw" / "pairsDevTest.txt", "--limit", 2)
    (flipped,) = _json(cli(*args, "--json"))["rows"]
    (plain,) = _json(cli(*args, "--no-flip", "--json"))["rows"]
    assert flipped["flip"] is True and plain["flip"] is False
    assert flipped["pairs"] == plain["pairs"] == 4 and flipped["accuracy"] == 1.0
    # Averaging with the mirrored face changes the embeddings, so the fitted threshold moves.
    assert flipped["thresholds"] != plain["thresholds"]
    assert ", flip]" in cli(*args).output and ", flip]" not in cli(*args, "--no-flip").output


def _check_identify(d: dict) -> None:
    assert [m["matcher"] for m in d["matchers"]] == ["knn k=1", "knn k=5", "centroid"]
    assert 0 <= d["gallery_no_face"] <= d["gallery_photos"]
    assert 0 <= d["known_no_face"] <= d["known_probes"]
    assert 0 <= d["unknown_no_face"] <= d["unknown_probes"]
    for m in d["matchers"]:
        assert _rate(m["rank1"]) and _rate(m["rank5"]) and m["rank5"] >= m["rank1"]
        for point in m["dir_at_fpir"].values():
            assert _rate(point["dir"]) and _rate(point["fpir"])
            assert point["dir"] <= m["rank1"]  # identified at a threshold => identified at rank 1
        at = m["at_threshold"]
        assert at["threshold"] == d["threshold"]
        for key in ("known_accuracy", "known_misidentified", "unknown_rejection", "fpir"):
            assert _rate(at[key]), key
        assert at["known_accuracy"] + at["known_misidentified"] <= 1.0 + 1e-9
        assert at["known_accuracy"] <= m["rank1"] + 1e-9


def test_bench_identify_5celeb_with_unknown_people(cli, tmp_path):
    out = tmp_path / "out"
    d = _json(cli("bench", "identify", "--gallery", CELEB / "train", "--probes", CELEB / "val",
                  "--unknown", KNOWN, "--out", out, "--json"))
    # 5celeb: 93 train and 25 val photos of 5 people; fixtures/known: 9 photos of 5 others.
    assert d["identities"] == 5
    assert d["gallery_photos"] == 93 and d["known_probes"] == 25 and d["unknown_probes"] == 9
    assert d["known_no_face"] == 0 and d["unknown_no_face"] == 0
    _check_identify(d)
    for m in d["matchers"]:
        assert m["rank1"] >= 24 / 25, m
        # None of the fixtures' people looks enough like a 5celeb one to be named.
        assert m["at_threshold"]["unknown_rejection"] == 1.0 and m["at_threshold"]["fpir"] == 0.0, m
    assert (out / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "identify.json").read_text())["matchers"] == d["matchers"]


def test_bench_identify_dataset_with_a_flat_unknown_folder(cli, tmp_path):
    unknown = tmp_path / "strangers"
    unknown.mkdir()
    for name in ("lin-manuel-miranda.png", "multiface.jpg"):
        shutil.copy(QUERIES / name, unknown / name)
    d = _json(cli("bench", "identify", "--dataset", CELEB / "val", "--gallery-per-id", 2, "--unknown", unknown,
                  "--json"))
    assert d["identities"] == 5 and d["gallery_photos"] == 10 and d["gallery_per_id"] == 2
    assert d["known_probes"] == 25 - 10  # the rest of 5celeb/val
    assert d["unknown_probes"] == 2
    _check_identify(d)


def test_bench_identify_normalised_rows_keep_the_ranking_of_centred_scores(cli):
    d = _json(cli("bench", "identify", "--gallery", CELEB / "train", "--probes", CELEB / "val",
                  "--unknown", KNOWN, "--normalised", "--json"))
    rows = {m["matcher"]: m for m in d["matchers"]}
    assert {"knn k=1", "best face, raw", "centre K=20 w=0.5", "t-norm K=20", "as-norm K=50"} <= set(rows)
    # Quality rules (decline or penalise low-quality faces) on the centred score: rank unchanged.
    assert sum(label.startswith("centre K=20 w=0.5, ") for label in rows) == 9
    raw = rows["best face, raw"]
    assert raw["rank1"] == rows["knn k=1"]["rank1"] and raw["dir_at_fpir"] == rows["knn k=1"]["dir_at_fpir"]
    for label, m in rows.items():
        if label.startswith(("centre", "t-norm")):
            # Both move all of a probe's candidates alike: its ranking, hence rank-k, is unchanged.
            assert (m["rank1"], m["rank5"]) == (raw["rank1"], raw["rank5"]), label
        if label not in ("knn k=1", "knn k=5", "centroid"):
            assert all(v is None for v in m["at_threshold"].values()), label


def test_bench_identify_refuses_enrolled_unknowns(cli):
    res = cli("bench", "identify", "--gallery", CELEB / "train", "--probes", CELEB / "val", "--unknown", CELEB / "val")
    assert res.exit_code != 0
    assert "enrolled too" in res.output


def test_threshold_at_fpir_and_det_curve():
    from facesearch.bench.identify import ProbeScores, det_curve, threshold_at_fpir

    unknown = np.linspace(0.1, 1.0, 10)
    t = threshold_at_fpir(unknown, 0.1)  # one of ten may pass: just above the second highest
    assert (unknown >= t).sum() == 1 and t > 0.9
    assert (unknown >= threshold_at_fpir(unknown, 0.01)).sum() == 0
    assert threshold_at_fpir(unknown, 1.0) == -np.inf
    known = ProbeScores(rank=np.array([1, 1, 2, 0]), score=np.array([0.95, 0.5, 0.9, -np.inf]), named=[None] * 4)
    fpir, fnir, thr = det_curve(known, unknown)
    assert np.all(np.diff(thr) < 0) and np.all(np.diff(fpir) >= 0) and np.all(np.diff(fnir) <= 0)
    assert fpir[0] == 0 and fnir[0] == 1 and fpir[-1] == 1
    assert fnir[-1] == 0.5  # two of four known probes are never identified at rank 1


def test_bench_speed_quick(cli):
    d = _json(cli("bench", "speed", "--quick", "--sizes", 1000, "--lfw", LFW, "--data", DATA, "--json"))
    assert d["machine"]["cores"] >= 1 and d["machine"]["cpu"]
    assert d["matmul"]["gflops"] > 0
    assert d["detection"]["lfw"]["images_per_s"] > 0 and d["detection"]["photo_1080p"]["images_per_s"] > 0
    for b in ("batch_1", "batch_32"):
        assert d["embedding"][b]["faces_per_s"] > 0 and d["embedding"][b]["fraction_of_ceiling"] > 0
    eff = d["embedding"]["efficiency"]
    fractions = eff["fraction_of_ceiling"]
    assert len(fractions) == len(eff["ceiling_gflops"]) == len(eff["faces_per_s"]) == eff["rounds"] >= 2
    assert 0 < min(fractions) <= eff["median_fraction"] <= max(fractions) == eff["best_round_fraction"]
    assert d["enrollment"]["images_per_s"] > 0 and d["enrollment"]["enrolled"] >= 1
    assert 0 < d["query_warm"]["p50_ms"] <= d["query_warm"]["p95_ms"]
    assert d["query_cold"]["median_s"] > 0
    assert d["query_warm_reference"]["p50_ms"] > 0
    # The runtimes side by side (OpenVINO, ONNX Runtime, TensorFlow), on the same arithmetic.
    runtimes = ("openvino", "onnx", "keras")
    assert d["matmul"]["gflops"] == max(d["matmul"]["by"].values()) and set(d["matmul"]["by"]) == {"numpy", "openvino"}
    det = d["detection"]["paths"]["rows"]
    assert {(r["photo"], r["path"]) for r in det} == {(p, k) for p in ("lfw", "photo_1080p") for k in runtimes}
    for photo in ("lfw", "photo_1080p"):
        rows = [r for r in det if r["photo"] == photo]
        assert len({r["gflop"] for r in rows}) == 1 and rows[0]["gflop"] > 0
        assert len({r["faces"] for r in rows}) == 1 and rows[0]["faces"] >= 1
        assert all(r["x_arithmetic"] > 0 and r["ms"] > 0 for r in rows)
    emb = d["embedding"]["paths"]["rows"]
    assert {(r["batch"], r["path"]) for r in emb} == {(b, k) for b in (1, 32) for k in runtimes}
    assert all(r["fraction_of_ceiling"] > 0 for r in emb)
    # Commands that load no model never import TensorFlow.
    assert d["startup"]["help"]["imports_tensorflow"] is False
    assert d["startup"]["list"]["imports_tensorflow"] is False
    rows = {r["kind"]: r for r in d["search"]}
    assert set(rows) == {"flat", "hnsw"} and all(r["size"] == 1000 for r in rows.values())
    # Scored against exact search: at 1,000 vectors HNSW finds the exact nearest face.
    assert rows["hnsw"]["recall_at_1"] >= 0.95
    for r in rows.values():
        assert r["p50_ms"] > 0 and r["queries"] > 0


def test_search_recall_is_scored_against_exact_search(monkeypatch):
    from facesearch.bench.distractors import random_unit_vectors
    from facesearch.bench.speed import search_speed
    from facesearch.search.faiss_index import VectorIndex

    rng = np.random.default_rng(0)
    stored, queries = random_unit_vectors(20, 64, rng), random_unit_vectors(30, 64, rng)
    recall = {r["kind"]: r["recall_at_1"] for r in search_speed(stored, queries, 500)}
    assert recall["hnsw"] >= 0.95
    build = VectorIndex.build

    def mislabelled(ids, vectors, kind="auto"):
        """An HNSW index that finds the right vectors but answers with other vectors' ids."""
        return build(ids[::-1].copy() if kind == "hnsw" else ids, vectors, kind=kind)

    monkeypatch.setattr(VectorIndex, "build", mislabelled)
    recall = {r["kind"]: r["recall_at_1"] for r in search_speed(stored, queries, 500)}
    assert recall["hnsw"] == 0.0


def test_bench_speed_compares_enrollment_with_dlib(cli):
    result = cli("bench", "speed", "--quick", "--only", "enrollment", "--compare", "--min-face-size", 40,
                 "--lfw", LFW, "--data", DATA, "--json")
    d = _json(result)
    assert d["parts"] == ["enrollment"] and "search" not in d and "detection" not in d
    assert d["settings"]["min_face_size"] == 40 and d["settings"]["flip"] is True  # as a new gallery embeds
    r = d["enrollment_vs_dlib"]
    assert r["images"] == r["facenet"]["enrolled"] == r["dlib"]["enrolled"] == 4  # the first 4 LFW photos
    assert r["ratio"] > 0 and (r["ratio"] > 1) == (r["facenet"]["images_per_s"] > r["dlib"]["images_per_s"])
    human = cli("bench", "speed", "--quick", "--only", "enrollment", "--no-flip", "--lfw", LFW, "--data", DATA)
    assert human.exit_code == 0 and "enrollment (no cache)" in human.output and "FAISS" not in human.output
    assert "flip" not in _json(cli("bench", "speed", "--quick", "--only", "enrollment", "--no-flip", "--lfw", LFW,
                                   "--data", DATA, "--json"))["settings"]


def test_enrollment_comparison_is_the_ratio_of_median_rates(monkeypatch, tmp_path):
    """Ours over dlib's, each the median of its rounds (not the median of per-round ratios, 2.0)."""
    from facesearch.bench import speed

    class FakeDlib:
        pass

    rates = {"facenet": iter([2.0, 9.0, 4.0]), "dlib": iter([1.0, 3.0, 8.0])}
    order = []

    def fake_enrollment_speed(analysis, photos, home):
        who = "dlib" if isinstance(analysis, FakeDlib) else "facenet"
        order.append(who)
        return {"images": len(photos), "enrolled": len(photos) - 1, "images_per_s": next(rates[who])}

    monkeypatch.setattr(speed, "DlibAnalysis", FakeDlib)
    monkeypatch.setattr(speed, "enrollment_speed", fake_enrollment_speed)
    r = speed.enrollment_comparison(object(), [(tmp_path / "a.jpg", "a")] * 4, tmp_path, rounds=3)
    assert order == ["facenet", "dlib"] * 3  # alternating rounds, ours first
    assert r["facenet"] == {"images_per_s": 4.0, "enrolled": 3, "runs": [2.0, 9.0, 4.0]}
    assert r["dlib"] == {"images_per_s": 3.0, "enrolled": 3, "runs": [1.0, 3.0, 8.0]}
    assert r["ratio"] == 1.333 and r["images"] == 4 and r["rounds"] == 3


def test_bench_speed_rejects_unknown_parts(cli):
    result = cli("bench", "speed", "--only", "detection,warp", "--lfw", LFW, "--data", DATA)
    assert result.exit_code == 2 and "warp" in result.output
    result = cli("bench", "speed", "--only", "search", "--compare", "--lfw", LFW, "--data", DATA)
    assert result.exit_code == 2 and "--compare" in result.output
