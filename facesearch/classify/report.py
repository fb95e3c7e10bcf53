"""Training and evaluation reports of a classifier, as files.

:func:`write_reports` writes into one folder:

* ``history.png``: accuracy and loss per epoch (training and, when there was one, validation);
* ``classification_report.json``: scikit-learn's per-identity precision, recall, F1 and
  support, plus accuracy and macro / weighted averages;
* ``confusion_matrix.png``: true identity (rows) against predicted identity (columns), counts;
* ``misclassified.png``: the wrongly classified images with their true and predicted names
  (image models only, when images are given and something was wrong);
* ``summary.json``: accuracy, weighted P/R/F1, counts, epochs and the paths of the above.

Plots use matplotlib's Agg backend (:mod:`facesearch.plotting`; no display needed).
"""
from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import classification_report as sk_report
from sklearn.metrics import confusion_matrix

from facesearch.plotting import pyplot

log = logging.getLogger(__name__)


def plot_history(history: dict[str, list[float]], path: str | Path, title: str = "training") -> Path:
    """Accuracy (left) and loss (right) per epoch; ``history`` as Keras returns it."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        # boxnet's metrics are prefixed by the head name ("identity_accuracy"); take every match.
        keys = sorted(k for k in history if k.endswith(metric) and not k.startswith("val_"))
        for key in keys:
            epochs = np.arange(1, len(history[key]) + 1)
            ax.plot(epochs, history[key], marker="o", ms=3, label=key)
            if f"val_{key}" in history:
                ax.plot(epochs, history[f"val_{key}"], marker="o", ms=3, ls="--", label=f"val_{key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def classification_report(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """scikit-learn's report as a dict: ``{identity: {precision, recall, f1-score, support}, "accuracy",
    "macro avg", "weighted avg"}``. Identities never predicted get precision 0 (no warning)."""
    labels = list(classes)
    report = sk_report(list(y_true), list(y_pred), labels=labels, output_dict=True, zero_division=0)
    if "accuracy" not in report:  # sklearn leaves it out when some labels are absent from y_true
        report["accuracy"] = float(np.mean(np.asarray(y_true, dtype=object) == np.asarray(y_pred, dtype=object)))
    return json.loads(json.dumps(report, default=float))


def plot_confusion(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str], path: str | Path,
                   title: str = "confusion matrix") -> np.ndarray:
    """Heatmap of counts, rows = true identity, columns = predicted. Returns the (C, C) int matrix."""
    plt = pyplot()
    labels = list(classes)
    cm = confusion_matrix(list(y_true), list(y_pred), labels=labels)
    side = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 40:  # numbers stay readable up to about this many identities
        top = cm.max() or 1
        for i in range(len(labels)):
            for j in range(len(labels)):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > top / 2 else "black")
    ax.set_title(textwrap.fill(title, 60), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return cm


def plot_misclassified(images: np.ndarray, y_true: Sequence[str], y_pred: Sequence[str], path: str | Path,
                       limit: int = 36) -> int:
    """A grid of the wrongly classified images (``(N, H, W, 3)``, 0..255) titled true -> predicted.

    Returns the number of images drawn (at most ``limit``); writes nothing when all are right.
    """
    wrong = [i for i, (t, p) in enumerate(zip(y_true, y_pred)) if t != p][:limit]
    if not wrong:
        return 0
    plt = pyplot()
    cols = min(6, len(wrong))
    rows = int(np.ceil(len(wrong) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong):
        ax.imshow(np.clip(np.asarray(images[i], dtype=np.float32), 0, 255).astype(np.uint8))
        ax.set_title(f"{y_true[i]}\n-> {y_pred[i]}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(wrong)


def write_reports(out: str | Path, *, history: dict[str, list[float]], y_true: Sequence[str],
                  y_pred: Sequence[str], classes: Sequence[str], evaluated_on: str, images: np.ndarray | None = None,
                  extra: dict[str, Any] | None = None, title: str = "classifier") -> dict[str, Any]:
    """Write every report of one training run into ``out``; returns the summary (also in summary.json).

    Args:
        history: Keras per-epoch metrics.
        y_true, y_pred: identity names of the evaluation samples.
        classes: the classifier's identities (rows and columns of the confusion matrix).
        evaluated_on: words saying what ``y_true`` is (e.g. ``"validation split (19 faces)"``).
        images: the evaluation images, for the misclassified grid (image models).
        extra: more fields for the summary (kind, parameters, timings ...).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"history_png": plot_history(history, out / "history.png", title)}
    report = classification_report(y_true, y_pred, classes)
    (out / "classification_report.json").write_text(json.dumps(report, indent=2))
    files["classification_report_json"] = out / "classification_report.json"
    plot_confusion(y_true, y_pred, classes, out / "confusion_matrix.png", f"{title}: {evaluated_on}")
    files["confusion_matrix_png"] = out / "confusion_matrix.png"
    if images is not None and plot_misclassified(images, y_true, y_pred, out / "misclassified.png"):
        files["misclassified_png"] = out / "misclassified.png"
    weighted = report.get("weighted avg", {})
    summary = {**(extra or {}), "evaluated_on": evaluated_on, "samples": len(y_true),
               "accuracy": round(float(report["accuracy"]), 4),
               "weighted_precision": round(float(weighted.get("precision", 0.0)), 4),
               "weighted_recall": round(float(weighted.get("recall", 0.0)), 4),
               "weighted_f1": round(float(weighted.get("f1-score", 0.0)), 4),
               "epochs": max((len(v) for v in history.values()), default=0),
               "files": {k: str(v) for k, v in files.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    summary["files"]["summary_json"] = str(out / "summary.json")
    return summary
