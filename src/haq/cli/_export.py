"""`haq export MODEL POLICY --format onnx|qonnx|packed --out FILE`: a file a runtime can execute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from haq.cli._common import console
from haq.cli._data_options import DATA, GRAYSCALE, MEAN, RESIZE, STD, data_choice
from haq.cli._model_options import (
    ALLOW_REUSE_HELP,
    DEVICE_HELP,
    INPUT_SHAPE_HELP,
    MODEL_HELP,
    calibrated,
    check_data_shape,
    choose_device,
    choose_model,
    dataset_for,
)


def quantized_model(net: Any, policy: Any, data_name: Any, *, preset: str = "default",
                    seed: int = 0, calib_batches: int = 8, weights: Path | None = None,
                    data_dir: Path | None = None, device: Any = "cpu"
                    ) -> tuple[Any, list[Any], Any]:
    """(quantized model, calibration batches, dataset splits), calibrated as `haq search` does.

    The calibration images are the first ``calib_batches`` batches of 128 of the train split
    shuffled with ``seed`` (what `haq search --seed` and `haq apply` use); ``weights`` is a
    fine-tuned state_dict (a run's ``final_model.pt`` or `haq finetune --out`) loaded after.
    ``data_name`` is a dataset name or the ``DataSplits`` of ``--data``. Calibration runs on
    ``device``; the returned model stays there.
    """
    import torch

    from haq import data as hdata
    from haq.errors import ConfigError
    from haq.models import create
    from haq.quantize import QuantConfig

    float_net = create(net, pretrained=True) if isinstance(net, str) else net
    splits = data_name if isinstance(data_name, hdata.DataSplits) \
        else hdata.load(data_name, root=data_dir)
    model, calibration = calibrated(float_net, policy, splits, QuantConfig.preset(preset),
                                    seed=seed, calib_batches=calib_batches, device=device)
    if weights is not None:
        if not weights.is_file():
            raise ConfigError(f"--weights {weights} does not exist; give a run's final_model.pt")
        state = torch.load(weights, map_location=device, weights_only=True)
        state = state.get("state_dict", state)  # `haq finetune --out` wraps it with the policy
        model.load_state_dict(state)
    return model.eval(), calibration, splits


def export_best(run_dir: Path, policy: Any, net: Any, data_name: Any, preset: str, seed: int,
                fmt: str, device: Any = "cpu") -> Path:
    """Export a finished search's best policy (fine-tuned weights if the run wrote them)."""
    import haq.export

    weights = run_dir / "final_model.pt"
    model, calibration, _ = quantized_model(net, policy, data_name, preset=preset, seed=seed,
                                            weights=weights if weights.is_file() else None,
                                            device=device)
    suffix = haq.export.get_format(fmt).suffix
    name = "model" + (suffix if fmt != "qonnx" else ".qonnx" + suffix)
    return haq.export.export(model, policy, fmt, run_dir / name,
                             example_input=calibration[0][0][:1])


def export(
    model: str = typer.Argument(..., help=MODEL_HELP),
    policy: Path = typer.Argument(..., help="policy JSON (e.g. a run's best_policy.json)"),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx, qonnx or packed"),
    out: Path = typer.Option(..., "--out", "-o", help="file to write"),
    weights: Path | None = typer.Option(None, help="fine-tuned state_dict to export, e.g. "
                                        "RUN/final_model.pt"),
    check: bool = typer.Option(False, "--check", help="run the file in its runtime beside haq's "
                               "model on the test split and report parity"),
    check_images: int | None = typer.Option(None, help="test images --check compares "
                                            "[default: the whole split]"),
    integer_kernels: bool = typer.Option(False, "--integer-kernels", help="onnx: standard QDQ "
                                         "groups ONNX Runtime may run on int8 kernels (biases "
                                         "rounded to int32, not simulated by haq)"),
    preset: str = typer.Option("default", help="quantizer preset the policy was searched with "
                               "(default, paper, paper-kmeans)"),
    seed: int = typer.Option(0, help="seed of the calibration batches (the search's --seed)"),
    calib_batches: int = typer.Option(8, help="training batches of 128 used for calibration"),
    dataset: str | None = typer.Option(None, help="dataset [default: the zoo model's]"),
    data: str | None = DATA, resize: str | None = RESIZE, mean: str | None = MEAN,
    std: str | None = STD, grayscale: bool = GRAYSCALE,
    input_shape: str | None = typer.Option(None, help=INPUT_SHAPE_HELP),
    allow_reuse: bool = typer.Option(False, "--allow-reuse", help=ALLOW_REUSE_HELP),
    data_dir: Path | None = typer.Option(None, help="directory with the dataset's files"),
    device: str = typer.Option("auto", help=DEVICE_HELP + " (calibration and --check; the "
                               "file is written on the host)"),
) -> None:
    """Write MODEL quantized with POLICY as a file ONNX Runtime, qonnx or haq can execute."""
    import haq.export
    from haq import data as hdata
    from haq.policy import Policy

    fmt = haq.export.get_format(format)  # refuse an unknown format before loading anything
    target = choose_device(device)
    chosen = data_choice(dataset, data, resize, mean, std, grayscale)
    choice = choose_model(model, input_shape, allow_reuse)
    splits = chosen.source() if chosen.data is not None else hdata.load(
        dataset_for(choice, chosen.dataset), root=data_dir)
    check_data_shape(choice, splits.input_shape, splits.name)
    if choice.shape is None:  # a file model without --input-shape: traced at the data's
        choice.shape = tuple(splits.input_shape)
    bits = Policy.load(policy, choice.layer_specs())
    quantized, calibration, splits = quantized_model(
        choice.net, bits, splits, preset=preset, seed=seed, calib_batches=calib_batches,
        weights=weights, data_dir=data_dir, device=target)
    haq.export.export(quantized, bits, fmt.name, out, example_input=calibration[0][0][:1],
                      integer_kernels=integer_kernels)
    console.print(f"wrote {out} ({fmt.name}, {out.stat().st_size:,} bytes)")
    if check:
        batches = None if check_images is None else -(-check_images // 250)
        report = haq.export.check_parity(out, quantized, hdata.loader(splits.test, 250),
                                         max_batches=batches)
        console.print(report.summary())
        if not report.passed:
            raise typer.Exit(1)
