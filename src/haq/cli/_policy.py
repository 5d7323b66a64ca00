"""`haq apply` and `haq finetune`: re-apply a saved policy JSON to a zoo model, score, train."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from haq.cli._common import console


def _quantized(model: str, policy_path: Path, data_dir: Path | None, calib_batches: int,
               per_tensor: bool, rounding: str = "nearest") -> tuple[Any, Any, Any, Any]:
    """Load the pretrained model and its dataset, apply the policy, calibrate on train batches."""
    from haq import data as hdata
    from haq.models import create, example_input, info
    from haq.policy import Policy
    from haq.quantize import QuantConfig, apply_policy_
    from haq.specs import extract_specs

    net = create(model, pretrained=True)
    specs = extract_specs(net, example_input(model))
    policy = Policy.load(policy_path, specs)
    splits = hdata.load(info(model).dataset, root=data_dir)
    calibration = hdata.loader(splits.train, batch_size=128, shuffle=True, seed=0)
    config = QuantConfig(weight_granularity="per_tensor" if per_tensor else "per_channel",
                         rounding=rounding)
    float_net = create(model, pretrained=True)
    apply_policy_(net, policy,
                  [x for x, _ in zip(calibration, range(calib_batches), strict=False)], config)
    return float_net, net, specs, splits


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
    model: str = typer.Argument(..., help="zoo model with weights, e.g. mobilenetv1-fmnist"),
    policy: Path = typer.Argument(..., help="policy JSON (from `haq search` or written by hand)"),
    split: str = typer.Option("test", help="split to score: heldout or test"),
    hardware: str | None = typer.Option(None, help="also price the policy on this cost model"),
    calib_batches: int = typer.Option(8, help="training batches of 128 used for calibration"),
    per_tensor: bool = typer.Option(False, help="per-tensor weights (paper mode)"),
    rounding: str = typer.Option("nearest", help="weight rounding: nearest, or learned "
                                 "(AdaRound-style, from the calibration data; slower)"),
    data_dir: Path | None = typer.Option(None, help="directory with the dataset's files"),
) -> None:
    """Quantize MODEL with POLICY (no training) and report float vs quantized top-1."""
    from haq.errors import ConfigError
    from haq.finetune import evaluate

    if split not in ("heldout", "test"):
        raise ConfigError(f"--split must be heldout or test, got {split!r}")
    float_net, net, specs, splits = _quantized(model, policy, data_dir, calib_batches, per_tensor,
                                               rounding)
    data = getattr(splits, split)
    float_acc, quant_acc = evaluate(float_net, data), evaluate(net, data)
    console.print(f"{model} on {splits.name}/{split}: float {float_acc:.2f}%, "
                  f"quantized {quant_acc:.2f}% ({quant_acc - float_acc:+.2f} pt)")
    line = _cost_line(hardware, specs, policy)
    if line:
        console.print(f"cost on {hardware}: {line}")


def finetune(
    model: str = typer.Argument(..., help="zoo model with weights, e.g. mobilenetv1-fmnist"),
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
) -> None:
    """Quantization-aware fine-tune of MODEL under POLICY; report test top-1 before and after."""
    import torch

    from haq.cli._models import _progress_bar
    from haq.finetune import TrainConfig, evaluate
    from haq.finetune import finetune as run_finetune
    from haq.runs import atomic_write

    float_net, net, _, splits = _quantized(model, policy, data_dir, calib_batches, per_tensor)
    before = evaluate(net, splits.test)
    config = TrainConfig(epochs=epochs, lr=lr, seed=seed, augment=True, distill=distill)
    started = time.perf_counter()
    with _progress_bar() as bar:
        task = bar.add_task(f"finetune {model}", total=None, status="")

        def on_progress(event: dict[str, Any]) -> None:
            if event["event"] == "step":
                bar.update(task, completed=event["step"], total=event["total_steps"],
                           status=f"loss {event['loss']:.3f}")

        run_finetune(net, splits.train, config, progress=on_progress, teacher=float_net)
    after = evaluate(net, splits.test)
    console.print(f"{model}: float {evaluate(float_net, splits.test):.2f}%, quantized "
                  f"{before:.2f}% -> {after:.2f}% after {epochs} epoch(s) "
                  f"({time.perf_counter() - started:.0f} s)")
    if out is not None:
        state = {"state_dict": net.state_dict(), "policy": policy.read_text()}
        atomic_write(out, lambda handle: torch.save(state, handle))
        console.print(f"wrote {out}")
