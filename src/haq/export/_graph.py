"""The float ONNX graph of a quantized model, and the surgery that makes it quantized.

The model is traced with its fake-quant wrappers removed (``strip_``), so initializer names are
``state_dict`` keys (``features.0.conv.weight``) and each quantized layer is the Conv or Gemm
node that consumes ``<layer>.weight``. A format then rewrites only the edges *into* those nodes:
the input activation (a tensor also read elsewhere, e.g. by a residual shortcut, stays float on
that other path) and the weight and bias initializers. Nodes are inserted just before their
consumer, so the graph stays topologically sorted.

By default a layer is written as haq computes it (``QuantModule.integer_view``): the Conv/Gemm
reads integer-valued input codes and integer weights and has no bias, and is followed by
``Mul(scale per output channel)`` and ``Add(bias)``. A format may instead keep the bias in the
node and dequantize both operands (``exact=False``: ONNX Runtime's fused integer kernels).
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Callable

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from haq.errors import ExportError
from haq.export._codes import ActGrid, LayerCodes, WeightCodes
from haq.export._registry import ExportJob
from haq.quantize import strip_

OPSET = 21  # first opset with int4/uint4 QuantizeLinear/DequantizeLinear
INPUT, OUTPUT = "input", "logits"

# (nodes to insert before the consumer, new initializers, name of the tensor they produce)
Rewrite = tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]
# (layer, its quantized input grid / weight, source tensor name, exact) -> rewrite of that edge;
# exact: the edge yields integer values (codes), else dequantized values
ActWriter = Callable[[LayerCodes, ActGrid, str, bool], Rewrite]
WeightWriter = Callable[[LayerCodes, WeightCodes, str, bool], Rewrite]
ExactRule = Callable[[LayerCodes], bool]


def always_exact(codes: LayerCodes) -> bool:
    return True


def float_graph(job: ExportJob) -> onnx.ModelProto:
    """Trace the model in float (wrappers stripped) with a dynamic batch axis."""
    plain = strip_(copy.deepcopy(job.model)).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(plain, (job.example_input,), buffer, dynamo=False,
                          do_constant_folding=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    return onnx.load_from_string(buffer.getvalue())


def quantize_graph(job: ExportJob, fmt: str, act_edge: ActWriter,
                   weight_edge: WeightWriter, domains: dict[str, int] | None = None,
                   exact: ExactRule = always_exact) -> bytes:
    """The float graph with every quantized layer's input and weight rewritten; serialized."""
    model = float_graph(job)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers = _layer_nodes(graph, job.layers)
    inserted: dict[int, list[onnx.NodeProto]] = {}
    appended: dict[int, list[onnx.NodeProto]] = {}
    for name, codes in job.layers.items():
        node = consumers[name]
        before = inserted.setdefault(id(node), [])
        integer = exact(codes)
        if codes.act is not None:
            nodes, tensors, out = act_edge(codes, codes.act, node.input[0], integer)
            before += nodes
            graph.initializer.extend(tensors)
            node.input[0] = out
        if codes.weight is not None:
            nodes, tensors, out = weight_edge(codes, codes.weight, node.input[1], integer)
            before += nodes
            graph.initializer.extend(tensors)
            node.input[1] = out
        if integer:
            nodes, tensors = _rescale(node, codes)
            appended[id(node)] = nodes
            graph.initializer.extend(tensors)
        elif codes.bias is not None:
            _set_bias(graph, inits, node, codes)
    new_nodes = []
    for node in graph.node:
        new_nodes += inserted.get(id(node), [])
        new_nodes.append(node)
        new_nodes += appended.get(id(node), [])
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unused(graph)
    for domain, version in (domains or {}).items():
        model.opset_import.append(helper.make_opsetid(domain, version))
    helper.set_model_props(model, {"haq.format": fmt, "haq.policy": job.policy.to_json(),
                                   "haq.quant_config": json.dumps(job.config.to_dict())})
    model.producer_name = "haq"
    return model.SerializeToString()


def initializer(name: str, values: np.ndarray | np.generic | float, dtype: int | None = None
                ) -> onnx.TensorProto:
    """An initializer; ``dtype`` (an onnx.TensorProto type) for integer containers like int4."""
    array = np.asarray(values)
    if dtype is None:
        return numpy_helper.from_array(array.astype(np.float32)
                                       if array.dtype.kind == "f" else array, name)
    return helper.make_tensor(name, dtype, list(array.shape), array.reshape(-1).tolist())


def _layer_nodes(graph: onnx.GraphProto, layers: dict[str, LayerCodes]
                 ) -> dict[str, onnx.NodeProto]:
    by_weight = {node.input[1]: node for node in graph.node
                 if node.op_type in ("Conv", "Gemm") and len(node.input) > 1}
    found = {}
    for name in layers:
        node = by_weight.get(f"{name}.weight")
        if node is None:
            raise ExportError(f"layer {name!r} did not trace to a Conv or Gemm node reading "
                              f"'{name}.weight' (a Linear on a 3-D input traces to MatMul); "
                              "keep the layer in float in the policy (null bits) or export "
                              "--format packed")
        found[name] = node
    return found


def _rescale(node: onnx.NodeProto, codes: LayerCodes
             ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Drop the node's bias; follow it by ``Mul(scale[c])`` and ``Add(bias[c])``, as haq does."""
    while len(node.input) > 2:
        del node.input[-1]
    channel = (-1,) if node.op_type == "Gemm" else (-1,) + (1,) * (codes.float_weight.ndim - 2)
    steps = [(op, values) for op, values in (("Mul", codes.scale), ("Add", codes.bias))
             if values is not None]
    result, source = node.output[0], f"{codes.name}.accumulator"
    node.output[0] = source
    nodes, tensors = [], []
    for index, (op, values) in enumerate(steps):
        constant = f"{codes.name}.output_{'scale' if op == 'Mul' else 'bias'}"
        tensors.append(initializer(constant, np.asarray(values, np.float32).reshape(channel)))
        out = result if index == len(steps) - 1 else f"{codes.name}.scaled"
        nodes.append(helper.make_node(op, [source, constant], [out], name=f"{codes.name}/{op}"))
        source = out
    if not nodes:
        node.output[0] = result
    return nodes, tensors


def _set_bias(graph: onnx.GraphProto, inits: dict[str, onnx.TensorProto],
              node: onnx.NodeProto, codes: LayerCodes) -> None:
    """The layer's effective bias (bias correction included) as the node's bias input."""
    name = node.input[2] if len(node.input) > 2 else f"{codes.name}.bias"
    tensor = numpy_helper.from_array(np.asarray(codes.bias), name)
    if name in inits:
        inits[name].CopyFrom(tensor)
    else:
        graph.initializer.append(tensor)
        node.input.append(name)


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove initializers no node reads any more (the replaced float weights)."""
    used = {name for node in graph.node for name in node.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
