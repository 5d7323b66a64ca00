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

    @property
    def meta(self) -> Path:
        return self.root / META

    @property
    def journal(self) -> Path:
        return self.root / JOURNAL

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT

    @property
    def best_policy(self) -> Path:
        return self.root / BEST

    @property
    def specs(self) -> Path:
        return self.root / SPECS

    @property
    def cost_table(self) -> Path:
        return self.root / COST_TABLE

    @property
    def result(self) -> Path:
        return self.root / RESULT

    @property
    def rescore(self) -> Path:
        return self.root / RESCORE

    @property
    def final_model(self) -> Path:
        return self.root / FINAL_MODEL

    @property
    def report(self) -> Path:
        return self.root / REPORT
