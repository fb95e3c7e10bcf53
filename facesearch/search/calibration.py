"""A threshold for "unknown" calibrated to one gallery.

A stranger is named as someone when their best similarity to an enrolled identity reaches the
threshold, so the false-positive identification rate (FPIR: strangers given a name) grows with
the number of enrolled identities N: a threshold that is safe for ten people names most
strangers among thousands. Calibration picks, for a target FPIR, the threshold t with
``P(a stranger's best similarity over the N identities >= t) = FPIR``.

The model: one probe face's similarities to the people of a population follow a normal law
with the probe's own mean and spread (``mu``, ``sigma``; some faces resemble everyone more than
others do), and a gallery of N identities is N draws from it. So

    FPIR(t) = mean over probes of 1 - Phi((t - mu) / sigma) ** N

and t solves FPIR(t) = target. A tail that small (about FPIR / N per identity) cannot be
counted in a gallery's own scores, but ``mu`` and ``sigma`` can be measured from them, per probe.
The probes ("strangers") are:

* the gallery's own faces (``"gallery"``): each sampled face against the *other* identities;
* photos of people known not to be enrolled (``"strangers"``), against the whole gallery;
* both pooled (``"gallery+strangers"``);
* for galleries too small to measure (fewer than :data:`MIN_IDENTITIES` identities or
  :data:`MIN_PROBES` probes): the means and spreads of 1,680 LFW faces against 1,679 other LFW
  people, shipped as numbers (:data:`LFW_PROBE_MOMENTS`, ``"lfw"``).

The model's normal tails are too heavy to extrapolate to tens of thousands of identities; a
gallery that large has enough of its own faces' best non-mated scores above the target
(:data:`MIN_EXCEEDANCES`), and their plain quantile is used instead (``"gallery-maxima"``).

docs/benchmarks.md ("Calibrated threshold") measures the realised FPIR against its target on
LFW and among synthetic distractors, and why this model and not the plain largest-score
quantile or a Gumbel fit at small N.

All similarities are cosines of L2-normalised embeddings, float in [-1, 1]; an identity's score
is its best face's.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from facesearch.search.normalisation import COHORT_K, cohort_stats, expected_cohort
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

log = logging.getLogger(__name__)

#: The FPIR ``facesearch calibrate`` aims at unless told otherwise: one stranger in a hundred named.
DEFAULT_FPIR = 0.01
#: Fewer enrolled identities, or fewer probes, than these: the gallery says too little about how
#: strangers score against it, and the LFW numbers are used instead.
MIN_IDENTITIES = 30
MIN_PROBES = 30
#: Enrolled faces played as strangers at most (a random sample).
MAX_PROBES = 2000
#: With this many of the gallery's own non-mated best scores above the threshold (samples x
#: FPIR), their plain quantile is used instead of the model: the model's normal tails are too
#: heavy to extrapolate to tens of thousands of identities (docs/benchmarks.md).
MIN_EXCEEDANCES = 20
#: Identities whose faces the probes are compared with at most (a random sample; each probe's
#: mean and spread need a few thousand scores, not a million).
MAX_REFERENCE = 5000
#: A stored calibration is redone by a write that changes the number of identities by this
#: fraction or more (the threshold moves roughly with log N).
RECALIBRATE_CHANGE = 0.2
#: Per-probe means and spreads measured on LFW (see :func:`lfw_moments`).
LFW_PROBE_MOMENTS = Path(__file__).parent / "data" / "lfw_probe_moments.npz"


@dataclass
class Calibration:
    """A calibrated threshold and how it was made.

    Attributes:
        threshold: cosine similarity at or above which a face is named.
        fpir: the target false-positive identification rate, a fraction in (0, 1).
        identities: the number of enrolled identities it was computed for.
        method: ``"gallery"``, ``"gallery-maxima"``, ``"strangers"``, ``"gallery+strangers"`` or ``"lfw"``.
        samples: probes it rests on (enrolled faces and strangers; 0 for ``"lfw"``).
        strangers: stranger photos used (0 without ``--strangers``).
        generation: the gallery's change counter when it was computed.
        note: one line on anything the user should know (e.g. why the LFW numbers were used).
        score: what the threshold applies to: ``"cosine"`` or ``"centred"`` (the cosine less
            half the mean of the probe's next 20 identities, :mod:`facesearch.search.normalisation`).
    """

    threshold: float
    fpir: float
    identities: int
    method: str
    samples: int = 0
    strangers: int = 0
    generation: int = 0
    note: str = ""
    score: str = "cosine"

    def as_dict(self) -> dict:
        return {"threshold": round(float(self.threshold), 4), "fpir": self.fpir, "identities": self.identities,
                "method": self.method, "samples": self.samples, "strangers": self.strangers,
                "generation": self.generation, "note": self.note, "score": self.score}

    def due(self, identities: int) -> bool:
        """Whether a gallery now holding ``identities`` identities should be calibrated again."""
        if identities == self.identities:
            return False
        return abs(identities - self.identities) / max(self.identities, 1) >= RECALIBRATE_CHANGE


# --- how probes score against identities ---------------------------------------------------------


def identity_scores(probes: np.ndarray, reference: np.ndarray, reference_labels: np.ndarray,
                    chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's score against each reference identity (its best face).

    Args:
        probes: float32 (P, D), L2-normalised.
        reference: float32 (R, D), L2-normalised.
        reference_labels: int (R,) identity of each reference face.
    Returns:
        ``(scores float32 (P, I), identities int64 (I,))``: I distinct labels, sorted.
    """
    labels = np.asarray(reference_labels, np.int64)
    order = np.argsort(labels, kind="stable")
    ids, starts = np.unique(labels[order], return_index=True)
    ref = np.asarray(reference, np.float32)[order]
    out = np.empty((len(probes), len(ids)), np.float32)
    for start in range(0, len(probes), chunk):
        sims = np.asarray(probes[start:start + chunk], np.float32) @ ref.T
        out[start:start + len(sims)] = np.maximum.reduceat(sims, starts, axis=1) if len(ids) else sims[:, :0]
    return out, ids


def probe_moments(probes: np.ndarray, probe_labels: Sequence[int] | np.ndarray | None, reference: np.ndarray,
                  reference_labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard deviation and cohort mean (:func:`facesearch.search.normalisation.cohort_stats`)
    of each probe's scores against the reference identities other than its own (``probe_labels``
    int (P,); ``None`` for strangers): float64 (P,) each, NaN for a probe with fewer than two
    other identities to score against."""
    scores, ids = identity_scores(probes, reference, np.asarray(reference_labels, np.int64))
    scores = scores.astype(np.float64)
    if probe_labels is not None:
        own = np.asarray(probe_labels, np.int64)[:, None] == ids[None, :]
        scores[own] = np.nan
    cohort, _ = cohort_stats(np.where(np.isnan(scores), -np.inf, scores), COHORT_K)
    count = np.sum(~np.isnan(scores), axis=1)
    mu = np.full(len(scores), np.nan)
    sd = np.full(len(scores), np.nan)
    ok = count >= 2
    if ok.any():
        mu[ok] = np.nanmean(scores[ok], axis=1)
        sd[ok] = np.nanstd(scores[ok], axis=1, ddof=1)
    return mu, sd, cohort[:, 0]


def cohort_at(cohort: np.ndarray, sigma: np.ndarray, measured_on: int, identities: int) -> np.ndarray:
    """Cohort means measured against ``measured_on`` identities, moved to a gallery of
    ``identities`` (the K best of more draws are higher: by sigma times the difference of the
    expected normal order statistics)."""
    if measured_on == identities:
        return cohort
    return cohort + sigma * (expected_cohort(identities) - expected_cohort(measured_on))


# --- thresholds ----------------------------------------------------------------------------------


def fpir_at(threshold: float | np.ndarray, mu: np.ndarray, sigma: np.ndarray, identities: int) -> np.ndarray:
    """The model's FPIR at ``threshold`` (scalar or float (T,)) for ``identities`` identities, from
    probes' score means and spreads (float (P,) each): float64 (T,)."""
    t = np.atleast_1d(np.asarray(threshold, np.float64))
    z = (t[:, None] - mu[None, :]) / np.maximum(sigma[None, :], 1e-6)
    # 1 - Phi(z)^N without losing the small tail: -expm1(N * log1p(-Q(z))), Q the upper tail
    # (math.erfc elementwise: scipy's takes a second to import, and this is enough here).
    upper = np.minimum(0.5 * np.frompyfunc(math.erfc, 1, 1)(z / math.sqrt(2)).astype(np.float64), 1 - 1e-16)
    named = -np.expm1(identities * np.log1p(-upper))
    return named.mean(axis=1)


def threshold_for(fpir: float, mu: np.ndarray, sigma: np.ndarray, identities: int) -> float:
    """The threshold whose model FPIR (:func:`fpir_at`) is ``fpir``, by bisection on [-1, 1]."""
    lo, hi = -1.0, 1.0
    if fpir_at(hi, mu, sigma, identities)[0] > fpir:
        return hi
    for _ in range(60):
        mid = (lo + hi) / 2
        if fpir_at(mid, mu, sigma, identities)[0] > fpir:
            lo = mid
        else:
            hi = mid
    return hi


def empirical_threshold(maxima: np.ndarray, fpir: float) -> float:
    """The lowest threshold at most ``fpir`` of ``maxima`` (float (S,)) reach."""
    s = np.sort(np.asarray(maxima, np.float64))[::-1]
    allowed = int(np.floor(fpir * len(s) + 1e-9))
    return float(np.nextafter(s[allowed], np.inf)) if allowed < len(s) else -1.0


@lru_cache(maxsize=1)
def lfw_moments() -> tuple[np.ndarray, np.ndarray]:
    """The shipped LFW probe means and spreads (float64 (P,) each)."""
    with np.load(LFW_PROBE_MOMENTS) as z:
        return z["mu"].astype(np.float64), z["sigma"].astype(np.float64)


def lfw_threshold(identities: int, fpir: float, centre: float = 0.0) -> float:
    """Threshold for ``fpir`` at ``identities`` identities from the shipped LFW numbers, for the
    cosine centred with weight ``centre`` (0: plain); the cohort means are the normal model's."""
    mu, sigma = lfw_moments()
    n = max(identities, 1)
    return threshold_for(fpir, mu - centre * (mu + sigma * expected_cohort(n)), sigma, n)


def calibrate(gallery_mu: np.ndarray, gallery_sigma: np.ndarray, *, identities: int,
              fpir: float = DEFAULT_FPIR, centre: float = 0.0, gallery_cohort: np.ndarray | None = None,
              stranger_mu: np.ndarray | None = None, stranger_sigma: np.ndarray | None = None,
              stranger_cohort: np.ndarray | None = None, gallery_maxima: np.ndarray | None = None,
              generation: int = 0) -> Calibration:
    """The threshold for ``fpir`` at ``identities`` enrolled identities.

    Args:
        gallery_mu, gallery_sigma, gallery_cohort: float (S,) of enrolled faces against the other
            identities (:func:`probe_moments`, the cohort moved to ``identities`` by
            :func:`cohort_at`); may be empty.
        identities: enrolled identities N.
        fpir: target, in (0, 1).
        centre: the weight of :func:`facesearch.search.normalisation.centre` in the score the
            threshold is for (0: the plain cosine). A probe named when ``best - centre * cohort >= t``
            is one whose best cosine reaches ``t + centre * cohort``.
        stranger_mu, stranger_sigma, stranger_cohort: float (T,) of strangers against the gallery,
            or ``None``.
        gallery_maxima: float (S,) the sampled enrolled faces' best score (of the same kind:
            centred with ``centre``) against every other identity of the whole gallery; when
            ``S * fpir >= MIN_EXCEEDANCES`` and no strangers are given, their quantile is the
            threshold (method ``"gallery-maxima"``).
    Raises:
        ValueError: ``fpir`` outside (0, 1).
    """
    if not 0 < fpir < 1:
        raise ValueError(f"fpir must be in (0, 1), got {fpir}")
    score = "centred" if centre else "cosine"

    def usable(mu, sd, cohort):
        mu = np.asarray(mu if mu is not None else [], np.float64)
        sd = np.asarray(sd if sd is not None else [], np.float64)
        cohort = np.asarray(cohort if cohort is not None else np.zeros(len(mu)), np.float64)
        ok = np.isfinite(mu) & np.isfinite(sd) & (sd > 0) & (np.isfinite(cohort) | (centre == 0))
        return mu[ok] - centre * np.nan_to_num(cohort[ok]), sd[ok]

    g_mu, g_sd = usable(gallery_mu, gallery_sigma, gallery_cohort)
    s_mu, s_sd = usable(stranger_mu, stranger_sigma, stranger_cohort)
    use_gallery = identities >= MIN_IDENTITIES and len(g_mu) >= MIN_PROBES
    use_strangers = len(s_mu) >= MIN_PROBES and identities >= 2
    if use_gallery and use_strangers:
        method, mu, sd = "gallery+strangers", np.concatenate([g_mu, s_mu]), np.concatenate([g_sd, s_sd])
    elif use_strangers:
        method, mu, sd = "strangers", s_mu, s_sd
    elif use_gallery:
        method, mu, sd = "gallery", g_mu, g_sd
        m = np.asarray(gallery_maxima if gallery_maxima is not None else [], np.float64)
        m = m[np.isfinite(m)]
        if len(m) * fpir >= MIN_EXCEEDANCES:
            return Calibration(empirical_threshold(m, fpir), fpir, identities, "gallery-maxima", len(m), 0,
                               generation, "", score)
    else:
        note = (f"{identities} identit{'y' if identities == 1 else 'ies'} and {len(g_mu) + len(s_mu)} probe(s) "
                f"are too few to estimate from (need {MIN_IDENTITIES} and {MIN_PROBES}); used strangers' "
                f"scores measured on LFW")
        return Calibration(lfw_threshold(identities, fpir, centre), fpir, identities, "lfw", 0, len(s_mu),
                           generation, note, score)
    return Calibration(threshold_for(fpir, mu, sd, identities), fpir, identities, method, len(mu), len(s_mu),
                       generation, "", score)
