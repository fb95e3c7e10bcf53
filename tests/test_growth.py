"""A gallery that grows: incremental index maintenance, one writer at a time, readers that never
write, crash safety of index updates, bounded memory of rebuilds."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CELEB, QUERIES, REPO

DIM = 512


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _answers(g, queries: np.ndarray) -> list:
    """What both matchers say about ``queries``: identity, similarity and candidates."""
    out = []
    for name in ("knn", "centroid"):
        for m in g.matcher(name, threshold=0.2, top_k=5, k=5).identify(queries):
            out.append((m.identity, round(m.similarity, 5), [(c.identity, round(c.similarity, 5)) for c in m.candidates]))
    return out


def _fresh_answers(g, queries: np.ndarray) -> list:
    """The same answers from an index rebuilt from scratch (what reindex does), not kept up to date."""
    from facesearch.gallery import Gallery

    with Gallery(g.home, analysis=g.analysis) as fresh:
        fresh._set_index(fresh._build_index())
        return _answers(fresh, queries)


def test_incremental_maintenance_answers_like_a_full_rebuild(tmp_path, analysis, monkeypatch):
    """A seeded random run of enroll, remove (a person or one face), rename, merge and import, with checkpoints forced
    often: after every step the incrementally maintained index answers exactly like a rebuild."""
    from facesearch.gallery import Gallery, facade

    monkeypatch.setattr(facade, "SMALL_GALLERY", 0)        # never rewrite the files just because they are small
    monkeypatch.setattr(facade, "CHECKPOINT_CHANGES", 40)  # ...but fold the changes in every few steps
    rng = np.random.default_rng(7)
    pyrng = random.Random(7)
    queries = _unit(rng, 12)
    people = [f"p{i}" for i in range(12)]
    with Gallery(tmp_path / "g", analysis=analysis) as g:
        g.add_embeddings([pyrng.choice(people) for _ in range(60)], _unit(rng, 60))
        queries = np.vstack([queries, g.embeddings()[1][:6]])  # some queries hit stored faces exactly
        kinds = []
        for step in range(24):
            names = g.names()
            op = pyrng.choice(["add", "add", "remove", "remove_face", "rename", "merge", "import"])
            if op == "add":
                g.add_embeddings([pyrng.choice(people + ["new%d" % step]) for _ in range(8)], _unit(rng, 8))
            elif op == "remove" and len(names) > 2:
                g.remove(pyrng.choice(names))
            elif op == "remove_face" and names:
                g.remove_face(pyrng.choice(g.faces())["id"])
            elif op == "rename" and names:
                g.rename(pyrng.choice(names), f"renamed{step}")
            elif op == "merge" and len(names) > 2:
                a, b = pyrng.sample(names, 2)
                g.rename(a, b)
            elif op == "import":
                averages = {f"imported{step}": _unit(rng, 1)[0].tolist()}
                (tmp_path / "avg.json").write_text(json.dumps(averages))
                g.import_averages(tmp_path / "avg.json")
            kinds.append(op)
            assert _answers(g, queries) == _fresh_answers(g, queries), f"step {step} ({op})"
        # Both paths were exercised: changes kept in the database and changes folded into the files.
        index = g._load_index()
        assert index.base_generation < index.generation or index.pending == 0
    assert {"add", "remove", "remove_face", "rename", "merge", "import"} <= set(kinds)


def _copy_people(names: list[str], dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in names:
        shutil.copytree(CELEB / "train" / name, dest / name)
    return dest


def _enroll_processes(home: Path, folders: list[Path]) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "facesearch", "--home", str(home), "enroll", "-q", "--json",
                               str(f)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for f in folders]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=600), *p.communicate()) for p in procs]


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_enrollers_with_overlapping_people_all_succeed(tmp_path, writers):
    people = sorted(p.name for p in (CELEB / "train").iterdir())
    # Each writer gets three of the five people, so every person is enrolled by several writers.
    folders = [_copy_people([people[(w + i) % 5] for i in range(3)], tmp_path / f"w{w}") for w in range(writers)]
    home = tmp_path / "g"
    results = _enroll_processes(home, folders)
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    reports = [json.loads(r.stdout) for r in results]
    enrolled = [e["path"] for rep in reports for e in rep["enrolled"]]
    # Every distinct photo (by content) of the people used is enrolled exactly once overall.
    from facesearch.gallery import Gallery

    used = sorted({p for f in folders for p in f.iterdir()})
    with Gallery(home) as g:
        stored = {r["name"]: r["images"] for r in g.identities()}
        photos = {p.name: len(list((CELEB / "train" / p.name).iterdir())) for p in used}
        no_face = {Path(p).parent.name for rep in reports for p in rep["no_face"]}
        for name, count in photos.items():
            assert stored[name] == count - (1 if name in no_face else 0), name
        assert len(enrolled) == sum(stored.values())
        index = g._load_index()
        assert len(index.faces) == sum(stored.values())


def test_a_second_writer_waits_and_says_so_once(tmp_path, known_gallery):
    from facesearch.gallery.lock import LOCK_FILE, WriterLock

    lock = WriterLock(known_gallery.index_dir / LOCK_FILE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with lock.held():
        proc = subprocess.Popen([sys.executable, "-m", "facesearch", "--home", str(known_gallery.home), "rename",
                                 "obama", "barack"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(6)
        assert proc.poll() is None, proc.communicate()  # still waiting for us
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert err.count("waiting for another process writing this gallery") == 1
    assert "barack" in known_gallery.names()

    with lock.held():
        result = subprocess.run([sys.executable, "-m", "facesearch", "--home", str(known_gallery.home), "--no-wait",
                                 "rename", "barack", "obama"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {known_gallery.home}: another process is writing this gallery (and --no-wait was given)"]
    assert "barack" in known_gallery.names()


def test_a_gallery_nobody_may_write_answers_queries(tmp_path, known_gallery):
    """Mounted read-only (a user namespace of our own): queries and list work and write nothing;
    a write fails in one line."""
    if shutil.which("unshare") is None:
        pytest.fail("util-linux's unshare is needed for this test")
    home = known_gallery.home
    before = {p: p.stat().st_mtime_ns for p in home.rglob("*")}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    py = sys.executable
    script = (f"mount --bind {home} {home} && mount -o remount,bind,ro {home} && "
              f"{py} -m facesearch --home {home} query --json {QUERIES / 'obama1.jpg'} && "
              f"{py} -m facesearch --home {home} list --json && "
              f"{{ {py} -m facesearch --home {home} remove obama; echo remove-exit=$?; }}")
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[0])["results"][0]["faces"][0]["identity"] == "obama"
    assert [r["name"] for r in json.loads(lines[1])] == ["alex_lacamoire", "biden", "kit_harington", "obama",
                                                         "rose_leslie"]
    assert lines[2] == "remove-exit=1"
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "cannot write this gallery" in errors[0]
    assert {p: p.stat().st_mtime_ns for p in home.rglob("*")} == before


def _synthetic_gallery(home: Path, analysis, n: int, seed: int = 0):
    from facesearch.gallery import Gallery

    rng = np.random.default_rng(seed)
    with Gallery(home, analysis=analysis) as g:
        for start in range(0, n, 50_000):
            size = min(50_000, n - start)
            g.add_embeddings([f"s{i % (n // 10)}" for i in range(start, start + size)], _unit(rng, size))
    return rng


def test_killing_an_index_update_leaves_a_gallery_that_answers_like_a_clean_one(tmp_path, analysis):
    from facesearch.gallery import Gallery

    home = tmp_path / "g"
    rng = _synthetic_gallery(home, analysis, 40_000)  # over SMALL_GALLERY, under EXACT_LIMIT
    queries = _unit(rng, 8)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    delays = random.Random(3).sample([0.3, 0.8, 1.5, 2.5, 4.0], 3)
    for delay in delays:
        proc = subprocess.Popen([sys.executable, "-m", "facesearch", "--home", str(home), "reindex", "--json"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with Gallery(home, analysis=analysis) as g:
            ids, _, _ = g.store.embeddings()
            assert len(g._load_index().faces) == len(ids) >= 40_000
            assert _answers(g, queries) == _fresh_answers(g, queries), f"killed after {delay} s"
            g.add_embeddings(["after"], _unit(rng, 1))  # and it takes writes again


def test_rebuild_memory_is_the_index_plus_one_chunk(tmp_path, analysis):
    """Peak memory of `reindex` on 100k faces: the index (200 MB of vectors) and a chunk, not the
    three full copies (rows, joined bytes, cast array) the old rebuild held."""
    home = tmp_path / "g"
    n = 100_000
    _synthetic_gallery(home, analysis, n)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")

    def peak_kib(*args: str) -> int:
        out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "facesearch", "--home", str(home),
                              *args], env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip().splitlines()[-1])

    baseline = peak_kib("list", "--json")         # the same process doing no rebuild
    rebuild = peak_kib("reindex", "--json")
    vectors_kib = n * DIM * 4 // 1024
    assert rebuild - baseline < 1.6 * vectors_kib, (baseline, rebuild, vectors_kib)


def test_bench_scale_measures_a_small_gallery(cli):
    """`bench scale` end to end on a small gallery: real 5celeb faces among random distractors."""
    result = cli("bench", "scale", "--lfw", CELEB / "train", "--sizes", "2000", "--kinds", "random", "--people", "5",
                 "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (row,) = data["rows"]
    assert row["size"] == 2000 and row["kind"] == "random" and row["index_kind"] == "flat"
    # Exact search is its own reference: anything else means the gallery's index lost or mixed up faces.
    assert row["recall_at_1"] == 1.0 and row["recall_at_10"] == 1.0
    assert row["rank1_real"] == 1.0  # each real person's second photo finds their first among 2,000
    assert row["real_faces"] == data["real_people"] == 5
    for key in ("open_s", "enroll_api_s", "enroll_command_s", "remove_s", "disk_mb"):
        assert row[key] > 0, key
    assert row["query_one"]["p50_ms"] <= row["query_one"]["p95_ms"]


def test_a_reindexed_gallery_opens_from_its_files(tmp_path, analysis):
    """After `reindex`, a new process maps the files it wrote instead of building the index again."""
    from facesearch.gallery import Gallery
    from facesearch.search.faiss_index import GalleryIndex

    home = tmp_path / "g"
    _synthetic_gallery(home, analysis, 3_000)
    with Gallery(home, analysis=analysis) as g:
        g.reindex()
    with Gallery(home, analysis=analysis) as g:
        index = g._load_index()
        assert index.files_mapped and index.folder == g.index_dir  # read from the files, not rebuilt
        assert GalleryIndex.saved_generation(g.index_dir) == g.generation()


def test_processes_creating_one_new_gallery_at_once_all_succeed(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "import sys; from facesearch.gallery import Gallery; print(len(Gallery(sys.argv[1]).identities()))"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "new")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.strip() == "0"
