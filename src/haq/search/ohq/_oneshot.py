"""One-shot "score every (layer, w, a), then solve the ILP" strategies (OHQ, HAWQ).

A subclass only says how to score; this base solves the budgeted ILP, evaluates the one policy
(if the problem has an evaluator) through the shared episode loop, and so journals and resumes
like every other strategy. The score table is kept in the run checkpoint, so a resumed run never
recomputes it, and a rerun from scratch recomputes the same table (the scoring is seeded).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from haq.data import head, loader
from haq.errors import ConfigError
from haq.policy import policy_from_bits
from haq.search._base import Progress, SearchProblem, SearchResult, Strategy
from haq.search._episodic import EpisodeLoop, Proposal
from haq.search._ilp import Choice, Constraint, solve_choice


def calibration_inputs(problem: SearchProblem) -> list[torch.Tensor]:
    """The problem's calibration batches as input tensors (labels dropped if present)."""
    out = []
    for batch in problem.calibration or []:
        x = batch if isinstance(batch, torch.Tensor) else batch[0]
        out.append(x)
    return out


def labelled_batches(data: Any, count: int, batch_size: int = 128) -> list[tuple]:
    """Up to ``count`` ``(inputs, labels)`` batches from a dataset with ``tensors`` (e.g. a
    TensorDataset: the first samples, in order), a map-style dataset, or an iterable of
    ``(x, y)`` batches."""
    if hasattr(data, "tensors") and len(data.tensors) >= 2:
        x, y = data.tensors[0], data.tensors[1]
        n = min(len(x), count * batch_size)
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]
    if isinstance(data, IterableDataset):  # a stream of samples: batch its first ones
        data = loader(head(data, count * batch_size), batch_size)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(
            data, list | tuple):
        n = min(len(data), count * batch_size)
        pairs = [data[i] for i in range(n)]
        xs = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        ys = torch.as_tensor([int(p[1]) for p in pairs])
        return [(xs[i:i + batch_size], ys[i:i + batch_size]) for i in range(0, n, batch_size)]
    out = []
    for batch in data:
        out.append((batch[0], batch[1]))
        if len(out) >= count:
            break
    return out


def problem_constraints(problem: SearchProblem) -> list[Constraint]:
    """The problem's budgets as ILP constraints (absolute limits in the table's units)."""
    out = []
    for budget in problem.budgets:
        out.append(Constraint(budget.metric, problem.table.full_array(budget.metric),
                              float(budget.resolve(problem.table)),
                              problem.table.units.get(budget.metric, "")))
    return out


def choice_bits(choice: Choice) -> tuple[np.ndarray, np.ndarray]:
    """Bit arrays (0 = float) from an ILP choice."""
    w = np.where(choice.w_index == 8, 0, choice.w_index + 1).astype(np.int64)
    a = np.where(choice.a_index == 8, 0, choice.a_index + 1).astype(np.int64)
    return w, a


class _OneShotProposer:
    """Proposes the ILP optimum once; computes the score lazily so a resumed run skips it."""

    def __init__(self, strategy: ScoreIlpStrategy, problem: SearchProblem, seed: int) -> None:
        self.strategy, self.problem, self.seed = strategy, problem, seed
        self.score: np.ndarray | None = None
        self.timing: dict[str, float] = {}
        self.choice: Choice | None = None

    def solve(self) -> Choice:
        if self.score is None:
            start = time.perf_counter()
            self.score = np.asarray(self.strategy.score(self.problem, self.seed), np.float64)
            self.timing["score_seconds"] = time.perf_counter() - start
        mask = self.problem.space.mask(self.problem.specs)
        self.choice = solve_choice(self.score, mask, problem_constraints(self.problem),
                                   time_limit=self.strategy.ilp_time_limit)
        self.timing["ilp_seconds"] = self.choice.seconds
        return self.choice

    def ask(self, episode: int) -> Proposal:
        w, a = choice_bits(self.solve())
        return Proposal(w, a, info={"phase": self.strategy.name, **self.timing})

    def tell(self, episode: int, proposal: Proposal, executed: tuple[np.ndarray, np.ndarray],
             record: dict[str, Any]) -> None:
        """One episode; nothing to learn."""

    def state_dict(self) -> dict[str, Any]:
        score = None if self.score is None else torch.from_numpy(self.score.copy())
        return {"score": score, "timing": dict(self.timing)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        score = state.get("score")
        self.score = None if score is None else score.numpy().astype(np.float64)
        self.timing = dict(state.get("timing", {}))


class ScoreIlpStrategy(Strategy):
    """Base of sensitivity + ILP strategies: subclasses implement ``score``.

    Args:
        ilp_time_limit: seconds the ILP solver may take.
    """

    def __init__(self, ilp_time_limit: float = 60.0) -> None:
        if ilp_time_limit <= 0:
            raise ConfigError(f"ilp_time_limit must be > 0 seconds, got {ilp_time_limit}")
        self.ilp_time_limit = float(ilp_time_limit)

    @abstractmethod
    def score(self, problem: SearchProblem, seed: int) -> np.ndarray:
        """``[L, 9, 9]`` score to minimise (lower = less damage), NaN where not allowed."""

    def settings(self) -> dict[str, Any]:
        """JSON-able settings compared when resuming."""
        return {"ilp_time_limit": self.ilp_time_limit}

    def run(self, problem: SearchProblem, *, seed: int = 0, run_dir: Path | None = None,
            resume: bool = False, progress: Progress | None = None) -> SearchResult:
        start = time.perf_counter()
        proposer = _OneShotProposer(self, problem, seed)
        if problem.evaluate is None:
            choice = proposer.solve()
            w, a = choice_bits(choice)
            policy = policy_from_bits(problem.specs, w, a, **{
                **problem.provenance, "strategy": self.name, "seed": seed})
            costs = problem.table.evaluate(policy)
            return SearchResult(best=policy, best_accuracy=None, costs=costs, evaluations=0,
                                seconds=time.perf_counter() - start,
                                extra=self._extra(proposer))
        loop = EpisodeLoop(problem, self.name, self.settings())
        result = loop.run(proposer, 1, seed=seed, run_dir=run_dir, resume=resume,
                          progress=progress)
        result.best.provenance.setdefault("seed", seed)
        result.extra.update(self._extra(proposer))
        return result

    @staticmethod
    def _extra(proposer: _OneShotProposer) -> dict[str, Any]:
        extra: dict[str, Any] = dict(proposer.timing)
        if proposer.score is not None:
            extra["score"] = proposer.score
        if proposer.choice is not None:
            extra["ilp_objective"] = proposer.choice.objective
            extra["ilp_optimal"] = proposer.choice.optimal
        return extra
