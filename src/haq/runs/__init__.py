"""The run store: append-only episode journal, atomic checkpoints, provenance."""

from haq.runs._atomic import atomic_write, atomic_write_text
from haq.runs._journal import Journal
from haq.runs._layout import (
    BEST,
    CHECKPOINT,
    COST_TABLE,
    FINAL_MODEL,
    JOURNAL,
    LOCK,
    META,
    REPORT,
    RESCORE,
    RESULT,
    SPECS,
    RunLayout,
)
from haq.runs._lock import run_lock
from haq.runs._store import (
    RunStore,
    check_run_dir,
    claim,
    holds_run,
    provenance,
    refuse_overwrite,
)

__all__ = [
    "BEST", "CHECKPOINT", "COST_TABLE", "FINAL_MODEL", "JOURNAL", "LOCK", "META", "REPORT",
    "RESCORE", "RESULT", "SPECS", "RunLayout",
    "Journal", "RunStore", "atomic_write", "atomic_write_text", "check_run_dir", "claim",
    "holds_run", "provenance", "refuse_overwrite", "run_lock",
]
