"""haq: hardware-aware mixed-precision quantization for PyTorch.

The data flow, one folder per stage::

    model + example input
      -> specs      list[LayerSpec]: every Conv/Linear in execution order (haq.specs)
      -> cost       CostModel -> CostTable [layer, w_bits, a_bits] per metric, budgets and
                    their projection (haq.cost)
      -> search     HAQ (DDPG), OHQ, HAWQ, HGQ, uniform, random propose Policies (haq.search)
      -> policy     layer -> (w_bits, a_bits), its array encoding, JSON (haq.policy)
      -> quantize   fake-quant wrappers + calibration (haq.quantize)
      -> finetune   short recovery in the search, full QAT at the end (haq.finetune)
      -> report     per-layer bit chart, curves, cost breakdown (haq.report)

``haq.runs`` is the spine beside it: an append-only journal per search, so runs resume.
Public names are imported lazily so that ``import haq`` stays fast and never touches CUDA.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "extract_specs": "haq.specs",
    "LayerSpec": "haq.specs",
    "Policy": "haq.policy",
    "LayerBits": "haq.policy",
    "BitSpace": "haq.policy",
    "Budget": "haq.cost",
    "apply_policy_": "haq.quantize",
    "evaluate": "haq.finetune",
    "finetune": "haq.finetune",
    "search": "haq.search.api",
    "HaqError": "haq.errors",
    "export": "haq.export",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


_SUBMODULES = ("data", "metrics")  # ``haq.metrics.Metric`` works after a bare ``import haq``


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"haq.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'haq' has no attribute {name!r}")
