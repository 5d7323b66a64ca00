"""Shared fixtures: the three zoo models quantized under three policies, and a few test images."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from haq import data as hdata
from haq.models import create, example_input
from haq.policy import Policy
from haq.quantize import QuantConfig, apply_policy_
from haq.specs import extract_specs
from haq.testing import single_thread

PARITY_IMAGES = 200  # the full-split check (>= 99.9 %) is benchmarks/bench_export.py
CALIBRATION_BATCHES = 2


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # many small kernels: one thread is fastest and does not oversubscribe a shared CI box
    with single_thread():
        yield


@pytest.fixture(scope="session")
def fmnist() -> hdata.DataSplits:
    return hdata.load("fashion-mnist")


@pytest.fixture(scope="session")
def calibration(fmnist) -> list:
    train = hdata.loader(fmnist.train, batch_size=128, shuffle=True, seed=0)
    return [x for x, _ in zip(train, range(CALIBRATION_BATCHES), strict=False)]


@pytest.fixture(scope="session")
def test_batch(fmnist) -> list:
    """The first PARITY_IMAGES test images, as one (x, y) batch."""
    return [next(iter(hdata.loader(fmnist.test, batch_size=PARITY_IMAGES)))]


def make_policy(name: str, kind: str) -> tuple[Policy, QuantConfig]:
    """W8A8; a mixed policy cycling weights and inputs through 2..8 bits (ends at 8 bits); or
    that mixed policy with k-means weights."""
    specs = extract_specs(create(name), example_input(name))
    if kind == "w8a8":
        return Policy.uniform(specs, 8, 8), QuantConfig()
    last = len(specs) - 1
    w_bits = [8 if i in (0, last) else 2 + (3 * i) % 7 for i in range(len(specs))]
    a_bits = [8 if i in (0, last) else 2 + (5 * i + 1) % 7 for i in range(len(specs))]
    config = QuantConfig(weight_method="kmeans") if kind == "kmeans" else QuantConfig()
    return Policy.from_arrays(specs, w_bits, a_bits), config


_CACHE: dict[tuple[str, str], tuple[torch.nn.Module, Policy, QuantConfig]] = {}


@pytest.fixture
def quantized(calibration):
    """``quantized(model, kind)`` -> (quantized model, policy, config), built once per session."""

    def build(name: str, kind: str):
        key = (name, kind)
        if key not in _CACHE:
            policy, config = make_policy(name, kind)
            model = apply_policy_(create(name, pretrained=True), policy, calibration, config)
            _CACHE[key] = (model.eval(), policy, config)
        return _CACHE[key]

    return build
