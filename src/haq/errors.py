"""Typed errors. Every message says what was wrong, what is allowed, and how to fix it."""

from __future__ import annotations


class HaqError(Exception):
    """Root of every error haq raises on purpose."""


class ConfigError(HaqError, ValueError):
    """A parameter or configuration value is out of its allowed range."""


class UnsupportedModelError(HaqError):
    """The model cannot be traced or has nothing haq can quantize."""


class PolicyError(HaqError, ValueError):
    """A bit policy is malformed, names unknown layers, or holds out-of-range bits."""


class CostModelError(HaqError):
    """A cost model or cost table is unknown, malformed, or cannot price a layer."""


class BudgetError(HaqError, ValueError):
    """A budget cannot be parsed or does not match the cost table's metrics."""


class BudgetInfeasibleError(BudgetError):
    """No policy in the allowed bit range meets the budget."""


class DatasetError(HaqError):
    """A dataset is missing or its files are corrupt."""


class LabelError(DatasetError, ConfigError):
    """A label is not one of the model's outputs (the data or the model has to change)."""


class RunError(HaqError):
    """A run directory is missing, already exists, or its journal is damaged."""


class StrategyError(HaqError):
    """A search strategy is unknown or was given parameters it does not take."""


class ExportError(HaqError):
    """A quantized model cannot be written in the requested format, or an export is damaged."""
