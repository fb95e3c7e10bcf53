"""MTCNN's three networks as ONNX graphs, written from the weights inside the ``mtcnn`` wheel.

The ``mtcnn`` package (1.0) ships P-Net, R-Net and O-Net weights as joblib files of Keras
weight arrays (``mtcnn/assets/weights/{pnet,rnet,onet}.lz4``). They are read here without
importing the package (which would import TensorFlow), rebuilt layer for layer as the
package's Keras networks define them (:mod:`mtcnn.network`), and written once into the model
cache with their sha256 (:mod:`facesearch.models.converted`), keyed by the sha256 of the three
weight files, so a new ``mtcnn`` release converts again.

Inputs are NHWC float32 images already normalised ``(x - 127.5) / 128``, as the package feeds
them. Outputs are NCHW for P-Net (``reg`` (N, 4, h, w), ``prob`` (N, 2, h, w)) and (N, k) rows
for R-Net (``reg``, ``prob``) and O-Net (``reg``, ``landmarks``, ``prob``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

from facesearch.errors import WeightsError
from facesearch.models.converted import load_converted, store_converted
from facesearch.models.onnx_graph import GraphWriter
from facesearch.models.onnx_session import new_session

NETWORKS = ("pnet", "rnet", "onet")
#: Bumped when the graphs written here change, so cached files from older code are replaced.
GRAPH_VERSION = 1

_SESSIONS: dict[str, dict[str, object]] = {}
_LOCK = threading.Lock()


def weights_folder() -> Path:
    """The ``mtcnn`` wheel's weights folder, found without importing the package."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("mtcnn: package not installed (pip install mtcnn)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights"
    missing = [n for n in NETWORKS if not (folder / f"{n}.lz4").is_file()]
    if missing:
        raise WeightsError(f"{folder}: mtcnn weights missing: {', '.join(missing)}")
    return folder


def weights_sha256(folder: Path | None = None) -> str:
    """One sha256 over the three weight files (and :data:`GRAPH_VERSION`): the graphs' source."""
    folder = folder or weights_folder()
    h = hashlib.sha256(f"mtcnn-onnx-{GRAPH_VERSION}".encode())
    for name in NETWORKS:
        h.update(hashlib.sha256((folder / f"{name}.lz4").read_bytes()).digest())
    return h.hexdigest()


def _arrays(folder: Path, name: str) -> list[np.ndarray]:
    import joblib  # deferred: only a conversion reads the wheel's joblib files

    try:
        return [np.asarray(a, np.float32) for a in joblib.load(folder / f"{name}.lz4")]
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a weights problem
        raise WeightsError(f"{folder / (name + '.lz4')}: cannot read mtcnn weights: {exc}") from exc


def _nhwc_input(g: GraphWriter) -> str:
    return g.transpose("images", (0, 3, 1, 2), name="nhwc_to_nchw")


def pnet_graph(w: list[np.ndarray]) -> bytes:
    """P-Net: 3x3 conv 10, PReLU, 2x2 max pool (same), 3x3 conv 16, PReLU, 3x3 conv 32, PReLU,
    then 1x1 convs to the box regression (4) and face softmax (2)."""
    g = GraphWriter()
    x = _nhwc_input(g)
    x = g.prelu(g.conv(x, w[0], w[1], name="conv1"), w[2], name="prelu1")
    x = g.maxpool(x, 2, 2, name="pool1", padding="same")
    x = g.prelu(g.conv(x, w[3], w[4], name="conv2"), w[5], name="prelu2")
    x = g.prelu(g.conv(x, w[6], w[7], name="conv3"), w[8], name="prelu3")
    reg = g.conv(x, w[9], w[10], name="conv4_1")
    prob = g.softmax(g.conv(x, w[11], w[12], name="conv4_2"), 1, name="softmax")
    return g.write([("images", ["batch", "height", "width", 3])],
                   [(reg, "reg", ["batch", 4, "h", "w"]), (prob, "prob", ["batch", 2, "h", "w"])], graph_name="pnet")


def _flatten_like_keras(g: GraphWriter, x: str) -> str:
    # The package permutes NHWC to (N, W, H, C) before flattening; from NCHW that is (0, 3, 2, 1).
    return g.flatten(g.transpose(x, (0, 3, 2, 1), name="permute"), name="flatten")


def rnet_graph(w: list[np.ndarray]) -> bytes:
    """R-Net on 24x24 patches: three conv + PReLU (+ pools), a 128-unit dense layer, and heads."""
    g = GraphWriter()
    x = _nhwc_input(g)
    x = g.prelu(g.conv(x, w[0], w[1], name="conv1"), w[2], name="prelu1")
    x = g.maxpool(x, 3, 2, name="pool1", padding="same")
    x = g.prelu(g.conv(x, w[3], w[4], name="conv2"), w[5], name="prelu2")
    x = g.maxpool(x, 3, 2, name="pool2")
    x = g.prelu(g.conv(x, w[6], w[7], name="conv3"), w[8], name="prelu3")
    x = g.prelu(g.dense(_flatten_like_keras(g, x), w[9], w[10], name="fc4"), w[11], name="prelu4", spatial=False)
    reg = g.dense(x, w[12], w[13], name="fc5_1")
    prob = g.softmax(g.dense(x, w[14], w[15], name="fc5_2"), 1, name="softmax")
    return g.write([("images", ["batch", 24, 24, 3])], [(reg, "reg", ["batch", 4]), (prob, "prob", ["batch", 2])],
                   graph_name="rnet")


def onet_graph(w: list[np.ndarray]) -> bytes:
    """O-Net on 48x48 patches: four conv + PReLU (+ pools), a 256-unit dense layer, three heads."""
    g = GraphWriter()
    x = _nhwc_input(g)
    x = g.prelu(g.conv(x, w[0], w[1], name="conv1"), w[2], name="prelu1")
    x = g.maxpool(x, 3, 2, name="pool1", padding="same")
    x = g.prelu(g.conv(x, w[3], w[4], name="conv2"), w[5], name="prelu2")
    x = g.maxpool(x, 3, 2, name="pool2")
    x = g.prelu(g.conv(x, w[6], w[7], name="conv3"), w[8], name="prelu3")
    x = g.maxpool(x, 2, 2, name="pool3", padding="same")
    x = g.prelu(g.conv(x, w[9], w[10], name="conv4"), w[11], name="prelu4")
    x = g.prelu(g.dense(_flatten_like_keras(g, x), w[12], w[13], name="fc5"), w[14], name="prelu5", spatial=False)
    reg = g.dense(x, w[15], w[16], name="fc6_1")
    marks = g.dense(x, w[17], w[18], name="fc6_2")
    prob = g.softmax(g.dense(x, w[19], w[20], name="fc6_3"), 1, name="softmax")
    return g.write([("images", ["batch", 48, 48, 3])],
                   [(reg, "reg", ["batch", 4]), (marks, "landmarks", ["batch", 10]), (prob, "prob", ["batch", 2])],
                   graph_name="onet")


_BUILDERS = {"pnet": pnet_graph, "rnet": rnet_graph, "onet": onet_graph}


def filename(network: str, source_sha256: str) -> str:
    """A converted network's file name in the model cache."""
    return f"mtcnn-{network}-{source_sha256[:16]}.onnx"


def mtcnn_sessions(runtime: str = "openvino") -> dict[str, object]:
    """The networks ``{"pnet", "rnet", "onet"}`` ready to run, converted on first use, loaded once
    per process and runtime: ``"openvino"`` (:class:`~facesearch.models.openvino_model.OpenVinoModel`,
    P-Net compiled per recurring pyramid level, one thread each: these networks' convolutions are
    too small to gain from a second core, and on a busy machine its threads only wait for
    one; docs/benchmarks.md) or ``"onnx"`` (ONNX Runtime sessions).

    Raises:
        WeightsError: the ``mtcnn`` package or its weights are missing or unreadable.
    """
    if runtime not in ("openvino", "onnx"):
        raise ValueError(f"unknown runtime {runtime!r} for the converted MTCNN; choose openvino or onnx")
    with _LOCK:
        if runtime in _SESSIONS:
            return dict(_SESSIONS[runtime])
        folder = weights_folder()
        source = weights_sha256(folder)
        sessions = {}
        for network in NETWORKS:
            name = filename(network, source)
            converted = load_converted(name, source)
            if converted is None:
                data = _BUILDERS[network](_arrays(folder, network))
                converted = store_converted(name, data, source, weights=str(folder / f"{network}.lz4"))
            if runtime == "openvino":
                from facesearch.models.openvino_model import OpenVinoModel

                sessions[network] = OpenVinoModel(converted.data, per_shape=network == "pnet",
                                                  bucket_batches=network != "pnet", threads=1)
            else:
                sessions[network] = new_session(converted.data)
        _SESSIONS[runtime] = sessions
        return dict(sessions)
