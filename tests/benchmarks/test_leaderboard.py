"""The leaderboard's grid and summary: which rows run, and how a cell is summarised."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def leaderboard():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("leaderboard")


def _args(**over: object) -> argparse.Namespace:
    base = {"regimes": "A,B", "models": "m1", "budgets": "size-w4,lat-w4a4,energy-w4a4",
            "strategies": "uniform,ohq,haq@100", "seeds": 3, "only": None}
    return argparse.Namespace(**{**base, **over})


def test_deterministic_strategies_run_once_and_stochastic_ones_per_seed(leaderboard) -> None:
    rows = leaderboard.grid(_args(regimes="A"))
    per_cell = {}
    for _regime, _model, budget, strategy, seed in rows:
        per_cell.setdefault((budget, strategy), []).append(seed)
    assert per_cell[("size-w4", "uniform")] == [0]
    assert per_cell[("size-w4", "ohq")] == [0]
    assert per_cell[("size-w4", "haq@100")] == [0, 1, 2]
    assert len(rows) == 3 * (1 + 1 + 3)


def test_regime_b_runs_only_at_the_latency_budgets(leaderboard) -> None:
    rows = leaderboard.grid(_args(regimes="B"))
    assert {budget for _, _, budget, _, _ in rows} == {"lat-w4a4"}


def test_only_filters_by_key_text(leaderboard) -> None:
    rows = leaderboard.grid(_args(only="A/m1/size-w4/ohq"))
    assert rows == [("A", "m1", "size-w4", "ohq", 0)]


def _record(strategy: str, acc: float, seed: int = 0, search_s: float = 1.0) -> dict:
    return {"regime": "A", "model": "m1", "budget": "lat-w4a4", "strategy": strategy,
            "seed": seed, "test_accuracy": acc, "float_test": 92.0, "search_seconds": search_s,
            "evaluations": 10}


def test_summary_gives_mean_range_and_gap_closed_against_uniform(leaderboard) -> None:
    records = [_record("uniform", 88.0), _record("haq@100", 90.0, 0, 2.0),
               _record("haq@100", 91.0, 1, 4.0), _record("haq@100", 89.0, 2, 6.0)]
    rows = {r["strategy"]: r for r in leaderboard.summary(records)}
    haq = rows["haq@100"]
    assert (haq["mean"], haq["low"], haq["high"], haq["n"]) == (90.0, 89.0, 91.0, 3)
    assert haq["search_s"] == pytest.approx(4.0)
    assert haq["gap_closed"] == pytest.approx(0.5)  # (90 - 88) / (92 - 88)
    assert rows["uniform"]["gap_closed"] == 0.0


def test_no_gap_closed_when_uniform_is_within_half_a_point_of_float(leaderboard) -> None:
    records = [_record("uniform", 91.8), _record("ohq", 92.1)]
    assert all(r["gap_closed"] is None for r in leaderboard.summary(records))


def test_markdown_has_one_line_per_cell(leaderboard) -> None:
    records = [_record("uniform", 88.0), _record("ohq", 90.0)]
    text = leaderboard.markdown(leaderboard.summary(records))
    assert text.count("\n| A | m1 | lat-w4a4 |") == 2


def test_pivot_puts_budgets_in_rows_and_strategies_in_columns(leaderboard) -> None:
    records = [_record("uniform", 88.0), _record("ohq", 91.0, search_s=3.0),
               _record("haq@100", 90.0, 0), _record("haq@100", 91.0, 1)]
    text = leaderboard.pivot(leaderboard.summary(records))
    lines = text.splitlines()
    assert lines[0] == "**m1, regime A** (float 92.00 %)"
    assert lines[2] == "| budget | uniform | ohq | haq@100 |"
    assert lines[4] == "| lat-w4a4 | 88.00, 1 s | 91.00, 3 s | 90.50 (90.00–91.00), 1 s |"


def test_estimate_uses_the_rows_already_measured(leaderboard) -> None:
    rows = [("A", "mobilenetv1-fmnist", "lat-w4a4", "ohq", 0),
            ("A", "mobilenetv1-fmnist", "size-w3", "ohq", 0)]
    measured = [{"regime": "A", "model": "mobilenetv1-fmnist", "strategy": "ohq",
                 "wall_seconds": s} for s in (30.0, 42.0)]
    assert leaderboard.estimate(rows, 500, 0, measured) == pytest.approx(2 * 36.0 / 3600)
    assert leaderboard.estimate(rows, 500, 0) != leaderboard.estimate(rows, 500, 0, measured)
