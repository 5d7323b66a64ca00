from pathlib import Path

import haq_tiny_net
import pytest
from typer.testing import CliRunner

from haq.cli._cost import cost_app, parse_params
from haq.cost import CostTable
from haq.errors import CostModelError
from haq.policy import Policy

runner = CliRunner()


@pytest.fixture
def tiny_zoo(tmp_path, tiny_specs) -> list[str]:
    """MODEL and --input-shape of the tiny test net as a model file, so the command runs in
    milliseconds."""
    path = tmp_path / "tiny.py"
    path.write_text(Path(haq_tiny_net.__file__).read_text())
    return [f"{path}:TinyNet", "--input-shape", "3,16,16"]


def test_list_shows_models_parameters_and_defaults() -> None:
    result = runner.invoke(cost_app, ["list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("bismo-edge", "bismo-cloud", "bitfusion-edge", "bitfusion-cloud", "size",
                 "bops", "table"):
        assert name in result.output
    assert "dram_bits_per_cycle" in result.output and "4096" in result.output


def test_table_prints_per_layer_and_total_with_units(tiny_zoo, tiny_specs, tmp_path) -> None:
    specs = tiny_specs
    policy = Policy.from_arrays(specs, [8, 4, 4, 8], [8, 4, 4, 8])
    policy.save(tmp_path / "p.json")
    out = tmp_path / "t.csv"
    result = runner.invoke(cost_app, [
        "table", *tiny_zoo, "--hardware", "bops", "--policy", str(tmp_path / "p.json"),
        "--per-layer", "--param", "batch=2", "--out", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "bops (BOPs)" in result.output and "total" in result.output
    assert "stem" in result.output and "depthwise" in result.output and "4/4" in result.output
    expected = 2 * sum(s.macs * w * a for s, w, a in zip(specs, [8, 4, 4, 8], [8, 4, 4, 8],
                                                          strict=True))
    assert f"{expected:,}" in result.output
    saved = CostTable.load(out)
    assert saved.layer_names == [s.name for s in specs]
    assert saved.source["params"] == {"batch": 2}


def test_table_defaults_to_w8a8(tiny_zoo) -> None:
    result = runner.invoke(cost_app, ["table", *tiny_zoo, "--hardware", "bismo-edge"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "W8A8" in result.output and "latency (ms)" in result.output
    assert "1.000" in result.output


def test_bad_param_is_a_typed_error(tiny_zoo) -> None:
    result = runner.invoke(cost_app, ["table", *tiny_zoo, "--hardware", "bops", "--param",
                                      "batch"])
    assert isinstance(result.exception, CostModelError)
    with pytest.raises(CostModelError, match="KEY=VALUE"):
        parse_params(["=3"])
    assert parse_params(["mode=textbook", "batch = 4"]) == {"mode": "textbook", "batch": "4"}
