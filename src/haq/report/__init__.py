"""Report: per-layer bit chart, search curves, cost breakdown vs W8A8, summary table."""

from haq.report._page import SummaryRow, write_report
from haq.report._plots import (
    layer_role,
    plot_cost_breakdown,
    plot_policy_bits,
    plot_search_curves,
)
from haq.report._run import report_run

__all__ = [
    "SummaryRow",
    "layer_role",
    "plot_cost_breakdown",
    "plot_policy_bits",
    "plot_search_curves",
    "report_run",
    "write_report",
]
