"""Shared fixtures for the quantize tests: tiny models and calibration batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # These tests run many small kernels; on a shared 2-core box every multi-threaded kernel
    # can wait a scheduler tick for its second thread. One thread keeps them fast and stable.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
