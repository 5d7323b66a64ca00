"""BitSpace candidate sets: validation, equivalence with ranges, JSON round trip, wording."""

from __future__ import annotations

import dataclasses

import pytest

from haq.errors import ConfigError
from haq.policy import BitSpace, LayerBits
from haq.specs import LayerSpec


def _spec(name: str) -> LayerSpec:
    return LayerSpec(name=name, index=0, kind="conv", in_channels=4, out_channels=4,
                     kernel=(3, 3), stride=(1, 1), padding=(1, 1), groups=1, in_size=(8, 8),
                     out_size=(8, 8), params=144, macs=9216)


def test_a_range_is_the_set_of_its_integers() -> None:
    assert BitSpace(w_range=(3, 6)) == BitSpace(w_bits=(6, 5, 4, 3))
    space = BitSpace()
    assert (space.w_bits, space.a_bits) == ((2, 3, 4, 5, 6, 7, 8),) * 2
    assert BitSpace((3, 6), (2, 8)).w_range == (3, 6)  # positional form still works


def test_sets_are_sorted_and_give_the_envelope_range() -> None:
    space = BitSpace(w_bits=(8, 2, 4), a_bits={4, 8})
    assert space.w_bits == (2, 4, 8) and space.w_range == (2, 8)
    assert space.a_bits == (4, 8) and space.a_range == (4, 8)
    assert space.allowed(_spec("x")) == ([2, 4, 8], [4, 8])


def test_single_activation_value_is_a_weights_only_search() -> None:
    space = BitSpace(w_bits=(2, 4, 8), a_bits=(8,))
    assert space.allowed(_spec("x")) == ([2, 4, 8], [8])
    assert space.describe() == "w {2, 4, 8}, a 8"
    assert BitSpace().describe() == "w 2-8, a 2-8"
    assert BitSpace(weights_only=True).describe() == "w 2-8, a float"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"w_bits": ()}, "at least one bit width"),
    ({"a_bits": (4, 4)}, "twice"),
    ({"w_bits": (0, 4)}, "0 bits is outside 1-8"),
    ({"w_bits": (2, 9)}, "9 bits is outside 1-8"),
    ({"w_bits": (2.5,)}, "must be integers"),
    ({"a_bits": (True,)}, "must be integers"),
    ({"w_bits": (2, 4), "w_range": (3, 8)}, "not both"),
    ({"w_range": (5, 3)}, "min <= max"),
])
def test_bad_sets_are_refused(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        BitSpace(**kwargs)


def test_replace_keeps_the_set() -> None:
    space = BitSpace(w_bits=(2, 4, 8))
    assert dataclasses.replace(space, weights_only=True).w_bits == (2, 4, 8)


@pytest.mark.parametrize("space", [
    BitSpace(),
    BitSpace(w_bits=(2, 4, 8), a_bits=(8,)),
    BitSpace(w_range=(3, 5), a_bits=(1, 8), pinned={"l0": LayerBits(8, None)}),
    BitSpace(w_bits=(4, 8), weights_only=True, fixed_a_bits=8),
])
def test_json_round_trip(space: BitSpace) -> None:
    assert BitSpace.from_dict(space.to_dict()) == space


def test_contiguous_sets_keep_the_range_form_so_old_journals_still_match() -> None:
    assert BitSpace().to_dict() == {"w_range": [2, 8], "a_range": [2, 8], "pinned": {},
                                    "weights_only": False, "fixed_a_bits": None}
    assert BitSpace(w_bits=(2, 4, 8)).to_dict()["w_bits"] == [2, 4, 8]


def test_malformed_dict_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="malformed bit space"):
        BitSpace.from_dict({"w_range": 3})
    with pytest.raises(ConfigError, match="outside 1-8"):
        BitSpace.from_dict({"w_bits": [2, 12]})
