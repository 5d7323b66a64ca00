"""The episode loop shared by episodic strategies (haq, random, uniform), journal and resume.

One episode: the proposer ``ask``s for bits, the projection makes them feasible, the policy is
evaluated (or found in the cache), the proposer is ``tell``-ed the outcome, the journal gets one
line, and every ``checkpoint_every`` episodes the proposer state is checkpointed.

Episodes run in rounds of K = ``problem.executor.workers`` (1 without an executor): the proposer
asks for all K policies first (each with its own draws from the seeded stream), the executor
evaluates them in parallel, and the results are told and journalled in proposal order as they
come back. The round structure depends only on K, never on where or how fast a job ran, so the
same seed and K give the same run on any executor.

Resume is exact by construction. The checkpoint is written only after the journal line, and only
at the end of a round, so a killed run has a checkpoint at a round start c and journal lines for
episodes 0..n-1 with n >= c. Resuming loads the checkpoint, then *replays* episodes c..n-1: the
proposer asks again (its restored RNG gives the same bits), the stored outcome is told instead of
re-evaluating, the round's missing episodes are evaluated, and then new rounds start. Proposers
must therefore be deterministic functions of their state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from haq.cost import Projector
from haq.errors import RunError
from haq.executors import LocalExecutor, Pool
from haq.policy import Policy, bits_to_json, policy_from_bits, policy_from_record, record_key
from haq.runs import BEST, RunStore
from haq.search._base import Evaluate, Progress, SearchProblem, SearchResult

FAILURE_LIMIT = 5  # this many failed episodes in a row means a broken evaluator: stop


@dataclass
class Proposal:
    """Bits one episode proposes (0 = float), the raw actions behind them, and small facts."""

    w_bits: np.ndarray
    a_bits: np.ndarray
    raw: list[float] | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Proposer(Protocol):
    """What an episodic strategy implements. Everything it remembers is in ``state_dict``."""

    def ask(self, episode: int) -> Proposal: ...

    def tell(self, episode: int, proposal: Proposal, executed: tuple[np.ndarray, np.ndarray],
             record: dict[str, Any]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class EpisodeLoop:
    """Runs ``episodes`` episodes of ``proposer`` on ``problem``.

    Args:
        problem: the search problem; ``problem.evaluate`` scores policies.
        strategy: strategy name (journal provenance, resume identity).
        settings: the strategy's JSON-able settings (compared on resume, except ``episodes``).
        reward_scale: HAQ's lambda: reward = reward_scale * (accuracy - float accuracy).
        checkpoint_every: checkpoint the proposer every k episodes (and at the end).
        projection: the budget projection's rule, ``"widest"`` or ``"saving"``
            (``haq.cost.Projector``).
    """

    problem: SearchProblem
    strategy: str
    settings: dict[str, Any]
    reward_scale: float = 0.1
    checkpoint_every: int = 1
    projection: str = "widest"

    def __post_init__(self) -> None:
        p = self.problem
        self.projector = Projector(p.table, p.budgets, p.space, p.specs, self.projection)
        self.float_accuracy = 0.0 if p.float_accuracy is None else float(p.float_accuracy)

    # -- one episode ----------------------------------------------------------------------------
    def costs(self, w: np.ndarray, a: np.ndarray) -> dict[str, float]:
        costs = self.problem.table.evaluate_arrays(w[None], a[None])
        return {m: float(np.asarray(v).reshape(-1)[0]) for m, v in costs.items()}

    def _record(self, episode: int, proposal: Proposal, w: np.ndarray, a: np.ndarray,
                outcome: dict[str, Any]) -> dict[str, Any]:
        accuracy = outcome["accuracy"]
        reward = None if accuracy is None else self.reward_scale * (accuracy
                                                                    - self.float_accuracy)
        return {
            "episode": episode, "state": outcome["state"], "raw": proposal.raw,
            "proposed": {"w_bits": bits_to_json(proposal.w_bits),
                         "a_bits": bits_to_json(proposal.a_bits)},
            "policy": {"w_bits": bits_to_json(w), "a_bits": bits_to_json(a)},
            "costs": self.costs(w, a), "accuracy": accuracy, "reward": reward,
            "cached": outcome["cached"], "error": outcome["error"],
            "seconds": outcome["seconds"], **proposal.info,
        }

    # -- the loop -------------------------------------------------------------------------------
    @property
    def batch(self) -> int:
        """Episodes per round: one per worker of the problem's executor."""
        executor = self.problem.executor
        return 1 if executor is None else executor.workers

    def run(self, proposer: Proposer, episodes: int, *, seed: int, run_dir: Path | None,
            resume: bool, progress: Progress | None) -> SearchResult:
        """Run (or resume) episodes ``0 .. episodes-1`` and return the best complete one."""
        store = self._open(run_dir, seed, resume)
        records, start = self._restore(store, proposer)
        history = list(records[:start])
        cache = {record_key(r): r["accuracy"] for r in history if r["state"] == "complete"}
        clock, failures = time.perf_counter(), 0
        with _Jobs(self.problem) as jobs:
            for first in range(start, episodes, self.batch):
                last = min(first + self.batch, episodes)
                for record in self._round(proposer, range(first, last), records, cache, jobs):
                    history.append(record)
                    replay = record["episode"] < len(records)
                    if store and not replay:  # journal line first, checkpoint second
                        store.journal.append(record)
                    failures = failures + 1 if record["state"] == "failed" else 0
                    if failures >= FAILURE_LIMIT and not replay:
                        raise RunError(f"the last {failures} episodes all failed; last error: "
                                       f"{record['error']}. Fix the evaluation and rerun with "
                                       "resume")
                    self._report(progress, record, history, episodes)
                if store and (last == episodes or last // self.checkpoint_every
                              > first // self.checkpoint_every):
                    store.save_checkpoint({"episode": last, "proposer": proposer.state_dict()})
        result = self._result(history, time.perf_counter() - clock)
        result.extra["executor"] = jobs.summary()
        if store:
            store.write_json(BEST, result.best.to_dict())
        return result

    def _restore(self, store: RunStore | None, proposer: Proposer
                 ) -> tuple[list[dict[str, Any]], int]:
        """(journal records, first episode not covered by the checkpoint)."""
        if store is None:
            return [], 0
        records, start = store.journal.read(), 0
        state = store.load_checkpoint()
        if state is not None:
            start = int(state["episode"])
            proposer.load_state_dict(state["proposer"])
        if start > len(records):
            raise RunError(f"checkpoint is at episode {start} but the journal has only "
                           f"{len(records)} lines; the journal was truncated by hand")
        return records, start

    def _round(self, proposer: Proposer, episodes: range, stored: list[dict[str, Any]],
               cache: dict[tuple, float], jobs: _Jobs) -> Iterator[dict[str, Any]]:
        """Ask for every episode of the round, evaluate what is neither journalled nor cached
        (in parallel), then tell and yield each episode's record in proposal order."""
        asked = []
        for episode in episodes:
            t0 = time.perf_counter()
            proposal = proposer.ask(episode)
            t1 = time.perf_counter()
            w, a = self.projector.project_arrays(proposal.w_bits, proposal.a_bits)
            asked.append((episode, proposal, w, a, t1 - t0, time.perf_counter() - t1))
        fresh: dict[tuple, Policy] = {}
        for episode, _, w, a, *_ in asked:
            key = (*w, *a)
            if episode >= len(stored) and key not in cache:
                fresh.setdefault(key, policy_from_bits(self.problem.specs, w, a))
        outcomes = _Lazy(list(fresh), jobs.run(list(fresh.values())))
        for episode, proposal, w, a, ask_seconds, project_seconds in asked:
            t3 = time.perf_counter()
            if episode < len(stored):
                record = self._check_replay(stored[episode], episode, w, a)
            else:
                record = self._record(episode, proposal, w, a,
                                      _outcome((*w, *a), cache, outcomes))
            proposer.tell(episode, proposal, (w, a), record)
            if episode >= len(stored):
                record["agent_seconds"] = ask_seconds + (time.perf_counter() - t3)
                record["project_seconds"] = project_seconds
            if record["state"] == "complete":
                cache[record_key(record)] = record["accuracy"]
            yield record

    # -- helpers --------------------------------------------------------------------------------
    def _check_replay(self, record: dict[str, Any], episode: int, w: np.ndarray,
                      a: np.ndarray) -> dict[str, Any]:
        if record.get("episode") != episode or record_key(record) != (*w, *a):
            raise RunError(f"journal line {episode + 1} does not match what this run proposes "
                           "for that episode (the code, data or settings changed since the run "
                           "started); choose another run directory")
        return record

    def _open(self, run_dir: Path | None, seed: int, resume: bool) -> RunStore | None:
        if run_dir is None:
            return None
        p = self.problem
        budgets = [{"metric": m, "limit": float(v)}
                   for m, v in zip(self.projector.metrics, self.projector.limits, strict=True)]
        identity = {
            "strategy": self.strategy, "seed": seed,
            "settings": {k: v for k, v in self.settings.items() if k != "episodes"},
            "layers": [s.name for s in p.specs], "budgets": budgets,
            "space": p.space.to_dict(), "reward_scale": self.reward_scale,
            "float_accuracy": p.float_accuracy, "problem": p.provenance,
        }
        if self.batch > 1:  # rounds of K proposals: another K is another run
            identity["batch"] = self.batch
        info = {"model": p.provenance.get("model"), "dataset": p.provenance.get("dataset"),
                "settings": self.settings, "specs": [s.to_dict() for s in p.specs]}
        return RunStore.open(run_dir, identity, resume=resume, info=info)

    def _report(self, progress: Progress | None, record: dict[str, Any],
                history: list[dict[str, Any]], episodes: int) -> None:
        if progress is None:
            return
        best = _best(history)
        progress({"episode": record["episode"], "episodes": episodes, "state": record["state"],
                  "reward": record["reward"], "accuracy": record["accuracy"],
                  "costs": record["costs"],
                  "best_reward": None if best is None else best["reward"],
                  "best_accuracy": None if best is None else best["accuracy"],
                  "best_costs": None if best is None else best["costs"],
                  "sigma": record.get("sigma")})

    def _result(self, history: list[dict[str, Any]], seconds: float) -> SearchResult:
        best = _best(history)
        if best is None:
            raise RunError("every episode failed, so there is no best policy; see the "
                           "journal's 'error' fields")
        policy = policy_from_record(self.problem.specs, best, strategy=self.strategy,
                                    episode=best["episode"], reward=best["reward"],
                                    accuracy=best["accuracy"], costs=best["costs"],
                                    **self.problem.provenance)
        evaluations = sum(1 for r in history if not r.get("cached"))
        return SearchResult(best=policy, best_accuracy=best["accuracy"], costs=best["costs"],
                            evaluations=evaluations, seconds=seconds, history=history)


def _best(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Highest reward among complete episodes; the earliest wins a tie."""
    done = [r for r in history if r["state"] == "complete"]
    return max(done, key=lambda r: (r["reward"], -r["episode"])) if done else None



def _outcome(key: tuple, cache: dict[tuple, float], outcomes: _Lazy) -> dict[str, Any]:
    """This round's evaluation of ``key``, or a cache hit: the policy was scored in an earlier
    episode, or earlier in this round."""
    if key in cache:
        return {"state": "complete", "accuracy": cache[key], "cached": True, "error": None,
                "seconds": 0.0}
    return dict(outcomes[key])


class _Lazy:
    """Results of a round's jobs by policy key, each fetched only when an episode needs it, so
    an episode is told and journalled while later ones of its round still run."""

    def __init__(self, keys: list[tuple], results: Iterator[dict[str, Any]]) -> None:
        self.keys, self.results = iter(keys), results
        self.got: dict[tuple, dict[str, Any]] = {}

    def __getitem__(self, key: tuple) -> dict[str, Any]:
        while key not in self.got:
            self.got[next(self.keys)] = next(self.results)
        return self.got[key]


class Scorer:
    """The job an executor runs for one episode: ``evaluate(policy)`` -> outcome dict. A failing
    evaluation is an outcome (recorded, the search goes on), not an exception."""

    def __init__(self, evaluate: Evaluate) -> None:
        self.evaluate = evaluate

    def __call__(self, policy: Policy) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            accuracy = float(self.evaluate(policy).accuracy)
            if not np.isfinite(accuracy):
                raise ValueError(f"evaluation returned accuracy {accuracy}")
        except Exception as err:  # a failing episode is recorded and the search goes on
            return {"state": "failed", "accuracy": None, "cached": False,
                    "error": f"{type(err).__name__}: {err}",
                    "seconds": time.perf_counter() - start}
        return {"state": "complete", "accuracy": accuracy, "cached": False, "error": None,
                "seconds": time.perf_counter() - start}


class _Jobs:
    """The problem's executor, with a pool of scorers started on the first evaluation (a run
    that only replays its journal starts no worker)."""

    def __init__(self, problem: SearchProblem) -> None:
        self.problem = problem
        self.executor = problem.executor or LocalExecutor()
        self.pool: Pool | None = None

    def run(self, policies: list[Policy]) -> Iterator[dict[str, Any]]:
        if not policies:
            return iter(())
        if self.problem.evaluate is None:
            raise RunError("this search problem has no evaluate function; episodic strategies "
                           "need one to score policies")
        if self.pool is None:
            self.pool = self.executor.pool(Scorer(self.problem.evaluate))
        return self.pool.map(policies)

    def summary(self) -> dict[str, Any]:
        """Where the episodes ran, and how many were re-run after a worker died."""
        pool = self.pool
        return {**self.executor.describe(), "reruns": 0 if pool is None else pool.reruns,
                "remote_evaluations": pool.jobs if pool and self.executor.remote else 0}

    def __enter__(self) -> _Jobs:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.close()
