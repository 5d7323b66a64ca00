"""docs/quickstart.md "Your own model and data" runs as written: its files, its Python example
and its CLI example, on an image folder made from scikit-learn's digits."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from haq.cli.__main__ import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"


def _section() -> str:
    text = DOC.read_text()
    start = text.index("## Your own model and data")
    return text[start:text.index("\n## ", start + 1)]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), flags=re.DOTALL)


@pytest.fixture
def workdir(tmp_path, monkeypatch, make_folder):
    """The user's directory: digits/ (train, val, test), mynet.py, mymetric.py from the doc."""
    make_folder(tmp_path / "digits", per_class=(10, 5, 5))
    net, metric, _ = _blocks("python")
    (tmp_path / "mynet.py").write_text(net)
    (tmp_path / "mymetric.py").write_text(metric)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HAQ_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("mynet", "mymetric"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


@pytest.mark.slow
def test_python_example_runs_as_written(workdir, capsys) -> None:
    example = _blocks("python")[2]
    assert len(example.strip().splitlines()) <= 10
    exec(compile(example, "quickstart-own-data", "exec"), {})
    out = capsys.readouterr().out
    assert "'name': 'top3'" in out and "'mode': 'max'" in out


def test_cli_example_runs_as_written(workdir, monkeypatch, capsys) -> None:
    (command,) = _blocks("bash")
    args = shlex.split(command.replace("\\\n", " "))
    assert args[0] == "haq"
    monkeypatch.setattr(sys, "argv", args)
    try:
        main()
    except SystemExit as done:  # typer exits 0 after a command
        assert done.code in (0, None), capsys.readouterr()
    result = json.loads((workdir / "runs" / "mynet" / "result.json").read_text())
    quality = result["quality"]
    assert (quality["name"], quality["mode"], quality["unit"]) == ("top3", "max", "")
    assert 0.0 <= quality["best"] <= 100.0 and result["episodes"] == 4
    assert "top3 (maximised)" in capsys.readouterr().out
