import json

import numpy as np
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
        (lambda d: d.update(layers={}), "non-empty object"),
        (lambda d: d.update(layers=[["0", {"w_bits": 4, "a_bits": 4}]]), "non-empty object"),
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


@pytest.mark.parametrize(("entry", "message"), [
    ({"w_bits": 4}, r"layer '0': expected exactly \{\"w_bits\": ..., \"a_bits\": ...\} \(null "
                    r"keeps float\), got \{'w_bits': 4\}"),
    ({"a_bits": None}, "expected exactly"),
    ({}, "expected exactly"),
    (4, "expected exactly"),
])
def test_an_entry_without_both_bits_is_an_error_not_float(specs, entry, message) -> None:
    data = Policy.uniform(specs, 4, 4).to_dict()
    data["layers"]["0"] = entry
    with pytest.raises(PolicyError, match=message):
        Policy.from_dict(data)


def test_null_bits_mean_float(specs) -> None:
    data = Policy.uniform(specs, 4, 4).to_dict()
    data["layers"]["0"] = {"w_bits": None, "a_bits": 8}
    assert Policy.from_dict(data, specs)["0"] == LayerBits(None, 8)


@pytest.mark.parametrize("bits", [0, 9, -1, 4.0, "4", True, None])
def test_layer_bits_validate_on_construction(bits) -> None:
    if bits is None:
        assert LayerBits(None, None) == LayerBits(None, None)
        return
    with pytest.raises(PolicyError, match="bits"):
        LayerBits(bits, 8)
    with pytest.raises(PolicyError, match="a_bits"):
        LayerBits(8, bits)


@pytest.mark.parametrize("bits", [1, 8, np.int64(3)])
def test_layer_bits_accept_the_whole_range(bits) -> None:
    assert LayerBits(bits, bits).w_bits == int(bits)


def test_load_checks_the_file_against_the_models_layers(specs, tmp_path) -> None:
    path = tmp_path / "p.json"
    Policy({"0": LayerBits(4, 4)}, {"seed": 1}).save(path)
    assert Policy.load(path)["0"] == LayerBits(4, 4)  # no specs: the file alone
    with pytest.raises(PolicyError, match=r"no entry for layer\(s\) \['3'\]"):
        Policy.load(path, specs)
    with pytest.raises(PolicyError, match="policy file .*nope.json does not exist"):
        Policy.load(tmp_path / "nope.json")
    path.write_bytes(b'{"format": "haq-policy", "note": "caf\xe9"}')
    with pytest.raises(PolicyError, match=r"is not UTF-8 text \(invalid continuation byte at "
                                          r"byte 37\); save it as UTF-8 JSON"):
        Policy.load(path)


def test_provenance_survives_json_and_a_bad_one_is_refused(specs, tmp_path) -> None:
    policy = Policy.uniform(specs, 4, 6, seed=3, cost_model={"model": "bismo-edge"})
    assert policy.provenance == {"seed": 3, "cost_model": {"model": "bismo-edge"}}
    data = json.loads(policy.to_json())
    assert data == {"format": "haq-policy", "version": 1, "provenance": policy.provenance,
                    "layers": {"0": {"w_bits": 4, "a_bits": 6}, "3": {"w_bits": 4, "a_bits": 6}}}
    policy.save(tmp_path / "p.json")
    assert Policy.load(tmp_path / "p.json", specs).provenance == policy.provenance
    assert Policy.from_arrays(specs, [2, 3], [4, 5], seed=9).provenance == {"seed": 9}
    del data["provenance"]
    assert Policy.from_dict(data).provenance == {}
    data["provenance"] = [1]
    with pytest.raises(PolicyError, match="\"provenance\" must be a JSON object"):
        Policy.from_dict(data)


def test_arrays_summary_and_lengths(specs) -> None:
    policy = Policy.from_arrays(specs, np.array([2, 8]), [3, 1])
    assert len(policy) == 2 and policy["3"] == LayerBits(8, 1)
    assert policy.summary() == "w[2,8] a[3,1]"
    assert Policy({"0": LayerBits(None, 4), "3": LayerBits(5, None)}).summary() == "w[f,5] a[4,f]"
    with pytest.raises(PolicyError, match="got 1 weight and 2 activation bit widths for 2"):
        Policy.from_arrays(specs, [2], [3, 4])
    assert policy != Policy.uniform(specs, 8, 8) and policy != "w[2,8] a[3,1]"
    assert policy == Policy(dict(policy.layers), {"other": "provenance"})


def test_policies_are_plain_values(specs) -> None:
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        LayerBits(4, 4).w_bits = 2  # type: ignore[misc]
    policy = Policy({"0": LayerBits(4, None), "3": LayerBits(None, 2)})
    assert policy.to_json().startswith('{\n  "format": "haq-policy",\n  "version": 1,\n')
    w, a = policy.arrays(specs)
    assert w.tolist() == [4, 0] and a.tolist() == [0, 2]  # float is 0 in bit arrays


def test_an_unknown_layer_lists_the_models_layers(specs) -> None:
    many = [dataclasses_replace(specs[0], name=f"l{i}") for i in range(9)]
    with pytest.raises(PolicyError, match=r"the model's layers are \['l0', .*'l7'\] \.\.\. "):
        Policy.uniform(specs, 4, 4).validate(many)
    with pytest.raises(PolicyError, match=r"the model's layers are \['l0', .*'l7'\] \(`haq"):
        Policy.uniform(specs, 4, 4).validate(many[:8])


def dataclasses_replace(spec, **changes):
    import dataclasses

    return dataclasses.replace(spec, **changes)
