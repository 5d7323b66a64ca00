"""`haq apply` and `haq finetune`: re-apply a saved policy JSON to a zoo model, score, train."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

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
    ModelChoice,
    calibrated,
    check_data_shape,
    choose_device,
    choose_model,
    dataset_for,
)


def _quantized(choice: ModelChoice, policy_path: Path, dataset: str | None,
               data_dir: Path | None, calib_batches: int, per_tensor: bool,
               rounding: str = "nearest", device: Any = "cpu", data: Any = None
               ) -> tuple[Any, Any, Any, Any]:
    """Load the model (zoo weights if it ships them) and its data (``data``, the ``--data``
    splits, or the dataset by name), checked to fit, apply the policy and calibrate on train
    batches, on ``device``."""
    from haq import data as hdata
    from haq.policy import Policy
    from haq.quantize import QuantConfig

    float_net = choice.module().to(device)  # a cost-only zoo model is refused before the data
    splits = data if data is not None else hdata.load(dataset_for(choice, dataset),
                                                      root=data_dir)
    check_data_shape(choice, splits.input_shape, splits.name)
    if choice.shape is None:  # a file model without --input-shape: traced at the data's
        choice.shape = tuple(splits.input_shape)
    specs = choice.layer_specs()
    policy = Policy.load(policy_path, specs)
    config = QuantConfig(weight_granularity="per_tensor" if per_tensor else "per_channel",
                         rounding=rounding)
    net, _ = calibrated(float_net, policy, splits, config, calib_batches=calib_batches,
                        device=device)
    return float_net, net, specs, splits


def _named(metric: Any) -> str:
    """`` (name)`` of a metric other than top-1, for the printed line."""
    return "" if metric.name == "top1" else f" ({metric.name}, {metric.mode}imised)"


def _shown(metric: Any) -> Any:
    """value -> text: ``90.12%`` for top-1 (as always), 4 significant digits otherwise."""
    if metric.name == "top1":
        return lambda v, sign="": f"{v:{sign}.2f}%"
    return lambda v, sign="": f"{v:{sign}.4g}{metric.unit}"


def _write_result(path: Path | None, record: dict[str, Any]) -> None:
    """Write ``record`` as JSON to ``path`` atomically (the ``--result`` option)."""
    if path is None:
        return
    import json

    from haq.runs import atomic_write_text

    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    console.print(f"wrote {path}")


def _cost_line(hardware: str | None, specs: Any, policy_path: Path) -> str:
    if hardware is None:
        return ""
    import haq.cost
    from haq.policy import Policy

    table = haq.cost.get(hardware).table(specs)
    costs = table.evaluate(Policy.load(policy_path, specs))
    ref = table.evaluate(Policy.uniform(specs, 8, 8))
    return ", ".join(f"{m} {v:.4g} {table.units[m]} ({v / ref[m]:.2f}x W8A8)"
                     for m, v in costs.items())


def apply(
    model: str = typer.Argument(..., help=MODEL_HELP + " (with trained weights)"),
    policy: Path = typer.Argument(..., help="policy JSON (from `haq search` or written by hand)"),
    split: str = typer.Option("test", help="split to score: heldout or test"),
    hardware: str | None = typer.Option(None, help="also price the policy on this cost model"),
    calib_batches: int = typer.Option(8, help="training batches of 128 used for calibration"),
    per_tensor: bool = typer.Option(False, help="per-tensor weights (paper mode)"),
    rounding: str = typer.Option("nearest", help="weight rounding: nearest, or learned "
                                 "(AdaRound-style, from the calibration data; slower)"),
    data_dir: Path | None = typer.Option(None, help="directory with the dataset's files"),
    data: str | None = DATA, resize: str | None = RESIZE, mean: str | None = MEAN,
    std: str | None = STD, grayscale: bool = GRAYSCALE, metric: str | None = METRIC,
    metric_mode: str | None = METRIC_MODE,
    result: Path | None = typer.Option(None, help="also write the accuracies to this JSON file"),
    dataset: str | None = typer.Option(None, help="dataset [default: the zoo model's]"),
    input_shape: str | None = typer.Option(None, help=INPUT_SHAPE_HELP),
    allow_reuse: bool = typer.Option(False, "--allow-reuse", help=ALLOW_REUSE_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
) -> None:
    """Quantize MODEL with POLICY (no training) and report float vs quantized top-1."""
    from haq.errors import ConfigError
    from haq.metrics import measure

    if split not in ("heldout", "test"):
        raise ConfigError(f"--split must be heldout or test, got {split!r}")
    chosen = data_choice(dataset, data, resize, mean, std, grayscale, metric, metric_mode)
    target = choose_device(device)
    choice = choose_model(model, input_shape, allow_reuse)
    float_net, net, specs, splits = _quantized(choice, policy, chosen.dataset, data_dir,
                                               calib_batches, per_tensor, rounding, target,
                                               chosen.source())
    scored = getattr(splits, split)
    float_acc = measure(float_net, scored, chosen.metric)
    quant_acc = measure(net, scored, chosen.metric)
    shown = _shown(chosen.metric)
    console.print(f"{model} on {splits.name}/{split}{_named(chosen.metric)}: float "
                  f"{shown(float_acc)}, quantized {shown(quant_acc)} "
                  f"({shown(quant_acc - float_acc, '+').replace('%', ' pt')})")
    line = _cost_line(hardware, specs, policy)
    if line:
        console.print(f"cost on {hardware}: {line}")
    # the keys a search's result.json uses for the same two numbers on that split
    quant_key, float_key = {"test": ("test_accuracy", "float_test_accuracy"),
                            "heldout": ("heldout_accuracy", "float_accuracy")}[split]
    _write_result(result, {"command": "apply", "model": model, "policy": str(policy),
                           "dataset": splits.name, "split": split, "device": str(target),
                           "calibration_batches": calib_batches, "finetune_epochs": 0,
                           quant_key: quant_acc, float_key: float_acc,
                           "quality": chosen.metric.describe()})


def finetune(
    model: str = typer.Argument(..., help=MODEL_HELP + " (with trained weights)"),
    policy: Path = typer.Argument(..., help="policy JSON"),
    epochs: int = typer.Option(3, help="fine-tune epochs over the train split"),
    lr: float = typer.Option(0.005, help="peak learning rate (cosine schedule)"),
    seed: int = typer.Option(0, help="seed for data order and augmentation"),
    distill: float = typer.Option(1.0, help="weight of distillation from the float model "
                                  "(0 = labels only)"),
    out: Path | None = typer.Option(None, help="checkpoint to write (state_dict + policy)"),
    calib_batches: int = typer.Option(8, help="training batches of 128 used for calibration"),
    per_tensor: bool = typer.Option(False, help="per-tensor weights (paper mode)"),
    data_dir: Path | None = typer.Option(None, help="directory with the dataset's files"),
    data: str | None = DATA, resize: str | None = RESIZE, mean: str | None = MEAN,
    std: str | None = STD, grayscale: bool = GRAYSCALE, metric: str | None = METRIC,
    metric_mode: str | None = METRIC_MODE,
    result: Path | None = typer.Option(None, help="also write the accuracies to this JSON file"),
    dataset: str | None = typer.Option(None, help="dataset [default: the zoo model's]"),
    input_shape: str | None = typer.Option(None, help=INPUT_SHAPE_HELP),
    allow_reuse: bool = typer.Option(False, "--allow-reuse", help=ALLOW_REUSE_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
) -> None:
    """Quantization-aware fine-tune of MODEL under POLICY; report test top-1 before and after."""
    import torch

    from haq.cli._models import _progress_bar
    from haq.errors import ConfigError
    from haq.finetune import TrainConfig
    from haq.finetune import finetune as run_finetune
    from haq.metrics import measure
    from haq.runs import atomic_write

    config = TrainConfig(epochs=epochs, lr=lr, seed=seed, augment=True, distill=distill)
    if calib_batches < 1:  # every setting is checked before the model is loaded
        raise ConfigError(f"--calib-batches must be >= 1, got {calib_batches}")
    if out is not None and out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name, e.g. {out / 'ft.pt'}")
    chosen = data_choice(dataset, data, resize, mean, std, grayscale, metric, metric_mode)
    target = choose_device(device)
    choice = choose_model(model, input_shape, allow_reuse)
    float_net, net, _, splits = _quantized(choice, policy, chosen.dataset, data_dir,
                                           calib_batches, per_tensor, "nearest", target,
                                           chosen.source())
    before = measure(net, splits.test, chosen.metric)
    started = time.perf_counter()
    with _progress_bar() as bar:
        task = bar.add_task(f"finetune {model}", total=None, status="")

        def on_progress(event: dict[str, Any]) -> None:
            if event["event"] == "step":
                bar.update(task, completed=event["step"], total=event["total_steps"],
                           status=f"loss {event['loss']:.3f}")

        run_finetune(net, splits.train, config, progress=on_progress, teacher=float_net)
    after = measure(net, splits.test, chosen.metric)
    float_acc = measure(float_net, splits.test, chosen.metric)
    shown = _shown(chosen.metric)
    console.print(f"{model}{_named(chosen.metric)}: float {shown(float_acc)}, quantized "
                  f"{shown(before)} -> {shown(after)} after {epochs} epoch(s) "
                  f"({time.perf_counter() - started:.0f} s)")
    record = {"command": "finetune", "model": model, "policy": str(policy),
              "dataset": splits.name, "calibration_batches": calib_batches,
              "device": str(target), "finetune_epochs": epochs,
              "post_training_test_accuracy": before, "test_accuracy": after,
              "float_test_accuracy": float_acc, "quality": chosen.metric.describe()}
    _write_result(result, record)
    if out is not None:
        weights = {k: v.cpu() for k, v in net.state_dict().items()}  # loadable anywhere
        state = {"state_dict": weights, "policy": policy.read_text(), "result": record}
        atomic_write(out, lambda handle: torch.save(state, handle))
        console.print(f"wrote {out}")
