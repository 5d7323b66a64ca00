"""Training and evaluation read iterable datasets and DataLoaders in batches, check labels,
and score with a user metric."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from haq.errors import LabelError
from haq.finetune import TrainConfig, evaluate, train


class Stream(IterableDataset):
    def __init__(self, count: int, classes: int = 3) -> None:
        self.count, self.classes = count, classes

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for i in range(self.count):
            yield torch.randn(4, generator=g), torch.tensor(i % self.classes)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 3)


def test_train_runs_epochs_and_steps_over_a_stream_without_length() -> None:
    history = train(_net(), Stream(40), TrainConfig(epochs=2, batch_size=8))
    assert history["steps"] == 10  # 5 batches per pass, counted by reading the stream once
    assert train(_net(), Stream(40), TrainConfig(steps=3, batch_size=8))["steps"] == 3


def test_evaluate_on_a_stream_equals_the_same_samples_in_memory() -> None:
    net = _net()
    x, y = zip(*Stream(30), strict=True)
    memory = TensorDataset(torch.stack(x), torch.stack(y))
    assert evaluate(net, Stream(30), batch_size=7) == evaluate(net, memory)
    assert evaluate(net, DataLoader(memory, batch_size=4)) == evaluate(net, memory)


def test_labels_outside_the_outputs_stop_training_and_scoring() -> None:
    with pytest.raises(LabelError, match="has label 4, but the model has 3 outputs"):
        train(_net(), Stream(10, classes=5), TrainConfig(steps=2, batch_size=10))
    with pytest.raises(LabelError, match="has label 4"):
        evaluate(_net(), Stream(10, classes=5))


def test_eval_data_is_scored_with_the_given_metric() -> None:
    history = train(_net(), Stream(16), TrainConfig(epochs=2, batch_size=8),
                    eval_data=Stream(8), metric=lambda model, loader: 7.0)
    assert history["eval_metric"] == [7.0, 7.0] and "eval_accuracy" not in history
