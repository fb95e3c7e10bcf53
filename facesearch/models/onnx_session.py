"""ONNX Runtime, the one place it is imported: sessions for the converted FaceNet and MTCNN graphs.

ONNX Runtime runs the converted networks with a fraction of TensorFlow's per-call cost (tens
of microseconds instead of milliseconds) and imports in ~0.2 s instead of ~5 s; the figures
that chose it are in docs/benchmarks.md.
"""
from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1)
def import_onnxruntime():
    """The ``onnxruntime`` module, with its own logging limited to errors."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def new_session(model: bytes, *, threads: int | None = None, spinning: bool = False):
    """An ``onnxruntime.InferenceSession`` on the CPU for a serialised ONNX model.

    Args:
        model: the ONNX file's bytes.
        threads: intra-op threads; default every usable core.
        spinning: let idle worker threads spin between operators. Faster on an idle machine,
            but on a busy one (a camera thread, other jobs) spinning threads take cores from
            the work that would feed them, so it is off unless asked for.
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
