"""`haq.search.compare`: every strategy and uniform point scored alike, table and plot written."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from haq.errors import ConfigError
from haq.search.compare import compare, uniform_policy, write_comparison
from haq.testing import tiny_problem


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
