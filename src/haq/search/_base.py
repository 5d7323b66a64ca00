"""What every search strategy sees and returns. Strategies differ only in how they pick policies.

A strategy receives a ``SearchProblem`` (specs, cost table, budgets, the allowed ``BitSpace``, an
``evaluate`` callable that scores a policy on held-out data) and returns a ``SearchResult``.
Episodic strategies (HAQ, random) call ``evaluate`` many times and journal every episode;
one-shot strategies (uniform, OHQ, HAWQ) call it once or not at all; training-based ones (HGQ)
train the model themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from haq.errors import StrategyError
from haq.policy import BitSpace, Policy
from haq.registry import Registry
from haq.specs import LayerSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

    from haq.cost import Budget, CostTable
    from haq.executors import Executor
    from haq.metrics import Metric
    from haq.quantize import QuantConfig


@dataclass
class EvalResult:
    """Score of one policy on held-out data, and how long it took.

    ``accuracy`` is the problem's metric as a score, higher is better: top-1 in percent by
    default, the metric's value for a ``"max"`` metric, minus its value for a ``"min"`` one
    (``problem.metric.from_score`` gives the value back).
    """

    accuracy: float
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


Evaluate = Callable[[Policy], EvalResult]
Progress = Callable[[dict[str, Any]], None]


@dataclass
class SearchProblem:
    """Everything a strategy may use. Strategies never mutate ``model``.

    Attributes:
        specs: quantizable layers in execution order.
        table: per-layer cost of every (w_bits, a_bits) pair.
        budgets: every budget the result must meet (already resolved against ``table``).
        space: allowed bits and pinned layers.
        evaluate: quantize + short recovery + score on the held-out split; ``None`` in
            cost-only problems (tests, oracles).
        float_accuracy: held-out score of the float model (see ``EvalResult``), the reward
            baseline.
        model: the float reference model (sensitivity-based and training-based strategies).
        calibration: a few input batches (sensitivity, calibration); never the held-out split.
        train_data: training batches (x, y) for training-based strategies such as HGQ.
        heldout: the whole held-out split (re-scoring the best policies after recovery);
            ``evaluate`` may score only part of it.
        provenance: JSON-able facts about where the problem came from (model, dataset, cost
            model + parameters, ``table_hash``); run journals and result policies record it.
        quant_config: the quantizer ``evaluate`` uses; re-scoring and the final test score
            quantize the same way (``QuantConfig()`` when ``None``).
        metric: what ``evaluate``, re-scoring and the final test score measure
            (``haq.metrics.Metric``; top-1 when ``None``).
        executor: where batches of independent jobs run (episodes, probes); ``None`` runs
            them in this process one at a time. Its ``workers`` is the episode loop's batch.
    """

    specs: Sequence[LayerSpec]
    table: CostTable
    budgets: Sequence[Budget]
    space: BitSpace = field(default_factory=BitSpace)
    evaluate: Evaluate | None = None
    float_accuracy: float | None = None
    model: nn.Module | None = None
    calibration: Sequence[torch.Tensor] | None = None
    train_data: Any = None
    heldout: Any = None
    provenance: dict[str, Any] = field(default_factory=dict)
    quant_config: QuantConfig | None = None
    metric: Metric | None = None
    executor: Executor | None = None


@dataclass
class SearchResult:
    """What a strategy found. ``history`` holds one dict per evaluated policy (journal records)."""

    best: Policy
    best_accuracy: float | None
    costs: dict[str, float]
    evaluations: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC):
    """Base class of search strategies; subclasses register with ``@register_strategy``."""

    name: ClassVar[str] = ""
    # the settings every search front end may pass that this strategy takes: "episodes" (it
    # runs that many evaluated episodes) and "preset" (haq.search's preset names its defaults)
    takes: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def run(self, problem: SearchProblem, *, seed: int = 0, run_dir: Path | None = None,
            resume: bool = False, progress: Progress | None = None) -> SearchResult:
        """Search and return the best feasible policy.

        Args:
            seed: every random choice derives from it; same seed, same result.
            run_dir: where to journal episodes and checkpoint state; ``None`` keeps it in memory.
            resume: continue the run found in ``run_dir`` instead of refusing to overwrite it.
            progress: called after each evaluation with a small dict (episode, reward, best...);
                the CLI renders it, the library never prints.
        """


def _load_builtins() -> None:
    from haq.search import _load_builtin_strategies

    _load_builtin_strategies()


STRATEGIES: Registry[type[Strategy]] = Registry("strategy", StrategyError, _load_builtins)


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: make a strategy available to ``haq.search(..., strategy=name)``."""

    def decorate(cls: type[Strategy]) -> type[Strategy]:
        STRATEGIES.add(name, cls)
        cls.name = name
        return cls

    return decorate


def get_strategy(name: str, **params: Any) -> Strategy:
    """Instantiate a registered strategy by name with its keyword parameters."""
    cls = STRATEGIES.get(name)
    try:
        return cls(**params)
    except TypeError as err:
        raise StrategyError(f"strategy {name!r} does not take these parameters: {err}") from err


# what ``haq search`` runs when no strategy is named: the best on the post-training
# leaderboard (docs/benchmarks.md#leaderboard), and seconds where the agent takes minutes.
# ``haq`` stays the paper's DDPG agent.
DEFAULT_STRATEGY = "ohq"


def strategies_taking(setting: str) -> list[str]:
    """Names of the registered strategies that take ``setting`` (see ``Strategy.takes``)."""
    return [name for name in STRATEGIES.names() if setting in STRATEGIES.get(name).takes]


def available_strategies() -> list[str]:
    """Names of every registered strategy, sorted."""
    return STRATEGIES.names()
