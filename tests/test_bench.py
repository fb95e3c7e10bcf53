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
    return v is None or 0.0 <= v <= 1.0


def test_bench_lfw_dev_test_slice(cli):
    d = _json(cli("bench", "lfw", "--lfw", LFW, "--pairs", DATA / "lfw" / "pairsDevTest.txt", "--limit", 5, "--json"))
    d = d["rows"][0] if "rows" in d else d  # one row per embedder since `bench lfw --compare`
    # pairsDevTest.txt is one fold; --limit 5 keeps 5 same and 5 different pairs.
    assert d["pairs"] == 10
    assert len(d["fold_accuracies"]) == 1
    assert 0.0 <= d["accuracy"] <= 1.0
    assert all(0.0 <= v <= 1.0 for v in d["tar_at_far"].values())
    assert 0 <= d["failed_pairs"] <= d["pairs"]
    assert all(math.isfinite(t) for t in d["thresholds"])


def test_bench_lfw_flip(cli):
    args = ("bench", "lfw", "--lfw", LFW, "--pairs", DATA / "lfw" / "pairsDevTest.txt", "--limit", 2, "--flip")
    row = _json(cli(*args, "--json"))["rows"][0]
    assert row["flip"] is True and row["pairs"] == 4 and 0.0 <= row["accuracy"] <= 1.0
    assert "flip" in cli(*args).output


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
    unknown = sum(1 for p in KNOWN.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert d["identities"] == 5
    assert d["gallery_photos"] == sum(1 for p in (CELEB / "train").rglob("*") if p.is_file())
    assert d["known_probes"] == sum(1 for p in (CELEB / "val").rglob("*") if p.is_file())
    assert d["unknown_probes"] == unknown
    _check_identify(d)
    for m in d["matchers"][:2]:
        assert m["rank1"] >= 0.9, m
    assert (out / "det.png").stat().st_size > 0
    assert json.loads((out / "identify.json").read_text())["matchers"] == d["matchers"]


def test_bench_identify_dataset_with_a_flat_unknown_folder(cli, tmp_path):
    unknown = tmp_path / "strangers"
    unknown.mkdir()
    for name in ("lin-manuel-miranda.png", "multiface.jpg"):
        shutil.copy(QUERIES / name, unknown / name)
    d = _json(cli("bench", "identify", "--dataset", CELEB / "val", "--gallery-per-id", 2, "--unknown", unknown,
                  "--json"))
    assert d["identities"] == 5 and d["gallery_photos"] == 10 and d["gallery_per_id"] == 2
    assert d["gallery_photos"] + d["known_probes"] == sum(1 for p in (CELEB / "val").rglob("*") if p.is_file())
    assert d["unknown_probes"] == 2
    _check_identify(d)


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
    assert eff["rounds"] == len(eff["fraction_of_ceiling"]) == len(eff["ceiling_gflops"]) == 2
    assert 0 < eff["median_fraction"] <= eff["best_round_fraction"]
    assert d["enrollment"]["images_per_s"] > 0 and d["enrollment"]["enrolled"] >= 1
    assert 0 < d["query_warm"]["p50_ms"] <= d["query_warm"]["p95_ms"]
    assert d["query_cold"]["median_s"] > 0
    rows = {r["kind"]: r for r in d["search"]}
    assert set(rows) == {"flat", "hnsw"} and all(r["size"] == 1000 for r in rows.values())
    assert rows["flat"]["recall_at_1"] == 1.0
    for r in rows.values():
        assert 0.0 <= r["recall_at_1"] <= 1.0 and r["p50_ms"] > 0 and r["queries"] > 0


def test_bench_speed_compares_enrollment_with_dlib(cli):
    result = cli("bench", "speed", "--quick", "--only", "enrollment", "--compare", "--min-face-size", 40,
                 "--lfw", LFW, "--data", DATA, "--json")
    d = _json(result)
    assert d["parts"] == ["enrollment"] and "search" not in d and "detection" not in d
    assert d["settings"]["min_face_size"] == 40
    r = d["enrollment_vs_dlib"]
    assert r["facenet"]["enrolled"] >= 3 and r["dlib"]["enrolled"] >= 3  # the first 4 LFW photos
    assert abs(r["ratio"] - r["facenet"]["images_per_s"] / r["dlib"]["images_per_s"]) < 0.01
    human = cli("bench", "speed", "--quick", "--only", "enrollment", "--lfw", LFW, "--data", DATA)
    assert human.exit_code == 0 and "enrollment (no cache)" in human.output and "FAISS" not in human.output


def test_bench_speed_rejects_unknown_parts(cli):
    result = cli("bench", "speed", "--only", "detection,warp", "--lfw", LFW, "--data", DATA)
    assert result.exit_code == 2 and "warp" in result.output
    result = cli("bench", "speed", "--only", "search", "--compare", "--lfw", LFW, "--data", DATA)
    assert result.exit_code == 2 and "--compare" in result.output
