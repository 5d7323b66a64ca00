"""`haq demo`: the built-in default job — a real HAQ search end to end, then its report."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from haq.cli._common import console

DEMO_MODEL, DEMO_HARDWARE, DEMO_BUDGET = "mobilenetv1-fmnist", "bismo-edge", "0.5"


def demo(
    episodes: int = typer.Option(60, help="search episodes (the first 20 are random warm-up)"),
    finetune_steps: int = typer.Option(150, help="fine-tune steps (batch 128) of the best policy"),
    rescore_top: int = typer.Option(0, help="re-rank the N best policies after a short recovery"),
    rescore_steps: int = typer.Option(40, help="recovery steps per re-ranked policy (0 = "
                                       "score on the whole held-out split, no recovery)"),
    run: Path | None = typer.Option(None, help="run directory [default: runs/demo-TIMESTAMP]"),
    seed: int = typer.Option(0, help="every random choice derives from it"),
    threads: int = typer.Option(2, help="torch CPU threads"),
) -> None:
    """Search MobileNet-V1/Fashion-MNIST bits for 0.5x W8A8 latency on BISMO edge, then report."""
    import torch

    from haq.cli._search import _bar, _on_event, heldout_line
    from haq.cost import METRIC_UNITS
    from haq.report import report_run
    from haq.search import FinalConfig, RescoreConfig, search

    torch.set_num_threads(threads)
    run_dir = run or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    console.print(f"[bold]haq demo[/]: {DEMO_MODEL} on {DEMO_HARDWARE}, latency <= "
                  f"{DEMO_BUDGET} x W8A8, {episodes} episodes, run directory {run_dir}")
    started = time.perf_counter()
    with _bar() as bar:
        task = bar.add_task("search", total=episodes, status="starting")
        progress = _on_event(bar, task, dict(METRIC_UNITS))
        result = search(DEMO_MODEL, "fashion-mnist", DEMO_HARDWARE, {"latency": DEMO_BUDGET},
                        "haq", episodes=episodes, seed=seed, run_dir=run_dir,
                        final=FinalConfig(epochs=1, steps=finetune_steps),
                        rescore=RescoreConfig(rescore_top, rescore_steps), progress=progress)
    console.print(f"best policy  {result.best.summary()}")
    console.print(heldout_line(result))
    console.print(f"latency  {result.costs['latency']:.4g} ms")
    if "test_accuracy" in result.extra:
        console.print(f"test top-1 after {finetune_steps} fine-tune steps: "
                      f"{result.extra['test_accuracy']:.2f}% (float "
                      f"{result.extra['float_test_accuracy']:.2f}%)")
    page = report_run(run_dir)
    console.print(f"done in {(time.perf_counter() - started) / 60:.1f} min; report: {page}")
