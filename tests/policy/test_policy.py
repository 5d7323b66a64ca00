import json

import pytest
import torch
from torch import nn

from haq.errors import PolicyError
from haq.policy import BitSpace, LayerBits, Policy
from haq.specs import extract_specs


@pytest.fixture
def specs():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    return extract_specs(model, torch.randn(1, 1, 8, 8))


def test_round_trip(specs, tmp_path) -> None:
    policy = Policy({"0": LayerBits(4, 6), "3": LayerBits(2, None)}, {"seed": 3})
    path = tmp_path / "p.json"
    policy.save(path)
    loaded = Policy.load(path, specs)
    assert loaded == policy and loaded.provenance == {"seed": 3}
    w, a = loaded.arrays(specs)
    assert w.tolist() == [4, 2] and a.tolist() == [6, 0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other"), "not a haq policy"),
        (lambda d: d.update(version=99), "version 99"),
        (lambda d: d["layers"]["0"].update(w_bits=9), "layer '0' w_bits: 9 bits"),
        (lambda d: d["layers"]["0"].update(a_bits=0), "layer '0' a_bits: 0 bits"),
        (lambda d: d["layers"]["0"].update(a_bits="4"), "must be an integer"),
        (lambda d: d["layers"]["0"].update(bits=4), "expected"),
        (lambda d: d["layers"].update(nope={"w_bits": 4, "a_bits": 4}), "does not have"),
        (lambda d: d["layers"].pop("3"), "no entry for layer"),
        (lambda d: d.update(layers=[]), "non-empty object"),
    ],
)
def test_bad_files_name_the_bad_entry(specs, mutate, message) -> None:
    data = Policy.uniform(specs, 4, 4).to_dict()
    mutate(data)
    with pytest.raises(PolicyError, match=message):
        Policy.from_json(json.dumps(data), specs)


def test_not_json() -> None:
    with pytest.raises(PolicyError, match="not valid JSON"):
        Policy.from_json("{oops")


def test_bitspace_pins_ends(specs) -> None:
    space = BitSpace(w_range=(2, 6), a_range=(3, 8)).pin_ends(specs)
    assert space.allowed(specs[0]) == ([8], [8])
    mask = space.mask(specs)
    assert mask.shape == (2, 9, 9) and mask[0].sum() == 1 and mask[0, 7, 7]
    assert not space.contains(Policy.uniform(specs, 4, 4), specs)
    assert space.contains(Policy.uniform(specs, 8, 8), specs)
