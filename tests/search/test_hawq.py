"""HAWQ: curvature traces against exact Hessians, the score itself, and the strategy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from haq.errors import ConfigError, StrategyError
from haq.policy import FLOAT_INDEX, BitSpace, Policy
from haq.quantize import QuantConfig
from haq.search.hawq import HawqStrategy, gauss_newton_traces, perturbations
from haq.search.ohq._oneshot import problem_constraints
from haq.specs import extract_specs
from haq.testing import brute_force_choice, tiny_problem

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model


def _data(n: int = 6, d: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _close(got: float, want: float, se: float) -> bool:
    """Within four standard errors, and the estimate itself precise to 3 %."""
    return abs(got - want) <= 4 * se and se <= 0.03 * want


# --- the estimator against known Hessians --------------------------------------------------


def test_trace_matches_the_closed_form_of_softmax_regression() -> None:
    # Mean cross-entropy of logits W x: H_W = mean_n A_n (x) x_n x_n^T with
    # A_n = diag(p_n) - p_n p_n^T, so Tr(H_W) = mean_n (1 - |p_n|^2) |x_n|^2 (labels drop out);
    # H wrt the input batch: blocks W^T A_n W / N, trace mean_n Tr(W^T A_n W).
    model = _seeded(nn.Sequential(nn.Linear(3, 4, bias=False)))
    x = _data()
    w = model[0].weight.detach()
    p = torch.softmax(x @ w.T, dim=1)
    want_w = float(((1 - (p ** 2).sum(1)) * (x ** 2).sum(1)).mean()) / w.numel()
    a = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    want_x = float(torch.einsum("ci,ncd,di->n", w, a, w).mean()) / x.numel()
    est = gauss_newton_traces(model, extract_specs(model, x[:1]), [x], probes=4000,
                              max_probes=4000, seed=0)
    assert _close(est.weight[0], want_w, est.weight_se[0])
    assert _close(est.act[0], want_x, est.act_se[0])


def test_trace_is_the_exact_hessian_trace_of_a_relu_network() -> None:
    # Piecewise linear in each layer's weights and inputs: the Gauss-Newton block is the
    # Hessian block, so the estimate must match torch's exact Hessian (labels included).
    model = _seeded(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3)))
    x = _data(n=64)
    y = torch.arange(64) % 3
    w0, w2 = model[0].weight.detach(), model[2].weight.detach()

    def loss(w0: torch.Tensor, w2: torch.Tensor, hidden: torch.Tensor | None = None
             ) -> torch.Tensor:
        h = torch.relu(F.linear(x, w0, model[0].bias)) if hidden is None else hidden
        return F.cross_entropy(F.linear(h, w2, model[2].bias), y)

    hidden = torch.relu(F.linear(x, w0, model[0].bias)).detach()
    exact = [torch.autograd.functional.hessian(lambda w: loss(w, w2), w0).reshape(15, 15),
             torch.autograd.functional.hessian(lambda w: loss(w0, w), w2).reshape(15, 15)]
    exact_hidden = torch.autograd.functional.hessian(lambda h: loss(w0, w2, h), hidden)
    est = gauss_newton_traces(model, extract_specs(model, x[:1]), [x], probes=4000,
                              max_probes=4000, seed=0)
    for i, hessian in enumerate(exact):
        assert float(hessian.trace()) > 0
        assert _close(est.weight[i], float(hessian.trace()) / 15, est.weight_se[i])
    want = float(exact_hidden.reshape(320, 320).trace()) / 320
    assert _close(est.act[1], want, est.act_se[1])


def test_every_probe_draw_is_nonnegative_so_the_trace_is() -> None:
    # The tanh network's full Hessian is indefinite; the estimate stays >= 0 at any probe count.
    model = _seeded(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)), seed=3)
    specs = extract_specs(model, _data()[:1])
    for seed in range(5):
        est = gauss_newton_traces(model, specs, [_data(seed=seed)], probes=2, max_probes=2,
                                  seed=seed)
        assert np.all(est.weight >= 0) and np.all(est.act >= 0)


def test_probes_double_until_precise_or_capped() -> None:
    model = _seeded(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3)))
    specs, x = extract_specs(model, _data()[:1]), _data()
    loose = gauss_newton_traces(model, specs, [x], probes=8, max_probes=64, rtol=10.0)
    assert (loose.probes, loose.converged) == (8, True)
    tight = gauss_newton_traces(model, specs, [x], probes=8, max_probes=64, rtol=1e-6)
    assert (tight.probes, tight.converged) == (64, False)
    mid = gauss_newton_traces(model, specs, [x], probes=8, max_probes=4096, rtol=0.1)
    assert mid.converged and 8 < mid.probes < 4096
    assert np.all(mid.relative_error() <= 0.1)


def test_traces_are_seeded_and_validate_their_arguments() -> None:
    model = _seeded(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3)))
    specs, x = extract_specs(model, _data()[:1]), _data()
    a = gauss_newton_traces(model, specs, [x], probes=4, max_probes=4, seed=5)
    b = gauss_newton_traces(model, specs, [x], probes=4, max_probes=4, seed=5)
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.act, b.act)
    for kwargs in ({"probes": 1}, {"probes": 8, "max_probes": 4}, {"rtol": 0.0}):
        with pytest.raises(ConfigError):
            gauss_newton_traces(model, specs, [x], **kwargs)
    with pytest.raises(ConfigError, match="at least one"):
        gauss_newton_traces(model, specs, [])


# --- the score ------------------------------------------------------------------------------


def test_perturbations_shrink_with_bits() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    inputs = [problem.train_data[0][0]]
    dw, da = perturbations(problem.model, problem.specs, inputs, BitSpace(), QuantConfig())
    for d in (dw, da):
        vals = d[:, 1:8]  # bits 2..8
        assert np.all(np.diff(vals, axis=1) < 0)
        assert np.all(vals[:, 0] > 20 * vals[:, 4])  # roughly a quarter per extra bit


def _score(problem, **params) -> np.ndarray:
    return HawqStrategy(**{"batches": 1, "samples": 8, **params}).score(problem, seed=0)


def test_score_falls_strictly_as_bits_rise_for_every_free_layer() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    score = _score(problem)
    bits = list(range(1, 8)) + [FLOAT_INDEX]  # indices of 2..8 bits, then float
    for layer in range(len(problem.specs)):
        for a in bits:  # weights at every fixed activation width, and the converse
            assert np.all(np.diff(score[layer, bits, a]) < 0), (layer, a)
            assert np.all(np.diff(score[layer, a, bits]) < 0), (layer, a)
        assert score[layer, FLOAT_INDEX, FLOAT_INDEX] == 0.0


def test_score_is_half_trace_times_perturbation() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    strategy = HawqStrategy(batches=1, samples=8)
    score = strategy.score(problem, seed=0)
    inputs = [problem.train_data[0][0]]
    dw, da = perturbations(problem.model, problem.specs, inputs, problem.space, QuantConfig())
    t_w, t_a = strategy.traces.weight, strategy.traces.act
    assert np.all(t_w > 0) and np.all(t_a > 0)
    want = 0.5 * (t_w[:, None, None] * dw[:, :, None] + t_a[:, None, None] * da[:, None, :])
    np.testing.assert_allclose(score, want, rtol=1e-12)


def test_pinned_layers_score_zero_and_are_not_probed() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    problem.space = BitSpace().pin_ends(problem.specs)
    strategy = HawqStrategy(batches=1, samples=8)
    score = strategy.score(problem, seed=0)
    assert np.all(score[[0, -1]] == 0.0)
    assert strategy.diagnostics["layers"] == [s.name for s in problem.specs[1:-1]]


def test_the_callers_model_is_unchanged() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    before = {k: v.clone() for k, v in problem.model.state_dict().items()}
    grads = [p.requires_grad for p in problem.model.parameters()]
    problem.model.train()
    HawqStrategy(batches=1, samples=4).run(problem, seed=0)
    after = problem.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert grads == [p.requires_grad for p in problem.model.parameters()]
    assert problem.model.training


class _CountingBatches:
    """An iterable of (x, y) batches that counts how many were taken."""

    def __init__(self, batches: list) -> None:
        self.batches, self.taken = batches, 0

    def __iter__(self) -> Iterator[tuple]:
        for batch in self.batches:
            self.taken += 1
            yield batch


def test_training_data_is_used_when_given() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    counting = _CountingBatches(problem.train_data)
    problem.train_data = counting
    base = _score(problem, batches=2)
    assert counting.taken == 2
    other = tiny_problem(seed=1, evaluate=False).train_data  # another draw of the blobs
    problem.train_data = _CountingBatches(other)
    changed = _score(problem, batches=2)
    free = np.isfinite(base) & (base > 0)
    assert not np.allclose(base[free], changed[free], rtol=0.02)


def test_calibration_inputs_stand_in_for_missing_training_data() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    problem.train_data = None
    result = HawqStrategy(batches=1, samples=4).run(problem)
    assert problem.space.contains(result.best, problem.specs)
    problem.calibration = None
    with pytest.raises(StrategyError, match="input batches"):
        HawqStrategy().run(problem)
    problem.model = None
    with pytest.raises(StrategyError, match="float model"):
        HawqStrategy().run(problem)


def test_strategy_rejects_bad_settings() -> None:
    for kwargs in ({"samples": 1}, {"samples": 8, "max_samples": 4}, {"rtol": 0},
                   {"batches": 0}, {"rtol": True}):
        with pytest.raises(ConfigError):
            HawqStrategy(**kwargs)


# --- the strategy ---------------------------------------------------------------------------


def test_hawq_policy_is_the_ilp_optimum_of_its_score() -> None:
    problem = tiny_problem(seed=0, bops=0.12, size=0.4, space=BitSpace((2, 4), (2, 4)),
                           evaluate=False)
    result = HawqStrategy(batches=1, samples=4).run(problem, seed=0)
    score = result.extra["score"]
    assert np.all(score[np.isfinite(score)] >= 0)
    _, best_value = brute_force_choice(score, problem.space.mask(problem.specs),
                                       problem_constraints(problem))
    w, a = result.best.arrays(problem.specs)
    assert score[np.arange(len(w)), w - 1, a - 1].sum() == pytest.approx(best_value, rel=1e-9)


def _weights_only_problem(bits: int):
    """The tiny CNN at the size of uniform ``bits``-bit weights, activations fixed at 8."""
    return tiny_problem(seed=0, bops=1.0, size=bits / 8,
                        space=BitSpace(weights_only=True, fixed_a_bits=8))


@pytest.mark.parametrize("bits", [2, 3])
def test_hawq_beats_uniform_at_equal_size(bits: int) -> None:
    problem = _weights_only_problem(bits)
    uniform = Policy.uniform(problem.specs, bits, 8)
    floor = problem.evaluate(uniform).accuracy
    result = HawqStrategy(batches=2, samples=16).run(problem, seed=0)
    assert result.costs["size"] <= problem.table.evaluate(uniform)["size"] * (1 + 1e-9)
    assert result.best_accuracy >= floor
    assert result.extra["curvature"]["converged"]
    assert "warnings" not in result.extra


def test_unconverged_traces_are_reported_not_hidden(tmp_path: Path) -> None:
    problem = tiny_problem(seed=0)
    strategy = HawqStrategy(batches=1, samples=2, max_samples=4, rtol=1e-6)
    result = strategy.run(problem, seed=0, run_dir=tmp_path / "run")
    curvature = result.extra["curvature"]
    assert curvature["converged"] is False and curvature["probes_per_batch"] == 4
    (warning,) = result.extra["warnings"]
    assert "did not reach" in warning and "max_samples" in warning
    saved = json.loads((tmp_path / "run" / "hawq_curvature.json").read_text())
    assert saved == curvature
    again = HawqStrategy(batches=1, samples=2, max_samples=4, rtol=1e-6).run(
        tiny_problem(seed=0), seed=0, run_dir=tmp_path / "run", resume=True)
    assert again.extra["warnings"] == [warning] and again.best == result.best
