"""``haq.search(...)``: one call from a float model to the best feasible bit policy.

The stages, in order: resolve inputs (names -> objects), trace specs, build the cost table,
resolve and check the budgets, measure float held-out accuracy, build the episode evaluator,
run the strategy (journalled if ``run_dir``), save the best policy, and optionally fine-tune it
and report its test accuracy. Each stage lives elsewhere; this module only wires them.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from haq.cost import Budget, CostModel, CostTable, check_feasible
from haq.data import DataSplits, check_fits, loader
from haq.errors import ConfigError
from haq.finetune import evaluate, final_finetune_config, finetune
from haq.policy import BitSpace, Policy
from haq.quantize import DEFAULT_CALIBRATION_BATCHES, QuantConfig, apply_policy_
from haq.runs import atomic_write, check_run_dir, claim
from haq.search._base import Progress, SearchProblem, SearchResult, get_strategy
from haq.search._evaluator import EpisodeEvaluator
from haq.search._outputs import write_inputs, write_outputs
from haq.search._rescore import Rescore, rescore
from haq.specs import LayerSpec, extract_specs

CALIBRATION_BATCH = 128
_GENERIC_METRICS = ("size", "bops")  # priced from the specs alone, on any hardware


def table_hash(table: CostTable) -> str:
    """Content hash of a cost table (values and units), recorded with every run."""
    digest = hashlib.sha256()
    for metric in sorted(table.values):
        digest.update(f"{metric}:{table.units[metric]}".encode())
        digest.update(np.ascontiguousarray(table.values[metric]).tobytes())
    digest.update("|".join(table.layer_names).encode())
    return digest.hexdigest()[:24]


def _model(model: nn.Module | str) -> tuple[nn.Module, str]:
    if isinstance(model, str):
        from haq.models import create

        return create(model, pretrained=True), model
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be an nn.Module or a zoo model name, got {type(model)}")
    return model, type(model).__name__


def _data(data: DataSplits | str) -> DataSplits:
    if isinstance(data, str):
        from haq.data import load

        return load(data)
    if not isinstance(data, DataSplits):
        raise ConfigError("data must be a haq.data.DataSplits or a dataset name "
                          f"({', '.join(['fashion-mnist', 'digits', 'synthetic'])})")
    return data


def _table(cost_model: CostModel | CostTable | str, specs: Sequence[LayerSpec],
           budgets: Sequence[Budget]) -> CostTable:
    """The hardware's table, plus the hardware-independent metrics (size, BOPs) it lacks and a
    budget asks for, so ``--latency 0.5 --size 0.25`` works on any accelerator."""
    from haq.cost import get

    if not isinstance(cost_model, CostTable):
        cost_model = (get(cost_model) if isinstance(cost_model, str) else cost_model)
        table = cost_model.table(specs)
    else:
        table = cost_model
    extra = [b.metric for b in budgets if b.metric not in table.metrics
             and b.metric in _GENERIC_METRICS]
    if not extra:
        return table
    values, units = dict(table.values), dict(table.units)
    for metric in dict.fromkeys(extra):
        generic = get(metric).table(specs)
        values[metric], units[metric] = generic.values[metric], generic.units[metric]
    return CostTable(list(table.layer_names), values, units,
                     {**table.source, "added_metrics": sorted(set(extra))})


def _budgets(budgets: Sequence[Budget] | Mapping[str, str]) -> list[Budget]:
    if isinstance(budgets, Mapping):
        return [Budget.parse(metric, str(text)) for metric, text in budgets.items()]
    return list(budgets)


def _space(space: BitSpace | None, preset: str, pin_ends: bool | None,
           specs: Sequence[LayerSpec]) -> BitSpace:
    space = space or BitSpace()
    if pin_ends if pin_ends is not None else preset == "paper":
        space = space.pin_ends(specs)
    return space


def search(model: nn.Module | str, data: DataSplits | str, cost_model: CostModel | CostTable | str,
           budgets: Sequence[Budget] | Mapping[str, str], strategy: str = "haq", *,
           specs: Sequence[LayerSpec] | None = None, space: BitSpace | None = None,
           quant_config: QuantConfig | None = None, episodes: int | None = None, seed: int = 0,
           run_dir: str | Path | None = None, resume: bool = False, finetune_steps: int = 0,
           final_finetune_epochs: int = 0, final_finetune_steps: int | None = None,
           final_distill: float = 1.0,
           eval_samples: int | None = 1000, rescore_top: int = 0, rescore_steps: int = 50,
           preset: str = "default", pin_ends: bool | None = None,
           progress: Progress | None = None, **strategy_params: Any) -> SearchResult:
    """Search a per-layer bit policy that meets every budget.

    Args:
        model: a float ``nn.Module`` or a zoo model name (loaded with its trained weights).
        data: ``DataSplits`` or a dataset name; policies are scored on ``heldout``, calibrated
            and fine-tuned on ``train``; ``test`` is used only after the search.
        cost_model: a ``CostModel``, a registered name (``"bismo-edge"``) or a ``CostTable``.
        budgets: ``Budget`` objects or ``{metric: text}`` such as ``{"latency": "0.5x"}``.
        strategy: a registered strategy (``haq``, ``random``, ``uniform``, ...).
        specs: the layers; traced from one training sample if omitted.
        space: allowed bits; ``BitSpace()`` (2-8 bits) if omitted.
        quant_config: the quantizer; ``QuantConfig.preset(preset)`` if omitted.
        episodes: episode budget of episodic strategies (their own default if omitted).
        seed: every random choice derives from it.
        run_dir: journal, checkpoints, ``best_policy.json``; ``None`` keeps it in memory.
        resume: continue the run in ``run_dir`` instead of refusing to overwrite it.
        finetune_steps: recovery steps per episode (0 = score the calibrated policy).
        final_finetune_epochs: fine-tune the best policy this long and report test accuracy.
        final_finetune_steps: cap that fine-tune at this many SGD steps (a quick look).
        final_distill: weight of distillation from the float model in that fine-tune
            (``TrainConfig.distill``; 0 = labels only).
        eval_samples: held-out samples scored per episode (``None`` = the whole split).
        rescore_top: after the search, fine-tune the this-many best distinct policies
            ``rescore_steps`` steps each, score them on the whole held-out split and keep the
            best (0 = keep the best episode; ``haq.search._rescore``).
        rescore_steps: recovery SGD steps per re-scored policy.
        preset: ``"default"`` or ``"paper"``: picks the quantizer, whether the first and last
            layers are pinned at 8 bits, and HAQ's hyperparameters.
        pin_ends: pin the first and last layer at 8 bits (``None`` = as the preset says).
        progress: called after every episode with a small dict (and with ``{"stage":
            "rescore", ...}`` after each re-scored policy); the library never prints.
        **strategy_params: passed to the strategy (e.g. ``warmup=10`` for ``haq``).

    Returns:
        The strategy's result; ``extra`` holds ``float_accuracy`` and ``w8a8_accuracy``
        (held-out) and, after a final fine-tune, ``test_accuracy`` and ``float_test_accuracy``.
        With ``run_dir``, the directory also gets ``specs.json``, ``cost_table.json``,
        ``best_policy.json`` and ``result.json`` for ``haq report``.

    Raises:
        BudgetInfeasibleError: no policy in ``space`` meets the budgets (checked up front).
        RunError: ``run_dir`` holds another run and ``resume`` is false.
    """
    if preset not in ("default", "paper"):
        raise ConfigError(f"unknown preset {preset!r}; choose 'default' or 'paper'")
    if run_dir is not None:
        check_run_dir(run_dir, resume)  # before any slow work
    if min(finetune_steps, final_finetune_epochs) < 0:
        raise ConfigError(f"finetune_steps and final_finetune_epochs must be >= 0, got "
                          f"{finetune_steps} and {final_finetune_epochs}")
    if final_finetune_epochs > 0:  # the final fine-tune's settings, checked before the search
        config = final_finetune_config(seed, final_finetune_epochs, final_distill)
        if final_finetune_steps is not None:
            dataclasses.replace(config, steps=final_finetune_steps)
    model, model_name = _model(model)
    splits = _data(data)
    check_fits(model, splits)
    specs = list(specs) if specs is not None else extract_specs(model, splits.train[0][0][None])
    budget_list = _budgets(budgets)
    table = _table(cost_model, specs, budget_list)
    space = _space(space, preset, pin_ends, specs)
    check_feasible(table, budget_list, space, specs)
    quant_config = quant_config or QuantConfig.preset(preset)

    heldout = splits.heldout if eval_samples is None else Subset(
        splits.heldout, range(min(eval_samples, len(splits.heldout))))
    calibration = list(loader(splits.train, CALIBRATION_BATCH, shuffle=True, seed=seed))[
        :DEFAULT_CALIBRATION_BATCHES]
    evaluator = EpisodeEvaluator(model, specs, heldout=heldout, calibration=calibration,
                                 quant_config=quant_config, train_data=splits.train,
                                 finetune_steps=finetune_steps, seed=seed)
    float_accuracy = evaluate(model, heldout)
    provenance = {
        "model": model_name, "dataset": splits.name, "cost_model": table.source,
        "table_hash": table_hash(table), "units": dict(table.units),
        "budgets": [b.describe() for b in budget_list], "quant_config": quant_config.to_dict(),
        "eval_samples": len(heldout), "finetune_steps": finetune_steps, "seed": seed,
    }
    problem = SearchProblem(specs, table, budget_list, space, evaluate=evaluator,
                            float_accuracy=float_accuracy, model=model, calibration=calibration,
                            train_data=splits.train, heldout=splits.heldout,
                            provenance=provenance)
    settings = Rescore(rescore_top, rescore_steps)  # checked before the search spends time
    if strategy == "haq":
        strategy_params.setdefault("preset", preset)
    if episodes is not None:
        strategy_params["episodes"] = episodes
    runner = get_strategy(strategy, **strategy_params)
    path = Path(run_dir) if run_dir is not None else None
    with claim(path, resume):  # one process per run directory, for the run's lifetime
        if path is not None:
            write_inputs(path, specs, table, keep=resume)
        result = runner.run(problem, seed=seed, run_dir=path, resume=resume, progress=progress)
        result = rescore(problem, result, settings, seed=seed, run_dir=path, progress=progress)
        result.extra["float_accuracy"] = float_accuracy
        result.extra["w8a8_accuracy"] = evaluator(Policy.uniform(specs, 8, 8)).accuracy
        if final_finetune_epochs > 0:
            result.extra.update(_final(model, splits, result, calibration, quant_config, seed,
                                       final_finetune_epochs, path, final_finetune_steps,
                                       final_distill))
        if path is not None:
            write_outputs(path, result, budget_list, table, strategy, seed, provenance)
    return result


def _final(model: nn.Module, splits: DataSplits, result: SearchResult, calibration: list[Any],
           quant_config: QuantConfig, seed: int, epochs: int, path: Path | None,
           steps: int | None = None, distill: float = 1.0) -> dict[str, Any]:
    """Fine-tune the best policy on ``train`` and score it on ``test`` (the only test use)."""
    quantized = apply_policy_(copy.deepcopy(model), result.best, calibration, quant_config)
    config = final_finetune_config(seed, epochs, distill)
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    history = finetune(quantized, splits.train, config, teacher=model)
    out = {"test_accuracy": evaluate(quantized, splits.test),
           "float_test_accuracy": evaluate(model, splits.test),
           "final_finetune": {"epochs": epochs, "steps": steps, "distill": distill,
                              "loss": history.get("loss")}}
    if path is not None:
        buffer = quantized.state_dict()
        atomic_write(path / "final_model.pt", lambda handle: torch.save(buffer, handle))
    return out
