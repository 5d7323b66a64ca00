"""``haq.device``: names resolved and checked up front; the loops follow the model's device,
and naming the CPU explicitly changes no number."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import haq
from haq.data import synthetic
from haq.device import model_device, resolve_device, to_device
from haq.errors import ConfigError
from haq.finetune import TrainConfig, evaluate, train
from haq.search import EvalConfig, FinalConfig, RescoreConfig

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def _net() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.Flatten(), nn.Linear(4 * 64, 4))


def test_names_resolve_and_auto_follows_availability() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected and resolve_device(None).type == expected


@pytest.mark.parametrize(("name", "message"), [
    ("gpu", "unknown device 'gpu'; choose one of auto, cpu, cuda"),
    ("meta", "device 'meta' is not supported"),
])
def test_unknown_devices_are_config_errors(name, message) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_device(name)


@NO_CUDA
def test_cuda_without_cuda_says_what_to_do() -> None:
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match="no CUDA device usable by torch; use --device "
                                              "cpu"):
            resolve_device(name)


def test_model_device_and_batches() -> None:
    assert model_device(_net()) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")  # stateless
    x, y = torch.ones(2), torch.zeros(2)
    moved = to_device((x, y, "label"), torch.device("cpu"))
    assert isinstance(moved, tuple) and moved[0] is x and moved[2] == "label"


def test_explicit_cpu_trains_and_scores_exactly_as_the_default() -> None:
    data = synthetic()
    default, explicit = _net(), _net()
    config = TrainConfig(epochs=2, lr=0.05, seed=0)
    history = train(default, data.train, config)
    history_cpu = train(explicit, data.train, TrainConfig(epochs=2, lr=0.05, seed=0,
                                                          device="cpu"))
    assert history["loss"] == history_cpu["loss"]
    assert history["train_accuracy"] == history_cpu["train_accuracy"]
    for key, value in default.state_dict().items():
        assert torch.equal(value, explicit.state_dict()[key]), key
    assert evaluate(default, data.test) == evaluate(default, data.test, device="cpu")


def test_a_diverging_loss_is_caught_without_a_progress_callback() -> None:
    data = synthetic()
    net = _net()
    with torch.no_grad():
        net[-1].weight.fill_(float("nan"))
    with pytest.raises(ConfigError, match=r"training diverged: loss is nan in epoch 1"):
        train(net, data.train, TrainConfig(steps=3, lr=0.05))


def test_search_on_explicit_cpu_matches_the_default(tmp_path) -> None:
    data = synthetic()
    model = _net()
    train(model, data.train, TrainConfig(epochs=2, lr=0.05, seed=0))
    runs = {}
    for name, device in (("default", {}), ("cpu", {"device": "cpu"})):
        runs[name] = haq.search(copy.deepcopy(model), data, "bops", {"bops": "0.5"}, "random",
                                episodes=3, evaluation=EvalConfig(samples=64, finetune_steps=2),
                                rescore=RescoreConfig(top=1, steps=2),
                                final=FinalConfig(epochs=1, steps=2), seed=0,
                                run_dir=tmp_path / name, **device)
    default, cpu = runs["default"], runs["cpu"]
    assert [(h["reward"], h["accuracy"]) for h in default.history] == \
        [(h["reward"], h["accuracy"]) for h in cpu.history]
    assert default.best.layers == cpu.best.layers
    assert default.extra["test_accuracy"] == cpu.extra["test_accuracy"]
    assert default.extra["device"] == cpu.extra["device"] == str(resolve_device("auto"))
    assert '"device": "cpu"' in (tmp_path / "cpu" / "result.json").read_text()


@NO_CUDA
def test_search_refuses_cuda_before_writing_anything(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no CUDA device"):
        haq.search(_net(), synthetic(), "bops", {"bops": "0.5"}, "random", episodes=1,
                   run_dir=tmp_path / "r", device="cuda")
    assert not (tmp_path / "r").exists()


def test_cpu_only_work_gets_a_cpu_copy_and_leaves_the_model_alone(monkeypatch) -> None:
    import haq.device

    net = _net()
    assert haq.device.on_cpu(net) is net  # already on the CPU: no copy
    # a model reported elsewhere (no GPU here to put it on) gets a copy with the same weights
    monkeypatch.setattr(haq.device, "model_device", lambda model: torch.device("cuda"))
    copy_ = haq.device.on_cpu(net)
    assert copy_ is not net
    for key, value in net.state_dict().items():
        assert torch.equal(value, copy_.state_dict()[key]) and value.device.type == "cpu"
