"""`haq search MODEL`: search a bit policy under hardware budgets, with a live progress bar."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from haq.cli._common import console

_METRICS = ("latency", "energy", "size", "bops", "cycles")


def _load_factory(target: str) -> Any:
    """``path/to/file.py:factory`` -> the nn.Module the factory returns."""
    from torch import nn

    from haq.errors import ConfigError

    path_text, _, attr = target.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist; give a zoo name (`haq models`) or "
                          "path/to/file.py:factory")
    spec = importlib.util.spec_from_file_location(f"haq_user_model_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"{path} has no callable {attr!r}; MODEL must be file.py:factory")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{target} returned {type(model).__name__}, not an nn.Module")
    return model


def _resolve(model: str, dataset: str | None, input_shape: str | None
             ) -> tuple[Any, str, str, Any]:
    """(model object or zoo name, display name, dataset name, specs or None)."""
    from haq.errors import ConfigError

    if ".py:" not in model:
        from haq.models import info

        return model, model, dataset or info(model).dataset, None
    if dataset is None:
        raise ConfigError("a model given as file.py:factory needs --dataset (fashion-mnist, "
                          "digits or synthetic)")
    net = _load_factory(model)
    specs = None
    if input_shape:
        import torch

        from haq.specs import extract_specs

        try:
            shape = tuple(int(v) for v in input_shape.split(","))
        except ValueError:
            raise ConfigError(f"--input-shape {input_shape!r} must look like 1,28,28") from None
        specs = extract_specs(net, torch.zeros(1, *shape))
    return net, Path(model.rpartition(":")[0]).stem, dataset, specs


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


def _bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console)


def _on_event(bar: Progress, task: Any, units: dict[str, str]) -> Any:
    """The search's progress callback: one bar over episodes, then over re-scored policies."""

    def progress(event: dict[str, Any]) -> None:
        if event.get("stage") == "rescore":
            bar.update(task, description="re-score", completed=event["done"],
                       total=event["total"], status=f"episode {event['episode']}: "
                       f"{event['accuracy']:.2f}% after recovery")
            return
        bar.update(task, completed=event["episode"] + 1, total=event["episodes"],
                   status=_status(event, units))

    return progress


def _status(event: dict[str, Any], units: dict[str, str]) -> str:
    if event.get("best_reward") is None:
        return "no feasible episode scored yet"
    costs = ", ".join(f"{m} {v:.4g} {units.get(m, '')}".rstrip()
                      for m, v in (event.get("best_costs") or {}).items())
    return (f"best reward {event['best_reward']:+.3f}  acc {event['best_accuracy']:.2f}%  "
            f"{costs}")


def search(
    model: str = typer.Argument(..., help="zoo model name, or path/to/file.py:factory"),
    hardware: str = typer.Option("bismo-edge", help="cost model (`haq cost list`)"),
    latency: str | None = typer.Option(None, help="latency budget: 0.5 (x W8A8) or 12ms"),
    energy: str | None = typer.Option(None, help="energy budget: 0.6 (x W8A8) or 3.5mJ"),
    size: str | None = typer.Option(None, help="model size budget: 0.25 (x W8A8) or 1.2MB"),
    bops: str | None = typer.Option(None, help="bit-operations budget: 0.3 or 2e9BOPs"),
    cycles: str | None = typer.Option(None, help="cycle budget: 0.5 or 5e6cycles"),
    strategy: str = typer.Option("haq", help="haq, random, uniform, ... (registered strategies)"),
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
    rescore_steps: int = typer.Option(50, help="recovery steps per re-ranked policy"),
    min_bits: int = typer.Option(2, help="smallest bit width for weights and activations"),
    max_bits: int = typer.Option(8, help="largest bit width for weights and activations"),
    pin_ends: bool | None = typer.Option(None, "--pin-ends/--no-pin-ends",
                                         help="first/last layer at 8 bits [default: preset]"),
    dataset: str | None = typer.Option(None, help="dataset [default: the zoo model's]"),
    input_shape: str | None = typer.Option(None, help="C,H,W to trace a file.py model"),
    param: list[str] = typer.Option([], "--param", "-p",  # noqa: B006 - typer needs a list
                                    help="strategy setting key=value, repeatable"),
) -> None:
    """Search per-layer bit widths for MODEL that meet every budget on HARDWARE."""
    from haq.errors import ConfigError
    from haq.policy import BitSpace
    from haq.quantize import QuantConfig
    from haq.search.api import search as run_search

    given = dict(zip(_METRICS, (latency, energy, size, bops, cycles), strict=True))
    budgets = {m: text for m, text in given.items() if text is not None}
    if not budgets:
        raise ConfigError("give at least one budget, e.g. --latency 0.5 (half of W8A8) or "
                          "--size 1.2MB; several may be combined")
    net, name, data_name, specs = _resolve(model, dataset, input_shape)
    run_dir = run or Path("runs") / f"{name}-{hardware}-{strategy}-s{seed}"
    units: dict[str, str] = {}
    with _bar() as bar:
        task = bar.add_task("search", total=episodes, status="starting")
        progress = _on_event(bar, task, units)
        from haq.cost import METRIC_UNITS

        units.update(METRIC_UNITS)
        result = run_search(net, data_name, hardware, budgets, strategy, specs=specs,
                            space=BitSpace((min_bits, max_bits), (min_bits, max_bits)),
                            episodes=episodes, seed=seed, run_dir=run_dir, resume=resume,
                            finetune_steps=finetune_steps, final_finetune_epochs=finetune_epochs,
                            final_distill=finetune_distill,
                            eval_samples=eval_samples, rescore_top=rescore_top,
                            rescore_steps=rescore_steps, preset=preset, pin_ends=pin_ends,
                            quant_config=None if rounding == "nearest" else replace(
                                QuantConfig.preset(preset), rounding=rounding),
                            progress=progress, **_params(param))
    units.update(result.best.provenance.get("units", {}))
    console.print(f"best policy  {result.best.summary()}")
    console.print(heldout_line(result))
    for metric, value in result.costs.items():
        console.print(f"{metric:8s} {value:.6g} {units.get(metric, '')}")
    if "test_accuracy" in result.extra:
        console.print(f"test top-1 after fine-tune  {result.extra['test_accuracy']:.2f}% (float "
                      f"{result.extra['float_test_accuracy']:.2f}%)")
    _record_command(run_dir)
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
        return (f"held-out top-1  {chosen['episode_accuracy']:.2f}% in the search (float "
                f"{result.extra.get('float_accuracy', float('nan')):.2f}%); {accuracy:.2f}% "
                f"on the whole split after {rescored[0]['steps']} recovery steps, best of "
                f"{len(rescored)} re-ranked")
    return (f"held-out top-1  {accuracy:.2f}% (float "
            f"{result.extra.get('float_accuracy', float('nan')):.2f}%)")


def _record_command(run_dir: Path) -> None:
    """Add the command line to ``result.json`` so the report can show how to reproduce it."""
    import shlex
    import sys

    from haq.runs import atomic_write_text

    path = run_dir / "result.json"
    if path.exists():
        data = json.loads(path.read_text())
        data["command"] = "haq " + shlex.join(sys.argv[1:])
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
