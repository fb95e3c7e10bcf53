"""OpenVINO, the one place it is imported: converted ONNX graphs compiled for the CPU.

OpenVINO's CPU plugin generates kernels for the shapes it is given, where ONNX Runtime runs
generic ones: compiled for a fixed size, MTCNN's small convolutions run up to 3x faster than on
ONNX Runtime, on the same converted graphs and to the same outputs; FaceNet runs about as fast
on either (docs/benchmarks.md, "MTCNN on OpenVINO"). :class:`OpenVinoModel` is run the way an
``onnxruntime.InferenceSession`` is, so the cascade and the embedder take either.

The dynamic compilation of each graph is cached by OpenVINO in the model cache
(``models/openvino``): a later process loads it instead of compiling. It holds no personal data.
"""
from __future__ import annotations

import functools
import logging
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from facesearch.models.onnx_session import usable_cores
from facesearch.paths import models_dir
from facesearch.permissions import SHARED_DIR, make_dirs

log = logging.getLogger(__name__)

#: Input shapes of one model compiled with fixed sizes, kept per model (least recently used go).
SHAPES_KEPT = 64
#: A shape is compiled with fixed sizes once it has been run this many times with the dynamic
#: model: a one-off photo size never pays the compilation (~10-30 ms a P-Net level), a video's
#: frames or a folder of equal photos pay it once.
COMPILE_AFTER = 2
#: A fixed-size compilation pushed out of the kept shapes having served fewer runs than this did
#: not pay for itself (a level runs ~0.1-0.5 ms faster fixed): the model then doubles the runs it
#: waits for before compiling a shape, up to :data:`MAX_COMPILE_AFTER`. Photos of many sizes (a
#: folder of face crops) otherwise recompile P-Net's levels for almost every photo, ten times the
#: cost of the detection itself.
PAYBACK_RUNS = 16
MAX_COMPILE_AFTER = 1024


def batch_bucket(n: int) -> int:
    """The batch size ``n`` rows are padded to when batches are bucketed: ``n`` up to 8, then
    the next multiple of 8 up to 64, of 32 up to 512, of 128 beyond. At most 1.5x the rows
    past 8 (1.14x past 64), and a few dozen sizes in all."""
    for limit, step in ((8, 1), (64, 8), (512, 32)):
        if n <= limit:
            return -(-n // step) * step
    return -(-n // 128) * 128


@functools.lru_cache(maxsize=1)
def _openvino():
    """The ``openvino`` module, imported without leaving a trap in logging.

    ``import openvino`` imports its model converter, which imports ``absl`` when it is installed
    (TensorFlow brings it). absl's log handler holds the ``sys.stderr`` of that moment and closes
    it when logging is configured again (pymilvus does so on import), unless it is the process's
    own stderr: under a harness that swaps ``sys.stderr`` (pytest's capture) the swapped stream
    was closed. The handler, taken off the root logger by OpenVINO itself, is pointed at the
    process's stderr instead.

    Its binding's numpy bridge is set up here, once, in one thread: pybind11 builds it on first
    use behind a C++ static guard, and two threads using it first at once deadlocked (one held the
    guard waiting for the GIL, the other the GIL waiting for the guard; MTCNN's P-Net thread and
    the caller's, about one process in 25).
    """
    fresh = "absl.logging" not in sys.modules
    import openvino

    absl_logging = sys.modules.get("absl.logging")
    if fresh and absl_logging is not None:
        absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__
    openvino.Type.f32.to_dtype()
    openvino.Tensor(np.zeros((1, 1), np.float32), shared_memory=True).data
    return openvino


@functools.lru_cache(maxsize=1)
def _core():
    return _openvino().Core()


@functools.lru_cache(maxsize=1)
def _cache_folder() -> str | None:
    folder = models_dir() / "openvino"
    try:
        make_dirs(folder, SHARED_DIR)
    except OSError as exc:  # a read-only cache only costs compile time
        log.info("%s: no compiled-model cache (%s)", folder, exc)
        return None
    return str(folder)


def _config(threads: int | None) -> dict:
    # float32 explicitly: on CPUs with bf16 units OpenVINO would otherwise lower the precision,
    # and embeddings must equal the Keras model's.
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": threads or usable_cores(), "ENABLE_CPU_PINNING": False}


def matmul_seconds(a: np.ndarray, b: np.ndarray, repeats: int) -> float:
    """Best of ``repeats`` wall times, in seconds, of OpenVINO's float32 ``a @ b`` (after one
    warm-up): a matrix product on the kernels this CPU's widest vector units run, whatever BLAS
    numpy was built or configured with."""
    import time

    openvino = _openvino()
    from openvino import opset13

    left, right = opset13.parameter(list(a.shape), np.float32), opset13.parameter(list(b.shape), np.float32)
    graph = openvino.Model([opset13.matmul(left, right, False, False)], [left, right])
    request = _core().compile_model(graph, "CPU", _config(None)).create_infer_request()
    request.infer([a, b])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        request.infer([a, b])
        best = min(best, time.perf_counter() - start)
    return best


def openvino_version() -> str:
    """The installed OpenVINO's version string."""
    return _openvino().__version__


class OpenVinoModel:
    """One ONNX graph compiled by OpenVINO, run as ``run(None, {input_name: array})``.

    Args:
        model: the ONNX graph's bytes or its file.
        per_shape: also compile the graph for each input shape that recurs (see
            :data:`COMPILE_AFTER`); for fully convolutional networks fed many sizes (P-Net), whose
            kernels are several times faster at a fixed size. Otherwise one compilation with
            dynamic dimensions serves every shape (batch sizes of R-Net, O-Net, FaceNet).
        bucket_batches: pad the batch (first) dimension with zero rows to :func:`batch_bucket`
            and drop their outputs. The dynamic model prepares itself once for every new shape
            (7 ms for R-Net): candidate counts that differ on every photo would pay that on
            every photo. Only for networks whose rows are independent and cheap: FaceNet's
            padding rows would cost its full arithmetic, more than its preparation (25-50 ms
            once per batch size) over a process's life.
        threads: threads per call; default every usable core.

    Calls take an idle infer request of their compilation (or make one), so one model may be
    called from several threads at once, as ONNX Runtime sessions are (OpenVINO may run their
    calls one after another).
    """

    def __init__(self, model: bytes | Path, *, per_shape: bool = False, bucket_batches: bool = False,
                 threads: int | None = None) -> None:
        core = _core()
        self._model = core.read_model(str(model) if isinstance(model, Path) else model)
        self.input_name = self._model.inputs[0].get_any_name()
        self._config = _config(threads)
        # Only the dynamic compilation is cached on disk: one file per model, where fixed sizes
        # would add one for every photo size ever seen.
        cached = {"CACHE_DIR": _cache_folder()} if _cache_folder() else {}
        self._dynamic = core.compile_model(self._model, "CPU", {**self._config, **cached})
        self._per_shape = per_shape
        self._bucket_batches = bucket_batches
        self._seen: dict[tuple[int, ...], int] = {}
        self._fixed: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._uses: dict[tuple[int, ...], int] = {}
        #: Runs a shape waits for before it is compiled (grows while compilations do not pay).
        self.compile_after = COMPILE_AFTER
        #: Fixed-size compilations made so far.
        self.compilations = 0
        self._compiling: set[tuple[int, ...]] = set()
        self._requests: dict[int, list] = {}
        self._lock = threading.Lock()

    def _compiled_for(self, shape: tuple[int, ...]):
        if not self._per_shape:
            return self._dynamic
        with self._lock:
            compiled = self._fixed.get(shape)
            if compiled is not None:
                self._fixed.move_to_end(shape)
                self._uses[shape] += 1
                if self._uses[shape] == PAYBACK_RUNS and self.compile_after > COMPILE_AFTER:
                    self.compile_after //= 2  # this one paid: sizes recur again (a video after a folder)
                return compiled
            if len(self._seen) > 16 * SHAPES_KEPT:
                self._seen.clear()
            runs = self._seen[shape] = self._seen.get(shape, 0) + 1
            if runs < self.compile_after or shape in self._compiling:
                return self._dynamic  # meanwhile another thread compiles it
            self._compiling.add(shape)
        compiled = None
        try:
            model = self._model.clone()
            model.reshape({self.input_name: list(shape)})
            compiled = _core().compile_model(model, "CPU", self._config)
        finally:
            with self._lock:
                self._compiling.discard(shape)
                if compiled is not None:
                    self.compilations += 1
                    self._fixed[shape], self._uses[shape] = compiled, 1
                    while len(self._fixed) > SHAPES_KEPT:
                        gone, dropped = self._fixed.popitem(last=False)
                        self._requests.pop(id(dropped), None)
                        if self._uses.pop(gone) < PAYBACK_RUNS:
                            self.compile_after = min(2 * self.compile_after, MAX_COMPILE_AFTER)
        return compiled

    def run(self, output_names: None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Every output, in the graph's order, for the one input in ``feeds`` (name -> float32 array)."""
        if output_names is not None or len(feeds) != 1:
            raise ValueError("OpenVinoModel.run takes None and one input")
        (x,) = feeds.values()
        rows = len(x)
        if self._bucket_batches and batch_bucket(rows) != rows:
            x = np.concatenate([x, np.zeros((batch_bucket(rows) - rows, *x.shape[1:]), x.dtype)])
        compiled = self._compiled_for(tuple(x.shape))
        # Infer requests are reused (making one per call cost ~30 us, a tenth of a small P-Net
        # level); each serves one call at a time, so concurrent calls take different ones.
        idle = self._requests.setdefault(id(compiled), [])
        with self._lock:
            request = idle.pop() if idle else None
        if request is None:
            request = compiled.create_infer_request()
        try:
            # share_inputs: the call reads the array in place (a copy per call cost ~20 us).
            result = request.infer({self.input_name: np.ascontiguousarray(x)}, share_inputs=True)
            return [result[output][:rows] for output in compiled.outputs]
        finally:
            with self._lock:
                idle.append(request)
