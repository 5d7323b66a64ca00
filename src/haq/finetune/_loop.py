"""The training loop (float training and quantization-aware fine-tuning) and evaluation."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from haq.data import check_labels, loader, size_of
from haq.device import model_device, resolve_device
from haq.errors import ConfigError
from haq.finetune._augment import augment_batch
from haq.finetune._bnqat import FoldedNorm, folded_bn_qat, freeze
from haq.finetune._config import TrainConfig
from haq.metrics import as_metric

Progress = Callable[[dict[str, Any]], None]
Data = Dataset | DataLoader


def _as_loader(data: Data, batch_size: int, shuffle: bool, seed: int) -> Iterable[Any]:
    """Batches of ``data``: a DataLoader as given, a Dataset batched here (an iterable one in
    its own order)."""
    size = size_of(data)
    # A last batch of one sample would break batch-norm in train mode.
    drop_last = shuffle and size is not None and size > batch_size
    return loader(data, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, batch_size: int = 128,
             device: str | torch.device | None = None, max_samples: int | None = None) -> float:
    """Top-1 accuracy in percent, in eval mode and without gradients.

    The model's train/eval mode is restored afterwards.

    Args:
        model: any classifier returning logits ``(N, classes)``.
        data: a Dataset of ``(image, label)`` or a DataLoader of such batches.
        batch_size: batch size when ``data`` is a Dataset (small batches keep activations in
            CPU cache: 100-128 measured faster than 250-500 for the zoo models).
        device: device the batches are moved to; ``None`` = where the model is (the model
            itself is not moved).
        max_samples: score only the first ``max_samples`` samples.

    Raises:
        ConfigError: the data is empty or not a Dataset/DataLoader.
    """
    limit = math.inf if max_samples is None else max_samples
    target = model_device(model) if device is None else resolve_device(device)
    was_training = model.training
    model.eval()
    correct, total = torch.zeros((), dtype=torch.int64, device=target), 0
    try:
        for x, y in _as_loader(data, batch_size, shuffle=False, seed=0):
            if total >= limit:
                break
            keep = int(min(len(y), limit - total))
            logits = model(x[:keep].to(target, non_blocking=True))
            check_labels(y[:keep], logits.shape[1])
            # counted on the device: one copy to the host at the end, not one per batch
            correct += (logits.argmax(dim=1) == y[:keep].to(target, non_blocking=True)).sum()
            total += keep
    finally:
        model.train(was_training)
    if total == 0:
        raise ConfigError("cannot evaluate on an empty dataset")
    return 100.0 * int(correct) / total


def _batches_per_epoch(data: Iterable[Any], config: TrainConfig) -> int:
    """Batches in one epoch. A stream without a length runs until it ends; with ``steps`` it
    is not counted, with ``epochs`` it is counted by reading it once (each batch dropped as it
    is counted, so memory stays one batch)."""
    try:
        per_epoch = len(data)  # type: ignore[arg-type]
    except TypeError:
        per_epoch = config.steps if config.steps is not None else sum(1 for _ in data)
    if config.max_batches is not None:
        per_epoch = min(per_epoch, config.max_batches)
    if per_epoch == 0:
        raise ConfigError("the training data yields no batch; use a smaller batch_size")
    return per_epoch


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


def _optimizer(model: nn.Module, config: TrainConfig,
               extra: Iterable[nn.Parameter] = ()) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad] + list(extra)
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameter to train")
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


class _Epoch:
    """Running loss and accuracy of one epoch, on the training batches as seen. The sums
    stay on the model's device, so a step never waits for a copy to the host."""

    def __init__(self, index: int, device: torch.device) -> None:
        self.index, self.seen = index, 0
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = int(y.numel())
        self.loss_sum += loss.detach().double() * n
        self.correct += (logits.argmax(1) == y).sum()
        self.seen += n

    def summary(self) -> dict[str, float]:
        seen = max(self.seen, 1)
        return {"loss": float(self.loss_sum) / seen,
                "train_accuracy": 100.0 * int(self.correct) / seen}


def _distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) on temperature-softened outputs (Hinton et al., 2015);
    the T^2 keeps its gradient scale independent of T."""
    student = torch.log_softmax(logits / temperature, dim=1)
    target = torch.log_softmax(teacher_logits / temperature, dim=1)
    kl = nn.functional.kl_div(student, target, reduction="batchmean", log_target=True)
    return kl * temperature ** 2


def _loss(criterion: nn.Module, logits: torch.Tensor, y: torch.Tensor, config: TrainConfig,
          teacher: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, blended with distillation from ``teacher`` when it is given."""
    loss = criterion(logits, y)
    if teacher is None:
        return loss
    with torch.no_grad():
        target = teacher(x)
    soft = _distill_loss(logits, target, config.temperature)
    return (1 - config.distill) * loss + config.distill * soft


def train(model: nn.Module, train_data: Data, config: TrainConfig,
          progress: Progress | None = None, eval_data: Data | None = None,
          after_step: Callable[[nn.Module], None] | None = None,
          teacher: nn.Module | None = None, metric: Any = None) -> dict[str, Any]:
    """Train ``model`` in place with cross-entropy; seeded and deterministic on CPU.

    Data order, augmentation and stochastic layers (dropout) are all driven by ``config.seed``:
    the loop runs inside ``torch.random.fork_rng`` seeded with it, so the caller's global RNG
    state is left exactly as it was and two runs with the same seed give the same weights.
    The model's train/eval mode is restored at the end.

    Args:
        model: any ``nn.Module`` mapping images to logits, float or fake-quantized.
        train_data: a Dataset (batched and shuffled here) or a DataLoader (used as given).
        config: optimizer, schedule, length, augmentation, seed.
        progress: called with ``{"event": "step", ...}`` after every step and
            ``{"event": "epoch", ...}`` after every epoch (loss, accuracy, lr, step counts).
        eval_data: if given, top-1 on it is measured after every epoch.
        metric: measure this instead of top-1 on ``eval_data`` (``haq.metrics.as_metric``:
            a function ``(model, loader) -> float``, a ``Metric`` or ``file.py:function``);
            recorded as ``eval_metric``.
        after_step: called with the model after every optimizer step (e.g. re-snapping
            k-means weights to their centroids).
        teacher: the model distilled from when ``config.distill > 0`` (run in eval mode,
            never updated), typically the float model a quantized copy was made from.

    Returns:
        History: per-epoch ``loss``, ``train_accuracy`` (running, in train mode), ``lr`` at the
        epoch end and ``eval_accuracy`` (or ``eval_metric`` with ``metric``, if ``eval_data``);
        ``steps`` and ``seconds`` in total.

    Raises:
        ConfigError: bad data, no trainable parameters, or the loss diverged (NaN/inf).
    """
    if config.distill > 0 and teacher is None:
        raise ConfigError(f"distill={config.distill} needs a teacher model: pass teacher= (e.g. "
                          "the float model) or set distill=0")
    data = _as_loader(train_data, config.batch_size, shuffle=True, seed=config.seed)
    per_epoch = _batches_per_epoch(data, config)
    total = config.steps if config.steps is not None else config.epochs * per_epoch
    device = model_device(model) if config.device is None else resolve_device(config.device)
    model.to(device)
    with folded_bn_qat(model, config.bn_qat) as norms:
        return _train_loop(model, data, per_epoch, total, config, norms, progress, eval_data,
                           after_step, teacher, metric, device)


def _train_loop(model: nn.Module, data: Iterable[Any], per_epoch: int, total: int,
                config: TrainConfig, norms: dict[str, FoldedNorm], progress: Progress | None,
                eval_data: Data | None, after_step: Callable[[nn.Module], None] | None,
                teacher: nn.Module | None, metric: Any, device: torch.device
                ) -> dict[str, Any]:
    optimizer = _optimizer(model, config,
                           [p for norm in norms.values() for p in norm.parameters()])
    freeze_at = math.ceil(config.bn_freeze * total) if norms else None
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    history: dict[str, Any] = {"loss": [], "train_accuracy": [], "lr": []}
    scorer = None if metric is None else as_metric(metric)
    eval_key = "eval_accuracy" if scorer is None else "eval_metric"
    if eval_data is not None:
        history[eval_key] = []
    aug_gen = torch.Generator().manual_seed(config.seed + 1)
    was_training = model.training
    started = time.perf_counter()
    step, lr = 0, config.lr

    def close(epoch: _Epoch) -> None:
        record = {"event": "epoch", "epoch": epoch.index, "step": step, "total_steps": total,
                  "lr": lr, **epoch.summary()}
        _check_finite(record["loss"], f"in epoch {epoch.index + 1} (by step {step})", config)
        if eval_data is not None:
            record[eval_key] = evaluate(model, eval_data, device=config.device) \
                if scorer is None else scorer.value(model, _as_loader(eval_data, 128, False, 0))
        for key in history:
            history[key].append(record[key])
        if progress is not None:
            progress(record)

    with torch.random.fork_rng(devices=[]), _eval_mode(
            teacher if config.distill > 0 else None) as teacher:
        torch.manual_seed(config.seed)
        model.train()
        epoch = _Epoch(0, device)
        for index, (x, y) in _batches(data, config, per_epoch):
            if index != epoch.index:
                close(epoch)
                epoch = _Epoch(index, device)
            if step == freeze_at:
                freeze(norms)
            lr = _set_lr(optimizer, config, step, total)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if config.augment:
                x = augment_batch(x, aug_gen)
            logits = model(x)
            check_labels(y, logits.shape[1])
            loss = _loss(criterion, logits, y, config, teacher, x)
            if progress is not None:  # the caller asked for every step's loss: read it now
                loss_value = float(loss.detach())
                _check_finite(loss_value, f"at step {step}", config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step(model)
            step += 1
            epoch.add(loss, logits.detach(), y)
            if progress is not None:
                progress({"event": "step", "step": step, "total_steps": total,
                          "epoch": index, "loss": loss_value, "lr": lr})
        close(epoch)
    model.train(was_training)
    history["steps"] = step
    history["seconds"] = time.perf_counter() - started
    return history


def _check_finite(loss: float, where: str, config: TrainConfig) -> None:
    """Without a progress callback the loss is only read at the end of an epoch (so that a
    step never waits for the device); a NaN or inf by then still stops the run."""
    if not math.isfinite(loss):
        raise ConfigError(f"training diverged: loss is {loss} {where}; lower lr "
                          f"(now {config.lr}) or check the model")


@contextlib.contextmanager
def _eval_mode(module: nn.Module | None) -> Iterator[nn.Module | None]:
    """``module`` in eval mode for the block (set once, not per step), its mode given back."""
    if module is None:
        yield None
        return
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def _set_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, step: int,
            total: int) -> float:
    lr = config.lr
    if config.cosine:
        lr = 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total))
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def finetune(model: nn.Module, train_data: Data, config: TrainConfig,
             progress: Progress | None = None, eval_data: Data | None = None,
             after_step: Callable[[nn.Module], None] | None = None,
             teacher: nn.Module | None = None, metric: Any = None) -> dict[str, Any]:
    """Quantization-aware fine-tune: ``train`` on a (fake-)quantized model.

    Works on any ``nn.Module``: fake-quant wrappers are ordinary modules whose rounding has a
    straight-through gradient, so the same loop trains them. Only parameters with
    ``requires_grad`` are updated (frozen quantizer state stays fixed). See ``train`` for the
    arguments; ``search_finetune_config`` and ``final_finetune_config`` give the HAQ presets.
    """
    return train(model, train_data, config, progress=progress, eval_data=eval_data,
                 after_step=after_step, teacher=teacher, metric=metric)
