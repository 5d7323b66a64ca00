"""Executors: evaluate a batch of independent jobs and hand the results back in order.

The episode loop, the sensitivity probes and ``compare`` run their jobs through an executor.
``LocalExecutor`` runs them in this process; ``RayExecutor`` (the ``haq[ray]`` extra) runs them
on Ray actors that each hold one replica of the job function (a model and its cached quantized
weights), on one machine or a cluster. Ray is imported only when a ``RayExecutor`` is built.
"""

from haq.executors._base import (
    Executor,
    LocalExecutor,
    Pool,
    check_reachable,
    check_request,
    distributed,
    make_executor,
    map_parts,
)
from haq.executors._ray import RayExecutor  # imports Ray only when one is built

__all__ = ["Executor", "LocalExecutor", "Pool", "RayExecutor", "check_reachable", "check_request",
           "distributed", "make_executor", "map_parts"]
