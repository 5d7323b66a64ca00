"""Export formats, found by name like cost models: each knows how to write and how to run a file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from haq.errors import ExportError
from haq.export._codes import LayerCodes
from haq.policy import Policy
from haq.quantize import QuantConfig
from haq.registry import Registry


@dataclass(frozen=True)
class ExportJob:
    """Everything a format's writer gets: the quantized model (eval, CPU) and its integer view."""

    model: nn.Module
    policy: Policy
    layers: dict[str, LayerCodes]
    example_input: torch.Tensor
    config: QuantConfig
    integer_kernels: bool = False


Runner = Callable[[torch.Tensor], torch.Tensor]  # a batch of inputs -> logits


@dataclass(frozen=True)
class ExportFormat:
    """A registered format.

    Attributes:
        name: what ``--format`` takes.
        suffix: the usual file suffix.
        description: one line for ``haq export --help`` and the docs.
        write: ``job -> bytes`` of the file (the caller writes them atomically).
        load: ``(path, quantized reference model) -> runner``: executes the file the way a
            user's runtime would, for the parity check.
    """

    name: str
    suffix: str
    description: str
    write: Callable[[ExportJob], bytes]
    load: Callable[[Path, nn.Module], Runner]


def register_format(name: str, *, suffix: str, description: str) -> Callable[[Any], Any]:
    """Class decorator: the class provides static ``write(job)`` and ``load(path, model)``."""

    def decorate(cls: Any) -> Any:
        FORMATS.add(name, ExportFormat(name, suffix, description, cls.write, cls.load))
        return cls

    return decorate


_MISSING: dict[str, str] = {}  # built-in format -> the package it needs but cannot import


def _load_builtins() -> None:
    import importlib

    for name in ("onnx", "packed", "qonnx"):
        try:  # importing the module registers the format
            importlib.import_module(f"haq.export._{name}")
        except ImportError as err:  # the haq[export] extra is not installed
            _MISSING[name] = err.name or str(err)


FORMATS: Registry[ExportFormat] = Registry("export format", ExportError, _load_builtins)


def available_formats() -> list[str]:
    """Names of the registered formats."""
    return FORMATS.names()


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; unknown names are refused with the list of known ones."""
    FORMATS.names()  # loads the built-in formats, noting which lack their package
    if name in _MISSING:
        raise ExportError(f"format {name!r} needs the package {_MISSING[name]!r}; install the "
                          "export extra: pip install 'haq[export]'")
    return FORMATS.get(name)
