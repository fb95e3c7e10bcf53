"""Does the calibrated threshold keep its promise? Realised FPIR against the target on LFW.

Protocol (LFW's open-set split of :func:`facesearch.bench.identify.lfw_split`): a gallery of N of
the 1,680 people with 2+ photos, each enrolled with their first photo, is calibrated the way
``facesearch calibrate`` does it (:func:`facesearch.search.calibration.calibrate` on the
gallery's own non-mated maxima); the realised FPIR is the share of the 4,069 never-enrolled
people whose best similarity to the gallery reaches the threshold, which is when the kNN matcher
names them. Sizes under 1,680 are drawn at random, several times. With ``distractors``, that
many synthetic identities (:mod:`facesearch.bench.distractors`, LFW's photo counts) join all
1,680 real ones.

Also here: :func:`refit_lfw_moments`, which measures the numbers shipped for small galleries
(:data:`facesearch.search.calibration.LFW_PROBE_MOMENTS`) on the 1,680 enrolled people only, so
that the never-enrolled people the check uses stay out of them.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Sequence

import numpy as np

from facesearch.bench.distractors import lfw_statistics, refit_command, sample_identities
from facesearch.bench.embeddings import make_analysis
from facesearch.bench.identify import embed_split, lfw_split
from facesearch.models.face_cache import FaceCache
from facesearch.progress import ProgressFactory, no_progress
from facesearch.search.calibration import (DEFAULT_FPIR, LFW_PROBE_MOMENTS, MAX_PROBES, MAX_REFERENCE, calibrate,
                                           cohort_at, probe_moments)
from facesearch.search.normalisation import CENTRE_WEIGHT, COHORT_K

log = logging.getLogger(__name__)

#: Gallery sizes of the check (the issue's), and random draws per size under the full 1,680.
SIZES = (100, 500, 1680)
DRAWS = 5


def lfw_vectors(lfw: str | os.PathLike, *, use_cache: bool = True,
                progress: ProgressFactory = no_progress) -> dict[str, np.ndarray]:
    """Embeddings of LFW's open-set split: ``gallery`` (1,680 first photos, float32) with
    ``gallery_labels`` (int64), ``known`` probes with ``known_labels`` and ``unknown`` probes;
    photos without a face are dropped (one known probe at the default settings)."""
    split = lfw_split(lfw)
    analysis = make_analysis()
    cache = FaceCache.for_settings(analysis.settings) if use_cache else None
    with progress("embedding") as (on_total, update):
        emb = embed_split(split, analysis, cache, progress=update, on_total=on_total)
    of = emb.of()
    names = sorted({who for _, who in split.gallery})
    code = {n: i for i, n in enumerate(names)}

    def part(items):
        rows = np.array([of[p] for p in items], np.int64)
        keep = emb.ok[rows]
        return emb.vectors[rows[keep]], keep

    gx, gk = part([p for p, _ in split.gallery])
    kx, kk = part([p for p, _ in split.known])
    ux, _ = part(split.unknown)
    return {"gallery": gx, "gallery_labels": np.array([code[w] for _, w in split.gallery], np.int64)[gk],
            "known": kx, "known_labels": np.array([code[w] for _, w in split.known], np.int64)[kk],
            "unknown": ux}


def _sample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=min(n, limit), replace=False))


def probe_summary(probes: np.ndarray, gallery: np.ndarray, labels: np.ndarray, k: int = COHORT_K,
                  probe_labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each probe against the gallery's identities (best face each; its own, given
    ``probe_labels``, left out): its best score, that identity's label and its cohort mean
    (ranks 2..k+1): float64 (P,), int64 (P,), float64 (P,)."""
    order = np.argsort(labels, kind="stable")
    ids, starts = np.unique(labels[order], return_index=True)
    ref = gallery[order]
    best = np.full(len(probes), -np.inf)
    who = np.zeros(len(probes), np.int64)
    cohort = np.full(len(probes), np.nan)
    chunk = max(1, 2 ** 26 // max(len(gallery), 1))  # 256 MB of float32 similarities at a time
    for start in range(0, len(probes), chunk):
        per_id = np.maximum.reduceat(probes[start:start + chunk] @ ref.T, starts, axis=1)
        if probe_labels is not None:
            per_id[probe_labels[start:start + chunk, None] == ids[None, :]] = -np.inf
        top = min(k + 1, per_id.shape[1])
        part = -np.sort(-np.partition(per_id, per_id.shape[1] - top, axis=1)[:, -top:], axis=1)
        j = per_id.argmax(axis=1)
        rows = slice(start, start + len(per_id))
        best[rows], who[rows] = part[:, 0], ids[j]
        if top > 1:
            cohort[rows] = part[:, 1:].mean(axis=1)
    return best, who, cohort


def check_one(gallery: np.ndarray, labels: np.ndarray, unknown: np.ndarray, known: np.ndarray,
              known_labels: np.ndarray, fpir: float, rng: np.random.Generator,
              centres: Sequence[float] = (0.0, CENTRE_WEIGHT)) -> list[dict]:
    """Calibrate one gallery (float32 (G, D), labels int64 (G,)) as ``Gallery.calibrate`` does
    (a sample of probes against a sample of identities), once per centring weight in ``centres``,
    and measure each on the probes."""
    people = np.unique(labels)
    ref_people = people[_sample(len(people), MAX_REFERENCE, rng)]
    ref = np.isin(labels, ref_people)
    rows = _sample(len(gallery), MAX_PROBES, rng)
    mu, sd, cohort = probe_moments(gallery[rows], labels[rows], gallery[ref], labels[ref])
    cohort = cohort_at(cohort, sd, len(ref_people) - 1, len(people))
    l_best, _, l_cohort = probe_summary(gallery[rows], gallery, labels, probe_labels=labels[rows])
    u_best, _, u_cohort = probe_summary(unknown, gallery, labels)
    k_best, k_who, k_cohort = probe_summary(known, gallery, labels)
    out = []
    for centre in centres:
        cal = calibrate(mu, sd, identities=len(people), fpir=fpir, centre=centre, gallery_cohort=cohort,
                        gallery_maxima=l_best - centre * np.nan_to_num(l_cohort))
        u_score = u_best - centre * np.nan_to_num(u_cohort)
        k_score = k_best - centre * np.nan_to_num(k_cohort)
        realised = float(np.mean(u_score >= cal.threshold))
        # The threshold these unknown probes would need (what an oracle would pick).
        oracle = float(np.sort(u_score)[::-1][int(np.floor(fpir * len(u_score)))])
        out.append({"score": cal.score, "identities": len(people), "faces": len(gallery),
                    "threshold": round(cal.threshold, 4), "oracle_threshold": round(oracle, 4),
                    "method": cal.method, "samples": cal.samples, "realised_fpir": round(realised, 5),
                    "ratio": round(realised / fpir, 3),
                    "dir": round(float(np.mean((k_who == known_labels) & (k_score >= cal.threshold))), 5)
                    if len(known) else None})
    return out


def run(lfw: str | os.PathLike, *, sizes: Sequence[int] = SIZES, fpirs: Sequence[float] = (DEFAULT_FPIR,),
        draws: int = DRAWS, distractors: int = 0, distractor_faces: int | None = None, seed: int = 0,
        use_cache: bool = True, progress: ProgressFactory = no_progress) -> dict:
    """``facesearch bench calibration``: for each size and target, the realised FPIR of the
    calibrated threshold (mean and range over ``draws`` random galleries), and with
    ``distractors`` > 0 one more row: all 1,680 people plus that many synthetic identities, with
    ``distractor_faces`` faces each (``None``: drawn from LFW's photo counts)."""
    data = lfw_vectors(lfw, use_cache=use_cache, progress=progress)
    gx, gy, ux = data["gallery"], data["gallery_labels"], data["unknown"]
    kx, ky = data["known"], data["known_labels"]
    people = np.unique(gy)
    rng = np.random.default_rng(seed)
    rows = []
    for fpir in fpirs:
        for size in sizes:
            runs = []
            for _ in range(1 if size >= len(people) else draws):
                chosen = people if size >= len(people) else np.sort(rng.choice(people, size, replace=False))
                g = np.isin(gy, chosen)
                k = np.isin(ky, chosen)
                runs.append(check_one(gx[g], gy[g], ux, kx[k], ky[k], fpir, rng))
            rows += [_summary([r[i] for r in runs], fpir, size, 0) for i in range(len(runs[0]))]
        if distractors:
            labels, vectors = sample_identities(lfw_statistics(), distractors, distractor_faces, rng=seed)
            all_x = np.concatenate([gx, vectors.astype(np.float32)])
            all_y = np.concatenate([gy, labels.astype(np.int64) + int(gy.max()) + 1])
            del vectors
            rows += [_summary([r], fpir, len(people), distractors)
                     for r in check_one(all_x, all_y, ux, kx, ky, fpir, rng)]
    return {"benchmark": "calibration", "source": str(lfw), "unknown_probes": len(ux), "known_probes": len(kx),
            "draws": draws, "seed": seed, "rows": rows}


def _summary(runs: list[dict], fpir: float, size: int, distractors: int) -> dict:
    realised = [r["realised_fpir"] for r in runs]
    return {"fpir": fpir, "score": runs[0]["score"], "identities": size, "distractor_identities": distractors,
            "faces": runs[0]["faces"], "method": runs[0]["method"], "samples": runs[0]["samples"],
            "oracle_threshold_mean": round(float(np.mean([r["oracle_threshold"] for r in runs])), 4),
            "threshold_mean": round(float(np.mean([r["threshold"] for r in runs])), 4),
            "realised_fpir_mean": round(float(np.mean(realised)), 5),
            "realised_fpir_min": min(realised), "realised_fpir_max": max(realised),
            "ratio_mean": round(float(np.mean(realised)) / fpir, 3),
            "dir_mean": round(float(np.mean([r["dir"] for r in runs])), 5) if runs[0]["dir"] is not None else None,
            "runs": runs}


# --- the shipped LFW numbers -------------------------------------------------------------------


def fit_lfw_moments(gallery: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each face's mean and spread of scores against every other identity: float64 (G,) each.
    (Its cohort mean is not shipped: small galleries take the normal model's.)"""
    mu, sigma, _ = probe_moments(gallery, labels, gallery, labels)
    return mu, sigma


def refit_lfw_moments(lfw: str | os.PathLike, out: str | os.PathLike = LFW_PROBE_MOMENTS, *,
                      use_cache: bool = True, progress: ProgressFactory = no_progress) -> dict:
    """Measure the shipped LFW numbers on the 1,680 enrolled people's first photos (never the
    never-enrolled people the check probes with) and write them to ``out`` (.npz, float32
    ``mu`` and ``sigma``). Returns a summary."""
    data = lfw_vectors(lfw, use_cache=use_cache, progress=progress)
    mu, sigma = fit_lfw_moments(data["gallery"], data["gallery_labels"])
    np.savez_compressed(out, mu=mu.astype(np.float32), sigma=sigma.astype(np.float32))
    return {"file": str(out), "probes": len(mu), "mu_mean": round(float(mu.mean()), 4),
            "sigma_mean": round(float(sigma.mean()), 4)}


def _main(argv: Sequence[str] | None = None) -> int:
    return refit_command(argv, module="facesearch.bench.calibration_check",
                         description="Refit the LFW numbers shipped for calibrating small galleries.",
                         refit=refit_lfw_moments, out=LFW_PROBE_MOMENTS,
                         refit_help="embed LFW (cached), measure, write --out", out_help="where to write the numbers")

if __name__ == "__main__":
    sys.exit(_main())
