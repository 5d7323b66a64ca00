"""Parity: does an exported file compute what haq's own quantized model computes?

One function serves the tests, ``benchmarks/bench_export.py`` and ``haq export --check``: it
runs the file the way its runtime would (ONNX Runtime, qonnx's executor, or ``load_packed``)
beside the quantized model on the same batches and compares predictions and logits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from haq.data import loader as batches
from haq.device import model_device
from haq.errors import DatasetError, ExportError
from haq.export._registry import get_format

MIN_AGREEMENT = 99.9  # % of images with the same top-1
MAX_ACCURACY_GAP = 0.05  # percentage points


@dataclass(frozen=True)
class ParityReport:
    """Exported file vs haq's quantized model on the same images.

    Attributes:
        format: the file's format.
        images: images compared.
        agreement: % of images whose top-1 class is the same.
        exported_accuracy: top-1 (%) of the exported file.
        reference_accuracy: top-1 (%) of haq's quantized model.
        max_abs_logit_diff: largest |logit difference| over all images and classes.
    """

    format: str
    images: int
    agreement: float
    exported_accuracy: float
    reference_accuracy: float
    max_abs_logit_diff: float

    @property
    def passed(self) -> bool:
        """Same top-1 on >= 99.9 % of images and accuracy within 0.05 pt."""
        gap = abs(self.exported_accuracy - self.reference_accuracy)
        return self.agreement >= MIN_AGREEMENT and gap <= MAX_ACCURACY_GAP

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{verdict} {self.format}: same top-1 on {self.agreement:.2f}% of {self.images} "
                f"images, top-1 {self.exported_accuracy:.2f}% exported vs "
                f"{self.reference_accuracy:.2f}% haq, max |logit diff| "
                f"{self.max_abs_logit_diff:.3g}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def detect_format(path: str | Path) -> str:
    """The format of an exported file, from its haq metadata."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} does not exist; write it with `haq export`")
    with path.open("rb") as handle:
        start = handle.read(9)
    if len(start) == 9 and start[8:9] == b"{":  # safetensors: u64 header length, then JSON
        return "packed"
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises protobuf's untyped DecodeError on foreign files
        raise ExportError(f"{path} is neither an ONNX nor a packed file written by haq") from err
    props = {p.key: p.value for p in model.metadata_props}
    if "haq.format" not in props:
        raise ExportError(f"{path} has no haq.format metadata; pass format= explicitly")
    return props["haq.format"]


PARITY_BATCH = 250


def check_parity(exported: str | Path, model: nn.Module, loader: Iterable[Any], *,
                 format: str | None = None, max_batches: int | None = None) -> ParityReport:
    """Compare an exported file with the quantized ``model`` on ``loader``'s ``(x, y)`` batches.

    Args:
        exported: the file ``haq.export`` wrote.
        model: haq's quantized model it was exported from (fine-tuned weights included).
        loader: batches of ``(inputs, labels)``: a DataLoader or any iterable of them, or a
            torch Dataset (read in batches of ``PARITY_BATCH``, in order).
        format: the file's format; read from the file if omitted.
        max_batches: stop after this many batches.
    """
    name = format or detect_format(exported)
    run = get_format(name).load(Path(exported), model)
    if isinstance(loader, Dataset):  # samples, not batches
        loader = batches(loader, PARITY_BATCH)
    was_training = model.training
    model.eval()
    images = same = right_ref = right_out = 0
    max_diff = 0.0
    device = model_device(model)  # the runtime runs on the host, haq's model where it is
    try:
        with torch.no_grad():
            for index, batch in enumerate(loader):
                if max_batches is not None and index >= max_batches:
                    break
                x, y = _split(batch)
                ref = model(x.to(device, non_blocking=True)).float().cpu()
                out = run(x).float().cpu()
                max_diff = max(max_diff, float((ref - out).abs().max()))
                pred_ref, pred_out = ref.argmax(1), out.argmax(1)
                images += len(y)
                same += int((pred_ref == pred_out).sum())
                right_ref += int((pred_ref == y).sum())
                right_out += int((pred_out == y).sum())
    finally:
        model.train(was_training)
    if images == 0:
        raise DatasetError("the parity loader yielded no (inputs, labels) batch")
    return ParityReport(name, images, 100 * same / images, 100 * right_out / images,
                        100 * right_ref / images, max_diff)


def _split(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(batch, list | tuple) and len(batch) >= 2):
        raise DatasetError("check_parity needs (inputs, labels) batches to score accuracy")
    return batch[0], batch[1]
