"""Build the one ``SearchProblem`` every search, comparison and benchmark runs on.

The stages, in order: resolve inputs (names -> objects), trace specs, build the cost table
(plus the hardware-independent metrics a budget asks for), resolve and check the budgets, draw
the calibration batches, measure float held-out accuracy, build the episode evaluator. ``search``
and ``compare`` both call ``build_problem``, so the same inputs give the same problem.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
from torch import nn

from haq.cost import Budget, CostModel, CostTable, check_feasible
from haq.data import DataSplits, as_splits, check_fits, first_batch, head, loader, size_of
from haq.device import resolve_device
from haq.errors import ConfigError
from haq.metrics import TOP1, as_metric
from haq.policy import BitSpace
from haq.quantize import DEFAULT_CALIBRATION_BATCHES, QuantConfig
from haq.search._base import SearchProblem
from haq.search._evaluator import EpisodeEvaluator
from haq.specs import LayerSpec, extract_specs

CALIBRATION_BATCH = 128
# Held-out scoring batches hold at most this many input elements (500 images at 28x28, 27 at
# 224x224x3): an ImageNet-shaped batch of 500 would need gigabytes of activations.
EVAL_BATCH_ELEMENTS = 1 << 22
MAX_EVAL_BATCH = 500
PRESETS = ("default", "paper")
_GENERIC_METRICS = ("size", "bops")  # priced from the specs alone, on any hardware


@dataclass(frozen=True)
class EvalConfig:
    """How the search scores each candidate policy (on the held-out split).

    Attributes:
        samples: held-out samples scored per evaluation (``None`` = the whole split).
        finetune_steps: recovery SGD steps before each score (0 = the calibrated policy as is,
            the post-training proxy).
        correction_images: calibration images the sequential bias correction runs per episode
            (``calibrate_``). 256 makes an episode about 4x cheaper than the 1,024 the final
            model and ``apply_policy_`` use, and costs under 0.8 pt of top-1 on
            MobileNet-V1 at W3A8 (docs/benchmarks.md, "correction-sample").
    """

    samples: int | None = 1000
    finetune_steps: int = 0
    correction_images: int = 256

    def __post_init__(self) -> None:
        if self.samples is not None and (isinstance(self.samples, bool)
                                         or not isinstance(self.samples, int)
                                         or self.samples < 1):
            raise ConfigError(f"evaluation samples must be an integer >= 1 or None (the whole "
                              f"held-out split), got {self.samples!r}")
        if isinstance(self.finetune_steps, bool) or not isinstance(self.finetune_steps, int) \
                or self.finetune_steps < 0:
            raise ConfigError(f"evaluation finetune_steps must be an integer >= 0 (0 = no "
                              f"recovery), got {self.finetune_steps!r}")
        if isinstance(self.correction_images, bool) or not isinstance(self.correction_images,
                                                                      int) \
                or self.correction_images < 1:
            raise ConfigError(f"evaluation correction_images must be an integer >= 1, got "
                              f"{self.correction_images!r}")


def calibration_batches(train: Any, seed: int = 0,
                        batches: int = DEFAULT_CALIBRATION_BATCHES) -> list[Any]:
    """The batches every calibration of a run uses: the first ``batches`` batches of
    ``CALIBRATION_BATCH`` samples of ``train`` shuffled with ``seed`` (a search, ``haq apply``
    and ``haq export`` with the same seed calibrate identically)."""
    return list(islice(loader(train, CALIBRATION_BATCH, shuffle=True, seed=seed), batches))


def eval_batch_size(input_shape: Sequence[int]) -> int:
    """Images per held-out scoring batch for inputs of ``input_shape`` (see EVAL_BATCH_ELEMENTS)."""
    return max(1, min(MAX_EVAL_BATCH, EVAL_BATCH_ELEMENTS // max(1, math.prod(input_shape))))


def table_hash(table: CostTable) -> str:
    """Content hash of a cost table (values and units), recorded with every run."""
    digest = hashlib.sha256()
    for metric in sorted(table.values):
        digest.update(f"{metric}:{table.units[metric]}".encode())
        digest.update(np.ascontiguousarray(table.values[metric]).tobytes())
    digest.update("|".join(table.layer_names).encode())
    return digest.hexdigest()[:24]


def resolve_model(model: nn.Module | str) -> tuple[nn.Module, str]:
    """(float model, display name) from a module or a zoo name (loaded with its weights)."""
    if isinstance(model, str):
        from haq.models import create

        return create(model, pretrained=True), model
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be an nn.Module or a zoo model name, got {type(model)}")
    return model, type(model).__name__


def resolve_inputs(model: nn.Module | str, data: Any, seed: int = 0
                   ) -> tuple[nn.Module | str, str | None, DataSplits]:
    """(model, its name if known, splits). A zoo name with ``data="synthetic"`` becomes the
    built model plus synthetic data of its input shape labelled by its own predictions (random
    weights if it ships none); anything else is passed on for ``resolve_model``."""
    if isinstance(model, str) and isinstance(data, str) and data.lower() == "synthetic":
        from haq.search._synthetic import zoo_on_synthetic

        net, splits = zoo_on_synthetic(model, seed)
        return net, model, splits
    if isinstance(model, str):
        from haq.models import info

        if not info(model).has_weights:  # refused before any data is loaded
            raise ConfigError(
                f"{model} ships no trained weights, so only its agreement with its own float "
                "predictions can be scored: search it on data='synthetic' (CLI: --dataset "
                "synthetic), or pass your trained nn.Module")
    return model, None, resolve_data(data)


def resolve_data(data: Any) -> DataSplits:
    """``DataSplits`` from anything ``haq.data.as_splits`` takes: itself, a dataset name, an
    image folder, ``file.py:factory``, or a dict/tuple of Datasets or DataLoaders."""
    return as_splits(data)


def resolve_table(cost_model: CostModel | CostTable | str, specs: Sequence[LayerSpec],
                  budgets: Sequence[Budget]) -> CostTable:
    """The hardware's table, plus the hardware-independent metrics (size, BOPs) it lacks and a
    budget asks for, so ``--latency 0.5 --size 0.25`` works on any accelerator."""
    from haq.cost import get

    if isinstance(cost_model, CostTable):
        table = cost_model
    else:
        table = (get(cost_model) if isinstance(cost_model, str) else cost_model).table(specs)
    extra = [b.metric for b in budgets if b.metric not in table.metrics
             and b.metric in _GENERIC_METRICS]
    if not extra:
        return table
    values, units = dict(table.values), dict(table.units)
    for metric in dict.fromkeys(extra):
        generic = get(metric).table(specs)
        values[metric], units[metric] = generic.values[metric], generic.units[metric]
    return CostTable(list(table.layer_names), values, units,
                     {**table.source, "added_metrics": sorted(set(extra))})


def resolve_budgets(budgets: Sequence[Budget] | Mapping[str, str]) -> list[Budget]:
    """``Budget`` objects from themselves or ``{metric: text}`` (``{"latency": "0.5x"}``)."""
    if isinstance(budgets, Mapping):
        return [Budget.parse(metric, str(text)) for metric, text in budgets.items()]
    return list(budgets)


def resolve_space(space: BitSpace | None, preset: str, pin_ends: bool | None,
                  specs: Sequence[LayerSpec]) -> BitSpace:
    """``space`` (2-8 bits if ``None``), with the first and last layer pinned at 8 bits if
    ``pin_ends`` says so (``None``: only under the ``"paper"`` preset)."""
    space = space or BitSpace()
    if pin_ends if pin_ends is not None else preset == "paper":
        space = space.pin_ends(specs)
    return space


def build_problem(model: nn.Module | str, data: Any,
                  cost_model: CostModel | CostTable | str,
                  budgets: Sequence[Budget] | Mapping[str, str], *,
                  specs: Sequence[LayerSpec] | None = None, space: BitSpace | None = None,
                  quant_config: QuantConfig | None = None, evaluation: EvalConfig | None = None,
                  seed: int = 0, preset: str = "default", pin_ends: bool | None = None,
                  model_name: str | None = None, metric: Any = None,
                  device: str | None = "auto") -> SearchProblem:
    """The search problem: everything a strategy may use, built once from the user's inputs.

    Args:
        model: a float ``nn.Module`` or a zoo model name (loaded with its trained weights).
        data: ``DataSplits``, a dataset name, an image folder, ``"file.py:factory"``, or a
            dict ``{"train": ..., "heldout": ..., "test": ...}`` / tuple of torch Datasets
            (map-style or iterable) or DataLoaders (``haq.data.as_splits``); policies are
            scored on ``heldout``, calibrated and fine-tuned on ``train``; ``test`` is never
            put into the problem. An iterable split or a DataLoader is read in its own order:
            calibration takes its first batches, scoring its first ``evaluation.samples``. A
            zoo name with ``"synthetic"`` gets images of its input shape labelled by its own float
            predictions (``zoo_on_synthetic``; random weights if it ships none).
        cost_model: a ``CostModel``, a registered name (``"bismo-edge"``) or a ``CostTable``.
        budgets: ``Budget`` objects or ``{metric: text}`` such as ``{"latency": "0.5x"}``.
        specs: the layers; traced from one training sample if omitted.
        space: allowed bits; ``BitSpace()`` (2-8 bits) if omitted.
        quant_config: the quantizer; ``QuantConfig.preset(preset)`` if omitted.
        evaluation: how each policy is scored (``EvalConfig()``: 1,000 held-out samples, no
            recovery fine-tune).
        seed: draws the calibration batches and seeds the evaluator's fine-tunes.
        preset: ``"default"`` or ``"paper"``: the quantizer and whether the first and last
            layers are pinned at 8 bits.
        pin_ends: pin the first and last layer at 8 bits (``None`` = as the preset says).
        model_name: name recorded in the provenance (default: the zoo name or class name).
        metric: what policies are scored by (``haq.metrics.as_metric``: ``None`` = top-1, a
            function ``(model, loader) -> float``, a ``Metric``, ``"file.py:function"``).
        device: where calibration, scoring and fine-tuning run: ``"auto"`` (CUDA if available),
            ``"cpu"`` or ``"cuda"``; the float model is moved there (a module passed in is
            moved in place) after the cheap checks and before any batch runs.

    Raises:
        BudgetInfeasibleError: no policy in ``space`` meets the budgets (checked up front).
        ConfigError: unknown preset, malformed inputs, or a device this machine lacks.
    """
    target = resolve_device(device)  # a missing CUDA is refused before any work
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    evaluation = evaluation or EvalConfig()
    scorer = as_metric(metric)
    given, name, splits = resolve_inputs(model, data, seed)
    net, resolved_name = resolve_model(given)
    model_name = model_name or name or resolved_name
    check_fits(net, splits)
    specs = list(specs) if specs is not None else extract_specs(net,
                                                                first_batch(splits.train)[0][:1])
    budget_list = resolve_budgets(budgets)
    table = resolve_table(cost_model, specs, budget_list)
    space = resolve_space(space, preset, pin_ends, specs)
    check_feasible(table, budget_list, space, specs)
    quant_config = quant_config or QuantConfig.preset(preset)
    net = net.to(target)
    size = size_of(splits.heldout)
    samples = evaluation.samples if size is None or evaluation.samples is None \
        else min(evaluation.samples, size)
    heldout = head(splits.heldout, samples)
    calibration = calibration_batches(splits.train, seed)
    batch = eval_batch_size(splits.input_shape)
    evaluator = EpisodeEvaluator(net, specs, heldout=heldout, calibration=calibration,
                                 quant_config=quant_config, train_data=splits.train,
                                 finetune_steps=evaluation.finetune_steps, seed=seed,
                                 batch_size=batch, metric=scorer,
                                 correction_images=evaluation.correction_images)
    float_accuracy = scorer.score(net, loader(heldout, batch))
    provenance = {
        "model": model_name, "dataset": splits.name, "cost_model": table.source,
        "table_hash": table_hash(table), "units": dict(table.units),
        "budgets": [b.describe() for b in budget_list], "quant_config": quant_config.to_dict(),
        "eval_samples": samples, "finetune_steps": evaluation.finetune_steps, "seed": seed,
        "correction_images": evaluation.correction_images,
    }
    if scorer is not TOP1:  # runs scored by top-1 keep the identity they always had
        provenance["quality_metric"] = scorer.describe()
    return SearchProblem(specs, table, budget_list, space, evaluate=evaluator,
                         float_accuracy=float_accuracy, model=net, calibration=calibration,
                         train_data=splits.train, heldout=splits.heldout,
                         provenance=provenance, quant_config=quant_config, metric=scorer)
