"""Replay buffer: a preallocated ring of (state, action, reward, next state, done)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_states: torch.Tensor
    dones: torch.Tensor


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions; sampling takes the caller's numpy Generator.

    Args:
        capacity: transitions kept; the oldest are overwritten first.
        state_dim: length of one state vector.
    """

    def __init__(self, capacity: int, state_dim: int) -> None:
        self.capacity, self.state_dim = int(capacity), int(state_dim)
        self.states = np.zeros((self.capacity, state_dim), dtype=np.float32)
        self.next_states = np.zeros((self.capacity, state_dim), dtype=np.float32)
        self.actions = np.zeros((self.capacity, 1), dtype=np.float32)
        self.rewards = np.zeros((self.capacity, 1), dtype=np.float32)
        self.dones = np.zeros((self.capacity, 1), dtype=np.float32)
        self.pos, self.size = 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, state: np.ndarray, action: float, reward: float, next_state: np.ndarray,
            done: bool) -> None:
        """Append one transition, overwriting the oldest when full."""
        i = self.pos
        self.states[i], self.next_states[i] = state, next_state
        self.actions[i, 0], self.rewards[i, 0], self.dones[i, 0] = action, reward, float(done)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """``batch_size`` transitions; without replacement when the buffer holds enough."""
        idx = rng.choice(self.size, size=batch_size, replace=self.size < batch_size)
        pick = (self.states, self.actions, self.rewards, self.next_states, self.dones)
        return Batch(*(torch.from_numpy(arr[idx]) for arr in pick))

    def state_dict(self) -> dict[str, Any]:
        n = self.size  # only the filled part; keeps checkpoints small early in a run
        return {"pos": self.pos, "size": n,
                **{k: torch.from_numpy(getattr(self, k)[:n].copy())
                   for k in ("states", "next_states", "actions", "rewards", "dones")}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos, self.size = int(state["pos"]), int(state["size"])
        for key in ("states", "next_states", "actions", "rewards", "dones"):
            getattr(self, key)[: self.size] = state[key].numpy()
