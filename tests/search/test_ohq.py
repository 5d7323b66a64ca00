"""OHQ: MQE sensitivity sanity, synthetic probe inputs, and the strategy's ILP optimum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from haq.errors import ConfigError, StrategyError
from haq.policy import FLOAT_INDEX, BitSpace, LayerBits
from haq.search.ohq import (
    OhqStrategy,
    bn_matched_inputs,
    kl_from_logits,
    mqe_sensitivity,
    synthetic_inputs,
)
from haq.search.ohq._oneshot import problem_constraints
from haq.testing import brute_force_choice, tiny_problem

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def problem():
    return tiny_problem(seed=0)


def test_kl_matches_hand_computation() -> None:
    ref = torch.tensor([[2.0, 0.0, -1.0]])
    new = torch.tensor([[1.0, 1.0, 0.0]])
    p = torch.softmax(ref, 1)[0].double()
    q = torch.softmax(new, 1)[0].double()
    assert kl_from_logits(ref, new) == pytest.approx(float((p * (p / q).log()).sum()))
    assert kl_from_logits(ref, ref) == 0.0


def test_mqe_lower_bits_hurt_more_on_average(problem) -> None:
    inputs = synthetic_inputs(problem.model, (32, 1, 8, 8), "bn", steps=10, seed=0)
    sens = mqe_sensitivity(problem.model, problem.specs, inputs, BitSpace())
    for table in (sens.weight, sens.act):
        assert np.all(table[:, 1:] >= 0)  # KL is non-negative (bits 2..8 and float)
        assert np.all(table[:, FLOAT_INDEX] == 0)
        assert np.all(np.isnan(table[:, 0]))  # 1 bit is outside the default space
        per_bits = table[:, 1:8].mean(axis=0)  # bits 2..8, averaged over layers
        assert per_bits[0] > per_bits[2] > per_bits[6]  # 2 > 4 > 8 bits
        assert per_bits[0] > 10 * per_bits[6]
    # one float pass, then one pass per layer and probed width (7 weight + 7 activation)
    assert sens.forward_passes == 1 + len(problem.specs) * 14


def test_mqe_skips_pinned_layers(problem) -> None:
    first = problem.specs[0].name
    space = BitSpace(pinned={first: LayerBits(8, 8)})
    inputs = synthetic_inputs(problem.model, (8, 1, 8, 8), "gaussian", seed=1)
    sens = mqe_sensitivity(problem.model, problem.specs, inputs, space)
    assert np.isnan(sens.weight[0, :8]).all() and np.isnan(sens.act[0, :8]).all()
    assert not np.isnan(sens.weight[1, 1:]).any()


def test_bn_matched_inputs_match_running_statistics_better_than_noise(problem) -> None:
    model = problem.model
    bn = model[1]
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(64, 1, 8, 8, generator=gen)
    distilled = bn_matched_inputs(model, (64, 1, 8, 8), 1, torch.Generator().manual_seed(0),
                                  steps=40)[0]

    def mismatch(x: torch.Tensor) -> float:
        with torch.no_grad():
            h = model[0](x)
        mu, var = h.mean(dim=(0, 2, 3)), h.var(dim=(0, 2, 3), unbiased=False)
        return float(((mu - bn.running_mean) ** 2).sum() + ((var - bn.running_var) ** 2).sum())

    assert mismatch(distilled) < 0.5 * mismatch(noise)


def test_synthetic_inputs_are_seeded(problem) -> None:
    a = synthetic_inputs(problem.model, (4, 1, 8, 8), "gaussian", seed=3)
    b = synthetic_inputs(problem.model, (4, 1, 8, 8), "gaussian", seed=3)
    assert torch.equal(a[0], b[0])
    with pytest.raises(ConfigError, match="gaussian"):
        synthetic_inputs(problem.model, (4, 1, 8, 8), "uniform")


def test_ohq_policy_is_the_ilp_optimum_of_its_score() -> None:
    # bits 2..4 keep brute force small (9 pairs per layer); both budgets bind
    problem = tiny_problem(seed=0, bops=0.12, size=0.4, space=BitSpace((2, 4), (2, 4)),
                           evaluate=False)
    result = OhqStrategy(inputs="gaussian", batch_size=16).run(problem, seed=0)
    score = result.extra["score"]
    constraints = problem_constraints(problem)
    best_flat, best_value = brute_force_choice(score, problem.space.mask(problem.specs),
                                               constraints)
    w, a = result.best.arrays(problem.specs)
    assert score[np.arange(len(w)), w - 1, a - 1].sum() == pytest.approx(best_value, rel=1e-9)
    assert np.array_equal((w - 1) * 9 + (a - 1), best_flat)
    for con in constraints:
        assert result.costs[con.metric] <= con.limit * (1 + 1e-9)
    assert result.evaluations == 0 and result.best.provenance["strategy"] == "ohq"


def test_ohq_on_calibration_inputs_and_error_paths() -> None:
    problem = tiny_problem(seed=1, evaluate=False)
    result = OhqStrategy(inputs="calibration").run(problem)
    assert result.best.validate(problem.specs) is None
    problem.model = None
    with pytest.raises(StrategyError, match="float model"):
        OhqStrategy().run(problem)
    with pytest.raises(ConfigError, match="inputs"):
        OhqStrategy(inputs="imagenet")


def test_calibration_given_as_labelled_batches() -> None:
    # haq.search.api hands calibration over as (x, y) loader batches
    problem = tiny_problem(seed=2, evaluate=False)
    x = problem.calibration[0]
    problem.calibration = [(x, torch.zeros(len(x), dtype=torch.long))]
    for inputs in ("calibration", "bn"):
        result = OhqStrategy(inputs=inputs, bn_steps=3).run(problem)
        assert problem.space.contains(result.best, problem.specs)
