"""pgvector's HNSW search on a gallery that scripts/pgvector_tuning.py filled (100,000 "faces" distractors, seed 0):
recall@1/@10 against exact search and latency per ef_search, for the index as the writes grew it and
after a build from scratch (timed), with table and index sizes (docs/benchmarks.md, "Storage backends").

Usage: python scripts/pgvector_search.py postgresql+psycopg://USER@/DB?host=SOCKET_DIR
"""
import json, sys, time, tempfile
import numpy as np
from sqlalchemy import text
from facesearch.bench.distractors import sample_distractors
from facesearch.bench.speed import matmul_ceiling
from facesearch.gallery import Gallery
from facesearch.models.analysis import FaceAnalysis
import facesearch.search.pgvector_index as pgi
url = sys.argv[1]; n = 100000
labels, vectors = sample_distractors("faces", n, 0)
rng = np.random.default_rng(1)
picked = vectors[rng.choice(n, 200, replace=False)]
noisy = picked + rng.standard_normal(picked.shape).astype(np.float32) * 0.045
queries = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
out = {"matmul": matmul_ceiling(1024, 3)}
with Gallery(tempfile.mkdtemp(), db_url=url, analysis=FaceAnalysis()) as g:
    with g.store.session() as s:
        ids = np.array(s.scalars(text("SELECT id FROM faces ORDER BY id")).all())
        assert len(ids) == n
        first, last = s.execute(text("SELECT min(enrolled_at), max(enrolled_at) FROM images")).one()
        out["insert_span_s"] = (last - first).total_seconds()
        out["table_mb"] = round(s.execute(text("SELECT pg_total_relation_size('face_vectors')")).scalar() / 2**20, 1)
        out["hnsw_mb"] = round(s.execute(text("SELECT pg_relation_size('face_vectors_hnsw')")).scalar() / 2**20, 1)
        out["faces_table_mb"] = round(s.execute(text("SELECT pg_total_relation_size('faces')")).scalar() / 2**20, 1)
        out["db_mb"] = round(s.execute(text("SELECT pg_database_size(current_database())")).scalar() / 2**20, 1)
    exact = ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :10]]
    def sweep(tag):
        rows = []
        for ef in (40, 100, 200, 400):
            pgi.HNSW_EF_SEARCH = ef
            g.search_faces(queries[:5], 10)
            lat, got = [], []
            for q in queries:
                t = time.perf_counter(); _, i = g.search_faces(q[None], 10); lat.append(time.perf_counter() - t); got.append(i[0])
            got = np.array(got)
            rows.append({"index": tag, "ef_search": ef, "recall1": float(np.mean(got[:, 0] == exact[:, 0])),
                         "recall10": float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)])),
                         "p50_ms": round(1000 * np.percentile(lat, 50), 2), "p95_ms": round(1000 * np.percentile(lat, 95), 2)})
            print(rows[-1], flush=True)
        return rows
    out["rows"] = sweep("grown")
    t = time.perf_counter()
    with g.store.session() as s:
        s.execute(text("DROP INDEX face_vectors_hnsw, identity_vectors_hnsw"))
        pgi.PgvectorStore._create_indexes(s)
    out["build_s"] = round(time.perf_counter() - t, 1)
    with g.store.session() as s:
        out["hnsw_built_mb"] = round(s.execute(text("SELECT pg_relation_size('face_vectors_hnsw')")).scalar() / 2**20, 1)
    out["rows"] += sweep("built")
print(json.dumps(out), flush=True)
