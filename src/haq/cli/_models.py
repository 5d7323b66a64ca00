"""`haq models`, `haq specs MODEL`, `haq train MODEL`: the model zoo from the command line."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from haq.cli._common import console
from haq.cli._model_options import (
    ALLOW_REUSE_HELP,
    DEVICE_HELP,
    INPUT_SHAPE_HELP,
    MODEL_HELP,
    choose_device,
    choose_model,
)


def _specs_of(name: str) -> tuple[list[Any], int]:
    """Layer specs of a zoo model and its total parameter count (batch-norm included)."""
    from haq.models import create, example_input
    from haq.specs import extract_specs

    model = create(name)
    return extract_specs(model, example_input(name)), sum(p.numel() for p in model.parameters())


def models() -> None:
    """List the model zoo: dataset, quantizable layers, parameters, MACs, recorded accuracy."""
    from haq.models import available, info

    # Compact cells so that the names, which users copy into other commands, never get cut.
    table = Table(title="haq model zoo", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for column in ("model", "data", "input", "layers", "params M", "MACs M", "test %"):
        table.add_column(column, justify="left" if column in ("model", "data") else "right",
                         no_wrap=True)
    for name in available():
        meta = info(name)
        specs, params = _specs_of(name)
        accuracy = f"{meta.test_accuracy:.2f}" if meta.test_accuracy is not None else (
            "-" if meta.dataset == "imagenet" else "untrained")
        data = "fmnist" if meta.dataset == "fashion-mnist" else meta.dataset
        table.add_row(name, data, "x".join(map(str, meta.input_shape)), str(len(specs)),
                      f"{params / 1e6:.3f}",
                      f"{sum(s.macs for s in specs) / 1e6:.1f}", accuracy)
    console.print(table)
    console.print("test %: float top-1 of the shipped weights; ImageNet shapes have no weights "
                  "(cost tables only).")


def specs(
    model: str = typer.Argument(..., help=MODEL_HELP),
    input_shape: str | None = typer.Option(None, help=INPUT_SHAPE_HELP + " (needed for a "
                                           "file.py model)"),
    allow_reuse: bool = typer.Option(False, "--allow-reuse", help=ALLOW_REUSE_HELP),
) -> None:
    """Show every quantizable layer of MODEL in execution order, with shapes, params and MACs."""
    layers = choose_model(model, input_shape, allow_reuse, needs_shape=True).layer_specs()
    table = Table(title=f"{model}: {len(layers)} quantizable layers")
    for column in ("#", "name", "kind", "in ch", "out ch", "kernel", "stride", "in size",
                   "out size", "params", "MACs"):
        table.add_column(column, justify="left" if column in ("name", "kind") else "right")
    for s in layers:
        table.add_row(str(s.index), s.name, s.kind, str(s.in_channels), str(s.out_channels),
                      f"{s.kernel[0]}x{s.kernel[1]}", str(s.stride[0]),
                      _size(s, s.in_size), _size(s, s.out_size),
                      f"{s.params:,}", f"{s.macs:,}")
    console.print(table)
    console.print(f"total: {sum(s.params for s in layers):,} params, "
                  f"{sum(s.macs for s in layers):,} MACs per image")


def _size(spec: Any, size: tuple[int, int]) -> str:
    """A feature map as HxW; a Linear applied to several tokens as "N tokens"."""
    return f"{spec.tokens} tokens" if spec.tokens > 1 else f"{size[0]}x{size[1]}"


def _progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total} steps"),
                    TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def _write_outputs(out: Path, state: dict[str, Any], sidecar: dict[str, Any]) -> None:
    import torch

    from haq.runs import atomic_write, atomic_write_text

    buffer = io.BytesIO()
    torch.save(state, buffer)
    blob = buffer.getvalue()
    sidecar["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    sidecar["weights_bytes"] = len(blob)
    atomic_write(out, lambda handle: handle.write(blob))
    side = out.with_suffix(".json")
    atomic_write_text(side, json.dumps(sidecar, indent=2) + "\n")


def train(
    model: str = typer.Argument(..., help="trainable zoo model, e.g. resnet20-fmnist"),
    epochs: int | None = typer.Option(None, help="epochs (default: the model's recipe)"),
    lr: float | None = typer.Option(None, help="peak learning rate (default: the recipe)"),
    seed: int = typer.Option(0, help="seed for initialisation, data order and augmentation"),
    out: Path | None = typer.Option(None, help="weights file; default ./MODEL.pt"),
    data_dir: Path | None = typer.Option(None, help="directory with the dataset's IDX files"),
    threads: int = typer.Option(2, help="torch CPU threads"),
    max_batches: int | None = typer.Option(None, help="cap batches per epoch (smoke runs)"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
) -> None:
    """Train MODEL with its recorded recipe; write weights + a JSON sidecar, report test top-1."""
    import torch

    from haq import data as hdata
    from haq.errors import ConfigError
    from haq.finetune import TrainConfig
    from haq.models import available, info

    meta = info(model)
    if not meta.recipe:
        raise ConfigError(f"{model} is cost-only and cannot be trained; trainable models: "
                          + ", ".join(n for n in available() if info(n).recipe))
    target = choose_device(device)
    torch.set_num_threads(threads)
    recipe = {**meta.recipe, "seed": seed, "device": str(target)}
    overrides = {"epochs": epochs, "lr": lr, "max_batches": max_batches}
    recipe.update({k: v for k, v in overrides.items() if v is not None})
    config = TrainConfig.from_dict(recipe)
    splits = hdata.load(recipe.get("dataset", meta.dataset), root=data_dir)
    out = out or Path(f"{model}.pt")
    sidecar = train_and_save(model, splits, config, out, threads=threads)
    console.print(f"{model}: test top-1 {sidecar['test_accuracy']:.2f}% after "
                  f"{sidecar['train_seconds'] / 60:.1f} min; wrote {out} and "
                  f"{out.with_suffix('.json')}")


def train_and_save(model: str, splits: Any, config: Any, out: Path,
                   threads: int) -> dict[str, Any]:
    """Train zoo ``model`` on ``splits`` with a progress bar; write weights + sidecar JSON.

    Returns:
        The sidecar written next to ``out`` (``out`` with a ``.json`` suffix).
    """
    import torch

    import haq
    from haq.finetune import evaluate
    from haq.finetune import train as run_training
    from haq.models import create

    net = create(model, seed=config.seed)
    started = time.perf_counter()
    with _progress_bar() as bar:
        task = bar.add_task(f"train {model}", total=None, status="")

        def on_progress(event: dict[str, Any]) -> None:
            if event["event"] == "step":
                bar.update(task, completed=event["step"], total=event["total_steps"],
                           status=f"epoch {event['epoch'] + 1} loss {event['loss']:.3f}")
            else:
                bar.console.print(
                    f"epoch {event['epoch'] + 1}: loss {event['loss']:.4f}, train "
                    f"{event['train_accuracy']:.2f}%, held-out {event['eval_accuracy']:.2f}%")

        history = run_training(net, splits.train, config, progress=on_progress,
                               eval_data=splits.heldout)
    seconds = time.perf_counter() - started
    test_accuracy = evaluate(net, splits.test)
    sidecar = {
        "model": model, "dataset": splits.name, "test_accuracy": round(test_accuracy, 2),
        "heldout_accuracy": round(history["eval_accuracy"][-1], 2),
        "recipe": {**config.to_dict(), "dataset": splits.name},
        "command": "haq " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "haq": haq.__version__, "threads": threads,
        "train_seconds": round(seconds, 1), "params": sum(p.numel() for p in net.parameters()),
        "history": {k: [round(v, 4) for v in vals] for k, vals in history.items()
                    if isinstance(vals, list)},
    }
    _write_outputs(out, {k: v.cpu() for k, v in net.state_dict().items()}, sidecar)
    return sidecar
