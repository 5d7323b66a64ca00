"""The last stage of the flow: quantized model + policy -> a file a runtime executes.

``export(model, policy, format, path)`` writes one of the registered formats:

* ``onnx``: standard ONNX with QuantizeLinear/DequantizeLinear (ONNX Runtime),
* ``qonnx``: the QONNX dialect's arbitrary-precision ``Quant`` operator (FINN, hls4ml),
* ``packed``: bit-packed integer weights + scales in safetensors (``load_packed`` reads it).

``check_parity(path, quantized_model, loader)`` runs the file in its runtime beside haq's own
quantized model and reports top-1 agreement, both accuracies and the largest logit difference.
ONNX formats need the ``haq[export]`` extra (onnx, onnxruntime, qonnx, safetensors).
"""

from haq.export._api import export
from haq.export._codes import ActGrid, LayerCodes, WeightCodes, read_layers
from haq.export._packed import load_packed, pack_bits, packed_bytes, size_breakdown, unpack_bits
from haq.export._parity import ParityReport, check_parity, detect_format
from haq.export._registry import (
    ExportFormat,
    ExportJob,
    available_formats,
    get_format,
    register_format,
)

__all__ = [
    "ActGrid",
    "ExportFormat",
    "ExportJob",
    "LayerCodes",
    "ParityReport",
    "WeightCodes",
    "available_formats",
    "check_parity",
    "detect_format",
    "export",
    "get_format",
    "load_packed",
    "pack_bits",
    "packed_bytes",
    "read_layers",
    "register_format",
    "size_breakdown",
    "unpack_bits",
]


def _make_callable() -> None:
    """Let ``haq.export(...)`` call ``export`` even after this package is imported.

    Importing ``haq.export`` binds the package as the attribute ``export`` of ``haq``, which
    would shadow the function that ``haq.export`` names lazily; a callable module keeps both.
    """
    import sys
    import types

    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return export(*args, **kwargs)

    sys.modules[__name__].__class__ = _CallableModule


_make_callable()
