import json

import numpy as np
import pytest

from haq.cost import get
from haq.cost._user import NonMonotoneCostWarning
from haq.errors import CostModelError
from haq.policy import Policy


def _entries(names, value):
    return [{"layer": n, "w_bits": w, "a_bits": a, "latency": value(i, w, a)}
            for i, n in enumerate(names) for w in range(1, 9) for a in range(1, 9)]


def _write(path, names, value=lambda i, w, a: (i + 1) * w * a, units=None):
    doc = {"format": "haq-cost-table", "version": 1, "units": units or {"latency": "ms"},
           "entries": _entries(names, value)}
    path.write_text(json.dumps(doc))
    return path


def test_user_table_is_aligned_to_the_model_order(tiny_specs, tmp_path) -> None:
    names = [s.name for s in tiny_specs]
    path = _write(tmp_path / "t.json", names[::-1])  # file lists layers in reverse
    table = get("table", path=str(path)).table(tiny_specs)
    assert table.layer_names == names
    # layer i of the file is names[::-1][i]; value (i+1)*w*a
    assert table.array("latency")[0, 1, 2] == pytest.approx(len(names) * 2 * 3)
    assert table.source["model"] == "table"
    total = table.evaluate(Policy.uniform(tiny_specs, 2, 2))["latency"]
    assert total == pytest.approx(sum(4 * (i + 1) for i in range(len(names))))


def test_user_table_with_wrong_layers_is_refused(tiny_specs, tmp_path) -> None:
    names = [s.name for s in tiny_specs]
    path = _write(tmp_path / "t.json", [*names[:-1], "head"])
    with pytest.raises(CostModelError, match=r"not in the model \['head'\].*missing.*\['fc'\]"):
        get("table", path=str(path)).table(tiny_specs)


def test_non_monotone_layers_are_named_in_a_warning(tiny_specs, tmp_path) -> None:
    names = [s.name for s in tiny_specs]
    path = _write(tmp_path / "t.json", names,
                  value=lambda i, w, a: (10 - w) if names[i] == "dw" else w * a)
    with pytest.warns(NonMonotoneCostWarning, match=r"layer\(s\) dw;"):
        get("table", path=str(path)).table(tiny_specs)


def test_monotone_table_does_not_warn(tiny_specs, tmp_path, recwarn) -> None:
    path = _write(tmp_path / "t.json", [s.name for s in tiny_specs])
    get("table", path=str(path)).table(tiny_specs)
    assert not [w for w in recwarn if issubclass(w.category, NonMonotoneCostWarning)]


def test_haq_npy_layout(tiny_specs, tmp_path) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(100, 10_000, size=(len(tiny_specs), 8, 8)).astype(np.int64)
    arr = np.sort(np.sort(arr, axis=1), axis=2)  # monotone, like a real table
    np.save(tmp_path / "lat.npy", arr)
    table = get("table", path=str(tmp_path / "lat.npy"), clock_mhz=200.0).table(tiny_specs)
    assert table.units == {"cycles": "cycles", "latency": "ms"}
    np.testing.assert_array_equal(table.array("cycles"), arr)  # [layer, w-1, a-1]
    assert table.array("latency")[1, 2, 3] == pytest.approx(arr[1, 2, 3] / 200e3)
    assert np.isnan(table.full_array("cycles")[:, 8, :]).all()
    assert get("table", path=str(tmp_path / "lat.npy")).table(tiny_specs).metrics == ["cycles"]


@pytest.mark.parametrize(("array", "message"), [
    (np.ones((4, 8, 7)), "layout"),
    (np.ones((5, 8, 8)), "has 5 layers but the model has 4"),
    (-np.ones((4, 8, 8)), "finite number >= 0"),
])
def test_bad_npy_is_refused(tiny_specs, tmp_path, array, message) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(CostModelError, match=message):
        get("table", path=str(tmp_path / "bad.npy")).table(tiny_specs)


def test_table_model_needs_an_existing_path(tiny_specs, tmp_path) -> None:
    with pytest.raises(CostModelError, match="needs path="):
        get("table")
    with pytest.raises(CostModelError, match="does not exist"):
        get("table", path=str(tmp_path / "missing.csv")).table(tiny_specs)
