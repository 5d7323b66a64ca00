"""The HAQ agent warm-started from OHQ's ILP solution (``haq-ilp``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from haq.errors import ConfigError
from haq.search import get_strategy
from haq.search.ohq import OhqStrategy
from haq.search.rl import HaqConfig
from haq.testing import tiny_problem

FAST = {"episodes": 5, "warmup": 2, "hidden": 16, "batch_size": 8}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def problem():
    return tiny_problem(seed=0)


def test_first_episode_executes_the_ilp_policy_and_the_best_is_at_least_as_good(problem) -> None:
    ilp = OhqStrategy().run(problem, seed=3).best.arrays(problem.specs)
    result = get_strategy("haq-ilp", **FAST).run(problem, seed=3)
    first = result.history[0]
    assert first["phase"] == "warm-start"
    assert np.array_equal(first["policy"]["w_bits"], ilp[0])
    assert np.array_equal(first["policy"]["a_bits"], ilp[1])
    assert result.best_accuracy >= first["accuracy"]
    assert all(h["phase"] != "warm-start" for h in result.history[1:])


def test_plain_haq_draws_its_first_episode(problem) -> None:
    result = get_strategy("haq", **FAST).run(problem, seed=3)
    assert result.history[0]["phase"] == "warmup"


def test_resumed_run_ends_identical_without_recomputing_the_ilp(problem, tmp_path: Path,
                                                               monkeypatch) -> None:
    full = get_strategy("haq-ilp", **FAST).run(problem, seed=1, run_dir=tmp_path / "a")
    part = get_strategy("haq-ilp", **{**FAST, "episodes": 2})
    part.run(problem, seed=1, run_dir=tmp_path / "b")
    calls = {"n": 0}
    original = OhqStrategy.run

    def counted(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(OhqStrategy, "run", counted)
    resumed = get_strategy("haq-ilp", **FAST).run(problem, seed=1, run_dir=tmp_path / "b",
                                                   resume=True)
    assert calls["n"] == 0
    assert resumed.best.to_dict()["layers"] == full.best.to_dict()["layers"]
    assert [h["accuracy"] for h in resumed.history] == [h["accuracy"] for h in full.history]


def test_unknown_warm_start_is_refused() -> None:
    with pytest.raises(ConfigError, match="warm_start"):
        HaqConfig(warm_start="magic")
