"""Same seed, same search; a run killed with SIGKILL at any moment resumes to the same end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from haq_run_worker import SETTINGS, run, slow_problem

from haq.errors import RunError
from haq.runs import BEST, CHECKPOINT, JOURNAL, Journal
from haq.search import get_strategy

HERE = Path(__file__).parent
TIMING = ("seconds", "agent_seconds", "project_seconds")


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_same_seed_same_history_other_seed_differs(tmp_path) -> None:
    a = run(None, 25, 0.0, False)
    b = run(None, 25, 0.0, False)
    assert _strip(a.history) == _strip(b.history)
    assert a.best == b.best
    other = get_strategy("haq", episodes=25, **SETTINGS).run(slow_problem(0.0), seed=8)
    assert [r["raw"] for r in other.history] != [r["raw"] for r in a.history]


def _worker(run_dir: Path, episodes: int, delay: float, resume: bool) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get(
        "PYTHONPATH", "")])}
    args = [sys.executable, str(HERE / "haq_run_worker.py"), str(run_dir), str(episodes),
            str(delay)] + (["--resume"] if resume else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_after(proc: subprocess.Popen, journal: Path, lines: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_bytes().count(b"\n") >= lines:
            break
        if proc.poll() is not None:
            raise AssertionError(f"worker ended early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_then_resume_ends_identical_to_an_uninterrupted_run(tmp_path) -> None:
    episodes, delay = 30, 0.04
    reference = run(tmp_path / "reference", episodes, 0.0, False)

    run_dir = tmp_path / "killed"
    journal = run_dir / JOURNAL
    _kill_after(_worker(run_dir, episodes, delay, resume=False), journal, lines=7)
    first_kill = len(Journal(journal).read(repair=False))
    _kill_after(_worker(run_dir, episodes, delay, resume=True), journal, lines=first_kill + 9)
    with open(journal, "ab") as handle:  # and a crash in the middle of a journal write
        handle.write(b'{"episode": 99, "sta')
    done = _worker(run_dir, episodes, delay, resume=True)
    assert done.wait(timeout=180) == 0, done.stderr.read().decode()[-3000:]

    records = Journal(journal).read()
    assert [r["episode"] for r in records] == list(range(episodes))  # nothing lost or repeated
    assert _strip(records) == _strip(reference.history)
    assert (run_dir / BEST).read_text() == (tmp_path / "reference" / BEST).read_text()
    assert (run_dir / CHECKPOINT).exists() and (run_dir / (JOURNAL + ".torn")).exists()


def test_replay_of_journal_lines_past_the_checkpoint(tmp_path) -> None:
    """A journal ahead of the checkpoint is replayed from the journal, not re-evaluated."""
    full = run(tmp_path / "full", 16, 0.0, False)
    part, nine = tmp_path / "part", tmp_path / "nine"
    run(part, 10, 0.0, False)
    run(nine, 9, 0.0, False)  # its final checkpoint is at episode 9
    (part / CHECKPOINT).write_bytes((nine / CHECKPOINT).read_bytes())
    problem = slow_problem(0.0)
    scored = []
    inner = problem.evaluate
    problem.evaluate = lambda policy: scored.append(policy) or inner(policy)
    resumed = get_strategy("haq", episodes=16, **SETTINGS).run(problem, seed=7, run_dir=part,
                                                               resume=True)
    assert _strip(resumed.history) == _strip(full.history)
    fresh = [r for r in full.history[10:] if not r["cached"]]
    assert len(scored) == len(fresh)  # episode 9 came from the journal


def test_fresh_run_refuses_an_existing_directory(tmp_path) -> None:
    run(tmp_path, 3, 0.0, False)
    with pytest.raises(RunError, match="--resume"):
        run(tmp_path, 3, 0.0, False)
