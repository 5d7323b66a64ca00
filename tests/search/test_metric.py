"""The user's metric drives the search; the user's Datasets/DataLoaders feed it."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import haq
from haq.errors import ConfigError
from haq.finetune import evaluate
from haq.metrics import Metric, as_metric, measure
from haq.quantize import QuantConfig, quantized_layers
from haq.search import EvalConfig

FAST = QuantConfig(weight_clip="max", act_clip="max")


def first_layer_bits(model, loader) -> float:
    """Weight bits of the first conv (32 for the float model); reads no data on purpose."""
    layers = quantized_layers(model)
    return float(layers["0"].w_bits) if layers else 32.0


def fewest_first_bits(model, loader) -> float:
    return -first_layer_bits(model, loader)


def _search(model, data, metric, **kw):
    return haq.search(model, data, "bops", {"bops": "0.5"}, "random", episodes=10, seed=3,
                      quant_config=FAST, evaluation=EvalConfig(samples=64), metric=metric, **kw)


def _first_bits(record) -> int:
    return record["policy"]["w_bits"][0]


@pytest.mark.parametrize(("metric", "mode"), [(fewest_first_bits, "max"),
                                              (first_layer_bits, "min")])
def test_search_maximises_the_users_metric_not_top1(trained, tmp_path, metric, mode) -> None:
    model, data = trained
    run = tmp_path / "run"
    result = _search(model, data, Metric(metric, "bits0", mode), run_dir=run)
    done = [h for h in result.history if h["state"] == "complete"]
    fewest = min(_first_bits(h) for h in done)
    assert result.best.layers["0"].w_bits == fewest
    float_score = -32.0  # a score is higher-is-better in both modes: here -bits
    assert result.extra["float_accuracy"] == float_score
    for h in done:  # HAQ's reward form on the score: lambda * (score_q - score_float)
        assert h["accuracy"] == -_first_bits(h)
        assert h["reward"] == pytest.approx(0.1 * (-_first_bits(h) - float_score))
    quality = json.loads((run / "result.json").read_text())["quality"]
    sign = 1 if mode == "max" else -1
    assert quality["name"] == "bits0" and quality["mode"] == mode
    assert quality["best"] == sign * -fewest and quality["float"] == sign * -32.0
    policy = json.loads((run / "best_policy.json").read_text())
    assert policy["provenance"]["quality_metric"] == {"name": "bits0", "mode": mode, "unit": ""}
    # top-1 on the same proposals (same seed) chooses a different policy
    top1 = _search(model, data, None)
    assert [_first_bits(h) for h in top1.history] == [_first_bits(h) for h in result.history]
    assert top1.best.layers["0"].w_bits != fewest
    assert "quality_metric" not in top1.best.provenance  # top-1 runs keep their identity


def test_a_metric_returning_no_number_is_a_config_error(trained) -> None:
    model, data = trained
    with pytest.raises(ConfigError, match=r"metric nothing returned None; it must return one "
                                          "finite number"):
        _search(model, data, Metric(lambda model, loader: None, "nothing"))
    with pytest.raises(ConfigError, match="returned nan"):
        measure(model, data.heldout, lambda m, loader: float("nan"))
    with pytest.raises(ConfigError, match="unknown metric 'top5'"):
        as_metric("top5")
    with pytest.raises(ConfigError, match="applies only to your own metric"):
        as_metric(None, "min")


class _Stream(IterableDataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):
        yield from zip(self.x, self.y, strict=True)


def test_search_runs_on_an_iterable_heldout_and_a_dataloader_train(trained) -> None:
    model, data = trained
    hx, hy = data.heldout.tensors
    splits = {"train": DataLoader(data.train, batch_size=32, shuffle=True,
                                  generator=torch.Generator().manual_seed(0)),
              "heldout": _Stream(hx, hy), "test": data.test}
    result = haq.search(model, splits, "bops", {"bops": "0.5"}, "random", episodes=2,
                        quant_config=FAST, evaluation=EvalConfig(samples=50))
    # scored on the stream's first 50 samples, in its order
    assert result.extra["float_accuracy"] == evaluate(model, TensorDataset(hx[:50], hy[:50]))
    assert result.extra["float_test_accuracy"] == evaluate(model, data.test)
    assert all(h["state"] == "complete" for h in result.history)
