"""A small ONNX graph writer for the layers facesearch's networks use.

FaceNet and MTCNN are converted once from their own weights into ONNX files that ONNX Runtime
runs (see :mod:`facesearch.models.facenet_onnx`, :mod:`facesearch.models.mtcnn_onnx`). Both
are plain convolutional networks, so a handful of node kinds covers them. Tensors are NCHW,
as ONNX convolutions expect; Keras weights (HWIO kernels, NHWC tensors) are rearranged here.

The ``onnx`` package takes over a second to import, so it is imported only when a graph is
written, which happens once per model and machine.
"""
from __future__ import annotations

from typing import Sequence

from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")

#: ONNX operator set the graphs are written for (ONNX Runtime 1.16+ runs it).
OPSET = 17


class GraphWriter:
    """Collects nodes and constant weights, then writes one ONNX model.

    Every method takes input tensor names and returns the name of its output tensor. Names are
    generated from ``name`` so that a failing node can be traced back to its layer.
    """

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: dict[str, np.ndarray] = {}
        self._count = 0

    def _name(self, name: str) -> str:
        self._count += 1
        return f"{name}:{self._count}"

    def constant(self, name: str, value: np.ndarray) -> str:
        """A constant tensor (float32 unless it is an integer array)."""
        value = np.asarray(value)
        if value.dtype.kind == "f":
            value = value.astype(np.float32)
        key = self._name(name)
        self.initializers[key] = value
        return key

    def node(self, op: str, inputs: Sequence[str], name: str, **attrs) -> str:
        out = self._name(name)
        self.nodes.append((op, list(inputs), out, name, attrs))
        return out

    # --- layers --------------------------------------------------------------------------

    def conv(self, x: str, kernel_hwio: np.ndarray, bias: np.ndarray | None, *, name: str,
             strides: tuple[int, int] = (1, 1), padding: str = "valid") -> str:
        """2-D convolution with a Keras ``(kh, kw, in, out)`` kernel; ``padding`` "valid" or "same"
        (TensorFlow's "same": any odd padding goes after, which is ONNX's SAME_UPPER)."""
        kernel = np.ascontiguousarray(np.transpose(kernel_hwio, (3, 2, 0, 1)))
        inputs = [x, self.constant(name + ".W", kernel)]
        if bias is not None:
            inputs.append(self.constant(name + ".B", bias))
        kh, kw = kernel.shape[2:]
        attrs = {"kernel_shape": [kh, kw], "strides": list(strides)}
        if padding == "same" and (kh > 1 or kw > 1):
            attrs["auto_pad"] = "SAME_UPPER"
        return self.node("Conv", inputs, name, **attrs)

    def prelu(self, x: str, alpha: np.ndarray, *, name: str, spatial: bool = True) -> str:
        """Parametric ReLU with one slope per channel (Keras ``shared_axes=[1, 2]`` when ``spatial``)."""
        slope = np.asarray(alpha, np.float32).reshape(-1)
        if spatial:
            slope = slope.reshape(-1, 1, 1)
        return self.node("PRelu", [x, self.constant(name + ".slope", slope)], name)

    def relu(self, x: str, *, name: str) -> str:
        return self.node("Relu", [x], name)

    def maxpool(self, x: str, size: int, stride: int, *, name: str, padding: str = "valid") -> str:
        """Max pooling; "same" pads like TensorFlow (padded cells never win)."""
        attrs = {"kernel_shape": [size, size], "strides": [stride, stride]}
        if padding == "same":
            attrs["auto_pad"] = "SAME_UPPER"
        return self.node("MaxPool", [x], name, **attrs)

    def add(self, a: str, b: str, *, name: str) -> str:
        return self.node("Add", [a, b], name)

    def concat(self, xs: Sequence[str], *, name: str) -> str:
        """Concatenation along channels."""
        return self.node("Concat", xs, name, axis=1)

    def global_average(self, x: str, *, name: str) -> str:
        """Mean over height and width: (N, C, H, W) -> (N, C)."""
        pooled = self.node("GlobalAveragePool", [x], name)
        return self.node("Flatten", [pooled], name + ".flatten", axis=1)

    def dense(self, x: str, kernel: np.ndarray, bias: np.ndarray | None, *, name: str) -> str:
        """``x @ kernel + bias`` with a Keras ``(in, out)`` kernel."""
        inputs = [x, self.constant(name + ".W", kernel)]
        if bias is not None:
            inputs.append(self.constant(name + ".B", bias))
        return self.node("Gemm", inputs, name)

    def softmax(self, x: str, axis: int, *, name: str) -> str:
        return self.node("Softmax", [x], name, axis=axis)

    def transpose(self, x: str, perm: Sequence[int], *, name: str) -> str:
        return self.node("Transpose", [x], name, perm=list(perm))

    def flatten(self, x: str, *, name: str) -> str:
        return self.node("Flatten", [x], name, axis=1)

    # --- output --------------------------------------------------------------------------

    def write(self, inputs: Sequence[tuple[str, Sequence[int | str | None]]],
              outputs: Sequence[tuple[str, str, Sequence[int | str | None]]], *, graph_name: str) -> bytes:
        """The serialised ONNX model.

        Args:
            inputs: ``(tensor name, shape)`` pairs, float32; a ``str`` or ``None`` dimension is dynamic.
            outputs: ``(tensor name, public name, shape)``: each tensor is exposed under the public name.
        """
        import onnx  # deferred: a second to import, needed only when a model is converted
        from onnx import TensorProto, helper, numpy_helper

        nodes = [helper.make_node(op, ins, [out], name=name, **attrs) for op, ins, out, name, attrs in self.nodes]
        graph_outputs = []
        for tensor, public, shape in outputs:
            nodes.append(helper.make_node("Identity", [tensor], [public], name=public))
            graph_outputs.append(helper.make_tensor_value_info(public, TensorProto.FLOAT, list(shape)))
        graph_inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)) for name, shape in inputs]
        inits = [numpy_helper.from_array(value, key) for key, value in self.initializers.items()]
        graph = helper.make_graph(nodes, graph_name, graph_inputs, graph_outputs, initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="facesearch")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model.SerializeToString()
