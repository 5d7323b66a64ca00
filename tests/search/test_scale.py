"""Searching ImageNet-shaped zoo models without weights on synthetic data labelled by themselves."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import haq
import haq.search._synthetic as synthetic
from haq.cost import Budget
from haq.errors import ConfigError
from haq.models._zoo import ZOO, ModelEntry
from haq.models.vit import VisionTransformer
from haq.quantize import QuantConfig
from haq.search import EvalConfig, zoo_on_synthetic
from haq.search._synthetic import fit_to_images_


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HAQ_CACHE_DIR", str(tmp_path / "haq-cache"))


def _collapsed_net() -> nn.Module:
    """Conv + BN with a shifted running mean + ReLU + linear head: a random net whose features
    share a large mean, so it predicts one class for (almost) every input."""
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        net[1].weight.fill_(1.0)
        net[1].bias.zero_()
        net[1].running_mean.fill_(-3.0)  # ReLU outputs all large and positive
        net[5].bias.copy_(torch.arange(10.0) * 2)  # class 9 dominates
    return net.eval()


def test_fit_centres_the_logits_and_spreads_the_predictions() -> None:
    net = _collapsed_net()
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(32, 3, 8, 8, generator=gen) for _ in range(2)]
    with torch.no_grad():
        before = torch.cat([net(b) for b in batches]).argmax(1)
    assert len(set(before.tolist())) == 1
    fit_to_images_(net, batches)
    assert not net.training
    with torch.no_grad():
        logits = torch.cat([net(b) for b in batches])
    assert torch.allclose(logits.mean(0), torch.zeros(10), atol=1e-4)
    assert len(set(logits.argmax(1).tolist())) >= 5
    bn = net[1]
    features = torch.cat([net[0](b) for b in batches])
    assert torch.allclose(bn.running_mean, features.mean((0, 2, 3)), atol=1e-4)


def test_zoo_model_without_weights_needs_synthetic_data() -> None:
    with pytest.raises(ConfigError, match="--dataset synthetic"):
        haq.search("resnet50-imagenet", "fashion-mnist", "bops", {"bops": "0.5"})


def test_vit_tiny_search_runs_on_synthetic_imagenet() -> None:
    """Two random episodes on vit-tiny-imagenet (random weights, 224x224) complete."""
    net, splits = zoo_on_synthetic("vit-tiny-imagenet", seed=0, sizes=(4, 4, 4), fit_images=4)
    assert splits.input_shape == (3, 224, 224) and splits.num_classes == 1000
    budget = Budget("bops", 0.5, relative=True)
    result = haq.search(net, splits, "bops", [budget], "random", episodes=2,
                        evaluation=EvalConfig(samples=4), seed=0,
                        quant_config=QuantConfig(weight_clip="max", act_clip="max"))
    assert result.evaluations == 2 and len(result.history) == 2
    assert result.extra["float_accuracy"] == 100.0  # agreement of the float model with itself
    assert len(result.best.layers) == 50 and result.best_accuracy is not None
    assert 0.0 <= result.best_accuracy <= 100.0
    w8a8_bops = sum(s.macs for s in net_specs(net)) * 64
    assert result.costs["bops"] <= 0.5 * w8a8_bops * (1 + 1e-9)


def net_specs(net: nn.Module) -> list:
    from haq.specs import extract_specs

    return extract_specs(net, torch.zeros(1, 3, 224, 224))


def test_cli_searches_a_zoo_model_without_weights_on_synthetic_data(tmp_path,
                                                                    monkeypatch) -> None:
    """`haq search MODEL --dataset synthetic` for a cost-only zoo model (a small stand-in)."""
    from haq.cli.__main__ import _register, app

    entry = ModelEntry("vit-test", lambda: VisionTransformer(10, 32, 8, dim=16, depth=1,
                                                             heads=2),
                       "imagenet", (3, 32, 32), 10, "tiny ViT (test only)", False)
    monkeypatch.setitem(ZOO, "vit-test", entry)
    monkeypatch.setattr(synthetic, "SIZES", (16, 16, 16))
    monkeypatch.setattr(synthetic, "FIT_IMAGES", 16)
    _register()
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "search", "vit-test", "--dataset", "synthetic", "--hardware", "bitfusion-edge",
        "--bops", "0.5", "--strategy", "random", "--episodes", "2", "--eval-samples", "16",
        "--run", str(run_dir)])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "result.json").read_text())
    assert summary["float_accuracy"] == 100.0 and summary["float_test_accuracy"] == 100.0
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert "held-out top-1" in result.output and "(float 100.00%)" in result.output
