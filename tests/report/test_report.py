"""The report of a run directory: page, figures and numbers, from a real (tiny) search."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from haq.data import synthetic
from haq.errors import RunError
from haq.finetune import TrainConfig, train
from haq.policy import Policy
from haq.quantize import QuantConfig
from haq.report import report_run
from haq.search import search


def _tiny() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(8, 8, 3, padding=1, stride=2, groups=8), nn.ReLU(),
                             nn.Conv2d(8, 8, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 4))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    data = synthetic()
    model = _tiny()
    train(model, data.train, TrainConfig(epochs=2, lr=0.05, seed=0))
    path = tmp_path_factory.mktemp("run") / "r"
    search(model, data, "bismo-edge", {"latency": "0.6"}, "haq", episodes=6, warmup=3,
           run_dir=path, quant_config=QuantConfig(weight_clip="max", act_clip="max"))
    return path


def test_report_page_and_figures(run_dir) -> None:
    page = report_run(run_dir)
    text = page.read_text()
    for figure in ("bits.png", "curves.png", "cost.png"):
        assert (page.parent / figure).stat().st_size > 1000
        assert f"({figure})" in text
    result = json.loads((run_dir / "result.json").read_text())
    best = Policy.load(run_dir / "best_policy.json")
    # the summary and per-layer rows show the run's own numbers
    assert f"{result['costs']['latency']:.4g}" in text
    assert text.count("| `") == len(best)
    assert "| W8A8 |" in text and "| float |" in text and "| best policy |" in text


def test_report_of_a_killed_run_uses_the_journal(run_dir, tmp_path) -> None:
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("meta.json", "journal.jsonl", "cost_table.json"):
        (killed / name).write_bytes((run_dir / name).read_bytes())
    with (killed / "journal.jsonl").open("a") as handle:
        handle.write('{"episode": 99, "torn')  # a crash mid-write
    journal_before = (killed / "journal.jsonl").read_bytes()
    page = report_run(killed)
    assert "episodes journalled: 6" in page.read_text()
    assert (killed / "journal.jsonl").read_bytes() == journal_before  # reporting never edits


def test_not_a_run(tmp_path) -> None:
    with pytest.raises(RunError, match="not a haq run directory"):
        report_run(tmp_path)


def test_the_report_reads_the_journal_as_the_search_does(run_dir, tmp_path) -> None:
    from haq.runs import RunLayout

    damaged = RunLayout(tmp_path / "damaged")
    damaged.root.mkdir()
    for name in ("meta", "journal", "cost_table"):
        getattr(damaged, name).write_bytes(getattr(RunLayout(run_dir), name).read_bytes())
    lines = damaged.journal.read_text().splitlines()
    lines[2] = "not json"  # a damaged line no crash can produce: refused, never skipped
    damaged.journal.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunError, match="line 3 is not valid JSON"):
        report_run(damaged.root)


def test_run_layout_names_every_file_a_search_writes(run_dir) -> None:
    from haq.runs import BEST, COST_TABLE, JOURNAL, META, RESULT, SPECS, RunLayout

    layout = RunLayout(run_dir)
    assert (layout.meta, layout.journal, layout.best_policy) == (
        run_dir / META, run_dir / JOURNAL, run_dir / BEST)
    assert (META, JOURNAL, BEST, RESULT, SPECS, COST_TABLE) == (
        "meta.json", "journal.jsonl", "best_policy.json", "result.json", "specs.json",
        "cost_table.json")
    named = {p.name for p in (layout.meta, layout.journal, layout.checkpoint, layout.best_policy,
                              layout.specs, layout.cost_table, layout.result, layout.rescore,
                              layout.final_model, layout.report, layout.lock)}
    assert {p.name for p in run_dir.iterdir()} <= named
    assert {"meta.json", "journal.jsonl", "best_policy.json", "result.json"} <= {
        p.name for p in run_dir.iterdir()}
