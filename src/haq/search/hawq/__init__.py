"""HAWQ-V3-style baseline: Hutchinson Hessian traces x quantization perturbation + ILP."""

from haq.search.hawq._hessian import HessianTraces, hutchinson_traces
from haq.search.hawq._strategy import HawqStrategy, perturbations

__all__ = ["HawqStrategy", "HessianTraces", "hutchinson_traces", "perturbations"]
