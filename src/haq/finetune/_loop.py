"""The training loop (float training and quantization-aware fine-tuning) and evaluation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from haq.data import loader
from haq.errors import ConfigError
from haq.finetune._augment import augment_batch
from haq.finetune._config import TrainConfig

Progress = Callable[[dict[str, Any]], None]
Data = Dataset | DataLoader


def _as_loader(data: Data, batch_size: int, shuffle: bool, seed: int) -> Iterable[Any]:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset):
        # A last batch of one sample would break batch-norm in train mode.
        drop_last = shuffle and len(data) > batch_size  # type: ignore[arg-type]
        return loader(data, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    raise ConfigError(
        f"data must be a torch Dataset or DataLoader, got {type(data).__name__}; wrap tensors "
        "with torch.utils.data.TensorDataset(images, labels)")


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, batch_size: int = 500, device: str = "cpu",
             max_samples: int | None = None) -> float:
    """Top-1 accuracy in percent, in eval mode and without gradients.

    The model's train/eval mode is restored afterwards.

    Args:
        model: any classifier returning logits ``(N, classes)``.
        data: a Dataset of ``(image, label)`` or a DataLoader of such batches.
        batch_size: batch size when ``data`` is a Dataset.
        device: device the batches are moved to (the model is expected there already).
        max_samples: score only the first ``max_samples`` samples of a Dataset.

    Raises:
        ConfigError: the data is empty or not a Dataset/DataLoader.
    """
    if max_samples is not None and isinstance(data, Dataset) and not isinstance(data, DataLoader):
        data = Subset(data, range(min(max_samples, len(data))))  # type: ignore[arg-type]
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in _as_loader(data, batch_size, shuffle=False, seed=0):
            logits = model(x.to(device))
            correct += int((logits.argmax(dim=1) == y.to(device)).sum())
            total += int(y.numel())
    finally:
        model.train(was_training)
    if total == 0:
        raise ConfigError("cannot evaluate on an empty dataset")
    return 100.0 * correct / total


def _batches(data: Iterable[Any], config: TrainConfig, per_epoch: int) -> Iterator[
        tuple[int, Any]]:
    """(epoch, batch) pairs until ``config.steps`` or ``config.epochs`` are used up."""
    total = config.steps if config.steps is not None else config.epochs * per_epoch
    step, epoch = 0, 0
    while step < total:
        for i, batch in enumerate(data):
            if i >= per_epoch or step >= total:
                break
            yield epoch, batch
            step += 1
        epoch += 1


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameter to train")
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def train(model: nn.Module, train_data: Data, config: TrainConfig,
          progress: Progress | None = None, eval_data: Data | None = None,
          after_step: Callable[[nn.Module], None] | None = None) -> dict[str, Any]:
    """Train ``model`` in place with cross-entropy; seeded and deterministic on CPU.

    Data order, augmentation and stochastic layers (dropout) are all driven by ``config.seed``:
    the loop runs inside ``torch.random.fork_rng`` seeded with it, so the caller's global RNG
    state is left exactly as it was and two runs with the same seed give the same weights.

    Args:
        model: any ``nn.Module`` mapping images to logits, float or fake-quantized.
        train_data: a Dataset (batched and shuffled here) or a DataLoader (used as given).
        config: optimizer, schedule, length, augmentation, seed.
        progress: called with ``{"event": "step", ...}`` after every step and
            ``{"event": "epoch", ...}`` after every epoch (loss, accuracy, lr, step counts).
        eval_data: if given, top-1 on it is measured after every epoch.
        after_step: called with the model after every optimizer step (e.g. re-snapping
            k-means weights to their centroids).

    Returns:
        History: per-epoch ``loss``, ``train_accuracy`` (running, in train mode), ``lr`` at the
        epoch end and ``eval_accuracy`` (if ``eval_data``); ``steps`` and ``seconds`` in total.

    Raises:
        ConfigError: bad data, no trainable parameters, or the loss diverged (NaN/inf).
    """
    data = _as_loader(train_data, config.batch_size, shuffle=True, seed=config.seed)
    per_epoch = len(data)  # type: ignore[arg-type]
    if config.max_batches is not None:
        per_epoch = min(per_epoch, config.max_batches)
    if per_epoch == 0:
        raise ConfigError("the training data yields no batch; use a smaller batch_size")
    total = config.steps if config.steps is not None else config.epochs * per_epoch
    model.to(config.device)
    optimizer = _optimizer(model, config)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    history: dict[str, Any] = {"loss": [], "train_accuracy": [], "lr": []}
    if eval_data is not None:
        history["eval_accuracy"] = []
    aug_gen = torch.Generator().manual_seed(config.seed + 1)
    was_training = model.training
    started = time.perf_counter()
    step = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model.train()
        sums = [0.0, 0, 0]  # loss * n, correct, n of the current epoch
        current = 0
        for epoch, (x, y) in _batches(data, config, per_epoch):
            if epoch != current:
                _end_epoch(model, current, sums, optimizer, history, eval_data, progress,
                           step, total, config.device)
                sums, current = [0.0, 0, 0], epoch
            lr = _set_lr(optimizer, config, step, total)
            x, y = x.to(config.device), y.to(config.device)
            if config.augment:
                x = augment_batch(x, aug_gen)
            logits = model(x)
            loss = criterion(logits, y)
            if not torch.isfinite(loss):
                raise ConfigError(
                    f"training diverged: loss is {loss.item()} at step {step}; lower lr "
                    f"(now {config.lr}) or check the model")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step(model)
            step += 1
            n, loss_value = int(y.numel()), float(loss.detach())
            sums[0] += loss_value * n
            sums[1] += int((logits.detach().argmax(1) == y).sum())
            sums[2] += n
            if progress is not None:
                progress({"event": "step", "step": step, "total_steps": total, "epoch": epoch,
                          "loss": loss_value, "lr": lr})
        _end_epoch(model, current, sums, optimizer, history, eval_data, progress, step, total,
                   config.device)
    model.train(was_training)
    history["steps"] = step
    history["seconds"] = time.perf_counter() - started
    return history


def _set_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, step: int,
            total: int) -> float:
    lr = config.lr
    if config.cosine:
        lr = 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total))
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def _end_epoch(model: nn.Module, epoch: int, sums: list[Any], optimizer: torch.optim.Optimizer,
               history: dict[str, Any], eval_data: Data | None, progress: Progress | None,
               step: int, total: int, device: str) -> None:
    loss = sums[0] / max(sums[2], 1)
    accuracy = 100.0 * sums[1] / max(sums[2], 1)
    history["loss"].append(loss)
    history["train_accuracy"].append(accuracy)
    history["lr"].append(optimizer.param_groups[0]["lr"])
    record = {"event": "epoch", "epoch": epoch, "step": step, "total_steps": total,
              "loss": loss, "train_accuracy": accuracy}
    if eval_data is not None:
        record["eval_accuracy"] = evaluate(model, eval_data, device=device)
        history["eval_accuracy"].append(record["eval_accuracy"])
        model.train()
    if progress is not None:
        progress(record)


def finetune(model: nn.Module, train_data: Data, config: TrainConfig,
             progress: Progress | None = None, eval_data: Data | None = None,
             after_step: Callable[[nn.Module], None] | None = None) -> dict[str, Any]:
    """Quantization-aware fine-tune: ``train`` on a (fake-)quantized model.

    Works on any ``nn.Module``: fake-quant wrappers are ordinary modules whose rounding has a
    straight-through gradient, so the same loop trains them. Only parameters with
    ``requires_grad`` are updated (frozen quantizer state stays fixed). See ``train`` for the
    arguments; ``search_finetune_config`` and ``final_finetune_config`` give the HAQ presets.
    """
    return train(model, train_data, config, progress=progress, eval_data=eval_data,
                 after_step=after_step)
