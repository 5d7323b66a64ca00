"""Append-only episode journal: one JSON object per line, each line flushed and fsynced.

A process killed mid-write can leave at most one torn line at the end (a line is written with a
single ``write`` and ends with its newline). Reading repairs that by truncating the torn tail,
which is kept in ``<journal>.torn`` for inspection; the file itself is never deleted.
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
        records = []
        for number, line in enumerate(raw[:end].splitlines(), start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise RunError(f"{self.path} line {number} is not valid JSON ({err}); the "
                               "journal was edited or damaged. Move it away to start over, or "
                               "fix that line") from err
            if not isinstance(record, dict):
                raise RunError(f"{self.path} line {number} is not a JSON object")
            records.append(record)
        return records

    def _truncate(self, raw: bytes, end: int) -> None:
        torn = self.path.with_name(self.path.name + ".torn")
        with open(torn, "ab") as handle:
            handle.write(raw[end:] + b"\n")
        with open(self.path, "r+b") as handle:
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
