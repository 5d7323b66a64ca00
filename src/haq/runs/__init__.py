"""The run store: append-only episode journal, atomic checkpoints, provenance."""

from haq.runs._atomic import atomic_write, atomic_write_text

__all__ = ["atomic_write", "atomic_write_text"]
