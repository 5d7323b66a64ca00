"""One way to read any split: a map-style Dataset, an IterableDataset or a DataLoader.

Everything downstream (calibration, held-out scoring, fine-tuning, metrics) reads a split as
batches through ``loader``, so no split is ever gathered into one tensor. An iterable dataset or
a DataLoader is read in its own order (haq cannot shuffle a stream or index into it); "the first
N samples" of it are the first N it yields (``head``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
)

from haq.errors import ConfigError, DatasetError

Split = Dataset | DataLoader  # what a split may be; ``Head`` is the first samples of a loader


class Head:
    """The first ``count`` samples of a DataLoader's batches (the last batch cut to fit)."""

    def __init__(self, batches: Iterable[Any], count: int) -> None:
        self.batches, self.count = batches, count

    def __iter__(self) -> Iterator[Any]:
        left = self.count
        for batch in self.batches:
            if left <= 0:
                return
            size = len(batch[0]) if isinstance(batch, list | tuple) else len(batch)
            if size > left:
                batch = type(batch)(part[:left] for part in batch) \
                    if isinstance(batch, list | tuple) else batch[:left]
            left -= min(size, left)
            yield batch


class _HeadStream(IterableDataset):
    """The first ``count`` samples of an iterable dataset."""

    def __init__(self, stream: IterableDataset, count: int) -> None:
        self.stream, self.count = stream, count

    def __iter__(self) -> Iterator[Any]:
        for index, item in enumerate(self.stream):
            if index >= self.count:
                return
            yield item


def size_of(data: Any) -> int | None:
    """Samples in a map-style dataset (or sized iterable dataset); ``None`` when a stream or a
    DataLoader does not say."""
    if isinstance(data, DataLoader | Head):
        return None
    try:
        return len(data)
    except TypeError:
        return None


def head(data: Any, count: int | None) -> Any:
    """The first ``count`` samples of ``data`` (all of it when ``count`` is ``None``), without
    reading any sample now: a Subset of a map-style dataset, a cut stream or loader."""
    if count is None:
        return data
    if count < 1:
        raise ConfigError(f"a sample count must be >= 1, got {count}")
    if isinstance(data, DataLoader | Head):
        return Head(data, count)
    if isinstance(data, IterableDataset):
        return _HeadStream(data, count)
    return Subset(data, range(min(count, len(data))))


def loader(dataset: Any, batch_size: int, shuffle: bool = False, seed: int = 0,
           drop_last: bool = False) -> Any:
    """Batches of ``dataset`` from a single-process DataLoader with its own seeded shuffling.

    A ``TensorDataset`` is indexed a whole batch at a time (one gather per batch instead of one
    ``__getitem__`` per sample), which is several times faster for in-memory data. A DataLoader
    (or ``head`` of one) is returned as it is: its batch size and order are the user's. An
    iterable dataset is batched in the order it yields (``shuffle`` cannot apply to a stream).

    Args:
        dataset: a map-style or iterable Dataset, or a DataLoader.
        batch_size: samples per batch.
        shuffle: reshuffle every epoch; epoch ``k`` of a loader made with ``seed`` is the same
            on every run.
        seed: seed of the shuffling generator.
        drop_last: drop a final partial batch.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(dataset, DataLoader | Head):
        return dataset
    if not isinstance(dataset, Dataset):
        raise ConfigError(
            f"data must be a torch Dataset or DataLoader, got {type(dataset).__name__}; wrap "
            "tensors with torch.utils.data.TensorDataset(images, labels)")
    generator = torch.Generator().manual_seed(seed)
    if isinstance(dataset, IterableDataset):
        return DataLoader(dataset, batch_size=batch_size, num_workers=0, drop_last=drop_last)
    if isinstance(dataset, TensorDataset):
        sampler = RandomSampler(dataset, generator=generator) if shuffle \
            else SequentialSampler(dataset)
        batches = BatchSampler(sampler, batch_size, drop_last)
        # The loader's own generator also feeds its per-epoch base seed, which otherwise comes
        # from (and advances) the global RNG.
        return DataLoader(dataset, sampler=batches, batch_size=None, num_workers=0,
                          generator=generator)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      drop_last=drop_last, num_workers=0)


def first_batch(data: Any, count: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of the first ``count`` samples (or the first batch of a DataLoader).

    Raises:
        DatasetError: the split is empty or does not yield (input, label) pairs.
    """
    batch = next(iter(loader(head(data, count), count)), None)
    if batch is None:
        raise DatasetError("a data split is empty; every split needs at least one sample")
    if not isinstance(batch, list | tuple) or len(batch) < 2 \
            or not isinstance(batch[0], torch.Tensor):
        raise DatasetError(
            f"a data split yields {type(batch).__name__} batches; haq needs (input, label) "
            "pairs: a Dataset whose items are (tensor, label) or a DataLoader of such batches")
    return batch[0], torch.as_tensor(batch[1])
