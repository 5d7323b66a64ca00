"""TensorBoard backend: event files (``tensorboard --logdir RUN/tensorboard``) written with
torch's ``SummaryWriter``; the best policy and the report are text summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from haq.tracking._base import Tracker, require


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        require("tensorboard")  # torch's writer needs it; refused before any work
        self.log_dir = log_dir
        self.writer: Any = None

    def _open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def _text(self, name: str, text: str) -> None:
        # TensorBoard renders text as markdown: indent it so JSON shows as a code block
        self.writer.add_text(name, "\n".join("    " + line for line in text.splitlines()))

    def _close(self, failed: bool) -> None:
        self.writer.close()
