"""Batched FaceNet embeddings of aligned face crops.

Input: (N, 160, 160, 3) uint8 RGB crops. Output: (N, 512) float32 rows of unit L2 norm, to be
compared with the dot product (cosine similarity).

Three runtimes compute the same network:

* ``"onnx"`` (ONNX Runtime, default) and ``"openvino"`` run a graph converted once from the
  verified Keras model (:mod:`facesearch.models.facenet_onnx`) and kept in the model cache with
  its sha256. A process that finds it there never imports TensorFlow. The conversion is
  checked against the Keras model before it is stored (cosine >= :data:`MIN_COSINE` on probe
  crops).
* ``"keras"``: the Keras model in a ``tf.function``; TensorFlow is imported when the first
  such ``Embedder`` is created.

Either way the model is loaded once per process per weights file. docs/benchmarks.md has the
figures that kept ONNX Runtime the default here (OpenVINO runs MTCNN, see
:mod:`facesearch.models.mtcnn_onnx`).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from facesearch.errors import WeightsError
from facesearch.models.converted import ConvertedModel, load_converted, store_converted
from facesearch.models.facenet_onnx import INPUT, facenet_to_onnx
from facesearch.models.onnx_session import cached_session, new_session
from facesearch.models.runtime import import_tensorflow
from facesearch.models.weights import (EMBEDDING_DIM, MODEL_ID, WeightsInfo, build_model, cached_weights_sha256,
                                       resolve_weights)
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["BATCH_SIZE", "FACE_SIZE", "EMBEDDING_DIM", "MODEL_ID", "RUNTIMES", "Embedder", "prewhiten"]

log = logging.getLogger(__name__)

#: Side in pixels of the square RGB crop FaceNet 20180402-114759 reads.
FACE_SIZE = 160
#: Faces per forward pass unless an Embedder is told otherwise; peak memory grows with it.
BATCH_SIZE = 32
#: What can run the network; the first is the default.
RUNTIMES = ("onnx", "openvino", "keras")
#: A converted graph is stored only if every probe crop's embedding has at least this cosine
#: with the Keras model's.
MIN_COSINE = 0.99999

# Built models keyed by (weights path, sha256). Building costs ~3 s and ~100 MB; several
# Embedders in one process (CLI + gallery, tests) should share one model.
_MODELS: dict[tuple[str, str], tuple["keras.Model", Callable]] = {}
# resolve_weights() results per `download` flag for the default weights, so the cache's sha256
# is checked once per process and not on every Embedder().
_DEFAULT_WEIGHTS: dict[bool, WeightsInfo] = {}
# OpenVINO models and ONNX Runtime sessions keyed by (runtime, the source weights' sha256).
_SESSIONS: dict[tuple[str, str], tuple[object, Path]] = {}
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


def onnx_filename(weights_sha256: str) -> str:
    """The converted graph's file name in the model cache: one per source weights file."""
    return f"{MODEL_ID}-{weights_sha256[:16]}.onnx"


def _probe_crops() -> np.ndarray:
    """Fixed crops for checking a conversion: a smooth gradient face-sized image and noise,
    ``(2, 160, 160, 3)`` uint8. The network's agreement does not depend on their content."""
    ramp = np.linspace(0, 255, FACE_SIZE, dtype=np.float32)
    smooth = np.stack([ramp[None, :].repeat(FACE_SIZE, 0), ramp[:, None].repeat(FACE_SIZE, 1),
                       np.full((FACE_SIZE, FACE_SIZE), 128.0, np.float32)], axis=-1)
    noise = np.random.default_rng(0).integers(0, 256, (FACE_SIZE, FACE_SIZE, 3))
    return np.stack([smooth, noise]).astype(np.uint8)


def convert_to_onnx(weights: WeightsInfo) -> ConvertedModel:
    """Convert the Keras model of ``weights`` into the model cache, after checking the graph's
    embeddings against the model's on probe crops. Imports TensorFlow. Raises WeightsError."""
    model, forward = _load(weights)
    data = facenet_to_onnx(model)
    x = prewhiten(_probe_crops())
    expected = forward(import_tensorflow().constant(x)).numpy()
    got = new_session(data).run(None, {INPUT: x})[0]
    cosine = float(np.min(np.sum(expected * got, axis=1) /
                          (np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1))))
    if not cosine >= MIN_COSINE:
        raise WeightsError(f"{weights.path}: the ONNX conversion disagrees with the Keras model (cosine {cosine:.6f})")
    log.info("converted %s to ONNX (probe cosine %.7f)", weights.path, cosine)
    return store_converted(onnx_filename(weights.sha256), data, weights.sha256, model_id=MODEL_ID,
                           source=str(weights.path), probe_min_cosine=cosine)


def _converted_graph(weights: WeightsInfo | None, download: bool, source: str | None) -> ConvertedModel:
    """The converted graph of ``weights`` (None: the default weights, whose sha256 ``source`` the
    weights' sidecar gave, if any), converting it when the cache has no intact copy."""
    found = load_converted(onnx_filename(source), source) if source else None
    if found is not None:
        return found
    info = weights if weights is not None else _default_weights(download)
    return load_converted(onnx_filename(info.sha256), info.sha256) or convert_to_onnx(info)


def _onnx_session(weights: WeightsInfo | None, download: bool) -> tuple[object, Path]:
    """The process-wide ONNX Runtime session for ``weights`` (None: the default weights), and the
    graph file it runs.

    With the default weights, the cached graph is found from the weights' sidecar without
    hashing the weights or importing TensorFlow; only a missing or stale graph resolves the
    weights and converts them.
    """
    source = weights.sha256 if weights is not None else cached_weights_sha256()
    with _LOCK:
        loaded = _SESSIONS.get(("onnx", source)) if source else None
    if loaded is not None:
        return loaded
    probe = {INPUT: prewhiten(_probe_crops())}
    if source:
        session, path = cached_session(onnx_filename(source), source,
                                       lambda: _converted_graph(weights, download, source), probe)
    else:
        graph = _converted_graph(weights, download, source)
        session, path = cached_session(onnx_filename(graph.source_sha256), graph.source_sha256, lambda: graph, probe)
        source = graph.source_sha256
    with _LOCK:
        return _SESSIONS.setdefault(("onnx", source), (session, path))


def _openvino_model(weights: WeightsInfo | None, download: bool) -> tuple[object, Path]:
    """The process-wide OpenVINO model for ``weights`` (None: the default weights), and the graph
    file it runs; found as :func:`_onnx_session` finds its graph."""
    from facesearch.models.openvino_model import OpenVinoModel

    source = weights.sha256 if weights is not None else cached_weights_sha256()
    with _LOCK:
        loaded = _SESSIONS.get(("openvino", source)) if source else None
    if loaded is not None:
        return loaded
    graph = _converted_graph(weights, download, source)
    model = OpenVinoModel(graph.data)
    with _LOCK:
        return _SESSIONS.setdefault(("openvino", graph.source_sha256), (model, graph.path))


class Embedder:
    """Compute FaceNet embeddings for aligned face crops.

    weights: None (resolve: cache -> download -> conversion, see facesearch.models.weights), a path to
        a weights file, or an already resolved WeightsInfo.
    batch_size: faces per forward pass, default BATCH_SIZE (peak memory grows linearly with it).
    download: allow downloading the weights when they are not cached.
    runtime: one of :data:`RUNTIMES`: ``"onnx"`` (ONNX Runtime, default) or ``"openvino"``, both on
        the converted graph, or ``"keras"``.
    Raises WeightsError when the weights cannot be resolved or loaded.

    ``weights`` (the verified weights file) and ``model`` (the Keras model) are resolved and
    built on first access when the converted graph's runtime did not need them.
    """

    model_id: str = MODEL_ID  # what galleries store to refuse mixing embeddings of other models

    def __init__(
        self,
        weights: str | Path | WeightsInfo | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        download: bool = True,
        runtime: str = RUNTIMES[0],
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if weights is None:
            info = None
        elif isinstance(weights, WeightsInfo):
            info = weights
        else:
            info = resolve_weights(weights, download=download)
        self._weights = info
        self._download = download
        self.batch_size = int(batch_size)
        self.model_id = MODEL_ID
        self.runtime = runtime
        if runtime == "keras":
            self._keras_forward = _load(self.weights)[1]
            self._run = self._run_keras
        else:
            load = _openvino_model if runtime == "openvino" else _onnx_session
            self._session, self.graph_path = load(info, download)
            self._run = self._run_onnx

    @property
    def weights(self) -> WeightsInfo:
        """The verified weights file (resolved on first access by the converted graph's runtimes)."""
        if self._weights is None:
            self._weights = _default_weights(self._download)
        return self._weights

    @property
    def model(self) -> "keras.Model":
        """The Keras model of :attr:`weights` (built on first access by the converted graph's runtimes)."""
        return _load(self.weights)[0]

    def __repr__(self) -> str:
        where = self.weights.path if self.runtime == "keras" else self.graph_path
        return (f"Embedder(model_id={self.model_id!r}, runtime={self.runtime!r}, model={str(where)!r}, "
                f"batch_size={self.batch_size})")

    def _run_keras(self, x: np.ndarray) -> np.ndarray:
        return self._keras_forward(import_tensorflow().constant(x)).numpy()

    def _run_onnx(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {INPUT: x})[0]

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
        for start in range(0, n, self.batch_size):
            x = prewhiten(batch[start : start + self.batch_size])
            out[start : start + len(x)] = self._run(x)
        # The model already L2-normalises, in float32 on the TF side; re-normalising here makes
        # unit norm hold to numpy's float32 precision whatever TF kernel computed it.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, np.float32(1e-12))
        return out
