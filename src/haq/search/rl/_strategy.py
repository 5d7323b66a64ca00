"""The ``haq`` strategy: DDPG with hardware feedback (Wang et al., CVPR 2019), top to bottom.

Per episode (``ask`` then ``tell``):

1. walk the steps; in warm-up draw each action uniformly in [0, 1], afterwards from a normal
   around mu(s) truncated to [0, 1] with sigma = 0.5 * 0.99 ** (episode - warmup);
2. (the episode loop) project the bits onto the budgets, evaluate, compute the reward
   lambda * (accuracy - float accuracy);
3. rebuild the episode's states from the *executed* (projected) bits, store every transition
   with the episode's reward, update the moving-average baseline, and after warm-up run one
   DDPG update per stored transition.

All randomness comes from one numpy Generator and one torch Generator seeded from ``seed``; both
are checkpointed, so a resumed run continues the same random stream.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import ndtr, ndtri

from haq.errors import StrategyError
from haq.search._base import Progress, SearchProblem, SearchResult, Strategy, register_strategy
from haq.search._episodic import EpisodeLoop, Proposal
from haq.search.rl._config import HaqConfig
from haq.search.rl._ddpg import DDPG
from haq.search.rl._env import BitEnv
from haq.search.rl._replay import ReplayBuffer
from haq.threads import single_thread


class HaqAgent:
    """The DDPG proposer of one search: env, agent, replay, baseline and RNGs."""

    def __init__(self, env: BitEnv, config: HaqConfig, seed: int,
                 start: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        self.env, self.config = env, config
        # makes the (w_bits, a_bits) that episode 0 executes instead of a draw (a warm start);
        # called only when episode 0 runs, so a resumed run does not pay for it again
        self.start = start
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.agent = DDPG(env.state_dim, config, self.generator)
        capacity = config.replay_per_layer * len(env.specs)
        self.replay = ReplayBuffer(capacity, env.state_dim)
        self.baseline: float | None = None

    # -- step 1: act ----------------------------------------------------------------------------
    def _explore(self, mu: float, sigma: float) -> float:
        """A draw from N(mu, sigma) truncated to [0, 1], by inverting the normal CDF.

        mu lies in [0, 1], so the standardised interval always contains 0 and the CDF values
        stay well inside (0, 1); this is 100x faster than scipy.stats.truncnorm per draw.
        """
        if sigma <= 1e-9:  # exploration has decayed away
            return mu
        lo, hi = ndtr((0.0 - mu) / sigma), ndtr((1.0 - mu) / sigma)
        u = lo + (hi - lo) * self.rng.uniform()
        return float(np.clip(mu + sigma * ndtri(u), 0.0, 1.0))

    def ask(self, episode: int) -> Proposal:
        """Walk the steps and propose bits (before projection) with the raw actions."""
        with single_thread():
            return self._ask(episode)

    def _ask(self, episode: int) -> Proposal:
        if episode == 0 and self.start is not None:
            return self._start()
        sigma = self.config.sigma_at(episode)
        warmup = episode < self.config.warmup
        actions: list[float] = []
        bits: list[int] = []
        for t, step in enumerate(self.env.steps):
            if warmup:
                action = float(self.rng.uniform())
            else:
                state = self.env.state(t, bits, actions[-1] if actions else 1.0)
                action = self._explore(self.agent.act(torch.from_numpy(state)), sigma)
            actions.append(action)
            bits.append(self.env.action_to_bits(step, action))
        w, a = self.env.assemble(bits)
        phase = "warmup" if warmup else "explore"
        return Proposal(w, a, raw=actions, info={"sigma": sigma, "phase": phase})

    def _start(self) -> Proposal:
        """The warm-start policy as a proposal; its actions are the centres of its bins."""
        w, a = self.start()  # type: ignore[misc]
        bits = self.env.step_bits(w, a)
        actions = [self.env.bits_to_action(step, b) for step, b in zip(self.env.steps, bits,
                                                                       strict=True)]
        w, a = self.env.assemble(bits)
        return Proposal(w, a, raw=actions, info={"sigma": 0.0, "phase": "warm-start"})

    # -- step 3: learn --------------------------------------------------------------------------
    def tell(self, episode: int, proposal: Proposal, executed: tuple[np.ndarray, np.ndarray],
             record: dict[str, Any]) -> None:
        """Store the executed episode with its reward and, after warm-up, learn from replay."""
        with single_thread():
            self._tell(episode, proposal, executed, record)

    def _tell(self, episode: int, proposal: Proposal, executed: tuple[np.ndarray, np.ndarray],
              record: dict[str, Any]) -> None:
        if record["state"] != "complete":
            return  # a failed episode teaches nothing; its RNG draws are still consumed
        reward = float(record["reward"])
        bits = self.env.step_bits(*executed)
        proposed = self.env.step_bits(proposal.w_bits, proposal.a_bits)
        actions = [raw if b == p else self.env.bits_to_action(step, b)
                   for raw, b, p, step in zip(proposal.raw or [], bits, proposed,
                                              self.env.steps, strict=True)]
        states = self.env.states(actions, bits)
        last = len(actions) - 1
        for t, action in enumerate(actions):
            nxt = states[t + 1] if t < last else np.zeros_like(states[t])
            self.replay.add(states[t], action, reward, nxt, t == last)
        decay = self.config.baseline_decay
        self.baseline = reward if self.baseline is None else (
            decay * self.baseline + (1.0 - decay) * reward)
        if episode < self.config.warmup or not len(self.replay):
            return
        losses = [self.agent.update(self.replay.sample(self.config.batch_size, self.rng),
                                    self.baseline)
                  for _ in range(len(actions) * self.config.updates_per_step)]
        record["agent"] = {key: _finite(np.mean([loss[key] for loss in losses]))
                           for key in ("critic_loss", "actor_loss")}
        record["agent"]["baseline"] = self.baseline

    # -- checkpoint -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically: nets, optimizers, replay, baseline, RNGs."""
        return {"agent": self.agent.state_dict(), "replay": self.replay.state_dict(),
                "baseline": self.baseline, "rng": json.dumps(self.rng.bit_generator.state),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.replay.load_state_dict(state["replay"])
        self.baseline = state["baseline"]
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.generator.set_state(state["generator"])


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@register_strategy("haq")
class HaqStrategy(Strategy):
    takes = frozenset({"episodes", "preset"})

    """HAQ's DDPG search under hardware budgets.

    Args:
        preset: ``"default"`` (improved) or ``"paper"`` (HAQ as published); see
            ``haq.search.rl.PRESETS``.
        config: a full ``HaqConfig``; overrides ``preset``.
        **overrides: single ``HaqConfig`` fields, e.g. ``episodes=100, warmup=10``.

    Example:
        >>> from haq.search import get_strategy
        >>> get_strategy("haq", preset="paper", episodes=50).config.episodes
        50
    """

    def __init__(self, preset: str = "default", config: HaqConfig | None = None,
                 **overrides: Any) -> None:
        self.preset = preset
        self.config = HaqConfig.from_preset(preset, **overrides) if config is None else config

    def run(self, problem: SearchProblem, *, seed: int = 0, run_dir: Path | None = None,
            resume: bool = False, progress: Progress | None = None) -> SearchResult:
        if problem.evaluate is None:
            raise StrategyError("strategy 'haq' needs problem.evaluate to score policies; "
                                "use haq.search.api.search, which builds it from your data")
        cfg = self.config
        loop = EpisodeLoop(problem, self.name, {"preset": self.preset, **cfg.to_dict()},
                           reward_scale=cfg.reward_scale, checkpoint_every=cfg.checkpoint_every,
                           projection=cfg.projection)
        env = BitEnv(problem.specs, loop.projector, cfg.budget_features)
        if not env.steps:
            raise StrategyError("every layer is pinned, so there is nothing to search; unpin "
                                "some layers or widen the BitSpace ranges")
        start = (lambda: _ilp_start(problem, seed)) if cfg.warm_start == "ohq" else None
        return loop.run(HaqAgent(env, cfg, seed, start), cfg.episodes, seed=seed,
                        run_dir=run_dir, resume=resume, progress=progress)


def _ilp_start(problem: SearchProblem, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """OHQ's policy on this problem (deterministic for a seed, so a resumed run recomputes the
    same one): sensitivity on synthetic probes, then the exact ILP under the budgets."""
    from haq.search.ohq import OhqStrategy

    with single_thread():
        best = OhqStrategy().run(problem, seed=seed).best
    return best.arrays(problem.specs)


@register_strategy("haq-ilp")
class HaqIlpStrategy(HaqStrategy):
    """The HAQ agent warm-started from OHQ's ILP solution (``warm_start="ohq"``): its first
    episode executes the ILP policy, then the agent searches as ``haq`` does. Same parameters
    as ``haq``."""

    def __init__(self, preset: str = "default", config: HaqConfig | None = None,
                 **overrides: Any) -> None:
        overrides.setdefault("warm_start", "ohq")
        super().__init__(preset, config, **overrides)
