"""The ``hgq`` strategy: train fixed-point bit widths by gradient, then read off a policy.

1. Wrap a copy of the float model in HGQ layers (trainable f per layer, channel or weight).
2. Train with loss = task + beta * cost + gamma * sum(f): cost is the budgeted metric of the
   problem's cost table interpolated at each layer's widths (per-layer granularity), or EBOPs;
   beta ramps (paper schedule) or is steered to the budget (controller).
3. Every epoch offers (validation accuracy, cost) to a Pareto front with the weights attached.
4. The chosen front point (the most accurate whose policy meets the budgets, else the cheapest)
   is reduced to one integer (w, a) per layer and projected onto the budgets exactly by the ILP
   (fewest bits removed, squared), then evaluated once like every other strategy's policy.

Every epoch is journaled and checkpointed in ``run_dir``; a resumed run continues bit-exactly.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from haq.cost import within_limit
from haq.device import on_cpu
from haq.errors import ConfigError, StrategyError
from haq.policy import GRID_SIZE, BitSpace, policy_from_bits
from haq.runs import BEST, RunStore
from haq.search._base import Progress, SearchProblem, SearchResult, Strategy, register_strategy
from haq.search._ilp import solve_choice
from haq.search.hgq._cost import EbopsCost, TableCost
from haq.search.hgq._layers import HgqLayer, trace_ranges, wrap_model
from haq.search.hgq._quantizer import GRANULARITIES
from haq.search.hgq._train import BETA_MODES, BetaControl, HgqTrainer, accuracy, split_batches
from haq.search.ohq._oneshot import calibration_inputs, choice_bits, problem_constraints


def reduce_policy(layers: dict[str, HgqLayer], names: list[str], reduce: str,
                  space: BitSpace | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Integer (w, a) per layer: ceil of the reduced exact widths, clipped to 1..8, then (with
    ``space``) rounded up onto its candidate set (3.2 bits -> 4 with {2, 4, 8}).

    Weight width counts the sign bit (a b-bit symmetric grid has b-1 magnitude bits).
    """
    w_set = space.w_candidates if space is not None else ()
    a_set = space.a_candidates if space is not None else ()
    w, a = [], []
    with torch.no_grad():
        for name in names:
            wb, ab = layers[name].mean_widths(exact=True, reduce=reduce)
            w.append(_round_up(math.ceil(float(wb) - 1e-6), w_set))
            a.append(_round_up(math.ceil(float(ab) - 1e-6), a_set))
    return np.array(w, dtype=np.int64), np.array(a, dtype=np.int64)


def _round_up(bits: int, candidates: tuple[int | None, ...]) -> int:
    """``bits`` clipped to 1..8, then the smallest integer candidate >= it (else the largest)."""
    bits = int(np.clip(bits, 1, 8))
    ints = [c for c in candidates if c is not None]
    return min((c for c in ints if c >= bits), default=max(ints)) if ints else bits


def project(problem: SearchProblem, w: np.ndarray, a: np.ndarray,
            fill_budget: bool) -> tuple[np.ndarray, np.ndarray]:
    """The allowed policy meeting every budget that removes the fewest bits (squared).

    Bits above HGQ's choice cost a tiny penalty (or earn a tiny reward with ``fill_budget``),
    so a feasible HGQ policy comes back unchanged unless asked to use the spare budget.
    """
    bits = np.arange(1, GRID_SIZE + 1, dtype=np.float64)
    bits[-1] = 8.0  # a float operand counts as 8 bits wide for the distance
    step = -1e-3 if fill_budget else 1e-3
    dw = bits[None, :] - w[:, None]
    da = bits[None, :] - a[:, None]
    pen_w = np.where(dw < 0, dw ** 2, step * dw)
    pen_a = np.where(da < 0, da ** 2, step * da)
    score = pen_w[:, :, None] + pen_a[:, None, :]
    choice = solve_choice(score, problem.space.mask(problem.specs), problem_constraints(problem))
    return choice_bits(choice)


@register_strategy("hgq")
class HgqStrategy(Strategy):
    """High-granularity quantization (HGQ) as a search strategy.

    Args:
        epochs: training epochs over the problem's ``train_data``.
        steps_per_epoch: cap on batches per epoch (``None`` = all).
        batch_size: batch size when ``train_data`` is a dataset or tensor pair.
        lr / f_lr: Adam learning rates of the weights and of the fractional bits.
        weight_granularity / act_granularity: "layer", "channel" or "element".
        cost: "table" (the first budget's metric, interpolated), "ebops", or "auto" (table
            when both granularities are "layer" and there is a budget).
        beta_mode: "target" (controller holds the first budget) or "schedule" (paper ramp).
        beta0, beta1, warmup_epochs: warm-up beta, ramp end, warm-up length.
        gamma: weight of the sum-of-f term.
        init_weight_bits / init_act_bits: starting widths.
        reduce: "max" or "mean" width per layer for the integer policy.
        fill_budget: let the final projection raise bits into spare budget.
        val_fraction: share of the training data held out to pick Pareto points.
    """

    def __init__(self, epochs: int = 4, steps_per_epoch: int | None = None,
                 batch_size: int = 128, lr: float = 1e-3, f_lr: float = 0.05,
                 weight_granularity: str = "layer", act_granularity: str = "layer",
                 cost: str = "auto", beta_mode: str = "target", beta0: float = 0.05,
                 beta1: float = 5.0, warmup_epochs: int = 0, gamma: float = 1e-6,
                 init_weight_bits: float = 7.0, init_act_bits: float = 8.0,
                 reduce: str = "max", fill_budget: bool = False,
                 val_fraction: float = 0.1) -> None:
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        for name, value in (("weight_granularity", weight_granularity),
                            ("act_granularity", act_granularity)):
            if value not in GRANULARITIES:
                raise ConfigError(f"{name}={value!r}: choose one of {', '.join(GRANULARITIES)}")
        if cost not in ("auto", "table", "ebops"):
            raise ConfigError(f"cost={cost!r}: choose 'auto', 'table' or 'ebops'")
        if beta_mode not in BETA_MODES:
            raise ConfigError(f"beta_mode={beta_mode!r}: choose one of {', '.join(BETA_MODES)}")
        if reduce not in ("max", "mean"):
            raise ConfigError(f"reduce={reduce!r}: choose 'max' or 'mean'")
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.settings = dict(
            epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr,
            f_lr=f_lr, weight_granularity=weight_granularity, act_granularity=act_granularity,
            cost=cost, beta_mode=beta_mode, beta0=beta0, beta1=beta1,
            warmup_epochs=warmup_epochs, gamma=gamma, init_weight_bits=init_weight_bits,
            init_act_bits=init_act_bits, reduce=reduce, fill_budget=fill_budget,
            val_fraction=val_fraction)

    # -- setup ------------------------------------------------------------------------------------
    def _cost(self, problem: SearchProblem, layers: dict[str, HgqLayer]) -> EbopsCost | TableCost:
        s = self.settings
        kind = s["cost"]
        per_layer = s["weight_granularity"] == s["act_granularity"] == "layer"
        if kind == "auto":
            kind = "table" if per_layer and problem.budgets else "ebops"
        if kind == "ebops":
            return EbopsCost(layers)
        if not problem.budgets:
            raise ConfigError("cost='table' needs a budget to say which metric to train on")
        metric = problem.budgets[0].metric
        return TableCost(layers, problem.table.full_array(metric),
                         [sp.name for sp in problem.specs], metric, s["reduce"])

    def _control(self, problem: SearchProblem) -> BetaControl:
        s = self.settings
        target = None
        if s["beta_mode"] == "target":
            if not problem.budgets:
                raise ConfigError("beta_mode='target' needs a budget; use beta_mode='schedule'")
            budget = problem.budgets[0]
            ref = float(problem.table.full_array(budget.metric)[:, 7, 7].sum())
            # The budget as a fraction of W8A8 is the target of the normalised cost (exact for
            # the table cost; for EBOPs it transfers the same fraction to EBOPs).
            target = budget.resolve(problem.table) / ref
        return BetaControl(mode=s["beta_mode"], beta0=s["beta0"], beta1=s["beta1"],
                           warmup_epochs=s["warmup_epochs"], epochs=s["epochs"], target=target)

    def _open(self, problem: SearchProblem, seed: int, run_dir: Path | None,
              resume: bool) -> RunStore | None:
        if run_dir is None:
            return None
        identity = {"strategy": self.name, "seed": seed, "settings": self.settings,
                    "layers": [s.name for s in problem.specs], "space": problem.space.to_dict(),
                    "budgets": [{"metric": b.metric, "limit": float(b.resolve(problem.table))}
                                for b in problem.budgets],
                    **{k: v for k, v in problem.provenance.items()
                       if k in ("table_hash", "model")}}
        return RunStore.open(run_dir, identity, resume=resume,
                             info={"problem": problem.provenance})

    # -- run --------------------------------------------------------------------------------------
    def run(self, problem: SearchProblem, *, seed: int = 0, run_dir: Path | None = None,
            resume: bool = False, progress: Progress | None = None) -> SearchResult:
        if problem.model is None or problem.train_data is None:
            raise StrategyError("hgq trains the model itself: the search problem needs the float "
                                "model (SearchProblem.model) and train_data")
        start = time.perf_counter()
        s = self.settings
        data = split_batches(problem.train_data, s["val_fraction"], s["batch_size"])
        calibration = calibration_inputs(problem) or [x for x, _ in data.train[:4]]
        model, layers = wrap_model(on_cpu(problem.model), problem.specs, calibration,
                                   weight_granularity=s["weight_granularity"],
                                   act_granularity=s["act_granularity"],
                                   init_weight_bits=s["init_weight_bits"],
                                   init_act_bits=s["init_act_bits"])
        cost = self._cost(problem, layers)
        trainer = HgqTrainer(model, layers, cost, self._control(problem), lr=s["lr"],
                             f_lr=s["f_lr"], gamma=s["gamma"], seed=seed,
                             steps_per_epoch=s["steps_per_epoch"])
        store = self._open(problem, seed, run_dir, resume)
        records = store.journal.read() if store else []
        if store and (state := store.load_checkpoint()) is not None:
            trainer.load_state_dict(state)
        history = [r for r in records if r.get("phase") == "train" and r["epoch"] < trainer.epoch]
        names = [sp.name for sp in problem.specs]
        while trainer.epoch < s["epochs"]:
            record = self._epoch(problem, trainer, data, layers, names)
            history.append(record)
            if store:
                if not any(r.get("epoch") == record["epoch"] and r.get("phase") == "train"
                           for r in records):
                    store.journal.append(record)
                store.save_checkpoint(trainer.state_dict())
            if progress is not None:
                progress({"episode": record["epoch"], "episodes": s["epochs"], **{
                    k: record[k] for k in ("accuracy", "costs", "beta", "ebops")}})
        return self._finish(problem, trainer, data, layers, names, store, records, history,
                            seed, time.perf_counter() - start)

    def _epoch(self, problem: SearchProblem, trainer: HgqTrainer, data: Any,
               layers: dict[str, HgqLayer], names: list[str]) -> dict[str, Any]:
        epoch = trainer.epoch
        stats = trainer.train_epoch(data)
        acc = accuracy(trainer.model, data.val)
        w, a = reduce_policy(layers, names, self.settings["reduce"], problem.space)
        costs = problem.table.evaluate_arrays(w[None], a[None])
        costs = {m: float(np.asarray(v).reshape(-1)[0]) for m, v in costs.items()}
        ebops = trainer.cost.absolute() if isinstance(trainer.cost, EbopsCost) else float(
            EbopsCost(layers).absolute())
        metric = problem.budgets[0].metric if problem.budgets else None
        point_cost = costs[metric] if metric else ebops
        point = {"epoch": epoch, "accuracy": acc, "cost": point_cost,
                 "w_bits": w.tolist(), "a_bits": a.tolist()}
        trainer.offer(point)
        return {"phase": "train", "epoch": epoch, "accuracy": acc, "ebops": ebops,
                "costs": costs, "w_bits": w.tolist(), "a_bits": a.tolist(),
                "pruned": _pruned(layers), **stats}

    def _finish(self, problem: SearchProblem, trainer: HgqTrainer, data: Any,
                layers: dict[str, HgqLayer], names: list[str], store: RunStore | None,
                records: list[dict[str, Any]], history: list[dict[str, Any]], seed: int,
                seconds: float) -> SearchResult:
        limits = [(b.metric, b.resolve(problem.table)) for b in problem.budgets]
        point = _select(trainer.front, problem, limits)
        trainer.model.load_state_dict(point["state"])
        trace_ranges(trainer.model, layers, [x for x, _ in data.train[:8]])
        exact_ebops = EbopsCost(layers).absolute()
        w, a = project(problem, np.array(point["w_bits"]), np.array(point["a_bits"]),
                       self.settings["fill_budget"])
        policy = policy_from_bits(problem.specs, w, a, **{
            **problem.provenance, "strategy": self.name, "seed": seed,
            "hgq_epoch": point["epoch"]})
        costs = problem.table.evaluate(policy)
        final = next((r for r in records if r.get("phase") == "final"), None)
        evaluations = 0
        if final is None:
            accuracy_ = None
            if problem.evaluate is not None:
                accuracy_ = float(problem.evaluate(policy).accuracy)
                evaluations = 1
            final = {"phase": "final", "epoch": point["epoch"], "accuracy": accuracy_,
                     "costs": costs, "w_bits": w.tolist(), "a_bits": a.tolist()}
            if store:
                store.journal.append(final)
        if store:
            store.write_json(BEST, policy.to_dict())
        extra = {"hgq_accuracy": point["accuracy"], "hgq_epoch": point["epoch"],
                 "hgq_bits": {"w_bits": point["w_bits"], "a_bits": point["a_bits"]},
                 "exact_ebops": exact_ebops, "pruned_fraction": _pruned(layers),
                 "front": [{k: p[k] for k in ("epoch", "accuracy", "cost", "w_bits", "a_bits")}
                           for p in trainer.front],
                 "model": trainer.model}
        return SearchResult(best=policy, best_accuracy=final["accuracy"], costs=costs,
                            evaluations=evaluations, seconds=seconds,
                            history=[*history, final], extra=extra)


def _pruned(layers: dict[str, HgqLayer]) -> float:
    total = sum(layer.weight.numel() for layer in layers.values())
    zero = sum(layer.pruned_fraction() * layer.weight.numel() for layer in layers.values())
    return zero / total


def _select(front: list[dict[str, Any]], problem: SearchProblem,
            limits: list[tuple[str, float]]) -> dict[str, Any]:
    """Most accurate front point whose integer policy meets every budget, else the cheapest."""
    if not front:
        raise StrategyError("HGQ recorded no Pareto point; train for at least one epoch")

    def over(point: dict[str, Any]) -> float:
        w, a = np.array(point["w_bits"])[None], np.array(point["a_bits"])[None]
        costs = problem.table.evaluate_arrays(w, a)
        return max([float(np.asarray(costs[m]).reshape(-1)[0]) / lim for m, lim in limits],
                   default=0.0)

    feasible = [p for p in front if within_limit(over(p), 1.0)]
    if feasible:
        return max(feasible, key=lambda p: (p["accuracy"], -p["cost"]))
    return min(front, key=over)
