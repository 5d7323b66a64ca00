"""A user's model file, as the CLI tests pass it (``net.py:build``): this file is copied into
each test's directory as ``net.py``, and the tests that need the model itself import it."""

from pathlib import Path

import torch
from torch import nn

SOURCE = Path(__file__).read_text()


def build() -> nn.Module:
    torch.manual_seed(0)  # user code may seed globally; haq itself never does
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 64, 4))


def pooled() -> nn.Module:  # takes any resolution, so only the shape check can catch a wrong one
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 4))
