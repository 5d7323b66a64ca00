"""haq.finetune: evaluate against known outputs, deterministic seeded training, QAT, config."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from haq.data import loader, synthetic
from haq.errors import ConfigError
from haq.finetune import (
    TrainConfig,
    augment_batch,
    evaluate,
    final_finetune_config,
    finetune,
    search_finetune_config,
    train,
)


class Echo(nn.Module):
    """Predicts the class stored in the first input value: outputs are known exactly."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x[:, 0].long(), self.classes).float()


def _tiny_cnn(classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Dropout(0.1), nn.Flatten(), nn.Linear(8 * 64, classes))


def _init(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _tiny_cnn()


def test_evaluate_matches_known_outputs() -> None:
    y = torch.arange(40) % 4
    x = y.float().clone()[:, None]
    x[:10, 0] = (y[:10] + 1) % 4  # the first 10 predictions are wrong: 75% correct
    data = TensorDataset(x, y)
    model = Echo().train()
    assert evaluate(model, data, batch_size=7) == pytest.approx(75.0)
    assert model.training  # mode restored
    assert evaluate(model, DataLoader(data, batch_size=16)) == pytest.approx(75.0)
    assert evaluate(model, data, max_samples=10) == pytest.approx(0.0)
    assert evaluate(model, data, max_samples=1000) == pytest.approx(75.0)
    assert evaluate(model, DataLoader(data, batch_size=16), max_samples=20) == pytest.approx(50.0)
    with pytest.raises(ConfigError, match="empty"):
        evaluate(model, TensorDataset(x[:0], y[:0]))
    with pytest.raises(ConfigError, match="Dataset or DataLoader"):
        evaluate(model, [(x, y)])  # type: ignore[arg-type]


def test_train_is_deterministic_and_learns() -> None:
    data = synthetic(seed=0)
    config = TrainConfig(lr=0.05, epochs=3, batch_size=32, seed=7, augment=True,
                         label_smoothing=0.1)
    rng_before = torch.get_rng_state()
    a, b, c = _init(0), _init(0), _init(0)
    hist_a = train(a, data.train, config, eval_data=data.heldout)
    train(b, data.train, config)
    train(c, data.train, TrainConfig(lr=0.05, epochs=3, batch_size=32, seed=8, augment=True,
                                     label_smoothing=0.1))
    assert torch.equal(torch.get_rng_state(), rng_before)  # global RNG untouched
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a[0].weight, c[0].weight)  # the seed matters
    assert hist_a["steps"] == 3 * (512 // 32) and len(hist_a["loss"]) == 3
    assert hist_a["loss"][-1] < 0.6 * hist_a["loss"][0]
    # chance is 25%; flips and shifts make random prototypes harder than the raw data
    assert hist_a["eval_accuracy"][-1] >= 80.0
    assert evaluate(a, data.test) >= 80.0


def test_steps_budget_cosine_schedule_and_callbacks() -> None:
    data = synthetic(seed=1)
    events: list[dict] = []
    calls = []
    hist = train(_init(0), data.train, TrainConfig(lr=0.1, steps=40, batch_size=64),
                 progress=events.append, after_step=lambda m: calls.append(1))
    steps = [e for e in events if e["event"] == "step"]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert hist["steps"] == 40 and len(steps) == 40 and len(calls) == 40
    assert len(epochs) == math.ceil(40 / (512 // 64)) == len(hist["loss"])
    assert steps[0]["lr"] == pytest.approx(0.1)
    lrs = [e["lr"] for e in steps]
    assert all(x >= y for x, y in zip(lrs, lrs[1:], strict=False)) and lrs[-1] < 0.001
    capped = train(_init(0), data.train, TrainConfig(epochs=2, max_batches=3, cosine=False))
    assert capped["steps"] == 6 and capped["lr"] == [0.01, 0.01]


def test_dataloader_input_and_adam() -> None:
    data = synthetic(seed=2)
    model = _init(1)
    before = evaluate(model, data.heldout)
    hist = train(model, loader(data.train, 64, shuffle=True, seed=0),
                 TrainConfig(optimizer="adam", lr=0.01, epochs=3))
    assert hist["steps"] == 3 * 8
    assert evaluate(model, data.heldout) > max(before, 80.0)


class FakeQuantLinear(nn.Module):
    """Linear layer whose weight is rounded to a grid with a straight-through gradient."""

    def __init__(self, linear: nn.Linear, step: float) -> None:
        super().__init__()
        self.inner = linear
        self.step = step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.inner.weight
        w_q = w + (torch.round(w / self.step) * self.step - w).detach()
        return nn.functional.linear(x, w_q, self.inner.bias)


def test_finetune_trains_a_straight_through_quantized_model() -> None:
    data = synthetic(seed=3, noise=3.0)  # noisy enough that the loss does not vanish
    model = _init(2)
    train(model, data.train, TrainConfig(lr=0.05, epochs=2, batch_size=32))
    model[5] = FakeQuantLinear(model[5], step=0.2)
    model[0].weight.requires_grad_(False)  # frozen parameters must stay untouched
    frozen, latent = model[0].weight.clone(), model[5].inner.weight.clone()
    quantized_before = evaluate(model, data.heldout)
    hist = finetune(model, data.train, TrainConfig(lr=0.05, epochs=3, batch_size=32))
    assert torch.equal(model[0].weight, frozen)
    assert not torch.equal(model[5].inner.weight, latent)  # gradients pass the rounding
    assert hist["loss"][-1] < 0.8 * hist["loss"][0]
    assert evaluate(model, data.heldout) >= max(quantized_before - 2.0, 85.0)


def test_bad_inputs_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lr must be > 0"):
        TrainConfig(lr=0)
    with pytest.raises(ConfigError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)
    with pytest.raises(ConfigError, match="steps"):
        TrainConfig(steps=0)
    data = synthetic(seed=0)

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.w * torch.full((x.shape[0], 4), float("nan"))

    with pytest.raises(ConfigError, match="diverged"):
        train(Broken(), data.train, TrainConfig(steps=2))
    with pytest.raises(ConfigError, match="no trainable"):
        train(Echo(), data.train, TrainConfig(steps=2))


def test_config_round_trip_and_presets() -> None:
    config = TrainConfig(lr=0.2, epochs=4, augment=True)
    assert TrainConfig.from_dict({**config.to_dict(), "dataset": "x"}) == config
    search = search_finetune_config(seed=3)
    assert search.lr == 1e-3 and search.steps == 200 and search.weight_decay == 4e-5
    assert final_finetune_config().cosine and final_finetune_config().lr == 0.01


def test_augment_crops_and_flips_like_an_oracle() -> None:
    x = torch.arange(2 * 1 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    out = augment_batch(x, torch.Generator().manual_seed(0), fill=-1.0)
    again = augment_batch(x, torch.Generator().manual_seed(0), fill=-1.0)
    assert torch.equal(out, again) and out.shape == x.shape
    padded = nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
    for i in range(2):  # every output is one of the 5x5 shifted crops, maybe mirrored
        crops = [padded[i, :, dy:dy + 28, dx:dx + 28] for dy in range(5) for dx in range(5)]
        candidates = crops + [c.flip(-1) for c in crops]
        assert any(torch.equal(out[i], c) for c in candidates)
    many = augment_batch(torch.randn(256, 1, 8, 8), torch.Generator().manual_seed(1))
    assert many.shape == (256, 1, 8, 8)


def test_distillation_follows_the_teacher_not_the_labels() -> None:
    data = synthetic(seed=0)
    teacher = _init(0)
    train(teacher, data.train, TrainConfig(lr=0.05, epochs=3, batch_size=32, seed=1))
    assert evaluate(teacher, data.test) >= 80.0
    images, labels = data.train.tensors
    wrong = TensorDataset(images, (labels + 1) % 4)  # every label off by one class
    recipe = TrainConfig(lr=0.05, epochs=3, batch_size=32, seed=2, distill=1.0,
                         temperature=2.0)
    distilled, plain = _init(1), _init(1)
    train(distilled, wrong, recipe, teacher=teacher)
    train(plain, wrong, TrainConfig(lr=0.05, epochs=3, batch_size=32, seed=2))
    assert evaluate(distilled, data.test) >= 70.0  # learned the teacher's answers
    assert evaluate(plain, data.test) <= 30.0  # learned the wrong labels
    with pytest.raises(ConfigError, match="needs a teacher"):
        train(_init(1), wrong, recipe)
    with pytest.raises(ConfigError, match="distill must be in"):
        TrainConfig(distill=1.5)


@pytest.mark.parametrize(("settings", "message"), [
    ({"epochs": 1.5}, "epochs must be an integer, got 1.5"),
    ({"steps": 10.0}, "steps must be an integer, got 10.0"),
    ({"batch_size": True}, "batch_size must be an integer, got True"),
    ({"max_batches": "4"}, "max_batches must be an integer, got '4'"),
    ({"seed": None}, "seed must be an integer, got None"),
    ({"weight_decay": float("nan")}, "weight_decay must be >= 0, got nan"),
    ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
    ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    ({"distill": 1.5}, r"distill must be in \[0, 1\], got 1.5"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"max_batches": 0}, "max_batches must be >= 1"),
])
def test_every_setting_is_checked_when_the_config_is_built(settings, message) -> None:
    with pytest.raises(ConfigError, match=f"invalid TrainConfig: {message}"):
        TrainConfig(**settings)


def test_search_checks_its_final_finetune_settings_before_any_work(monkeypatch) -> None:
    import haq
    from haq.search import EvalConfig, FinalConfig, api

    def no_work(*args, **kwargs):
        raise AssertionError("the search started before its settings were checked")

    monkeypatch.setattr(api, "build_problem", no_work)
    monkeypatch.setattr(api, "resolve_inputs", no_work)
    for settings, message in [(lambda: {"final": FinalConfig(1, distill=2.0)}, "distill"),
                              (lambda: {"final": FinalConfig(1, steps=0)}, "steps"),
                              (lambda: {"final": FinalConfig(-1)}, "epochs"),
                              (lambda: {"evaluation": EvalConfig(finetune_steps=-5)},
                               "finetune_steps")]:
        with pytest.raises(ConfigError, match=message):
            haq.search(Echo(), synthetic(), "size", {"size": "0.5"}, **settings())
