"""Every hyperparameter of the HAQ search in one dataclass, and the two presets.

``paper`` is HAQ as published and as its official code runs it (reference/haq.md section 2),
with the official code's bugs fixed (docs/deviations.md). ``default`` is the improved setting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from haq.cost import PROJECTION_RULES
from haq.errors import ConfigError

WARM_STARTS = ("none", "ohq")


@dataclass(frozen=True)
class HaqConfig:
    """Hyperparameters of the DDPG search (defaults = the ``default`` preset)."""

    episodes: int = 300
    """Episodes to run; each proposes, projects and evaluates one policy (paper: 600)."""
    warmup: int = 20
    """First episodes use uniform-random actions and do not update the agent (paper: 20)."""
    hidden: int = 128
    """Width of both hidden layers of actor and critic (paper: 300-300; 128 learned as well on
    the identity problem at 2.4x less agent time)."""
    lr_actor: float = 1e-4
    """Adam learning rate of the actor (paper: 1e-4)."""
    lr_critic: float = 1e-3
    """Adam learning rate of the critic (paper: 1e-3)."""
    tau: float = 0.01
    """Soft target-network update rate after every gradient step (paper: 0.01)."""
    gamma: float = 1.0
    """Discount; 1 because every step of an episode shares the final reward (paper: 1)."""
    batch_size: int = 64
    """Minibatch size of each update (paper: 64)."""
    replay_per_layer: int = 128
    """Replay capacity in transitions per layer (paper: 128 x #layers)."""
    updates_per_step: int = 1
    """Gradient updates per stored transition at the end of each episode (paper: 1)."""
    sigma: float = 0.5
    """Initial std of the truncated-normal exploration noise on the [0, 1] action (paper: 0.5)."""
    sigma_decay: float = 0.99
    """Per-episode decay: sigma = sigma * sigma_decay ** (episode - warmup) (paper: 0.99)."""
    reward_scale: float = 0.1
    """lambda in reward = lambda * (accuracy_quant - accuracy_float), in % top-1 (paper: 0.1)."""
    baseline_decay: float = 0.5
    """Reward baseline b <- decay * b + (1 - decay) * reward per episode; b is subtracted from
    rewards in the critic target (paper: a moving average; code: 0.5 per minibatch)."""
    budget_features: bool = False
    """Add AMC-style state features: share of the budgets' room used so far, the layer's share
    of the cost range (paper: none; off by default, no gain measured on the identity problem)."""
    projection: str = "widest"
    """Budget projection rule: ``"widest"`` lowers the operand with the most bits first,
    spreading the cut as HAQ's round-robin decrease does; ``"saving"`` lowers the operand that
    saves the most first (this project's rule before 2026-12, which starves expensive layers at
    tight budgets; docs/deviations.md)."""
    checkpoint_every: int = 1
    """Checkpoint agent, replay buffer and RNGs every k episodes (the journal is per episode)."""
    warm_start: str = "none"
    """``"ohq"``: the first episode executes the OHQ solution (MQE sensitivity + exact ILP on the
    same cost table and budgets) instead of a random draw, so the replay holds a strong
    feasible policy from the start and the search's best is never below it on held-out data
    (paper: ``"none"``)."""

    def __post_init__(self) -> None:
        positive = ("episodes", "hidden", "batch_size", "replay_per_layer", "updates_per_step",
                    "checkpoint_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0 episodes, got {self.warmup}")
        for name in ("tau", "gamma", "sigma_decay", "baseline_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("lr_actor", "lr_critic", "sigma", "reward_scale"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.warm_start not in WARM_STARTS:
            raise ConfigError(f"warm_start must be one of {WARM_STARTS}, got "
                              f"{self.warm_start!r}")
        if self.projection not in PROJECTION_RULES:
            raise ConfigError(f"projection must be one of {PROJECTION_RULES}, got "
                              f"{self.projection!r}")

    def sigma_at(self, episode: int) -> float:
        """Exploration std used in ``episode`` (0-based); 1.0 marks uniform warm-up."""
        if episode < self.warmup:
            return 1.0
        return self.sigma * self.sigma_decay ** (episode - self.warmup)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides: Any) -> HaqConfig:
        """A preset with some fields replaced.

        Raises:
            ConfigError: unknown preset or field name.
        """
        if preset not in PRESETS:
            raise ConfigError(f"unknown HAQ preset {preset!r}; choose one of {sorted(PRESETS)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown HAQ setting(s) {unknown}; known: {sorted(known)}")
        return replace(PRESETS[preset], **overrides)


PRESETS: dict[str, HaqConfig] = {
    # HAQ as published: 600 episodes, 20 warm-up, no budget features. The quantizer side of the
    # paper preset (per-tensor weights, KL clip only below 5 bits, bits 2..8, first/last layer
    # pinned at 8) is chosen by haq.search.api from the same preset name.
    "paper": HaqConfig(episodes=600, warmup=20, hidden=300, budget_features=False),
    "default": HaqConfig(),
}
