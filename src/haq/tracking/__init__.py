"""Experiment tracking: a search's episodes, best policy and report sent to MLflow or
TensorBoard, as an optional extra (``pip install haq[track]``).

``open_tracker("mlflow" | "tensorboard", run_dir)`` gives a tracker; pass ``tracker.wrap()``
(or ``tracker.wrap(your_progress)``) as the ``progress`` callback of ``haq.search`` and call
``tracker.finish(result, run_dir)`` at the end::

    with open_tracker("tensorboard", "runs/a") as tracker:
        result = haq.search(..., run_dir="runs/a", progress=tracker.wrap())
        tracker.finish(result, "runs/a")

Each episode logs ``reward``, ``accuracy`` (the search's metric) and ``cost/<metric>`` at step
= episode; the end logs ``best/...`` values, ``best_policy.json`` and ``result.json``. The
tracking packages are imported only when a tracker is opened.
"""

from haq.tracking._base import TRACKERS, NullTracker, Tracker, episode_scalars, open_tracker

__all__ = ["TRACKERS", "NullTracker", "Tracker", "episode_scalars", "open_tracker"]
