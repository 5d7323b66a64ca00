"""What a search maximises: a metric is a function ``(model, loader) -> float``.

Top-1 accuracy in percent is the default. Any other score (top-5, a loss, mAP, the user's own
validation loop) is a plain function of the model and an iterable of ``(inputs, labels)``
batches; ``mode="min"`` says lower is better. Internally every metric is turned into a *score*
where higher is better (the value, or minus the value for ``"min"``), so the reward, the
leaderboard and every "best" comparison stay one rule: HAQ's reward
``lambda * (score_quantized - score_float)`` is, for ``"min"``, ``-lambda * (value_quantized -
value_float)``.

Example:
    >>> import torch
    >>> def mean_logit(model, loader):
    ...     return float(sum(model(x).mean() for x, _ in loader))
    >>> metric = as_metric(mean_logit, mode="min")
    >>> metric.name, metric.mode
    ('mean_logit', 'min')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from haq.errors import ConfigError
from haq.usercode import is_target, load_callable

MetricFn = Callable[[nn.Module, Iterable[Any]], float]
MODES = ("max", "min")


@dataclass(frozen=True)
class Metric:
    """A named score of a model on a loader.

    Attributes:
        fn: ``(model, loader) -> float``; called in eval mode under ``torch.no_grad()``
            (the model's mode is restored afterwards).
        name: how runs, reports and ``result.json`` name it.
        mode: ``"max"`` (higher is better) or ``"min"``.
        unit: appended to values in text (``"%"`` for top-1).
    """

    fn: MetricFn
    name: str
    mode: str = "max"
    unit: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"metric mode must be max or min, got {self.mode!r}")
        if not callable(self.fn):
            raise ConfigError(f"a metric must be a function (model, loader) -> float, got "
                              f"{type(self.fn).__name__}")

    def value(self, model: nn.Module, batches: Iterable[Any]) -> float:
        """The metric of ``model`` on ``batches``, as the function returns it.

        Raises:
            ConfigError: the function returned something that is not a finite number.
        """
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = self.fn(model, batches)
        finally:
            model.train(was_training)
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            out = out.item()
        if isinstance(out, bool) or not isinstance(out, int | float) or not math.isfinite(out):
            raise ConfigError(f"metric {self.name} returned {out!r}; it must return one finite "
                              "number (a float) for the model on the loader")
        return float(out)

    def score(self, model: nn.Module, batches: Iterable[Any]) -> float:
        """The value oriented so that higher is better (``-value`` for ``"min"``)."""
        return self.to_score(self.value(model, batches))

    def to_score(self, value: float) -> float:
        return value if self.mode == "max" else -value

    def from_score(self, score: float) -> float:
        """The metric's own value of a score (undoes ``to_score``)."""
        return score if self.mode == "max" else -score

    def describe(self) -> dict[str, str]:
        """JSON-able identity recorded with runs and policies."""
        return {"name": self.name, "mode": self.mode, "unit": self.unit}


def _top1(model: nn.Module, batches: Iterable[Any]) -> float:
    from haq.finetune import evaluate

    return evaluate(model, batches)  # type: ignore[arg-type]


TOP1 = Metric(_top1, "top1", "max", "%")


def as_metric(metric: Metric | MetricFn | str | None = None, mode: str | None = None
              ) -> Metric:
    """A ``Metric`` from itself, a function, ``"top1"``, ``"path/to/file.py:function"`` or
    ``None`` (top-1).

    Args:
        metric: what to score with.
        mode: ``"max"`` or ``"min"`` for a function or file (default ``"max"``); given with a
            ``Metric`` or top-1, it must agree with theirs.

    Raises:
        ConfigError: unknown name, a file that does not load, or a contradicting mode.
    """
    if metric is None or metric == "top1":
        found = TOP1
    elif isinstance(metric, Metric):
        found = metric
    elif isinstance(metric, str):
        if not is_target(metric):
            raise ConfigError(f"unknown metric {metric!r}; give top1 (the default) or "
                              "path/to/file.py:function returning a float")
        fn = load_callable(metric, "metric")
        return Metric(fn, metric.rpartition(":")[2], mode or "max")
    elif callable(metric):
        return Metric(metric, getattr(metric, "__name__", "metric"), mode or "max")
    else:
        raise ConfigError(f"metric must be a function (model, loader) -> float, a Metric or "
                          f"path/to/file.py:function; got {type(metric).__name__}")
    if mode is not None and mode != found.mode:
        raise ConfigError(f"metric {found.name} is mode {found.mode}; --metric-mode {mode} "
                          "applies only to your own metric function")
    return found


def measure(model: nn.Module, data: Any, metric: Metric | MetricFn | str | None = None, *,
            batch_size: int = 128, max_samples: int | None = None) -> float:
    """The metric's value of ``model`` on ``data`` (a Dataset or DataLoader), read in batches.

    Args:
        metric: as for ``as_metric`` (top-1 in percent by default).
        batch_size: batch size when ``data`` is a Dataset (a DataLoader keeps its own).
        max_samples: score only the first this-many samples.
    """
    from haq.data import head, loader

    return as_metric(metric).value(model, loader(head(data, max_samples), batch_size))
