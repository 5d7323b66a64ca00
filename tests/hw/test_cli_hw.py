"""`haq hw profile` and `haq hw validate` end to end on a zoo model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from haq.cli.__main__ import _register, app
from haq.cost import CostTable

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.slow
def test_profile_then_validate(tmp_path: Path) -> None:
    _register()
    runner = CliRunner()
    table_path = tmp_path / "r20.json"
    result = runner.invoke(app, ["hw", "profile", "resnet20-fmnist", "--out", str(table_path),
                                 "--repeats", "15", "--threads", "1"])
    assert result.exit_code == 0, result.output
    table = CostTable.load(table_path)
    assert table.units["latency"] == "ms" and len(table) == 20
    assert table.source["zoo_model"] == "resnet20-fmnist"
    report_path = tmp_path / "report.json"
    result = runner.invoke(app, ["hw", "validate", "resnet20-fmnist", "--table",
                                 str(table_path), "--repeats", "15", "--threads", "1",
                                 "--json", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["predicted_ms"] > 0 and report["measured_ms"] > 0
    assert len(report["int8_layers"]) == 20
    assert "predicted" in result.output
