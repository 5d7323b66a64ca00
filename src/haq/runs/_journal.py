"""Append-only episode journal: one JSON object per line, each line flushed and fsynced.

A process killed mid-write can leave at most one torn line at the end (a line is written with a
single ``write`` and ends with its newline). Reading repairs that by truncating the torn tail,
which is kept in ``<journal>.torn`` for inspection; the file itself is never deleted.

A last line that ends with its newline but is not a JSON object (cut by hand or by a copy, then
terminated) is not provably a torn write, so reading refuses it and names the fix:
``Journal.repair`` (CLI: ``haq runs repair RUN``) moves exactly that line to ``<journal>.torn``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from haq.errors import RunError


def _line(record: dict[str, Any]) -> bytes:
    # NaN/inf are not JSON; a record holding them is a bug upstream, refuse it early
    try:
        text = json.dumps(record, allow_nan=False, separators=(",", ":"))
    except ValueError as err:
        raise RunError(f"journal record for episode {record.get('episode')} holds a NaN or "
                       f"infinite number ({err}); it cannot be written as JSON") from err
    return (text + "\n").encode("utf-8")


def _parse(line: bytes) -> dict[str, Any] | str:
    """The record on ``line``, or what is wrong with it (for the error message)."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return f"not valid JSON ({err})"
    return record if isinstance(record, dict) else "not a JSON object"


class Journal:
    """The ``journal.jsonl`` of one run.

    Args:
        path: the journal file; created on the first append.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line and make it durable before returning."""
        data = _line(record)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            written = os.write(fd, data)
            while written < len(data):  # os.write may be partial on some filesystems
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, *, repair: bool = True) -> list[dict[str, Any]]:
        """Every complete record, in order.

        Args:
            repair: truncate a torn last line (crash mid-write); with ``False`` it is only
                skipped.

        Raises:
            RunError: a line other than the last is not valid JSON (the file was edited or is
                damaged in a way no crash can produce).
        """
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        end = raw.rfind(b"\n") + 1  # everything after the last newline is a torn write
        if end < len(raw) and repair:
            self._truncate(raw, end)
        lines = raw[:end].splitlines()
        records = []
        for number, line in enumerate(lines, start=1):
            record = _parse(line)
            if isinstance(record, dict):
                records.append(record)
            elif number == len(lines):
                raise RunError(f"{self.path} line {number}, the last, is {record}: it was cut "
                               f"or edited. Run `haq runs repair {self.path.parent}` to move "
                               f"that line to {self.path.name}.torn and keep the {number - 1} "
                               "whole episodes before it, then resume")
            else:
                raise RunError(f"{self.path} line {number} is {record}; the journal was "
                               "edited or damaged. Move it away to start over, or fix that line")
        return records

    def repair(self) -> int:
        """Move a damaged last line to ``<journal>.torn``; return how many lines were moved.

        Only the last line may go (a torn tail is truncated the same way); damage anywhere
        else is left alone for the user to look at.

        Raises:
            RunError: a line other than the last is damaged.
        """
        if not self.path.exists():
            return 0
        raw = self.path.read_bytes()
        end = raw.rfind(b"\n") + 1
        if end < len(raw):
            self._truncate(raw, end)
            return 1
        lines = raw.splitlines(keepends=True)
        if not lines or isinstance(_parse(lines[-1]), dict):
            return 0
        for number, line in enumerate(lines[:-1], start=1):
            if not isinstance(_parse(line), dict):
                raise RunError(f"{self.path} line {number} is damaged too, and repair only "
                               "moves the last line; fix that line, or move the journal away "
                               "to start over")
        self._truncate(raw, end - len(lines[-1]))
        return 1

    def _truncate(self, raw: bytes, end: int) -> None:
        torn = self.path.with_name(self.path.name + ".torn")
        with open(torn, "ab") as handle:
            handle.write(raw[end:].rstrip(b"\n") + b"\n")
        with open(self.path, "r+b") as handle:
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
