"""`haq cost`: list the cost models, and price a model under a policy on one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from haq.cli._common import console
from haq.cli._model_options import ALLOW_REUSE_HELP, INPUT_SHAPE_HELP, MODEL_HELP, choose_model
from haq.errors import CostModelError

cost_app = typer.Typer(
    help="Hardware cost models: list them, or price a model's layers under a bit policy.",
    no_args_is_help=True,
    add_completion=False,
)


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``["batch=16", "mode=textbook"]`` -> ``{"batch": "16", "mode": "textbook"}``.

    Values stay strings; the cost model converts them to each parameter's type.
    """
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CostModelError(f"--param expects KEY=VALUE (e.g. batch=16), got {pair!r}")
        params[key.strip()] = value.strip()
    return params


@cost_app.command("list")
def list_models() -> None:
    """Show every cost model with its parameters and their defaults."""
    from haq.cost import available, describe

    for name in available():
        info = describe(name)
        table = Table(title=f"[bold]{name}[/]  {info['description']}", title_justify="left",
                      show_edge=False, pad_edge=False)
        table.add_column("parameter")
        table.add_column("default")
        table.add_column("meaning")
        for p in info["params"]:
            table.add_row(p["name"], repr(p["default"]), p["help"])
        console.print(table)
        console.print()


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _bits(value: int | None) -> str:
    return "float" if value is None else str(value)


@cost_app.command("table")
def table_cmd(
    model: str = typer.Argument(..., help=MODEL_HELP),
    hardware: str = typer.Option(..., "--hardware", help="cost model (`haq cost list`)"),
    policy: Path | None = typer.Option(None, "--policy", help="policy JSON (default W8A8)"),
    per_layer: bool = typer.Option(False, "--per-layer", help="one row per layer"),
    param: list[str] = typer.Option([], "--param", "-p", help="cost-model parameter KEY=VALUE; "
                                    "repeat for several"),
    out: Path | None = typer.Option(None, "--out", help="also save the full table (.json/.csv)"),
    input_shape: str | None = typer.Option(None, help=INPUT_SHAPE_HELP + " (needed for a "
                                           "file.py model)"),
    allow_reuse: bool = typer.Option(False, "--allow-reuse", help=ALLOW_REUSE_HELP),
) -> None:
    """Price MODEL's layers on HARDWARE under a policy and print the cost with units."""
    from haq.cost import get
    from haq.policy import Policy

    specs = choose_model(model, input_shape, allow_reuse, needs_shape=True).layer_specs()
    cost_model = get(hardware, **parse_params(param))
    table = cost_model.table(specs)
    pol = Policy.load(policy, specs) if policy else Policy.uniform(specs, 8, 8)
    rows = table.per_layer(pol)
    reference = table.evaluate(Policy.uniform(specs, 8, 8))
    metrics = table.metrics

    shown = Table(title=f"{model} on {hardware} ({'policy ' + policy.name if policy else 'W8A8'})",
                  title_justify="left")
    shown.add_column("layer", no_wrap=True)
    if per_layer:
        shown.add_column("kind")
        shown.add_column("w/a", justify="right")
    for m in metrics:
        shown.add_column(f"{m} ({table.units[m]})", justify="right")
    if per_layer:
        for i, spec in enumerate(specs):
            bits = pol[spec.name]
            shown.add_row(spec.name, spec.kind, f"{_bits(bits.w_bits)}/{_bits(bits.a_bits)}",
                          *(_fmt(float(rows[m][i])) for m in metrics))
        shown.add_section()
    totals: dict[str, Any] = {m: float(rows[m].sum()) for m in metrics}
    shown.add_row("total", *(["", ""] if per_layer else []), *(_fmt(totals[m]) for m in metrics))
    shown.add_row("x W8A8", *(["", ""] if per_layer else []),
                  *(f"{totals[m] / reference[m]:.3f}" if reference[m] else "-" for m in metrics))
    console.print(shown)
    if out is not None:
        table.save(out)
        console.print(f"saved the full {len(specs)}-layer table to {out}")
