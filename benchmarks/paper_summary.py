"""Tables and figures of the paper experiments, from benchmarks/results/paper_experiments.jsonl.gz.

Writes docs/paper-experiments.md and its figures under docs/img/. Nothing is searched or trained
here: every number comes from a finished line of the results file, so rerun this after each
(piece of a) ``paper_experiments.py`` run:

    .venv/bin/python benchmarks/paper_summary.py

Experiment 4 (specialisation) re-prices the HAQ policies found for one target on the other
targets' cost tables: a cost-table lookup, no accuracy is re-measured.
"""

from __future__ import annotations

import functools
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import haq.cost
from _harness import Results
from haq.models import create, example_input
from haq.policy import Policy
from haq.report import layer_role, plot_policy_bits
from haq.specs import extract_specs

STUDY = "paper_experiments"  # results file; its variants are the reruns (seeds, rules, recipes)
ROOT = Path(__file__).resolve().parent.parent
DOCS, IMG = ROOT / "docs", ROOT / "docs" / "img"
STRATEGIES = ("haq", "ohq", "hawq", "random", "uniform", "fixed")
# The three targets of the specialisation experiment and the metric each was searched for.
TABLE_MODELS = ("bismo-edge", "bismo-cloud", "bitfusion-edge", "size")
TARGETS = {"bismo-edge": "latency", "bismo-cloud": "latency", "bitfusion-edge": "energy"}


def load(variant: str = "") -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(experiment records, final-score cache records) of one variant of the study."""
    records = Results(STUDY, variant).records
    finals = {k: r for k, r in records.items() if k.startswith("final/")}
    rows = [r for k, r in records.items() if not k.startswith("final/")]
    return rows, finals


@functools.cache
def model_specs(model: str) -> list:
    """The zoo model's layer specs, traced once per model for the whole summary."""
    return extract_specs(create(model), example_input(model))


def row_key(r: dict[str, Any], label: str = "") -> tuple[str, str, str, str]:
    """(model, hardware, budget, strategy): one configuration of one strategy."""
    return r["model"], r["hardware"], str(r["budget_bits"]), r["strategy"] + label


def float_test_accuracy(model: str) -> float | None:
    sidecar = ROOT / "src" / "haq" / "models" / "weights" / f"{model}.json"
    return json.loads(sidecar.read_text())["test_accuracy"] if sidecar.exists() else None


def _point_order(point: str) -> tuple[int, float]:
    return (1, float(point[:-1])) if point.endswith("x") else (0, float(point))


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "not run"
    if row.get("error"):
        return "failed"
    cost = row["costs"].get(row["metric"])
    mark = "" if row.get("feasible", True) else " (over budget)"
    return f"{row['test_accuracy']:.2f} / {cost:.4g}{mark}"


def budget_table(rows: list[dict[str, Any]], experiment: str) -> str:
    """One markdown table: a line per (model, hardware, budget), a column per strategy."""
    chosen = [r for r in rows if r["experiment"] == experiment]
    if not chosen:
        return "_No finished configuration yet._\n"
    by_config: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in chosen:
        by_config[(r["model"], r["hardware"], str(r["budget_bits"]))][r["strategy"]] = r
    present = {s for v in by_config.values() for s in v}
    strategies = sorted(present, key=lambda s: (STRATEGIES.index(s.split("@")[0]), s))
    head = ["model (float test %)", "hardware", "budget", *strategies]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (model, hardware, point) in sorted(by_config, key=lambda k: (k[0], k[1],
                                                                      _point_order(k[2]))):
        cells = by_config[(model, hardware, point)]
        any_row = next(iter(cells.values()))
        label = f"{point} (= {any_row['limit']:.4g} {any_row['unit']})"
        label = ("W" if not point.endswith("x") else "") + label
        if point.endswith("x"):
            label = f"{point} W8A8 (= {any_row['limit']:.4g} {any_row['unit']})"
        float_acc = float_test_accuracy(model)
        name = f"{model} ({float_acc})" if float_acc is not None else model
        lines.append("| " + " | ".join([name, hardware, label,
                                         *[_cell(cells.get(s)) for s in strategies]]) + " |")
    return "\n".join(lines) + (
        "\n\nCells: test top-1 % after the final fine-tune / cost. `fixed` is uniform k-bit "
        "itself (the budget's reference); `uniform` is the best uniform (w, a) pair that fits, "
        "chosen on held-out before fine-tuning; `@300` = 300 episodes instead of 100.\n")


def _policy_row(rows: list[dict[str, Any]], model: str, hardware: str, point: str,
                strategy: str = "haq") -> dict[str, Any] | None:
    for r in rows:
        if row_key(r) == (model, hardware, point, strategy) and not r.get("error"):
            return r
    return None


def _table(hardware: str, specs: list) -> Any:
    name, _, mode = hardware.partition(":")
    return haq.cost.get(name, **({"mode": mode} if mode else {})).table(specs)


def specialisation(rows: list[dict[str, Any]]) -> str:
    """Paper Table 1 design: each target's HAQ policy priced on every target."""
    out = []
    models = sorted({r["model"] for r in rows})
    for model in models:
        specs = model_specs(model)
        for point in sorted({str(r["budget_bits"]) for r in rows if r["model"] == model},
                            key=_point_order):
            found = {hw: _policy_row(rows, model, hw, point) for hw in TARGETS}
            if sum(v is not None for v in found.values()) < 2:
                continue
            tables = {hw: _table(hw, specs) for hw in TARGETS}
            head = ["policy searched for", "test %", *[f"{hw} {m}" for hw, m in TARGETS.items()]]
            lines = [f"**{model}, budget = uniform {point}-bit cost on the searched target**\n",
                     "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for hw, row in found.items():
                if row is None:
                    continue
                policy = Policy.from_dict(row["policy"])
                costs = [tables[t].evaluate(policy)[m] for t, m in TARGETS.items()]
                units = [tables[t].units[m] for t, m in TARGETS.items()]
                lines.append("| " + " | ".join(
                    [hw, f"{row['test_accuracy']:.2f}",
                     *[f"{c:.4g} {u}" for c, u in zip(costs, units, strict=True)]]) + " |")
            out.append("\n".join(lines) + "\n")
            out.append(edge_cloud(model, point, specs, found["bismo-edge"],
                                  found["bismo-cloud"], "BISMO `haq` mode, 100 episodes"))
            textbook = [_policy_row(rows, model, f"{hw}:textbook", point, "haq@300")
                        for hw in ("bismo-edge", "bismo-cloud")]
            out.append(edge_cloud(model, point, specs, *textbook,
                                  "BISMO `textbook` mode, 300 episodes"))
        # The cost models do not depend on the budget: one table per model.
        out.append(depthwise_costs(model, specs))
    return "\n".join(out) if out else "_Needs HAQ results on at least two targets._\n"


def edge_cloud(model: str, point: str, specs: list, edge: dict[str, Any] | None,
               cloud: dict[str, Any] | None, label: str) -> str:
    """The per-layer bit plots for edge and cloud, and the depthwise activation-bit check."""
    if edge is None or cloud is None:
        return ""
    text = [f"*Edge vs cloud, {label}:*\n"]
    means = {}
    for side, row in (("edge", edge), ("cloud", cloud)):
        policy = Policy.from_dict(row["policy"])
        hw = row["hardware"]
        name = f"paper_bits_{model}_{hw.replace(':', '-')}_{point}.png"
        plot_policy_bits(specs, policy, IMG / name,
                         title=f"{row['strategy']} {model}, {hw}, budget {point}")
        text.append(f"![{hw}](img/{name})")
        for role in ("depthwise", "pointwise"):
            layers = [s for s in specs if layer_role(s) == role]
            if layers:
                means[(side, role)] = (statistics.mean(policy[s.name].a_bits or 32
                                                       for s in layers),
                                       statistics.mean(policy[s.name].w_bits or 32
                                                       for s in layers))
    lines = ["| layers | edge a-bits | cloud a-bits | edge w-bits | cloud w-bits |",
             "|---|---|---|---|---|"]
    for role in ("depthwise", "pointwise"):
        if ("edge", role) in means:
            (ea, ew), (ca, cw) = means[("edge", role)], means[("cloud", role)]
            lines.append(f"| {role} (mean) | {ea:.2f} | {ca:.2f} | {ew:.2f} | {cw:.2f} |")
    verdict = ""
    if ("edge", "depthwise") in means:
        ea, ca = means[("edge", "depthwise")][0], means[("cloud", "depthwise")][0]
        # Half a bit on average is one bit in every second layer: less is within run-to-run noise.
        if abs(ea - ca) < 0.5:
            holds = "not observed (no clear difference)"
        else:
            holds = "holds" if ea < ca else "reversed"
        verdict = (f"\nPaper finding (edge depthwise layers get fewer activation bits than on "
                   f"the cloud): **{holds}** here (edge {ea:.2f} vs cloud {ca:.2f} mean "
                   "bits).\n")
    return "\n".join(text) + "\n\n" + "\n".join(lines) + "\n" + verdict


def depthwise_costs(model: str, specs: list) -> str:
    """What each BISMO variant charges depthwise layers: why the finding can or cannot hold."""
    dw = [i for i, s in enumerate(specs) if layer_role(s) == "depthwise"]
    pw = [i for i, s in enumerate(specs) if layer_role(s) == "pointwise"]
    lines = [f"*What the cost models charge ({model}, shares of the W8A8 latency):*\n",
             "| cost model | depthwise share | dw a 8->4 saves | dw w 8->4 saves | "
             "pointwise a 8->4 saves |", "|---|---|---|---|---|"]
    for hw in ("bismo-edge", "bismo-cloud", "bismo-edge:textbook", "bismo-cloud:textbook"):
        v = _table(hw, specs).full_array("latency")
        total = v[:, 7, 7].sum()
        lines.append(f"| {hw} | {v[dw, 7, 7].sum() / total:.2f} | "
                     f"{(v[dw, 7, 7] - v[dw, 7, 3]).sum() / total:.2f} | "
                     f"{(v[dw, 7, 7] - v[dw, 3, 7]).sum() / total:.2f} | "
                     f"{(v[pw, 7, 7] - v[pw, 7, 3]).sum() / total:.2f} |")
    return "\n".join(lines) + "\n"


def search_cost(rows: list[dict[str, Any]], finals: dict[str, dict[str, Any]]) -> str:
    """Experiment 6: seconds per evaluation and per search, per model and strategy."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if not r.get("error") and r.get("search_seconds") is not None and r["strategy"] != "fixed":
            by[(r["model"], r["strategy"])].append(r)
    # ohq/hawq score one policy (their ILP answer); their time is the sensitivity analysis
    lines = ["| model | strategy | searches | policies scored (median) | search s (median) | "
             "s / scored policy |", "|---|---|---|---|---|---|"]
    for (model, strategy), group in sorted(by.items()):
        evals = statistics.median(r["evaluations"] or 0 for r in group)
        secs = statistics.median(r["search_seconds"] for r in group)
        per = f"{secs / evals:.2f}" if evals else "-"
        lines.append(f"| {model} | {strategy} | {len(group)} | {evals:.0f} | {secs:.1f} | "
                     f"{per} |")
    lines += ["", "Cost-table builds for the searched models (cold: no disk cache; this run):", "",
              "| model | " + " | ".join(TABLE_MODELS) + " |",
              "|---|" + "---|" * len(TABLE_MODELS)]
    for model in sorted({r["model"] for r in rows}):
        specs = model_specs(model)
        cells = []
        for hw in TABLE_MODELS:
            start = time.perf_counter()
            haq.cost.get(hw, cache_dir=None).table(specs)
            cells.append(f"{(time.perf_counter() - start) * 1e3:.0f} ms")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    fine = [r["seconds"] for r in finals.values()]
    tail = (f"\nFinal fine-tune + test scoring: {len(fine)} distinct policies, median "
            f"{statistics.median(fine):.0f} s each.\n") if fine else ""
    return "\n".join(lines) + "\n" + tail


def size_roles(rows: list[dict[str, Any]]) -> str:
    """The paper's size finding: depthwise and small layers keep more bits than big ones."""
    lines = ["| model | budget | first conv | depthwise | pointwise | classifier |",
             "|---|---|---|---|---|---|"]
    for r in sorted((r for r in rows if r["experiment"] == "size" and r["strategy"] == "haq"
                     and not r.get("error")), key=lambda r: (r["model"], r["budget_bits"])):
        specs = model_specs(r["model"])
        policy = Policy.from_dict(r["policy"])
        by_role: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for s in specs:
            by_role[layer_role(s)].append((policy[s.name].w_bits or 32, s.params))
        cells = []
        for role in ("conv", "depthwise", "pointwise", "linear"):
            bits = by_role.get(role, [])
            weighted = sum(b * p for b, p in bits) / max(1, sum(p for _, p in bits))
            cells.append(f"{statistics.mean(b for b, _ in bits):.2f} ({weighted:.2f})"
                         if bits else "")
        lines.append(f"| {r['model']} | W{r['budget_bits']} | " + " | ".join(cells) + " |")
    return ("\n".join(lines) + "\n\nMean k-means weight bits of HAQ's size policies by layer "
            "role (in brackets: weighted by parameter count). Paper finding: depthwise and small "
            "layers get more bits, big pointwise and FC layers fewer.\n")


def projection_rules(rows: list[dict[str, Any]], widest: list[dict[str, Any]]) -> str:
    """Configurations rerun with the ``widest`` projection beside the main file's ``saving``."""
    if not widest:
        return "_No reruns with the widest projection yet._\n"
    main = {row_key(r): r for r in rows if not r.get("error")}
    lines = ["| model | hardware | budget | strategy | saving: held-out / test | "
             "widest: held-out / test | fixed k-bit test |", "|---|---|---|---|---|---|---|"]
    for r in sorted(widest, key=lambda r: (r["model"], r["hardware"], r["budget_bits"],
                                           r["strategy"])):
        key = row_key(r)
        old = main.get(key)
        fixed = main.get((*key[:3], "fixed")) or main.get((*key[:3], "uniform"))
        before = f"{old['heldout_accuracy']:.1f} / {old['test_accuracy']:.2f}" if old else ""
        lines.append("| " + " | ".join([
            *key, before, f"{r['heldout_accuracy']:.1f} / {r['test_accuracy']:.2f}",
            f"{fixed['test_accuracy']:.2f}" if fixed else ""]) + " |")
    return ("\n".join(lines) + "\n\nSame budgets, episodes, seed and final fine-tune; only the "
            "projection rule differs (`--projection widest --results paper_experiments_widest`)."
            " Held-out = the search's score of its best policy before the fine-tune; for 0.5x "
            "the last column is the best uniform pair.\n")


def seed_spread(rows: list[dict[str, Any]], extra: dict[str, list[dict[str, Any]]]) -> str:
    """Configurations rerun with other seeds (``--seed N --results paper_experiments_seedN``).

    The main file holds seed 0; each seed file repeats some of its configurations, so this
    table shows how much of a difference between strategies one seed can be trusted with.
    """
    runs: dict[tuple[str, ...], dict[int, float]] = defaultdict(dict)
    # (file prefix, label of its strategies, seed-0 rows); the main file used rule "saving"
    families = [("paper_experiments_seed", "", rows),
                ("paper_experiments_widest_seed", " (widest)",
                 extra.get("paper_experiments_widest", []))]
    for prefix, label, seed0 in families:
        for name, records in extra.items():
            if name.startswith(prefix):
                seed = int(name.removeprefix(prefix))
                for r in records:
                    if not r.get("error"):
                        runs[row_key(r, label)][seed] = r["test_accuracy"]
        for r in seed0:
            if row_key(r, label) in runs and not r.get("error"):
                runs[row_key(r, label)][0] = r["test_accuracy"]
    if not runs:
        return "_No seed reruns yet._\n"
    seeds = sorted({seed for by_seed in runs.values() for seed in by_seed})
    head = ["model", "hardware", "budget", "strategy", *[f"seed {s}" for s in seeds],
            "mean", "spread"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, by_seed in sorted(runs.items()):
        values = list(by_seed.values())
        cells = [f"{by_seed[s]:.2f}" if s in by_seed else "" for s in seeds]
        lines.append("| " + " | ".join([*key, *cells, f"{statistics.mean(values):.2f}",
                                        f"{max(values) - min(values):.2f}"]) + " |")
    return "\n".join(lines) + "\n\nTest top-1 % after the final fine-tune; the search " \
        "and the fine-tune both take the seed.\n"


def headline(rows: list[dict[str, Any]], widest_rows: list[dict[str, Any]],
             model: str = "mobilenetv1-fmnist", hardware: str = "bismo-edge") -> str:
    """Test accuracy against latency for every strategy at every budget: the README figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def pick(records: list[dict[str, Any]], suffix: str = "") -> list[dict[str, Any]]:
        return [{**r, "strategy": r["strategy"] + suffix} for r in records
                if (r["experiment"], r["model"], r["hardware"]) == ("latency", model, hardware)
                and not r.get("error")]

    # the main file ran haq/random with the "saving" projection; reruns with "widest" beside it
    chosen = pick(rows) + pick(widest_rows, " (widest)")
    if not chosen:
        return ""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    names = sorted({r["strategy"] for r in chosen},
                   key=lambda s: (STRATEGIES.index(s.split("@")[0].split(" ")[0]), s))
    for strategy, marker in zip(names, "o^sxDvP*hX", strict=False):
        points = sorted((r["costs"]["latency"], r["test_accuracy"]) for r in chosen
                        if r["strategy"] == strategy)
        ax.plot(*zip(*points, strict=True), marker=marker, label=strategy,
                linestyle="-" if strategy in ("haq", "uniform") else ":")
    float_acc = float_test_accuracy(model)
    if float_acc is not None:
        ax.axhline(float_acc, color="grey", linewidth=0.8, label="float")
    ax.set_xlabel(f"latency on {hardware} ({chosen[0]['unit']})")
    ax.set_ylabel("test top-1 % after the final fine-tune")
    ax.set_title(f"{model}: accuracy at equal latency budgets")
    ax.legend(fontsize=8)
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG / "paper_headline.png", dpi=110)
    plt.close(fig)
    return "![headline](img/paper_headline.png)\n"


def _seed(r: dict[str, Any]) -> int:
    return int(r.get("seed", 0))


def reranked(records: list[dict[str, Any]]) -> str:
    """The re-ranking protocol (``--results paper_experiments_v3``): projection ``widest``, the 5
    best episodes re-ranked after 50 recovery steps, final fine-tune distilled from the float
    model. Each HAQ run also scores its own best episode with the same fine-tune (ablation)."""
    cells: dict[tuple[str, str, str], dict[str, dict[int, float]]] = defaultdict(
        lambda: defaultdict(dict))
    for r in records:
        if r.get("error") or r.get("test_accuracy") is None:
            continue
        config = (r["model"], r["hardware"], str(r["budget_bits"]))
        if r["strategy"] == "fixed":
            cells[config]["fixed"][_seed(r)] = r["test_accuracy"]
            continue
        cells[config]["haq, re-ranked"][_seed(r)] = r["test_accuracy"]
        own = (r.get("rescored") or [{}])[0].get("test_accuracy")
        if own is not None:
            cells[config]["haq, best episode"][_seed(r)] = own
    if not cells:
        return "_Not run yet._\n"
    head = ["model (float test %)", "hardware", "budget", "policy", "seeds", "mean", "min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (model, hardware, point), by_name in sorted(cells.items()):
        for name in ("fixed", "haq, best episode", "haq, re-ranked"):
            by_seed = by_name.get(name)
            if not by_seed:
                continue
            values = [by_seed[s] for s in sorted(by_seed)]
            seeds = " / ".join(f"{v:.2f}" for v in values)
            lines.append(f"| {model} ({float_test_accuracy(model)}) | {hardware} | {point} | "
                         f"{name} | {seeds} | {statistics.mean(values):.2f} | "
                         f"{min(values):.2f} |")
    return "\n".join(lines) + "\n\nTest top-1 % after the same final fine-tune (100 steps, " \
        "distilled from the float model), seeds 0, 1, 2 in order; \"best episode\" is the " \
        "search's highest-reward policy, \"re-ranked\" the best of its top 5 after 50 " \
        "recovery steps each (the result `haq search --rescore-top 5` returns).\n"


def main() -> None:
    rows, finals = load()
    # reruns beside the main file: other seeds, the widest projection, a longer fine-tune
    variants = sorted({r.get("variant", "") for r in Results.all(Results(STUDY).path)} - {""})
    extra = {f"{STUDY}_{variant}": load(variant)[0] for variant in variants}
    widest = extra.get("paper_experiments_widest", [])
    IMG.mkdir(parents=True, exist_ok=True)
    commands = sorted({r["command"] for r in rows}
                      | {r["command"] for records in extra.values() for r in records})
    machines = sorted({json.dumps(r["machine"], sort_keys=True) for r in rows})
    parts = [
        "# Paper experiments at Fashion-MNIST scale\n",
        "Generated by `benchmarks/paper_summary.py` from `benchmarks/results/"
        "paper_experiments.jsonl.gz`; the reading of these numbers is in "
        "[benchmarks.md](benchmarks.md#paper-experiments). Commands that produced them:\n",
        "\n".join(f"    {c}" for c in commands) + "\n",
        "Machines: " + "; ".join(machines) + "\n",
        headline(rows, widest),
        "## 1. Latency-constrained (paper Tables 2-3 design)\n", budget_table(rows, "latency"),
        "## 2. Energy-constrained (paper Table 4 design)\n", budget_table(rows, "energy"),
        "## 3. Size-constrained, k-means weights (paper Table 5 design)\n",
        budget_table(rows, "size"), size_roles(rows),
        "## 4. Specialisation (paper Table 1 design)\n", specialisation(rows),
        "## 6. Search cost\n", search_cost(rows, finals),
        "## Projection rule: widest vs saving\n", projection_rules(rows, widest),
        "## Seed spread\n", seed_spread(rows, extra),
        "## Re-ranking and a distilled fine-tune\n",
        reranked(extra.get("paper_experiments_v3", [])),
    ]
    (DOCS / "paper-experiments.md").write_text("\n".join(parts))
    print(f"wrote {DOCS / 'paper-experiments.md'} ({len(rows)} results)")


if __name__ == "__main__":
    main()
