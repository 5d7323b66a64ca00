"""HAQ's decision process: action <-> bits, state features, executed actions in the replay."""

from __future__ import annotations

import numpy as np
import pytest
from haq_synthetic import build

from haq.cost import Projector
from haq.policy import BitSpace, LayerBits
from haq.search.rl import BitEnv, HaqAgent, HaqConfig, Step


@pytest.fixture(scope="module")
def syn():
    return build(layers=5, budget=0.4, seed=3)


def _env(syn, space=None, budget_features=True) -> BitEnv:
    proj = Projector(syn.table, [syn.budget], space or syn.space, syn.specs)
    return BitEnv(syn.specs, proj, budget_features)


def test_actions_map_to_equal_width_bins() -> None:
    step = Step(0, "w", 2, 8)
    grid = np.linspace(0, 1, 7001)
    bits = np.array([BitEnv.action_to_bits(step, a) for a in grid])
    assert bits.min() == 2 and bits.max() == 8
    counts = np.bincount(bits)[2:]
    assert counts.max() - counts.min() <= 2  # 7 bins of (almost exactly) 1000 points
    paper = np.round(grid * 7 + 2 - 0.5).clip(2, 8)  # the paper's formula, off bin edges
    off_edges = np.abs(grid * 7 - np.round(grid * 7)) > 1e-9
    assert (paper[off_edges] == bits[off_edges]).all()
    for b in range(2, 9):  # a stored bin centre executes the same bits
        assert BitEnv.action_to_bits(step, BitEnv.bits_to_action(step, b)) == b


def test_steps_skip_pinned_operands_and_weights_only_mode(syn) -> None:
    env = _env(syn)
    assert [(s.layer, s.operand) for s in env.steps[:4]] == [(0, "w"), (0, "a"), (1, "w"),
                                                               (1, "a")]
    pinned = syn.space.pin_ends(syn.specs)
    assert len(_env(syn, pinned).steps) == 2 * (len(syn.specs) - 2)
    size_mode = BitSpace((2, 8), (2, 8), weights_only=True, fixed_a_bits=8)
    env = _env(syn, size_mode)
    assert [s.operand for s in env.steps] == ["w"] * len(syn.specs)
    w, a = env.assemble([3] * len(syn.specs))
    assert (w == 3).all() and (a == 8).all()


def test_states_are_in_unit_range_and_flags_are_consistent(syn) -> None:
    env = _env(syn)
    rng = np.random.default_rng(0)
    actions = rng.uniform(size=len(env.steps))
    bits = [env.action_to_bits(s, a) for s, a in zip(env.steps, actions, strict=True)]
    states = env.states(list(actions), bits)
    assert states.shape == (len(env.steps), env.state_dim) and env.state_dim == 12
    assert (states >= 0).all() and (states <= 1).all()
    flags = states[:, 8]
    assert flags.tolist() == [1.0 if s.operand == "w" else 0.0 for s in env.steps]
    assert states[0, 9] == 1.0 and np.allclose(states[1:, 9], actions[:-1])
    used = states[:, 10]
    assert (np.diff(used) >= -1e-12).all()  # deciding more bits never frees budget room
    # a static column (layer index) spans exactly [0, 1]
    assert states[:, 0].min() == 0.0 and states[:, 0].max() == 1.0


def test_first_state_never_remembers_the_last_episode(syn) -> None:
    env = _env(syn, budget_features=False)
    agent = HaqAgent(env, HaqConfig(hidden=16, warmup=0), seed=0)
    first = env.state(0, [], 1.0)
    for episode in range(3):
        proposal = agent.ask(episode)
        assert np.array_equal(env.states(proposal.raw, env.step_bits(proposal.w_bits,
                                                                     proposal.a_bits))[0], first)


def test_replay_stores_the_executed_not_the_proposed_action(syn) -> None:
    env = _env(syn, budget_features=False)
    agent = HaqAgent(env, HaqConfig(hidden=16, warmup=5), seed=1)
    proposal = agent.ask(0)
    w, a = env.projector.project_arrays(proposal.w_bits, proposal.a_bits)
    assert (w < proposal.w_bits).any() or (a < proposal.a_bits).any()  # projection acted
    record = {"state": "complete", "reward": -1.0}
    agent.tell(0, proposal, (w, a), record)
    executed = env.step_bits(w, a)
    proposed = env.step_bits(proposal.w_bits, proposal.a_bits)
    stored = agent.replay.actions[: len(env.steps), 0]
    for t, step in enumerate(env.steps):
        want = proposal.raw[t] if executed[t] == proposed[t] else env.bits_to_action(
            step, executed[t])
        assert stored[t] == pytest.approx(want, abs=1e-7)
        assert env.action_to_bits(step, float(stored[t])) == executed[t]
    assert agent.replay.dones[len(env.steps) - 1, 0] == 1.0 and agent.replay.dones[0, 0] == 0
    assert agent.baseline == -1.0


def test_pins_are_respected_by_every_proposal(syn) -> None:
    space = syn.space.pin_ends(syn.specs, bits=6)
    env = _env(syn, space, budget_features=False)
    agent = HaqAgent(env, HaqConfig(hidden=16, warmup=2), seed=2)
    for episode in range(4):
        p = agent.ask(episode)
        assert (p.w_bits[0], p.a_bits[0]) == (6, 6) and (p.w_bits[-1], p.a_bits[-1]) == (6, 6)
    assert space.pinned[syn.specs[0].name] == LayerBits(6, 6)


def test_presets_and_overrides(syn) -> None:
    from haq.errors import ConfigError
    from haq.search._problem import resolve_space as _space

    paper, default = HaqConfig.from_preset("paper"), HaqConfig.from_preset("default")
    assert (paper.episodes, paper.warmup, paper.hidden) == (600, 20, 300)
    assert (paper.lr_actor, paper.lr_critic, paper.tau, paper.gamma) == (1e-4, 1e-3, 0.01, 1.0)
    assert (paper.batch_size, paper.sigma, paper.sigma_decay, paper.reward_scale) == (
        64, 0.5, 0.99, 0.1)
    assert default.episodes == 300 and default.sigma_at(20) == 0.5
    assert default.sigma_at(120) == pytest.approx(0.5 * 0.99**100) and default.sigma_at(3) == 1
    assert HaqConfig.from_preset("paper", episodes=7).episodes == 7
    with pytest.raises(ConfigError, match="unknown HAQ setting"):
        HaqConfig.from_preset("default", hiden=3)
    with pytest.raises(ConfigError, match="tau must lie in"):
        HaqConfig(tau=2.0)
    assert set(_space(None, "paper", None, syn.specs).pinned) == {syn.specs[0].name,
                                                                  syn.specs[-1].name}
    assert not _space(None, "default", None, syn.specs).pinned
    assert _space(None, "default", True, syn.specs).pinned


@pytest.mark.parametrize(("mu", "sigma"), [(0.3, 0.5), (0.95, 0.05), (0.0, 0.2)])
def test_exploration_is_the_truncated_normal(syn, mu, sigma) -> None:
    from scipy.stats import kstest, truncnorm

    agent = HaqAgent(_env(syn, budget_features=False), HaqConfig(hidden=8), seed=0)
    draws = np.array([agent._explore(mu, sigma) for _ in range(3000)])
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    reference = truncnorm((0 - mu) / sigma, (1 - mu) / sigma, loc=mu, scale=sigma)
    assert kstest(draws, reference.cdf).pvalue > 1e-3
    assert agent._explore(0.4, 0.0) == 0.4  # decayed away: the actor's action itself
