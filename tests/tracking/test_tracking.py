"""``haq search --log mlflow|tensorboard``: a tiny search, then what was logged read back with
each backend's own reader and compared with the run's journal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import haq_user_net
from haq.errors import ConfigError
from haq.tracking import episode_scalars, open_tracker

EPISODES = 3
SEARCH = ["search", "net.py:build", "--dataset", "synthetic", "--latency", "0.6",
          "--strategy", "haq", "--episodes", str(EPISODES), "--eval-samples", "16",
          "-p", "warmup=1", "-p", "hidden=8", "--run", "r"]


@pytest.fixture(autouse=True)
def _net(tmp_path, monkeypatch):
    (tmp_path / "net.py").write_text(haq_user_net.SOURCE)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _journal(tmp_path) -> list[dict]:
    lines = (tmp_path / "r" / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.slow
def test_mlflow_logs_every_episode_the_best_policy_and_the_report(haq, tmp_path) -> None:
    mlflow = pytest.importorskip("mlflow")
    code, out = haq(*SEARCH, "--log", "mlflow")
    assert code == 0, out
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "r" / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("haq")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "r"
    journal = _journal(tmp_path)
    rewards = client.get_metric_history(run.info.run_id, "reward")
    assert [m.step for m in rewards] == list(range(EPISODES))
    assert [m.value for m in rewards] == pytest.approx([r["reward"] for r in journal])
    latency = client.get_metric_history(run.info.run_id, "cost/latency")
    assert [m.value for m in latency] == pytest.approx([r["costs"]["latency"] for r in journal])
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert run.data.metrics["best/best_accuracy"] == pytest.approx(result["best_accuracy"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"best_policy.json", "result.json"}
    (tmp_path / "copy").mkdir()
    copy = client.download_artifacts(run.info.run_id, "result.json", str(tmp_path / "copy"))
    logged = json.loads(Path(copy).read_text())
    assert logged == result and logged["command"].startswith("haq search net.py:build")


def test_tensorboard_logs_every_episode_the_best_policy_and_the_report(haq, tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, out = haq(*SEARCH, "--log", "tensorboard", "--log-dir", "tb")
    assert code == 0, out
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0}).Reload()
    journal = _journal(tmp_path)
    rewards = events.Scalars("reward")
    assert [e.step for e in rewards] == list(range(EPISODES))
    assert [e.value for e in rewards] == pytest.approx([r["reward"] for r in journal], rel=1e-6)
    accuracy = events.Scalars("accuracy")
    assert [e.value for e in accuracy] == pytest.approx([r["accuracy"] for r in journal],
                                                        rel=1e-6)
    tags = events.Tags()["tensors"]
    assert "best_policy.json/text_summary" in tags and "result.json/text_summary" in tags
    policy_text = events.Tensors("best_policy.json/text_summary")[0].tensor_proto.string_val[0]
    best = json.loads((tmp_path / "r" / "best_policy.json").read_text())
    assert json.loads(policy_text.decode()) == best


def test_a_missing_package_says_how_to_install_it(haq, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    code, out = haq(*SEARCH, "--log", "mlflow")
    assert code == 2 and "logging to mlflow needs the mlflow package: pip install " \
                         "'haq[track]'" in out, out
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--log", "wandb"], "unknown --log 'wandb'; choose one of mlflow, tensorboard"),
    (["--log-dir", "tb"], "--log-uri and --log-dir need --log mlflow or --log tensorboard"),
    (["--log", "tensorboard", "--log-uri", "sqlite:///x.db"], "--log-uri is for --log mlflow"),
])
def test_log_option_mistakes_are_one_line_errors(haq, tmp_path, args, message) -> None:
    code, out = haq(*SEARCH, *args)
    assert code == 2 and message in out, out
    assert not (tmp_path / "r").exists()


def test_only_scored_episodes_become_scalars() -> None:
    assert episode_scalars({"stage": "rescore", "episode": 1, "accuracy": 3.0}) is None
    step, values = episode_scalars({"episode": 4, "episodes": 9, "state": "failed",
                                    "reward": None, "accuracy": None, "costs": {"size": 2}})
    assert step == 4 and values == {"cost/size": 2.0}


def test_the_tracker_opens_nothing_before_the_first_value(tmp_path) -> None:
    with open_tracker("tensorboard", tmp_path / "r") as tracker:
        tracker.log_event({"stage": "rescore", "done": 1})
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="--log-dir is for --log tensorboard"):
        open_tracker("mlflow", tmp_path, log_dir=tmp_path)
