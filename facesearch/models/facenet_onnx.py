"""FaceNet (keras-facenet's InceptionResNetV1) as an ONNX graph, written from the built Keras model.

The graph computes what the Keras model computes, layer for layer, with two exact rewrites
that save memory passes: each BatchNormalization is folded into the convolution or dense
layer before it (``W * s``, ``(b - mean) * s + beta`` with ``s = 1 / sqrt(var + eps)``), and
each residual ``scaling`` Lambda into the convolution it scales. Input and output match the
Keras model: ``(N, 160, 160, 3)`` float32 prewhitened NHWC in, ``(N, 512)`` float32 unit
rows out. Any layer kind not listed here is refused, so a changed model cannot be converted
into something else silently.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from facesearch.errors import WeightsError
from facesearch.models.onnx_graph import GraphWriter
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

if TYPE_CHECKING:  # pragma: no cover
    import keras

#: Public names of the graph's input and output.
INPUT = "crops"
OUTPUT = "embeddings"


def _inputs(layer) -> list[str]:
    """Names of the layers feeding ``layer`` (functional models have one inbound node per layer)."""
    node = layer._inbound_nodes[0]
    return [t._keras_history.operation.name for t in node.input_tensors]


def _bn_factors(bn) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` with ``bn(x) == x * s + t``, float64, per channel."""
    var = np.asarray(bn.moving_variance, np.float64)
    mean = np.asarray(bn.moving_mean, np.float64)
    s = 1.0 / np.sqrt(var + bn.epsilon)
    if bn.gamma is not None:
        s = s * np.asarray(bn.gamma, np.float64)
    beta = np.asarray(bn.beta, np.float64) if bn.beta is not None else 0.0
    return s, beta - mean * s


def _lambda_kind(layer) -> str:
    return getattr(layer.function, "__name__", type(layer.function).__name__)


def facenet_to_onnx(model: "keras.Model") -> bytes:
    """The serialised ONNX model computing ``model`` (keras-facenet's InceptionResNetV1).

    Raises:
        WeightsError: the model holds a layer kind or arrangement this converter does not know.
    """
    layers = {layer.name: layer for layer in model.layers}
    consumers: dict[str, list[str]] = {name: [] for name in layers}
    for layer in model.layers:
        for src in _inputs(layer):
            consumers[src].append(layer.name)

    def only_consumer(name: str, kind: str):
        nxt = consumers[name]
        if len(nxt) == 1 and type(layers[nxt[0]]).__name__ == kind:
            return layers[nxt[0]]
        return None

    g = GraphWriter()
    tensor: dict[str, str] = {}  # Keras layer name -> ONNX tensor holding its output
    folded: set[str] = set()
    for layer in model.layers:
        kind = type(layer).__name__
        name = layer.name
        if name in folded:
            continue
        srcs = [tensor[s] for s in _inputs(layer)]
        if kind == "InputLayer":
            tensor[name] = g.transpose(INPUT, (0, 3, 1, 2), name="nhwc_to_nchw")
        elif kind in ("Conv2D", "Dense"):
            kernel = np.asarray(layer.kernel, np.float64)
            bias = np.asarray(layer.bias, np.float64) if layer.use_bias else np.zeros(kernel.shape[-1])
            last = name
            bn = only_consumer(name, "BatchNormalization")
            if bn is not None:
                s, t = _bn_factors(bn)
                kernel, bias = kernel * s, bias * s + t
                folded.add(bn.name)
                last = bn.name
            scale = only_consumer(last, "Lambda")
            if scale is not None and _lambda_kind(scale) == "scaling":
                factor = float(scale.arguments["scale"])
                kernel, bias = kernel * factor, bias * factor
                folded.add(scale.name)
                last = scale.name
            if kind == "Conv2D":
                if tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
                    raise WeightsError(f"{name}: dilated or grouped convolutions are not supported")
                out = g.conv(srcs[0], kernel, bias, name=name, strides=tuple(layer.strides), padding=layer.padding)
            else:
                out = g.dense(srcs[0], kernel, bias, name=name)
            activation = layer.get_config().get("activation", "linear")
            if activation == "relu":
                out = g.relu(out, name=name + ".relu")
            elif activation != "linear":
                raise WeightsError(f"{name}: activation {activation!r} is not supported")
            tensor[name] = tensor[last] = out
        elif kind == "BatchNormalization":
            s, t = _bn_factors(layer)
            scaled = g.node("Mul", [srcs[0], g.constant(name + ".s", s.reshape(-1, 1, 1))], name)
            tensor[name] = g.node("Add", [scaled, g.constant(name + ".t", t.reshape(-1, 1, 1))], name + ".add")
        elif kind == "Activation":
            activation = layer.get_config()["activation"]
            if activation != "relu":
                raise WeightsError(f"{name}: activation {activation!r} is not supported")
            tensor[name] = g.relu(srcs[0], name=name)
        elif kind == "MaxPooling2D":
            if layer.pool_size[0] != layer.pool_size[1] or layer.strides[0] != layer.strides[1]:
                raise WeightsError(f"{name}: only square pooling is supported")
            tensor[name] = g.maxpool(srcs[0], layer.pool_size[0], layer.strides[0], name=name, padding=layer.padding)
        elif kind == "Concatenate":
            if layer.axis not in (-1, 3):
                raise WeightsError(f"{name}: only channel concatenation is supported")
            tensor[name] = g.concat(srcs, name=name)
        elif kind == "Add":
            out = srcs[0]
            for other in srcs[1:]:
                out = g.add(out, other, name=name)
            tensor[name] = out
        elif kind == "Lambda" and _lambda_kind(layer) == "scaling":
            factor = np.asarray(float(layer.arguments["scale"]), np.float32)
            tensor[name] = g.node("Mul", [srcs[0], g.constant(name + ".scale", factor)], name)
        elif kind == "Lambda" and _lambda_kind(layer) == "l2_normalize":
            tensor[name] = g.node("LpNormalization", [srcs[0]], name, axis=1, p=2)
        elif kind == "GlobalAveragePooling2D":
            tensor[name] = g.global_average(srcs[0], name=name)
        elif kind == "Dropout":  # inference: identity
            tensor[name] = srcs[0]
        else:
            raise WeightsError(f"{name}: layer kind {kind} is not supported by the ONNX conversion")
    final = tensor[model.layers[-1].name]
    return g.write([(INPUT, ["batch", None, None, 3])], [(final, OUTPUT, ["batch", model.output_shape[-1]])], graph_name="facenet")
