"""Does this data fit this model? Checked once, before any slow work, so a mismatch is a
one-line error instead of a traceback from deep inside a forward pass (or, for labels, a
silently wrong accuracy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from haq.data._teacher import TeacherLabelled
from haq.errors import DatasetError

if TYPE_CHECKING:
    from haq.data import DataSplits


def _labels(dataset: Dataset, classes: int) -> torch.Tensor:
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1]
    if isinstance(dataset, TeacherLabelled):
        # A label is the teacher's top-1, so a teacher with no more outputs than the model
        # cannot give one out of range: no need to run the teacher over every image.
        with torch.no_grad():
            if dataset.teacher(dataset.image(0)[None]).shape[1] <= classes:
                return torch.empty(0, dtype=torch.int64)
        return dataset.labels()  # labels only, without drawing every image a second time
    return torch.as_tensor([int(y) for _, y in dataset])  # type: ignore[attr-defined]


def check_fits(model: nn.Module, splits: DataSplits) -> None:
    """Raise ``DatasetError`` unless a sample of ``splits`` runs through ``model`` and every
    label of every split is one of the model's outputs.

    One training sample goes through the model in eval mode without gradients; nothing in the
    model changes.
    """
    sample = splits.train[0][0][None]
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
    for split in ("train", "heldout", "test"):
        labels = _labels(getattr(splits, split), classes)
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            bad = int(labels.max()) if int(labels.max()) >= classes else int(labels.min())
            raise DatasetError(
                f"{splits.name} {split} split has label {bad}, but the model has {classes} "
                f"outputs (labels 0-{classes - 1}); give the model one output per class "
                f"({splits.num_classes} for {splits.name}) or relabel the data")
