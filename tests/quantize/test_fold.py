"""Batch-norm folding: same function, pairs from the traced data flow, specs and costs kept."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import haq.cost
from haq.models import create, example_input
from haq.policy import Policy
from haq.quantize import QuantConfig, apply_policy_, find_foldable, fold_batchnorm_
from haq.specs import extract_specs

ZOO = {"mobilenetv1-fmnist": 27, "mobilenetv2-fmnist": 52, "resnet20-fmnist": 19}


def _randomise_bn_(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen))
                m.running_var.copy_(torch.rand(c, generator=gen) * 2 + 0.1)
                m.weight.copy_(torch.randn(c, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen))
    return model.eval()


def _relative(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_models_fold_completely_and_compute_the_same(name: str) -> None:
    net = create(name, pretrained=True).eval()
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = net(x)
    folded = copy.deepcopy(net)
    report = fold_batchnorm_(folded, example_input(name))
    assert len(report.folded) == ZOO[name] and report.skipped == ()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert _relative(folded(x), reference) < 1e-5
    assert fold_batchnorm_(folded, example_input(name)).folded == ()  # nothing left to fold


@pytest.mark.parametrize("name", ["mobilenetv2-fmnist", "resnet20-fmnist"])
def test_layer_geometry_and_every_cost_table_are_unchanged(name: str) -> None:
    net = create(name, pretrained=True).eval()
    before = extract_specs(net, example_input(name))
    fold_batchnorm_(net, example_input(name))
    after = extract_specs(net, example_input(name))
    # A folded layer gains a bias (its has_bias / params say so); what is quantized and priced,
    # the weights, MACs and shapes, is the same.
    for old, new in zip(before, after, strict=True):
        assert old.weight_params == new.weight_params and old.macs == new.macs
        keep = {"has_bias", "params"}
        assert {k: v for k, v in vars(old).items() if k not in keep} == \
            {k: v for k, v in vars(new).items() if k not in keep}
    for model in ("bismo-edge", "bitfusion-edge", "size", "bops"):
        old_table = haq.cost.get(model).table(before)
        new_table = haq.cost.get(model).table(after)
        for metric, values in old_table.values.items():
            assert np.array_equal(values, new_table.values[metric], equal_nan=True), metric


class Shortcut(nn.Module):
    """conv -> bn, but the conv's output also feeds the residual sum: not foldable."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.pre = nn.BatchNorm2d(3)  # normalises the raw input: no layer before it
        self.head_conv = nn.Conv2d(3, 4, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(4)  # foldable
        self.fc = nn.Linear(4, 5)
        self.fc_bn = nn.BatchNorm1d(5)  # foldable, Linear + BatchNorm1d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pre(x))
        z = torch.relu(self.bn(y) + y)
        z = self.head_bn(self.head_conv(z))
        return self.fc_bn(self.fc(z.mean((2, 3))))


def test_unfoldable_patterns_are_listed_with_reasons_and_left_alone() -> None:
    net = _randomise_bn_(Shortcut(), seed=3)
    x = torch.randn(6, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = net(x)
    report = fold_batchnorm_(net, x)
    assert report.folded == (("head_conv", "head_bn"), ("fc", "fc_bn"))
    reasons = dict(report.skipped)
    assert set(reasons) == {"bn", "pre"}
    assert "also read by" in reasons["bn"] and "'conv'" in reasons["bn"]
    assert "not the output of" in reasons["pre"]
    assert isinstance(net.bn, nn.BatchNorm2d) and isinstance(net.pre, nn.BatchNorm2d)
    assert isinstance(net.head_bn, nn.Identity) and net.head_conv.bias is not None
    with torch.no_grad():
        assert _relative(net(x), reference) < 1e-5


def test_a_shared_batchnorm_and_a_reused_layer_are_not_folded() -> None:
    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)
            self.bn = nn.BatchNorm2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.conv(self.bn(self.conv(x))))

    report = find_foldable(_randomise_bn_(Reuse(), 0), torch.randn(2, 2, 3, 3))
    assert report.folded == () and "runs 2 times" in dict(report.skipped)["bn"]


def test_apply_policy_folds_by_default_and_the_paper_preset_does_not() -> None:
    name = "resnet20-fmnist"
    net = create(name, pretrained=True).eval()
    specs = extract_specs(net, example_input(name))
    batches = [torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(2))]
    folded = apply_policy_(copy.deepcopy(net), Policy.uniform(specs, None, None), batches)
    kept = apply_policy_(copy.deepcopy(net), Policy.uniform(specs, None, None), batches,
                         QuantConfig.paper())
    count = [sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
             for model in (net, folded, kept)]
    assert count == [ZOO[name], 0, ZOO[name]]
    with torch.no_grad():  # all bits float: the folded model is the float model
        assert _relative(folded(batches[0]), net(batches[0])) < 1e-5
