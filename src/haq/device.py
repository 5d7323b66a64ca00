"""Where the model runs: ``resolve_device`` turns ``"auto"``/``"cpu"``/``"cuda"`` into a checked
``torch.device``; ``model_device`` and ``to_device`` let every loop follow the model.

The loops (calibration, evaluation, fine-tuning, export parity) take no device argument: they
run where the model's parameters are and move each batch there without blocking, so choosing a
device is one ``model.to(resolve_device(...))`` at the top of a run.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from haq.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``device``, checked before any work.

    Args:
        device: ``"auto"`` (or ``None``: CUDA when available, else the CPU), ``"cpu"``,
            ``"cuda"`` / ``"cuda:N"``, or a ``torch.device``.

    Raises:
        ConfigError: an unknown name, or CUDA asked for on a machine without it.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)} "
                          "(or cuda:N)") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported; choose one of "
                          f"{', '.join(DEVICES)} (or cuda:N)")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but this machine has no CUDA "
                              "device usable by torch; use --device cpu (device='cpu')")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ConfigError(f"device {device!r} does not exist: this machine has {count} "
                              f"CUDA device(s) (cuda:0 to cuda:{count - 1})")
    return resolved


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (or buffer); the CPU for a stateless model."""
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def to_device(value: Any, device: torch.device) -> Any:
    """``value`` (a tensor, or a tuple/list of them) on ``device``, copied without blocking
    the host (a no-op for tensors already there)."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, list | tuple):
        return type(value)(to_device(v, device) for v in value)
    return value


def on_cpu(model: nn.Module) -> nn.Module:
    """``model`` itself if it is on the CPU, else a CPU copy (``model`` stays where it is):
    for work written for the CPU only, such as the hawq, ohq and hgq strategies' probes."""
    if model_device(model).type == "cpu":
        return model
    return copy.deepcopy(model).cpu()
