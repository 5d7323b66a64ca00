"""``haq.search(...)``: one call from a float model to the best feasible bit policy.

``search`` = ``build_problem`` (inputs -> ``SearchProblem``) + ``run_strategy`` (the strategy,
timed and its evaluations counted) + re-scoring + the final test score + the run directory's
files. Each stage lives elsewhere; this module only wires them.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from haq.cost import Budget, CostModel, CostTable
from haq.data import DataSplits, loader
from haq.device import resolve_device
from haq.errors import ConfigError
from haq.executors import check_request, distributed
from haq.metrics import as_metric
from haq.policy import BitSpace, Policy
from haq.quantize import QuantConfig
from haq.runs import RunLayout, atomic_write, check_run_dir, claim
from haq.search._base import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    EvalResult,
    Progress,
    SearchProblem,
    SearchResult,
    get_strategy,
    strategies_taking,
)
from haq.search._final import FinalConfig, final_model
from haq.search._outputs import write_inputs, write_outputs
from haq.search._problem import EvalConfig, build_problem, eval_batch_size, resolve_inputs
from haq.search._rescore import RescoreConfig
from haq.search._rescore import rescore as rescore_result
from haq.specs import LayerSpec

# keyword -> (config group, field): the flat keywords of haq 0.1.0, kept for one version
_LEGACY = {"eval_samples": ("evaluation", "samples"),
           "finetune_steps": ("evaluation", "finetune_steps"),
           "final_finetune_epochs": ("final", "epochs"),
           "final_finetune_steps": ("final", "steps"), "final_distill": ("final", "distill"),
           "rescore_top": ("rescore", "top"), "rescore_steps": ("rescore", "steps")}


class _Counted:
    """``problem.evaluate`` wrapped to count the policies scored on held-out data."""

    def __init__(self, evaluate: Any) -> None:
        self.evaluate, self.calls = evaluate, 0

    def __call__(self, policy: Policy) -> EvalResult:
        self.calls += 1
        return self.evaluate(policy)


def run_strategy(problem: SearchProblem, strategy: str, params: Mapping[str, Any] | None = None,
                 *, seed: int = 0, run_dir: Path | None = None, resume: bool = False,
                 progress: Progress | None = None) -> SearchResult:
    """Run one registered strategy on ``problem``, measured the same way for every strategy.

    ``result.seconds`` becomes the wall-clock of the run and ``result.evaluations`` the number
    of policies scored with ``problem.evaluate`` during it (a resumed run counts only what it
    scored after resuming; replayed journal lines cost nothing).
    """
    runner = get_strategy(strategy, **dict(params or {}))
    counted = _Counted(problem.evaluate) if problem.evaluate is not None else None
    start = time.perf_counter()
    result = runner.run(dataclasses.replace(problem, evaluate=counted), seed=seed,
                        run_dir=run_dir, resume=resume, progress=progress)
    result.seconds = time.perf_counter() - start
    # evaluations on remote workers count there; the executor reports them
    remote = result.extra.get("executor", {}).get("remote_evaluations", 0)
    result.evaluations = (0 if counted is None else counted.calls) + remote
    return result


def _configs(legacy: dict[str, Any], evaluation: EvalConfig | None, final: FinalConfig | None,
             rescore: RescoreConfig | None
             ) -> tuple[EvalConfig, FinalConfig, RescoreConfig]:
    """The three config objects, with haq 0.1.0's flat keywords folded in (deprecated)."""
    groups: dict[str, Any] = {"evaluation": evaluation or EvalConfig(),
                              "final": final or FinalConfig(),
                              "rescore": rescore or RescoreConfig()}
    for key, value in legacy.items():
        group, name = _LEGACY[key]
        warnings.warn(f"haq.search({key}=...) is deprecated; pass {group}="
                      f"{type(groups[group]).__name__}({name}=...)", DeprecationWarning,
                      stacklevel=3)
        groups[group] = dataclasses.replace(groups[group], **{name: value})
    return groups["evaluation"], groups["final"], groups["rescore"]


def _strategy_settings(strategy: str, params: dict[str, Any], preset: str,
                       episodes: int | None) -> dict[str, Any]:
    """``params`` plus the shared settings ``strategy`` takes (``Strategy.takes``), checked by
    building the strategy once: an unknown name or setting fails before any data is read."""
    takes = STRATEGIES.get(strategy).takes
    settings = dict(params)
    if "preset" in takes:
        settings.setdefault("preset", preset)
    if episodes is not None:
        if "episodes" not in takes:
            raise ConfigError(f"strategy {strategy!r} runs no episodes, so episodes= does not "
                              "apply; drop it, or choose one of "
                              f"{', '.join(strategies_taking('episodes'))}")
        settings["episodes"] = episodes
    get_strategy(strategy, **settings)
    return settings


def search(model: nn.Module | str, data: Any, cost_model: CostModel | CostTable | str,
           budgets: Sequence[Budget] | Mapping[str, str], strategy: str = DEFAULT_STRATEGY, *,
           specs: Sequence[LayerSpec] | None = None, space: BitSpace | None = None,
           quant_config: QuantConfig | None = None, evaluation: EvalConfig | None = None,
           rescore: RescoreConfig | None = None, final: FinalConfig | None = None,
           episodes: int | None = None, seed: int = 0, run_dir: str | Path | None = None,
           resume: bool = False, preset: str = "default", pin_ends: bool | None = None,
           progress: Progress | None = None, metric: Any = None, device: str | None = "auto",
           workers: int | None = None, ray_address: str | None = None,
           **strategy_params: Any) -> SearchResult:
    """Search a per-layer bit policy that meets every budget.

    Args:
        model, data, cost_model, budgets, specs, space, quant_config, evaluation, seed, preset,
            pin_ends, metric, device: the problem, as for ``build_problem``. ``data`` may be a
            dataset name, an image folder, ``file.py:factory``, ``DataSplits`` or a dict /
            tuple of torch Datasets or DataLoaders; ``metric`` a function ``(model, loader)
            -> float`` (with ``haq.metrics.Metric(fn, name, mode="min")`` when lower is
            better) that replaces top-1 in the reward, the leaderboard and the report;
            ``device`` is ``"auto"``, ``"cpu"`` or ``"cuda"`` (every calibration, score and
            fine-tune runs there).
        strategy: a registered strategy (``available_strategies()``). The default, ``ohq``,
            measures best on the post-training leaderboard (docs/benchmarks.md#leaderboard);
            ``haq`` is the paper's DDPG agent and ``haq-ilp`` that agent started from the
            ``ohq`` policy.
        rescore: re-rank the best distinct policies after a short recovery fine-tune each
            (``RescoreConfig(top, steps)``; off by default).
        final: fine-tune the chosen policy before its test score (``FinalConfig(epochs,
            steps, distill)``; default: no fine-tune, the post-training test accuracy).
        episodes: episode budget of episodic strategies (their own default if omitted).
        run_dir: journal, checkpoints, ``best_policy.json``; ``None`` keeps it in memory.
        resume: continue the run in ``run_dir`` instead of refusing to overwrite it.
        progress: called after every episode with a small dict (and with ``{"stage":
            "rescore", ...}`` after each re-scored policy); the library never prints.
        workers, ray_address: run on Ray (the ``haq[ray]`` extra): ``workers`` actors, each
            holding one model replica, evaluate that many episodes per round, and OHQ/HAWQ
            probes run as Ray tasks; ``ray_address`` joins a running cluster instead of
            starting a local one. Neither given: everything runs in this process, Ray unused.
        **strategy_params: passed to the strategy (e.g. ``warmup=10`` for ``haq``). The flat
            keywords of haq 0.1.0 (``eval_samples``, ``finetune_steps``,
            ``final_finetune_epochs``, ``final_finetune_steps``, ``final_distill``,
            ``rescore_top``, ``rescore_steps``) still work, with a ``DeprecationWarning``.

    Returns:
        The strategy's result (``seconds`` and ``evaluations`` measured by ``run_strategy``);
        ``extra`` holds ``float_accuracy`` and ``w8a8_accuracy`` (held-out), ``test_accuracy``
        of the chosen policy (after the final fine-tune if any), ``float_test_accuracy``
        (all scores of the metric: top-1 by default; ``extra["quality"]`` names the metric
        and gives its own values, un-negated for a ``"min"`` metric) and the ``device``.
        With ``run_dir``, the directory also gets ``specs.json``, ``cost_table.json``,
        ``best_policy.json`` and ``result.json`` for ``haq report``.

    Raises:
        BudgetInfeasibleError: no policy in ``space`` meets the budgets (checked up front).
        RunError: ``run_dir`` holds another run and ``resume`` is false.
    """
    legacy = {k: strategy_params.pop(k) for k in list(strategy_params) if k in _LEGACY}
    evaluation, final, rescore = _configs(legacy, evaluation, final, rescore)
    strategy_params = _strategy_settings(strategy, strategy_params, preset, episodes)
    target = resolve_device(device)
    if run_dir is not None:
        check_run_dir(run_dir, resume)  # before any slow work; nothing written if refused
    check_request(workers, ray_address)
    net, name, splits = resolve_inputs(model, data, seed)  # once: synthetic data is per model
    problem = build_problem(net, splits, cost_model, budgets, specs=specs, space=space,
                            quant_config=quant_config, evaluation=evaluation, seed=seed,
                            preset=preset, pin_ends=pin_ends, model_name=name, metric=metric,
                            device=str(target))
    path = Path(run_dir) if run_dir is not None else None
    with claim(path, resume), distributed(problem, workers, ray_address) as problem:
        if path is not None:
            write_inputs(path, problem.specs, problem.table, keep=resume)
        result = run_strategy(problem, strategy, strategy_params, seed=seed, run_dir=path,
                              resume=resume, progress=progress)
        result = rescore_result(problem, result, rescore, seed=seed, run_dir=path,
                                progress=progress)
        result.extra["float_accuracy"] = problem.float_accuracy
        result.extra["device"] = str(target)
        if problem.evaluate is not None:
            w8a8 = Policy.uniform(problem.specs, 8, 8)
            result.extra["w8a8_accuracy"] = problem.evaluate(w8a8).accuracy
        result.extra.update(_test_scores(problem, splits, result.best, final, seed, path))
        result.extra["quality"] = quality_summary(problem, result)
        if path is not None:
            write_outputs(path, result, problem, strategy, seed)
    return result


def _test_scores(problem: SearchProblem, splits: DataSplits, policy: Policy, final: FinalConfig,
                 seed: int, path: Path | None) -> dict[str, Any]:
    """Test score of the chosen policy (fine-tuned if ``final`` says so) and of the float
    model; the only use of the test split. A fine-tuned model is saved into the run."""
    quantized, history = final_model(problem, policy, final, seed=seed)
    metric = problem.metric or as_metric(None)
    test = loader(splits.test, eval_batch_size(splits.input_shape))
    out: dict[str, Any] = {"test_accuracy": metric.score(quantized, test)}
    if problem.model is not None:
        out["float_test_accuracy"] = metric.score(problem.model, test)
    if splits.test_source != "test":
        out["test_split"] = splits.test_source
    if final.trains:
        out["final_finetune"] = {**final.to_dict(), "loss": history.get("loss")}
        if path is not None:
            buffer = {k: v.cpu() for k, v in quantized.state_dict().items()}
            atomic_write(RunLayout(path).final_model,
                         lambda handle: torch.save(buffer, handle))
    return out


def quality_summary(problem: SearchProblem, result: SearchResult) -> dict[str, Any]:
    """The metric's name and mode, and its own values (not scores) for the best policy, the
    float model and W8A8, held-out and test."""
    metric = problem.metric or as_metric(None)
    keys = {"best": result.best_accuracy, "float": result.extra.get("float_accuracy"),
            "w8a8": result.extra.get("w8a8_accuracy"),
            "test": result.extra.get("test_accuracy"),
            "float_test": result.extra.get("float_test_accuracy")}
    return {**metric.describe(),
            **{k: None if v is None else metric.from_score(float(v)) for k, v in keys.items()}}
