"""Stratified, seeded train / val / test splits of a folder-per-identity tree.

* :func:`split_items`: ``(photo, identity)`` pairs cut per identity into train, val and test.
* :func:`write_split`: a tree copied into ``dst/{train,val,test}/<identity>/`` with
  ``split.json`` and a class-distribution bar chart (:func:`plot_class_distribution`).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from facesearch.bench.datasets import folder_dataset
from facesearch.errors import DataError
from facesearch.plotting import pyplot

SPLITS = ("train", "val", "test")


def split_items(items: Sequence[tuple[Path, str]], *, val: float = 0.15, test: float = 0.15,
                seed: int = 0) -> dict[str, list[tuple[Path, str]]]:
    """Stratified, seeded split of ``(photo, identity)`` pairs into train / val / test.

    Each identity's photos are shuffled (NumPy generator seeded with ``seed``) and cut by
    itself: ``round(test * n)`` to test, ``round(val * n)`` to val, the rest to train, always
    keeping at least one photo in train. Per-identity cutting keeps the class proportions
    in every split, and, unlike a global stratified split, works for identities with one or two
    photos.
    """
    if val < 0 or test < 0 or val + test >= 1:
        raise DataError(f"val ({val}) and test ({test}) must be >= 0 and sum to less than 1")
    rng = np.random.default_rng(seed)
    by_name: dict[str, list[Path]] = {}
    for path, who in items:
        by_name.setdefault(who, []).append(Path(path))
    out: dict[str, list[tuple[Path, str]]] = {s: [] for s in SPLITS}
    for who in sorted(by_name):
        photos = sorted(by_name[who])
        order = rng.permutation(len(photos))
        n_test = min(int(round(test * len(photos))), len(photos) - 1)
        n_val = min(int(round(val * len(photos))), len(photos) - 1 - n_test)
        cut = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        for name in SPLITS:
            out[name] += [(photos[i], who) for i in sorted(cut[name])]
    return out


def plot_class_distribution(splits: dict[str, list[tuple[Path, str]]], path: str | os.PathLike) -> Path:
    """Grouped bar chart: photos per identity in each split."""
    plt = pyplot()
    names = sorted({who for items in splits.values() for _, who in items})
    x = np.arange(len(names))
    width = 0.8 / max(len(splits), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 4))
    for j, (split, items) in enumerate(splits.items()):
        counts = [sum(1 for _, w in items if w == n) for n in names]
        ax.bar(x + (j - (len(splits) - 1) / 2) * width, counts, width, label=f"{split} ({len(items)})")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("photos")
    ax.set_title("class distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_split(src: str | os.PathLike, dst: str | os.PathLike, *, val: float = 0.15, test: float = 0.15,
                seed: int = 0) -> dict:
    """Copy a folder-per-identity tree into ``dst/{train,val,test}/<identity>/``.

    Also writes ``dst/split.json`` (counts per split and identity, the seed) and
    ``dst/class_distribution.png``. Returns the ``split.json`` content.
    """
    items = folder_dataset(src)
    if not items:
        raise DataError(f"{src}: no identity sub-folders with photos")
    splits = split_items(items, val=val, test=test, seed=seed)
    dst = Path(dst)
    for name, pairs in splits.items():
        for path, who in pairs:
            (dst / name / who).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst / name / who / path.name)
    plot_class_distribution(splits, dst / "class_distribution.png")
    counts = {name: {who: sum(1 for _, w in pairs if w == who) for who in sorted({w for _, w in items})}
              for name, pairs in splits.items()}
    info = {"source": str(src), "seed": seed, "val": val, "test": test,
            "totals": {name: len(pairs) for name, pairs in splits.items()}, "per_identity": counts,
            "class_distribution_png": str(dst / "class_distribution.png")}
    (dst / "split.json").write_text(json.dumps(info, indent=2))
    return info
