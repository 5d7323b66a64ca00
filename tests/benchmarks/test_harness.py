"""Every benchmark script takes the shared options from benchmarks/_harness.py."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py")
                 if not p.stem.startswith("_") and p.stem != "paper_summary")


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_shares_the_harness_options(script, monkeypatch, capsys) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--help"])
    module = importlib.import_module(script)
    with pytest.raises(SystemExit) as done:
        module.main()
    text = capsys.readouterr().out
    assert done.value.code == 0
    assert "--threads" in text and "--results RESULTS" in text
    assert "sys.path.insert" not in (BENCHMARKS / f"{script}.py").read_text()


def test_begin_sets_threads_and_opens_the_named_results(monkeypatch, tmp_path, capsys) -> None:
    import torch

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    harness = importlib.import_module("_harness")
    monkeypatch.setattr(harness, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(sys, "argv", ["x.py", "--threads", "1", "--results", "smoke",
                                      "--only", "v1"])
    threads = torch.get_num_threads()
    try:
        args, results = harness.begin(harness.bench_parser("Doc line.\n", "study", keyed=True))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert (args.only, results.path) == ("v1", tmp_path / "smoke.jsonl")
    assert capsys.readouterr().out.startswith("command: python x.py --threads 1")
