import json

import numpy as np
import pytest

from haq.cost import CostTable, get
from haq.errors import CostModelError, PolicyError
from haq.policy import LayerBits, Policy


def _random_table(names, metrics=("latency", "energy"), seed=0, float_ok=True) -> CostTable:
    rng = np.random.default_rng(seed)
    values = {m: rng.uniform(0.5, 10.0, size=(len(names), 9, 9)) for m in metrics}
    if not float_ok:
        for v in values.values():
            v[:, 8, :] = np.nan
            v[:, :, 8] = np.nan
    units = {"latency": "ms", "energy": "nJ", "size": "bytes"}
    return CostTable(list(names), values, {m: units[m] for m in metrics}, {"model": "random"})


def test_evaluate_is_the_sum_of_indexed_entries(tiny_specs) -> None:
    table = _random_table([s.name for s in tiny_specs])
    policy = Policy.from_arrays(tiny_specs, [8, 2, 5, 1], [3, 8, 4, 7])
    manual = sum(table.values["latency"][i, w - 1, a - 1]
                 for i, (w, a) in enumerate([(8, 3), (2, 8), (5, 4), (1, 7)]))
    assert table.evaluate(policy)["latency"] == pytest.approx(manual, rel=1e-12)
    assert table.per_layer(policy)["energy"].shape == (4,)
    assert table.evaluate(policy, tiny_specs)["energy"] == pytest.approx(
        table.per_layer(policy)["energy"].sum())


def test_evaluate_arrays_matches_one_by_one(tiny_specs) -> None:
    table = _random_table([s.name for s in tiny_specs], seed=1)
    rng = np.random.default_rng(2)
    w = rng.integers(0, 9, size=(200, 4))
    a = rng.integers(0, 9, size=(200, 4))
    totals = table.evaluate_arrays(w, a)
    assert totals["latency"].shape == (200,)
    for p in range(0, 200, 17):
        policy = Policy({s.name: LayerBits(int(w[p, i]) or None, int(a[p, i]) or None)
                         for i, s in enumerate(tiny_specs)})
        assert table.evaluate(policy)["energy"] == pytest.approx(totals["energy"][p], rel=1e-12)
    single = table.evaluate_arrays(w[0], a[0])
    assert single["latency"].shape == () and float(single["latency"]) == totals["latency"][0]


def test_views_and_metric_errors(tiny_specs) -> None:
    table = _random_table([s.name for s in tiny_specs])
    assert table.metrics == ["latency", "energy"]
    assert table.array("latency").shape == (4, 8, 8)
    assert table.full_array("latency").shape == (4, 9, 9)
    assert np.shares_memory(table.array("latency"), table.full_array("latency"))
    with pytest.raises(CostModelError, match="has no metric 'bops'.*latency, energy"):
        table.array("bops")


def test_unpriceable_float_names_the_layer(tiny_specs) -> None:
    table = _random_table([s.name for s in tiny_specs], float_ok=False)
    policy = Policy.uniform(tiny_specs, 8, 8)
    policy.layers["dw"] = LayerBits(None, 8)
    with pytest.raises(CostModelError, match="layer 'dw' at w_bits=float, a_bits=8"):
        table.evaluate(policy)
    w = np.full((3, 4), 4)
    w[2, 3] = 0
    with pytest.raises(CostModelError, match="'fc'"):
        table.evaluate_arrays(w, np.full((3, 4), 4))


def test_policy_and_array_validation(tiny_specs) -> None:
    table = _random_table([s.name for s in tiny_specs])
    with pytest.raises(PolicyError, match="missing from the policy"):
        table.evaluate(Policy({"stem": LayerBits(8, 8)}))
    with pytest.raises(PolicyError, match=r"\[\.\.\., 4\]"):
        table.evaluate_arrays(np.ones((2, 3), int), np.ones((2, 3), int))
    with pytest.raises(PolicyError, match="0 \\(float\\) or 1-8"):
        table.evaluate_arrays(np.full(4, 9), np.full(4, 8))
    with pytest.raises(CostModelError, match="shape"):
        CostTable(["a"], {"latency": np.zeros((1, 8, 8))}, {"latency": "ms"})
    with pytest.raises(CostModelError, match="no unit"):
        CostTable(["a"], {"latency": np.zeros((1, 9, 9))}, {})


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_save_load_round_trip_is_exact(tiny_specs, tmp_path, suffix) -> None:
    table = get("bitfusion-edge", cache_dir=None).table(tiny_specs)  # NaN float entries
    table.values["cycles"][0, 8, 8] = np.nan
    path = tmp_path / f"t{suffix}"
    table.save(path)
    loaded = CostTable.load(path)
    assert loaded.layer_names == table.layer_names
    assert loaded.units == table.units and loaded.source == table.source
    for m in table.metrics:
        np.testing.assert_array_equal(loaded.full_array(m), table.full_array(m))
    mixed = get("size", cache_dir=None).table(tiny_specs)  # float entries priced
    mixed.save(path)
    np.testing.assert_array_equal(CostTable.load(path).full_array("size"),
                                  mixed.full_array("size"))


def _write_csv(path, rows, units="latency=us"):
    lines = [f"# units: {units}", "layer,w_bits,a_bits,latency"]
    lines += [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _full_rows(layer, value=lambda w, a: w * a):
    return [(layer, w, a, value(w, a)) for w in range(1, 9) for a in range(1, 9)]


def test_hand_written_csv_is_converted_to_canonical_units(tmp_path) -> None:
    path = tmp_path / "mine.csv"
    _write_csv(path, _full_rows("conv") + [("conv", "float", "float", 500.0)])
    table = CostTable.load(path)
    assert table.units == {"latency": "ms"}
    assert table.array("latency")[0, 3, 1] == pytest.approx(8 / 1000)  # 8 us -> 0.008 ms
    assert table.full_array("latency")[0, 8, 8] == pytest.approx(0.5)
    assert np.isnan(table.full_array("latency")[0, 8, 0])


@pytest.mark.parametrize(("rows", "message"), [
    (_full_rows("conv")[:-1], "1 missing latency entry.*w_bits=8 a_bits=8"),
    ([*_full_rows("conv")[:-1], ("conv", 8, 8, -1)], "must be a finite number >= 0"),
    ([*_full_rows("conv"), ("conv", 9, 1, 1)], "bits must be 1-8 or 'float'"),
    ([*_full_rows("conv"), ("conv", 1, 1, 1)], "duplicate entry"),
    ([*_full_rows("conv")[:-1], ("conv", 8, 8, "fast")], "is not a number"),
])
def test_bad_user_csv_is_refused(tmp_path, rows, message) -> None:
    path = tmp_path / "bad.csv"
    _write_csv(path, rows)
    with pytest.raises(CostModelError, match=message):
        CostTable.load(path)


def test_bad_files_are_refused(tmp_path) -> None:
    with pytest.raises(CostModelError, match="does not exist"):
        CostTable.load(tmp_path / "nope.json")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(CostModelError, match=".json or .csv"):
        CostTable.load(tmp_path / "t.txt")
    (tmp_path / "t.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CostModelError, match="not a haq cost table"):
        CostTable.load(tmp_path / "t.json")
    _write_csv(tmp_path / "u.csv", _full_rows("conv"), units="latency=mJ")
    with pytest.raises(CostModelError, match="cannot convert 'mJ' to 'ms'"):
        CostTable.load(tmp_path / "u.csv")


@pytest.mark.parametrize("units_line", [
    "# units latency=us",  # no colon
    "# Units: latency=us",  # capital
    "# units: latency us",  # no '='
    "# units: latency=",  # no unit
    "# unit: latency=us",  # singular
])
def test_a_units_line_not_read_exactly_is_an_error_never_the_default_unit(
        tmp_path, units_line) -> None:
    path = tmp_path / "mine.csv"
    _write_csv(path, _full_rows("conv"))
    path.write_text(path.read_text().replace("# units: latency=us", units_line))
    with pytest.raises(CostModelError, match="cannot read the units line .* exactly as "
                                             "'# units: latency=ms, energy=nJ'"):
        CostTable.load(path)


def test_units_for_a_metric_the_table_lacks_or_two_units_lines_are_errors(tmp_path) -> None:
    path = tmp_path / "mine.csv"
    _write_csv(path, _full_rows("conv"), units="latncy=us")
    with pytest.raises(CostModelError, match="units are declared for latncy, which the table "
                                             "has no values for"):
        CostTable.load(path)
    _write_csv(path, _full_rows("conv"))
    path.write_text("# units: latency=ms\n" + path.read_text())
    with pytest.raises(CostModelError, match="more than one units line"):
        CostTable.load(path)
    _write_csv(path, _full_rows("conv"), units="latency = us")  # spaces around '=' are fine
    assert CostTable.load(path).values["latency"][0, 1, 1] == pytest.approx(4e-3)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_a_table_that_is_not_utf8_is_a_cost_model_error(tmp_path, suffix) -> None:
    path = tmp_path / f"latin1{suffix}"
    path.write_bytes("# units: latency=µs\n".encode("latin-1"))
    with pytest.raises(CostModelError, match=r"is not UTF-8 text \(invalid start byte at byte "
                                             r"17\); save the table as UTF-8"):
        CostTable.load(path)
