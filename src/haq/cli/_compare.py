"""`haq compare`: several strategies on one model, hardware and budget, scored alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from haq.cli._bits import A_BITS_HELP, BITS_HELP, W_BITS_HELP, bit_space
from haq.cli._common import console
from haq.cli._data_options import (
    DATA,
    GRAYSCALE,
    MEAN,
    METRIC,
    METRIC_MODE,
    RESIZE,
    STD,
    data_choice,
)
from haq.cli._model_options import (
    ALLOW_REUSE_HELP,
    DEVICE_HELP,
    INPUT_SHAPE_HELP,
    MODEL_HELP,
    choose_device,
    choose_model,
    load_data,
)


def _budgets(latency: str | None, energy: str | None, size: str | None) -> list:
    from haq.cost import Budget
    from haq.errors import ConfigError

    budgets = [Budget.parse(metric, text) for metric, text in
               (("latency", latency), ("energy", energy), ("size", size)) if text is not None]
    if not budgets:
        raise ConfigError("give at least one budget: --latency, --energy or --size "
                          "(a ratio to W8A8 such as 0.5, or an absolute value such as 2ms)")
    return budgets


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def compare(
    model: str = typer.Argument(..., help=MODEL_HELP + " (with trained weights)"),
    hardware: str = typer.Option(..., "--hardware", help="cost model (`haq cost list`), or a "
                                 "table file (.json/.csv, e.g. from `haq hw profile`)"),
    latency: str | None = typer.Option(None, help="latency budget: ratio to W8A8 or e.g. 2ms"),
    energy: str | None = typer.Option(None, help="energy budget: ratio to W8A8 or e.g. 3mJ"),
    size: str | None = typer.Option(None, help="model-size budget: ratio or e.g. 300kB"),
    strategies: str = typer.Option("haq,ohq,hawq,uniform,random", help="comma-separated"),
    finetune_epochs: int = typer.Option(1, help="fine-tune epochs of every final policy "
                                        "before its test score (0 = calibrate only)"),
    finetune_distill: float = typer.Option(1.0, help="weight of distillation from the float "
                                           "model in that fine-tune (0 = labels only)"),
    out: Path = typer.Option(..., "--out", help="output directory"),
    episodes: int = typer.Option(30, help="episodes of haq and random"),
    hgq_epochs: int = typer.Option(2, help="training epochs of hgq"),
    hgq_steps: int = typer.Option(100, help="batches per hgq epoch"),
    finetune_steps: int = typer.Option(0, help="recovery steps inside each search episode"),
    eval_samples: int = typer.Option(1000, help="held-out samples per search evaluation"),
    rescore_top: int = typer.Option(0, help="re-rank each search's N best policies after a "
                                    "short recovery fine-tune each (0 = off)"),
    rescore_steps: int = typer.Option(50, help="recovery steps per re-ranked policy (0 = "
                                       "score on the whole held-out split, no recovery)"),
    min_bits: int | None = typer.Option(None, help="smallest bit width a search may choose "
                                        "(operands without a set) [default: 2]"),
    bits: str | None = typer.Option(None, help=BITS_HELP),
    w_bits: str | None = typer.Option(None, help=W_BITS_HELP),
    a_bits: str | None = typer.Option(None, help=A_BITS_HELP),
    seed: int = typer.Option(0, help="seed of every search"),
    resume: bool = typer.Option(False, help="resume the strategies' runs in OUT/runs"),
    data: str | None = DATA, resize: str | None = RESIZE, mean: str | None = MEAN,
    std: str | None = STD, grayscale: bool = GRAYSCALE, metric: str | None = METRIC,
    metric_mode: str | None = METRIC_MODE,
    dataset: str | None = typer.Option(None, help="dataset [default: the zoo model's]"),
    input_shape: str | None = typer.Option(None, help=INPUT_SHAPE_HELP),
    allow_reuse: bool = typer.Option(False, "--allow-reuse", help=ALLOW_REUSE_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    workers: int | None = typer.Option(None, help="run strategies and uniform points as "
                                       "parallel Ray tasks on this many workers (the ray extra)"),
    ray_address: str | None = typer.Option(None, help="run on this Ray cluster (`auto`, "
                                           "host:6379); default: a local one"),
) -> None:
    """Run STRATEGIES on MODEL under one budget; write a table (md+csv) and a Pareto plot."""
    from haq.cost import CostTable
    from haq.executors import check_request, distributed
    from haq.search import (
        EvalConfig,
        FinalConfig,
        RescoreConfig,
        build_problem,
        final_scorer,
        strategies_taking,
    )
    from haq.search.compare import compare, write_comparison

    check_request(workers, ray_address)  # before the problem is built
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    chosen = data_choice(dataset, data, resize, mean, std, grayscale, metric, metric_mode)
    space = bit_space(bits, w_bits, a_bits, min_bits)
    cost = CostTable.load(hardware) if Path(hardware).suffix in (".json", ".csv") else hardware
    target = choose_device(device)
    choice = choose_model(model, input_shape, allow_reuse)
    with console.status("building the problem (specs, cost table, calibration)..."):
        splits = load_data(choice, chosen.dataset, chosen=chosen)
        if isinstance(splits, str) and splits.lower() == "synthetic":  # made at its shape
            from haq.search import zoo_on_synthetic

            choice.net, splits = zoo_on_synthetic(choice.net, seed)
        # any other name left by load_data is a zoo model without weights: refused here
        problem = build_problem(choice.net, splits, cost, _budgets(latency, energy, size),
                                specs=choice.specs, space=space, metric=chosen.metric,
                                evaluation=EvalConfig(eval_samples, finetune_steps), seed=seed,
                                model_name=choice.name, device=str(target))
    params: dict[str, dict[str, Any]] = {name: {"episodes": episodes}
                                         for name in strategies_taking("episodes")}
    params["hgq"] = {"epochs": hgq_epochs, "steps_per_epoch": hgq_steps}
    metric_name = chosen.metric.name if chosen.metric.name != "top1" else "accuracy"
    float_value = chosen.metric.from_score(problem.float_accuracy)
    console.print(f"{model}: {len(problem.specs)} layers, float held-out {metric_name} "
                  f"{_fmt(float_value)}{chosen.metric.unit}; budgets "
                  + ", ".join(b.describe() for b in problem.budgets))

    def report(info: dict) -> None:
        if info.get("error"):
            console.print(f"[yellow]{info['name']} failed:[/] {info['error']}")
        else:
            timing = f"  search {info['search_seconds']:.1f} s" if info["kind"] == "strategy" \
                else ""
            value = None if info["accuracy"] is None else chosen.metric.from_score(
                info["accuracy"])
            console.print(f"{info['name']:>8}: test {_fmt(value)}{chosen.metric.unit}  "
                          + "  ".join(f"{m} {_fmt(v)}" for m, v in info["costs"].items())
                          + timing)

    final = FinalConfig(finetune_epochs, distill=finetune_distill)
    scorer = final_scorer(problem, splits.test, final, seed=seed)
    with distributed(problem, workers, ray_address) as problem:
        result = compare(problem, names, final_score=scorer,
                         params=params, seed=seed, run_root=out / "runs", resume=resume,
                         rescore=RescoreConfig(rescore_top, rescore_steps), progress=report)
    paths = write_comparison(result, out, title=f"{model} on {problem.table.source.get('model')}")
    view = Table(title=f"{model}: strategies at {', '.join(b.describe() for b in problem.budgets)}")
    costs = [f"{m} ({u})" for m, u in result.units.items()]
    for column in ("name", "test " + result.label(), *costs, "search (s)", "evaluations"):
        view.add_column(column, justify="left" if column == "name" else "right")
    for e in result.entries:
        view.add_row(e.name, _fmt(result.value(e.accuracy)),
                     *(_fmt(e.costs.get(m)) for m in result.units),
                     f"{e.search_seconds:.1f}", str(e.evaluations))
    console.print(view)
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))
