"""``facesearch bench scale``: what a gallery costs as it grows to a million faces.

For each size, a gallery holds real faces (the first photo of each of ``people`` people with two
or more photos; their second photos are the probes) among synthetic distractors
(:mod:`facesearch.bench.distractors`: identities with real FaceNet statistics, or random unit
vectors). Measured per size and kind:

- building it (storing the vectors, then ``reindex``), unless ``reuse`` finds it built;
- opening it (a new process: open the gallery and map its index);
- query latency p50/p95 of one face and of a batch, through the gallery's kNN matcher;
- recall@1 and recall@10 of the gallery's index against exact search over every stored vector;
- enrolling one photo (a command, and through the API), removing one person;
- peak memory (RSS) of the command-line enrollment and of a query process, size on disk.

The machine may be shared: each row records the float32 matmul ceiling measured just before its
queries and the load average, and states each latency also as the work the ceiling does in
that time (``*_ceiling_gflop``: milliseconds x GFLOP/s / 1000, so a latency measured on a busy
machine compares with one measured on an idle one).

Nothing here prints; the CLI renders the rows.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from facesearch.bench.datasets import folder_dataset, lfw_root
from facesearch.bench.distractors import stream_distractors
from facesearch.bench.embeddings import embed_photos, make_analysis
from facesearch.bench.speed import matmul_ceiling
from facesearch.gallery import Gallery
from facesearch.models.face_cache import FaceCache
from facesearch.models.photo_faces import analyse_photos, hash_photo
from facesearch.progress import ProgressFactory, no_progress

#: Distractor kinds measured by default: identities with real statistics, and random vectors.
KINDS = ("faces", "random")
#: Queries timed one at a time, and the batch size timed.
QUERIES = 200
BATCH = 32


def real_faces(source: str | os.PathLike, people: int, progress: ProgressFactory = no_progress
               ) -> tuple[list[str], np.ndarray, np.ndarray, list[Path]]:
    """The first and second photo of the first ``people`` people with two or more photos in
    ``source`` (LFW's folder or .tgz, or any folder-per-identity tree), embedded (cached).

    Returns ``(names, enrolled float32 (P, D), probes float32 (P, D), enrolled photo paths)``;
    people whose photos show no face are left out.
    """
    source = Path(source)
    root = lfw_root(source) if source.suffix in (".tgz", ".gz") or (source / "lfw-deepfunneled").exists() else source
    by_person: dict[str, list[Path]] = {}
    for photo, who in folder_dataset(root):
        by_person.setdefault(who, []).append(photo)
    chosen = [(who, photos[:2]) for who, photos in sorted(by_person.items()) if len(photos) >= 2][:people]
    analysis = make_analysis()
    with progress("embedding real faces") as (on_total, update):
        emb = embed_photos([p for _, pair in chosen for p in pair], analysis,
                           FaceCache.for_settings(analysis.settings), pick="center", progress=update,
                           on_total=on_total)
    of = emb.of()
    keep = [(who, pair) for who, pair in chosen if emb.ok[of[pair[0]]] and emb.ok[of[pair[1]]]]
    names = [who for who, _ in keep]
    return (names, emb.vectors[[of[pair[0]] for _, pair in keep]], emb.vectors[[of[pair[1]] for _, pair in keep]],
            [pair[0] for _, pair in keep])


def _percentiles(seconds: Sequence[float], gflops: float, cpu_seconds: Sequence[float] = ()) -> dict:
    """p50 and p95 in ms, and each as GFLOP of matmul work at the ceiling ``gflops``; with
    ``cpu_seconds``, also the p50/p95 of the CPU time this process spent (on a machine whose
    cores other jobs share, wall time includes waiting for a core; CPU time does not)."""
    ms = np.asarray(seconds) * 1000
    p50, p95 = float(np.percentile(ms, 50)), float(np.percentile(ms, 95))
    out = {"p50_ms": round(p50, 3), "p95_ms": round(p95, 3),
           "p50_ceiling_gflop": round(p50 * gflops / 1000, 4), "p95_ceiling_gflop": round(p95 * gflops / 1000, 4)}
    if len(cpu_seconds):
        cpu = np.asarray(cpu_seconds) * 1000
        out.update(cpu_p50_ms=round(float(np.percentile(cpu, 50)), 3), cpu_p95_ms=round(float(np.percentile(cpu, 95)), 3))
    return out


def _timed(fn, *args) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn(*args)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def exact_top(gallery: Gallery, queries: np.ndarray, k: int) -> np.ndarray:
    """Face ids of the exact top ``k`` for each query, over every stored vector (streamed)."""
    best_sims = np.full((len(queries), k), -np.inf, np.float32)
    best_ids = np.full((len(queries), k), -1, np.int64)
    for ids, vectors in gallery.face_vectors(20_000):
        sims = queries @ vectors.T
        all_sims = np.concatenate([best_sims, sims], axis=1)
        all_ids = np.concatenate([best_ids, np.broadcast_to(ids, sims.shape)], axis=1)
        order = np.argsort(-all_sims, axis=1)[:, :k]
        best_sims, best_ids = np.take_along_axis(all_sims, order, 1), np.take_along_axis(all_ids, order, 1)
    return best_ids


def _recall(gallery: Gallery, queries: np.ndarray) -> dict:
    exact = exact_top(gallery, queries, 10)
    _, found = gallery.search_faces(queries, 10)
    at1 = float(np.mean(found[:, 0] == exact[:, 0]))
    at10 = float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)]))
    return {"recall_at_1": round(at1, 4), "recall_at_10": round(at10, 4)}


def _child_peak_kib(args: list[str], env: dict) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of a child process (each in a wrapper, so peaks do not mix)."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); r = subprocess.run(sys.argv[1:], "
            "stdout=subprocess.DEVNULL); print(time.perf_counter() - t, r.returncode, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    seconds, rc, peak = out.stdout.split()
    if rc != "0":
        raise RuntimeError(f"{' '.join(args)} exited {rc}")
    return float(seconds), int(peak)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


#: Each run removes one distractor identity stored in the index files (a few faces): a gallery
#: that many runs have left this far under its size is still reused.
REUSE_SLACK = 500


def _built(home: Path, size: int) -> bool:
    """Whether ``home`` holds a gallery of about ``size`` faces with saved index files (a reusable build)."""
    if not (home / "index" / "manifest.json").exists():
        return False
    with Gallery(home) as g:
        return size - REUSE_SLACK <= g.face_count() <= size


def build(home: Path, size: int, kind: str, names: list[str], enrolled: np.ndarray, *, seed: int = 0,
          progress: ProgressFactory = no_progress) -> dict:
    """Store the real faces and ``size - len(names)`` distractors of ``kind`` in a new gallery at
    ``home``, then ``reindex`` it: ``{"store_s", "reindex_s"}``."""
    shutil.rmtree(home, ignore_errors=True)
    row = {}
    started = time.perf_counter()
    with Gallery(home) as g:
        g.add_embeddings(names, enrolled, source="real")
        with progress(f"storing {size - len(names)} {kind} distractors") as (on_total, update):
            on_total(size - len(names))
            for labels, vectors in stream_distractors(kind, size - len(names), seed):
                g.add_embeddings([f"distractor{kind[0]}{int(i)}" for i in labels], vectors, update_index=False)
                update(len(labels))
        row["store_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        with progress("indexing") as (on_total, update):
            g.reindex(progress=update, on_total=on_total)
        row["reindex_s"] = round(time.perf_counter() - started, 2)
    return row


def measure(home: Path, size: int, kind: str, names: list[str], enrolled: np.ndarray, probes: np.ndarray,
            photos: Sequence[Path], *, seed: int = 0, reuse: bool = False,
            progress: ProgressFactory = no_progress) -> dict:
    """Build one gallery of ``size`` faces (the real ones plus ``kind`` distractors) in ``home``
    (or, with ``reuse``, use the one built there before) and measure it (see the module's docstring)."""
    row: dict = {"size": size, "kind": kind, "real_faces": len(names)}
    if reuse and _built(home, size):
        row["reused"] = True
    else:
        row.update(build(home, size, kind, names, enrolled, seed=seed, progress=progress))
    with Gallery(home) as g:
        info = g.index_info()
        row["index_kind"] = info["kind"]
        row["identities_index_kind"] = info["identities_kind"]
        row["cells"] = info["cells"]
        row["nprobe"] = info["nprobe"]
    env = {**os.environ}
    py = sys.executable
    open_code = ("import time, sys; t = time.perf_counter(); import numpy as np; "
                 "from facesearch.gallery import Gallery; "
                 "g = Gallery(sys.argv[1]); g.search_faces(np.zeros((1, g.dim), np.float32), 1); "
                 "print(time.perf_counter() - t)")
    opens = [float(subprocess.run([py, "-c", open_code, str(home)], env=env, capture_output=True, text=True,
                                  check=True).stdout) for _ in range(3)]
    row["open_s"] = round(float(np.median(opens)), 3)
    row["load_average"] = [round(v, 2) for v in os.getloadavg()]
    gflops = matmul_ceiling(1024, 3)["gflops"]
    row["matmul_gflops"] = gflops
    with Gallery(home) as g:
        matcher = g.matcher("knn")
        queries = probes[:QUERIES]
        matcher.identify(queries[:1])
        one = [_timed(matcher.identify, q[None]) for q in queries]
        row["query_one"] = _percentiles([w for w, _ in one], gflops, [c for _, c in one])
        batches = [_timed(matcher.identify, queries[start:start + BATCH])
                   for start in range(0, max(len(queries) - BATCH + 1, 1), BATCH)]
        row["query_batch"] = {"batch": BATCH, **_percentiles([w for w, _ in batches], gflops, [c for _, c in batches])}
        row.update(_recall(g, probes))
        # Rank-1: the best candidate, whatever the threshold (which now depends on the gallery's calibration).
        answers = [m.candidates[0].identity if m.candidates else None for m in matcher.identify(probes)]
        row["rank1_real"] = round(float(np.mean([a == n for a, n in zip(answers, names)])), 4)
        # One photo enrolled through the API: its detection is cached, so this is the write's own
        # cost (removing a person forgets their photos' cache entries: cache them again first).
        _cache_faces(g, photos[:2])
        t = time.perf_counter()
        g.enroll([photos[0]], name="new person")
        row["enroll_api_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        g.remove("new person")
        row["remove_s"] = round(time.perf_counter() - t, 3)
        # A person whose faces are in the index files: their removal rewrites them.
        stored = f"distractor{kind[0]}{g.generation() % 997}"
        if stored in set(g.names()):
            t = time.perf_counter()
            row["remove_stored_faces"] = g.remove(stored)
            row["remove_stored_s"] = round(time.perf_counter() - t, 3)
    seconds, peak = _child_peak_kib([py, "-m", "facesearch", "--home", str(home), "enroll", "-q", "--name",
                                     "another person", str(photos[1])], env)
    row["enroll_command_s"] = round(seconds, 3)
    row["enroll_command_peak_rss_mb"] = peak // 1024
    with tempfile.NamedTemporaryFile(suffix=".npy") as f:
        np.save(f.name, probes[:1])
        query_code = ("import sys, numpy as np; from facesearch.gallery import Gallery; g = Gallery(sys.argv[1]); "
                      "g.matcher('knn').identify(np.load(sys.argv[2]))")
        seconds, peak = _child_peak_kib([py, "-c", query_code, str(home), f.name], env)
    row["query_process_s"] = round(seconds, 3)
    row["query_process_peak_rss_mb"] = peak // 1024
    seconds, _ = _child_peak_kib([py, "-m", "facesearch", "--home", str(home), "remove", "another person"], env)
    row["remove_command_s"] = round(seconds, 3)
    row["disk_mb"] = round(_du(home) / 2**20, 1)
    row["disk"] = _disk_parts(home)
    row["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return row


def _cache_faces(gallery: Gallery, photos: Sequence[Path]) -> None:
    """Put the faces of ``photos`` into the face cache the gallery's enrollments read."""
    cache = FaceCache.for_settings(gallery.analysis.settings)
    for _ in analyse_photos([(p, hash_photo(p)) for p in photos], gallery.analysis, cache):
        pass


def _disk_parts(home: Path) -> dict:
    """Bytes of each file of the gallery, by name relative to ``home``."""
    return {str(p.relative_to(home)): p.stat().st_size for p in sorted(home.rglob("*")) if p.is_file()}


def run(source: str | os.PathLike, sizes: Sequence[int], *, kinds: Sequence[str] = KINDS, people: int = 500,
        work: str | os.PathLike | None = None, keep: bool = False, reuse: bool = False,
        progress: ProgressFactory = no_progress) -> dict:
    """Every size x kind row of ``facesearch bench scale``; galleries are built under ``work``
    (a temporary folder by default) and removed unless ``keep``; with ``reuse`` (and ``keep``),
    a gallery of the right size left in ``work`` by an earlier run is measured again as it is."""
    names, enrolled, probes, photos = real_faces(source, people, progress)
    if not names:
        raise ValueError(f"{source}: no person with two photos whose faces were found")
    rows = []
    work_dir = Path(work) if work else Path(tempfile.mkdtemp(prefix="facesearch-scale-"))
    try:
        for size in sizes:
            for kind in kinds:
                home = work_dir / f"{kind}-{size}"
                rows.append(measure(home, max(size, len(names)), kind, names, enrolled, probes, photos,
                                    reuse=reuse and keep, progress=progress))
                if not keep:
                    shutil.rmtree(home, ignore_errors=True)
    finally:
        if not keep and not work:
            shutil.rmtree(work_dir, ignore_errors=True)
    return {"benchmark": "scale", "source": str(source), "real_people": len(names),
            "matmul": matmul_ceiling(1024, 3), "cpu_count": os.cpu_count(),
            "peak_rss_mb_this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "rows": rows}
