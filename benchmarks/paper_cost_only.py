"""Paper experiment 5 (cost only): ImageNet-shaped MobileNet-V1/V2 at uniform 4/5/6/8 bits.

Latency on BISMO edge/cloud (both modes) and energy on BitFusion edge, beside the figures the
HAQ paper reports where known. Paper figures come from ../shared/reference/haq.md §5 and are
marked there as recalled, not verified against the PDF ("unverified" below).

    python benchmarks/paper_cost_only.py            # all configurations, resumable
    python benchmarks/paper_cost_only.py --only mobilenetv1-imagenet
"""

from __future__ import annotations

import time

import haq.cost
from _harness import begin, bench_parser
from haq.models import create, example_input
from haq.policy import Policy
from haq.specs import extract_specs

# PACT uniform-precision latency on BISMO edge, MobileNet-V1, from haq.md §5 (low confidence).
PAPER_EDGE_MBV1_MS = {4: 45.45, 5: 57.75, 6: 70.67}

HARDWARE = [
    ("bismo-edge", {"mode": "haq"}, "latency"),
    ("bismo-edge", {"mode": "textbook"}, "latency"),
    ("bismo-cloud", {"mode": "haq"}, "latency"),
    ("bismo-cloud", {"mode": "textbook"}, "latency"),
    ("bitfusion-edge", {}, "energy"),
    ("bitfusion-edge", {}, "latency"),
]


def main() -> None:
    args, results = begin(bench_parser(__doc__, "paper_cost_only", keyed=True))
    for model_name in ("mobilenetv1-imagenet", "mobilenetv2-imagenet"):
        model = create(model_name)
        specs = extract_specs(model, example_input(model_name))
        for hardware, params, metric in HARDWARE:
            key = f"{model_name}/{hardware}/{params.get('mode', '-')}/{metric}"
            if results.done(key) or (args.only and args.only not in key):
                continue
            start = time.perf_counter()
            table = haq.cost.get(hardware, **params).table(specs)
            build = time.perf_counter() - start
            values = {b: table.evaluate(Policy.uniform(specs, b, b))[metric] for b in (4, 5, 6, 8)}
            paper = PAPER_EDGE_MBV1_MS if (model_name, hardware, metric) == (
                "mobilenetv1-imagenet", "bismo-edge", "latency") else {}
            results.add(key, model=model_name, hardware=hardware, params=params, metric=metric,
                        unit=table.units[metric], uniform={str(b): v for b, v in values.items()},
                        ratio_to_w8a8={str(b): v / values[8] for b, v in values.items()},
                        paper_unverified={str(b): v for b, v in paper.items()},
                        table_seconds=build)
            print(key, {b: f"{v:.4g}" for b, v in values.items()}, table.units[metric])


if __name__ == "__main__":
    main()
