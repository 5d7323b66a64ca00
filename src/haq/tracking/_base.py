"""What every tracker logs, and when; the backends only say how to write a scalar or a text.

A tracker opens its backend at the first thing it logs, not when it is made: the search checks
and claims its run directory first, and a directory holding anything but a haq run is refused.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from haq.errors import ConfigError

Progress = Callable[[dict[str, Any]], None]
# keys of a search's progress event logged as they are (the rest are counters or text)
_SCALARS = ("reward", "accuracy", "metric", "best_reward", "best_accuracy")
# result.json keys logged once at the end as ``best/<key>``
_FINAL = ("best_accuracy", "test_accuracy", "float_accuracy", "float_test_accuracy",
          "w8a8_accuracy", "search_seconds", "evaluations")


def episode_scalars(event: dict[str, Any]) -> tuple[int, dict[str, float]] | None:
    """(step, {name: value}) of one episode's progress event; ``None`` for other events
    (re-scoring, an episode that failed before it was scored)."""
    if "stage" in event or "episode" not in event:
        return None
    values = {k: float(event[k]) for k in _SCALARS if _number(event.get(k))}
    values.update({f"cost/{m}": float(v) for m, v in (event.get("costs") or {}).items()
                   if _number(v)})
    return int(event["episode"]), values


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


class Tracker:
    """Logs a search as it runs; subclasses write to one backend (``_open``, ``_scalars``,
    ``_text``, ``_close``). Use it as a context manager so the backend is closed (and an
    MLflow run marked failed) whatever happens."""

    name = ""

    def __init__(self) -> None:
        self._opened = False

    def wrap(self, progress: Progress | None = None) -> Progress:
        """A progress callback that logs each episode, then calls ``progress`` (if given)."""

        def logged(event: dict[str, Any]) -> None:
            self.log_event(event)
            if progress is not None:
                progress(event)

        return logged

    def log_event(self, event: dict[str, Any]) -> None:
        scalars = episode_scalars(event)
        if scalars is not None and scalars[1]:
            self._ensure_open()
            self._scalars(*scalars)

    def finish(self, result: Any, run_dir: str | Path | None = None) -> None:
        """Log the best policy, the run's ``result.json`` (or a summary of ``result`` for a
        run kept in memory) and its headline numbers as ``best/...``."""
        self._ensure_open()
        path = None if run_dir is None else Path(run_dir) / "result.json"
        summary = json.loads(path.read_text()) if path is not None and path.is_file() else {
            "best_accuracy": result.best_accuracy, "costs": result.costs,
            "search_seconds": result.seconds, "evaluations": result.evaluations,
            **{k: v for k, v in result.extra.items() if k in _FINAL}}
        final = {f"best/{k}": float(summary[k]) for k in _FINAL if _number(summary.get(k))}
        final.update({f"best/cost/{m}": float(v) for m, v in (summary.get("costs") or {}).items()
                      if _number(v)})
        self._scalars(len(result.history), final)
        self._text("best_policy.json", json.dumps(result.best.to_dict(), indent=2) + "\n")
        self._text("result.json", json.dumps(summary, indent=2) + "\n")

    def _ensure_open(self) -> None:
        if not self._opened:
            self._open()
            self._opened = True

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._opened:
            self._close(failed=kind is not None)

    # -- one backend ------------------------------------------------------------------------
    def _open(self) -> None:
        """Create the run in the backend."""

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        """Write ``values`` at ``step``."""

    def _text(self, name: str, text: str) -> None:
        """Write a text file (an artifact)."""

    def _close(self, failed: bool) -> None:
        """Flush and end the run."""


class NullTracker(Tracker):
    """Tracks nothing (no ``--log``)."""

    def _ensure_open(self) -> None:
        return


def require(module: str) -> Any:
    """Import an optional tracking package, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"logging to {module} needs the {module} package: pip install "
                          "'haq[track]'") from None


TRACKERS = ("mlflow", "tensorboard")


def open_tracker(kind: str | None, run_dir: str | Path, *, uri: str | None = None,
                 log_dir: str | Path | None = None) -> Tracker:
    """A tracker for ``kind`` (``None``: one that logs nothing); its package is imported now,
    so a missing one is refused before any work.

    Args:
        kind: ``"mlflow"`` or ``"tensorboard"``.
        run_dir: the search's run directory; the default home of the logs (``mlruns/`` for
            MLflow's local file store, ``tensorboard/`` for event files).
        uri: MLflow tracking URI (default: ``$MLFLOW_TRACKING_URI``, else the local store).
        log_dir: TensorBoard event directory (default: ``run_dir/tensorboard``).

    Raises:
        ConfigError: an unknown kind, an option the kind does not take, or its package is
            not installed.
    """
    if kind is None:
        if uri is not None or log_dir is not None:
            raise ConfigError("--log-uri and --log-dir need --log mlflow or --log tensorboard")
        return NullTracker()
    key = kind.strip().lower()
    if key == "mlflow":
        if log_dir is not None:
            raise ConfigError("--log-dir is for --log tensorboard; MLflow takes --log-uri")
        from haq.tracking._mlflow import MlflowTracker

        return MlflowTracker(Path(run_dir), uri)
    if key == "tensorboard":
        if uri is not None:
            raise ConfigError("--log-uri is for --log mlflow; TensorBoard takes --log-dir")
        from haq.tracking._tensorboard import TensorBoardTracker

        return TensorBoardTracker(Path(log_dir) if log_dir else Path(run_dir) / "tensorboard")
    raise ConfigError(f"unknown --log {kind!r}; choose one of {', '.join(TRACKERS)}")
