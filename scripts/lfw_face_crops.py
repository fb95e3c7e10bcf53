"""Face crops as input: rank-1 of LFW probes given as crops instead of full photos.

Exploratory measurement for docs/benchmarks.md ("Face crops as input"): the gallery is the
first photo of each of the 1,680 LFW people with 2+ photos (full photos, default settings);
``--probes`` random known probes are identified from the full photo and from crops the script
makes of it with the product's own detection (the face nearest the centre):

  box224          box + 0.4 x its longer side, 224x224 (what ``facesearch crop`` writes)
  tight160        the detector's box, no margin, 160x160
  tight160+pad    the same with a black border of half its side on every edge
  aligned112      5-point similarity warp onto the ArcFace template, 112x112 (face datasets)
  aligned112+pad  the same with a black border of half its side

Each crop goes through detection again, as a user's crop would. Embeddings of the photos come
from the face cache (``facesearch bench identify`` fills it); the crops are embedded afresh.

Usage:
  FACESEARCH_DATA=../shared/data python scripts/lfw_face_crops.py --probes 250
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from facesearch.bench.calibration_check import lfw_vectors
from facesearch.bench.embeddings import pick_face
from facesearch.bench.identify import lfw_split
from facesearch.bench.lfw import default_lfw
from facesearch.imaging.decode import load_image
from facesearch.models.align import align_5point, crop_box
from facesearch.models.analysis import FaceAnalysis

VARIANTS = ("full", "box224", "tight160", "tight160+pad", "aligned112", "aligned112+pad")


def _pad(crop: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    p = int(crop.shape[0] * fraction)
    return cv2.copyMakeBorder(crop, p, p, p, p, cv2.BORDER_CONSTANT, value=0)


def _crops(image: np.ndarray, face) -> dict[str, np.ndarray]:
    side = max(face.box[2], face.box[3])
    tight = crop_box(image, face.box, margin=0, size=160)
    aligned = align_5point(image, face.landmarks, size=112, zoom=1.0)
    return {"box224": crop_box(image, face.box, margin=int(0.4 * side), size=224), "tight160": tight,
            "tight160+pad": _pad(tight), "aligned112": aligned, "aligned112+pad": _pad(aligned)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=250, help="random known probes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lfw = default_lfw()
    data = lfw_vectors(lfw)
    gallery, labels = data["gallery"], data["gallery_labels"]
    split = lfw_split(lfw)
    names = sorted({who for _, who in split.gallery})
    code = {n: i for i, n in enumerate(names)}
    rows = np.random.default_rng(args.seed).choice(len(split.known), args.probes, replace=False)
    analysis = FaceAnalysis()
    hits = {k: 0 for k in VARIANTS}
    start = time.perf_counter()
    for row in rows:
        path, who = split.known[row]
        image = load_image(path)
        face = pick_face(analysis.get(image), image.shape[1], image.shape[0], "center")
        if face is None:
            continue
        embeddings = {"full": face.embedding}
        for name, crop in _crops(image, face).items():
            found = analysis.get(np.ascontiguousarray(crop))
            embeddings[name] = max(found, key=lambda f: f.area).embedding if found else None
        for name, e in embeddings.items():
            if e is not None and labels[int(np.argmax(gallery @ e))] == code[who]:
                hits[name] += 1
    print(f"{args.probes} known probes, {time.perf_counter() - start:.0f} s")
    for name in VARIANTS:
        print(f"{name:16s} rank-1 {100 * hits[name] / args.probes:.1f}%")


if __name__ == "__main__":
    main()
