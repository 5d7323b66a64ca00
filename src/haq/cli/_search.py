"""`haq search MODEL`: search a bit policy under hardware budgets, with a live progress bar."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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
from haq.cli._log_options import LOG_DIR_HELP, LOG_HELP, LOG_URI_HELP
from haq.cli._model_options import (
    ALLOW_REUSE_HELP,
    DEVICE_HELP,
    INPUT_SHAPE_HELP,
    MODEL_HELP,
    choose_device,
    choose_model,
    load_data,
)

_METRICS = ("latency", "energy", "size", "bops", "cycles")


def _budgets(given: dict[str, list[str]]) -> dict[str, str]:
    """One text per budget metric; the same option twice is refused, not silently overridden."""
    from haq.errors import ConfigError

    twice = {m: texts for m, texts in given.items() if len(texts) > 1}
    if twice:
        metric, texts = next(iter(twice.items()))
        raise ConfigError(f"--{metric} given {len(texts)} times ({', '.join(texts)}); give each "
                          "budget once")
    budgets = {m: texts[0] for m, texts in given.items() if texts}
    if not budgets:
        raise ConfigError("give at least one budget, e.g. --latency 0.5 (half of W8A8) or "
                          "--size 1.2MB; several may be combined")
    return budgets


def _cost_model(hardware: str, hw_param: list[str], param: list[str]) -> Any:
    """The cost model by name, with ``--hw-param`` settings; a cost-model setting passed as
    ``--param`` (a strategy setting) is refused with the right spelling."""
    from haq.cli._cost import parse_params
    from haq.cost import describe, get
    from haq.errors import ConfigError

    known = {p["name"] for p in describe(hardware)["params"]}
    for item in param:
        key = item.partition("=")[0].strip().replace("-", "_")
        if key in known:
            raise ConfigError(f"--param {key} is a setting of the cost model {hardware!r}, but "
                              f"--param sets the strategy; pass --hw-param {item}")
    return get(hardware, **parse_params(hw_param)) if hw_param else hardware


def _params(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse (numbers, true/false), else text."""
    from haq.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--param {item!r} must be key=value, e.g. --param warmup=10")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


# the default is haq.search.DEFAULT_STRATEGY, named here so `haq --help` need not import torch
STRATEGY_HELP = ("ohq, haq (the paper's DDPG agent), haq-ilp, hawq, hgq, random, uniform "
                 "[default: ohq, the best on the post-training leaderboard, in seconds]")


def _bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console)


def _on_event(bar: Progress, task: Any, units: dict[str, str], metric: Any = None) -> Any:
    """The search's progress callback: one bar over episodes, then over re-scored policies.
    Scores are shown as ``metric`` (a ``haq.metrics.Metric``; top-1 if omitted) names them."""
    from haq.metrics import as_metric

    quality = as_metric(metric)

    def progress(event: dict[str, Any]) -> None:
        if event.get("stage") == "rescore":
            bar.update(task, description="re-score", completed=event["done"],
                       total=event["total"], status=f"episode {event['episode']}: "
                       f"{_shown(quality, event['accuracy'])} re-scored")
            return
        bar.update(task, completed=event["episode"] + 1, total=event["episodes"],
                   status=_status(event, units, quality))

    return progress


def _shown(metric: Any, score: float) -> str:
    """A score as the metric's own value with its name and unit, e.g. ``top1 91.20%``."""
    value = metric.from_score(score)
    return f"{metric.name} {value:.2f}%" if metric.unit == "%" else \
        f"{metric.name} {value:.4g}{metric.unit}"


def _status(event: dict[str, Any], units: dict[str, str], metric: Any) -> str:
    if event.get("best_reward") is None:
        return "no feasible episode scored yet"
    costs = ", ".join(f"{m} {v:.4g} {units.get(m, '')}".rstrip()
                      for m, v in (event.get("best_costs") or {}).items())
    return (f"best reward {event['best_reward']:+.3f}  "
            f"{_shown(metric, event['best_accuracy'])}  {costs}")


def search(
    model: str = typer.Argument(..., help=MODEL_HELP),
    hardware: str = typer.Option("bismo-edge", help="cost model (`haq cost list`)"),
    # lists, so that a budget given twice is refused instead of the last one silently winning
    latency: list[str] = typer.Option(  # noqa: B006
        [], metavar="LIMIT", help="latency budget: 0.5 (x W8A8) or 12ms"),
    energy: list[str] = typer.Option(  # noqa: B006
        [], metavar="LIMIT", help="energy budget: 0.6 (x W8A8) or 3.5mJ"),
    size: list[str] = typer.Option(  # noqa: B006
        [], metavar="LIMIT", help="model size budget: 0.25 (x W8A8) or 1.2MB"),
    bops: list[str] = typer.Option(  # noqa: B006
        [], metavar="LIMIT", help="bit-operations budget: 0.3 or 2e9BOPs"),
    cycles: list[str] = typer.Option(  # noqa: B006
        [], metavar="LIMIT", help="cycle budget: 0.5 or 5e6cycles"),
    strategy: str | None = typer.Option(None, help=STRATEGY_HELP),
    episodes: int | None = typer.Option(None, help="episodes of episodic strategies"),
    seed: int = typer.Option(0, help="every random choice derives from it"),
    run: Path | None = typer.Option(None, help="run directory [default: runs/MODEL-HW-STRATEGY"
                                    "-sSEED]"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --run"),
    preset: str = typer.Option("default", help="default or paper (HAQ as published)"),
    rounding: str = typer.Option("nearest", help="weight rounding: nearest or learned "
                                 "(AdaRound-style, cached per layer and bits; slower)"),
    finetune_steps: int = typer.Option(0, help="recovery steps per episode (0 = PTQ proxy)"),
    finetune_epochs: int = typer.Option(0, help="fine-tune the best policy, report test top-1"),
    finetune_distill: float = typer.Option(1.0, help="weight of distillation from the float "
                                           "model in that fine-tune (0 = labels only)"),
    eval_samples: int = typer.Option(1000, help="held-out samples scored per episode"),
    rescore_top: int = typer.Option(0, help="re-rank the N best policies after a short "
                                    "recovery fine-tune each (0 = off)"),
    rescore_steps: int = typer.Option(50, help="recovery steps per re-ranked policy (0 = "
                                       "score on the whole held-out split, no recovery)"),
    min_bits: int | None = typer.Option(None, help="smallest bit width for weights and "
                                        "activations without a set [default: 2]"),
    max_bits: int | None = typer.Option(None, help="largest bit width [default: 8]"),
    bits: str | None = typer.Option(None, help=BITS_HELP),
    w_bits: str | None = typer.Option(None, help=W_BITS_HELP),
    a_bits: str | None = typer.Option(None, help=A_BITS_HELP),
    pin_ends: bool | None = typer.Option(None, "--pin-ends/--no-pin-ends",
                                         help="first/last layer at 8 bits [default: preset]"),
    dataset: str | None = typer.Option(None, help="dataset [default: the zoo model's]"),
    data: str | None = DATA, resize: str | None = RESIZE, mean: str | None = MEAN,
    std: str | None = STD, grayscale: bool = GRAYSCALE, metric: str | None = METRIC,
    metric_mode: str | None = METRIC_MODE,
    input_shape: str | None = typer.Option(None, help=INPUT_SHAPE_HELP),
    param: list[str] = typer.Option([], "--param", "-p",  # noqa: B006 - typer needs a list
                                    help="strategy setting key=value, repeatable"),
    hw_param: list[str] = typer.Option([], "--hw-param",  # noqa: B006
                                       help="cost-model setting key=value (`haq cost list`), "
                                       "e.g. --hardware table --hw-param path=t.csv"),
    allow_reuse: bool = typer.Option(False, "--allow-reuse", help=ALLOW_REUSE_HELP),
    export: str | None = typer.Option(None, "--export", help="also write the best model in this "
                                      "format (onnx, qonnx, packed) into the run directory"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    log: str | None = typer.Option(None, "--log", help=LOG_HELP),
    log_uri: str | None = typer.Option(None, "--log-uri", help=LOG_URI_HELP),
    log_dir: Path | None = typer.Option(None, "--log-dir", help=LOG_DIR_HELP),
    workers: int | None = typer.Option(None, help="evaluate this many episodes per round in "
                                       "parallel on Ray workers (needs haq[ray])"),
    ray_address: str | None = typer.Option(None, help="run on this Ray cluster (`auto`, "
                                           "host:6379); default: a local one"),
) -> None:
    """Search per-layer bit widths for MODEL that meet every budget on HARDWARE."""
    from haq.quantize import QuantConfig
    from haq.search import DEFAULT_STRATEGY, EvalConfig, FinalConfig, RescoreConfig
    from haq.search import search as run_search
    from haq.tracking import open_tracker

    strategy = strategy or DEFAULT_STRATEGY
    budgets = _budgets(dict(zip(_METRICS, (latency, energy, size, bops, cycles), strict=True)))
    space = bit_space(bits, w_bits, a_bits, min_bits, max_bits)  # refused before any loading
    if export is not None:  # an unknown format is refused before the search, not after
        from haq.export import get_format

        get_format(export)
    cost_model = _cost_model(hardware, hw_param, param)
    chosen = data_choice(dataset, data, resize, mean, std, grayscale, metric, metric_mode)
    target = choose_device(device)
    choice = choose_model(model, input_shape, allow_reuse)
    splits = load_data(choice, chosen.dataset, chosen=chosen)
    run_dir = run or Path("runs") / f"{choice.name}-{hardware}-{strategy}-s{seed}"
    tracker = open_tracker(log, run_dir, uri=log_uri, log_dir=log_dir)  # refused before work
    units: dict[str, str] = {}
    with _bar() as bar, tracker:
        task = bar.add_task("search", total=episodes, status="starting")
        progress = tracker.wrap(_on_event(bar, task, units, chosen.metric))
        from haq.cost import METRIC_UNITS

        units.update(METRIC_UNITS)
        result = run_search(choice.net, splits, cost_model, budgets, strategy, specs=choice.specs,
                            space=space,
                            evaluation=EvalConfig(eval_samples, finetune_steps),
                            rescore=RescoreConfig(rescore_top, rescore_steps),
                            final=FinalConfig(finetune_epochs, distill=finetune_distill),
                            episodes=episodes, seed=seed, run_dir=run_dir, resume=resume,
                            preset=preset, pin_ends=pin_ends,
                            quant_config=None if rounding == "nearest" else replace(
                                QuantConfig.preset(preset), rounding=rounding),
                            progress=progress, metric=chosen.metric, device=str(target),
                            workers=workers, ray_address=ray_address, **_params(param))
        _record_command(run_dir)
        tracker.finish(result, run_dir)
    units.update(result.best.provenance.get("units", {}))
    console.print(f"best policy  {result.best.summary()}")
    console.print(heldout_line(result) if chosen.metric.name == "top1"
                  else metric_line(result.extra["quality"]))
    for metric, value in result.costs.items():
        console.print(f"{metric:8s} {value:.6g} {units.get(metric, '')}")
    if "test_accuracy" in result.extra and chosen.metric.name == "top1":
        how = "after fine-tune" if finetune_epochs else "post-training"
        console.print(f"test top-1 {how}  {result.extra['test_accuracy']:.2f}% (float "
                      f"{result.extra['float_test_accuracy']:.2f}%)")
    if export is not None:
        from haq.cli._export import export_best

        written = export_best(run_dir, result.best, choice.net, splits, preset, seed, export,
                              device=target)
        console.print(f"exported  {written}")
    console.print(f"run directory  {run_dir}  (best_policy.json, journal.jsonl; "
                  f"`haq report {run_dir}`)")


def heldout_line(result: Any) -> str:
    """The best policy's held-out accuracy, saying how it was measured."""
    accuracy = result.best_accuracy
    if accuracy is None:
        return "held-out top-1  not evaluated"
    rescored = result.extra.get("rescored")
    if rescored:
        chosen = next(e for e in rescored if e["episode"] == result.best.provenance["episode"])
        steps = rescored[0]["steps"]
        recovery = f" after {steps} recovery steps" if steps else ""
        return (f"held-out top-1  {chosen['episode_accuracy']:.2f}% in the search (float "
                f"{result.extra.get('float_accuracy', float('nan')):.2f}%); {accuracy:.2f}% "
                f"on the whole split{recovery}, best of {len(rescored)} re-ranked")
    return (f"held-out top-1  {accuracy:.2f}% (float "
            f"{result.extra.get('float_accuracy', float('nan')):.2f}%)")


def metric_line(quality: dict[str, Any]) -> str:
    """The user's metric on held-out and test data, for the best policy and the float model."""
    def fmt(key: str) -> str:
        value = quality.get(key)
        return "-" if value is None else f"{value:.4g}{quality.get('unit', '')}"

    return (f"{quality['name']} ({quality['mode']}imised)  held-out {fmt('best')} (float "
            f"{fmt('float')}, W8A8 {fmt('w8a8')}); test {fmt('test')} (float "
            f"{fmt('float_test')})")


def _record_command(run_dir: Path) -> None:
    """Add the command line to ``result.json`` so the report can show how to reproduce it."""
    import shlex
    import sys

    from haq.runs import RunLayout, atomic_write_text

    path = RunLayout(run_dir).result
    if path.exists():
        data = json.loads(path.read_text())
        data["command"] = "haq " + shlex.join(sys.argv[1:])
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
