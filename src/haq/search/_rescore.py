"""Re-rank a search's best policies after a short recovery fine-tune (top-k re-scoring).

An episode scores the calibrated policy without training it (the post-training proxy; a
per-episode recovery fine-tune is ``finetune_steps`` and costs its steps in every episode).
The proxy can misrank: a policy that loses little before training may recover less than one
that loses more, and the policy that ships is the one after the final fine-tune. Re-scoring
spends the recovery only where the choice is made: the ``top`` distinct policies with the
highest episode reward are each fine-tuned ``steps`` SGD steps (the search's recovery recipe)
and scored on the **whole** held-out split (an episode may score a subset); the best of them
after recovery becomes the result. The episode's own reward decides ties, and the search
journal is left untouched. With ``steps=0`` the candidates are not trained, only scored again
on the whole held-out split: a post-training search that scores a subset per episode can
overfit that subset, and the larger sample decides between its best policies.

With a run directory every re-scored candidate is appended to ``rescore.jsonl`` as it
finishes, so a resumed run re-scores only what is missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from haq.errors import ConfigError
from haq.policy import policy_from_record, record_key
from haq.runs import Journal, RunLayout
from haq.search._base import Progress, SearchProblem, SearchResult
from haq.search._evaluator import EpisodeEvaluator


@dataclasses.dataclass(frozen=True)
class RescoreConfig:
    """How many of the best episodes to re-score, and how long each recovers.

    Attributes:
        top: distinct policies re-scored, highest episode reward first (0 or 1 = off).
        steps: recovery SGD steps per candidate (``search_finetune_config``: lr 1e-3);
            0 re-scores the candidates as they are, on the whole held-out split.
    """

    top: int = 0
    steps: int = 50

    def __post_init__(self) -> None:
        if self.top < 0 or self.steps < 0:
            raise ConfigError(f"rescore needs top >= 0 and steps >= 0, got top={self.top}, "
                              f"steps={self.steps}")

    @property
    def enabled(self) -> bool:
        return self.top > 1


def candidates(history: Sequence[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    """The ``top`` complete episodes with the highest reward, one per distinct policy
    (the earliest episode of a policy stands for it), best first."""
    done = sorted((r for r in history if r.get("state") == "complete"
                   and r.get("reward") is not None and "policy" in r),
                  key=lambda r: (-r["reward"], r["episode"]))
    chosen: dict[tuple, dict[str, Any]] = {}
    for record in done:
        chosen.setdefault(record_key(record), record)
        if len(chosen) == top:
            break
    return list(chosen.values())


def rescore(problem: SearchProblem, result: SearchResult, settings: RescoreConfig, *, seed: int,
            run_dir: Path | None = None, progress: Progress | None = None) -> SearchResult:
    """Return ``result`` with ``best`` replaced by the best candidate after recovery.

    ``progress`` is called with ``{"stage": "rescore", "done": i, "total": k, ...}`` after
    each candidate.

    ``result.extra["rescored"]`` lists every candidate (episode, reward, accuracy before and
    after recovery); ``best_accuracy`` becomes the after-recovery held-out accuracy.

    Raises:
        ConfigError: the problem lacks what a recovery needs (model, training or held-out data).
    """
    if not settings.enabled or not result.history:
        return result
    if problem.model is None or problem.heldout is None \
            or (settings.steps and problem.train_data is None):
        raise ConfigError("re-scoring needs the search problem's model and heldout data, and "
                          "train_data to fine-tune (steps > 0); haq.search builds them from "
                          "your data")
    chosen = {record_key(r): r for r in candidates(result.history, settings.top)}
    if len(chosen) < 2:
        return result  # nothing to choose between
    journal = Journal(RunLayout(run_dir).rescore) if run_dir is not None else None
    previous = journal.read() if journal is not None and journal.path.exists() else []
    done = {record_key(r): r for r in previous if r.get("steps") == settings.steps}
    evaluator: EpisodeEvaluator | None = None
    scored: dict[tuple, dict[str, Any]] = {}
    for index, (key, record) in enumerate(chosen.items()):
        entry = done.get(key)
        if entry is None:
            if evaluator is None:  # built once, and only when something is left to score
                evaluator = EpisodeEvaluator(
                    problem.model, problem.specs, heldout=problem.heldout,
                    calibration=problem.calibration, quant_config=_quant_config(problem),
                    train_data=problem.train_data, finetune_steps=settings.steps, seed=seed,
                    metric=problem.metric)
            outcome = evaluator(policy_from_record(problem.specs, record))
            entry = {"episode": record["episode"], "policy": record["policy"],
                     "reward": record["reward"], "episode_accuracy": record["accuracy"],
                     "accuracy": outcome.accuracy, "steps": settings.steps,
                     "seconds": outcome.seconds}
            if journal is not None:
                journal.append(entry)
        scored[key] = entry
        if progress is not None:
            progress({"stage": "rescore", "done": index + 1, "total": len(chosen),
                      "episode": entry["episode"], "accuracy": entry["accuracy"]})
    key = max(scored, key=lambda k: (scored[k]["accuracy"], scored[k]["reward"],
                                     -scored[k]["episode"]))
    best, winner = scored[key], chosen[key]
    policy = policy_from_record(problem.specs, winner,
                                strategy=result.best.provenance.get("strategy"),
                                episode=winner["episode"], reward=winner["reward"],
                                accuracy=winner["accuracy"], costs=winner["costs"],
                                rescored_accuracy=best["accuracy"], rescore_steps=settings.steps,
                                **problem.provenance)
    extra = {**result.extra, "rescored": list(scored.values()),
             "search_best_episode": result.best.provenance.get("episode")}
    return dataclasses.replace(result, best=policy, best_accuracy=best["accuracy"],
                               costs=winner["costs"], extra=extra)


def _quant_config(problem: SearchProblem) -> Any:
    from haq.quantize import QuantConfig

    if problem.quant_config is not None:
        return problem.quant_config
    config = problem.provenance.get("quant_config")
    return QuantConfig.from_dict(config) if config else QuantConfig()
