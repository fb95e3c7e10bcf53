"""Milvus Lite beside SQLite (docs/benchmarks.md, "Storage backends"): insert rate, query latency and
recall against exact search on N synthetic faces of KIND.

Usage: python scripts/milvus_lite_cost.py N KIND   (KIND: faces or random)
"""
import json, sys, tempfile, time, subprocess
import numpy as np
from facesearch.bench.distractors import sample_distractors
from facesearch.bench.speed import matmul_ceiling
from facesearch.gallery import Gallery
from facesearch.models.analysis import FaceAnalysis

n = int(sys.argv[1]); kind = sys.argv[2]
home = tempfile.mkdtemp()
labels, vectors = sample_distractors(kind, n, 0)
rng = np.random.default_rng(1)
picked = vectors[rng.choice(n, 200, replace=False)]
noisy = picked + rng.standard_normal(picked.shape).astype(np.float32) * 0.045
queries = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10] + 1
out = {"n": n, "kind": kind, "matmul": matmul_ceiling(1024, 3)}
with Gallery(home, analysis=FaceAnalysis(), vectors=home + "/vectors.db") as g:
    t = time.perf_counter()
    for start in range(0, n, 20_000):
        g.add_embeddings([f"d{l}" for l in labels[start:start + 20_000]], vectors[start:start + 20_000])
    out["insert_s"] = round(time.perf_counter() - t, 1); out["insert_per_s"] = round(n / out["insert_s"])
    t = time.perf_counter(); g.reindex(); out["reindex_s"] = round(time.perf_counter() - t, 1)
    g.search_faces(queries[:5], 10)
    lat, ids = [], []
    for q in queries:
        t = time.perf_counter(); _, i = g.search_faces(q[None], 10); lat.append(time.perf_counter() - t); ids.append(i[0])
    ids = np.array(ids)
    out.update({"recall1": float(np.mean(ids[:, 0] == exact[:, 0])),
                "recall10": float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])),
                "p50_ms": round(1000 * np.percentile(lat, 50), 2), "p95_ms": round(1000 * np.percentile(lat, 95), 2)})
out["milvus_mb"] = int(subprocess.run(["du", "-sm", home + "/vectors.db"], capture_output=True, text=True).stdout.split()[0])
out["sqlite_mb"] = int(subprocess.run(["du", "-sm", home + "/db"], capture_output=True, text=True).stdout.split()[0])
print(json.dumps(out), flush=True)
