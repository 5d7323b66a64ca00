"""Does this data fit this model? Checked once, before any slow work, so a mismatch is a
one-line error instead of a traceback from deep inside a forward pass (or, for labels, a
silently wrong accuracy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from haq.data._stream import first_batch, head, loader
from haq.data._teacher import TeacherLabelled
from haq.errors import DatasetError, LabelError

if TYPE_CHECKING:
    from haq.data import DataSplits

# Labels of a split that cannot list them without reading every sample (a user's dataset, an
# iterable one, a DataLoader) are checked on this many samples up front; every batch the
# metric, the evaluator and the fine-tune read is checked again as it goes (``check_labels``).
LABEL_PROBE = 256


def _labels(dataset: Any, classes: int) -> torch.Tensor:
    """Every label of ``dataset`` when it can tell them without reading images, else the
    labels of its first ``LABEL_PROBE`` samples."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1]
    if isinstance(dataset, TeacherLabelled):
        # A label is the teacher's top-1, so a teacher with no more outputs than the model
        # cannot give one out of range: no need to run the teacher over every image.
        with torch.no_grad():
            if dataset.teacher(dataset.image(0)[None]).shape[1] <= classes:
                return torch.empty(0, dtype=torch.int64)
        return dataset.labels()  # labels only, without drawing every image a second time
    if isinstance(dataset, Subset) and hasattr(dataset.dataset, "targets"):
        return torch.as_tensor(dataset.dataset.targets)[list(dataset.indices)]
    if hasattr(dataset, "targets"):  # ImageFolder, torchvision datasets: labels from the index
        return torch.as_tensor(dataset.targets)
    labels = [torch.as_tensor(y).reshape(-1) for _, y, *_ in
              _first_samples(dataset, LABEL_PROBE)]
    return torch.cat(labels) if labels else torch.empty(0, dtype=torch.int64)


def _first_samples(dataset: Any, count: int) -> list[Any]:
    return list(loader(head(dataset, count), count))


def check_labels(labels: torch.Tensor, outputs: int, where: str = "the data") -> None:
    """Raise ``LabelError`` if an integer label is outside ``[0, outputs)``.

    Float labels (regression targets for a custom metric) are not class indices and pass.
    """
    if labels.numel() == 0 or labels.is_floating_point() or labels.is_complex():
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= outputs:
        bad = high if high >= outputs else low
        raise LabelError(
            f"{where} has label {bad}, but the model has {outputs} outputs (labels 0-"
            f"{outputs - 1}); give the model one output per class or relabel the data so "
            "labels run from 0 to classes-1")


def check_fits(model: nn.Module, splits: DataSplits) -> None:
    """Raise ``DatasetError`` unless a sample of ``splits`` runs through ``model``, and
    ``LabelError`` (also a ``ConfigError``) unless the labels are the model's outputs.

    One training sample goes through the model in eval mode without gradients; nothing in the
    model changes. Labels are checked in full where a split can list them without reading
    images (tensors, image folders, datasets with ``targets``), else on its first
    ``LABEL_PROBE`` samples.
    """
    sample = first_batch(splits.train)[0][:1]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(sample)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        raise DatasetError(
            f"{splits.name} samples of shape {tuple(sample.shape[1:])} (C,H,W) do not fit the "
            f"model ({type(err).__name__}: {first}); give data with the channels and size the "
            "model was built for, or a model built for this data") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise DatasetError(f"the model returns {shape} for one {splits.name} sample; haq "
                           "needs a classifier returning (batch, classes) logits")
    classes = out.shape[1]
    splits_seen: list[Any] = []
    for split in ("train", "heldout", "test"):
        data = getattr(splits, split)
        if any(data is seen for seen in splits_seen):
            continue  # the held-out split standing in for test
        splits_seen.append(data)
        check_labels(_labels(data, classes), classes, f"{splits.name} {split} split")
