"""HGQ: gradient-trained fixed-point bit widths (Sun et al., arXiv 2405.00645) in PyTorch."""

from haq.search.hgq._layers import HgqLayer, reference_ebops, total_ebops, wrap_model
from haq.search.hgq._quantizer import (
    FixedPointQuantizer,
    exact_weight_widths,
    fixed_quantize,
    weight_widths,
)
from haq.search.hgq._strategy import HgqStrategy

__all__ = [
    "FixedPointQuantizer", "HgqLayer", "HgqStrategy", "exact_weight_widths", "fixed_quantize",
    "reference_ebops", "total_ebops", "weight_widths", "wrap_model",
]
