import pytest
import torch
from torch import nn

from haq.errors import UnsupportedModelError
from haq.specs import extract_specs


class HeadFirst(nn.Module):
    """Registers its head before its stem: execution order must win over registration order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(16, 10)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 16, 1, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.dw(x))
        x = self.grouped(x)
        return self.head(x.mean(dim=(2, 3)))


def test_execution_order_and_shapes() -> None:
    specs = extract_specs(HeadFirst(), torch.randn(2, 3, 12, 12))
    assert [s.name for s in specs] == ["stem", "dw", "grouped", "head"]
    stem, dw, grouped, head = specs
    assert stem.kind == "conv" and stem.in_size == (12, 12) and stem.out_size == (12, 12)
    assert stem.macs == 8 * 12 * 12 * 3 * 9
    assert stem.params == 8 * 3 * 9 + 8 and stem.weight_params == 8 * 3 * 9
    assert dw.kind == "depthwise" and dw.out_size == (6, 6) and dw.stride == (2, 2)
    assert dw.macs == 8 * 6 * 6 * 9 and dw.groups == 8
    assert grouped.kind == "conv" and grouped.groups == 2 and grouped.macs == 16 * 36 * 4
    assert head.kind == "linear" and head.macs == 160 and head.index == 3


def test_conv1d_and_token_linear() -> None:
    model = nn.Sequential(nn.Conv1d(4, 6, 3), nn.Flatten(0, 0))
    (spec,) = extract_specs(model, torch.randn(1, 4, 20))
    assert spec.in_size == (1, 20) and spec.out_size == (1, 18) and spec.kernel == (1, 3)
    (lin,) = extract_specs(nn.Linear(5, 7), torch.randn(2, 9, 5))
    assert lin.tokens == 9 and lin.macs == 5 * 7 * 9


class Reuse(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.fc(x)))


def test_reused_module_is_refused_or_counted() -> None:
    with pytest.raises(UnsupportedModelError, match="allow_reuse"):
        extract_specs(Reuse(), torch.randn(1, 4))
    (spec,) = extract_specs(Reuse(), torch.randn(1, 4), allow_reuse=True)
    assert spec.calls == 2 and spec.macs == 2 * 16


def test_no_quantizable_layer() -> None:
    with pytest.raises(UnsupportedModelError, match="no nn.Conv1d"):
        extract_specs(nn.Sequential(nn.ReLU()), torch.randn(1, 3))


def test_training_mode_is_restored() -> None:
    model = HeadFirst().train()
    extract_specs(model, torch.randn(1, 3, 8, 8))
    assert model.training
