"""Run several strategies on one search problem and compare them on equal terms.

Every strategy sees the same problem (model, cost table, budgets, bit space, evaluator; built by
``haq.search.build_problem``, as ``haq.search`` builds it), runs through ``run_strategy`` (so
search time and evaluations are measured alike) and its
best policy is scored by the same ``final_score`` (typically: fine-tune N epochs, then test
accuracy). Uniform W{b}A{b} policies are scored the same way as reference points, feasible or
not. The result renders as one table (accuracy, every cost, search time, evaluations used) in
markdown and CSV, and as a Pareto plot of accuracy against the budgeted metric.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from haq.cost import budgets_met
from haq.errors import ConfigError, HaqError
from haq.metrics import TOP1
from haq.policy import LayerBits, Policy
from haq.runs import atomic_write_text
from haq.search._base import Progress, SearchProblem, SearchResult
from haq.search._outputs import write_inputs, write_outputs
from haq.search._rescore import RescoreConfig
from haq.search._rescore import rescore as rescore_result
from haq.search.api import run_strategy

FinalScore = Callable[[Policy], float]


@dataclass
class Entry:
    """One row of the comparison: a strategy's result or a uniform reference point.

    Attributes:
        name: strategy name, or ``W{b}A{b}`` for a uniform point.
        kind: ``"strategy"`` or ``"uniform"``.
        accuracy: final score from ``final_score`` (or the search's own score): top-1 (%)
            by default, else the problem's metric as a score (``Comparison.value``).
        search_accuracy: the best accuracy the search itself measured, if any.
        costs: every metric of the cost table, in ``Comparison.units``.
        feasible: whether every budget holds.
        search_seconds / final_seconds: wall-clock of the search and of the final scoring.
        evaluations: policies the search evaluated.
        policy: the policy (JSON-able dict).
        error: why the strategy failed, if it did (the comparison goes on).
        details: the strategy's own extras (e.g. ``rescored``: the re-ranked candidates).
    """

    name: str
    kind: str
    accuracy: float | None = None
    search_accuracy: float | None = None
    costs: dict[str, float] = field(default_factory=dict)
    feasible: bool = True
    search_seconds: float = 0.0
    final_seconds: float = 0.0
    evaluations: int = 0
    policy: dict[str, Any] | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    """All entries plus what they were measured against."""

    budget_metric: str
    budget_limits: dict[str, float]
    units: dict[str, str]
    float_accuracy: float | None
    entries: list[Entry]
    quality: dict[str, str] = field(default_factory=lambda: {"name": "top1", "mode": "max",
                                                             "unit": "%"})

    def value(self, score: float | None) -> float | None:
        """The metric's own value of an entry's score (scores of a "min" metric are negated
        so that higher is better everywhere inside haq)."""
        if score is None:
            return None
        return score if self.quality["mode"] == "max" else -score

    def label(self, prefix: str = "") -> str:
        """Column title of the metric: ``accuracy (%)`` for top-1."""
        name = "accuracy" if self.quality["name"] == "top1" else self.quality["name"]
        unit = f" ({self.quality['unit']})" if self.quality.get("unit") else ""
        return f"{prefix}{name}{unit}"

    def strategies(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "strategy"]

    def uniform(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "uniform"]

    def columns(self) -> list[str]:
        metrics = [f"{m} ({self.units[m]})" for m in self.units]
        return ["name", "kind", self.label(), self.label("search "), *metrics, "feasible",
                "search time (s)", "final time (s)", "evaluations", "error"]

    def rows(self) -> list[list[Any]]:
        out = []
        for e in self.entries:
            out.append([e.name, e.kind, self.value(e.accuracy), self.value(e.search_accuracy),
                        *(e.costs.get(m) for m in self.units), e.feasible,
                        round(e.search_seconds, 3), round(e.final_seconds, 3), e.evaluations,
                        e.error or ""])
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns())
        writer.writerows(self.rows())
        return buf.getvalue()

    def to_markdown(self) -> str:
        def cell(v: Any) -> str:
            if v is None:
                return "–"
            if isinstance(v, bool):
                return "yes" if v else "no"
            if isinstance(v, float):
                return f"{v:.4g}"
            return str(v)

        budgets = ", ".join(f"{m} <= {v:.4g} {self.units.get(m, '')}".rstrip()
                            for m, v in self.budget_limits.items())
        float_text = (f"Float {self.label()} (held-out split): "
                      f"{cell(self.value(self.float_accuracy))}.")
        lines = [f"Budgets: {budgets}. {float_text}", "",
                 "| " + " | ".join(self.columns()) + " |",
                 "|" + "---|" * len(self.columns())]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows()]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"budget_metric": self.budget_metric, "budget_limits": self.budget_limits,
                "units": self.units, "float_accuracy": self.float_accuracy,
                "quality": self.quality, "entries": [asdict(e) for e in self.entries]}


def _feasible(problem: SearchProblem, costs: Mapping[str, float]) -> bool:
    return budgets_met(costs, problem.budgets, problem.table)


def _write_run(run_dir: Path, problem: SearchProblem, result: SearchResult, name: str,
               seed: int, final_accuracy: float | None) -> None:
    """The strategy's run directory gets what ``haq.search`` writes (``haq report`` reads it);
    ``test_accuracy`` is the row's final score."""
    result.extra["float_accuracy"] = problem.float_accuracy
    if final_accuracy is not None:
        result.extra["test_accuracy"] = final_accuracy
    write_inputs(run_dir, problem.specs, problem.table)
    write_outputs(run_dir, result, problem, name, seed)


def uniform_policy(problem: SearchProblem, bits: int) -> Policy:
    """W{bits}A{bits} for every free layer, moved into the space (the largest allowed width
    <= bits, else the smallest allowed); pinned layers keep pins."""
    layers = {}
    for spec in problem.specs:
        ws, as_ = problem.space.allowed(spec)
        layers[spec.name] = LayerBits(_nearest_below(ws, bits), _nearest_below(as_, bits))
    return Policy(layers, {"strategy": "uniform-reference", "bits": bits})


def _nearest_below(allowed: Sequence[int | None], bits: int) -> int | None:
    ints = [b for b in allowed if b is not None]
    return max((b for b in ints if b <= bits), default=min(ints)) if ints else None


def _score(policy: Policy, problem: SearchProblem, final_score: FinalScore | None
           ) -> tuple[float | None, float]:
    start = time.perf_counter()
    if final_score is not None:
        value: float | None = float(final_score(policy))
    elif problem.evaluate is not None:
        value = float(problem.evaluate(policy).accuracy)
    else:
        value = None
    return value, time.perf_counter() - start


def compare(problem: SearchProblem, strategies: Sequence[str], *,
            final_score: FinalScore | None = None,
            params: Mapping[str, Mapping[str, Any]] | None = None,
            uniform_bits: Sequence[int] = (2, 3, 4, 5, 6, 8), seed: int = 0,
            run_root: Path | None = None, resume: bool = False,
            rescore: RescoreConfig | None = None, progress: Progress | None = None) -> Comparison:
    """Search with each strategy, then score every result and uniform point the same way.

    Args:
        problem: the shared search problem (at least one budget; the first is the plotted one).
        strategies: registered strategy names, run in this order.
        final_score: policy -> accuracy (%) used for every row (e.g. fine-tune + test);
            ``None`` uses the problem's own evaluator.
        params: per-strategy keyword parameters, e.g. ``{"haq": {"episodes": 50}}``.
        uniform_bits: uniform reference points to score.
        seed: search seed for every strategy.
        run_root: if given, each strategy journals to ``run_root/<name>``.
        resume: resume those runs instead of refusing existing directories.
        rescore: re-rank each episodic strategy's best policies after a short recovery
            fine-tune (``RescoreConfig``); ``None`` keeps each search's best episode.
        progress: called with ``{"stage": ..., "name": ..., **details}`` as work finishes.

    With ``problem.executor`` every strategy and uniform point runs as one job on its workers
    (each strategy then searches in-process there); run directories must be on storage every
    worker can write.

    A strategy that fails is recorded with its error; the others still run.
    """
    if not problem.budgets:
        raise ConfigError("compare needs at least one budget: every strategy is judged at "
                          "the same budget")
    if not strategies:
        raise ConfigError("name at least one strategy to compare")
    # with an executor each strategy and uniform point is one job, run in-process on a worker
    local = dataclasses.replace(problem, executor=None)
    jobs = ((_StrategyJob(local, dict(params or {}), seed, run_root, resume, rescore,
                          final_score), list(strategies), "strategy"),
            (_UniformJob(local, final_score), list(uniform_bits), "uniform"))
    entries: list[Entry] = []
    for job, items, stage in jobs:
        done = map(job, items) if problem.executor is None else problem.executor.map(job, items)
        for entry in done:
            entries.append(entry)
            if progress is not None:
                progress({"stage": stage, **asdict(entry)})
    limits = {b.metric: float(b.resolve(problem.table)) for b in problem.budgets}
    return Comparison(budget_metric=problem.budgets[0].metric, budget_limits=limits,
                      units=dict(problem.table.units), float_accuracy=problem.float_accuracy,
                      entries=entries, quality=(problem.metric or TOP1).describe())


class _StrategyJob:
    """Search with one strategy, score its best policy: strategy name -> ``Entry``."""

    def __init__(self, problem: SearchProblem, params: Mapping[str, Mapping[str, Any]],
                 seed: int, run_root: Path | None, resume: bool, rescore: RescoreConfig | None,
                 final_score: FinalScore | None) -> None:
        self.problem, self.params, self.seed = problem, params, seed
        self.run_root, self.resume, self.rescore = run_root, resume, rescore
        self.final_score = final_score

    def __call__(self, name: str) -> Entry:
        problem, seed, entry = self.problem, self.seed, Entry(name=name, kind="strategy")
        try:
            run_dir = None if self.run_root is None else Path(self.run_root) / name
            start = time.perf_counter()
            result = run_strategy(problem, name, self.params.get(name, {}), seed=seed,
                                  run_dir=run_dir, resume=self.resume)
            if self.rescore is not None:
                result = rescore_result(problem, result, self.rescore, seed=seed,
                                        run_dir=run_dir)
            entry.search_seconds = time.perf_counter() - start
            entry.search_accuracy, entry.evaluations = result.best_accuracy, result.evaluations
            entry.policy = result.best.to_dict()
            if "rescored" in result.extra:
                entry.details["rescored"] = result.extra["rescored"]
            entry.costs = problem.table.evaluate(result.best, problem.specs)
            entry.feasible = _feasible(problem, entry.costs)
            entry.accuracy, entry.final_seconds = _score(result.best, problem, self.final_score)
            if run_dir is not None:
                _write_run(run_dir, problem, result, name, seed,
                           entry.accuracy if self.final_score is not None else None)
        except HaqError as err:
            entry.error = f"{type(err).__name__}: {err}"
        return entry


class _UniformJob:
    """Score one uniform reference point: bits -> ``Entry``."""

    def __init__(self, problem: SearchProblem, final_score: FinalScore | None) -> None:
        self.problem, self.final_score = problem, final_score

    def __call__(self, bits: int) -> Entry:
        problem = self.problem
        policy = uniform_policy(problem, bits)
        costs = problem.table.evaluate(policy, problem.specs)
        accuracy, seconds = _score(policy, problem, self.final_score)
        return Entry(name=f"W{bits}A{bits}", kind="uniform", accuracy=accuracy, costs=costs,
                     feasible=_feasible(problem, costs), final_seconds=seconds,
                     policy=policy.to_dict())


def plot_pareto(comparison: Comparison, path: Path, title: str = "") -> Path:
    """Accuracy against the budgeted metric: strategies, uniform points, the budget line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = comparison.budget_metric
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    uniform = [e for e in comparison.uniform() if e.accuracy is not None]
    if uniform:
        ax.plot([e.costs[metric] for e in uniform], [e.accuracy for e in uniform], "o--",
                color="0.55", label="uniform WbAb")
        for e in uniform:
            ax.annotate(e.name, (e.costs[metric], e.accuracy), textcoords="offset points",
                        xytext=(4, -10), fontsize=7, color="0.4")
    markers = "s^vD*PXh"
    for i, e in enumerate(x for x in comparison.strategies() if x.accuracy is not None):
        ax.plot(e.costs[metric], e.accuracy, markers[i % len(markers)], markersize=9,
                label=e.name)
    ax.axvline(comparison.budget_limits[metric], color="red", linestyle=":",
               label=f"budget ({metric})")
    if comparison.float_accuracy is not None:
        ax.axhline(comparison.float_accuracy, color="black", linewidth=0.8, linestyle="-.",
                   label="float (held-out split)")
    accs = [e.accuracy for e in comparison.strategies() if e.accuracy is not None]
    every = accs + [e.accuracy for e in uniform]
    if accs and every:
        # Zoom on the strategies: very low uniform points (W2A2) would squash them together.
        top = max([*every, comparison.float_accuracy or 0.0])
        ax.set_ylim(max(min(every) - 2.0, min(accs) - 8.0), top + 1.0)
    ax.set_xlabel(f"{metric} ({comparison.units.get(metric, '')})")
    ax.set_ylabel("top-1 accuracy (%)" if comparison.quality["name"] == "top1"
                  else f"{comparison.quality['name']} score ({comparison.quality['mode']}imised;"
                  " higher is better)")
    ax.set_title(title or f"accuracy vs {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_comparison(comparison: Comparison, out_dir: Path, title: str = "") -> dict[str, Path]:
    """Write ``compare.md``, ``compare.csv``, ``compare.json`` and ``pareto.png`` atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = f"# {title}\n\n" if title else ""
    paths = {"markdown": out / "compare.md", "csv": out / "compare.csv",
             "json": out / "compare.json", "plot": out / "pareto.png"}
    atomic_write_text(paths["markdown"], header + comparison.to_markdown())
    atomic_write_text(paths["csv"], comparison.to_csv())
    atomic_write_text(paths["json"], json.dumps(comparison.to_dict(), indent=2) + "\n")
    plot_pareto(comparison, paths["plot"], title)
    return paths
