"""Choose pgvector's HNSW ef_search (docs/benchmarks.md, "Storage backends"): recall@1/@10 against exact
search and query latency on N synthetic faces of KIND, in a PostgreSQL started from the pgserver wheel.

Usage: python scripts/pgvector_tuning.py N KIND   (KIND: faces or random)
"""
import json, os, sys, tempfile, time
import numpy as np, pgserver
from facesearch.bench.distractors import sample_distractors
from facesearch.bench.speed import matmul_ceiling
from facesearch.gallery import Gallery
from facesearch.models.analysis import FaceAnalysis
import facesearch.search.pgvector_index as pgi

n = int(sys.argv[1]); kind = sys.argv[2]
folder = tempfile.mkdtemp()
srv = pgserver.get_server(folder, cleanup_mode="delete")
srv.psql("CREATE DATABASE tune;")
url = f"postgresql+psycopg://postgres@/tune?host={folder}"
labels, vectors = sample_distractors(kind, n, 0)
rng = np.random.default_rng(1)
picked = vectors[rng.choice(n, 200, replace=False)]
noisy = picked + rng.standard_normal(picked.shape).astype(np.float32) * 0.045  # cos ~0.7 to the stored face
queries = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10] + 1  # face ids start at 1, in insertion order
out = {"n": n, "kind": kind, "matmul": matmul_ceiling(1024, 3)}
a = FaceAnalysis()
with Gallery(tempfile.mkdtemp(), db_url=url, analysis=a) as g:
    t = time.perf_counter()
    for start in range(0, n, 20_000):
        g.add_embeddings([f"d{l}" for l in labels[start:start + 20_000]], vectors[start:start + 20_000])
    out["insert_s"] = round(time.perf_counter() - t, 1)
    out["insert_per_s"] = round(n / out["insert_s"])
    t = time.perf_counter(); g.reindex(); out["reindex_s"] = round(time.perf_counter() - t, 1)
    with g.store.session() as s:
        out["table_mb"] = round(s.execute(pgi.text("SELECT pg_total_relation_size('face_vectors')")).scalar() / 2**20, 1)
        out["hnsw_mb"] = round(s.execute(pgi.text("SELECT pg_relation_size('face_vectors_hnsw')")).scalar() / 2**20, 1)
        out["faces_table_mb"] = round(s.execute(pgi.text("SELECT pg_total_relation_size('faces')")).scalar() / 2**20, 1)
    rows = []
    for ef in (40, 100, 200, 400):
        pgi.HNSW_EF_SEARCH = ef
        g.search_faces(queries[:5], 10)
        lat, ids = [], []
        for q in queries:
            t = time.perf_counter(); _, i = g.search_faces(q[None], 10); lat.append(time.perf_counter() - t); ids.append(i[0])
        ids = np.array(ids)
        rows.append({"ef_search": ef, "recall1": float(np.mean(ids[:, 0] == exact[:, 0])),
                     "recall10": float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])),
                     "p50_ms": round(1000 * np.percentile(lat, 50), 2), "p95_ms": round(1000 * np.percentile(lat, 95), 2)})
        print(rows[-1], flush=True)
    out["rows"] = rows
print(json.dumps(out), flush=True)
