"""Post-training leaderboard: every strategy at the same budgets, scored on the test split.

One row per (regime, model, budget, strategy, seed). Budgets are the cost of a uniform policy:

    size-w4 / size-w3   weights-only size of uniform 4 / 3-bit weights, activations fixed at 8
    lat-w4a4 / lat-w3a3 bismo-edge latency of uniform W4A4 / W3A3
    energy-w4a4         bitfusion-edge energy of uniform W4A4

Regime A scores the chosen policy as the quantizer leaves it (no fine-tune); regime B gives
every row the same distilled fine-tune and is run at the two latency budgets only.
Deterministic strategies (uniform, ohq, hawq) run once, the stochastic ones (random, hgq, haq)
with ``--seeds`` seeds. ``haq@300`` is haq with 300 episodes; ``haq-ilp@100/r5`` also re-ranks
the search's 5 best policies on the whole held-out split (``RescoreConfig(5, steps=0)``).
Each finished row is appended to benchmarks/results/leaderboard.jsonl at once, so the grid
resumes where it stopped and runs in parts (``--only``, ``--models``):

    OMP_NUM_THREADS=1 python benchmarks/leaderboard.py --regimes A --models mobilenetv1-fmnist
    python benchmarks/leaderboard.py --markdown          # tables from the results file
    python benchmarks/leaderboard.py --figure docs/img/leaderboard.png

``--estimate`` prints the grid's rows and a machine-time estimate without running anything.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import Results, begin, bench_parser

MODELS = ("mobilenetv1-fmnist", "mobilenetv2-fmnist", "resnet20-fmnist")
DETERMINISTIC = ("uniform", "ohq", "hawq")
STOCHASTIC = ("random", "hgq", "haq@100", "haq@300")
REGIME_B_BUDGETS = ("lat-w4a4", "lat-w3a3")


@dataclass(frozen=True)
class BudgetPoint:
    """A budget at the cost of a uniform policy on one cost model."""

    metric: str
    hardware: str
    w_bits: int
    a_bits: int | None  # None: a weights-only search with activations fixed at 8 bits


BUDGETS = {
    "size-w4": BudgetPoint("size", "size", 4, None),
    "size-w3": BudgetPoint("size", "size", 3, None),
    "lat-w4a4": BudgetPoint("latency", "bismo-edge", 4, 4),
    "lat-w3a3": BudgetPoint("latency", "bismo-edge", 3, 3),
    "energy-w4a4": BudgetPoint("energy", "bitfusion-edge", 4, 4),
}
# rough CPU seconds of one evaluation (held-out scoring of --samples images) and of the
# per-row overhead, for --estimate only; measured on the 2-core Xeon at 1,000 images
EVAL_SECONDS = {"mobilenetv1-fmnist": 2.5, "mobilenetv2-fmnist": 3.0, "resnet20-fmnist": 2.0}
EVALUATIONS = {"uniform": 30, "ohq": 60, "hawq": 120, "random": 100, "hgq": 150,
               "haq@100": 100, "haq@300": 300}


def grid(args: argparse.Namespace) -> list[tuple[str, str, str, str, int]]:
    """(regime, model, budget, strategy, seed) rows the arguments select, in run order."""
    rows = []
    for regime in args.regimes.split(","):
        budgets = [b for b in args.budgets.split(",") if regime == "A" or b in REGIME_B_BUDGETS]
        for model in args.models.split(","):
            for budget in budgets:
                for strategy in args.strategies.split(","):
                    seeds = [0] if strategy in DETERMINISTIC else range(args.seeds)
                    rows.extend((regime, model, budget, strategy, s) for s in seeds)
    return [r for r in rows if args.only is None or args.only in row_key(*r)]


def row_key(regime: str, model: str, budget: str, strategy: str, seed: int) -> str:
    return f"{regime}/{model}/{budget}/{strategy}/seed{seed}"


def build(model: str, budget_name: str, seed: int, samples: int, splits: Any) -> Any:
    """The search problem of one (model, budget, seed): the same for every strategy."""
    from haq.cost import Budget
    from haq.policy import BitSpace
    from haq.search import EvalConfig, build_problem

    point = BUDGETS[budget_name]
    space = (BitSpace(w_range=(2, 8), a_bits=(8,)) if point.a_bits is None else BitSpace())
    reference = (point.w_bits, 8 if point.a_bits is None else point.a_bits)
    budget = Budget(point.metric, 1.0, relative=True, reference=reference)
    return build_problem(model, splits, point.hardware, [budget], space=space,
                         evaluation=EvalConfig(samples=samples), seed=seed)


def run_rows(results: Results, args: argparse.Namespace, rows: list[tuple]) -> None:
    """Run the rows not in the results file; one problem per (regime, model, budget, seed)."""
    from haq.data import load
    from haq.finetune import evaluate
    from haq.search import FinalConfig, final_scorer
    from haq.search.compare import compare

    splits = load("fashion-mnist")
    groups: dict[tuple, list[tuple]] = defaultdict(list)
    for row in rows:
        if not results.done(row_key(*row)):
            groups[(row[0], row[1], row[2], row[4])].append(row)
    for (regime, model, budget, seed), todo in groups.items():
        problem = build(model, budget, seed, args.samples, splits)
        final = (FinalConfig(epochs=1, steps=args.finetune_steps, distill=1.0) if regime == "B"
                 else FinalConfig())
        score = memoised(final_scorer(problem, splits.test, final, seed=seed))
        float_test = float(evaluate(problem.model, splits.test))
        for row in todo:
            strategy = row[3]
            name, params, rescore = parse_strategy(strategy)
            start = time.perf_counter()
            entry = compare(problem, [name], final_score=score, params=params, uniform_bits=(),
                            seed=seed, rescore=rescore).entries[0]
            results.add(row_key(*row), regime=regime, model=model, budget=budget,
                        strategy=strategy, seed=seed, test_accuracy=entry.accuracy,
                        heldout_accuracy=entry.search_accuracy, costs=entry.costs,
                        feasible=entry.feasible, evaluations=entry.evaluations,
                        search_seconds=entry.search_seconds, final_seconds=entry.final_seconds,
                        policy=entry.policy, error=entry.error, samples=args.samples,
                        finetune_steps=args.finetune_steps if regime == "B" else 0,
                        float_heldout=problem.float_accuracy,
                        float_test=float_test,
                        wall_seconds=time.perf_counter() - start)
            print(row_key(*row), f"test {entry.accuracy}", entry.error or "", flush=True)


def parse_strategy(strategy: str) -> tuple[str, dict[str, Any], Any]:
    """``name[@episodes][/rTOP]`` -> (name, compare params, RescoreConfig)."""
    from haq.search import RescoreConfig

    head, _, top = strategy.partition("/r")
    name, _, count = head.partition("@")
    params = {name: {"episodes": int(count)}} if count else {}
    return name, params, RescoreConfig(int(top) if top else 0, steps=0)


def estimate(rows: list[tuple], samples: int, finetune_steps: int,
             measured: list[dict[str, Any]] | None = None) -> float:
    """Rough CPU hours of ``rows``: the mean wall seconds of finished rows of the same regime,
    model and strategy where there are some, else EVAL_SECONDS x EVALUATIONS."""
    seen: dict[tuple, list[float]] = defaultdict(list)
    for r in measured or []:
        if r.get("wall_seconds") is not None:
            seen[(r["regime"], r["model"], r["strategy"])].append(r["wall_seconds"])
    seconds = 0.0
    for regime, model, _, strategy, _ in rows:
        if seen.get((regime, model, strategy)):
            seconds += statistics.fmean(seen[(regime, model, strategy)])
            continue
        per_eval = EVAL_SECONDS[model] * samples / 1000
        seconds += EVALUATIONS.get(strategy.partition("/")[0], 100) * per_eval + 20
        seconds += finetune_steps * 0.5 if regime == "B" else 0
    return seconds / 3600


def memoised(score: Any) -> Any:
    """``score`` computed once per distinct policy (uniform points recur across strategies)."""
    import json

    seen: dict[str, float] = {}

    def cached(policy: Any) -> float:
        key = json.dumps(policy.to_dict()["layers"], sort_keys=True)
        if key not in seen:
            seen[key] = score(policy)
        return seen[key]

    return cached


def summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, spread and gap closed per (regime, model, budget, strategy)."""
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("test_accuracy") is not None:
            cells[(r["regime"], r["model"], r["budget"], r["strategy"])].append(r)
    rows = []
    for (regime, model, budget, strategy), rs in sorted(cells.items()):
        accs = [r["test_accuracy"] for r in rs]
        uniform = cells.get((regime, model, budget, "uniform"))
        base = uniform[0]["test_accuracy"] if uniform else None
        top = rs[0]["float_test"]
        mean = statistics.fmean(accs)
        # a gap under half a point is within noise: its "share closed" would mean nothing
        closed = (mean - base) / (top - base) if base is not None and top - base >= 0.5 \
            else None
        rows.append({"regime": regime, "model": model, "budget": budget, "strategy": strategy,
                     "mean": mean, "low": min(accs), "high": max(accs), "n": len(accs),
                     "search_s": statistics.fmean(r["search_seconds"] for r in rs),
                     "evaluations": statistics.fmean(r["evaluations"] for r in rs),
                     "float": top, "gap_closed": closed})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| regime | model | budget | strategy | test top-1 (mean) | range | seeds | "
             "search s | evaluations | gap closed |", "|---|---|---|---|--:|---|--:|--:|--:|--:|"]
    for r in rows:
        spread = f"{r['low']:.2f}–{r['high']:.2f}" if r["n"] > 1 else ""
        closed = f"{100 * r['gap_closed']:.0f} %" if r["gap_closed"] is not None else ""
        lines.append(f"| {r['regime']} | {r['model']} | {r['budget']} | {r['strategy']} | "
                     f"{r['mean']:.2f} | {spread} | {r['n']} | {r['search_s']:.0f} | "
                     f"{r['evaluations']:.0f} | {closed} |")
    return "\n".join(lines)


def pivot(rows: list[dict[str, Any]]) -> str:
    """One table per (regime, model): a row per budget, a column per strategy; each cell the
    mean test top-1, its range over seeds, and the mean search seconds."""
    out = []
    for regime, model in sorted({(r["regime"], r["model"]) for r in rows}):
        mine = [r for r in rows if (r["regime"], r["model"]) == (regime, model)]
        strategies = sorted({r["strategy"] for r in mine}, key=_column_order)
        out += [f"**{model}, regime {regime}** (float {mine[0]['float']:.2f} %)", "",
                "| budget | " + " | ".join(strategies) + " |",
                "|---|" + "--:|" * len(strategies)]
        for budget in [b for b in BUDGETS if any(r["budget"] == b for r in mine)]:
            cells = {r["strategy"]: r for r in mine if r["budget"] == budget}
            out.append(f"| {budget} | " + " | ".join(
                _cell(cells[s]) if s in cells else "" for s in strategies) + " |")
        out.append("")
    return "\n".join(out)


def _column_order(strategy: str) -> tuple[int, str]:
    name = strategy.partition("@")[0]
    order = ("uniform", "random", "ohq", "hawq", "hgq", "haq", "haq-ilp")
    return (order.index(name) if name in order else len(order), strategy)


def _cell(r: dict[str, Any]) -> str:
    spread = f" ({r['low']:.2f}–{r['high']:.2f})" if r["n"] > 1 else ""
    return f"{r['mean']:.2f}{spread}, {r['search_s']:.0f} s"


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """One panel per (regime, model): mean test top-1 per budget and strategy, with ranges."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["regime"], r["model"]) for r in rows})
    every = sorted({r["strategy"] for r in rows}, key=_column_order)
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(every)}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (regime, model) in zip(axes[0], panels, strict=True):
        mine = [r for r in rows if (r["regime"], r["model"]) == (regime, model)]
        budgets = [b for b in BUDGETS if any(r["budget"] == b for r in mine)]
        strategies = sorted({r["strategy"] for r in mine}, key=_column_order)
        width = 0.8 / len(strategies)
        for i, strategy in enumerate(strategies):
            xs, ys, errs = [], [], [[], []]
            for j, budget in enumerate(budgets):
                for r in mine:
                    if (r["budget"], r["strategy"]) == (budget, strategy):
                        xs.append(j + i * width)
                        ys.append(r["mean"])
                        errs[0].append(r["mean"] - r["low"])
                        errs[1].append(r["high"] - r["mean"])
            ax.bar(xs, ys, width, yerr=errs, label=strategy, color=colours[strategy])
        ax.axhline(mine[0]["float"], color="black", linestyle="--", linewidth=1, label="float")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(budgets))], budgets)
        # the axis starts 8 points under float: a collapsed uniform W3A3 runs off the bottom
        ax.set_ylim(mine[0]["float"] - 8, mine[0]["float"] + 1)
        ax.set_title(f"{model}, regime {regime}")
        ax.set_ylabel("test top-1 (%)")
        ax.legend(fontsize=6, loc="lower left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = bench_parser(__doc__, "leaderboard", keyed=True)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--budgets", default=",".join(BUDGETS))
    parser.add_argument("--strategies", default=",".join(DETERMINISTIC + STOCHASTIC),
                        help="comma-separated; haq@300 = haq with 300 episodes")
    parser.add_argument("--regimes", default="A,B", help="A = post-training, B = fine-tuned")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of stochastic strategies")
    parser.add_argument("--samples", type=int, default=500, help="held-out images per score")
    parser.add_argument("--finetune-steps", type=int, default=200, help="regime B fine-tune")
    parser.add_argument("--estimate", action="store_true", help="print the grid's cost, no run")
    parser.add_argument("--markdown", action="store_true", help="print the tables, no run")
    parser.add_argument("--pivot", action="store_true",
                        help="with --markdown: a table per model, a column per strategy")
    parser.add_argument("--figure", type=Path, default=None, help="write the figure, no run")
    args, results = begin(parser)
    rows = grid(args)
    if args.estimate:
        todo = [r for r in rows if not results.done(row_key(*r))]
        print(f"{len(rows)} rows, {len(todo)} to run, about "
              f"{estimate(todo, args.samples, args.finetune_steps, list(results)):.1f} CPU "
              "hours")
        return
    if args.markdown or args.figure:
        table = summary(list(results))
        if args.markdown:
            print(pivot(table) if args.pivot else markdown(table))
        if args.figure:
            figure(table, args.figure)
        return
    run_rows(results, args, rows)


if __name__ == "__main__":
    main()
