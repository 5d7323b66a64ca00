"""``single_thread()``: run torch on one intra-op thread for a while, then restore the setting.

Small matrices (the DDPG agent's networks, the test suite's tiny models) run faster on one
thread than with hand-offs between threads, and results then do not depend on the caller's
thread setting, which the agent's resume-equality relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_thread() -> Iterator[None]:
    """One torch intra-op thread inside the ``with`` block; the previous count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
