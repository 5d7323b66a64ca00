"""On-host measurement: per-layer latency tables timed on this CPU, and their validation.

``profile(model, example_input)`` times every Conv/Linear layer at the two precisions a CPU runs
natively (fp32, and int8 through PyTorch's quantized engine) and returns a ``CostTable``
(metric ``latency``, ms). ``validate(model, example_input, table, policy)`` compares the table's
per-layer sum with the measured latency of the whole model deployed under that policy.
"""

from haq.hw._profile import int8_layer, layer_input, profile, time_layer
from haq.hw._timing import median_ms
from haq.hw._validate import DEFAULT_TOLERANCE, ValidationReport, int8_model, validate

__all__ = [
    "DEFAULT_TOLERANCE", "ValidationReport", "int8_layer", "int8_model", "layer_input",
    "median_ms", "profile", "time_layer", "validate",
]
