"""Every registered strategy honours a candidate set: weights in {2, 4, 8}, activations in {4, 8}.

Each strategy runs on the tiny synthetic problem; every policy it journals (proposed and
executed, or HGQ's per-epoch widths) and its best policy must use only candidate widths, and the
best policy must meet every budget.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from haq.policy import BitSpace
from haq.runs import Journal, RunLayout
from haq.search import available_strategies, get_strategy
from haq.search.rl import BitEnv, Step
from haq.testing import FAST_PARAMS, tiny_problem

W_SET, A_SET = (2, 4, 8), (4, 8)
SPACE = BitSpace(w_bits=W_SET, a_bits=A_SET)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _journalled_bits(record: dict) -> list[tuple[list, list]]:
    """Every (w_bits, a_bits) pair a journal record holds."""
    pairs = [(record[k]["w_bits"], record[k]["a_bits"]) for k in ("proposed", "policy")
             if isinstance(record.get(k), dict)]
    if "w_bits" in record:
        pairs.append((record["w_bits"], record["a_bits"]))
    return pairs


@pytest.mark.parametrize("name", available_strategies())
def test_every_policy_stays_in_the_candidate_set(name: str, tmp_path: Path) -> None:
    problem = tiny_problem(space=SPACE)
    result = get_strategy(name, **FAST_PARAMS.get(name, {})).run(problem, seed=0,
                                                                  run_dir=tmp_path)
    assert SPACE.contains(result.best, problem.specs), result.best.summary()
    costs = problem.table.evaluate(result.best)
    assert all(b.is_met(costs[b.metric], problem.table) for b in problem.budgets)
    records = Journal(RunLayout(tmp_path).journal).read()
    pairs = [pair for r in records for pair in _journalled_bits(r)]
    assert pairs, "the strategy journalled no policy"
    for w, a in pairs:
        assert set(w) <= set(W_SET) and set(a) <= set(A_SET), (w, a)


def test_uniform_tries_only_the_uniform_policies_of_the_set(tmp_path: Path) -> None:
    problem = tiny_problem(space=SPACE, bops=1.0, size=None)  # no budget binds
    result = get_strategy("uniform", top_k=8).run(problem, seed=0, run_dir=tmp_path)
    tried = [tuple(r["uniform"]) for r in Journal(RunLayout(tmp_path).journal).read()]
    assert tried == [(8, 8)]  # W8A8 fits and dominates every other pair of the set
    problem = tiny_problem(space=SPACE, bops=0.3, size=None)
    result = get_strategy("uniform", top_k=8).run(problem, seed=0, run_dir=tmp_path / "b")
    tried = {tuple(r["uniform"]) for r in Journal(RunLayout(tmp_path / "b").journal).read()}
    # BOPs of WwAa are w*a/64 of W8A8: the maximal pairs under 0.3 are W4A4 and W2A8
    assert tried == {(4, 4), (2, 8)}
    assert SPACE.contains(result.best, problem.specs)


def test_haq_action_bins_map_onto_the_sorted_candidates() -> None:
    step = Step(0, "w", 2, 8, (2, 4, 8))
    bits = [BitEnv.action_to_bits(step, a) for a in np.linspace(0.0, 1.0, 301)]
    assert sorted(set(bits)) == [2, 4, 8]
    assert bits == sorted(bits)  # monotone in the action
    counts = [bits.count(b) for b in (2, 4, 8)]
    assert max(counts) - min(counts) <= 2  # equal-width bins, one per candidate
    for b in (2, 4, 8):
        assert BitEnv.action_to_bits(step, BitEnv.bits_to_action(step, b)) == b
    assert Step(0, "w", 2, 8).choices == tuple(range(2, 9))  # a range is every integer in it


def test_a_single_activation_candidate_is_no_decision_for_the_agent() -> None:
    from haq.cost import Projector

    problem = tiny_problem(space=BitSpace(w_bits=W_SET, a_bits=(8,)), evaluate=False)
    projector = Projector(problem.table, problem.budgets, problem.space, problem.specs)
    env = BitEnv(problem.specs, projector, budget_features=True)
    assert [s.operand for s in env.steps] == ["w"] * len(problem.specs)
    assert all(s.choices == W_SET for s in env.steps)


@pytest.mark.parametrize("name", ["random", "hgq"])
def test_resuming_with_another_candidate_set_is_refused(name: str, tmp_path: Path) -> None:
    from haq.errors import RunError

    params = FAST_PARAMS[name]
    get_strategy(name, **params).run(tiny_problem(space=SPACE), seed=0, run_dir=tmp_path)
    other = tiny_problem(space=BitSpace(w_bits=(4, 8), a_bits=A_SET))
    with pytest.raises(RunError, match="space"):
        get_strategy(name, **params).run(other, seed=0, run_dir=tmp_path, resume=True)
    again = get_strategy(name, **params).run(tiny_problem(space=SPACE), seed=0,
                                             run_dir=tmp_path, resume=True)
    assert SPACE.contains(again.best, other.specs)
