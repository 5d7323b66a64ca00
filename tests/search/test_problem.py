"""One problem builder for search and compare; the config objects; what the runner measures."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch

import haq
from haq.data import synthetic
from haq.errors import ConfigError
from haq.finetune import evaluate
from haq.policy import Policy
from haq.quantize import QuantConfig, apply_policy_
from haq.runs import RunLayout
from haq.search import (
    EvalConfig,
    FinalConfig,
    RescoreConfig,
    build_problem,
    calibration_batches,
    final_scorer,
    run_strategy,
)
from haq.testing import tiny_problem

FAST = QuantConfig(weight_clip="max", act_clip="max")
BUDGETS = {"bops": "0.5", "size": "0.6"}


def test_build_problem_is_deterministic_and_holds_what_search_records(trained, tmp_path) -> None:
    model, data = trained
    kwargs = dict(quant_config=FAST, evaluation=EvalConfig(48), seed=2)
    first = build_problem(model, data, "bismo-edge", BUDGETS, **kwargs)
    second = build_problem(model, data, "bismo-edge", BUDGETS, **kwargs)
    assert first.provenance == second.provenance
    assert len(first.calibration) == len(second.calibration) > 0
    for a, b in zip(first.calibration, second.calibration, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # the batches `haq apply --seed 2` and `haq export --seed 2` calibrate on
    for a, b in zip(first.calibration, calibration_batches(data.train, 2), strict=True):
        assert torch.equal(a[0], b[0])
    # size comes from the hardware-independent model beside bismo-edge's own metrics
    assert {"latency", "size", "bops"} <= set(first.table.metrics)
    assert first.provenance["cost_model"]["added_metrics"] == ["bops", "size"]
    assert first.provenance["eval_samples"] == 48 and first.evaluate.heldout.indices == range(48)
    assert first.float_accuracy == evaluate(model, torch.utils.data.Subset(data.heldout,
                                                                           range(48)))
    # haq.search runs on exactly this problem: same provenance, float and W8A8 scores
    result = haq.search(model, data, "bismo-edge", BUDGETS, "uniform", run_dir=tmp_path,
                        **kwargs)
    assert result.best.provenance["table_hash"] == first.provenance["table_hash"]
    assert {k: result.best.provenance[k] for k in first.provenance} == first.provenance
    assert result.extra["float_accuracy"] == first.float_accuracy
    w8a8 = first.evaluate(Policy.uniform(first.specs, 8, 8)).accuracy
    assert result.extra["w8a8_accuracy"] == w8a8


def test_result_json_records_test_accuracy_time_and_evaluations_without_finetune(
        trained, tmp_path) -> None:
    model, data = trained
    result = haq.search(model, data, "bops", {"bops": "0.5"}, "random", episodes=4,
                        quant_config=FAST, evaluation=EvalConfig(32), run_dir=tmp_path, seed=1)
    summary = json.loads(RunLayout(tmp_path).result.read_text())
    problem = build_problem(model, data, "bops", {"bops": "0.5"}, quant_config=FAST,
                            evaluation=EvalConfig(32), seed=1)
    expected = evaluate(apply_policy_(copy.deepcopy(model), result.best, problem.calibration,
                                      FAST), data.test)
    assert summary["test_accuracy"] == result.extra["test_accuracy"] == expected
    assert summary["float_test_accuracy"] == evaluate(model, data.test)
    assert "final_finetune" not in summary and not RunLayout(tmp_path).final_model.exists()
    distinct = {json.dumps(h["policy"]) for h in result.history}
    assert summary["evaluations"] == result.evaluations == len(distinct)
    assert summary["search_seconds"] == result.seconds > 0


def test_run_strategy_counts_every_held_out_evaluation_for_any_strategy() -> None:
    problem = tiny_problem(seed=0)
    calls = []
    inner = problem.evaluate
    problem.evaluate = lambda policy: calls.append(policy) or inner(policy)
    for name, params in (("uniform", {}), ("random", {"episodes": 3}), ("ohq", {"bn_steps": 2})):
        calls.clear()
        result = run_strategy(problem, name, params, seed=0)
        assert result.evaluations == len(calls), name
        assert result.seconds > 0
    assert problem.evaluate is not inner  # the caller's problem is not rewired


def test_final_scorer_without_finetune_is_the_post_training_accuracy() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    policy = Policy.uniform(problem.specs, 4, 4)
    test = torch.utils.data.TensorDataset(*map(torch.cat, zip(*problem.train_data[:2],
                                                              strict=True)))
    expected = evaluate(apply_policy_(copy.deepcopy(problem.model), policy, problem.calibration,
                                      QuantConfig()), test)
    assert final_scorer(problem, test)(policy) == expected


@pytest.mark.parametrize(("make", "message"), [
    (lambda: EvalConfig(samples=0), "samples must be an integer >= 1 or None"),
    (lambda: EvalConfig(finetune_steps=-1), "finetune_steps must be an integer >= 0"),
    (lambda: EvalConfig(correction_images=0), "correction_images must be an integer >= 1"),
    (lambda: EvalConfig(samples=1.5), "samples must be an integer"),
    (lambda: FinalConfig(epochs=-1), "epochs must be an integer >= 0"),
    (lambda: FinalConfig(steps=0), "steps must be an integer >= 1 or None"),
    (lambda: FinalConfig(distill=1.5), r"distill must be a weight in \[0, 1\]"),
    (lambda: RescoreConfig(top=-1), "rescore needs top >= 0"),
])
def test_configs_refuse_bad_values(make, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_configs_are_frozen_and_default_to_the_cheap_path() -> None:
    assert (EvalConfig().samples, EvalConfig().finetune_steps) == (1000, 0)
    assert not FinalConfig().trains and FinalConfig(epochs=1).trains
    assert not RescoreConfig().enabled
    with pytest.raises(AttributeError):
        EvalConfig().samples = 3  # type: ignore[misc]


def test_the_flat_keywords_of_0_1_0_still_work_with_a_warning(monkeypatch) -> None:
    from haq.search import api

    seen = {}

    def fake_build(*args, **kwargs):
        seen.update(kwargs)
        raise ConfigError("stop here")

    monkeypatch.setattr(api, "build_problem", fake_build)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ConfigError):
        warnings.simplefilter("always")
        haq.search(None, synthetic(), "bops", {"bops": "0.5"}, "random",
                   eval_samples=64, finetune_steps=3)
    assert seen["evaluation"] == EvalConfig(64, 3)
    assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [
        "haq.search(eval_samples=...) is deprecated; pass evaluation=EvalConfig(samples=...)",
        "haq.search(finetune_steps=...) is deprecated; pass evaluation="
        "EvalConfig(finetune_steps=...)"]


def test_search_refuses_unknown_strategy_parameters_before_writing(trained, tmp_path) -> None:
    from haq.errors import StrategyError

    model, data = trained
    with pytest.raises(StrategyError, match="does not take these parameters"):
        haq.search(model, data, "bops", {"bops": "0.5"}, "random", run_dir=tmp_path / "r",
                   quant_config=FAST, evaluation=EvalConfig(16), no_such_setting=1)
    assert not (tmp_path / "r").exists()
