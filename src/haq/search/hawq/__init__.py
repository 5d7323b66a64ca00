"""HAWQ-V3-style baseline: Gauss-Newton curvature traces x quantization perturbation + ILP."""

from haq.search.hawq._hessian import CurvatureTraces, gauss_newton_traces
from haq.search.hawq._strategy import HawqStrategy, curvature_score, perturbations

__all__ = ["CurvatureTraces", "HawqStrategy", "curvature_score", "gauss_newton_traces",
           "perturbations"]
