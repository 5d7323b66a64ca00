"""HAWQ: Hutchinson traces against the exact Hessian, perturbations, and the strategy."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from haq.errors import StrategyError
from haq.policy import BitSpace
from haq.quantize import QuantConfig
from haq.search.hawq import HawqStrategy, hutchinson_traces, perturbations
from haq.search.ohq._oneshot import problem_constraints
from haq.specs import extract_specs
from haq.testing import brute_force_choice, single_thread, tiny_problem


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with single_thread():
        yield


def _mlp() -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model


def test_hutchinson_matches_exact_hessian_trace() -> None:
    model = _mlp()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 3, generator=gen), torch.randint(0, 3, (5,), generator=gen)
    specs = extract_specs(model, x)
    est = hutchinson_traces(model, specs, [(x, y)], samples=3000, seed=0)

    def loss_of(w0: torch.Tensor, w2: torch.Tensor, h: torch.Tensor | None = None
                ) -> torch.Tensor:
        hidden = torch.tanh(F.linear(x, w0, model[0].bias)) if h is None else h
        return F.cross_entropy(F.linear(hidden, w2, model[2].bias), y)

    w0, w2 = model[0].weight.detach(), model[2].weight.detach()
    h0 = torch.autograd.functional.hessian(lambda w: loss_of(w, w2), w0).reshape(12, 12)
    h2 = torch.autograd.functional.hessian(lambda w: loss_of(w0, w), w2).reshape(12, 12)
    hidden = torch.tanh(F.linear(x, w0, model[0].bias))
    ha = torch.autograd.functional.hessian(lambda h: loss_of(w0, w2, h), hidden).reshape(20, 20)
    exact_w = [float(h0.trace()) / 12, float(h2.trace()) / 12]
    for got, want, se in zip(est.weight, exact_w, est.weight_std, strict=True):
        assert abs(got - want) <= max(4 * se, 0.02 * abs(want))
    want_a = float(ha.trace()) / 20
    assert abs(est.act[1] - want_a) <= max(4 * est.act_std[1], 0.02 * abs(want_a))


def test_hutchinson_is_seeded() -> None:
    model = _mlp()
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    specs = extract_specs(model, x)
    a = hutchinson_traces(model, specs, [(x, y)], samples=4, seed=5)
    b = hutchinson_traces(model, specs, [(x, y)], samples=4, seed=5)
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.act, b.act)


def test_perturbations_shrink_with_bits() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    batches = problem.train_data[:1]
    dw, da = perturbations(problem.model, problem.specs, batches, BitSpace(), QuantConfig())
    for d in (dw, da):
        vals = d[:, 1:8]  # bits 2..8
        assert np.all(np.diff(vals, axis=1) <= 1e-12)  # more bits, no more error
        # a linear grid roughly quarters the squared error per extra bit
        assert np.all(vals[:, 0] > 20 * vals[:, 4])


def test_hawq_policy_is_the_ilp_optimum_of_its_score() -> None:
    problem = tiny_problem(seed=0, bops=0.12, size=0.4, space=BitSpace((2, 4), (2, 4)),
                           evaluate=False)
    result = HawqStrategy(batches=1, samples=4).run(problem, seed=0)
    score = result.extra["score"]
    assert np.all(score[np.isfinite(score)] >= 0)
    best_flat, best_value = brute_force_choice(score, problem.space.mask(problem.specs),
                                               problem_constraints(problem))
    w, a = result.best.arrays(problem.specs)
    assert score[np.arange(len(w)), w - 1, a - 1].sum() == pytest.approx(best_value, rel=1e-9)


def test_hawq_uses_pseudo_labels_without_training_data() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    problem.train_data = None
    result = HawqStrategy(batches=1, samples=2).run(problem)
    assert problem.space.contains(result.best, problem.specs)
    problem.model = None
    with pytest.raises(StrategyError, match="float model"):
        HawqStrategy().run(problem)
