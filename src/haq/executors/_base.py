"""The executor interface and the in-process executor.

An executor offers two ways to run jobs, both returning results in job order:

* ``pool(fn)``: stateful replicas. ``fn`` (e.g. an episode evaluator holding a quantized model)
  is placed once on every worker; ``pool.map(jobs)`` then sends only the small jobs.
* ``map(fn, jobs)``: stateless tasks, for one-off batches such as per-layer probes.

``workers`` is also the batch size of the batched episode loop: it proposes that many policies
per round, so the same seed and worker count give the same run whichever executor runs them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from haq.errors import ConfigError

RAY_MISSING = "--workers/--ray-address need Ray: pip install 'haq[ray]'"


class Pool(ABC):
    """Replicas of one job function. ``reruns`` counts jobs re-run after a worker died."""

    reruns: int = 0
    jobs: int = 0

    @abstractmethod
    def map(self, jobs: Sequence[Any]) -> Iterator[Any]:
        """Run every job; yield each result as soon as it and every earlier one are done."""

    def close(self) -> None:  # noqa: B027 - an optional hook; local replicas hold nothing
        """Release the replicas."""

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Executor(ABC):
    """Runs batches of independent jobs; see the module docstring."""

    name: str = ""
    remote: bool = False  # jobs run in other processes: callbacks and counters stay behind

    def __init__(self, workers: int = 1) -> None:
        _check_workers(workers)
        self.workers = workers

    @abstractmethod
    def pool(self, fn: Callable[[Any], Any]) -> Pool:
        """Replicas of ``fn``, one per worker."""

    @abstractmethod
    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        """``[fn(job) for job in jobs]``, the jobs spread over the workers."""

    def close(self) -> None:  # noqa: B027 - an optional hook; a local executor starts nothing
        """Release what the executor started (a local Ray instance)."""

    def describe(self) -> dict[str, Any]:
        """What ``result.json`` records about where the jobs ran."""
        return {"executor": self.name, "workers": self.workers}


class _LocalPool(Pool):
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def map(self, jobs: Sequence[Any]) -> Iterator[Any]:
        for job in jobs:  # lazily: a job runs only when its result is asked for
            self.jobs += 1
            yield self.fn(job)


class LocalExecutor(Executor):
    """Runs every job in this process, one after another.

    With ``workers=K`` the episode loop still proposes K policies per round, exactly as on K
    Ray workers, so a batched run can be reproduced (and tested) without Ray.
    """

    name = "local"

    def pool(self, fn: Callable[[Any], Any]) -> Pool:
        return _LocalPool(fn)

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        return [fn(job) for job in jobs]


def map_parts(executor: Executor | None, fn: Callable[[list[int]], dict[int, Any]],
              count: int) -> dict[int, Any]:
    """``fn`` over the items ``0 .. count-1`` split into one part per worker (every k-th item,
    so early and late layers mix), the parts' ``{item: result}`` merged. Without an executor,
    one call over every item in this process."""
    if executor is None:
        return fn(list(range(count)))
    parts = [list(range(count))[k::executor.workers] for k in range(executor.workers)]
    merged: dict[int, Any] = {}
    for part in executor.map(fn, [p for p in parts if p]):
        merged.update(part)
    return merged


def _check_workers(workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Refuse a ``host:port`` nobody listens on: ``ray.init`` would wait for it for minutes."""
    host, _, port = (address or "").removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # None (start a local instance) or "auto": Ray resolves and checks those
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(f"no Ray cluster answers at {address} ({err.strerror or err}); start "
                          "one with `ray start --head` or check --ray-address") from None


def check_request(workers: int | None, ray_address: str | None) -> None:
    """Refuse a bad ``workers``, a missing Ray or a cluster address nobody answers at, before
    any slow work (Ray is not imported).

    Raises:
        ConfigError: ``workers`` is not an integer >= 1, Ray is not installed, or nothing
            listens at ``ray_address``.
    """
    if workers is None and ray_address is None:
        return
    if workers is not None:
        _check_workers(workers)
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(RAY_MISSING)
    check_reachable(ray_address)


def make_executor(workers: int | None = None, ray_address: str | None = None,
                  threads: int = 1) -> Executor | None:
    """The executor the user asked for: ``None`` (run in-process as always) when neither
    ``workers`` nor ``ray_address`` is given, else a ``RayExecutor``.

    Args:
        workers: Ray actors (and policies per round); default 1 when only an address is given.
        ray_address: an existing cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            ``None`` starts a local Ray instance with ``workers`` CPUs.
        threads: torch threads per worker.

    Raises:
        ConfigError: bad ``workers``, or Ray is not installed.
    """
    if workers is None and ray_address is None:
        return None
    from haq.executors._ray import RayExecutor

    return RayExecutor(1 if workers is None else workers, address=ray_address, threads=threads)


P = TypeVar("P")


@contextmanager
def distributed(problem: P, workers: int | None, ray_address: str | None) -> Iterator[P]:
    """``problem`` (a dataclass with an ``executor`` field) with the executor asked for, closed
    afterwards; unchanged (and Ray untouched) when neither ``workers`` nor ``ray_address``."""
    executor = make_executor(workers, ray_address)
    if executor is None:
        yield problem
        return
    try:
        yield dataclasses.replace(problem, executor=executor)  # type: ignore[type-var]
    finally:
        executor.close()
