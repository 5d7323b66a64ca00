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
from haq.policy import LayerBits, Policy
from haq.report._page import SummaryRow, write_report
from haq.specs import LayerSpec

SPECS, TABLE, RESULT = "specs.json", "cost_table.json", "result.json"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunError(f"cannot read {path} ({err}); was this run written by haq search?") from err


def _journal(run_dir: Path) -> list[dict[str, Any]]:
    """Journal records, read-only: a torn last line is skipped here, never repaired."""
    records = []
    path = run_dir / "journal.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _best_from_journal(history: list[dict[str, Any]], specs: list[LayerSpec]) -> Policy | None:
    done = [h for h in history if h.get("state") == "complete" and h.get("reward") is not None]
    if not done:
        return None
    best = max(done, key=lambda h: h["reward"])
    bits = best["policy"]
    return Policy({s.name: LayerBits(w, a)
                   for s, w, a in zip(specs, bits["w_bits"], bits["a_bits"], strict=True)})


def _rescore_notes(run_dir: Path) -> list[str]:
    """One line per re-ranked candidate (``rescore.jsonl``), if the search re-ranked."""
    path = run_dir / "rescore.jsonl"
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not entries:
        return []
    lines = [f"re-ranked the {len(entries)} best episodes after {entries[0]['steps']} recovery "
             "steps each (held-out top-1, whole split; the best policy is the winner):"]
    for e in entries:
        lines.append(f"episode {e['episode']}: reward {e['reward']:+.3f}, "
                     f"{e['episode_accuracy']:.2f}% before -> {e['accuracy']:.2f}% after recovery")
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
    if not (run_dir / "meta.json").exists():
        raise RunError(f"{run_dir} is not a haq run directory (no meta.json); pass the --run "
                       "directory of a `haq search`")
    meta = _read_json(run_dir / "meta.json")
    raw_specs = meta.get("specs") or _read_json(run_dir / SPECS)
    specs = [LayerSpec.from_dict(s) for s in raw_specs]
    table = CostTable.load(run_dir / TABLE)
    history = _journal(run_dir)
    result = _read_json(run_dir / RESULT) if (run_dir / RESULT).exists() else {}
    if (run_dir / "best_policy.json").exists():
        policy = Policy.load(run_dir / "best_policy.json", specs)
    else:
        policy = _best_from_journal(history, specs)
    if policy is None:
        raise RunError(f"{run_dir} has no finished episode yet; nothing to report")

    size = get("size").table(specs)
    rows = [SummaryRow("float", result.get("float_accuracy"),
                       {"size": size.evaluate(Policy.uniform(specs, None, None))["size"]},
                       result.get("float_test_accuracy"))]
    for name, pol, acc, test in (
            ("W8A8", Policy.uniform(specs, 8, 8), result.get("w8a8_accuracy"), None),
            ("best policy", policy, result.get("best_accuracy"), result.get("test_accuracy"))):
        costs = {**table.evaluate(pol), **size.evaluate(pol)}
        rows.append(SummaryRow(name, acc, costs, test))
    metric = result.get("metric") or _budgeted_metric(meta, table.metrics)
    notes = [f"run `{run_dir}`; strategy `{meta.get('identity', {}).get('strategy', '?')}`",
             f"budgets: {', '.join(result.get('budgets', [])) or 'see meta.json'}",
             f"episodes journalled: {len(history)}"]
    notes += _rescore_notes(run_dir)
    if result.get("command"):
        notes.append(f"command: `{result['command']}`")
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    return write_report(out, specs=specs, table=table, policy=policy, metric=metric, rows=rows,
                        history=history, title=f"haq report: {meta.get('model', run_dir.name)}",
                        notes=notes, summary_units={**table.units, **size.units})
