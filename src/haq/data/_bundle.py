"""``DataSplits``: train / held-out / test of one dataset, from any source.

A split is a map-style Dataset, an IterableDataset or a DataLoader; nothing here reads more
than the first sample (to learn the input shape). ``as_splits`` turns everything a user may hand
haq (a dataset name, an image folder, ``file.py:factory``, a dict or tuple of splits) into one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from haq.data._folder import ImageTransform, folder_splits
from haq.data._stream import Split, first_batch
from haq.errors import ConfigError
from haq.usercode import call_factory, is_target

_KEYS = {"train": "train", "heldout": "heldout", "val": "heldout", "validation": "heldout",
         "test": "test"}


@dataclass(frozen=True)
class DataSplits:
    """Three splits of one dataset; each a Dataset of ``(input, label)`` or a DataLoader.

    Attributes:
        name: dataset name.
        train: what models are calibrated, trained and fine-tuned on.
        heldout: never trained on; what a search scores policies with.
        test: final reports only.
        num_classes: number of classes (``None`` when only the model knows).
        input_shape: shape of one input sample, e.g. (C, H, W).
        classes: class names, index = label (empty when unknown).
        test_source: ``"test"``, or ``"heldout"`` when no test split was given and the
            held-out split stands in for it (so "test" scores are then held-out scores).
    """

    name: str
    train: Split
    heldout: Split
    test: Split
    num_classes: int | None
    input_shape: tuple[int, ...]
    classes: tuple[str, ...] = ()
    test_source: str = "test"


def _check_split(key: str, value: Any) -> Split:
    if not isinstance(value, Dataset | DataLoader):
        raise ConfigError(f"the {key} split is a {type(value).__name__}; give a torch Dataset "
                          "(map-style or iterable) or a DataLoader of (input, label) batches")
    return value


def from_parts(train: Split, heldout: Split, test: Split | None = None, *, name: str = "user",
               classes: Sequence[str] = ()) -> DataSplits:
    """``DataSplits`` of user splits; without ``test``, the held-out split stands in for it.

    Raises:
        ConfigError: a split is not a Dataset or DataLoader.
        DatasetError: a split is empty or does not yield (input, label) pairs.
    """
    parts = {"train": _check_split("train", train), "heldout": _check_split("heldout", heldout)}
    parts["test"] = parts["heldout"] if test is None else _check_split("test", test)
    shape = tuple(first_batch(parts["train"])[0].shape[1:])
    return DataSplits(name=name, **parts, num_classes=len(classes) or None, input_shape=shape,
                      classes=tuple(classes), test_source="heldout" if test is None else "test")


def _from_collection(data: Any, name: str) -> DataSplits:
    if isinstance(data, Mapping):
        unknown = sorted(str(k) for k in data if k not in _KEYS)
        if unknown:
            raise ConfigError(f"unknown split name(s) {unknown}; use train, heldout (or val) "
                              "and optionally test")
        parts = {_KEYS[k]: v for k, v in data.items()}
    elif isinstance(data, list | tuple) and len(data) in (2, 3):
        parts = dict(zip(("train", "heldout", "test"), data, strict=False))
    else:
        raise ConfigError(
            f"data must be a dataset name, an image folder, file.py:factory, DataSplits, a "
            f"dict {{'train': ..., 'heldout': ..., 'test': ...}} or a (train, heldout[, test]) "
            f"tuple; got {type(data).__name__}")
    for key, value in parts.items():
        _check_split(key, value)
    missing = [k for k in ("train", "heldout") if k not in parts]
    if missing:
        raise ConfigError(f"the data has no {' or '.join(missing)} split; give train (to "
                          "calibrate and fine-tune) and heldout (to score policies)")
    return from_parts(parts["train"], parts["heldout"], parts.get("test"), name=name)


def from_factory(target: str) -> DataSplits:
    """Call ``path/to/file.py:factory()`` and take its splits (a dict or tuple, as for
    ``as_splits``).

    Raises:
        ConfigError: the file or function cannot be loaded, the call fails, or it returns
            something other than splits.
    """
    made = call_factory(target, "data factory")
    if isinstance(made, DataSplits):
        return made
    if not isinstance(made, Mapping | list | tuple):
        raise ConfigError(f"{target} returned {type(made).__name__}; it must return a dict "
                          "{'train': ..., 'heldout': ..., 'test': ...} or a (train, heldout[, "
                          "test]) tuple of Datasets or DataLoaders")
    return _from_collection(made, Path(target.rpartition(":")[0]).stem)


def image_folder(root: str | os.PathLike[str], *, resize: tuple[int, int] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 grayscale: bool = False) -> DataSplits:
    """Splits of an image folder: ``train/<class>/*`` calibrates and fine-tunes, ``val/<class>/*``
    scores policies, ``test/<class>/*`` (optional; else ``val`` stands in) reports.

    Images (PNG, JPEG) are decoded one at a time as batches are read. Pixels are scaled to
    [0, 1], then ``(x - mean) / std`` per channel.

    Args:
        root: the folder holding ``train/`` and ``val/``.
        resize: (height, width) for every image; required when the images' sizes differ.
        mean, std: per-channel normalisation (1 value, or 1 per channel).
        grayscale: one channel instead of RGB.

    Raises:
        DatasetError: missing folders, an empty class folder, or classes that differ between
            the splits (an unreadable image fails when it is read).
        ConfigError: malformed resize/mean/std.
    """
    transform = ImageTransform(grayscale, tuple(resize) if resize else None,  # type: ignore[arg-type]
                               tuple(mean) if mean else None, tuple(std) if std else None)
    train, heldout, test, classes = folder_splits(Path(root), transform)
    splits = from_parts(train, heldout, test, name=Path(root).name or "images", classes=classes)
    return splits


def as_splits(data: Any) -> DataSplits:
    """``DataSplits`` from whatever the user gave.

    Accepts a ``DataSplits``; a dataset name (``fashion-mnist``, ``digits``, ``synthetic``); an
    image folder path (``image_folder`` with its defaults; a built-in name wins over a folder
    of the same name, so pass ``image_folder("digits")`` or ``"./digits"`` for that);
    ``"file.py:factory"`` (``from_factory``); a dict ``{"train": ..., "heldout": ... (or
    "val"), "test": ...}`` or a ``(train, heldout[, test])`` tuple of Datasets (map-style or
    iterable) or DataLoaders.
    Without a test split the held-out split stands in for it (``test_source == "heldout"``).
    """
    if isinstance(data, DataSplits):
        return data
    if isinstance(data, str | os.PathLike):
        text = os.fspath(data)
        if is_target(text):
            return from_factory(text)
        from haq.data import load

        try:  # a built-in name wins over a folder of that name in the working directory
            return load(text)
        except ConfigError:
            if not Path(text).is_dir():
                raise
        return image_folder(text)
    return _from_collection(data, "user")
