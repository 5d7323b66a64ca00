"""Every cost model prices a Linear applied to N tokens as N images of a 1-token Linear."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from haq.cost import get
from haq.specs import extract_specs

TOKENS = 197  # ViT-Ti: 196 patches + the class token


@pytest.fixture(scope="module")
def specs():
    """The same Linear(64, 48) on [B, 197, 64] (token-wise) and on [B, 64] (one token)."""
    layer = nn.Linear(64, 48)
    (token_wise,) = extract_specs(layer, torch.zeros(1, TOKENS, 64))
    (single,) = extract_specs(layer, torch.zeros(1, 64))
    assert token_wise.macs == TOKENS * 64 * 48 and single.macs == 64 * 48
    assert token_wise == dataclasses.replace(single, tokens=TOKENS, macs=TOKENS * 64 * 48)
    return token_wise, single


@pytest.mark.parametrize("name", ["bismo-edge", "bismo-cloud", "bitfusion-edge",
                                  "bitfusion-cloud"])
def test_hardware_models_fold_tokens_into_the_batch(name, specs, tmp_path) -> None:
    token_wise, single = specs
    batch = get(name).params["batch"]
    per_token = get(name, cache_dir=str(tmp_path)).table([token_wise])
    as_batch = get(name, batch=batch * TOKENS, cache_dir=str(tmp_path)).table([single])
    for metric in per_token.metrics:
        np.testing.assert_allclose(per_token.values[metric], as_batch.values[metric],
                                   rtol=1e-12, err_msg=metric)
    one = get(name, cache_dir=str(tmp_path)).table([single])
    priced = np.isfinite(one.values["latency"])  # entries outside the hardware's bits are NaN
    assert priced.any()
    assert (per_token.values["latency"][priced] > one.values["latency"][priced]).all()


def test_bops_count_tokens_and_size_does_not(specs) -> None:
    token_wise, single = specs
    bops = get("bops").table([token_wise]).values["bops"][0]
    assert bops[3, 1] == pytest.approx(TOKENS * 64 * 48 * 4 * 2)  # w=4, a=2 bits
    size_t = get("size").table([token_wise]).values["size"]
    size_1 = get("size").table([single]).values["size"]
    np.testing.assert_array_equal(size_t, size_1)
