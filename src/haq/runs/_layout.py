"""The files of a run directory, named once. Every writer and reader goes through these names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

META = "meta.json"  # provenance and the identity a resume must match
JOURNAL = "journal.jsonl"  # one line per finished episode
CHECKPOINT = "checkpoint.pt"  # strategy state after the last checkpointed episode
BEST = "best_policy.json"  # the best policy so far
SPECS = "specs.json"  # the traced layers
COST_TABLE = "cost_table.json"  # the table every cost was priced with
RESULT = "result.json"  # accuracies, costs, budgets, search time, once the run finished
RESCORE = "rescore.jsonl"  # one line per re-scored candidate policy
FINAL_MODEL = "final_model.pt"  # state_dict of the fine-tuned best policy
REPORT = "report"  # folder ``haq report`` writes by default
LOCK = ".lock"  # held (flock) by the one process that runs the search


def _file(name: str) -> property:
    return property(lambda layout: layout.root / name, doc=f"``{name}`` in the run directory")


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run directory's files.

    Example:
        >>> RunLayout(Path("runs/a")).journal
        PosixPath('runs/a/journal.jsonl')
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    meta = _file(META)
    journal = _file(JOURNAL)
    checkpoint = _file(CHECKPOINT)
    best_policy = _file(BEST)
    specs = _file(SPECS)
    cost_table = _file(COST_TABLE)
    result = _file(RESULT)
    rescore = _file(RESCORE)
    final_model = _file(FINAL_MODEL)
    report = _file(REPORT)
    lock = _file(LOCK)
