"""``--log mlflow|tensorboard``, ``--log-uri``, ``--log-dir``: experiment tracking options."""

from __future__ import annotations

LOG_HELP = ("also log every episode, the best policy and the report to mlflow or tensorboard "
            "(pip install 'haq[track]')")
LOG_URI_HELP = ("MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else a file store in "
                "RUN/mlruns]")
LOG_DIR_HELP = "TensorBoard event directory [default: RUN/tensorboard]"
