"""A generative model of face embeddings: identity centres, and faces scattered around them.

Fitted on real embeddings of people with several photos (:meth:`FaceStatistics.fit`), it draws
new identities that a matcher sees much as it sees real strangers (bench.distractors uses it
to grow benchmark galleries). The model, per synthetic face of synthetic identity ``c``::

    c    = mean + one of K Gaussian components (in the top MIXTURE_DIMS directions of the
           between-identity covariance) + a Gaussian in the remaining directions
    face = c + s * N(0, within_scale * within),   s^2 log-normal with mean 1 and log-sd
           within_spread (one s per face)

and the face is L2-normalised by the caller, like a real embedding.

Why not one Gaussian for each part: on LFW (FaceNet), one Gaussian of centres matches the mean
and spread of different-identity similarities but has 5x too few pairs above 0.45: real
identities crowd into groups (same sex, age, ethnicity) that a mixture of a few components,
chosen by held-out likelihood (:func:`select_components`), partly follows. And one within
covariance shared by every face gives same-identity similarities half as spread as real ones,
where some photos are near-duplicates and others far off (profile, age, a wrong face): a
log-normal scale per face, fitted to the real spread (bench.distractors.fit_within_spread),
adds that without changing the within covariance (E[s^2] = 1). docs/benchmarks.md has the
numbers.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.cluster import KMeans

from facesearch.errors import DataError

log = logging.getLogger(__name__)

#: Directions of the between-identity covariance the centre mixture lives in (97% of its
#: variance on LFW, whose FaceNet embeddings hold 99.99% of their variance in ~100 directions).
MIXTURE_DIMS = 64
#: Sampling keeps the leading directions of each covariance holding this fraction of its trace
#: (the rest, a floor of tiny eigenvalues, would only cost time).
KEEP_TRACE = 0.9999
#: EM stops when the mean log-likelihood gains less than this, or after EM_ITERATIONS.
EM_TOLERANCE = 1e-6
EM_ITERATIONS = 300


# --- linear algebra ----------------------------------------------------------------------------


def _psd_part(cov: np.ndarray) -> tuple[np.ndarray, float]:
    """The nearest positive semi-definite matrix to symmetric ``cov`` (negative eigenvalues set
    to 0), and the trace removed as a fraction of the positive trace."""
    cov = (cov + cov.T) / 2
    w, v = np.linalg.eigh(cov)
    removed = float(-w[w < 0].sum() / max(w[w > 0].sum(), 1e-30))
    return (v * np.clip(w, 0, None)) @ v.T, removed


def psd_factor(cov: np.ndarray, keep: float = KEEP_TRACE) -> np.ndarray:
    """``F`` float32 (D, r) with ``F @ F.T`` ~ ``cov`` (symmetric PSD, D x D): the fewest leading
    eigen-directions holding ``keep`` of the trace, each scaled by the square root of its variance."""
    w, v = np.linalg.eigh(np.asarray(cov, np.float64))
    w, v = np.clip(w[::-1], 0, None), v[:, ::-1]
    if w.sum() <= 0:
        return np.zeros((len(w), 0), np.float32)
    rank = int(np.searchsorted(np.cumsum(w) / w.sum(), keep) + 1)
    rank = min(rank, int((w > 0).sum()))
    return (v[:, :rank] * np.sqrt(w[:rank])).astype(np.float32)


def group_rows(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, starts, counts)``: ``order`` sorts rows by label (stable); identity ``j`` owns
    ``order[starts[j]:starts[j] + counts[j]]``."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(inverse.ravel(), kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return order, starts, counts


# --- a Gaussian mixture with shrunken covariances -----------------------------------------------


def _log_joint(z: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """log(weight_k * N(z_i | mean_k, cov_k)), float64 (n, K)."""
    out = np.empty((len(z), len(weights)))
    for k, (w, m, c) in enumerate(zip(weights, means, covs)):
        chol = np.linalg.cholesky(c)
        r = np.linalg.solve(chol, (z - m).T)
        out[:, k] = (np.log(w) - 0.5 * (r ** 2).sum(0) - np.log(np.diag(chol)).sum()
                     - 0.5 * z.shape[1] * np.log(2 * np.pi))
    return out


def _log_likelihood(z: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """log p(z_i) under the mixture, float64 (n,)."""
    lj = _log_joint(z, weights, means, covs)
    top = lj.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.exp(lj - top).sum(axis=1))


def fit_mixture(z: np.ndarray, components: int, shrink: float, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EM for a Gaussian mixture of ``z`` (float64 (n, d)) whose covariances are shrunk towards
    their pooled covariance: cov_k = (1 - shrink) S_k + shrink * sum_j w_j S_j.

    The shrinkage keeps a component of a few dozen points in 64 dimensions from collapsing
    (shrink=1 is one shared covariance, 0 a free one each), and keeps the mixture's total
    covariance the sample covariance. Starts from k-means. Returns ``(weights (K,), means
    (K, d), covs (K, d, d), responsibilities (n, K))``.
    """
    n, d = z.shape
    labels = (KMeans(components, n_init=4, random_state=seed).fit_predict(z) if components > 1
              else np.zeros(n, np.int64))
    resp = np.eye(components)[labels]
    ridge = 1e-6 * np.trace(np.cov(z.T)) / d * np.eye(d)
    previous = -np.inf
    for _ in range(EM_ITERATIONS):
        mass = resp.sum(axis=0) + 1e-12
        weights = mass / n
        means = resp.T @ z / mass[:, None]
        own = np.stack([((z - m).T * r) @ (z - m) / s for m, r, s in zip(means, resp.T, mass)])
        pooled = np.tensordot(weights, own, axes=1)
        covs = (1 - shrink) * own + shrink * pooled + ridge
        lj = _log_joint(z, weights, means, covs)
        top = lj.max(axis=1, keepdims=True)
        resp = np.exp(lj - top)
        total = resp.sum(axis=1, keepdims=True)
        resp /= total
        current = float((top[:, 0] + np.log(total[:, 0])).mean())
        if current - previous < EM_TOLERANCE:
            break
        previous = current
    return weights, means, covs, resp


def select_components(z: np.ndarray, grid: Sequence[tuple[int, float]], folds: int = 5, seed: int = 0
                      ) -> tuple[tuple[int, float], list[dict]]:
    """The ``(components, shrink)`` of ``grid`` whose mixture gives the held-out rows of ``z``
    (float64 (n, d)) the highest mean log-likelihood, over ``folds`` folds; and every row's
    score (``{"components", "shrink", "heldout_log_likelihood"}``)."""
    parts = np.array_split(np.random.default_rng(seed).permutation(len(z)), folds)
    table = []
    for components, shrink in grid:
        scores = []
        for part in parts:
            train = np.setdiff1d(np.arange(len(z)), part)
            weights, means, covs, _ = fit_mixture(z[train], components, shrink, seed)
            scores.append(float(_log_likelihood(z[part], weights, means, covs).mean()))
        table.append({"components": components, "shrink": shrink,
                      "heldout_log_likelihood": round(float(np.mean(scores)), 3)})
        log.info("mixture %d components, shrink %.2f: held-out log-likelihood %.3f", components, shrink,
                 table[-1]["heldout_log_likelihood"])
    best = max(table, key=lambda row: row["heldout_log_likelihood"])
    return (best["components"], best["shrink"]), table


# --- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FaceStatistics:
    """Between- and within-identity statistics of real face embeddings, and how to draw new ones.

    Attributes:
        mean: float32 (D,), the average identity centre (each identity counts once).
        between: float32 (D, D), covariance of identity centres around ``mean``.
        within: float32 (D, D), covariance of a face around its identity's centre.
        counts: int64 (I,), faces per identity in the fitted data (a realistic distribution to
            draw faces per identity from).
        basis: float32 (D, d), orthonormal: the top directions of ``between``, where the centre
            mixture lives.
        weights: float64 (K,), the mixture's component weights (sum 1).
        component_means: float32 (K, d), component centres relative to ``mean``, in ``basis``
            coordinates.
        component_covs: float32 (K, d, d), component covariances of true centres (the scatter
            of a mean of few photos removed), in ``basis`` coordinates.
        model: the embedding model the statistics were fitted for (``facenet-20180402-114759``).
        source: where the embeddings came from, for the record.
        within_scale: factor on ``within`` when drawing faces (1 = as fitted).
        within_spread: standard deviation of log s^2, the per-face scale of the within-identity
            offset (0 = every face the same spread).
    """

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray
    counts: np.ndarray
    basis: np.ndarray
    weights: np.ndarray
    component_means: np.ndarray
    component_covs: np.ndarray
    model: str = ""
    source: str = ""
    within_scale: float = 1.0
    within_spread: float = 0.0

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def components(self) -> int:
        return int(len(self.weights))

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: Sequence, *, components: int = 1, shrink: float = 0.1,
            model: str = "", source: str = "", seed: int = 0) -> "FaceStatistics":
        """Fit on real embeddings: float (N, D) unit rows, one label per row (any hashable values).

        Only identities with 2+ faces count (one face says nothing about the spread within an
        identity), and each identity weighs the same, however many photos it has:

        * within = mean over identities of the unbiased covariance of its faces (divisor n_i - 1);
        * mean = mean of identity means;
        * between = covariance of identity means (divisor I - 1) minus within x mean(1 / n_i):
          a mean of n_i photos scatters around the true centre by within / n_i, and without
          this LFW's identities (most have 2-4 photos) would come out too spread out;
        * centres: a mixture of ``components`` Gaussians (:func:`fit_mixture`, ``shrink``) of
          the identity means in the top :data:`MIXTURE_DIMS` directions of between, each
          component's covariance corrected like between.

        Negative eigenvalues left by the corrections are set to 0. Sampling starts with one face
        spread (``within_scale`` 1, ``within_spread`` 0); see bench.distractors.fit_within_spread.

        Raises:
            DataError: fewer than two identities have 2+ faces, more components than identities,
                or the shapes do not match.
        """
        x = np.asarray(vectors, np.float64)
        y = np.asarray(labels)
        if x.ndim != 2 or len(x) != len(y):
            raise DataError(f"statistics: expected vectors (N, D) and N labels, got {x.shape} and {len(y)}")
        order, starts, counts = group_rows(y)
        several = counts >= 2
        if several.sum() < 2:
            raise DataError(f"statistics: need 2+ identities with 2+ faces, got {int(several.sum())}")
        if not 1 <= components <= several.sum():
            raise DataError(f"statistics: {components} components for {int(several.sum())} identities")
        rows = np.concatenate([order[s:s + c] for s, c in zip(starts[several], counts[several])])
        counts = counts[several]
        owner = np.repeat(np.arange(len(counts)), counts)
        x = x[rows]
        means = np.zeros((len(counts), x.shape[1]))
        np.add.at(means, owner, x)
        means /= counts[:, None]
        # Each deviation weighted so that dev.T @ dev is the mean over identities of their covariances.
        dev = (x - means[owner]) / np.sqrt((counts[owner] - 1) * len(counts))[:, None]
        within = dev.T @ dev
        centre = means.mean(axis=0)
        spread = (means - centre).T @ (means - centre) / (len(counts) - 1)
        between, removed = _psd_part(spread - within * np.mean(1.0 / counts))
        log.info("statistics: %d identities, %d faces; %.2f%% of the between trace was negative and dropped",
                 len(counts), len(x), 100 * removed)
        w, v = np.linalg.eigh(between)
        basis = v[:, ::-1][:, :min(MIXTURE_DIMS, x.shape[1])]
        weights, c_means, c_covs = _centre_mixture((means - centre) @ basis, 1.0 / counts, basis.T @ within @ basis,
                                                   components, shrink, seed)
        return cls(centre.astype(np.float32), between.astype(np.float32), within.astype(np.float32),
                   counts.astype(np.int64), basis.astype(np.float32), weights, c_means.astype(np.float32),
                   c_covs.astype(np.float32), model, source)

    def with_within(self, scale: float, spread: float) -> "FaceStatistics":
        """The same statistics drawing faces with this ``within_scale`` and ``within_spread``."""
        return FaceStatistics(self.mean, self.between, self.within, self.counts, self.basis, self.weights,
                              self.component_means, self.component_covs, self.model, self.source,
                              float(scale), float(spread))

    # --- sampling ---

    @cached_property
    def _component_factors(self) -> list[np.ndarray]:
        return [psd_factor(c, keep=1.0) for c in self.component_covs]

    @cached_property
    def _residual_factor(self) -> np.ndarray:
        """float32 (D, r): between outside ``basis``."""
        outside = np.eye(self.dim) - self.basis.astype(np.float64) @ self.basis.T.astype(np.float64)
        return psd_factor(outside @ self.between.astype(np.float64) @ outside)

    @cached_property
    def _within_factor(self) -> np.ndarray:
        return psd_factor(self.within.astype(np.float64) * self.within_scale)

    @property
    def centre_draws(self) -> int:
        """Standard normals :meth:`centres` takes per identity."""
        return self.basis.shape[1] + self._residual_factor.shape[1]

    def centres(self, picks: np.ndarray, draws: np.ndarray) -> np.ndarray:
        """Identity centres from uniform ``picks`` (float64 (n,) in [0, 1): which component) and
        standard normal ``draws`` (float32 (n, :attr:`centre_draws`)): float32 (n, D)."""
        d = self.basis.shape[1]
        component = np.minimum(np.searchsorted(np.cumsum(self.weights), picks, side="right"), self.components - 1)
        local = self.component_means[component].copy()
        for k, factor in enumerate(self._component_factors):
            mine = component == k
            if mine.any() and factor.shape[1]:
                local[mine] += draws[mine, :factor.shape[1]] @ factor.T
        out = local @ self.basis.T
        if self._residual_factor.shape[1]:
            out += draws[:, d:] @ self._residual_factor.T
        out += self.mean
        return out

    @property
    def offset_draws(self) -> int:
        """Standard normals :meth:`offsets` takes per face (besides one for its scale)."""
        return self._within_factor.shape[1]

    def offsets(self, draws: np.ndarray, scale_draws: np.ndarray) -> np.ndarray:
        """Faces' offsets from their identity centre, from standard normal ``draws`` (float32
        (n, :attr:`offset_draws`)) and ``scale_draws`` (float32 (n,)): float32 (n, D)."""
        out = draws @ self._within_factor.T
        if self.within_spread:
            s = self.within_spread
            out *= np.sqrt(np.exp(s * scale_draws.astype(np.float64) - s * s / 2)).astype(np.float32)[:, None]
        return out

    # --- files ---

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` (.npz, compressed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to other names
            np.savez_compressed(f, mean=self.mean, between=self.between, within=self.within, counts=self.counts,
                                basis=self.basis, weights=self.weights, component_means=self.component_means,
                                component_covs=self.component_covs, model=np.str_(self.model),
                                source=np.str_(self.source),
                                within_params=np.array([self.within_scale, self.within_spread], np.float64))

    @classmethod
    def load(cls, path: str | os.PathLike, model: str | None = None) -> "FaceStatistics":
        """Read statistics written by :meth:`save`.

        Raises:
            DataError: the file is missing or unreadable, or was fitted for another model than
                ``model`` (when given).
        """
        try:
            with np.load(path) as z:
                params = z["within_params"]
                stats = cls(z["mean"], z["between"], z["within"], z["counts"].astype(np.int64), z["basis"],
                            z["weights"].astype(np.float64), z["component_means"], z["component_covs"],
                            str(z["model"]), str(z["source"]), float(params[0]), float(params[1]))
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: not a face statistics file ({exc})") from exc
        if model is not None and stats.model != model:
            raise DataError(f"{path}: statistics fitted for model {stats.model!r}, not {model!r}")
        return stats


def _centre_mixture(z: np.ndarray, inverse_counts: np.ndarray, within: np.ndarray, components: int, shrink: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (K,), means (K, d) and covariances (K, d, d) of true centres, from identity means
    ``z`` (float64 (I, d), relative to the overall mean) of ``1 / inverse_counts`` photos each.

    Each component's covariance loses the scatter of its members' means around their true
    centres: ``within`` (d, d) times the component's mean of 1 / n_i.
    """
    if components == 1:
        weights, means, resp = np.ones(1), z.mean(axis=0, keepdims=True), np.ones((len(z), 1))
        covs = np.atleast_2d(np.cov(z.T))[None]
    else:
        weights, means, covs, resp = fit_mixture(z, components, shrink, seed)
    noise = resp.T @ inverse_counts / resp.sum(axis=0)
    covs = np.stack([_psd_part(c - a * within)[0] for c, a in zip(covs, noise)])
    return weights, means, covs
