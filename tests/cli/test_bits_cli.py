"""`haq search` / `haq compare` bit options: --bits, --w-bits, --a-bits beside --min/--max-bits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from haq.cli.__main__ import _register, app
from haq.cli._bits import bit_space
from haq.errors import ConfigError
from haq.policy import BitSpace

_register()
runner = CliRunner()

MODEL_FILE = textwrap.dedent("""
    from torch import nn

    def build():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 64, 4))
""")


def _search(tmp_path: Path, strategy: str, *options: str) -> list[dict]:
    (tmp_path / "net.py").write_text(MODEL_FILE)
    run_dir = tmp_path / strategy
    args = ["search", f"{tmp_path / 'net.py'}:build", "--dataset", "synthetic",
            "--input-shape", "1,8,8", "--hardware", "bismo-edge", "--latency", "0.5",
            "--strategy", strategy, "--episodes", "3", "--eval-samples", "32",
            "--run", str(run_dir), *options]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "result.json").read_text())["space"]["w_bits"] == [2, 4, 8]
    return list(json.loads((run_dir / "best_policy.json").read_text())["layers"].values())


@pytest.mark.parametrize("strategy", ["uniform", "random"])
def test_bits_option_keeps_every_width_in_the_set(strategy: str, tmp_path: Path) -> None:
    layers = _search(tmp_path, strategy, "--bits", "2,4,8")
    assert layers and all(lb["w_bits"] in (2, 4, 8) and lb["a_bits"] in (2, 4, 8)
                          for lb in layers)


def test_single_activation_width_is_a_weights_only_search(tmp_path: Path) -> None:
    layers = _search(tmp_path, "random", "--w-bits", "2,4,8", "--a-bits", "8")
    assert all(lb["a_bits"] == 8 and lb["w_bits"] in (2, 4, 8) for lb in layers)
    report = runner.invoke(app, ["report", str(tmp_path / "random")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "random" / "report" / "report.md").read_text()
    assert "- allowed bits: w {2, 4, 8}, a 8" in page


def test_bit_space_of_the_options() -> None:
    assert bit_space() == BitSpace()
    assert bit_space(bits="2,4,8") == BitSpace(w_bits=(2, 4, 8), a_bits=(2, 4, 8))
    assert bit_space(a_bits="8", min_bits=3) == BitSpace(w_range=(3, 8), a_bits=(8,))
    assert bit_space(w_bits="4", max_bits=6) == BitSpace(w_bits=(4,), a_range=(2, 6))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"bits": "2,4,8", "w_bits": "4"}, "--bits and --w-bits both set the weight"),
    ({"bits": "2,4,8", "a_bits": "8"}, "--bits and --a-bits both set the activation"),
    ({"bits": "2,4,8", "min_bits": 3}, "--min-bits/--max-bits give a range"),
    ({"w_bits": "2,4", "a_bits": "8", "max_bits": 6}, "--min-bits/--max-bits give a range"),
    ({"bits": "2,four"}, "integers 1-8 separated by commas"),
    ({"bits": "2,4,4"}, "twice"),
    ({"w_bits": "2,9"}, "outside 1-8"),
])
def test_conflicting_or_bad_options_are_config_errors(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        bit_space(**kwargs)


@pytest.mark.parametrize("command", [
    ["search", "mobilenetv1-fmnist", "--hardware", "bismo-edge", "--size", "0.5",
     "--bits", "2,4,8", "--min-bits", "3"],
    ["compare", "mobilenetv1-fmnist", "--hardware", "bismo-edge", "--size", "0.5",
     "--out", "unused", "--w-bits", "2,4,8", "--bits", "4,8"],
])
def test_conflicting_options_exit_2_with_one_line(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src"),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "haq.cli", *command], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error:" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "unused").exists()
