"""ONNX Runtime, the one place it is imported: sessions for the converted FaceNet and MTCNN graphs.

ONNX Runtime runs the converted networks with a fraction of TensorFlow's per-call cost (tens
of microseconds instead of milliseconds) and imports in ~0.2 s instead of ~5 s; the figures
that chose it are in docs/benchmarks.md.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import tempfile
from pathlib import Path
from typing import Callable

from facesearch.models.converted import ConvertedModel, load_converted, recorded_sha256, store_converted
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

log = logging.getLogger(__name__)


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


def new_session(model: bytes, *, threads: int | None = None, spinning: bool = False, optimise: bool = True,
                save_optimised: Path | None = None):
    """An ``onnxruntime.InferenceSession`` on the CPU for a serialised ONNX model.

    Args:
        model: the ONNX file's bytes.
        threads: intra-op threads; default every usable core.
        spinning: let idle worker threads spin between operators. Faster on an idle machine,
            but on a busy one (a camera thread, other jobs) spinning threads take cores from
            the work that would feed them, so it is off unless asked for.
        optimise: run ONNX Runtime's graph optimisations (off for a graph it already optimised).
        save_optimised: where to write the optimised graph, for :func:`cached_session`.
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if save_optimised is not None:
        options.optimized_model_filepath = str(save_optimised)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=1)
def machine_key() -> str:
    """Short hex key of what an optimised graph is specific to: ONNX Runtime's version, the CPU
    architecture and its feature flags (the full optimisation level rewrites layouts for the
    vector units it finds, e.g. AVX-512, so a graph optimised on one CPU may not run on another)."""
    flags = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    text = "|".join((import_onnxruntime().__version__, platform.machine(), flags))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cached_session(name: str, source_sha256: str, build: Callable[[], ConvertedModel],
                   probe: dict[str, np.ndarray], *, tolerance: float = 1e-5) -> tuple[object, Path]:
    """A session for the converted graph ``name`` (converted from ``source_sha256``), built from
    ONNX Runtime's optimised form of it when this machine has one cached, else optimised now and
    cached for the next process. Returns the session and the graph file it runs.

    Optimising FaceNet's graph costs about 1 s of every cold command; loading the optimised one
    costs less than half of that, and the converted graph is then not read at all
    (docs/benchmarks.md). The optimised graph is kept in the model cache under a name carrying
    :func:`machine_key`, its sidecar naming the converted graph's sha256, and is stored only if its
    outputs on ``probe`` (input name -> array) equal the fresh session's within ``tolerance``.
    ``build`` loads (or converts) the converted graph when it is needed.
    """
    optimised_name = f"{Path(name).stem}.optimised-{machine_key()}.onnx"
    recorded = recorded_sha256(name, source_sha256)
    if recorded is not None:
        cached = load_converted(optimised_name, recorded)
        if cached is not None:
            return new_session(cached.data, optimise=False), cached.path
    converted = build()
    with tempfile.TemporaryDirectory(prefix="facesearch-ort-") as tmp:
        target = Path(tmp) / "optimised.onnx"
        session = new_session(converted.data, save_optimised=target)
        try:
            data = target.read_bytes()
        except OSError as exc:  # this runtime could not serialise its optimised graph
            log.info("%s: no optimised graph to cache (%s)", converted.path, exc)
            return session, converted.path
    expected = session.run(None, probe)
    got = new_session(data, optimise=False).run(None, probe)
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(expected, got))
    if worst > tolerance:
        log.warning("%s: ONNX Runtime's optimised graph differs by %.2g on the probe; not cached", converted.path, worst)
        return session, converted.path
    store_converted(optimised_name, data, converted.sha256, converted.path.parent, machine=machine_key(),
                    probe_max_diff=worst)
    return session, converted.path
