"""Shared fixtures for the quantize tests: tiny models and calibration batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn

from haq.testing import single_thread


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # many small kernels: one thread is fastest and does not oversubscribe a shared CI box
    with single_thread():
        yield


class TinyNet(nn.Module):
    """Conv -> ReLU -> depthwise conv -> ReLU -> Conv1d over rows -> Linear, with a signed input."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.row = nn.Conv1d(8, 6, 3, padding=1)
        self.head = nn.Linear(6 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.dw(x))  # [N, 8, 8, 8]
        x = self.row(x.mean(dim=2))  # [N, 6, 8], may be negative
        return self.head(x.flatten(1))


def make_net(seed: int = 0) -> TinyNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyNet().eval()


@pytest.fixture
def net() -> TinyNet:
    return make_net()


@pytest.fixture
def net_factory() -> Callable[..., TinyNet]:
    """``net_factory(seed)`` builds a fresh TinyNet; the seed fixes its float weights."""
    return make_net


@pytest.fixture
def batches() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(16, 1, 8, 8, generator=gen) for _ in range(3)]
