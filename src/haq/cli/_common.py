"""Shared CLI plumbing: one console, one way to turn a HaqError into an exit code."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def run_command(main: Callable[[], None]) -> None:
    main()
