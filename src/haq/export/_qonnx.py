"""``qonnx``: the QONNX dialect's arbitrary-precision ``Quant`` operator (read by FINN, hls4ml).

One quantized layer becomes (the arithmetic haq computes, bit for bit)::

    x (float) -> Div(step) -> Quant(scale 1, zeropt 0, bitwidth b; signed, narrow) --> Conv/Gemm
    integer weight (float initializer) -> Quant(scale 1, bitwidth b, signed, narrow) ---^  |
                                            Mul(scale[c] = step * weight step[c]) -> Add(bias)

``Quant`` rounds half to even and clamps to the integer range of ``bitwidth`` (``narrow`` drops
the most negative code, which gives haq's symmetric signed grid); with scale 1 its output is the
integer codes, and the Conv sums integer products, exact in float32. The steps sit in the
``Div`` before and the ``Mul`` after, where FINN's streamlining moves scales anyway. The 1-bit
binary grid {-c, +c} is ``BipolarQuant`` (codes -1/+1). k-means weights have no QONNX operator
and are written as their integer codebook values (at most 2^b distinct numbers). The op type is
``Quant``, which qonnx 1.0 still reads as an alias of ``IntQuant`` and which older FINN and
hls4ml releases understand.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from onnx import helper
from torch import nn

from haq.export._codes import ActGrid, LayerCodes, WeightCodes
from haq.export._graph import INPUT, OUTPUT, Rewrite, initializer, quantize_graph
from haq.export._registry import ExportJob, Runner, register_format

DOMAIN = "qonnx.custom_op.general"


@register_format("qonnx", suffix=".onnx", description="QONNX dialect: arbitrary-precision "
                 "Quant / BipolarQuant operators (FINN, hls4ml); runs in qonnx's executor")
class Qonnx:
    @staticmethod
    def write(job: ExportJob) -> bytes:
        return quantize_graph(job, "qonnx", _act_edge, _weight_edge, {DOMAIN: 1})

    @staticmethod
    def load(path: Path, reference: nn.Module) -> Runner:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.transformation.infer_shapes import InferShapes

        shaped: dict[tuple[int, ...], ModelWrapper] = {}

        def run(x: torch.Tensor) -> torch.Tensor:
            # qonnx's executor needs every tensor shape, so fix the batch size and infer them
            # once per input shape.
            shape = tuple(x.shape)
            if shape not in shaped:
                model = ModelWrapper(str(path))
                model.set_tensor_shape(INPUT, list(shape))
                shaped[shape] = model.transform(InferShapes())
            feed = {INPUT: x.detach().cpu().numpy().astype(np.float32)}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # shape notes on the traced shape arithmetic
                out = execute_onnx(shaped[shape], feed)[OUTPUT]
            return torch.from_numpy(np.asarray(out))

        return run


def _quant_node(base: str, source: str, bits: int, signed: bool, binary: bool) -> Rewrite:
    """Integer codes of ``source`` (already divided by its step) at ``bits`` bits."""
    names = {k: f"{base}.{k}" for k in ("scale", "zeropt", "bitwidth", "out")}
    tensors = [initializer(names["scale"], np.float32(1))]
    if binary:
        node = helper.make_node("BipolarQuant", [source, names["scale"]], [names["out"]],
                                name=f"{base}/BipolarQuant", domain=DOMAIN)
        return [node], tensors, names["out"]
    tensors += [initializer(names["zeropt"], np.float32(0)),
                initializer(names["bitwidth"], np.float32(bits))]
    node = helper.make_node("Quant", [source, names["scale"], names["zeropt"], names["bitwidth"]],
                            [names["out"]], name=f"{base}/Quant", domain=DOMAIN,
                            signed=int(signed), narrow=int(signed), rounding_mode="ROUND")
    return [node], tensors, names["out"]


def _act_edge(codes: LayerCodes, grid: ActGrid, source: str, exact: bool) -> Rewrite:
    base = f"{codes.name}.input_quant"
    if grid.binary:  # the sign of x is the sign of x / step
        return _quant_node(base, source, grid.bits, grid.signed, True)
    step = f"{base}.step"
    divide = helper.make_node("Div", [source, step], [f"{base}.scaled"], name=f"{base}/Div")
    nodes, tensors, out = _quant_node(base, f"{base}.scaled", grid.bits, grid.signed, False)
    return [divide, *nodes], [initializer(step, np.float32(grid.step)), *tensors], out


def _weight_edge(codes: LayerCodes, weight: WeightCodes, source: str, exact: bool) -> Rewrite:
    base = f"{codes.name}.weight_quant"
    values = f"{base}.values"
    tensors = [initializer(values, weight.integers())]
    if weight.kmeans:
        return [], tensors, values
    nodes, more, out = _quant_node(base, values, weight.bits, True, weight.n == 0)
    return nodes, tensors + more, out
