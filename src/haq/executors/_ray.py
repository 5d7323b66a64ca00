"""``RayExecutor``: jobs on Ray actors (one model replica each) and Ray tasks.

What crosses the wire: the job function once per actor (through Ray's object store, so a model
and its data are serialised once per run, not per job), then per job only the job itself (a
policy: about a kilobyte) and its result (an accuracy and timings).

A worker that dies mid-job (killed process, lost node) surfaces as ``RayActorError`` when its
result is fetched; the job is then submitted to another actor and the dead actor is replaced,
so every job yields exactly one result. Each re-run is logged as a warning on the
``haq.executors`` logger and counted in ``Pool.reruns``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from haq.errors import ConfigError, RunError
from haq.executors._base import RAY_MISSING, Executor, Pool, check_reachable

log = logging.getLogger("haq.executors")
MAX_ATTEMPTS = 4  # a job that kills this many workers in a row is the job's fault


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


class Replica:
    """A Ray actor's state: one copy of the job function, on ``threads`` torch threads."""

    def __init__(self, fn: Callable[[Any], Any], threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.fn = fn

    def run(self, job: Any) -> Any:
        return self.fn(job)


def _task(fn: Callable[[Any], Any], job: Any, threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    return fn(job)


class RayPool(Pool):
    """Up to ``workers`` actors holding ``fn`` (started as batches need them); jobs go
    round-robin, results come back in order."""

    def __init__(self, ray: Any, fn: Callable[[Any], Any], workers: int, threads: int) -> None:
        self.ray, self.threads = ray, threads
        self.fn_ref = ray.put(fn)  # serialised once, shared by every actor on a node
        self.actor_cls = ray.remote(num_cpus=1, max_restarts=0)(Replica)
        self.workers = workers
        self.actors: list[Any] = []

    def _grow(self, count: int) -> None:
        """Start actors up to ``count`` (a batch of one job needs only one)."""
        while len(self.actors) < min(count, self.workers):
            self.actors.append(self._start())

    def _start(self) -> Any:
        return self.actor_cls.remote(self.fn_ref, self.threads)

    def map(self, jobs: Sequence[Any]) -> Iterator[Any]:
        self._grow(len(jobs))
        placed = [self._submit(self.actors[i % len(self.actors)], job)
                  for i, job in enumerate(jobs)]
        for i, job in enumerate(jobs):
            for attempt in range(1, MAX_ATTEMPTS + 1):
                actor, ref = placed[i]
                try:
                    result = self.ray.get(ref)
                    break
                except self.ray.exceptions.RayActorError as err:
                    if attempt == MAX_ATTEMPTS:
                        raise RunError(f"job {i} of the batch killed {attempt} workers in a row; "
                                       f"last: {type(err).__name__}") from err
                    placed[i] = self._rerun(actor, job, i, err)
            self.jobs += 1
            yield result

    @staticmethod
    def _submit(actor: Any, job: Any) -> tuple[Any, Any]:
        return actor, actor.run.remote(job)

    def _rerun(self, dead: Any, job: Any, index: int, err: Exception) -> tuple[Any, Any]:
        """Replace the dead actor (unless an earlier job's failure already did) and submit
        ``job`` to the actor after it."""
        self.reruns += 1
        log.warning("a Ray worker died while running job %d of the batch (%s); re-running it "
                    "on another worker", index, type(err).__name__)
        slot = next((k for k, actor in enumerate(self.actors) if actor is dead), None)
        if slot is None:
            slot = index % len(self.actors)
        else:
            self.ray.kill(dead, no_restart=True)
            self.actors[slot] = self._start()
        return self._submit(self.actors[(slot + 1) % len(self.actors)], job)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors = []


class RayExecutor(Executor):
    """Runs jobs on a Ray cluster: ``address`` joins one, ``None`` starts a local instance.

    Args:
        workers: actors of a pool (one CPU each) and parallel tasks of ``map``.
        address: a running cluster's address (``"auto"`` for the one on this machine).
        threads: torch threads inside each actor or task.
    """

    name = "ray"
    remote = True

    def __init__(self, workers: int = 1, *, address: str | None = None, threads: int = 1
                 ) -> None:
        super().__init__(workers)
        self.ray, self.threads = _ray(), threads
        self.owned = not self.ray.is_initialized()
        if self.owned:
            check_reachable(address)
            try:
                self.ray.init(address=address, num_cpus=workers if address is None else None,
                              include_dashboard=False, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as err:
                raise ConfigError(f"cannot reach a Ray cluster at {address!r} ({err}); start "
                                  "one with `ray start --head` or omit --ray-address") from None
        cpus = self.ray.cluster_resources().get("CPU", 0)
        if cpus < workers:
            self.close()
            raise ConfigError(f"the Ray cluster has {cpus:g} CPUs but --workers {workers} "
                              "needs one each; add nodes or ask for fewer workers")

    def pool(self, fn: Callable[[Any], Any]) -> RayPool:
        return RayPool(self.ray, fn, self.workers, self.threads)

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        task = self.ray.remote(num_cpus=1, max_retries=MAX_ATTEMPTS - 1)(_task)
        fn_ref = self.ray.put(fn)
        return list(self.ray.get([task.remote(fn_ref, job, self.threads) for job in jobs]))

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
        self.owned = False
