"""`haq runs repair RUN`: make a damaged run resumable again without losing whole episodes."""

from __future__ import annotations

from pathlib import Path

import typer

from haq.cli._common import console

runs_app = typer.Typer(help="Look after run directories written by `haq search`.",
                       no_args_is_help=True, add_completion=False)


@runs_app.command("repair")
def repair(run: Path = typer.Argument(..., help="run directory (`haq search --run`)")) -> None:
    """Move a cut last journal line to journal.jsonl.torn; every whole episode stays."""
    from haq.errors import RunError
    from haq.runs import JOURNAL, Journal, holds_run, run_lock

    if not holds_run(run):
        raise RunError(f"{run} is not a haq run directory (no meta.json or {JOURNAL})")
    journal = Journal(run / JOURNAL)
    with run_lock(run):  # never under a search that is still writing
        moved = journal.repair()
        kept = len(journal.read(repair=False))
    if moved:
        console.print(f"moved the cut last line to {journal.path.name}.torn; {kept} whole "
                      f"episodes kept. Continue with the same `haq search ... --run {run} "
                      "--resume`")
    else:
        console.print(f"{journal.path} is whole ({kept} episodes); nothing to repair")
