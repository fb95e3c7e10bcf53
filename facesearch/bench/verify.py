"""Face verification on LFW pairs: 10-fold accuracy, TAR at fixed FAR, ROC, best threshold.

Protocol (LFW View 2): for each of the 10 folds, the threshold that maximises accuracy on the
other 9 folds is applied to it. A pair with a photo where no face was found is a failure of
the system, never dropped: in accuracy it counts as wrong whatever the threshold, and in the
ROC (TAR at FAR) it counts as rejected.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from facesearch.plotting import pyplot
from facesearch.bench.datasets import Pair
from facesearch.search.answers import DEFAULT_THRESHOLD
from facesearch.bench.embeddings import DatasetEmbeddings


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def pair_similarities(pairs: Sequence[Pair], emb: DatasetEmbeddings, mean: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity per pair, float64 (P,); NaN where a photo has no face.

    With ``mean``, it is subtracted from both embeddings first (and they are re-normalised):
    it removes the direction all faces of a dataset share, which sharpens cosine similarity.
    """
    of = emb.of()
    a = emb.vectors[[of[p.a] for p in pairs]].astype(np.float64)
    b = emb.vectors[[of[p.b] for p in pairs]].astype(np.float64)
    if mean is not None:
        a, b = _normalise(a - mean), _normalise(b - mean)
    return np.sum(a * b, axis=1)


def best_threshold(sims: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold of best accuracy (same if sim >= thr) and that accuracy; NaN sims count wrong."""
    valid = ~np.isnan(sims)
    s, y = sims[valid], same[valid]
    order = np.argsort(s)
    s, y = s[order], y[order]
    # Threshold just above position i: pairs [0, i] rejected, (i, n) accepted.
    diff_below = np.concatenate([[0], np.cumsum(~y)])      # different pairs rejected (correct)
    same_above = np.concatenate([[0], np.cumsum(y[::-1])])[::-1]  # same pairs accepted (correct)
    correct = diff_below + same_above
    i = int(np.argmax(correct))
    if i == 0:
        thr = s[0] - 1e-6 if len(s) else 0.0
    elif i == len(s):
        thr = s[-1] + 1e-6
    else:
        thr = (s[i - 1] + s[i]) / 2
    return float(thr), float(correct[i] / len(sims))


def _rejected(sims: np.ndarray) -> np.ndarray:
    """Failed pairs (NaN) scored as rejected at every threshold.

    A photo without a face cannot be accepted as a match: a failed same-person pair is a false
    reject (it lowers TAR), a failed different-person pair a correct reject.
    """
    return np.where(np.isnan(sims), -np.inf, sims)


def roc(sims: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(far, tar, thresholds)`` over every distinct threshold; failed pairs count as rejected."""
    from sklearn.metrics import roc_curve

    s = _rejected(sims)
    finite = np.clip(s, -2.0, 2.0)
    far, tar, thr = roc_curve(same.astype(int), finite, drop_intermediate=False)
    return far, tar, thr


def tar_at_far(sims: np.ndarray, same: np.ndarray, far_target: float) -> tuple[float, float]:
    """Highest true-accept rate whose false-accept rate is at most ``far_target``, and the
    lowest threshold that achieves it."""
    far, tar, thr = roc(sims, same)
    ok = far <= far_target
    if not ok.any():
        return 0.0, float("inf")
    best = np.flatnonzero(ok)[np.argmax(tar[ok])]
    return float(tar[best]), float(thr[best])


def rates_at(sims: np.ndarray, same: np.ndarray, threshold: float) -> dict[str, float]:
    """TAR and FAR when pairs with similarity >= ``threshold`` are accepted (failed pairs rejected)."""
    accepted = _rejected(sims) >= threshold
    return {"threshold": threshold, "tar": float(accepted[same].mean()), "far": float(accepted[~same].mean())}


@dataclass
class VerificationResult:
    accuracy: float
    accuracy_std: float
    fold_accuracies: list[float]
    thresholds: list[float]
    tar_at_far: dict[str, float]
    threshold_at_far: dict[str, float]
    pairs: int
    failed_pairs: int
    failed_photos: int
    subtract_mean: bool
    at_default_threshold: dict[str, float]
    sims: np.ndarray = field(repr=False)
    same: np.ndarray = field(repr=False)

    def as_dict(self) -> dict:
        return {
            "accuracy": round(self.accuracy, 5), "accuracy_std": round(self.accuracy_std, 5),
            "fold_accuracies": [round(a, 5) for a in self.fold_accuracies],
            "thresholds": [round(t, 4) for t in self.thresholds],
            "tar_at_far": {k: round(v, 5) for k, v in self.tar_at_far.items()},
            "threshold_at_far": {k: round(v, 4) for k, v in self.threshold_at_far.items()},
            "pairs": self.pairs, "failed_pairs": self.failed_pairs, "failed_photos": self.failed_photos,
            "subtract_mean": self.subtract_mean,
            "at_default_threshold": {k: round(v, 5) for k, v in self.at_default_threshold.items()},
        }


def verify(pairs: Sequence[Pair], emb: DatasetEmbeddings, *, subtract_mean: bool = False) -> VerificationResult:
    """Run the k-fold protocol (k = the number of folds in ``pairs``; 1 fold: threshold fit on itself)."""
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    of = emb.of()
    sims = np.full(len(pairs), np.nan)
    accs, thrs = [], []
    fold_ids = sorted(set(folds.tolist()))
    for f in fold_ids:
        test = folds == f
        train = ~test if len(fold_ids) > 1 else test
        mean = None
        if subtract_mean:
            rows = sorted({of[p.a] for p, t in zip(pairs, train) if t} | {of[p.b] for p, t in zip(pairs, train) if t})
            rows = [r for r in rows if emb.ok[r]]
            mean = emb.vectors[rows].astype(np.float64).mean(axis=0)
        fold_sims = pair_similarities(pairs, emb, mean)
        thr, _ = best_threshold(fold_sims[train], same[train])
        s, y = fold_sims[test], same[test]
        correct = np.where(np.isnan(s), False, (s >= thr) == y)
        accs.append(float(correct.mean()))
        thrs.append(thr)
        sims[test] = s
    at_far = {"0.001": tar_at_far(sims, same, 1e-3), "0.01": tar_at_far(sims, same, 1e-2)}
    failed = int(np.isnan(sims).sum())
    bad_photos = int((~emb.ok).sum())
    return VerificationResult(
        accuracy=float(np.mean(accs)), accuracy_std=float(np.std(accs)), fold_accuracies=accs, thresholds=thrs,
        tar_at_far={k: v[0] for k, v in at_far.items()}, threshold_at_far={k: v[1] for k, v in at_far.items()},
        pairs=len(pairs), failed_pairs=failed, failed_photos=bad_photos, subtract_mean=subtract_mean,
        at_default_threshold=rates_at(sims, same, DEFAULT_THRESHOLD), sims=sims, same=same)


def plot_roc(results: dict[str, VerificationResult], path: str | Path) -> None:
    """ROC curves (TAR vs FAR, log FAR axis) of one or more runs into a PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, r in results.items():
        far, tar, _ = roc(r.sims, r.same)
        ax.plot(np.maximum(far, 1e-4), tar, label=f"{label} ({100 * r.accuracy:.2f}%)")
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("LFW verification ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
