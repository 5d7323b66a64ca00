"""`haq hw profile` and `haq hw validate`: per-layer latency measured on this host."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from haq.cli._common import console
from haq.cli._model_options import INPUT_SHAPE_HELP, MODEL_HELP, choose_model, example_batch

hw_app = typer.Typer(help="Measure layer latency on this CPU (fp32 and int8) and check it.",
                     no_args_is_help=True)


def _model_and_input(model: str, input_shape: str | None, batch: int,
                     pretrained: bool):  # noqa: ANN202
    from haq.errors import ConfigError

    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}")
    choice = choose_model(model, input_shape, needs_shape=True)
    return choice.module(pretrained and choice.has_weights), example_batch(choice.shape, batch)


@hw_app.command("profile")
def profile_cmd(
    model: str = typer.Argument(..., help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", help="where to write the table (.json or .csv)"),
    repeats: int = typer.Option(15, help="timed runs per layer and precision (median kept)"),
    warmup: int = typer.Option(3, help="untimed runs first"),
    batch: int = typer.Option(1, help="batch size to time at"),
    engine: str | None = typer.Option(None, help="quantized engine: x86, fbgemm, onednn, "
                                      "qnnpack (default: torch's current)"),
    threads: int | None = typer.Option(None, help="intra-op threads while timing"),
    input_shape: str | None = typer.Option(None, help=INPUT_SHAPE_HELP + " (needed for a "
                                           "file.py model)"),
) -> None:
    """Time every layer of MODEL in fp32 and int8 here and write a latency table (ms)."""
    from haq.hw import profile

    net, x = _model_and_input(model, input_shape, batch, pretrained=False)
    with console.status(f"timing {model} layers ({repeats} runs each)..."):
        table = profile(net, x, repeats=repeats, warmup=warmup, engine=engine, threads=threads)
    table = table.with_source(**{"model" if ".py:" in model else "zoo_model": model})
    table.save(out)
    lat = table.full_array("latency")
    view = Table(title=f"{model} on this host (batch {batch}, engine {table.source['engine']}, "
                 f"{table.source['threads']} threads)")
    for column in ("layer", "fp32 (ms)", "int8 (ms)", "speed-up"):
        view.add_column(column, justify="left" if column == "layer" else "right")
    for name, row in zip(table.layer_names, lat, strict=True):
        fp32, int8 = float(row[8, 8]), float(row[7, 7])
        view.add_row(name, f"{fp32:.4f}", f"{int8:.4f}", f"{fp32 / int8:.2f}x")
    view.add_row("total", f"{lat[:, 8, 8].sum():.4f}", f"{lat[:, 7, 7].sum():.4f}",
                 f"{lat[:, 8, 8].sum() / lat[:, 7, 7].sum():.2f}x")
    console.print(view)
    console.print(f"wrote {out}: metric latency (ms); every integer (w, a) = int8 kernel time, "
                  "a float operand = fp32 time")


@hw_app.command("validate")
def validate_cmd(
    model: str = typer.Argument(..., help=MODEL_HELP),
    table: Path = typer.Option(..., "--table", help="latency table from `haq hw profile`"),
    policy: Path | None = typer.Option(None, "--policy", help="policy JSON (default W8A8); "
                                       "layers with integer bits run int8, float ones fp32"),
    repeats: int = typer.Option(15, help="timed runs of the whole model (median kept)"),
    batch: int = typer.Option(1, help="batch size (use the one the table was profiled at)"),
    tolerance: float = typer.Option(0.2, help="relative error called acceptable"),
    engine: str | None = typer.Option(None, help="quantized engine (as for profile)"),
    threads: int | None = typer.Option(None, help="intra-op threads while timing"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the report as JSON"),
    input_shape: str | None = typer.Option(None, help=INPUT_SHAPE_HELP + " (needed for a "
                                           "file.py model)"),
) -> None:
    """Compare the table's per-layer sum with MODEL's measured end-to-end latency."""
    from haq.cost import CostTable
    from haq.hw import validate
    from haq.policy import Policy
    from haq.runs import atomic_write_text
    from haq.specs import extract_specs

    net, x = _model_and_input(model, input_shape, batch, pretrained=True)
    loaded = CostTable.load(table)
    chosen = Policy.load(policy, extract_specs(net, x)) if policy else None
    with console.status("timing the whole model (fp32 and int8)..."):
        report = validate(net, x, loaded, chosen, repeats=repeats, tolerance=tolerance,
                          engine=engine, threads=threads)
    colour = "green" if report.within else "yellow"
    console.print(f"[{colour}]{report.summary()}[/]")
    console.print(f"int8 layers: {len(report.int8_layers)}, fp32 layers: "
                  f"{len(report.float_layers)}; engine {report.engine}, {report.threads} threads")
    for note in report.notes:
        console.print(f"  - {note}")
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report.to_dict(), indent=2) + "\n")
