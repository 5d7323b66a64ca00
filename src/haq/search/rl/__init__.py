"""HAQ's reinforcement-learning search: DDPG agent, decision process, presets."""

from haq.search.rl._config import PRESETS, HaqConfig
from haq.search.rl._ddpg import DDPG
from haq.search.rl._env import BitEnv, Step
from haq.search.rl._replay import ReplayBuffer
from haq.search.rl._strategy import HaqAgent, HaqStrategy

__all__ = ["DDPG", "PRESETS", "BitEnv", "HaqAgent", "HaqConfig", "HaqStrategy", "ReplayBuffer",
           "Step"]
