"""Run store: durable appends, torn-line repair, refusal to overwrite, identity on resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from haq.errors import RunError
from haq.runs import CHECKPOINT, JOURNAL, Journal, RunStore


def test_append_then_read_round_trips(tmp_path) -> None:
    journal = Journal(tmp_path / JOURNAL)
    records = [{"episode": i, "accuracy": 90.0 + i / 3, "raw": [0.1, 0.2]} for i in range(5)]
    for record in records:
        journal.append(record)
    assert journal.read() == records  # floats round-trip exactly through JSON
    assert (tmp_path / JOURNAL).read_text().count("\n") == 5


def test_torn_last_line_is_cut_not_the_file(tmp_path) -> None:
    journal = Journal(tmp_path / JOURNAL)
    for i in range(3):
        journal.append({"episode": i})
    with open(tmp_path / JOURNAL, "ab") as handle:
        handle.write(b'{"episode": 3, "acc')  # a crash in the middle of a write
    assert [r["episode"] for r in journal.read()] == [0, 1, 2]
    assert (tmp_path / JOURNAL).read_bytes().endswith(b'{"episode":2}\n')
    assert b'"acc' in (tmp_path / (JOURNAL + ".torn")).read_bytes()
    journal.append({"episode": 3})  # appending continues cleanly after the repair
    assert [r["episode"] for r in journal.read()] == [0, 1, 2, 3]


def test_damage_in_the_middle_is_an_error_not_a_silent_drop(tmp_path) -> None:
    path = tmp_path / JOURNAL
    path.write_text('{"episode": 0}\nnot json\n{"episode": 2}\n')
    with pytest.raises(RunError, match="line 2 is not valid JSON"):
        Journal(path).read()


def test_nan_is_refused_before_it_reaches_disk(tmp_path) -> None:
    journal = Journal(tmp_path / JOURNAL)
    with pytest.raises(RunError, match="NaN or infinite"):
        journal.append({"episode": 7, "accuracy": float("nan")})
    assert not (tmp_path / JOURNAL).exists() or (tmp_path / JOURNAL).read_text() == ""


def test_existing_run_is_never_overwritten(tmp_path) -> None:
    identity = {"strategy": "haq", "seed": 1}
    store = RunStore.open(tmp_path / "run", identity)
    store.journal.append({"episode": 0})
    with pytest.raises(RunError, match="pass resume=True .*--resume.*--run"):
        RunStore.open(tmp_path / "run", identity)
    again = RunStore.open(tmp_path / "run", identity, resume=True)
    assert again.resumed and again.journal.read() == [{"episode": 0}]
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["identity"] == identity and "torch" in meta["provenance"]


def test_resume_with_other_settings_names_them(tmp_path) -> None:
    RunStore.open(tmp_path, {"strategy": "haq", "seed": 1, "budgets": [0.5]})
    with pytest.raises(RunError, match="budgets, seed"):
        RunStore.open(tmp_path, {"strategy": "haq", "seed": 2, "budgets": [0.4]}, resume=True)


def test_checkpoint_round_trip_and_damage(tmp_path) -> None:
    store = RunStore.open(tmp_path, {"seed": 0})
    assert store.load_checkpoint() is None
    state = {"episode": 4, "weights": torch.arange(6.0), "rng": "{\"state\": 1}", "b": None}
    store.save_checkpoint(state)
    loaded = store.load_checkpoint()
    assert loaded["episode"] == 4 and torch.equal(loaded["weights"], state["weights"])
    (tmp_path / CHECKPOINT).write_bytes(b"garbage")
    with pytest.raises(RunError, match="cannot be read"):
        store.load_checkpoint()


def test_atomic_write_gives_the_file_the_usual_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from haq.runs import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "policy.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "policy.json").stat().st_mode) == 0o644
