"""The one policy <-> array encoding: bit arrays (0 = float) and grid indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from haq.cost import get
from haq.errors import PolicyError
from haq.policy import (
    FLOAT_BITS,
    FLOAT_INDEX,
    GRID_BITS,
    GRID_SIZE,
    MAX_BITS,
    MIN_BITS,
    BitSpace,
    LayerBits,
    Policy,
    bits_from_json,
    bits_index,
    bits_to_json,
    check_bit_arrays,
    grid_indices,
    index_bits,
    policy_arrays,
    policy_from_bits,
    policy_from_record,
    record_key,
)
from haq.specs import extract_specs


@pytest.fixture
def tiny_specs():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Flatten(),
                        nn.Linear(8 * 4 * 4, 10))
    return extract_specs(net, torch.zeros(1, 3, 8, 8))


def test_the_grid_spans_every_width_then_float() -> None:
    assert GRID_SIZE == MAX_BITS - MIN_BITS + 2 == 9
    assert GRID_BITS == (1, 2, 3, 4, 5, 6, 7, 8, None)
    assert FLOAT_INDEX == GRID_SIZE - 1 and FLOAT_BITS == 0
    assert [bits_index(b) for b in GRID_BITS] == list(range(GRID_SIZE))
    assert [index_bits(i) for i in range(GRID_SIZE)] == list(GRID_BITS)


def test_grid_indices_is_bits_index_elementwise() -> None:
    bits = np.array([[0, 1, 4], [8, 0, 2]])
    expected = np.array([[bits_index(int(b) or None) for b in row] for row in bits])
    assert np.array_equal(grid_indices(bits), expected)
    assert grid_indices(bits).tolist() == [[8, 0, 3], [7, 8, 1]]


def test_cost_tables_and_masks_share_the_grid(tiny_specs) -> None:
    table = get("bops").table(tiny_specs)
    assert table.full_array("bops").shape == (len(tiny_specs), GRID_SIZE, GRID_SIZE)
    mask = BitSpace((3, 5), (4, 4)).mask(tiny_specs)
    assert mask.shape == (len(tiny_specs), GRID_SIZE, GRID_SIZE)
    w, a = np.nonzero(mask[0])
    assert sorted({index_bits(i) for i in w}) == [3, 4, 5] and {index_bits(i) for i in a} == {4}


def test_policy_round_trips_through_arrays_and_json(tiny_specs) -> None:
    names = [s.name for s in tiny_specs]
    layers = {n: LayerBits(b, None if i == 0 else 9 - b) for i, (n, b) in
              enumerate(zip(names, range(2, 2 + len(names)), strict=True))}
    policy = Policy(layers)
    w, a = policy_arrays(policy, names)
    assert w.tolist() == [layers[n].w_bits for n in names] and a[0] == FLOAT_BITS
    assert policy_from_bits(tiny_specs, w, a, strategy="x") == policy
    assert policy_from_bits(tiny_specs, w, a, strategy="x").provenance == {"strategy": "x"}
    record = {"policy": {"w_bits": bits_to_json(w), "a_bits": bits_to_json(a)}}
    assert record["policy"]["a_bits"][0] is None  # float is null in a journal
    assert np.array_equal(bits_from_json(record["policy"]["w_bits"]), w)
    assert policy_from_record(tiny_specs, record) == policy
    assert record_key(record) == (*w.tolist(), *a.tolist())
    assert Policy.arrays(policy, tiny_specs)[0].tolist() == w.tolist()


def test_policy_arrays_names_the_disagreeing_layers(tiny_specs) -> None:
    names = [s.name for s in tiny_specs]
    partial = Policy({names[0]: LayerBits(4, 4), "ghost": LayerBits(4, 4)})
    with pytest.raises(PolicyError, match=r"unknown to the model \['ghost'\].*missing from the"
                                          rf" policy \['{names[1]}'"):
        policy_arrays(partial, names)


@pytest.mark.parametrize(("w", "a", "message"), [
    ([1, 2], [1], "shape"),
    ([1.0, 2.0, 3.0], [1, 2, 3], "integers"),
    ([1, 9, 3], [1, 2, 3], r"w_bits must be 0 \(float\) or 1-8; got values in \[1, 9\]"),
    ([1, 2, 3], [-1, 2, 3], r"a_bits must be 0"),
])
def test_check_bit_arrays_refuses_what_is_not_on_the_grid(w, a, message) -> None:
    with pytest.raises(PolicyError, match=message):
        check_bit_arrays(np.array(w), np.array(a), 3)


def test_check_bit_arrays_accepts_batches() -> None:
    w, a = check_bit_arrays(np.zeros((5, 3), dtype=np.int64), np.full((5, 3), 8), 3)
    assert w.shape == a.shape == (5, 3)


def test_the_projection_keeps_its_old_import_path() -> None:
    import haq.cost
    import haq.policy

    assert haq.policy.Projector is haq.cost.Projector
    assert haq.policy.project is haq.cost.project
    assert haq.policy.PROJECTION_RULES == haq.cost.PROJECTION_RULES == ("widest", "saving")
