"""`haq models`, `haq specs`, `haq train` through the real typer app."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from haq.cli.__main__ import _register, app
from haq.data._sources import DEFAULT_FMNIST_ROOT, FMNIST_FILES

_register()
runner = CliRunner()


def test_specs_table_lists_every_layer() -> None:
    result = runner.invoke(app, ["specs", "mobilenetv2-imagenet"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "53 quantizable layers" in result.output
    assert "features.18.conv" in result.output and "classifier" in result.output
    assert "300,774,272 MACs" in result.output


def test_models_lists_the_zoo() -> None:
    result = runner.invoke(app, ["models"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("mobilenetv1-fmnist", "mobilenetv2-fmnist", "resnet20-fmnist",
                 "resnet50-imagenet"):
        assert name in result.output
    assert "no weights" in result.output


def test_unknown_model_is_a_typed_error() -> None:
    from haq.errors import ConfigError

    result = runner.invoke(app, ["specs", "vgg16"])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)


@pytest.mark.slow
@pytest.mark.skipif(not all((DEFAULT_FMNIST_ROOT / f).is_file() for f in FMNIST_FILES.values()),
                    reason="Fashion-MNIST is not installed")
def test_train_writes_weights_and_sidecar(tmp_path) -> None:
    out = tmp_path / "r20.pt"
    result = runner.invoke(app, ["train", "resnet20-fmnist", "--epochs", "1", "--max-batches",
                                 "3", "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert "fc.weight" in state
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["recipe"]["max_batches"] == 3 and sidecar["recipe"]["epochs"] == 1
    assert 0.0 <= sidecar["test_accuracy"] <= 100.0 and sidecar["train_seconds"] > 0
    assert sidecar["command"].startswith("haq ") and sidecar["torch"] == torch.__version__
