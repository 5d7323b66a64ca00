"""Shared by the search tests: a tiny CNN trained briefly on the synthetic dataset."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from haq.data import synthetic
from haq.finetune import TrainConfig, train


def tiny_model() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(), nn.Flatten(),
                             nn.Linear(8 * 16, 4))


@pytest.fixture(scope="module")
def trained():
    """(model, DataSplits): the tiny CNN after 3 epochs on ``synthetic()``."""
    data = synthetic()
    model = tiny_model()
    train(model, data.train, TrainConfig(epochs=3, lr=0.05, seed=0))
    return model, data
