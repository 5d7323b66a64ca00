"""HGQ training: loss = task + beta * cost + gamma * sum(f), beta control, Pareto checkpoints.

beta follows either the paper's schedule (a constant warm-up, then a geometric ramp to the end
of training) or a log-space PI controller that holds the cost at a target (HGQ2's ``BetaPID``,
stepped every batch here because CPU runs are a few epochs, not thousands). After every epoch
the model is scored on a validation slice of the training data and (accuracy, cost) is offered to
a Pareto front; each front member keeps its weights, so any operating point can be restored.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import nn
from torch.utils.data import IterableDataset

from haq.data import loader
from haq.errors import ConfigError
from haq.search.hgq._layers import HgqLayer, f_parameters, sum_f

BETA_MODES = ("schedule", "target")


@dataclass
class BetaControl:
    """beta per step: the paper's warm-up + geometric ramp, or a PI controller on a target.

    Args:
        mode: "schedule" or "target".
        beta0: warm-up beta (and the controller's starting point).
        beta1: beta at the end of the ramp ("schedule").
        warmup_epochs: epochs at ``beta0`` before the ramp / the controller starts.
        epochs: total epochs (the ramp spans epochs ``warmup_epochs..epochs``).
        target: cost to hold, in the cost's normalised unit ("target").
        kp, ki: proportional and integral gains on ``log(cost / target)``.
    """

    mode: str = "schedule"
    beta0: float = 1e-3
    beta1: float = 1.0
    warmup_epochs: int = 1
    epochs: int = 10
    target: float | None = None
    kp: float = 0.5
    ki: float = 0.05
    integral: float = 0.0
    log_beta: float = field(default=float("nan"))

    def __post_init__(self) -> None:
        if self.mode not in BETA_MODES:
            raise ConfigError(f"beta mode {self.mode!r}: choose one of {', '.join(BETA_MODES)}")
        if self.beta0 <= 0 or self.beta1 <= 0:
            raise ConfigError("beta0 and beta1 must be > 0")
        if self.mode == "target" and (self.target is None or self.target <= 0):
            raise ConfigError("beta mode 'target' needs a positive target cost")
        if math.isnan(self.log_beta):
            self.log_beta = math.log(self.beta0)

    def beta(self, epoch: int, fraction: float) -> float:
        """beta for the step at ``fraction`` (0..1) through ``epoch``."""
        if epoch < self.warmup_epochs:
            return self.beta0
        if self.mode == "target":
            return math.exp(self.log_beta)
        span = max(1, self.epochs - self.warmup_epochs)
        t = min(1.0, (epoch - self.warmup_epochs + fraction) / span)
        return math.exp(math.log(self.beta0) + t * (math.log(self.beta1) - math.log(self.beta0)))

    def update(self, epoch: int, cost: float) -> None:
        """Feed the cost of the last step to the controller (no-op in schedule mode)."""
        if self.mode != "target" or epoch < self.warmup_epochs or self.target is None:
            return
        error = math.log(max(cost, 1e-12) / self.target)
        self.integral = min(50.0, max(-50.0, self.integral + error))
        self.log_beta = math.log(self.beta0) + self.kp * error + self.ki * self.integral

    def state_dict(self) -> dict[str, float]:
        return {"integral": self.integral, "log_beta": self.log_beta}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.integral, self.log_beta = float(state["integral"]), float(state["log_beta"])


def pareto_insert(front: list[dict[str, Any]], point: dict[str, Any]) -> list[dict[str, Any]]:
    """Add ``point`` (keys ``accuracy``, ``cost``) to a front; drop what it dominates.

    A point is kept if no other has accuracy >= and cost <= with one strictly better.
    """
    def dominates(p: dict[str, Any], q: dict[str, Any]) -> bool:
        return (p["accuracy"] >= q["accuracy"] and p["cost"] <= q["cost"]
                and (p["accuracy"] > q["accuracy"] or p["cost"] < q["cost"]))

    if any(dominates(p, point) or (p["accuracy"] == point["accuracy"]
                                   and p["cost"] == point["cost"]) for p in front):
        return front
    return sorted([p for p in front if not dominates(point, p)] + [point],
                  key=lambda p: p["cost"])


@dataclass
class Batches:
    """Training and validation batches HGQ iterates over (kept in memory)."""

    train: list[tuple[torch.Tensor, torch.Tensor]]
    val: list[tuple[torch.Tensor, torch.Tensor]]


def split_batches(data: Any, val_fraction: float, batch_size: int) -> Batches:
    """Materialise ``data`` into batches and hold out the last ``val_fraction`` for validation.

    ``data`` may be a map-style dataset of (x, y), a ``(inputs, labels)`` tensor pair, or any
    iterable of ``(x, y)`` batches (e.g. a DataLoader).
    """
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor)
                                                          for t in data):
        x, y = data
    elif hasattr(data, "tensors") and len(data.tensors) >= 2:  # TensorDataset
        x, y = data.tensors[0], data.tensors[1]
    elif isinstance(data, IterableDataset):  # a stream of samples, batched in its order
        batches = [(b[0], b[1]) for b in loader(data, batch_size)]
        x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, list):
        pairs = [data[i] for i in range(len(data))]
        x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        y = torch.as_tensor([int(p[1]) for p in pairs])
    else:
        batches = [(b[0], b[1]) for b in data]
        if not batches:
            raise ConfigError("HGQ got no training batches")
        x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    n_val = max(1, int(round(len(x) * val_fraction)))
    if n_val >= len(x):
        raise ConfigError(f"{len(x)} training samples cannot spare a validation slice of "
                          f"{n_val}; lower val_fraction")
    cut = len(x) - n_val

    def chunk(xs: torch.Tensor, ys: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(xs[i:i + batch_size], ys[i:i + batch_size])
                for i in range(0, len(xs), batch_size)]

    return Batches(chunk(x[:cut], y[:cut]), chunk(x[cut:], y[cut:]))


def accuracy(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    was = model.training
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in batches:
            correct += int((model(x).argmax(dim=1) == y).sum())
            total += len(y)
    model.train(was)
    return 100.0 * correct / max(1, total)


class HgqTrainer:
    """Trains an HGQ-wrapped model; everything needed to resume is in ``state_dict``."""

    def __init__(self, model: nn.Module, layers: dict[str, HgqLayer], cost: Callable[[], Any],
                 control: BetaControl, *, lr: float, f_lr: float, gamma: float, seed: int,
                 steps_per_epoch: int | None = None) -> None:
        self.model, self.layers, self.cost, self.control = model, layers, cost, control
        self.gamma, self.seed, self.steps_per_epoch = gamma, seed, steps_per_epoch
        f_params = f_parameters(model)
        f_ids = {id(p) for p in f_params}
        others = [p for p in model.parameters() if id(p) not in f_ids]
        self.optimizer = torch.optim.Adam([{"params": others, "lr": lr},
                                           {"params": f_params, "lr": f_lr}])
        self.epoch = 0
        self.front: list[dict[str, Any]] = []

    def train_epoch(self, batches: Batches) -> dict[str, float]:
        """One epoch; data order and any dropout are seeded by (seed, epoch)."""
        order = torch.randperm(len(batches.train),
                               generator=torch.Generator().manual_seed(self.seed * 7919
                                                                        + self.epoch)).tolist()
        if self.steps_per_epoch is not None:
            order = order[: self.steps_per_epoch]
        for layer in self.layers.values():
            layer.reset_ranges()  # HGQ v1 re-measures activation ranges every epoch
        self.model.train()
        sums = {"loss": 0.0, "task": 0.0, "cost": 0.0, "beta": 0.0}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 104729 + self.epoch)
            for step, index in enumerate(order):
                x, y = batches.train[index]
                beta = self.control.beta(self.epoch, step / len(order))
                task = F.cross_entropy(self.model(x), y)
                cost = self.cost()
                loss = task + beta * cost + self.gamma * sum_f(self.model)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                self.control.update(self.epoch, float(cost.detach()))
                for key, value in (("loss", loss), ("task", task), ("cost", cost)):
                    sums[key] += float(value.detach())
                sums["beta"] += beta
        self.epoch += 1
        return {k: v / max(1, len(order)) for k, v in sums.items()}

    def offer(self, point: dict[str, Any]) -> bool:
        """Offer this epoch's (accuracy, cost) to the front, with a copy of the weights."""
        point = {**point, "state": copy.deepcopy(self.model.state_dict())}
        self.front = pareto_insert(self.front, point)
        return any(p is point for p in self.front)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "control": self.control.state_dict(),
                "front": self.front}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.control.load_state_dict(state["control"])
        self.front = list(state["front"])
