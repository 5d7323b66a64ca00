import pytest

from haq.cost import CostModel, CostTable, available, describe, get, register_cost_model
from haq.cost import bitfusion as bf
from haq.errors import CostModelError


def test_every_builtin_is_registered() -> None:
    assert set(available()) >= {"bismo-edge", "bismo-cloud", "bitfusion-edge",
                                "bitfusion-cloud", "size", "bops", "table"}


def test_presets_and_overrides() -> None:
    assert get("bismo-edge").params["batch"] == 1
    assert get("bismo-cloud").params["batch"] == 16
    assert get("bitfusion-edge").params["batch"] == 1
    assert get("bitfusion-cloud").params["batch"] == 16
    assert get("bismo-cloud", batch="4").params["batch"] == 4  # CLI strings are coerced
    assert get("bismo-edge", refetch="true", power_w="none").params["refetch"] is True
    info = describe("bitfusion-cloud")
    defaults = {p["name"]: p["default"] for p in info["params"]}
    assert defaults["batch"] == 16 and defaults["dram_bits_per_cycle"] == 4096
    assert "cache_dir" in defaults and info["description"]


@pytest.mark.parametrize(("name", "params", "message"), [
    ("nope", {}, "unknown cost model 'nope'; available: bismo-cloud"),
    ("bops", {"bach": 2}, "has no parameter.*bach.*accepts batch"),
    ("bops", {"batch": 1.5}, "must be a int"),
    ("bops", {"batch": 0}, "batch must be >= 1"),
    ("bismo-edge", {"mode": "fast"}, "must be one of haq, textbook"),
    ("bitfusion-edge", {"rows": 0}, "rows must be a positive integer"),
])
def test_bad_requests_are_refused(name, params, message) -> None:
    with pytest.raises(CostModelError, match=message):
        get(name, **params)


def test_bitfusion_tables_are_cached_by_specs_and_params(tiny_specs, tmp_path, monkeypatch
                                                         ) -> None:
    calls = []
    real = bf.search
    monkeypatch.setattr(bf, "search", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = get("bitfusion-edge", cache_dir=str(tmp_path))
    first = model.table(tiny_specs)
    built = len(calls)
    assert built > 0 and len(list(tmp_path.glob("bitfusion-edge-*.json"))) == 1
    again = get("bitfusion-edge", cache_dir=str(tmp_path)).table(tiny_specs)
    assert len(calls) == built  # served from disk
    for m in first.metrics:
        assert (again.array(m) == first.array(m)).all()
    get("bitfusion-edge", cache_dir=str(tmp_path), batch=2).table(tiny_specs)
    assert len(calls) > built and len(list(tmp_path.glob("*.json"))) == 2
    # a damaged cache entry is rebuilt, not trusted
    path = next(tmp_path.glob(f"bitfusion-edge-{model.cache_key(tiny_specs)}.json"))
    path.write_text("{broken")
    before = len(calls)
    model.table(tiny_specs)
    assert len(calls) > before and CostTable.load(path).layer_names == first.layer_names


def test_cache_dir_none_and_default_location(tiny_specs, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HAQ_CACHE_DIR", str(tmp_path / "root"))
    get("bitfusion-edge").table(tiny_specs)
    assert len(list((tmp_path / "root" / "cost").glob("*.json"))) == 1
    get("bitfusion-edge", cache_dir=None, batch=3).table(tiny_specs)
    assert len(list((tmp_path / "root" / "cost").glob("*.json"))) == 1


def test_third_party_model_registration(tiny_specs, monkeypatch) -> None:
    import numpy as np

    from haq.cost import COST_MODELS

    available()  # load the built-ins, then register into a copy the test can throw away
    monkeypatch.setattr(COST_MODELS, "_entries", dict(COST_MODELS._entries))

    @register_cost_model("unit-test-macs", description="MACs only")
    class Macs(CostModel):
        def build(self, specs):
            arr = np.stack([np.full((9, 9), float(s.macs)) for s in specs])
            return CostTable([s.name for s in specs], {"macs": arr}, {"macs": "MACs"},
                             self.source())

    table = get("unit-test-macs").table(tiny_specs)
    assert table.array("macs")[0, 0, 0] == tiny_specs[0].macs
    assert "unit-test-macs" in available()
    with pytest.raises(CostModelError, match="unknown parameter"):
        register_cost_model("broken", batch=2)(Macs)
