"""OHQ: on-chip hardware-aware quantization (MQE sensitivity + ILP); the shared one-shot base."""

from haq.search.ohq._mqe import Sensitivity, kl_from_logits, mqe_sensitivity, score_table
from haq.search.ohq._oneshot import ScoreIlpStrategy, problem_constraints
from haq.search.ohq._strategy import OhqStrategy
from haq.search.ohq._synthetic import bn_matched_inputs, gaussian_inputs, synthetic_inputs

__all__ = [
    "OhqStrategy", "ScoreIlpStrategy", "Sensitivity", "bn_matched_inputs", "gaussian_inputs",
    "kl_from_logits", "mqe_sensitivity", "problem_constraints", "score_table",
    "synthetic_inputs",
]
