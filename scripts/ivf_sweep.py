"""Recall and latency of inverted-file indexes at several cell counts and probes (docs/benchmarks.md).

Same protocol as ``facesearch bench scale``: the first photo of each of ``--people`` LFW people
with two or more photos is stored among ``size`` synthetic distractors of one kind, their second
photos are the queries, searched one at a time on one thread and compared with exact search
over the same vectors. The distractors are streamed: one chunk in memory besides the index
(exact top-10 is kept per chunk as it goes), so a million faces need about 2.3 GB.

Usage: FACESEARCH_DATA=../shared/data python scripts/ivf_sweep.py 1000000 --kind faces \
           --cells 1024,4096 --nprobe 8,16,32,64 [--niter 10] [--train-per-cell 64]
"""
from __future__ import annotations

import argparse
import resource
import time

import faiss
import numpy as np

from facesearch.bench.distractors import stream_distractors
from facesearch.bench.lfw import default_lfw
from facesearch.bench.scale import real_faces
from facesearch.bench.speed import matmul_ceiling


def exact_top(queries: np.ndarray, chunks, k: int = 10) -> np.ndarray:
    """Ids of the exact top ``k`` inner products over ``(ids, vectors)`` chunks."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.full((len(queries), k), -1, np.int64)
    for ids, vectors in chunks:
        sims = queries @ vectors.T
        all_s = np.concatenate([best_s, sims], 1)
        all_i = np.concatenate([best_i, np.broadcast_to(ids, sims.shape)], 1)
        order = np.argsort(-all_s, 1)[:, :k]
        best_s, best_i = np.take_along_axis(all_s, order, 1), np.take_along_axis(all_i, order, 1)
    return best_i


def chunks_of(kind: str, size: int, enrolled: np.ndarray, seed: int = 0):
    """Real faces (ids 0..P-1) then ``size - P`` distractors (ids P..), as (ids, vectors) chunks."""
    yield np.arange(len(enrolled), dtype=np.int64), enrolled
    first = len(enrolled)
    for _, vectors in stream_distractors(kind, size - len(enrolled), seed):
        yield np.arange(first, first + len(vectors), dtype=np.int64), vectors
        first += len(vectors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("size", type=int)
    ap.add_argument("--kind", default="faces")
    ap.add_argument("--people", type=int, default=500)
    ap.add_argument("--cells", default="1024,4096")
    ap.add_argument("--nprobe", default="4,8,16,32,64,128")
    ap.add_argument("--niter", type=int, default=10)
    ap.add_argument("--train-per-cell", type=int, default=64)
    ap.add_argument("--codec", default="Flat", help="FAISS factory code of the vectors in the cells: Flat, SQ8, PQ64x4fs...")
    ap.add_argument("--rerank", default="0", help="candidates re-ranked exactly (0: none), comma-separated")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    reranks = [int(r) for r in args.rerank.split(",")]

    names, enrolled, probes, _ = real_faces(default_lfw(), args.people)
    print(f"{len(names)} real people; matmul ceiling {matmul_ceiling(1024, 3)['gflops']} GFLOP/s", flush=True)
    t = time.perf_counter()
    exact = exact_top(probes, chunks_of(args.kind, args.size, enrolled))
    print(f"exact top-10 in {time.perf_counter() - t:.0f} s", flush=True)
    for cells in (int(c) for c in args.cells.split(",")):
        sample_n = cells * args.train_per_cell
        sample, got = [], 0
        for _, vectors in chunks_of(args.kind, args.size, enrolled):
            sample.append(vectors[: sample_n - got])
            got += len(sample[-1])
            if got >= sample_n:
                break
        index = faiss.index_factory(512, f"IVF{cells},{args.codec}", faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = args.niter
        faiss.omp_set_num_threads(2)
        t = time.perf_counter()
        index.train(np.concatenate(sample))
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        stored = np.empty((args.size, 512), np.float32) if reranks != [0] else None
        for ids, vectors in chunks_of(args.kind, args.size, enrolled):
            index.add_with_ids(vectors, ids)
            if stored is not None:
                stored[ids] = vectors
        add_s = time.perf_counter() - t
        faiss.omp_set_num_threads(1)
        sizes = np.array([index.invlists.list_size(c) for c in range(cells)])
        print(f"cells {cells}: trained in {train_s:.0f} s on {sample_n}, added in {add_s:.0f} s; list sizes "
              f"mean {sizes.mean():.0f} max {sizes.max()}; peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB", flush=True)
        for nprobe, rerank in ((int(p), r) for p in args.nprobe.split(",") for r in reranks):
            if nprobe > cells:
                continue
            index.nprobe = nprobe
            index.search(probes[:1], 10)
            times, found = [], []
            for q in probes:
                t = time.perf_counter()
                if rerank:
                    _, cand = index.search(q[None], rerank)
                    cand = cand[0][cand[0] >= 0]
                    sims = stored[cand] @ q
                    ids = cand[np.argsort(-sims)[:10]][None]
                else:
                    _, ids = index.search(q[None], 10)
                times.append(time.perf_counter() - t)
                found.append(ids[0])
            found = np.array([np.pad(f, (0, 10 - len(f)), constant_values=-1) for f in found])
            at1 = np.mean(found[:, 0] == exact[:, 0])
            at10 = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
            ms = 1e3 * np.array(times)
            print(f"  cells {cells:5d} nprobe {nprobe:4d} rerank {rerank:4d}  p50 {np.median(ms):6.2f} ms  p95 "
                  f"{np.percentile(ms, 95):6.2f} ms  recall@1 {at1:.4f}  recall@10 {at10:.4f}", flush=True)
        del index


if __name__ == "__main__":
    main()
