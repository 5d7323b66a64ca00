"""Run directories: one process at a time, nothing written by a refused call, no foreign files
overwritten. The concurrency is tested with real processes, since the lock is the kernel's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from haq.errors import RunError
from haq.runs import JOURNAL, LOCK, RunStore, check_run_dir, claim, run_lock

# A model whose forward pass sleeps, so a search lasts long enough to be raced.
SLOW_MODEL = textwrap.dedent("""
    import os, time
    import torch
    from torch import nn

    class Slow(nn.Module):
        def forward(self, x):
            time.sleep(float(os.environ.get("HAQ_TEST_DELAY", "0")))
            return x

    def build():
        torch.manual_seed(0)
        return nn.Sequential(Slow(), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 64, 4))
""")


def _search(tmp: Path, run: Path, *extra: str, delay: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "HAQ_TEST_DELAY": str(delay), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    args = [sys.executable, "-m", "haq.cli", "search", f"{tmp / 'net.py'}:build", "--dataset",
            "synthetic", "--input-shape", "1,8,8", "--latency", "0.6", "--strategy", "haq",
            "--eval-samples", "8",
            "--seed", "1", "--run", str(run), "-p", "warmup=1", "-p", "hidden=8", *extra]
    return subprocess.Popen(args, env=env, cwd=tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_lines(proc: subprocess.Popen, journal: Path, lines: int) -> None:
    deadline = time.monotonic() + 120
    while not (journal.exists() and journal.read_bytes().count(b"\n") >= lines):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the search never wrote its journal"
        time.sleep(0.02)


@pytest.mark.slow
def test_two_resumes_of_one_run_never_both_run_and_a_killed_holder_does_not_block(
        tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(SLOW_MODEL)
    run, journal = tmp_path / "run", tmp_path / "run" / JOURNAL
    holder = _search(tmp_path, run, "--episodes", "400", delay=0.02)
    _wait_for_lines(holder, journal, 2)  # it holds the run and is appending episodes
    second = _search(tmp_path, run, "--episodes", "400", "--resume")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 2, (out, err)
    assert "in use by another haq process" in " ".join(out.split()) and "Traceback" not in err

    holder.send_signal(signal.SIGKILL)  # the kernel drops its lock: no stale lock remains
    holder.wait()
    done = len(journal.read_text().splitlines())
    after = _search(tmp_path, run, "--episodes", str(done + 1), "--resume")
    out, err = after.communicate(timeout=120)
    assert after.returncode == 0, (out, err)
    episodes = [line.split('"episode":')[1].split(",")[0]
                for line in journal.read_text().splitlines()]
    assert episodes == [str(i) for i in range(done + 1)]  # no episode written twice


def test_the_lock_is_refused_to_a_second_holder_and_released_on_exit(tmp_path: Path) -> None:
    code = ("import sys, time; from haq.runs import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    other = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match="in use by another haq process"), run_lock(tmp_path):
            pass
        (tmp_path / "meta.json").write_text("{}")  # a run is there: claiming it is refused too
        with pytest.raises(RunError, match="in use by another haq process"):
            check_run_dir(tmp_path, resume=True)
    finally:
        other.kill()
        other.wait()
    with run_lock(tmp_path), run_lock(tmp_path):  # free again, and re-entrant in one process
        assert (tmp_path / LOCK).read_bytes() == b""


def _snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in path.iterdir()}


def test_a_refused_resume_changes_no_file(tmp_path: Path) -> None:
    import haq
    from haq.data import synthetic
    from haq.testing import tiny_model

    run, data = tmp_path / "run", synthetic()
    settings = {"episodes": 2, "warmup": 1, "hidden": 8, "eval_samples": 8, "run_dir": run}
    haq.search(tiny_model(), data, "bismo-edge", {"latency": "0.6"}, "haq", **settings)
    before = _snapshot(run)
    assert {"meta.json", JOURNAL, "specs.json", "cost_table.json", "result.json"} <= set(before)
    with pytest.raises(RunError, match="these settings differ from the stored run: budgets"):
        haq.search(tiny_model(), data, "bismo-edge", {"latency": "0.6", "size": "0.5"}, "haq",
                   resume=True, **settings)
    assert _snapshot(run) == before


def test_a_folder_of_other_files_or_a_file_is_never_used_as_a_run(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "result.json").write_text('{"mine": true}')
    for resume in (False, True):
        with pytest.raises(RunError, match=r"not a haq run \(result.json\)"):
            check_run_dir(mine, resume)
        with pytest.raises(RunError, match="not a haq run"):
            RunStore.open(mine, {"seed": 0}, resume=resume)
    assert sorted(p.name for p in mine.iterdir()) == ["result.json"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunError, match="is a file; give a directory"):
        check_run_dir(tmp_path / "afile", False)
    with pytest.raises(RunError, match="is a file; give a directory"), claim(tmp_path / "afile",
                                                                             False):
        pass
    # what haq.search writes before the run opens is not foreign: a killed start resumes
    started = tmp_path / "started"
    started.mkdir()
    (started / "specs.json").write_text("[]")
    (started / "cost_table.json").write_text("{}")
    assert not RunStore.open(started, {"seed": 0}).resumed


def test_an_unwritable_run_directory_is_a_run_error(tmp_path: Path, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(RunError, match="cannot use run directory .*Permission denied; choose a "
                                       "directory you can write to"), run_lock(tmp_path / "r"):
        pass


def test_a_read_only_run_directory_is_refused_before_anything_runs(tmp_path: Path,
                                                                   monkeypatch) -> None:
    RunStore.open(tmp_path / "run", {"seed": 0})
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a read-only mount answers
    with pytest.raises(RunError, match="run directory .*run is read-only; make it writable"):
        check_run_dir(tmp_path / "run", resume=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_run_directory_is_a_run_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(RunError, match="Permission denied"), run_lock(tmp_path / "run"):
            pass
    finally:
        tmp_path.chmod(0o700)
