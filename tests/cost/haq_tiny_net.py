"""The tiny net of the cost tests, in a file of its own so CLI tests can pass it as MODEL."""

import torch
from torch import nn


class TinyNet(nn.Module):
    """Stem conv, depthwise 3x3, pointwise 1x1, linear head: every layer kind, fast to price."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.pw = nn.Conv2d(8, 16, 1, bias=False)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pw(self.dw(self.stem(x)))
        return self.fc(x.mean(dim=(2, 3)))
