"""Per-layer curvature of the loss: Gauss-Newton traces, estimated with one backward per probe.

The cross-entropy Hessian with respect to a layer's weights ``W`` splits into the Gauss-Newton
part ``G = mean_n J_n^T A_n J_n`` (``J_n``: Jacobian of sample n's logits w.r.t. ``W``,
``A_n = diag(p_n) - p_n p_n^T``: the Hessian of cross-entropy w.r.t. the logits) and a residual
weighted by the second derivatives of the network. For a network that is piecewise linear in
each layer's weights and inputs (ReLU / ReLU6, pooling, BatchNorm in eval mode, convolutions,
linear layers) the residual is zero, so ``G`` *is* the Hessian block; for smooth activations
``G`` is its positive semi-definite part. Either way ``Tr(G) >= 0`` by construction, which is
what a sensitivity needs: a raw Hutchinson estimate of the full Hessian mixes in every other
layer's block through the shared probe and comes out negative for weakly curved layers.

Estimator: draw ``y_n ~ p_n`` (the model's own predictive distribution) and a sign ``s_n = +-1``
per sample, back-propagate ``r_n = s_n (p_n - onehot(y_n))`` from the logits. Since
``E[r_n r_n^T] = A_n`` and the signs cancel every cross-sample term, the gradient ``g`` that
reaches a layer satisfies ``E ||g||^2 = N Tr(G)``. Each probe's value ``||g||^2 / N`` is >= 0,
one backward pass serves every layer (weights and inputs), and labels are not needed (``A_n``
does not depend on them).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import nn

from haq.errors import ConfigError
from haq.specs import LayerSpec


@dataclass
class CurvatureTraces:
    """Per-layer Gauss-Newton traces of the mean cross-entropy, averaged per element.

    Attributes:
        weight: ``Tr(G_W) / numel(W)`` per layer.
        act: ``Tr(G_x) / numel(x)`` per layer, for the layer's input ``x`` over the batch.
        weight_se / act_se: standard error of each mean over the probes (same units).
        probes: probe draws per batch that were used.
        converged: every layer's relative standard error is within the tolerance.
    """

    weight: np.ndarray
    act: np.ndarray
    weight_se: np.ndarray
    act_se: np.ndarray
    probes: int
    converged: bool

    def relative_error(self) -> np.ndarray:
        """``[L, 2]`` standard error / mean for (weight, input); 0 where both are 0."""
        means = np.stack([self.weight, self.act], axis=1)
        errors = np.stack([self.weight_se, self.act_se], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(errors == 0, 0.0, errors / means)
        return np.where(np.isfinite(rel), rel, np.inf)

    def to_dict(self) -> dict[str, object]:
        """JSON-able summary (for the run directory and ``SearchResult.extra``)."""
        rel = self.relative_error()
        return {"weight_trace": self.weight.tolist(), "act_trace": self.act.tolist(),
                "weight_relative_error": rel[:, 0].tolist(),
                "act_relative_error": rel[:, 1].tolist(),
                "probes_per_batch": self.probes, "converged": self.converged}


def _rademacher(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator).float() * 2.0 - 1.0


def _weight(module: nn.Module) -> torch.Tensor:
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise ConfigError(f"layer {type(module).__name__} has no weight tensor")
    return weight


def _probe_batch(net: nn.Module, modules: Sequence[nn.Module], x: torch.Tensor, probes: int,
                 generator: torch.Generator) -> np.ndarray:
    """``[probes, 2, L]`` per-element draws ``||g||^2 / (N numel)`` for weights and inputs."""
    inputs: list[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
               for m in modules]
    try:
        logits = net(x.detach().clone().requires_grad_(True))
    finally:
        for handle in handles:
            handle.remove()
    if len(inputs) != len(modules):
        raise ConfigError("a layer ran more or less than once; curvature traces need each "
                          "quantized layer to run exactly once per forward pass")
    if logits.dim() != 2:
        raise ConfigError(f"curvature traces need [batch, classes] logits, the model returned "
                          f"shape {tuple(logits.shape)}")
    targets = [*(_weight(m) for m in modules), *inputs]
    sizes = torch.tensor([float(t.numel()) for t in targets], dtype=torch.float64)
    probs = F.softmax(logits.detach().double(), dim=1)
    n = logits.shape[0]
    draws = np.empty((probes, 2, len(modules)))
    for k in range(probes):
        labels = torch.multinomial(probs, 1, replacement=True, generator=generator).squeeze(1)
        residual = _rademacher((n, 1), generator).double() * (
            probs - F.one_hot(labels, probs.shape[1]).double())
        grads = torch.autograd.grad(logits, targets, grad_outputs=residual.to(logits.dtype),
                                    retain_graph=True)
        squares = torch.stack([g.double().pow(2).sum() for g in grads])
        draws[k] = (squares / (n * sizes)).reshape(2, len(modules)).numpy()
    return draws


def _summary(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the first axis."""
    count = draws.shape[0]
    se = draws.std(axis=0, ddof=1) / np.sqrt(count) if count > 1 else np.full(
        draws.shape[1:], np.inf)
    return draws.mean(axis=0), se


def gauss_newton_traces(model: nn.Module, specs: Sequence[LayerSpec],
                        inputs: Sequence[torch.Tensor], *, probes: int = 16,
                        max_probes: int = 256, rtol: float = 0.05,
                        seed: int = 0) -> CurvatureTraces:
    """Estimate every layer's per-element Gauss-Newton trace, probing until it is precise.

    Probes come in rounds over every batch: ``probes`` per batch first, then the total is
    doubled while some layer's relative standard error (weight or input) exceeds ``rtol``,
    up to ``max_probes`` per batch. If the cap is reached first the result says
    ``converged=False``; the estimate is still unbiased and never negative.

    Args:
        model: the float model; a copy in eval mode is differentiated (BatchNorm uses its
            running statistics, as at inference), ``model`` is untouched.
        specs: the layers to estimate.
        inputs: input batches (labels are not needed: see the module docstring).
        probes: probe draws per batch in the first round.
        max_probes: cap on probe draws per batch.
        rtol: the relative standard error every layer must reach.
        seed: seeds the probes.

    Raises:
        ConfigError: no batch, ``probes < 2``, ``max_probes < probes`` or ``rtol <= 0``.
    """
    if not inputs:
        raise ConfigError("curvature traces need at least one input batch")
    if probes < 2 or max_probes < probes:
        raise ConfigError(f"need 2 <= probes <= max_probes, got probes={probes}, "
                          f"max_probes={max_probes}")
    if not rtol > 0:
        raise ConfigError(f"rtol must be > 0, got {rtol}")
    net = copy.deepcopy(model).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    modules = [net.get_submodule(s.name) for s in specs]
    for m in modules:
        _weight(m).requires_grad_(True)
    generator = torch.Generator().manual_seed(int(seed))
    rounds: list[np.ndarray] = []
    done, step = 0, probes
    while True:
        rounds += [_probe_batch(net, modules, x, step, generator) for x in inputs]
        done += step
        mean, se = _summary(np.concatenate(rounds))
        precise = bool(np.all((se <= rtol * mean) | (se == 0)))
        if precise or done >= max_probes:
            break
        step = min(done, max_probes - done)
    return CurvatureTraces(weight=mean[0], act=mean[1], weight_se=se[0], act_se=se[1],
                           probes=done, converged=precise)
