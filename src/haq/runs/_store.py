"""RunStore: one search run on disk — provenance, journal, checkpoint, best policy.

Layout of a run directory::

    meta.json          provenance: versions, seed, strategy + settings, cost model, budgets...
    journal.jsonl      one line per finished episode (see docs/strategies/haq.md)
    checkpoint.pt      opaque strategy state after the last checkpointed episode (atomic)
    best_policy.json   the best policy so far (atomic), written by the search

A run directory is never silently reused: opening an existing run needs ``resume=True``, and
the run's identity (``meta["identity"]``) must match what the caller is about to run.
"""

from __future__ import annotations

import io
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from haq.errors import RunError
from haq.runs._atomic import atomic_write, atomic_write_text
from haq.runs._journal import Journal
from haq.runs._layout import CHECKPOINT, COST_TABLE, JOURNAL, META, SPECS
from haq.runs._lock import LOCK, check_unlocked, held, run_lock

FORMAT_VERSION = 1


def provenance() -> dict[str, Any]:
    """Versions and machine facts recorded in every run's ``meta.json``."""
    from haq import __version__

    return {
        "haq": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def holds_run(path: str | Path) -> bool:
    """Whether ``path`` already holds a haq run (a ``meta.json`` or a journal)."""
    path = Path(path)
    return (path / META).exists() or (path / JOURNAL).exists()


# What may sit in a run directory before its meta.json: the lock, and the inputs haq.search
# writes before the strategy opens the run (a search killed in between left them).
_BEFORE_META = frozenset({LOCK, SPECS, COST_TABLE})


def check_run_dir(path: str | Path, resume: bool) -> None:
    """Raise ``RunError`` unless ``path`` may become (or, with ``resume``, continue) a run.

    Refused: a file; a directory holding a run when ``resume`` is false; a directory holding
    files that are not a haq run (they would be overwritten); a run another process holds.
    Nothing is written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"run directory {path} is a file; give a directory (it is created if "
                       "missing), e.g. --run runs/my-search")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise RunError(f"run directory {path} is read-only; make it writable or choose another "
                       "(CLI: --run DIR)")
    if holds_run(path):
        refuse_overwrite(path, resume)
        check_unlocked(path)
    elif path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if p.name not in _BEFORE_META)
        if foreign:
            more = " ..." if len(foreign) > 5 else ""
            raise RunError(f"{path} holds files that are not a haq run ({', '.join(foreign[:5])}"
                           f"{more}); choose a new or empty run directory (CLI: --run DIR) so "
                           "they are not overwritten")


@contextmanager
def claim(path: str | Path | None, resume: bool) -> Iterator[None]:
    """Check ``path`` (``check_run_dir``) and hold its lock inside the ``with`` block.

    ``None`` (a run kept in memory) claims nothing.
    """
    if path is None:
        yield
        return
    check_run_dir(path, resume)  # before the lock file exists: a refused call writes nothing
    with run_lock(path):
        check_run_dir(path, resume)  # again under the lock: the other process may have won
        yield


def refuse_overwrite(path: str | Path, resume: bool) -> None:
    """Raise ``RunError`` if ``path`` holds a run and ``resume`` is false.

    Callers that write files into a run directory before the strategy opens it check first.
    """
    if holds_run(path) and not resume:
        raise RunError(f"run directory {path} already holds a run; pass resume=True "
                       "(CLI: --resume) to continue it, or choose another run directory "
                       "(CLI: --run DIR)")


class RunStore:
    """Files of one run. Build it with ``RunStore.open``.

    Attributes:
        path: the run directory.
        meta: the contents of ``meta.json``.
        journal: the episode journal.
        resumed: whether an existing run was opened.
    """

    def __init__(self, path: Path, meta: dict[str, Any], resumed: bool) -> None:
        self.path, self.meta, self.resumed = Path(path), meta, resumed
        self.journal = Journal(self.path / JOURNAL)

    @classmethod
    def open(cls, path: str | Path, identity: dict[str, Any], *, resume: bool = False,
             info: dict[str, Any] | None = None) -> RunStore:
        """Create a new run directory, or reopen an existing run to resume it.

        Args:
            path: the run directory.
            identity: JSON-able facts that must match to resume (strategy, seed, settings,
                cost table hash, budgets, layers). Must round-trip through JSON unchanged.
            resume: continue the run in ``path`` if there is one; start a new one otherwise.
            info: extra provenance stored in ``meta.json`` but not compared on resume.

        Raises:
            RunError: ``path`` holds a run and ``resume`` is false, the run there differs
                from ``identity``, ``path`` is a file or holds files that are not a haq run,
                or another process holds the run (``claim``).
        """
        path = Path(path)
        identity = json.loads(json.dumps(identity))  # compare like for like after a reload
        meta_path = path / META
        if not held(path):  # a caller holding the lock (haq.search) has checked already
            check_run_dir(path, resume)
        if holds_run(path):
            meta = cls._read_meta(meta_path)
            changed = _differences(meta.get("identity", {}), identity)
            if changed:
                raise RunError(f"cannot resume {path}: these settings differ from the stored run"
                               f": {', '.join(changed)}. Resume with the original settings, or "
                               "choose another run directory (CLI: --run DIR)")
            return cls(path, meta, resumed=True)
        meta = {"format": "haq-run", "version": FORMAT_VERSION, "identity": identity,
                "provenance": provenance(), **(info or {})}
        atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return cls(path, meta, resumed=False)

    @staticmethod
    def _read_meta(meta_path: Path) -> dict[str, Any]:
        if not meta_path.exists():
            raise RunError(f"{meta_path.parent} has a journal but no {META}; it was not written "
                           "by haq or was damaged. Choose another run directory")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise RunError(f"{meta_path} is not valid JSON ({err})") from err
        if meta.get("format") != "haq-run" or meta.get("version") != FORMAT_VERSION:
            raise RunError(f"{meta_path} is not a haq run (format version {FORMAT_VERSION})")
        return meta

    # -- checkpoint -----------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Atomically replace the checkpoint with ``state`` (tensors, numbers, strings, lists)."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write(self.path / CHECKPOINT, lambda handle: handle.write(buffer.getvalue()))

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint, or ``None`` if the run never wrote one."""
        path = self.path / CHECKPOINT
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a checkpoint is written atomically; this is real damage
            raise RunError(f"checkpoint {path} cannot be read ({err}); delete it to resume by "
                           "replaying the journal from the start") from err

    # -- artefacts ------------------------------------------------------------------------------
    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        """Atomically write ``name`` (e.g. ``best_policy.json``) inside the run directory."""
        target = self.path / name
        atomic_write_text(target, json.dumps(data, indent=2) + "\n")
        return target
