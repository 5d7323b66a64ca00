"""The ``random`` strategy: uniform-random bits per operand, projected onto the budgets.

The baseline HAQ must beat: same episode count, same projection, same evaluation and reward,
no learning (it is HAQ's warm-up phase run for the whole search).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from haq.cost import PROJECTION_RULES
from haq.errors import ConfigError
from haq.search._base import Progress, SearchProblem, SearchResult, Strategy, register_strategy
from haq.search._episodic import EpisodeLoop, Proposal


class RandomProposer:
    """Independent uniform draws among each operand's candidates; state is one Generator.

    For a range of widths this draws exactly what ``rng.integers(min, max)`` draws.
    """

    def __init__(self, loop: EpisodeLoop, seed: int) -> None:
        p = loop.projector
        self.choices = [*p.w_choices, *p.a_choices]
        self.rng = np.random.default_rng(seed)

    def ask(self, episode: int) -> Proposal:
        last = np.array([len(c) - 1 for c in self.choices])
        picks = self.rng.integers(0, last, endpoint=True)
        # a single candidate (a pin, float pins included) is kept as set
        bits = np.array([c[i] for c, i in zip(self.choices, picks, strict=True)], dtype=np.int64)
        n = len(bits) // 2
        return Proposal(bits[:n], bits[n:], raw=None, info={"phase": "random"})

    def tell(self, episode: int, proposal: Proposal, executed: tuple[np.ndarray, np.ndarray],
             record: dict[str, Any]) -> None:
        """Random search learns nothing."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = json.loads(state["rng"])


@register_strategy("random")
class RandomStrategy(Strategy):
    takes = frozenset({"episodes"})

    """Random feasible policies, scored like HAQ's episodes.

    Args:
        episodes: how many policies to draw and evaluate.
        reward_scale: lambda of the reward (kept equal to HAQ's for comparable journals).
        projection: the budget projection's rule, as HAQ's (``haq.cost.Projector``).
    """

    def __init__(self, episodes: int = 300, reward_scale: float = 0.1,
                 projection: str = "widest") -> None:
        if episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {episodes}")
        if projection not in PROJECTION_RULES:
            raise ConfigError(f"projection must be one of {PROJECTION_RULES}, got {projection!r}")
        self.episodes, self.reward_scale = int(episodes), float(reward_scale)
        self.projection = projection

    def run(self, problem: SearchProblem, *, seed: int = 0, run_dir: Path | None = None,
            resume: bool = False, progress: Progress | None = None) -> SearchResult:
        settings = {"episodes": self.episodes, "projection": self.projection}
        loop = EpisodeLoop(problem, self.name, settings, reward_scale=self.reward_scale,
                           projection=self.projection)
        return loop.run(RandomProposer(loop, seed), self.episodes, seed=seed, run_dir=run_dir,
                        resume=resume, progress=progress)
