"""``onnx``: standard ONNX (opset 21) with QuantizeLinear/DequantizeLinear, for ONNX Runtime.

One quantized layer becomes, by default (the arithmetic haq computes, bit for bit)::

    x (float) -> QuantizeLinear(step, zp=0) -> [Clip(lo, hi)] -> Cast(float) --> Conv/Gemm (no bias)
    codes (int8/int4 initializer) -> DequantizeLinear(scale 1) ----------------^      |
                                              Mul(scale[c] = step * weight step[c]) -> Add(bias)

Activations use 8-bit containers (uint8 for unsigned grids, int8 for signed ones); the Clip
keeps a narrower width exact (e.g. 5 bits: codes 0..31 in a uint8) and makes a signed grid
symmetric ([-n, n], haq never uses the code -2^(b-1)). Weights of 4 bits or fewer are int4,
wider ones int8. k-means weights are a lookup (Gather) of the codebook on its integer grid. The
Conv/Gemm sums integer products, which float32 holds exactly, so the result does not depend on
ONNX Runtime's summation order. ``integer_kernels`` instead writes each layer with an integer
weight as a standard QDQ group (DequantizeLinear on both operands, float bias in the node), which
ONNX Runtime may fuse into integer kernels (see ``_fused``). The 1-bit binary activation grid
{-c, +c} is a sign function, which QuantizeLinear cannot express; such a layer is refused (use
``qonnx`` or ``packed``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

from haq.errors import ExportError
from haq.export._codes import ActGrid, LayerCodes, WeightCodes
from haq.export._graph import INPUT, Rewrite, always_exact, initializer, quantize_graph
from haq.export._registry import ExportJob, Runner, register_format


@register_format("onnx", suffix=".onnx", description="standard ONNX (opset 21) with "
                 "QuantizeLinear/DequantizeLinear; runs in ONNX Runtime")
class OnnxQDQ:
    @staticmethod
    def write(job: ExportJob) -> bytes:
        rule = (lambda codes: not _fused(codes)) if job.integer_kernels else always_exact
        data = quantize_graph(job, "onnx", _act_edge, _weight_edge, exact=rule)
        check_model(data)
        return data

    @staticmethod
    def load(path: Path, reference: nn.Module) -> Runner:
        return ort_runner(path)


def ort_runner(path: Path, threads: int | None = None) -> Runner:
    """Run an ONNX file in ONNX Runtime's CPU provider (``threads`` intra-op threads)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {INPUT: x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)

    return run


def _act_edge(codes: LayerCodes, grid: ActGrid, source: str, exact: bool) -> Rewrite:
    if grid.binary:
        raise ExportError(f"layer {codes.name!r}: a 1-bit signed input (the binary grid "
                          "{-c, +c}) is a sign function that ONNX QuantizeLinear cannot express; "
                          "give the layer a_bits >= 2, or export --format qonnx or packed")
    base = f"{codes.name}.input_quant"
    dtype, (lo, hi) = ((TensorProto.INT8, (-128, 127)) if grid.signed
                       else (TensorProto.UINT8, (0, 255)))
    scale, zero = f"{base}.scale", f"{base}.zero_point"
    tensors = [initializer(scale, np.float32(grid.step)), initializer(zero, np.zeros(()), dtype)]
    nodes = [helper.make_node("QuantizeLinear", [source, scale, zero], [f"{base}.q"],
                              name=f"{base}/Quantize")]
    last = f"{base}.q"
    if (grid.low, grid.n) != (lo, hi):
        low, high = f"{base}.low", f"{base}.high"
        tensors += [initializer(low, np.array(grid.low), dtype),
                    initializer(high, np.array(grid.n), dtype)]
        nodes.append(helper.make_node("Clip", [last, low, high], [f"{base}.clipped"],
                                      name=f"{base}/Clip"))
        last = f"{base}.clipped"
    if exact:  # the integer codes themselves, as float
        nodes.append(helper.make_node("Cast", [last], [f"{base}.codes"], to=TensorProto.FLOAT,
                                      name=f"{base}/Cast"))
        return nodes, tensors, f"{base}.codes"
    nodes.append(helper.make_node("DequantizeLinear", [last, scale, zero], [f"{base}.dq"],
                                  name=f"{base}/Dequantize"))
    return nodes, tensors, f"{base}.dq"


def _fused(codes: LayerCodes) -> bool:
    """With ``integer_kernels``: whether the layer is written as a standard QDQ group.

    Only a layer with an integer (not k-means) weight and a quantized input: ONNX Runtime then
    may run it on an integer kernel, after rounding the float bias to int32 at ``s_in * s_w``
    (its WeightBiasQuantization pass), which haq does not simulate. Measured on batch-norm-folded
    MobileNets (every conv has a bias), W8A8: top-1 agreement with haq 99.70-99.75 % of 10,000
    test images. Every other layer keeps the exact integer form.
    """
    return codes.act is not None and codes.weight is not None and not codes.weight.kmeans


def _weight_edge(codes: LayerCodes, weight: WeightCodes, source: str, exact: bool) -> Rewrite:
    base = f"{codes.name}.weight_quant"
    if weight.codebook is not None:
        return _codebook_lookup(base, weight.integer_codebook(), weight.codes)
    dtype = TensorProto.INT4 if weight.bits <= 4 else TensorProto.INT8
    if exact:  # the integer codes (DequantizeLinear with scale 1 widens them to float)
        scale = np.ones((), np.float32)
    else:
        scale = weight.step if weight.per_channel else weight.step.reshape(())
    names = {k: f"{base}.{k}" for k in ("codes", "scale", "zero_point", "dq")}
    tensors = [initializer(names["codes"], weight.codes.astype(np.int8), dtype),
               initializer(names["scale"], scale),
               initializer(names["zero_point"], np.zeros(scale.shape, np.int8), dtype)]
    attrs = {"axis": 0} if scale.ndim else {}
    node = helper.make_node("DequantizeLinear", [names["codes"], names["scale"],
                                                 names["zero_point"]], [names["dq"]],
                            name=f"{base}/Dequantize", **attrs)
    return [node], tensors, names["dq"]


def _codebook_lookup(base: str, codebook: np.ndarray, labels: np.ndarray) -> Rewrite:
    """k-means weight as ``Gather(codebook, labels)``: 2^b integer-valued floats, a byte a label."""
    names = {k: f"{base}.{k}" for k in ("codebook", "labels", "index", "values")}
    tensors = [initializer(names["codebook"], codebook),
               initializer(names["labels"], labels.astype(np.uint8))]
    nodes = [helper.make_node("Cast", [names["labels"]], [names["index"]], to=TensorProto.INT32,
                              name=f"{base}/Cast"),
             helper.make_node("Gather", [names["codebook"], names["index"]], [names["values"]],
                              axis=0, name=f"{base}/Gather")]
    return nodes, tensors, names["values"]


def check_model(data: bytes) -> None:
    """ONNX's own checker, as a typed error (a bug in haq if it ever fires)."""
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the exported graph is not valid ONNX: {err}") from err
