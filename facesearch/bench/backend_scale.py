"""``facesearch bench scale --backend embedded,postgres,milvus``: the storage backends side by side.

For each size, one gallery per backend holds the same synthetic faces (:mod:`facesearch.bench.distractors`)
and is measured the same way:

- bulk load: the faces stored in chunks (``Gallery.add_embeddings``) inside the vector store's
  ``bulk_load``, then the index built (``reindex``, or the end of the bulk load for pgvector):
  faces per second over both;
- live insert: ``live_faces`` (default :data:`LIVE_FACES`) more faces in small writes, each updating the index (what a growing
  gallery pays);
- one query: p50/p95 of ``Gallery.search_faces`` for one face, top 10; the probes are stored faces
  with noise added (cosine about 0.7 to the original, like another photo of the same person);
- recall@1 and recall@10 against exact search over every stored vector;
- size on disk: the gallery's folder, plus the PostgreSQL database (``pg_database_size``) or the
  Milvus Lite file;
- for PostgreSQL, also what an IVFFlat index over the same rows costs to build, beside the HNSW
  build the backend uses.

The engines start themselves as in the tests: PostgreSQL 16 + pgvector from the ``pgserver`` wheel
in a folder under the work folder, Milvus Lite in a file there. A backend whose queries are slow
(Milvus Lite: 0.2 s each at 100k, 1.4 s at 1M) is timed on fewer probes, so that one row's queries
take about ``query_budget_s``; the row records how many.

Nothing here prints; the CLI renders the rows.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from facesearch.bench.distractors import stream_distractors
from facesearch.bench.scale import exact_top
from facesearch.bench.speed import matmul_ceiling
from facesearch.gallery import Gallery
from facesearch.progress import ProgressFactory, no_progress

BACKENDS = ("embedded", "postgres", "milvus")
#: Probes timed one at a time (fewer for a slow backend, see ``query_budget_s``).
QUERIES = 200
#: Faces added after the bulk load, in writes of ``LIVE_BATCH``, each updating the index.
LIVE_FACES = 1_000
LIVE_BATCH = 100
#: Noise added to a stored face to make a probe: cosine about 0.7 to it.
PROBE_NOISE = 0.045


def _analysis():
    # Storing vectors and searching them loads no model: the analysis only names the embedder.
    from facesearch.models.analysis import FaceAnalysis

    return FaceAnalysis()


@contextlib.contextmanager
def engine(backend: str, folder: Path) -> Iterator[dict]:
    """The ``Gallery`` keyword arguments of a new, empty gallery on ``backend``, its engine started
    in ``folder`` and stopped afterwards."""
    if backend == "embedded":
        yield {}
    elif backend == "milvus":
        yield {"vectors": str(folder / "vectors.db")}
    elif backend == "postgres":
        import pgserver

        data = folder / "pg"
        server = pgserver.get_server(data, cleanup_mode="stop")
        server.psql("CREATE DATABASE bench;")
        try:
            yield {"db_url": f"postgresql+psycopg://postgres@/bench?host={data}"}
        finally:
            server.cleanup()
    else:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")


def _sql(url: str, statement: str):
    """One statement on the benchmark's own connection to the database it started."""
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    try:
        with eng.begin() as connection:
            connection.execute(text("SET maintenance_work_mem = '1GB'"))
            result = connection.execute(text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        eng.dispose()


def _ivfflat_build_s(url: str, faces: int) -> tuple[float, int]:
    """Seconds to build an IVFFlat index over the stored face vectors (then dropped), and its lists
    (pgvector's advice: rows / 1000 up to a million rows, sqrt(rows) beyond)."""
    lists = max(1, faces // 1000) if faces <= 1_000_000 else int(np.sqrt(faces))
    t = time.perf_counter()
    _sql(url, f"CREATE INDEX bench_ivfflat ON face_vectors USING ivfflat (embedding vector_ip_ops) "
              f"WITH (lists = {lists})")
    seconds = time.perf_counter() - t
    _sql(url, "DROP INDEX bench_ivfflat")
    return seconds, lists


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def probes(vectors: np.ndarray, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` stored faces (their row numbers, int64 (n,)) with noise added and re-normalised: float32 (n, D)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), min(n, len(vectors)), replace=False)
    noisy = vectors[rows] + rng.standard_normal((len(rows), vectors.shape[1])).astype(np.float32) * PROBE_NOISE
    return rows, (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def measure(backend: str, size: int, kind: str, folder: Path, *, queries: int = QUERIES,
            query_budget_s: float = 60.0, live_faces: int = LIVE_FACES, seed: int = 0,
            progress: ProgressFactory = no_progress) -> dict:
    """One row: a gallery of ``size`` faces of ``kind`` on ``backend``, built in ``folder`` (see the module)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    row: dict = {"backend": backend, "size": size, "kind": kind,
                 "load_average": [round(v, 2) for v in os.getloadavg()]}
    probe_source = None
    with engine(backend, folder) as kwargs, Gallery(folder / "home", analysis=_analysis(), cache=False,
                                                    **kwargs) as g:
        # -- bulk load
        started = time.perf_counter()
        bulk = g.vectors.bulk_load() if g.vectors is not None else contextlib.nullcontext()
        with progress(f"{backend}: storing {size} faces") as (on_total, update):
            on_total(size)
            with bulk:
                for labels, vectors in stream_distractors(kind, size, seed):
                    g.add_embeddings([f"d{int(i)}" for i in labels], vectors, update_index=False)
                    if probe_source is None:
                        probe_source = vectors  # the first chunk's faces become the probes
                    update(len(labels))
                row["store_s"] = round(time.perf_counter() - started, 2)
                index_started = time.perf_counter()
        if backend != "postgres":  # pgvector built its index as the bulk load ended
            g.reindex()
        row["index_s"] = round(time.perf_counter() - index_started, 2)
        row["bulk_faces_per_s"] = round(size / (time.perf_counter() - started), 1)
        row["index_kind"] = g.index_info()["kind"]
        if backend == "postgres":
            row["hnsw_build_s"] = row["index_s"]
            row["ivfflat_build_s"], row["ivfflat_lists"] = _ivfflat_build_s(kwargs["db_url"], size)
            row["ivfflat_build_s"] = round(row["ivfflat_build_s"], 2)

        # -- queries (before the live writes, so every probe's original is in the bulk-built index)
        _, asked = probes(probe_source, queries)
        g.search_faces(asked[:1], 10)  # the first query opens the index / connections
        first = [time.perf_counter()]
        g.search_faces(asked[1:2], 10)
        first.append(time.perf_counter())
        per_query = first[1] - first[0]
        n = int(min(len(asked), max(10, query_budget_s // max(per_query, 1e-6))))
        row["queries"] = n
        lat, found = [], []
        with progress(f"{backend}: {n} queries") as (on_total, update):
            on_total(n)
            for q in asked[:n]:
                t = time.perf_counter()
                _, ids = g.search_faces(q[None], 10)
                lat.append(time.perf_counter() - t)
                found.append(ids[0])
                update(1)
        ms = np.asarray(lat) * 1000
        row["query_p50_ms"] = round(float(np.percentile(ms, 50)), 2)
        row["query_p95_ms"] = round(float(np.percentile(ms, 95)), 2)
        exact = exact_top(g, asked[:n], 10)
        found = np.asarray(found)
        row["recall_at_1"] = round(float(np.mean(found[:, 0] == exact[:, 0])), 4)
        row["recall_at_10"] = round(float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])), 4)

        # -- live inserts
        t = time.perf_counter()
        for labels, vectors in stream_distractors(kind, live_faces, seed + 1, chunk=LIVE_BATCH):
            g.add_embeddings([f"live{int(i)}" for i in labels], vectors)
        row["live_faces_per_s"] = round(live_faces / (time.perf_counter() - t), 1)
        pg_bytes = int(_sql(kwargs["db_url"], "SELECT pg_database_size('bench')")) if backend == "postgres" else 0

    # -- size on disk (the engines stopped: their files are complete)
    home_bytes = _du(folder / "home")
    row["disk"] = {"home_mb": round(home_bytes / 2**20, 1)}
    if backend == "postgres":
        row["disk"]["postgres_mb"] = round(pg_bytes / 2**20, 1)  # pg_database_size: tables, indexes, TOAST
    if backend == "milvus":
        row["disk"]["milvus_mb"] = round(_du(folder / "vectors.db") / 2**20, 1)
    total = home_bytes + pg_bytes + _du(folder / "vectors.db")
    row["disk_mb"] = round(total / 2**20, 1)
    row["bytes_per_face"] = round(total / (size + live_faces))
    row["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return row


def run(sizes: Sequence[int], backends: Sequence[str] = BACKENDS, *, kinds: Sequence[str] = ("faces",),
        queries: int = QUERIES, query_budget_s: float = 60.0, live_faces: int = LIVE_FACES,
        work: str | os.PathLike | None = None,
        keep: bool = False, progress: ProgressFactory = no_progress) -> dict:
    """Every size x kind x backend row; galleries and engines live under ``work`` (a temporary
    folder by default) and are removed after each row unless ``keep``."""
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise ValueError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    work_dir = Path(work) if work else Path(tempfile.mkdtemp(prefix="facesearch-backends-"))
    rows = []
    try:
        for size in sizes:
            for kind in kinds:
                for backend in backends:
                    folder = work_dir / f"{backend}-{kind}-{size}"
                    rows.append(measure(backend, size, kind, folder, queries=queries, query_budget_s=query_budget_s,
                                        live_faces=live_faces, progress=progress))
                    if not keep:
                        shutil.rmtree(folder, ignore_errors=True)
    finally:
        if not keep and not work:
            shutil.rmtree(work_dir, ignore_errors=True)
    return {"benchmark": "scale-backends", "matmul": matmul_ceiling(1024, 3), "cpu_count": os.cpu_count(),
            "live_faces": live_faces, "live_batch": LIVE_BATCH, "rows": rows}
