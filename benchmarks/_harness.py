"""Shared plumbing for benchmark scripts: one command line, the machine, a resumable results file.

Every benchmark appends one JSON line per finished configuration to ``benchmarks/results/<name>
.jsonl`` (or ``<name>.jsonl.gz`` once a study's file is compressed: one gzip member per line).
A killed or interrupted benchmark, run again, skips the configurations already there, so it can
be run piecewise (``--only KEY`` runs a subset). Reruns of one study under other settings are a
*variant* of it (``--variant widest``): the same file, records tagged with the variant.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform()}


def source_commit() -> str | None:
    """The checked-out commit (with ``+dirty`` for uncommitted changes) the numbers came from,
    or ``None`` outside a git checkout."""
    import subprocess

    root = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"],
                               cwd=root, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty.strip() else "")


def _lines(path: Path) -> list[str]:
    """The file's lines; a torn end (a killed run's last write) is dropped."""
    if not path.exists():
        return []
    if path.suffix != ".gz":
        return path.read_text().splitlines()
    lines: list[str] = []
    try:
        with gzip.open(path, "rt") as handle:
            lines.extend(handle)
    except (EOFError, gzip.BadGzipFile):
        pass
    return lines


class Results:
    """Append-only JSONL of finished configurations of one study variant, keyed by a string."""

    def __init__(self, name: str, variant: str = "") -> None:
        packed = RESULTS_DIR / f"{name}.jsonl.gz"
        self.path = packed if packed.exists() else RESULTS_DIR / f"{name}.jsonl"
        self.variant = variant
        self.commit = source_commit()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        for record in self.all(self.path):
            if record.get("variant", "") == variant:
                self.records[record["key"]] = record

    @staticmethod
    def all(path: Path) -> list[dict[str, Any]]:
        """Every whole record of a results file, any variant."""
        records = []
        for line in _lines(path):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line from a killed run
                continue
        return records

    def done(self, key: str) -> bool:
        return key in self.records

    def finished(self, key: str) -> bool:
        """``done(key)``, saying so, for scripts that measure one configuration per run."""
        if self.done(key):
            print(f"{key} already in {self.path}")
        return self.done(key)

    def add(self, key: str, **values: Any) -> dict[str, Any]:
        record = {"key": key, **({"variant": self.variant} if self.variant else {}),
                  "command": " ".join(sys.argv), "machine": machine(),
                  "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": self.commit,
                  **values}
        line = (json.dumps(record) + "\n").encode()
        with self.path.open("ab") as handle:
            handle.write(gzip.compress(line) if self.path.suffix == ".gz" else line)
            handle.flush()
            os.fsync(handle.fileno())
        self.records[key] = record
        return record

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records.values())


def bench_parser(doc: str, results: str, *, threads: int | None = 1,
                 keyed: bool = False) -> argparse.ArgumentParser:
    """The options every benchmark shares; the script adds its own, then calls ``begin``.

    Args:
        doc: the script's docstring; its first line describes the script.
        results: the results file name under ``benchmarks/results`` (``--results`` changes it,
            e.g. for a smoke run that must not touch the recorded results).
        threads: default of ``--threads`` (torch intra-op threads); ``None`` keeps torch's.
        keyed: the script runs several keyed configurations, so ``--only TEXT`` can pick some.
    """
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--threads", type=int, default=threads,
                        help="torch intra-op threads" + (" [default: torch's]" if threads is None
                                                         else ""))
    parser.add_argument("--results", default=results,
                        help="results file name under benchmarks/results")
    parser.add_argument("--variant", default="",
                        help="tag for a rerun of the study under other settings (same file)")
    if keyed:
        parser.add_argument("--only", default=None,
                            help="run only configurations whose key contains this text")
    return parser


def begin(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Results]:
    """Parse the arguments, set torch's threads, print the command and the machine, and open
    the results file."""
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("command:", " ".join(["python", *sys.argv]))
    print("machine:", machine())
    return args, Results(args.results, args.variant)


def budget_study_parser(doc: str, results: str, samples: int) -> argparse.ArgumentParser:
    """Arguments every "policies at the latency of uniform k-bit" study takes."""
    parser = bench_parser(doc, results)
    parser.add_argument("--model", default="mobilenetv1-fmnist")
    parser.add_argument("--hardware", default="bismo-edge")
    parser.add_argument("--bits", type=int, default=4, help="budget = latency of uniform k-bit")
    parser.add_argument("--samples", type=int, default=samples)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def latency_budget_problem(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(budget, search problem, data splits) at the latency of uniform ``args.bits``-bit."""
    from haq.cost import Budget
    from haq.data import load
    from haq.search import build_problem

    budget = Budget("latency", 1.0, relative=True, reference=(args.bits, args.bits))
    splits = load("fashion-mnist")
    problem = build_problem(args.model, splits, args.hardware, [budget], seed=args.seed)
    return budget, problem, splits
