"""Probe count and re-ranked candidates of a built gallery's inverted file (docs/benchmarks.md).

Opens a gallery built by ``facesearch bench scale --work DIR --keep`` (its real probes are the
same LFW people), computes the exact top-10 of each probe once over every stored vector, then
for each ``nprobe`` x ``rerank`` pair times the kNN matcher one probe at a time (what
``bench scale`` reports as "query one") and measures recall@1 / @10 of the gallery's search
against exact search. Both settings apply at query time, so the index is built once.

Usage: FACESEARCH_DATA=../shared/data python scripts/scale_tune.py /tmp/scale-work/faces-1000000 \
           --nprobe 256,512,1024 --rerank 100,200,300
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from facesearch.bench.lfw import default_lfw
from facesearch.bench.scale import exact_top, real_faces
from facesearch.bench.speed import matmul_ceiling
from facesearch.gallery import Gallery
from facesearch.search import faiss_index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("home")
    ap.add_argument("--people", type=int, default=500)
    ap.add_argument("--nprobe", default="256,512,1024")
    ap.add_argument("--rerank", default="100,200,300")
    ap.add_argument("--queries", type=int, default=200, help="probes timed one at a time")
    args = ap.parse_args()

    _, _, probes, _ = real_faces(default_lfw(), args.people)
    cache = os.path.join(args.home, "exact-top10.npy")
    with Gallery(args.home) as g:
        if os.path.exists(cache):
            exact = np.load(cache)
        else:
            t = time.perf_counter()
            exact = exact_top(g, probes, 10)
            np.save(cache, exact)
            print(f"exact top-10 of {len(probes)} probes in {time.perf_counter() - t:.0f} s", flush=True)
        index = g._load_index()
        print(f"{len(index.faces)} faces, index {index.faces.base.kind}, cells {index.faces.base.cells}; "
              f"load average {os.getloadavg()}", flush=True)
        for nprobe in (int(v) for v in args.nprobe.split(",")):
            for rerank in (int(v) for v in args.rerank.split(",")):
                index.faces.base.nprobe = nprobe
                faiss_index.RERANK = rerank
                g._matchers.clear()
                matcher = g.matcher("knn")
                gflops = matmul_ceiling(1024, 3)["gflops"]
                matcher.identify(probes[:1])
                times, cpu = [], []
                for q in probes[:args.queries]:
                    t, c = time.perf_counter(), time.process_time()
                    matcher.identify(q[None])
                    times.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                _, found = g.search_faces(probes, 10)
                at1 = np.mean(found[:, 0] == exact[:, 0])
                at10 = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
                ms = 1e3 * np.array(times)
                print(f"nprobe {nprobe:5d} rerank {rerank:4d}  p50 {np.median(ms):6.2f} ms  p95 "
                      f"{np.percentile(ms, 95):6.2f} ms  cpu p50 {1e3 * np.median(cpu):6.2f} ms  ceiling {gflops:5.1f} GFLOP/s  recall@1 {at1:.4f}  "
                      f"recall@10 {at10:.4f}", flush=True)


if __name__ == "__main__":
    main()
