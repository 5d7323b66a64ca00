"""QuantConfig: validation names the bad value and the allowed set; dict round trip; presets."""

from __future__ import annotations

import json

import pytest

from haq.errors import ConfigError
from haq.quantize import QuantConfig


@pytest.mark.parametrize("config", [
    QuantConfig(),
    QuantConfig.paper(),
    QuantConfig.paper_kmeans(),
    QuantConfig(weight_granularity="per_tensor", weight_clip="percentile", act_clip="kl",
                kl_below_bits=6, percentile=99.5, act_signed=False, learnable_clip=False,
                kmeans_iters=7, seed=42),
])
def test_round_trip_through_json(config: QuantConfig) -> None:
    data = json.loads(json.dumps(config.to_dict()))
    assert data["version"] == 1
    assert QuantConfig.from_dict(data) == config


@pytest.mark.parametrize(("field", "value", "hint"), [
    ("weight_granularity", "per_row", "per_channel"),
    ("weight_method", "gptq", "kmeans"),
    ("weight_clip", "minmax", "'mse'"),
    ("act_clip", "entropy", "'kl'"),
    ("kl_below_bits", 1, ">= 2"),
    ("kl_below_bits", 5.0, "integer"),
    ("percentile", 0, "(0, 100]"),
    ("percentile", 100.5, "(0, 100]"),
    ("act_signed", "yes", "'auto'"),
    ("act_signed", 1, "'auto'"),
    ("learnable_clip", "true", "True or False"),
    ("kmeans_iters", 0, ">= 1"),
    ("seed", -1, ">= 0"),
    ("fold_bn", "yes", "True or False"),
    ("bias_correction", 1, "True or False"),
    ("rounding", "adaround", "'learned'"),
    ("act_clip", "output", "'mse'"),  # the output criterion is a weight clip only
])
def test_invalid_values_are_refused_with_the_allowed_set(field: str, value: object,
                                                         hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        QuantConfig(**{field: value})
    assert field in str(err.value) and hint in str(err.value)


def test_from_dict_refuses_unknown_fields_and_versions() -> None:
    with pytest.raises(ConfigError, match="unknown QuantConfig field"):
        QuantConfig.from_dict({"weight_bits": 4})
    with pytest.raises(ConfigError, match="version 2"):
        QuantConfig.from_dict({"version": 2})
    with pytest.raises(ConfigError, match="mapping"):
        QuantConfig.from_dict(["per_tensor"])  # type: ignore[arg-type]


def test_learned_rounding_needs_a_linear_grid() -> None:
    with pytest.raises(ConfigError, match="weight_method='linear'"):
        QuantConfig(weight_method="kmeans", rounding="learned")


def test_a_dict_written_before_the_ptq_fields_reads_with_their_defaults() -> None:
    old = QuantConfig().to_dict()
    for name in ("fold_bn", "bias_correction", "rounding"):
        del old[name]
    config = QuantConfig.from_dict(old)
    assert config.fold_bn and config.bias_correction and config.rounding == "nearest"
    assert config == QuantConfig()


def test_presets() -> None:
    paper = QuantConfig.preset("paper")
    assert not paper.fold_bn and not paper.bias_correction and paper.rounding == "nearest"
    assert not QuantConfig.paper_kmeans().fold_bn
    assert paper.weight_granularity == "per_tensor"
    assert paper.weight_clip == paper.act_clip == "kl" and paper.kl_below_bits == 5
    assert QuantConfig.preset("paper-kmeans").weight_method == "kmeans"
    assert QuantConfig.preset("default") == QuantConfig()
    with pytest.raises(ConfigError, match="'paper'"):
        QuantConfig.preset("fast")
