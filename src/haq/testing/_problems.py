"""Tiny, fast, fully seeded search problems for strategy tests.

``tiny_problem()`` trains a four-layer CNN on haq's synthetic blobs for a fraction of a second
and wraps it in a ``SearchProblem`` with a BOPs and a size budget and a real evaluator
(quantize, calibrate, score on the held-out split; no fine-tuning). Everything is a pure
function of ``seed``, so two calls build identical problems.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from haq.cost import Budget, get
from haq.data import synthetic
from haq.policy import BitSpace, Policy
from haq.quantize import apply_policy_, set_policy_
from haq.search import EvalResult, SearchProblem
from haq.specs import extract_specs

INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 4


def tiny_model(seed: int = 0) -> nn.Module:
    """Conv-BN-ReLU x2, average pool, Linear: four quantizable layers, 8x8 inputs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, NUM_CLASSES),
        )
    return model


def _batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, ...]]:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def train_tiny(model: nn.Module, data: Sequence[tuple[torch.Tensor, torch.Tensor]],
               epochs: int = 6, seed: int = 0) -> nn.Module:
    """A few seeded Adam epochs; leaves the model in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(data), generator=gen).tolist():
            x, y = data[i]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def accuracy(model: nn.Module, data: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Top-1 accuracy in percent."""
    correct = total = 0
    with torch.no_grad():
        for x, y in data:
            correct += int((model(x).argmax(dim=1) == y).sum())
            total += len(y)
    return 100.0 * correct / total


def tiny_problem(seed: int = 0, *, bops: float = 0.35, size: float | None = 0.6,
                 space: BitSpace | None = None, evaluate: bool = True,
                 heldout_size: int = 128) -> SearchProblem:
    """A SearchProblem on a trained four-layer CNN with BOPs (and size) budgets.

    Args:
        seed: data, initialisation and training seed.
        bops: BOPs budget as a fraction of W8A8.
        size: model-size budget as a fraction of W8A8 (``None`` = no size budget).
        space: allowed bits; default 2-8 for both operands.
        evaluate: attach the real evaluator (quantize + calibrate + held-out accuracy).
        heldout_size: held-out samples the evaluator scores (more = finer accuracy steps; the
            draw of the whole data set depends on it, so the trained model does too).
    """
    splits = synthetic(num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE, noise=1.5, seed=seed,
                       sizes=(512, heldout_size, 128))
    tx, ty = splits.train.tensors
    hx, hy = splits.heldout.tensors
    train = _batches(tx, ty, 64)
    heldout = _batches(hx, hy, 128)
    model = train_tiny(tiny_model(seed), train, seed=seed)
    specs = extract_specs(model, tx[:1])
    table = get("bops").table(specs)
    size_table = get("size").table(specs)
    table.values["size"] = size_table.values["size"]
    table.units["size"] = size_table.units["size"]
    budgets = [Budget("bops", bops, relative=True)]
    if size is not None:
        budgets.append(Budget("size", size, relative=True))
    calibration = [tx[:128]]
    problem = SearchProblem(specs=specs, table=table, budgets=budgets,
                            space=space or BitSpace(), model=model, calibration=calibration,
                            train_data=train, float_accuracy=accuracy(model, heldout),
                            provenance={"model": "tiny-cnn", "seed": seed})
    if evaluate:
        problem.evaluate = _evaluator(model, calibration, heldout)
    return problem


def _evaluator(model: nn.Module, calibration: list[torch.Tensor],
               heldout: list[tuple[torch.Tensor, torch.Tensor]]):
    quantized = copy.deepcopy(model)
    state = {"ready": False}

    def evaluate(policy: Policy) -> EvalResult:
        if not state["ready"]:
            apply_policy_(quantized, policy, calibration)
            state["ready"] = True
        else:
            set_policy_(quantized, policy)
        return EvalResult(accuracy=accuracy(quantized, heldout))

    return evaluate


