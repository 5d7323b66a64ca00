"""The data and metric options every command that scores a model shares.

``--dataset NAME`` picks a built-in dataset; ``--data DIR`` an image folder (``train/``,
``val/``, optional ``test/``; ``--resize``, ``--mean``, ``--std``, ``--grayscale`` apply to it)
and ``--data file.py:factory`` the user's own splits. ``--metric file.py:fn`` (with
``--metric-mode max|min``) replaces top-1. Everything is checked here, before any model or data
is loaded, and bad input is a ``ConfigError`` (exit code 2, one line).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

DATA = typer.Option(None, "--data", metavar="DIR|FILE.py:FN",
                    help="your data: an image folder DIR (DIR/train/<class>/*, "
                    "DIR/val/<class>/*, optional DIR/test) or path/to/file.py:factory returning "
                    "{'train':, 'heldout':, 'test':} Datasets/DataLoaders; instead of --dataset")
RESIZE = typer.Option(None, "--resize", metavar="H,W",
                      help="image folder: resize every image to H,W (e.g. 32,32)")
MEAN = typer.Option(None, "--mean", metavar="M[,M,M]",
                    help="image folder: per-channel mean subtracted after scaling to [0, 1]")
STD = typer.Option(None, "--std", metavar="S[,S,S]",
                   help="image folder: per-channel std divided by after the mean")
GRAYSCALE = typer.Option(False, "--grayscale", help="image folder: read images as 1 channel "
                         "(default RGB)")
METRIC = typer.Option(None, "--metric", metavar="FILE.py:FN",
                      help="score with FN(model, loader) -> float instead of top-1")
METRIC_MODE = typer.Option(None, "--metric-mode", metavar="max|min",
                           help="whether higher (max, default) or lower --metric is better")


def _floats(option: str, text: str | None) -> tuple[float, ...] | None:
    from haq.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} {text!r} must be numbers separated by commas, e.g. "
                          "0.5,0.5,0.5") from None


@dataclass(frozen=True)
class DataChoice:
    """What the data and metric options resolved to.

    Attributes:
        dataset: the built-in dataset name, or a label for ``--data`` (run names, messages).
        data: the ``--data`` text, if given.
        metric: the ``haq.metrics.Metric`` to score with (top-1 by default).
    """

    dataset: str | None
    data: str | None
    metric: Any
    folder: dict[str, Any]

    def source(self, default: Any = None) -> Any:
        """``DataSplits`` of ``--data``, else ``default`` (a dataset name or splits)."""
        if self.data is None:
            return default
        from haq.data import from_factory, image_folder
        from haq.usercode import is_target

        if is_target(self.data):
            return from_factory(self.data)
        return image_folder(self.data, **self.folder)


def data_choice(dataset: str | None = None, data: str | None = None, resize: str | None = None,
                mean: str | None = None, std: str | None = None, grayscale: bool = False,
                metric: str | None = None, metric_mode: str | None = None) -> DataChoice:
    """Check the options against each other and load the metric.

    Raises:
        ConfigError: ``--dataset`` with ``--data``, folder options without a folder, a missing
            folder or factory file, ``--metric-mode`` without ``--metric``, a bad metric file.
    """
    from haq.data import ImageTransform
    from haq.errors import ConfigError
    from haq.metrics import as_metric
    from haq.usercode import is_target

    if dataset is not None and data is not None:
        raise ConfigError(f"give --dataset {dataset} or --data {data}, not both: --dataset "
                          "names a built-in dataset, --data your folder or file.py:factory")
    given = {k: v for k, v in (("--resize", resize), ("--mean", mean), ("--std", std),
                               ("--grayscale", grayscale or None)) if v is not None}
    factory = data is not None and is_target(data)
    if given and (data is None or factory):
        raise ConfigError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} only to "
                          "an image folder given with --data DIR")
    if data is not None and not factory and not Path(data).is_dir():
        raise ConfigError(f"--data {data} is neither a folder nor path/to/file.py:factory; give "
                          "a folder holding train/ and val/, or a factory file")
    if metric_mode is not None and metric is None:
        raise ConfigError("--metric-mode applies to --metric FILE.py:FN; top-1 is always max")
    size = _floats("--resize", resize)
    if size is not None and (len(size) != 2 or min(size) < 1 or any(v % 1 for v in size)):
        raise ConfigError(f"--resize {resize!r} must be two positive integers H,W, e.g. 32,32")
    folder: dict[str, Any] = {"resize": None if size is None else (int(size[0]), int(size[1])),
              "mean": _floats("--mean", mean), "std": _floats("--std", std),
              "grayscale": grayscale}
    ImageTransform(**folder)  # malformed --mean/--std are refused before any loading
    label = dataset if data is None else (
        Path(data.rpartition(":")[0]).stem if factory else Path(data).resolve().name)
    return DataChoice(label, data, as_metric(metric, metric_mode), folder)
