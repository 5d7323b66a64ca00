"""The run store: append-only episode journal, atomic checkpoints, provenance."""

from haq.runs._atomic import atomic_write, atomic_write_text
from haq.runs._journal import Journal
from haq.runs._store import (
    BEST,
    CHECKPOINT,
    JOURNAL,
    META,
    RunStore,
    holds_run,
    provenance,
    refuse_overwrite,
)

__all__ = [
    "BEST", "CHECKPOINT", "JOURNAL", "META",
    "Journal", "RunStore", "atomic_write", "atomic_write_text", "holds_run", "provenance",
    "refuse_overwrite",
]
