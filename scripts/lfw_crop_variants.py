"""LFW View 2 accuracy of crop geometries and their combinations, on the same MTCNN detections.

Reproduces the "crop geometry" table of docs/benchmarks.md. Detections come from the face
cache (run ``facesearch bench lfw`` once first, or this script detects what is missing); each
variant re-crops and re-embeds every photo (about 5 minutes per variant on two cores), and
the embeddings are kept under ``--work`` so combinations cost nothing.

Variants:
  m32        MTCNN box + 32 px margin, 160x160 (the product's "box" crop)
  m32+flip   the same crop mirrored left-right
  train      FaceNet's training geometry: box + 44 px margin at 182x182, centre 160x160
  rel0.3     box + a margin of 0.3 x the box's longer side

Usage:
  FACESEARCH_DATA=../shared/data python scripts/lfw_crop_variants.py --work /tmp/lfw-crops m32 m32+flip train rel0.3 \\
      --score m32 m32,m32+flip train m32,train,m32+flip rel0.3
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from facesearch.models.align import crop_box
from facesearch.models.analysis import FaceAnalysis
from facesearch.bench.embeddings import DatasetEmbeddings, pick_face
from facesearch.bench.lfw import default_lfw, lfw_pairs
from facesearch.bench.verify import verify
from facesearch.models.face_cache import FaceCache
from facesearch.imaging.decode import load_image
from facesearch.models.photo_faces import analyse_photos, hash_photo


def crop(image: np.ndarray, box: np.ndarray, variant: str) -> np.ndarray:
    """The 160x160 uint8 crop of ``box`` under ``variant``."""
    name, flip = (variant[:-5], True) if variant.endswith("+flip") else (variant, False)
    if name == "train":
        out = crop_box(image, tuple(box), margin=44, size=182)[11:171, 11:171]
    elif name.startswith("rel"):
        out = crop_box(image, tuple(box), margin=int(round(float(name[3:]) * max(box[2], box[3]))))
    elif name.startswith("m"):
        out = crop_box(image, tuple(box), margin=int(name[1:]))
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    return np.ascontiguousarray(out[:, ::-1]) if flip else out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="*", help="variants to embed (kept under --work)")
    ap.add_argument("--score", nargs="*", default=[], help="variants or comma-joined combinations to score")
    ap.add_argument("--work", type=Path, required=True, help="folder for the embeddings of each variant")
    ap.add_argument("--lfw", type=Path, default=None, help="lfw-deepfunneled folder or .tgz")
    args = ap.parse_args()

    pairs = lfw_pairs(args.lfw or default_lfw())
    photos = list(dict.fromkeys(p for pair in pairs for p in (pair.a, pair.b)))
    analysis = FaceAnalysis()
    cache = FaceCache.for_settings(analysis.settings)
    args.work.mkdir(parents=True, exist_ok=True)
    boxes = np.full((len(photos), 4), np.nan, np.float32)
    for start in range(0, len(photos), 64):
        chunk = [(p, hash_photo(p)) for p in photos[start:start + 64]]
        for i, res in enumerate(analyse_photos(chunk, analysis, cache), start):
            face = pick_face(res.faces, res.width, res.height, "center")  # as bench lfw picks
            if face is not None:
                boxes[i] = face.box
    found = ~np.isnan(boxes[:, 0])
    print(f"{len(photos)} photos, {int((~found).sum())} without a face")

    for variant in args.variants:
        path = args.work / f"{variant}.npy"
        if path.exists():
            continue
        started = time.perf_counter()
        vectors = np.full((len(photos), 512), np.nan, np.float32)
        for start in range(0, len(photos), 64):
            rows = [i for i in range(start, min(start + 64, len(photos))) if found[i]]
            if rows:
                vectors[rows] = analysis.embedder.embed(
                    np.stack([crop(load_image(photos[i]), boxes[i], variant) for i in rows]))
        np.save(path, vectors)
        print(f"{variant}: embedded in {time.perf_counter() - started:.0f} s")

    for combo in args.score:
        v = sum(np.load(args.work / f"{name}.npy").astype(np.float64) for name in combo.split(","))
        v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        emb = DatasetEmbeddings(photos, v, found)
        plain, sub = verify(pairs, emb), verify(pairs, emb, subtract_mean=True)
        print(f"{combo:32s} {100 * plain.accuracy:6.2f}%  mean-subtracted {100 * sub.accuracy:6.2f}% "
              f"+- {100 * sub.accuracy_std:.2f}  TAR@FAR0.1% {100 * sub.tar_at_far['0.001']:.2f}%")


if __name__ == "__main__":
    main()
