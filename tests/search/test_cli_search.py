"""`haq search` on a user model file and synthetic data, through the real typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import haq_user_net
from haq.cli.__main__ import _register, app

_register()
runner = CliRunner()



def test_search_cli_runs_journals_and_refuses_to_overwrite(tmp_path) -> None:
    (tmp_path / "net.py").write_text(haq_user_net.SOURCE)
    run_dir = tmp_path / "run"
    args = ["search", f"{tmp_path / 'net.py'}:build", "--dataset", "synthetic",
            "--input-shape", "1,8,8", "--hardware", "bismo-edge", "--latency", "0.6",
            "--size", "0.5", "--strategy", "haq", "--episodes", "4", "--eval-samples", "32",
            "--seed", "1",
            "--run", str(run_dir), "-p", "warmup=2", "-p", "hidden=16"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best policy" in result.output and "latency" in result.output
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    assert [json.loads(x)["episode"] for x in lines] == [0, 1, 2, 3]
    assert json.loads((run_dir / "best_policy.json").read_text())["format"] == "haq-policy"
    summary = json.loads((run_dir / "result.json").read_text())
    assert 0.0 <= summary["test_accuracy"] <= 100.0  # post-training: no fine-tune was asked for
    assert summary["evaluations"] == len({json.dumps(json.loads(x)["policy"]) for x in lines})
    assert summary["search_seconds"] > 0
    assert "test top-1 post-training" in result.output

    again = runner.invoke(app, args)
    assert again.exit_code != 0
    assert "--resume" in str(again.exception) or "--resume" in again.output

    longer = runner.invoke(app, [*args, "--episodes", "6", "--resume"])  # the last one wins
    assert longer.exit_code == 0, longer.output
    assert len((run_dir / "journal.jsonl").read_text().splitlines()) == 6

    ranked = runner.invoke(app, [*args[:-5], str(tmp_path / "ranked"), "-p", "warmup=2", "-p",
                                 "hidden=16", "--rescore-top", "2", "--rescore-steps", "2"])
    assert ranked.exit_code == 0, ranked.output
    assert "after 2 recovery steps, best of 2 re-ranked" in " ".join(ranked.output.split())
    assert len((tmp_path / "ranked" / "rescore.jsonl").read_text().splitlines()) == 2


def test_search_cli_needs_a_budget(tmp_path) -> None:
    result = runner.invoke(app, ["search", "mobilenetv1-fmnist"])
    assert result.exit_code != 0
    assert "at least one budget" in str(result.exception)


def test_the_progress_bar_names_the_metric_and_shows_its_own_value() -> None:
    from haq.cli._search import _status
    from haq.metrics import TOP1, Metric

    loss = Metric(lambda model, batches: 0.0, "loss", "min")
    event = {"best_reward": 0.1, "best_accuracy": -0.25, "best_costs": {"latency": 1.5}}
    text = _status(event, {"latency": "ms"}, loss)
    assert "loss 0.25" in text and "latency 1.5 ms" in text and "acc" not in text
    assert "top1 91.20%" in _status({**event, "best_accuracy": 91.2}, {}, TOP1)


def test_the_help_names_the_default_strategy() -> None:
    from haq.cli._search import STRATEGY_HELP
    from haq.search import DEFAULT_STRATEGY

    assert f"[default: {DEFAULT_STRATEGY}," in STRATEGY_HELP


def test_search_without_a_strategy_runs_the_default_and_refuses_episodes(tmp_path, haq) -> None:
    from haq.search import DEFAULT_STRATEGY

    (tmp_path / "net.py").write_text(haq_user_net.SOURCE)
    args = ["search", f"{tmp_path / 'net.py'}:build", "--dataset", "synthetic",
            "--input-shape", "1,8,8", "--latency", "0.6", "--eval-samples", "32"]
    result = runner.invoke(app, [*args, "--run", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["strategy"] == DEFAULT_STRATEGY == "ohq"
    code, out = haq(*args, "--episodes", "5", "--run", str(tmp_path / "other"))
    assert code == 2 and "runs no episodes" in out
    assert not (tmp_path / "other").exists()
