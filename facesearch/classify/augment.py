"""Training-time image augmentation of the pixel classifiers, and a preview of it.

* :func:`augmentation`: Keras preprocessing layers (rotation, shifts, shear, horizontal flip,
  brightness), active only while training.
* :func:`preview_augmentation`: a grid PNG of one photo and augmented versions of it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facesearch.models.runtime import import_keras
from facesearch.plotting import pyplot


def augmentation(seed: int = 0, *, rotation: float = 0.05, shift: float = 0.1, shear: float = 0.1,
                 brightness: float = 0.2):
    """Keras preprocessing layers that augment ``(N, H, W, 3)`` float images in 0..255 while training.

    Rotation by up to ``rotation`` of a full turn (0.05 = 18 degrees), shifts by up to
    ``shift`` of the size, shear up to ``shear``, horizontal flips (faces are roughly
    symmetric; vertical flips are not faces), brightness by up to ``brightness`` of the range.
    Active only when called with ``training=True`` (Keras's ``fit``), identity otherwise.
    """
    keras = import_keras()
    layers = keras.layers
    return keras.Sequential([
        layers.RandomRotation(rotation, fill_mode="reflect", seed=seed),
        layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seed + 1),
        layers.RandomShear(x_factor=shear, y_factor=shear, fill_mode="reflect", seed=seed + 2),
        layers.RandomFlip("horizontal", seed=seed + 3),
        layers.RandomBrightness(brightness, value_range=(0, 255), seed=seed + 4),
    ], name="augmentation")


def preview_augmentation(image: np.ndarray, path: str | os.PathLike, *, n: int = 8, seed: int = 0) -> Path:
    """A grid PNG: ``image`` ((H, W, 3) uint8 RGB) and ``n`` augmented versions of it."""
    aug = augmentation(seed)
    batch = np.repeat(np.asarray(image, np.float32)[None], n, axis=0)
    out = import_keras().ops.convert_to_numpy(aug(batch, training=True))
    plt = pyplot()
    cols = min(3, n + 1)
    rows = int(np.ceil((n + 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.5 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    tiles = [("original", np.asarray(image))] + [(f"augmented {i + 1}", out[i]) for i in range(n)]
    for ax, (title, tile) in zip(axes.ravel(), tiles):
        ax.imshow(np.clip(tile, 0, 255).astype(np.uint8))
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
