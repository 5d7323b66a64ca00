"""`haq version`: versions of haq and the libraries it runs on."""

from __future__ import annotations

from haq.cli._common import console


def version() -> None:
    """Print the haq, torch and numpy versions."""
    import numpy
    import torch

    import haq

    console.print(f"haq {haq.__version__}  torch {torch.__version__}  numpy {numpy.__version__}")
