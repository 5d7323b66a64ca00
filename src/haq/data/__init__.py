"""Datasets with fixed, saved splits: ``train`` to learn, ``heldout`` to score, ``test`` to report.

``load("fashion-mnist")`` reads the IDX files (decoded once, then cached), normalises them, and
splits the 60k training images into 55k ``train`` and 5k ``heldout`` by a shipped index file
whose data checksum is verified; the official 10k test set is ``test`` and is meant for final
reports only. ``load("digits")`` is scikit-learn's 8x8 digits with a shipped 3-way split, and
``load("synthetic")`` (or ``synthetic(...)``) makes a tiny learnable problem for tests.
``synthetic_like(model, input_shape, num_classes)`` makes images of a model's input shape on
demand, labelled by the model's own float predictions (for models without trained weights).

Your own data: ``image_folder(DIR)`` (``train/<class>/*``, ``val/<class>/*``, optional
``test/``), ``from_factory("file.py:factory")``, or any Datasets/DataLoaders via
``as_splits({"train": ..., "heldout": ..., "test": ...})``. Every split is read in batches
through ``loader``; nothing downstream assumes tensors in memory.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import TensorDataset as TensorDataset

from haq.data._bundle import DataSplits, as_splits, from_factory, from_parts, image_folder
from haq.data._check import check_fits, check_labels
from haq.data._download import download
from haq.data._folder import ImageFolder, ImageTransform
from haq.data._sources import (
    DIGITS_MEAN,
    DIGITS_STD,
    FMNIST_CLASSES,
    FMNIST_MEAN,
    FMNIST_STD,
    RawData,
    read_digits,
    read_fashion_mnist,
    synthetic_arrays,
)
from haq.data._stream import Head, Split, first_batch, head, loader, size_of
from haq.data._teacher import TeacherLabelled, frozen_copy, synthetic_image
from haq.errors import ConfigError

__all__ = ["DataSplits", "Head", "ImageFolder", "ImageTransform", "Split", "TeacherLabelled",
           "TensorDataset", "as_splits", "available", "check_fits", "check_labels", "download",
           "first_batch", "from_factory", "from_parts", "head", "image_folder", "load", "loader",
           "size_of", "synthetic", "synthetic_image", "synthetic_like"]

_ALIASES = {"fashion-mnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "fashionmnist": "fashion-mnist", "digits": "digits", "synthetic": "synthetic"}


def available() -> list[str]:
    """Dataset names ``load`` accepts."""
    return ["fashion-mnist", "digits", "synthetic"]


def _tensors(images: np.ndarray, labels: np.ndarray, max_value: float, mean: float,
             std: float) -> TensorDataset:
    """uint8 images -> float (N, 1, H, W) scaled to [0, 1], then standardised."""
    # astype copies, so a read-only buffer from the IDX decoder never reaches torch.
    x = torch.from_numpy(images.astype(np.float32))
    x = x.div_(max_value).sub_(mean).div_(std).unsqueeze(1)
    return TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


def _splits(name: str, raw: RawData, mean: float, std: float,
            classes: tuple[str, ...]) -> DataSplits:
    split, scale = raw.split, raw.max_value
    if raw.test_images is not None and raw.test_labels is not None:
        test = _tensors(raw.test_images, raw.test_labels, scale, mean, std)
    else:
        test = _tensors(raw.images[split.test], raw.labels[split.test], scale, mean, std)
    train = _tensors(raw.images[split.train], raw.labels[split.train], scale, mean, std)
    heldout = _tensors(raw.images[split.heldout], raw.labels[split.heldout], scale, mean, std)
    shape = tuple(train.tensors[0].shape[1:])
    return DataSplits(name=name, train=train, heldout=heldout, test=test,
                      num_classes=len(classes), input_shape=shape,  # type: ignore[arg-type]
                      classes=classes)


def load(name: str = "fashion-mnist", root: str | os.PathLike[str] | None = None) -> DataSplits:
    """Load a dataset with its fixed splits.

    Args:
        name: ``"fashion-mnist"`` (alias ``"fmnist"``), ``"digits"`` or ``"synthetic"``.
        root: Fashion-MNIST directory holding the four IDX ``.gz`` files; defaults to
            ``$HAQ_DATA_DIR``, then ``/usr/share/datasets/fashion-mnist``. Ignored otherwise.

    Raises:
        ConfigError: unknown dataset name.
        DatasetError: files missing or corrupt, or the data does not match the shipped split.
    """
    key = _ALIASES.get(name.lower())
    if key is None:
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(available())}, "
                          "an image folder (train/, val/) or path/to/file.py:factory")
    if key == "fashion-mnist":
        return _splits(key, read_fashion_mnist(root), FMNIST_MEAN, FMNIST_STD, FMNIST_CLASSES)
    if key == "digits":
        return _splits(key, read_digits(), DIGITS_MEAN, DIGITS_STD,
                       tuple(str(d) for d in range(10)))
    return synthetic()


def synthetic(num_classes: int = 4, input_shape: tuple[int, int, int] = (1, 8, 8),
              sizes: tuple[int, int, int] = (512, 128, 128), noise: float = 1.0,
              seed: int = 0) -> DataSplits:
    """A small learnable problem: noisy copies of one random prototype image per class.

    Args:
        num_classes: number of classes (and prototypes).
        input_shape: (C, H, W) of one sample.
        sizes: examples in train, heldout and test.
        noise: standard deviation of the Gaussian noise around each prototype.
        seed: the same seed gives the same data.
    """
    if num_classes < 2 or min(sizes) < 1 or noise < 0:
        raise ConfigError(
            f"synthetic data needs num_classes >= 2, sizes >= 1 and noise >= 0; got "
            f"num_classes={num_classes}, sizes={sizes}, noise={noise}")
    images, labels = synthetic_arrays(num_classes, input_shape, sum(sizes), seed, noise)
    bounds = np.cumsum(sizes)[:-1]
    parts = [TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
             for x, y in zip(np.split(images, bounds), np.split(labels, bounds), strict=True)]
    return DataSplits(name="synthetic", train=parts[0], heldout=parts[1], test=parts[2],
                      num_classes=num_classes, input_shape=input_shape,
                      classes=tuple(f"class{c}" for c in range(num_classes)))


def synthetic_like(model: torch.nn.Module, input_shape: tuple[int, int, int], num_classes: int,
                   sizes: tuple[int, int, int] = (256, 512, 256), seed: int = 0,
                   name: str = "synthetic") -> DataSplits:
    """Splits of synthetic images of ``input_shape`` labelled by ``model``'s float top-1.

    Images are made on demand from (seed, split, index) and labels a chunk at a time on first
    read, so memory holds the labels and one chunk, not the images. Top-1 accuracy on these
    splits is agreement with the float model (100% for the model itself).

    Args:
        model: the float model; a frozen copy labels the data, so changing ``model`` later
            changes no label.
        input_shape: (C, H, W) of one image.
        num_classes: the model's outputs.
        sizes: images in train (calibration and fine-tuning), heldout and test.
        seed: the same seed and model give the same data.
        name: ``DataSplits.name``.
    """
    if len(input_shape) != 3 or min(input_shape) < 1 or num_classes < 1 or min(sizes) < 1:
        raise ConfigError(
            f"synthetic_like needs input_shape (C, H, W) >= 1, num_classes >= 1 and sizes >= "
            f"1; got input_shape={input_shape}, num_classes={num_classes}, sizes={sizes}")
    teacher = frozen_copy(model)  # one copy for the three splits
    parts = [TeacherLabelled(teacher, input_shape, size, seed, split)
             for size, split in zip(sizes, ("train", "heldout", "test"), strict=True)]
    return DataSplits(name=name, train=parts[0], heldout=parts[1],  # type: ignore[arg-type]
                      test=parts[2], num_classes=num_classes,  # type: ignore[arg-type]
                      input_shape=input_shape,
                      classes=tuple(f"class{c}" for c in range(num_classes)))
