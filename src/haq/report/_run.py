"""Report a run directory: everything is read from the files a search wrote; nothing re-runs.

A run directory written by ``haq.search(run_dir=...)`` holds ``meta.json`` (with the traced
layers), ``journal.jsonl``, ``best_policy.json``, ``cost_table.json`` (the table the search was
priced with) and, once the search finished, ``result.json`` (float, W8A8 and best accuracies).
A killed run has no ``result.json`` yet; its report shows the best episode journalled so far.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from haq.errors import RunError
from haq.policy import BitSpace, Policy, policy_from_record
from haq.report._page import SummaryRow, write_report
from haq.runs import Journal, RunLayout
from haq.specs import LayerSpec


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunError(f"cannot read {path} ({err}); was this run written by haq search?") from err


def _best_from_journal(history: list[dict[str, Any]], specs: list[LayerSpec]) -> Policy | None:
    done = [h for h in history if h.get("state") == "complete" and h.get("reward") is not None]
    if not done:
        return None
    return policy_from_record(specs, max(done, key=lambda h: h["reward"]))


def _quality_values(result: dict[str, Any]) -> dict[str, Any]:
    """The summary's score cells: the metric's own values from ``quality`` when a run has it,
    else the top-1 fields of older runs."""
    quality = result.get("quality")
    if quality:
        return {k: quality.get(k) for k in ("float", "float_test", "w8a8", "best", "test")}
    return {"float": result.get("float_accuracy"), "float_test": result.get("float_test_accuracy"),
            "w8a8": result.get("w8a8_accuracy"), "best": result.get("best_accuracy"),
            "test": result.get("test_accuracy")}


def _quality_label(result: dict[str, Any]) -> str | None:
    quality = result.get("quality")
    if not quality or quality.get("name") == "top1":
        return None
    unit = f" ({quality['unit']})" if quality.get("unit") else ""
    return f"{quality['name']}{unit}"


def _rescore_notes(layout: RunLayout) -> list[str]:
    """One line per re-ranked candidate (``rescore.jsonl``), if the search re-ranked."""
    entries = Journal(layout.rescore).read(repair=False)
    if not entries:
        return []
    steps = entries[0]["steps"]
    how = f"after {steps} recovery steps each" if steps else "without recovery"
    lines = [f"re-ranked the {len(entries)} best episodes {how} (held-out top-1, whole split; "
             "the best policy is the winner):"]
    after = "after recovery" if steps else "on the whole split"
    for e in entries:
        lines.append(f"episode {e['episode']}: reward {e['reward']:+.3f}, "
                     f"{e['episode_accuracy']:.2f}% in the search -> {e['accuracy']:.2f}% {after}")
    return lines


def _budgeted_metric(meta: dict[str, Any], table_metrics: list[str]) -> str:
    for budget in meta.get("provenance_search", {}).get("budgets", []) or []:
        metric = str(budget).split()[0]
        if metric in table_metrics:
            return metric
    return "latency" if "latency" in table_metrics else table_metrics[0]


def report_run(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.md`` + figures for the run in ``run_dir``; return the page's path.

    Args:
        run_dir: a directory written by ``haq.search``.
        out_dir: where to write; ``run_dir/report`` by default.

    Raises:
        RunError: ``run_dir`` is not a haq run, or holds no finished episode yet.
    """
    from haq.cost import CostTable, get

    run_dir = Path(run_dir)
    layout = RunLayout(run_dir)
    if not layout.meta.exists():
        raise RunError(f"{run_dir} is not a haq run directory (no {layout.meta.name}); pass the "
                       "--run directory of a `haq search`")
    meta = _read_json(layout.meta)
    raw_specs = meta.get("specs") or _read_json(layout.specs)
    specs = [LayerSpec.from_dict(s) for s in raw_specs]
    table = CostTable.load(layout.cost_table)
    history = Journal(layout.journal).read(repair=False)  # read-only: never repairs a torn line
    result = _read_json(layout.result) if layout.result.exists() else {}
    policy: Policy | None
    if layout.best_policy.exists():
        policy = Policy.load(layout.best_policy, specs)
    else:
        policy = _best_from_journal(history, specs)
    if policy is None:
        raise RunError(f"{run_dir} has no finished episode yet; nothing to report")

    size = get("size").table(specs)
    scores = _quality_values(result)
    rows = [SummaryRow("float", scores["float"],
                       {"size": size.evaluate(Policy.uniform(specs, None, None))["size"]},
                       scores["float_test"])]
    for name, pol, acc, test in (
            ("W8A8", Policy.uniform(specs, 8, 8), scores["w8a8"], None),
            ("best policy", policy, scores["best"], scores["test"])):
        costs = {**table.evaluate(pol), **size.evaluate(pol)}
        rows.append(SummaryRow(name, acc, costs, test))
    metric = result.get("metric") or _budgeted_metric(meta, table.metrics)
    notes = [f"run `{run_dir}`; strategy `{meta.get('identity', {}).get('strategy', '?')}`",
             f"budgets: {', '.join(result.get('budgets', [])) or 'see meta.json'}",
             f"episodes journalled: {len(history)}"]
    notes += _rescore_notes(layout)
    quality = result.get("quality")
    if quality and quality.get("name") != "top1":
        notes.append(f"scored by the metric `{quality['name']}` ({quality['mode']}imised); the "
                     "search curves show its score (minus the value for a min metric)")
    if result.get("command"):
        notes.append(f"command: `{result['command']}`")
    space_dict = result.get("space") or meta.get("identity", {}).get("space")
    space = BitSpace.from_dict(space_dict) if space_dict else None
    out = Path(out_dir) if out_dir is not None else layout.report
    return write_report(out, specs=specs, table=table, policy=policy, metric=metric, rows=rows,
                        history=history, title=f"haq report: {meta.get('model', run_dir.name)}",
                        notes=notes, summary_units={**table.units, **size.units},
                        space=space, quality=_quality_label(result))
