"""Batched FaceNet embeddings of aligned face crops.

Input: (N, 160, 160, 3) uint8 RGB crops. Output: (N, 512) float32 rows of unit L2 norm, to be
compared with the dot product (cosine similarity). TensorFlow is imported only when the first
``Embedder`` is created, and the model is built once per process per weights file.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from facesearch.models.runtime import import_tensorflow
from facesearch.models.weights import EMBEDDING_DIM, MODEL_ID, WeightsInfo, build_model, resolve_weights

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["BATCH_SIZE", "FACE_SIZE", "EMBEDDING_DIM", "MODEL_ID", "Embedder", "prewhiten"]

#: Side in pixels of the square RGB crop FaceNet 20180402-114759 reads.
FACE_SIZE = 160
#: Faces per forward pass unless an Embedder is told otherwise; peak memory grows with it.
BATCH_SIZE = 32

# Built models keyed by (weights path, sha256). Building costs ~3 s and ~100 MB; several
# Embedders in one process (CLI + gallery, tests) should share one model.
_MODELS: dict[tuple[str, str], tuple["keras.Model", Callable]] = {}
# resolve_weights() results per `download` flag for the default weights, so the cache's sha256
# is checked once per process and not on every Embedder().
_DEFAULT_WEIGHTS: dict[bool, WeightsInfo] = {}
_LOCK = threading.Lock()


def prewhiten(crops: np.ndarray) -> np.ndarray:
    """Fixed image standardisation FaceNet 20180402-114759 was trained with.

    crops: any shape, pixel values 0..255 (uint8 or float). Returns float32 ``(x - 127.5) / 128``,
    i.e. values in about [-1, 1], same shape.
    """
    return (np.asarray(crops, dtype=np.float32) - np.float32(127.5)) / np.float32(128.0)


def _load(weights: WeightsInfo) -> tuple["keras.Model", Callable]:
    """Return the process-wide (Keras model, compiled forward pass) for ``weights``, building
    them on first use. forward: float32 (N, 160, 160, 3) tensor -> (N, 512) tensor."""
    key = (str(weights.path), weights.sha256)
    with _LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            tf = import_tensorflow()

            model = build_model(weights)

            # A tf.function with a fixed signature is traced once for every batch size. On a
            # 2-core CPU it measured ~12x faster than an eager model(x) call for one face
            # (44 ms vs 530 ms) and ~2x for 32 faces; keras' predict() sits in between.
            # XLA (jit_compile) was no faster and recompiles for every new batch size.
            @tf.function(
                input_signature=[tf.TensorSpec((None, FACE_SIZE, FACE_SIZE, 3), tf.float32)],
                reduce_retracing=True,
            )
            def forward(x):
                return model(x, training=False)

            loaded = _MODELS[key] = (model, forward)
    return loaded


def _default_weights(download: bool) -> WeightsInfo:
    with _LOCK:
        info = _DEFAULT_WEIGHTS.get(download)
    if info is None:
        info = resolve_weights(download=download)
        with _LOCK:
            info = _DEFAULT_WEIGHTS.setdefault(download, info)
    return info


class Embedder:
    """Compute FaceNet embeddings for aligned face crops.

    weights: None (resolve: cache -> download -> conversion, see facesearch.models.weights), a path to
        a weights file, or an already resolved WeightsInfo.
    batch_size: faces per forward pass, default BATCH_SIZE (peak memory grows linearly with it).
    download: allow downloading the weights when they are not cached.
    Raises WeightsError when the weights cannot be resolved or loaded.
    """

    model_id: str = MODEL_ID  # what galleries store to refuse mixing embeddings of other models

    def __init__(
        self,
        weights: str | Path | WeightsInfo | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        download: bool = True,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if weights is None:
            info = _default_weights(download)
        elif isinstance(weights, WeightsInfo):
            info = weights
        else:
            info = resolve_weights(weights, download=download)
        self.weights: WeightsInfo = info
        self.batch_size = int(batch_size)
        self.model_id = MODEL_ID
        self.model, self._forward = _load(info)

    def __repr__(self) -> str:
        return f"Embedder(model_id={self.model_id!r}, weights={str(self.weights.path)!r}, batch_size={self.batch_size})"

    @staticmethod
    def _as_batch(crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        if isinstance(crops, np.ndarray):
            batch = crops
        else:
            items = list(crops)
            if not items:
                return np.empty((0, FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)
            for i, item in enumerate(items):
                if not isinstance(item, np.ndarray) or item.shape != (FACE_SIZE, FACE_SIZE, 3):
                    shape = getattr(item, "shape", type(item).__name__)
                    raise ValueError(
                        f"crop {i}: expected a ({FACE_SIZE}, {FACE_SIZE}, 3) uint8 RGB array, got {shape}"
                    )
                if item.dtype != np.uint8:
                    raise ValueError(f"crop {i}: expected dtype uint8 (0..255 RGB), got {item.dtype}")
            batch = np.stack(items)
        if batch.ndim != 4 or batch.shape[1:] != (FACE_SIZE, FACE_SIZE, 3):
            hint = " (wrap a single crop as crops[None])" if batch.shape == (FACE_SIZE, FACE_SIZE, 3) else ""
            raise ValueError(
                f"crops: expected shape (N, {FACE_SIZE}, {FACE_SIZE}, 3), got {batch.shape}{hint}"
            )
        if batch.dtype != np.uint8:
            raise ValueError(f"crops: expected dtype uint8 (0..255 RGB), got {batch.dtype}")
        return batch

    def embed(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embed aligned face crops.

        crops: (N, 160, 160, 3) uint8 RGB array, or a sequence of (160, 160, 3) uint8 arrays.
        Returns (N, 512) float32, each row of unit L2 norm; (0, 512) when N == 0.
        Raises ValueError on any other shape or dtype.
        """
        batch = self._as_batch(crops)
        n = batch.shape[0]
        out = np.empty((n, EMBEDDING_DIM), dtype=np.float32)
        if n == 0:
            return out
        tf = import_tensorflow()
        for start in range(0, n, self.batch_size):
            x = prewhiten(batch[start : start + self.batch_size])
            out[start : start + len(x)] = self._forward(tf.constant(x)).numpy()
        # The model already L2-normalises, in float32 on the TF side; re-normalising here makes
        # unit norm hold to numpy's float32 precision whatever TF kernel computed it.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, np.float32(1e-12))
        return out
