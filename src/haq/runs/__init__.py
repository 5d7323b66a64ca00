"""The run store: append-only episode journal, atomic checkpoints, provenance."""

from haq.runs._atomic import atomic_write, atomic_write_text
from haq.runs._journal import Journal
from haq.runs._lock import LOCK, run_lock
from haq.runs._store import (
    BEST,
    CHECKPOINT,
    JOURNAL,
    META,
    RunStore,
    check_run_dir,
    claim,
    holds_run,
    provenance,
    refuse_overwrite,
)

__all__ = [
    "BEST", "CHECKPOINT", "JOURNAL", "LOCK", "META",
    "Journal", "RunStore", "atomic_write", "atomic_write_text", "check_run_dir", "claim",
    "holds_run", "provenance", "refuse_overwrite", "run_lock",
]
