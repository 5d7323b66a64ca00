"""The report page: a markdown file beside its PNG figures, readable on GitHub or in a terminal."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from haq.policy import BitSpace, Policy
from haq.report._plots import layer_role, plot_cost_breakdown, plot_policy_bits, plot_search_curves
from haq.runs import atomic_write_text
from haq.specs import LayerSpec

if TYPE_CHECKING:
    from haq.cost import CostTable


@dataclass
class SummaryRow:
    """One line of the summary table: a named policy (or float) with its accuracy and costs."""

    name: str
    accuracy: float | None
    costs: dict[str, float] = field(default_factory=dict)
    test_accuracy: float | None = None


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}"


def _summary_table(rows: Sequence[SummaryRow], metrics: Sequence[str],
                   units: Mapping[str, str], quality: str = "acc (%)") -> list[str]:
    head = ["policy", f"held-out {quality}", f"test {quality}"] + [f"{m} ({units[m]})"
                                                                   for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.name, _fmt(row.accuracy), _fmt(row.test_accuracy)]
        cells += [_fmt(row.costs.get(m)) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _layer_table(specs: Sequence[LayerSpec], policy: Policy, cost: np.ndarray,
                 ref: np.ndarray, metric: str, unit: str) -> list[str]:
    lines = [f"| # | layer | role | w | a | {metric} ({unit}) | W8A8 | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for i, spec in enumerate(specs):
        bits = policy[spec.name]
        ratio = cost[i] / ref[i] if ref[i] else float("nan")
        lines.append(f"| {i} | `{spec.name}` | {layer_role(spec)} | {bits.w_bits or 'f'} | "
                     f"{bits.a_bits or 'f'} | {_fmt(cost[i])} | {_fmt(ref[i])} | {ratio:.2f} |")
    return lines


def write_report(out_dir: Path, *, specs: Sequence[LayerSpec], table: CostTable, policy: Policy,
                 metric: str, rows: Sequence[SummaryRow] = (),
                 history: Sequence[Mapping[str, Any]] = (), title: str = "haq search report",
                 notes: Sequence[str] = (), summary_units: Mapping[str, str] | None = None,
                 space: BitSpace | None = None, quality: str | None = None) -> Path:
    """Write ``report.md`` and its figures into ``out_dir``; return the page's path.

    Args:
        specs: the model's layers, in execution order.
        table: the cost table the policy was searched under.
        policy: the policy to report (usually the best one found).
        metric: the budgeted metric whose per-layer breakdown is drawn.
        rows: summary lines (float, W8A8, uniform baselines, the policy).
        history: journal records, for the progress curves; empty for one-shot strategies.
        notes: extra lines (provenance, commands) placed under the title.
        summary_units: metric -> unit of the summary columns (default: the table's metrics).
        space: the bits the search could choose; named on the page, and the bit chart is
            ticked at its candidates only.
        quality: how the summary's score columns are titled (default ``acc (%)``; the
            user's metric name when the search scored with one).
    """
    out_dir = Path(out_dir)
    full = Policy.uniform(specs, 8, 8)
    per_layer = table.per_layer(policy)[metric]
    reference = table.per_layer(full)[metric]
    unit = table.units[metric]
    plot_policy_bits(specs, policy, out_dir / "bits.png", space=space)
    plot_cost_breakdown(specs, per_layer, reference, metric, unit, out_dir / "cost.png")
    if space is not None:
        notes = [*notes, f"allowed bits: {space.describe()}"]
    lines = [f"# {title}", ""] + [f"- {n}" for n in notes] + [""]
    units = dict(summary_units) if summary_units is not None else dict(table.units)
    lines += ["## Summary", ""] + _summary_table(rows, list(units), units,
                                                 quality or "acc (%)") + [""]
    lines += ["## Per-layer bit widths", "",
              "Weight bits point up, input-activation bits down; colour marks the layer role "
              "(depthwise, pointwise 1x1, other conv, linear).", "", "![bits](bits.png)", ""]
    if history:
        plot_search_curves(history, metric, out_dir / "curves.png")
        lines += ["## Search progress", "", "![curves](curves.png)", ""]
    lines += [f"## Per-layer {metric} vs W8A8", "", "![cost](cost.png)", ""]
    lines += _layer_table(specs, policy, per_layer, reference, metric, unit) + [""]
    page = out_dir / "report.md"
    atomic_write_text(page, "\n".join(lines))
    return page
