"""Episode evaluation: quantize a copy of the float model with a policy and score it held-out.

Built once per search: the model is copied, wrapped (``prepare_``) and calibrated
(``calibrate_``) a single time on training batches. Each episode then only sets bits
(``set_policy_``: cached quantized weights, calibrated ranges reused), optionally runs a short
recovery fine-tune on training data, and scores the problem's metric (top-1 unless the user
gives one, ``haq.metrics``) on the **held-out** split — never on
training batches, which the official code did (reference/haq.md section 6, defect 2).
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from haq.data import head, loader
from haq.device import model_device, to_device
from haq.errors import ConfigError
from haq.finetune import TrainConfig, finetune, search_finetune_config
from haq.metrics import as_metric
from haq.policy import Policy
from haq.quantize import DEFAULT_CALIBRATION_BATCHES, QuantConfig, calibrate_, prepare_, set_policy_
from haq.search._base import EvalResult
from haq.specs import LayerSpec


def policy_seed(seed: int, policy: Policy) -> int:
    """A seed that depends only on ``seed`` and the policy's bits.

    Fine-tuning the same policy twice then gives the same accuracy, so a result cache and a
    resumed run agree with a fresh evaluation.
    """
    text = ";".join(f"{n}:{b.w_bits}:{b.a_bits}" for n, b in sorted(policy.layers.items()))
    digest = hashlib.sha256(f"{seed}|{text}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class EpisodeEvaluator:
    """The ``evaluate`` callable of a ``SearchProblem``.

    Args:
        model: the float model; it is copied, never modified.
        specs: the quantizable layers (their names are wrapped).
        heldout: the split that scores policies (a Dataset, iterable or not, or a
            DataLoader); the search never trains on it.
        calibration: input batches for activation ranges (from the training split).
        quant_config: how to fake-quantize; ``QuantConfig()`` if omitted.
        train_data: training split for the recovery fine-tune (needed if ``finetune_steps``).
        finetune_steps: optimizer steps of recovery per episode; 0 scores the calibrated
            policy directly (post-training quantization proxy).
        finetune_config: the recovery recipe; ``search_finetune_config`` if omitted (HAQ's
            SGD 1e-3, momentum 0.9, weight decay 4e-5), with ``steps`` replaced.
        eval_samples: score the first this-many held-out samples (``None`` = all of them).
        calibration_batches: batches of ``calibration`` used for the ranges.
        seed: base seed of each episode's fine-tune data order (mixed with the policy).
        batch_size: evaluation batch size.
        metric: what is measured (``haq.metrics.as_metric``; top-1 by default); the result's
            ``accuracy`` is its score (higher is better).
        bn_batches: before scoring, re-estimate batch-norm statistics of the quantized model
            on this many ``calibration`` batches (0 = keep the float model's statistics).
            Quantization shifts every layer's output distribution; the float statistics then
            misnormalise it, which the post-training proxy charges to the policy.
        correction_images: calibration inputs the sequential bias correction runs per policy
            (``calibrate_``); ``None`` keeps ``calibrate_``'s default.
    """

    def __init__(self, model: nn.Module, specs: Sequence[LayerSpec], *, heldout: Any,
                 calibration: Any, quant_config: QuantConfig | None = None,
                 train_data: Dataset | DataLoader | None = None, finetune_steps: int = 0,
                 finetune_config: TrainConfig | None = None, eval_samples: int | None = None,
                 calibration_batches: int = DEFAULT_CALIBRATION_BATCHES, seed: int = 0,
                 batch_size: int = 500, bn_batches: int = 0, metric: Any = None,
                 correction_images: int | None = None) -> None:
        if finetune_steps < 0:
            raise ConfigError(f"finetune_steps must be >= 0, got {finetune_steps}")
        if finetune_steps and train_data is None:
            raise ConfigError("finetune_steps > 0 needs train_data for the recovery fine-tune")
        if eval_samples is not None and eval_samples < 1:
            raise ConfigError(f"eval_samples must be >= 1 or None, got {eval_samples}")
        self.model = copy.deepcopy(model).eval()
        prepare_(self.model, [s.name for s in specs], quant_config or QuantConfig())
        kept = {} if correction_images is None else {"correction_images": correction_images}
        calibrate_(self.model, calibration, calibration_batches, **kept)
        self.heldout = head(heldout, eval_samples)
        self.metric = as_metric(metric)
        self.train_data, self.finetune_steps, self.seed = train_data, finetune_steps, seed
        self.batch_size = batch_size
        if bn_batches < 0:
            raise ConfigError(f"bn_batches must be >= 0, got {bn_batches}")
        self.bn_batches = list(calibration)[:bn_batches]
        self.finetune_config = finetune_config or search_finetune_config(seed,
                                                                         max(1, finetune_steps))
        # float weights, BN statistics and calibrated clips, restored after every fine-tune
        self._float_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._bn_state = {f"{name}.{buffer}": self._float_state[f"{name}.{buffer}"]
                          for name, _ in _batchnorms(self.model) for buffer in _BN_BUFFERS}

    def __call__(self, policy: Policy) -> EvalResult:
        start = time.perf_counter()
        set_policy_(self.model, policy)
        extra: dict[str, Any] = {}
        # a fine-tune changes everything; a BN re-estimate only the BN buffers
        restore = self._float_state if self.finetune_steps else (
            self._bn_state if self.bn_batches else None)
        try:
            if self.bn_batches:
                reestimate_batchnorm_(self.model, self.bn_batches)
            if self.finetune_steps:
                cfg = replace(self.finetune_config, steps=self.finetune_steps,
                              seed=policy_seed(self.seed, policy))
                history = finetune(self.model, self.train_data, cfg)
                extra["finetune_loss"] = history["loss"][-1] if history.get("loss") else None
            accuracy = self.metric.score(self.model, loader(self.heldout, self.batch_size))
        finally:
            if restore is not None:
                with torch.no_grad():
                    self.model.load_state_dict(restore, strict=restore is self._float_state)
        return EvalResult(accuracy, time.perf_counter() - start, extra)


_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _batchnorms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every batch-norm layer that tracks running statistics."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def reestimate_batchnorm_(model: nn.Module, batches: Sequence[Any]) -> None:
    """Replace every batch-norm layer's running statistics by the plain average over
    ``batches`` of what the (quantized) model feeds it; everything else runs in eval mode."""
    norms = [m for _, m in _batchnorms(model)]
    if not norms:
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
        norm.train()
    device = model_device(model)
    try:
        for batch in batches:
            model(to_device(batch[0] if isinstance(batch, list | tuple) else batch, device))
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.train(was_training)
