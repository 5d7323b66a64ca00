"""Stage 5 of the flow: policy -> fake-quantized model.

``apply_policy_(model, policy, calibration_data)`` wraps every layer the policy names in a
fake-quant wrapper (``QuantConv1d`` / ``QuantConv2d`` / ``QuantLinear``), calibrates input
activation ranges once, and sets the bits. A search then calls ``set_policy_`` per episode,
which reuses the calibration statistics and a per-(layer, bits) cache of quantized weights.
``strip_`` turns the model back into plain float layers. ``QuantConfig`` says how: per-channel
or per-tensor linear weights or k-means weights, and the clip rule (max, MSE, KL, percentile);
by default batch norm is folded into the layer before it (``fold_batchnorm_``) when the model
is calibrated, and each layer's bias is corrected for its weight quantization error
(``QuantModule.effective_bias``), then, per policy, for the mean shift that the quantized
layers before it leave (sequential correction); ``rounding="learned"`` learns each weight's
rounding.
"""

from haq.quantize._act import ActQuantizer
from haq.quantize._apply import (
    DEFAULT_CALIBRATION_BATCHES,
    apply_policy_,
    calibrate_,
    prepare_,
    quantized_layers,
    set_policy_,
    strip_,
)
from haq.quantize._config import QuantConfig
from haq.quantize._fold import (
    FoldReport,
    absorb_affine_,
    find_foldable,
    fold_batchnorm_,
    is_folded,
    scales_exactly,
)
from haq.quantize._grid import fake_quant, sqnr_db
from haq.quantize._integer import IntegerView
from haq.quantize._modules import (
    QuantConv1d,
    QuantConv2d,
    QuantLinear,
    QuantModule,
)
from haq.quantize._weight import KMeansWeightQuantizer, LinearWeightQuantizer, WeightQuantizer

__all__ = [
    "DEFAULT_CALIBRATION_BATCHES",
    "ActQuantizer",
    "FoldReport",
    "IntegerView",
    "KMeansWeightQuantizer",
    "LinearWeightQuantizer",
    "QuantConfig",
    "QuantConv1d",
    "QuantConv2d",
    "QuantLinear",
    "QuantModule",
    "WeightQuantizer",
    "absorb_affine_",
    "apply_policy_",
    "calibrate_",
    "fake_quant",
    "find_foldable",
    "fold_batchnorm_",
    "is_folded",
    "prepare_",
    "quantized_layers",
    "scales_exactly",
    "set_policy_",
    "sqnr_db",
    "strip_",
]
