"""`haq` command line. Thin: each command parses, calls the public API, renders the result."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from haq.cli._common import console, run_command
from haq.errors import HaqError

app = typer.Typer(
    name="haq",
    help="Hardware-aware mixed-precision quantization: search per-layer bit widths under "
    "latency, energy or size budgets, then fine-tune, evaluate and report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Hardware-aware mixed-precision quantization (HAQ, OHQ, HGQ) for PyTorch models."""


def _register() -> None:
    """Attach each command; one module per command group under haq/cli/."""
    from haq.cli import _compare, _cost, _demo, _hw, _models, _policy, _report, _search, _version
    from haq.cli._export import export
    from haq.cli._runs import runs_app

    app.command("demo")(_demo.demo)
    app.command("search")(_search.search)
    app.command("report")(_report.report)
    app.command("compare")(_compare.compare)
    app.command("models")(_models.models)
    app.command("specs")(_models.specs)
    app.command("train")(_models.train)
    app.command("apply")(_policy.apply)
    app.command("finetune")(_policy.finetune)
    app.add_typer(_cost.cost_app, name="cost")
    app.add_typer(_hw.hw_app, name="hw")
    app.add_typer(runs_app, name="runs")
    app.command("version")(_version.version)
    app.command("export")(export)


def main() -> None:
    _register()
    try:
        app()
    except HaqError as err:  # typed errors are the user's to fix: no traceback
        # one line, unwrapped; escaped so that text such as haq[track] is not read as markup
        console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    run_command(main)
