"""Shared fixtures: the real entry point run in a temporary directory; one torch thread."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from haq.cli.__main__ import main
from haq.threads import single_thread


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread for the test (modules opt in with ``pytestmark``), so results do
    not depend on the thread count and tests do not oversubscribe a shared machine."""
    with single_thread():
        yield


@pytest.fixture
def haq(capsys, monkeypatch, tmp_path):
    """``haq(*args) -> (exit code, output with whitespace collapsed)``, run in ``tmp_path``
    through ``haq.cli.__main__.main`` (so a typed error is exit code 2 and one line)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HAQ_CACHE_DIR", str(tmp_path / "cache"))

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["haq", *args])
        with pytest.raises(SystemExit) as done:
            main()
        out = capsys.readouterr()
        return done.value.code, " ".join((out.out + out.err).split())

    return run
