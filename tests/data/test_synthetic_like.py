"""haq.data.synthetic_like: images made on demand, labels = the model's own float top-1, lazily."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import haq.data as hdata
from haq.errors import ConfigError
from haq.finetune import evaluate


class CountingNet(nn.Module):
    """A fixed random linear classifier on 3x8x8 images that counts the images it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 5)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(5, 192, generator=torch.Generator().manual_seed(1)))
            self.fc.bias.zero_()
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return self.fc(x.flatten(1))


def _splits(sizes: tuple[int, int, int] = (10, 40, 6), seed: int = 0) -> hdata.DataSplits:
    return hdata.synthetic_like(CountingNet(), (3, 8, 8), 5, sizes, seed)


def test_labels_are_the_models_top1_and_float_accuracy_is_100() -> None:
    data = _splits()
    net = CountingNet()
    images = torch.stack([data.heldout[i][0] for i in range(len(data.heldout))])
    with torch.no_grad():
        assert torch.equal(data.heldout.labels(), net(images).argmax(1))
    assert evaluate(net, data.heldout) == 100.0
    assert (data.num_classes, data.input_shape, len(data.train), len(data.test)) == (
        5, (3, 8, 8), 10, 6)
    assert len(set(data.heldout.labels().tolist())) >= 3  # not one class for everything


def test_images_are_seeded_standardised_and_splits_differ() -> None:
    a, b, c = _splits(seed=0), _splits(seed=0), _splits(seed=1)
    assert torch.equal(a.heldout[3][0], b.heldout[3][0])
    assert not torch.equal(a.heldout[3][0], c.heldout[3][0])
    assert not torch.equal(a.train[0][0], a.heldout[0][0])
    assert a.heldout[0][0].shape == (3, 8, 8)
    big = hdata.synthetic_like(CountingNet(), (3, 64, 64), 5, (1, 1, 1)).train.image(0)
    assert abs(float(big.mean())) < 0.5 and 0.5 < float(big.std()) < 1.5
    assert a.heldout[-1][0].shape == (3, 8, 8)
    with pytest.raises(IndexError):
        a.heldout[40]


def test_labels_are_made_lazily_one_chunk_at_a_time() -> None:
    data = _splits(sizes=(10, 100, 6))
    teacher = data.heldout.teacher
    assert teacher.seen == 0  # nothing is labelled up front
    data.heldout[5]
    assert teacher.seen == data.heldout.chunk  # first chunk only
    data.heldout[6]
    assert teacher.seen == data.heldout.chunk  # cached
    data.heldout[99]
    assert teacher.seen == data.heldout.chunk + 100 % data.heldout.chunk  # the last, short one


def test_teacher_is_a_frozen_copy() -> None:
    net = CountingNet()
    data = hdata.synthetic_like(net, (3, 8, 8), 5, (4, 4, 4))
    before = data.heldout.labels()
    with torch.no_grad():
        net.fc.weight.neg_()  # later changes to the caller's model change nothing
    assert data.train.teacher is data.heldout.teacher is data.test.teacher  # one copy
    assert data.test.teacher is not net
    fresh = hdata.synthetic_like(CountingNet(), (3, 8, 8), 5, (4, 4, 4))
    assert torch.equal(data.test.labels(), fresh.test.labels())
    assert torch.equal(before, fresh.heldout.labels())


@pytest.mark.parametrize("kwargs", [{"input_shape": (8, 8)}, {"num_classes": 0},
                                    {"sizes": (0, 4, 4)}])
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    args = {"input_shape": (3, 8, 8), "num_classes": 5, "sizes": (4, 4, 4), **kwargs}
    with pytest.raises(ConfigError, match="synthetic_like"):
        hdata.synthetic_like(CountingNet(), **args)
