"""Recall@1 and latency of one HNSW index at several efSearch values (docs/benchmarks.md).

Same protocol as ``facesearch bench speed``'s search rows: 200 real FaceNet embeddings stored
at random positions among random unit vectors, 199 other real faces as queries, one at a
time, compared with exact search. The index is built once (the slow part) and searched at
every efSearch.

Usage: FACESEARCH_DATA=../shared/data python scripts/hnsw_ef_sweep.py 300000 [--ef 64,128,256,512,1024]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from facesearch.models.analysis import FaceAnalysis
from facesearch.bench import speed
from facesearch.bench.distractors import random_unit_vectors
from facesearch.bench.lfw import default_lfw
from facesearch.paths import data_dir
from facesearch.search.faiss_index import VectorIndex


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("size", type=int, help="stored vectors")
    ap.add_argument("--ef", default="64,128,256,512,1024", help="efSearch values, comma-separated")
    args = ap.parse_args()

    data, lfw = data_dir(), default_lfw()
    if data is None or lfw is None:
        raise SystemExit("set FACESEARCH_DATA to the folder holding lfw/, 5celeb/ and fixtures/")
    photos = [p for sub in ("5celeb", "fixtures") for p in speed.iter_image_files(data / sub)]
    photos = (photos + [p for p, _ in speed._lfw_photos(lfw, max(0, 400 - len(photos)))])[:400]
    real = speed.real_embeddings(photos, FaceAnalysis())
    stored, queries = real[0::2], real[1::2][:200]
    rng = np.random.default_rng(0)
    vectors = random_unit_vectors(args.size, real.shape[1], rng)
    vectors[rng.choice(args.size, len(stored), replace=False)] = stored
    ids = np.arange(args.size, dtype=np.int64)
    exact = VectorIndex.build(ids, vectors, kind="flat").search(queries, 1)[1][:, 0]

    started = time.perf_counter()
    index = VectorIndex.build(ids, vectors, kind="hnsw")
    print(f"{args.size} vectors: HNSW built in {time.perf_counter() - started:.0f} s")
    for ef in (int(v) for v in args.ef.split(",")):
        index.set_ef_search(ef)
        times, top1 = speed._one_by_one(index, queries)
        print(f"efSearch {ef:5d}  p50 {1e3 * np.median(times):7.3f} ms  recall@1 {np.mean(top1 == exact):.3f}")


if __name__ == "__main__":
    main()
