"""Test helpers shipped with haq: oracles with known optima and the strategy conformance suite."""

from haq.testing._oracles import brute_force_choice, random_score_and_costs

__all__ = ["brute_force_choice", "random_score_and_costs"]
