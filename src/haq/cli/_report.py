"""`haq report RUN_DIR`: redraw the report of a finished (or killed) search from its files."""

from __future__ import annotations

from pathlib import Path

import typer

from haq.cli._common import console


def report(
    run_dir: Path = typer.Argument(..., help="run directory of a `haq search`"),
    out: Path | None = typer.Option(None, help="output directory [default: RUN_DIR/report]"),
) -> None:
    """Write report.md with the per-layer bit chart, search curves and cost breakdown."""
    from haq.report import report_run

    page = report_run(run_dir, out)
    console.print(f"report: {page}")
