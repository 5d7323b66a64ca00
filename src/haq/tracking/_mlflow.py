"""MLflow backend: one MLflow run per search, in the experiment ``haq``.

Without a URI (``--log-uri`` or ``$MLFLOW_TRACKING_URI``) runs go to a local file store in
``RUN/mlruns`` (browse it with ``mlflow ui --backend-store-uri RUN/mlruns``). MLflow 3 keeps
that store only behind ``MLFLOW_ALLOW_FILE_STORE``, which is set for a file store unless the
user set it; any other URI (``sqlite:///mlflow.db``, ``http://host:5000``) is used as given.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import haq
from haq.errors import ConfigError
from haq.tracking._base import Tracker, require

EXPERIMENT = "haq"


def _is_file_store(uri: str) -> bool:
    return uri.startswith("file:") or "://" not in uri and not uri.startswith("databricks")


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, run_dir: Path, uri: str | None = None) -> None:
        super().__init__()
        self.mlflow = require("mlflow")
        self.run_dir = run_dir
        self.uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or \
            (run_dir / "mlruns").resolve().as_uri()
        self.client: Any = None
        self.run_id = ""

    def _open(self) -> None:
        if _is_file_store(self.uri):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            self.client = self.mlflow.MlflowClient(tracking_uri=self.uri)
            found = self.client.get_experiment_by_name(EXPERIMENT)
            experiment = found.experiment_id if found else self.client.create_experiment(
                EXPERIMENT)
            run = self.client.create_run(experiment, run_name=self.run_dir.name,
                                         tags={"haq.version": haq.__version__,
                                               "haq.run_dir": str(self.run_dir)})
        except Exception as err:  # the backend's own errors: unreachable, refused, ...
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(f"cannot open an MLflow run at {self.uri}: {first}; check "
                              "--log-uri / MLFLOW_TRACKING_URI") from None
        self.run_id = run.info.run_id

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, step)
                                                    for key, value in values.items()])

    def _text(self, name: str, text: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def _close(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
