"""One process at a time per run directory: an OS lock held for the run's lifetime.

The lock is ``flock`` on a ``.lock`` file inside the run directory. The kernel drops it when
the holding process ends, however it ends, so a run killed with SIGKILL never leaves a stale
lock behind. Within one process the lock is re-entrant (``haq.search`` holds it while the
strategy opens the run store).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from haq.errors import RunError
from haq.runs._layout import LOCK

_HELD: dict[str, int] = {}  # real path -> descriptor, for each lock this process holds


def _key(path: Path) -> str:
    return os.path.realpath(path)


def _open_lock(path: Path) -> int:
    try:
        path.mkdir(parents=True, exist_ok=True)
        return os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunError(f"cannot use run directory {path}: {err.strerror}; choose a directory "
                       "you can write to (CLI: --run DIR)") from None


def _busy(path: Path) -> RunError:
    return RunError(f"run directory {path} is in use by another haq process; wait for it to "
                    "finish or stop it, or choose another run directory (CLI: --run DIR)")


@contextmanager
def run_lock(path: str | Path) -> Iterator[None]:
    """Hold the run directory's lock inside the ``with`` block (created if missing).

    Raises:
        RunError: another process holds the lock, or the directory cannot be written.
    """
    path = Path(path)
    key = _key(path)
    if key in _HELD:  # the outer holder releases it
        yield
        return
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _busy(path) from None
    try:  # the lock file stays empty: taking the lock changes no file a user may compare
        _HELD[key] = fd
        yield
    finally:
        _HELD.pop(key, None)
        os.close(fd)  # closing the only descriptor releases the flock


def held(path: str | Path) -> bool:
    """Whether this process holds ``path``'s lock."""
    return _key(Path(path)) in _HELD


def check_unlocked(path: str | Path) -> None:
    """Raise ``RunError`` if another process holds ``path``'s lock (this one may hold it)."""
    path = Path(path)
    if _key(path) in _HELD or not (path / LOCK).exists():
        return
    fd = os.open(path / LOCK, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(path) from None
    finally:
        os.close(fd)
