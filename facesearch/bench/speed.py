"""``facesearch bench speed``: how fast each stage runs on this machine.

Measured in one run, so the figures share the same machine and load:

* the float32 matmul ceiling (numpy, GFLOP/s), to say how close FaceNet gets to the CPU;
* MTCNN detection, images/s, on LFW 250x250 photos and on a 1080p photo, and with
  ``reference`` the ONNX Runtime path and the TensorFlow path side by side in alternating
  rounds, each as a multiple of its arithmetic's time at the ceiling (:func:`detection_paths`);
* FaceNet embedding, faces/s, at batch 1 (a query) and batch 32 (enrollment), and as a
  fraction of the ceiling at :data:`GFLOP_PER_FACE` (measured in alternating rounds, see
  :func:`embedding_efficiency`), and with ``reference`` both runtimes side by side
  (:func:`embedding_paths`);
* start-up: wall time of ``facesearch --help`` and ``facesearch list`` processes and whether
  they imported TensorFlow;
* end-to-end enrollment, images/s (:meth:`Gallery.enroll` with the face cache disabled), and
  with ``compare`` the same enrollment through dlib's pipeline, alternating with ours;
* query latency through the Python API (warm) and of a ``facesearch query`` process (cold);
* FAISS search latency and recall@1 against exact search at several gallery sizes, for every
  index kind: real FaceNet embeddings (stored and queried) among random unit-vector distractors.

Everything is wall-clock time (``time.perf_counter``) on whatever else the machine runs; the
load average is reported next to the figures for that reason.
"""
from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import faiss
import numpy as np

from facesearch.bench.datasets import folder_dataset, lfw_root
from facesearch.bench.distractors import random_unit_vectors
from facesearch.bench.embeddings import embed_photos
from facesearch.errors import FaceSearchError
from facesearch.gallery import Gallery
from facesearch.imaging.decode import load_image
from facesearch.imaging.photo_files import iter_image_files
from facesearch.models.analysis import FaceAnalysis
from facesearch.models.detect import Detector
from facesearch.models.dlib_pipeline import DlibAnalysis
from facesearch.models.embed import Embedder
from facesearch.models.face_cache import FaceCache
from facesearch.models.openvino_model import matmul_seconds, openvino_version
from facesearch.search.faiss_index import VectorIndex

log = logging.getLogger(__name__)

#: Multiply-adds of one FaceNet (Inception-ResNet-v1) forward pass on a 160x160 crop, x2, in GFLOP.
GFLOP_PER_FACE = 2.84
#: The index kinds of facesearch.search.faiss_index compared by the search benchmark; "flat" is the exact reference.
INDEX_KINDS = ("flat", "hnsw")
#: The photo of the 1080p detection figure and the query latency figures, under the data folder.
PHOTO_1080P = Path("fixtures") / "queries" / "obama-1080p.jpg"
QUERY_PHOTO = Path("fixtures") / "queries" / "obama1.jpg"

#: The parts of a run, in the order they run (``run(only=...)`` picks some).
PARTS = ("detection", "embedding", "enrollment", "query", "startup", "search")

#: Repetitions per figure: (quick smoke run, normal run).
REPEATS = {
    "matmul_n": (2048, 2048), "matmul": (3, 5),
    "detect_lfw": (2, 8), "detect_1080p": (1, 3),
    "embed_1": (3, 20), "embed_32": (1, 4), "efficiency_rounds": (2, 7),
    "enroll": (4, 96), "enroll_rounds": (1, 2), "query_warm": (5, 30), "query_cold": (1, 3),
    "real_photos": (48, 400), "search_queries": (24, 200),
    "path_rounds": (2, 5), "startup": (1, 3),
}


def _n(name: str, quick: bool) -> int:
    return REPEATS[name][0 if quick else 1]


def machine() -> dict:
    """Cores, CPU model (from /proc/cpuinfo), load average and thread settings of this machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        faiss_threads = faiss.omp_get_max_threads()
    except Exception:  # noqa: BLE001 - a report detail, never a reason to fail
        faiss_threads = None
    return {"cpu": model, "cores": os.cpu_count(), "usable_cores": usable, "load_average": _load(),
            "python": platform.python_version(), "numpy": np.__version__, "faiss_threads": faiss_threads,
            "openvino": openvino_version()}


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _ms(seconds: Sequence[float]) -> dict:
    """p50 / p95 / min of durations in seconds, as milliseconds."""
    s = np.asarray(seconds, np.float64) * 1e3
    return {"p50_ms": round(float(np.percentile(s, 50)), 3), "p95_ms": round(float(np.percentile(s, 95)), 3),
            "min_ms": round(float(s.min()), 3), "repeats": len(s)}


def _durations(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall time of each of ``repeats`` calls of ``fn``, seconds."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


# --- compute -----------------------------------------------------------------------------------


def matmul_ceiling(n: int = 2048, repeats: int = 5) -> dict:
    """The float32 matrix-product ceiling: GFLOP/s of ``(n, n) @ (n, n)``, best of ``repeats``
    (2 n^3 flops per product), the faster of numpy's BLAS and OpenVINO's kernels.

    Both are measured because numpy's can fall short of the CPU: OpenBLAS picks its kernels by
    CPU model and can be told to use older ones (``OPENBLAS_CORETYPE=Haswell`` on a machine with
    AVX-512 halves its rate), and a ceiling below the CPU's makes every ratio to it flattering.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: BLAS thread start and page faults
    by = {"numpy": min(_durations(lambda: a @ b, repeats)), "openvino": matmul_seconds(a, b, repeats)}
    rates = {name: round(2 * n ** 3 / seconds / 1e9, 2) for name, seconds in by.items()}
    return {"n": n, "repeats": repeats, "gflops": max(rates.values()), "by": rates}


def detection_speed(analysis: FaceAnalysis, images: Sequence[np.ndarray], repeats: int) -> dict:
    """MTCNN images/s, one photo per call (the query path); ``images`` are (H, W, 3) uint8 RGB."""
    det = analysis.detector
    det.detect(images[0])  # warm-up: loads MTCNN
    times = _durations(lambda: [det.detect(im) for im in images], repeats)
    total = len(images) * repeats
    return {"images": total, "size": list(images[0].shape[1::-1]),
            "images_per_s": round(total / sum(times), 3), "ms_per_image": round(1e3 * sum(times) / total, 1)}


def embedding_speed(analysis: FaceAnalysis, batch: int, repeats: int, ceiling_gflops: float) -> dict:
    """FaceNet faces/s at ``batch`` crops per call, and that as a fraction of the matmul ceiling."""
    embedder = analysis.embedder
    # The network's cost does not depend on the pixels, so random crops measure the same work.
    crops = np.random.default_rng(0).integers(0, 256, (batch, 160, 160, 3), dtype=np.uint8)
    embedder.embed(crops)  # warm-up: traces the tf.function for this batch size
    times = _durations(lambda: embedder.embed(crops), repeats)
    faces_per_s = batch * repeats / sum(times)
    return {"batch": batch, "faces": batch * repeats, "faces_per_s": round(faces_per_s, 2),
            "ms_per_face": round(1e3 / faces_per_s, 1),
            "gflops": round(faces_per_s * GFLOP_PER_FACE, 2),
            "fraction_of_ceiling": round(faces_per_s * GFLOP_PER_FACE / ceiling_gflops, 4)}


def embedding_efficiency(analysis: FaceAnalysis, rounds: int, batch: int = 32, matmul_n: int = 2048) -> dict:
    """FaceNet's share of the matmul ceiling at ``batch``, measured in ``rounds`` alternating rounds.

    On a shared virtual machine both rates drift by tens of percent within a minute (this one
    shows up to a third of its time stolen by neighbours), so a ceiling taken once and an
    embedding rate taken later would compare two different machines. Each round measures the
    ceiling (best of 3 products) and then the embedding rate (best of 3 batches) back to back;
    the fraction reported is the median of the per-round ratios, the best round's beside it.
    """
    embedder = analysis.embedder
    crops = np.random.default_rng(0).integers(0, 256, (batch, 160, 160, 3), dtype=np.uint8)
    embedder.embed(crops)  # warm-up: traces the tf.function for this batch size
    ceilings, rates = [], []
    for _ in range(rounds):
        ceilings.append(matmul_ceiling(matmul_n, 3)["gflops"])
        rates.append(batch / min(_durations(lambda: embedder.embed(crops), 3)))
    ratios = [r * GFLOP_PER_FACE / c for r, c in zip(rates, ceilings)]
    return {"batch": batch, "rounds": rounds,
            "ceiling_gflops": [round(c, 1) for c in ceilings],
            "faces_per_s": [round(r, 2) for r in rates],
            "fraction_of_ceiling": [round(f, 4) for f in ratios],
            "median_fraction": round(float(np.median(ratios)), 4),
            "best_round_fraction": round(max(ratios), 4)}


def _alternate(fns: dict[str, Callable[[], object]], rounds: int, repeats: int,
               matmul_n: int) -> tuple[dict[str, list[float]], list[float]]:
    """Best-of-``repeats`` seconds of each of ``fns`` per round, and the ceiling measured at the
    start of each round, over ``rounds`` rounds that run every function in turn."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    ceilings = []
    for _ in range(rounds):
        ceilings.append(matmul_ceiling(matmul_n, 3)["gflops"])
        for name, fn in fns.items():
            times[name].append(min(_durations(fn, repeats)))
    return times, ceilings


def detection_paths(images: dict[str, np.ndarray], min_face_size: int, rounds: int, matmul_n: int,
                    reference: bool = True) -> dict:
    """MTCNN per photo through OpenVINO and ONNX Runtime (the same converted graphs) and, with
    ``reference``, through the ``mtcnn`` package (TensorFlow), alternating, with the arithmetic
    all do.

    ``images``: name -> (H, W, 3) uint8 photo. For each photo and path: the median over rounds
    of the best of 3 calls, in ms; ``gflop``: the networks' arithmetic for that photo (same
    pyramid, same candidate boxes for both paths); ``x_arithmetic``: the time over that
    arithmetic's time at the ceiling of the same round.
    """
    detectors = {"openvino": Detector(min_face_size=min_face_size, backend="openvino").load(),
                 "onnx": Detector(min_face_size=min_face_size, backend="onnx").load()}
    if reference:
        detectors["keras"] = Detector(min_face_size=min_face_size, backend="keras").load()
    rows = []
    for label, image in images.items():
        for det in detectors.values():
            det.warm_up(*image.shape[:2])  # kernels for this size
            det.detect(image)  # and for its candidates' batch sizes
        cascade = detectors["onnx"]._model()
        faces = detectors["onnx"].detect(image)
        gflop = cascade.last_flops / 1e9
        fns = {name: (lambda d=det: d.detect(image)) for name, det in detectors.items()}
        times, ceilings = _alternate(fns, rounds, 3, matmul_n)
        for name, ts in times.items():
            ratios = [t / (gflop / c) for t, c in zip(ts, ceilings)]
            rows.append({"photo": label, "size": list(image.shape[1::-1]), "path": name, "faces": len(faces),
                         "ms": round(1e3 * float(np.median(ts)), 2), "gflop": round(gflop, 4),
                         "arithmetic_ms": round(1e3 * gflop / float(np.median(ceilings)), 3),
                         "x_arithmetic": round(float(np.median(ratios)), 1)})
    base = {(r["photo"]): r["ms"] for r in rows if r["path"] == "onnx"}
    for r in rows:
        r["x_onnx"] = round(r["ms"] / base[r["photo"]], 2)
    return {"rounds": rounds, "rows": rows}


def embedding_paths(rounds: int, matmul_n: int, reference: bool = True) -> dict:
    """FaceNet ms per face at batch 1 and 32 on ONNX Runtime, on OpenVINO and, with
    ``reference``, on the Keras ``tf.function``, alternating; fractions of the ceiling of the same
    round (median)."""
    embedders = {"onnx": Embedder(runtime="onnx"), "openvino": Embedder(runtime="openvino")}
    if reference:
        embedders["keras"] = Embedder(runtime="keras")
    rng = np.random.default_rng(0)
    rows = []
    for batch in (1, 32):
        crops = rng.integers(0, 256, (batch, 160, 160, 3), dtype=np.uint8)
        for e in embedders.values():
            e.embed(crops)
        fns = {name: (lambda e=e: e.embed(crops)) for name, e in embedders.items()}
        times, ceilings = _alternate(fns, rounds, 3 if batch > 1 else 10, matmul_n)
        for name, ts in times.items():
            fractions = [batch * GFLOP_PER_FACE / t / c for t, c in zip(ts, ceilings)]
            rows.append({"batch": batch, "path": name, "ms_per_face": round(1e3 * float(np.median(ts)) / batch, 2),
                         "fraction_of_ceiling": round(float(np.median(fractions)), 4),
                         "best_round_fraction": round(max(fractions), 4),
                         "ceiling_gflops": round(float(np.median(ceilings)), 1)})
    return {"gflop_per_face": GFLOP_PER_FACE, "rounds": rounds, "rows": rows}


def _cli_process(args: Sequence[str], repeats: int) -> dict:
    """Wall time of a ``facesearch ARGS`` process (median of ``repeats``) and whether it imported
    TensorFlow (the interpreter is asked at exit, through ``-c``)."""
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: sys.stderr.write('\\nimported-tensorflow=%s\\n' % ('tensorflow' in sys.modules)))\n"
             "from facesearch.cli import main\n"
             "sys.exit(main())")
    times, imported = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(_facesearch_command() + list(args), capture_output=True, text=True)
        times.append(time.perf_counter() - start)
    proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if line.startswith("imported-tensorflow="):
            imported = line.split("=", 1)[1] == "True"
    return {"command": "facesearch " + " ".join(args), "median_s": round(float(np.median(times)), 3),
            "runs_s": [round(t, 3) for t in times], "imports_tensorflow": imported}


def startup_times(home: Path, repeats: int) -> dict:
    """Process start-up of commands that load no model: ``--help`` and ``list`` on ``home``."""
    return {"help": _cli_process(["--help"], repeats),
            "list": _cli_process(["--home", str(home), "list"], repeats)}


# --- the product's paths -----------------------------------------------------------------------


def _copy_people(photos: Sequence[tuple[Path, str]], folder: Path) -> None:
    """Copy ``(photo, identity)`` into ``folder/<identity>/`` (the layout enroll reads)."""
    for photo, who in photos:
        (folder / who).mkdir(parents=True, exist_ok=True)
        shutil.copy2(photo, folder / who / photo.name)


def enrollment_speed(analysis, photos: Sequence[tuple[Path, str]], home: Path) -> dict:
    """Images/s of :meth:`Gallery.enroll` of ``photos`` into a new gallery at ``home``, no face cache.

    ``analysis`` is a :class:`FaceAnalysis` or a :class:`~facesearch.models.dlib_pipeline.DlibAnalysis`.
    Its models are loaded on one photo first (their start-up is in the cold query figure).
    """
    source = home.parent / "enroll-photos"
    if not source.exists():
        _copy_people(photos, source)
    analysis.get(load_image(photos[0][0]))  # warm-up: loads the models
    with Gallery(home, analysis=analysis, cache=False) as g:
        start = time.perf_counter()
        report = g.enroll([source])
        seconds = time.perf_counter() - start
    return {"images": len(photos), "enrolled": len(report.enrolled), "seconds": round(seconds, 3),
            "images_per_s": round(len(photos) / seconds, 3)}


def enrollment_comparison(analysis: FaceAnalysis, photos: Sequence[tuple[Path, str]], tmp: Path,
                          rounds: int) -> dict:
    """Enrollment images/s of ours and of dlib's pipeline on the same ``photos``, in alternating rounds.

    Each round enrolls the photos into a new gallery with each pipeline, ours first; the rates
    are the median over rounds, and ``ratio`` is ours over dlib's. Needs the ``[dlib]`` extra.
    """
    dlib = DlibAnalysis()
    ours, theirs = [], []
    for r in range(rounds):
        ours.append(enrollment_speed(analysis, photos, tmp / f"facenet-{r}"))
        theirs.append(enrollment_speed(dlib, photos, tmp / f"dlib-{r}"))
    rate = lambda rows: float(np.median([row["images_per_s"] for row in rows]))  # noqa: E731
    return {"images": len(photos), "rounds": rounds,
            "facenet": {"images_per_s": round(rate(ours), 3), "enrolled": ours[-1]["enrolled"],
                        "runs": [row["images_per_s"] for row in ours]},
            "dlib": {"images_per_s": round(rate(theirs), 3), "enrolled": theirs[-1]["enrolled"],
                     "runs": [row["images_per_s"] for row in theirs]},
            "ratio": round(rate(ours) / rate(theirs), 3)}


def warm_query_latency(analysis: FaceAnalysis, home: Path, photo: Path, repeats: int) -> dict:
    """Latency of :meth:`Gallery.query` on ``photo``, after one warm-up query."""
    with Gallery(home, analysis=analysis) as g:
        g.query(photo)
        times = _durations(lambda: g.query(photo), repeats)
    return {"photo": str(photo), **_ms(times)}


def _facesearch_command() -> list[str]:
    """The installed ``facesearch`` script beside this interpreter, else the same entry point via ``-c``."""
    script = Path(sys.executable).parent / "facesearch"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from facesearch.cli import main; sys.exit(main())"]


def timed_processes(cmd: Sequence[str], repeats: int, what: str) -> tuple[list[float], list[str]]:
    """Run the process ``cmd`` ``repeats`` times: the wall time of each run in seconds, and each
    run's standard output.

    Raises:
        FaceSearchError: a run failed; the message names ``what`` and the last line it printed.
    """
    times, outputs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(list(cmd), capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise FaceSearchError(f"{what} failed (exit {proc.returncode}): {last}")
        outputs.append(proc.stdout)
    return times, outputs


def cold_query_time(home: Path, photo: Path, repeats: int) -> dict:
    """Wall time of a whole ``facesearch query`` process (interpreter, TensorFlow, models, query).

    Raises:
        FaceSearchError: the command failed.
    """
    cmd = _facesearch_command() + ["--home", str(home), "query", "--json", str(photo)]
    times, _ = timed_processes(cmd, repeats, "facesearch query")
    return {"photo": str(photo), "runs_s": [round(t, 3) for t in times],
            "median_s": round(float(np.median(times)), 3)}


# --- FAISS search ------------------------------------------------------------------------------


def real_embeddings(photos: Sequence[Path], analysis: FaceAnalysis) -> np.ndarray:
    """FaceNet embeddings of the largest face of each photo, through the face cache; float32 (R, 512)."""

    emb = embed_photos(photos, analysis, FaceCache.for_settings(analysis.settings))
    return emb.vectors[emb.ok]


def _one_by_one(index, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Search ``queries`` (float32 (Q, D)) one at a time: durations (s) and top-1 ids int64 (Q,)."""
    index.search(queries[:1], 1)  # warm-up
    top1 = np.empty(len(queries), np.int64)
    times = []
    for i, q in enumerate(queries):
        start = time.perf_counter()
        _, found = index.search(q[None], 1)
        times.append(time.perf_counter() - start)
        top1[i] = found[0, 0]
    return times, top1


def _single_thread_p50(index, queries: np.ndarray) -> float:
    """p50 ms of the same searches with FAISS limited to one OpenMP thread.

    On a busy machine a one-query search can wait for a second thread that has no free core
    (a scheduler time slice, milliseconds); this figure shows what that costs.
    """
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        times, _ = _one_by_one(index, queries)
    finally:
        faiss.omp_set_num_threads(threads)
    return _ms(times)["p50_ms"]


def search_speed(stored_real: np.ndarray, queries: np.ndarray, size: int, kinds: Sequence[str] = INDEX_KINDS,
                 seed: int = 0) -> list[dict]:
    """Per-query search latency and recall@1 of each index kind holding ``size`` vectors.

    The index holds ``stored_real`` (float32 (R, D), real faces) at random positions among
    ``size - R`` random unit vectors; ``queries`` (float32 (Q, D), other real faces) are
    searched one at a time for their nearest neighbour. Recall@1 is the fraction of queries
    whose top-1 id equals exact (flat) search's.
    """
    rng = np.random.default_rng(seed)
    real = stored_real[:size]
    vectors = random_unit_vectors(size, queries.shape[1], rng)
    vectors[rng.choice(size, len(real), replace=False)] = real
    ids = np.arange(size, dtype=np.int64)
    exact = None
    rows = []
    for kind in ["flat"] + [k for k in kinds if k != "flat"]:
        start = time.perf_counter()
        index = VectorIndex.build(ids, vectors, kind=kind)
        build_s = time.perf_counter() - start
        times, top1 = _one_by_one(index, queries)
        if exact is None:
            exact = top1
        if kind in kinds:
            rows.append({"size": size, "kind": kind, "build_s": round(build_s, 2), "queries": len(queries),
                         "real_stored": len(real), **_ms(times), "p50_ms_1_thread": _single_thread_p50(index, queries),
                         "recall_at_1": round(float(np.mean(top1 == exact)), 4), **index.graph_params()})
        del index  # at 1M vectors each index is ~2 GB: free it before building the next
    return rows


# --- the whole run ------------------------------------------------------------------------------


def _lfw_photos(lfw: str | os.PathLike, n: int) -> list[tuple[Path, str]]:
    """The first ``n`` LFW photos (alphabetical by person) with their identities."""
    return folder_dataset(lfw_root(lfw))[:n]


def run(data_dir: str | os.PathLike, lfw: str | os.PathLike, sizes: Sequence[int], *, quick: bool = False,
        analysis: FaceAnalysis | None = None, only: Sequence[str] = PARTS, compare: bool = False,
        reference: bool = True) -> dict:
    """The figures of the ``only`` parts (:data:`PARTS`); the dict ``facesearch bench speed --json``
    prints. ``compare`` adds dlib's enrollment rate, measured alternately with ours; ``reference``
    times the TensorFlow path (the mtcnn package, the Keras FaceNet) beside the default one."""
    unknown = sorted(set(only) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown parts {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    data_dir = Path(data_dir)
    analysis = analysis or FaceAnalysis()
    report: dict = {"benchmark": "speed", "quick": quick, "parts": [p for p in PARTS if p in only],
                    "settings": analysis.settings, "machine": machine()}
    log.info("matmul ceiling")
    report["matmul"] = matmul_ceiling(_n("matmul_n", quick), _n("matmul", quick))
    lfw_items = _lfw_photos(lfw, max(_n("detect_lfw", quick), _n("enroll", quick)))

    if "detection" in only:
        log.info("detection")
        lfw_images = [load_image(p) for p, _ in lfw_items[:_n("detect_lfw", quick)]]
        report["detection"] = {
            "lfw": detection_speed(analysis, lfw_images, 1 if quick else 2),
            "photo_1080p": {"photo": str(data_dir / PHOTO_1080P),
                            **detection_speed(analysis, [load_image(data_dir / PHOTO_1080P)],
                                              _n("detect_1080p", quick))},
        }
        report["detection"]["paths"] = detection_paths(
            {"lfw": lfw_images[0], "photo_1080p": load_image(data_dir / PHOTO_1080P)},
            analysis.detector.min_face_size, _n("path_rounds", quick), _n("matmul_n", quick), reference)

    if "embedding" in only:
        log.info("embedding")
        report["embedding"] = {
            "gflop_per_face": GFLOP_PER_FACE,
            "batch_1": embedding_speed(analysis, 1, _n("embed_1", quick), report["matmul"]["gflops"]),
            "batch_32": embedding_speed(analysis, 32, _n("embed_32", quick), report["matmul"]["gflops"]),
            "efficiency": embedding_efficiency(analysis, _n("efficiency_rounds", quick),
                                               matmul_n=_n("matmul_n", quick)),
            "paths": embedding_paths(_n("path_rounds", quick), _n("matmul_n", quick), reference),
        }

    with tempfile.TemporaryDirectory(prefix="facesearch-speed-") as tmp:
        home = Path(tmp) / "gallery"
        enroll_photos = lfw_items[:_n("enroll", quick)]
        if "enrollment" in only:
            log.info("enrollment")
            report["enrollment"] = enrollment_speed(analysis, enroll_photos, home)
            if compare:
                log.info("enrollment, ours and dlib's")
                report["enrollment_vs_dlib"] = enrollment_comparison(
                    analysis, enroll_photos, Path(tmp) / "compare", _n("enroll_rounds", quick))
        if "query" in only:
            log.info("queries")
            if not home.exists():  # the enrollment part did not run: a gallery to query all the same
                enrollment_speed(analysis, enroll_photos, home)
            photo = data_dir / QUERY_PHOTO
            report["query_warm"] = warm_query_latency(analysis, home, photo, _n("query_warm", quick))
            report["query_cold"] = cold_query_time(home, photo, _n("query_cold", quick))
            if reference:
                old = FaceAnalysis(Detector(min_face_size=analysis.detector.min_face_size, backend="keras"),
                                   Embedder(runtime="keras"))
                report["query_warm_reference"] = warm_query_latency(old, home, photo, _n("query_warm", quick))
        if "startup" in only:
            log.info("start-up")
            report["startup"] = startup_times(Path(tmp) / "empty-gallery", _n("startup", quick))

    if "search" in only:
        log.info("FAISS search")
        photos = [p for sub in ("5celeb", "fixtures") if (data_dir / sub).is_dir()
                  for p in iter_image_files(data_dir / sub)]
        n_real = _n("real_photos", quick)
        photos = (photos + [p for p, _ in _lfw_photos(lfw, max(0, n_real - len(photos)))])[:n_real]
        real = real_embeddings(photos, analysis)
        # Alternate photos: stored ones are the gallery, the others are the queries.
        stored, queries = real[0::2], real[1::2][:_n("search_queries", quick)]
        report["search"] = [row for size in sizes for row in search_speed(stored, queries, size)]
    report["machine"]["load_average_end"] = _load()
    return report
