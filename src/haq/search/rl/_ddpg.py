"""DDPG as HAQ uses it: a 1-D continuous action in [0, 1] per step, actor-critic with targets.

Networks (reference/haq.md section 2): actor state -> 300 -> ReLU -> 300 -> ReLU -> 1 -> sigmoid;
critic fc(state, 300) + fc(action, 300) -> ReLU -> 300 -> ReLU -> 1. Adam, MSE critic loss,
actor loss -Q(s, mu(s)), soft target updates after every step. Exploration noise is the
caller's business (``HaqStrategy``); this module is only the agent math.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from haq.search.rl._config import HaqConfig
from haq.search.rl._replay import Batch


def _linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    # Built on the meta device so that construction never draws from torch's global RNG; then
    # PyTorch's default init (uniform +-1/sqrt(fan_in) for weight and bias) from our generator.
    layer = nn.Linear(n_in, n_out, device="meta").to_empty(device="cpu")
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


class Actor(nn.Module):
    def __init__(self, state_dim: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        self.fc1 = _linear(state_dim, hidden, generator)
        self.fc2 = _linear(hidden, hidden, generator)
        self.fc3 = _linear(hidden, 1, generator)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(state))
        x = F.relu(self.fc2(x))
        return torch.sigmoid(self.fc3(x))


class Critic(nn.Module):
    def __init__(self, state_dim: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        self.fc_state = _linear(state_dim, hidden, generator)
        self.fc_action = _linear(1, hidden, generator)
        self.fc2 = _linear(hidden, hidden, generator)
        self.fc3 = _linear(hidden, 1, generator)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc_state(state) + self.fc_action(action))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def _copy_params(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target (tau = 1: hard copy)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.mul_(1.0 - tau).add_(s, alpha=tau)


class DDPG:
    """Actor, critic, their targets and optimizers.

    Args:
        state_dim: length of a state vector.
        config: hyperparameters (hidden width, learning rates, tau, gamma).
        generator: the only source of randomness for the initial weights.
    """

    def __init__(self, state_dim: int, config: HaqConfig, generator: torch.Generator) -> None:
        self.config = config
        self.actor = Actor(state_dim, config.hidden, generator)
        self.critic = Critic(state_dim, config.hidden, generator)
        self.actor_target = Actor(state_dim, config.hidden, generator)
        self.critic_target = Critic(state_dim, config.hidden, generator)
        _copy_params(self.actor_target, self.actor, 1.0)
        _copy_params(self.critic_target, self.critic, 1.0)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.lr_actor)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.lr_critic)

    @torch.no_grad()
    def act(self, state: torch.Tensor) -> float:
        """The deterministic action mu(s) in [0, 1] for one state vector."""
        return float(self.actor(state.reshape(1, -1))[0, 0])

    def update(self, batch: Batch, baseline: float) -> dict[str, float]:
        """One gradient step of critic then actor, then soft target updates.

        ``baseline`` (the moving-average reward) is subtracted from the sampled rewards: every
        step of an episode carries the same final reward, and centring it keeps Q small.
        """
        cfg = self.config
        with torch.no_grad():
            next_q = self.critic_target(batch.next_states, self.actor_target(batch.next_states))
            target = (batch.rewards - baseline) + cfg.gamma * (1.0 - batch.dones) * next_q
        critic_loss = F.mse_loss(self.critic(batch.states, batch.actions), target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        # the critic only passes gradients through to the action here; its own weight gradients
        # would never be used (the next critic step zeroes them), so they are not computed
        self.critic.requires_grad_(False)
        try:
            actor_loss = -self.critic(batch.states, self.actor(batch.states)).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
        finally:
            self.critic.requires_grad_(True)
        self.actor_opt.step()

        _copy_params(self.actor_target, self.actor, cfg.tau)
        _copy_params(self.critic_target, self.critic, cfg.tau)
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).state_dict() for name in
                ("actor", "critic", "actor_target", "critic_target", "actor_opt", "critic_opt")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            getattr(self, name).load_state_dict(value)
