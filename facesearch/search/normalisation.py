"""Score normalisation with the gallery as the cohort: how a probe scores against everyone else
tells how much its best score means.

Some faces (a frontal, evenly lit, smiling face of a common type) score high against many
people; a stranger's best score is then high without meaning a match. Every variant here takes
a probe's scores against the gallery's identities (best face each), ``scores`` float (P, N), and
returns the normalised scores, same shape; the *cohort* of a probe is its K best identities
after the first (ranks 2..K+1), so that the candidate being judged is never its own cohort.

* :func:`centre`: ``s - w * mean(cohort)``: the ranking of each probe's candidates is unchanged,
  so rank-1 is too; only whom the threshold lets through changes.
* :func:`t_norm`: ``(s - mean(cohort)) / std(cohort)`` (test normalisation, adaptive cohort).
* :func:`as_norm`: the mean of t-norm and the same on the identity's side (each enrolled
  identity against the other identities' K best), adaptive symmetric normalisation.

docs/benchmarks.md ("Normalised scores") measures each with ``bench identify --normalised``.
"""
from __future__ import annotations

import warnings
from statistics import NormalDist

from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

#: Cohort size and weight measured best on LFW's full protocol (docs/benchmarks.md).
COHORT_K = 20
CENTRE_WEIGHT = 0.5


def cohort_stats(scores: np.ndarray, k: int = COHORT_K) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each row's ranks 2..k+1: float64 (P, 1) each (NaN where a
    row has fewer than two identities; -inf entries, e.g. the probe's own identity, are skipped)."""
    s = -np.sort(-np.asarray(scores, np.float64), axis=1)[:, 1:k + 1]
    s = np.where(np.isfinite(s), s, np.nan)
    # A row without a cohort is expected (a gallery of one person): NaN, not a RuntimeWarning.
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(s, axis=1, keepdims=True) if s.shape[1] else np.full((len(s), 1), np.nan)
        std = np.nanstd(s, axis=1, keepdims=True) if s.shape[1] else np.full((len(s), 1), np.nan)
    return mean, std


def centre(scores: np.ndarray, k: int = COHORT_K, weight: float = CENTRE_WEIGHT) -> np.ndarray:
    """``scores - weight * cohort mean`` per row (rows without a cohort keep their scores)."""
    mean, _ = cohort_stats(scores, k)
    return np.asarray(scores, np.float64) - weight * np.nan_to_num(mean)


def t_norm(scores: np.ndarray, k: int = COHORT_K) -> np.ndarray:
    """``(scores - cohort mean) / cohort std`` per row."""
    mean, std = cohort_stats(scores, k)
    return (np.asarray(scores, np.float64) - mean) / np.maximum(std, 1e-6)


def as_norm(scores: np.ndarray, identity_scores: np.ndarray, k: int = COHORT_K) -> np.ndarray:
    """Adaptive symmetric normalisation.

    Args:
        scores: float (P, N) probes against identities.
        identity_scores: float (N, N) each identity against every identity (its own entry
            ``-inf``), the identity side's cohort.
    """
    p_mean, p_std = cohort_stats(scores, k)
    # The identity's own best other identity is its rank 1 here: start its cohort at rank 1.
    own = np.asarray(identity_scores, np.float64)
    padded = np.concatenate([np.full((len(own), 1), np.inf), own], axis=1)
    i_mean, i_std = cohort_stats(padded, k)
    s = np.asarray(scores, np.float64)
    return 0.5 * ((s - p_mean) / np.maximum(p_std, 1e-6) + (s - i_mean.T) / np.maximum(i_std.T, 1e-6))


def expected_cohort(identities: int, k: int = COHORT_K) -> float:
    """Expected mean of ranks 2..k+1 among ``identities`` standard normal draws (Blom's
    approximation of normal order statistics); 0 when there is no rank 2."""
    ranks = range(2, min(k + 1, identities) + 1)
    if not ranks:
        return 0.0
    normal = NormalDist()
    return float(np.mean([normal.inv_cdf((identities - i + 0.625) / (identities + 0.25)) for i in ranks]))
