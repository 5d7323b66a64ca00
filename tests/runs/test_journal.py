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


def test_a_partial_os_write_is_completed_not_cut(tmp_path, monkeypatch) -> None:
    import os

    real_write, calls = os.write, []

    def three_bytes_at_a_time(fd, data):
        calls.append(len(data))
        return real_write(fd, bytes(data[:3]))

    monkeypatch.setattr(os, "write", three_bytes_at_a_time)
    Journal(tmp_path / JOURNAL).append({"episode": 12})
    monkeypatch.undo()
    assert (tmp_path / JOURNAL).read_bytes() == b'{"episode":12}\n'
    assert calls == list(range(15, 0, -3))  # each retry writes only what is left


def test_records_are_compact_lines_and_the_file_is_created_readable(tmp_path) -> None:
    import os
    import stat

    journal = Journal(tmp_path / JOURNAL)
    assert journal.read() == []  # no file yet: no records, nothing created
    assert not (tmp_path / JOURNAL).exists()
    old = os.umask(0o022)
    try:
        journal.append({"episode": 0, "raw": [0.5, 1]})
    finally:
        os.umask(old)
    assert (tmp_path / JOURNAL).read_bytes() == b'{"episode":0,"raw":[0.5,1]}\n'
    assert stat.S_IMODE((tmp_path / JOURNAL).stat().st_mode) == 0o644


@pytest.mark.parametrize("line", [b"[1, 2]", b"3", b'"text"', b"null"])
def test_a_line_that_is_json_but_not_an_object_is_refused(tmp_path, line) -> None:
    path = tmp_path / JOURNAL
    path.write_bytes(b'{"episode": 0}\n' + line + b'\n{"episode": 2}\n')
    with pytest.raises(RunError, match="line 2 is not a JSON object; the journal was edited"):
        Journal(path).read()


def test_without_repair_a_torn_tail_is_skipped_and_kept(tmp_path) -> None:
    path = tmp_path / JOURNAL
    path.write_bytes(b'{"episode": 0}\n{"episo')
    assert Journal(path).read(repair=False) == [{"episode": 0}]
    assert path.read_bytes() == b'{"episode": 0}\n{"episo'
    assert not (tmp_path / (JOURNAL + ".torn")).exists()


def test_a_cut_last_line_names_the_repair_and_repair_keeps_every_whole_episode(tmp_path) -> None:
    path = tmp_path / JOURNAL
    path.write_bytes(b'{"episode": 0}\n{"episode": 1}\n{"episode": 2, "ac\n')
    with pytest.raises(RunError, match=r"line 3, the last, is not valid JSON .*: it was cut or "
                                       rf"edited. Run `haq runs repair {tmp_path}` to move that "
                                       r"line to journal.jsonl.torn and keep the 2 whole "
                                       r"episodes before it, then resume"):
        Journal(path).read()
    assert path.read_bytes().endswith(b'"ac\n')  # reading never drops it silently
    assert Journal(path).repair() == 1
    assert Journal(path).read() == [{"episode": 0}, {"episode": 1}]
    assert (tmp_path / (JOURNAL + ".torn")).read_bytes() == b'{"episode": 2, "ac\n'
    assert Journal(path).repair() == 0  # whole now: nothing more to move
    assert path.read_bytes() == b'{"episode": 0}\n{"episode": 1}\n'


def test_repair_cuts_a_torn_tail_and_leaves_damage_elsewhere_alone(tmp_path) -> None:
    path = tmp_path / JOURNAL
    assert Journal(path).repair() == 0  # no journal: nothing to do
    path.write_bytes(b'{"episode": 0}\n{"epi')
    assert Journal(path).repair() == 1 and path.read_bytes() == b'{"episode": 0}\n'
    path.write_bytes(b"")
    assert Journal(path).repair() == 0 and Journal(path).read() == []
    damaged = b'{"episode": 0}\nnot json\n{"episode": 2}\n[3]\n'
    path.write_bytes(damaged)
    with pytest.raises(RunError, match="line 2 is damaged too, and repair only moves the last"):
        Journal(path).repair()
    assert path.read_bytes() == damaged  # nothing moved
    assert (tmp_path / (JOURNAL + ".torn")).read_bytes() == b'{"epi\n'  # the first repair only
