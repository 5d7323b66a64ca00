"""The ``uniform`` strategy: the best single (w_bits, a_bits) for all free layers (PACT-style).

Candidates are the uniform pairs that meet every budget and are maximal (no feasible pair has
at least as many bits in both operands and more in one): at most one per weight width, so a
handful. All of them are evaluated by default (``top_k`` caps that at the ones with the most
bits) and the most accurate wins: the pair with the most bits is often not the best (W8A2 and
W4A4 can cost the same, and models differ in which operand they tolerate low). Without an
evaluator the one with the most bits (weights first on a tie) wins unevaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from haq.errors import BudgetInfeasibleError, ConfigError
from haq.policy import policy_from_bits
from haq.search._base import Progress, SearchProblem, SearchResult, Strategy, register_strategy
from haq.search._episodic import EpisodeLoop, Proposal


def uniform_candidates(loop: EpisodeLoop) -> list[tuple[int, int]]:
    """Feasible, maximal uniform (w, a) pairs, most bits first (0 = float activations).

    The widths tried are the free operands' candidates (every width of a range, or only the
    space's set such as {2, 4, 8}).
    """
    p = loop.projector
    w_choices = _free_choices(p.w_choices)
    a_choices = _free_choices(p.a_choices)
    feasible = []
    for wb in w_choices:
        for ab in a_choices:
            w, a = _fill(p.w_choices, wb), _fill(p.a_choices, ab)
            if (p.totals(w, a)[:, 0] <= p.limits).all():
                feasible.append((wb, ab))
    maximal = [c for c in feasible
               if not any(o != c and o[0] >= c[0] and o[1] >= c[1] for o in feasible)]
    return sorted(maximal, key=lambda c: (-(c[0] + c[1]), -c[0]))


def _free_choices(choices: list[tuple[int, ...]]) -> list[int]:
    """Every candidate of the operands that are free (more than one candidate); [0] if none."""
    free = sorted({b for c in choices if len(c) > 1 for b in c})
    return free or [0]


def _fill(choices: list[tuple[int, ...]], bits: int) -> np.ndarray:
    """``bits`` for free operands (the largest candidate <= bits, else the smallest); a pinned
    operand keeps its pin."""
    return np.array([c[0] if len(c) == 1 or not bits else
                     max((b for b in c if b <= bits), default=c[0]) for c in choices],
                    dtype=np.int64)


class UniformProposer:
    """Proposes the candidates in order; holds no random state."""

    def __init__(self, loop: EpisodeLoop, candidates: list[tuple[int, int]]) -> None:
        self.loop, self.candidates = loop, candidates

    def ask(self, episode: int) -> Proposal:
        p = self.loop.projector
        wb, ab = self.candidates[episode]
        return Proposal(_fill(p.w_choices, wb), _fill(p.a_choices, ab),
                        info={"phase": "uniform", "uniform": [wb or None, ab or None]})

    def tell(self, episode: int, proposal: Proposal, executed: tuple[np.ndarray, np.ndarray],
             record: dict[str, Any]) -> None:
        """Nothing to learn."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Stateless."""


@register_strategy("uniform")
class UniformStrategy(Strategy):
    """Best uniform bit width under the budgets: the fixed-precision (PACT) baseline.

    Args:
        top_k: evaluate only this many of the highest-bit maximal candidates (``None``: all).
        episodes: accepted for a uniform call signature; ignored (see ``top_k``).
        reward_scale: lambda of the reward recorded in the journal.
    """

    takes = frozenset({"episodes"})  # journalled episodes, one per candidate; the count is its own

    def __init__(self, top_k: int | None = None, episodes: int | None = None,
                 reward_scale: float = 0.1) -> None:
        if top_k is not None and top_k < 1:
            raise ConfigError(f"top_k must be >= 1 or None (all candidates), got {top_k}")
        self.top_k = None if top_k is None else int(top_k)
        self.reward_scale = float(reward_scale)

    def run(self, problem: SearchProblem, *, seed: int = 0, run_dir: Path | None = None,
            resume: bool = False, progress: Progress | None = None) -> SearchResult:
        loop = EpisodeLoop(problem, self.name, {"top_k": self.top_k},
                           reward_scale=self.reward_scale)
        candidates = uniform_candidates(loop)
        if not candidates:
            raise BudgetInfeasibleError(
                "no uniform bit width meets every budget (mixed precision may still fit); "
                "raise the budget or search with strategy 'haq'")
        candidates = candidates[: self.top_k]
        if problem.evaluate is None:
            return _unevaluated(loop, candidates[0])
        return loop.run(UniformProposer(loop, candidates), len(candidates), seed=seed,
                        run_dir=run_dir, resume=resume, progress=progress)


def _unevaluated(loop: EpisodeLoop, pair: tuple[int, int]) -> SearchResult:
    p = loop.projector
    w, a = _fill(p.w_choices, pair[0]), _fill(p.a_choices, pair[1])
    costs = loop.costs(w, a)
    policy = policy_from_bits(loop.problem.specs, w, a, strategy="uniform",
                              **loop.problem.provenance)
    return SearchResult(best=policy, best_accuracy=None, costs=costs, evaluations=0, seconds=0.0)
