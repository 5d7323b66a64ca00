"""`haq.search.compare`: every strategy and uniform point scored alike, table and plot written."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch.utils.data

from haq.errors import ConfigError
from haq.search.compare import compare, uniform_policy, write_comparison
from haq.testing import tiny_problem

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.slow
def test_compare_scores_every_strategy_and_uniform_point(tmp_path: Path) -> None:
    problem = tiny_problem(seed=0)
    scored: list[str] = []

    def final_score(policy) -> float:
        scored.append(policy.summary())
        return problem.evaluate(policy).accuracy

    result = compare(problem, ["ohq", "hawq", "random", "no-such-strategy"],
                     final_score=final_score, uniform_bits=(2, 4, 8),
                     params={"ohq": {"bn_steps": 5}, "hawq": {"samples": 2},
                             "random": {"episodes": 2}})
    names = [e.name for e in result.entries]
    assert names == ["ohq", "hawq", "random", "no-such-strategy", "W2A2", "W4A4", "W8A8"]
    by_name = {e.name: e for e in result.entries}
    assert "StrategyError" in by_name["no-such-strategy"].error
    for name in ("ohq", "hawq", "random"):
        entry = by_name[name]
        assert entry.feasible and entry.error is None and entry.accuracy is not None
        assert entry.costs["bops"] <= result.budget_limits["bops"] * (1 + 1e-9)
    assert by_name["random"].evaluations == 2
    assert not by_name["W8A8"].feasible and by_name["W2A2"].feasible
    assert len(scored) == 3 + 3  # three strategies + three uniform points, same scorer
    paths = write_comparison(result, tmp_path, title="tiny")
    rows = list(csv.reader(io.StringIO(paths["csv"].read_text())))
    assert rows[0][:3] == ["name", "kind", "accuracy (%)"] and len(rows) == 8
    assert "| ohq | strategy |" in paths["markdown"].read_text()
    assert paths["plot"].stat().st_size > 10_000


def test_uniform_policy_respects_space_and_pins() -> None:
    from haq.policy import BitSpace, LayerBits

    problem = tiny_problem(seed=0, evaluate=False)
    first = problem.specs[0].name
    problem.space = BitSpace((3, 6), (4, 8), pinned={first: LayerBits(8, 8)})
    policy = uniform_policy(problem, 2)
    assert policy[first] == LayerBits(8, 8)
    assert all(policy[s.name] == LayerBits(3, 4) for s in problem.specs[1:])


def test_compare_needs_a_budget() -> None:
    problem = tiny_problem(seed=0, evaluate=False)
    problem.budgets = []
    with pytest.raises(ConfigError, match="budget"):
        compare(problem, ["ohq"])


def test_build_problem_and_final_scorer_on_synthetic_data(tmp_path: Path) -> None:
    from haq.cost import Budget
    from haq.data import synthetic
    from haq.search import EvalConfig, build_problem, final_scorer
    from haq.testing._problems import INPUT_SHAPE, NUM_CLASSES, _batches, tiny_model, train_tiny

    splits = synthetic(num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE, noise=1.5, seed=0)
    x, y = splits.train.tensors
    model = train_tiny(tiny_model(0), _batches(x, y, 64))
    problem = build_problem(model, splits, "bops", [Budget("bops", 0.4, relative=True)],
                            evaluation=EvalConfig(64))
    assert problem.float_accuracy > 50
    assert isinstance(problem.calibration[0], list | tuple)  # (x, y) loader batches
    result = compare(problem, ["ohq", "hgq"], final_score=final_scorer(problem, splits.test),
                     params={"ohq": {"bn_steps": 3}, "hgq": {"epochs": 1}},
                     uniform_bits=(4,), run_root=tmp_path / "runs")
    assert [e.error for e in result.strategies()] == [None, None]
    assert all(e.feasible and e.accuracy > 25 for e in result.strategies())
    assert (tmp_path / "runs" / "ohq" / "journal.jsonl").exists()
    for entry in result.strategies():  # each run holds what `haq search` writes
        summary = json.loads((tmp_path / "runs" / entry.name / "result.json").read_text())
        assert summary["test_accuracy"] == entry.accuracy
        assert summary["evaluations"] == entry.evaluations
        assert summary["float_accuracy"] == problem.float_accuracy


def test_final_scorer_caps_the_fine_tune_at_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    from haq.metrics import Metric
    from haq.policy import Policy
    from haq.search import FinalConfig, _final, final_scorer

    problem = tiny_problem(seed=0, evaluate=False)
    problem.metric = Metric(lambda model, data: 42.0, "constant")  # scores with the problem's
    test = torch.utils.data.TensorDataset(torch.zeros(2, 1), torch.zeros(2))
    seen = []
    monkeypatch.setattr(_final, "finetune",
                        lambda model, data, cfg, teacher: seen.append((cfg, data, teacher)))
    score = final_scorer(problem, test, FinalConfig(epochs=2, steps=7))
    assert score(Policy.uniform(problem.specs, 8, 8)) == 42.0
    # on the problem's training data, distilled from its float model unless told otherwise
    assert [(c.epochs, c.steps, c.distill, d, t) for c, d, t in seen] == [
        (2, 7, 1.0, problem.train_data, problem.model)]
    final_scorer(problem, test, FinalConfig(1, distill=0.0))(Policy.uniform(problem.specs, 8, 8))
    assert seen[-1][0].distill == 0.0
