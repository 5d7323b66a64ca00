"""Stage 1 of the flow: model + example input -> list[LayerSpec] in execution order."""

from haq.specs._spec import LayerKind, LayerSpec
from haq.specs._trace import QUANTIZABLE, extract_specs

__all__ = ["QUANTIZABLE", "LayerKind", "LayerSpec", "extract_specs"]
