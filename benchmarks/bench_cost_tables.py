"""How long do cost tables take to build for MobileNet-V2 (ImageNet shapes, 53 layers)?

Times the exact BitFusion table (53 layers x 64 bit pairs, 120 loop orders x every tiling per
entry) cold, into an empty cache directory, and again from that cache; the BISMO tables (closed
form); and ``CostTable.evaluate_arrays`` on 10,000 random policies. Target: BitFusion edge cold
< 60 s on 2 cores.

    .venv/bin/python benchmarks/bench_cost_tables.py [--repeats 5]
"""

from __future__ import annotations

import statistics
import tempfile
import time

import numpy as np

from _harness import begin, bench_parser
from haq.cost import get
from haq.models import create, example_input
from haq.specs import extract_specs

MODEL = "mobilenetv2-imagenet"


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = bench_parser(__doc__, "bench_cost_tables", threads=None)
    parser.add_argument("--repeats", type=int, default=5, help="runs of the fast timings")
    args, results = begin(parser)
    specs = extract_specs(create(MODEL), example_input(MODEL))
    print(f"{MODEL}: {len(specs)} layers")
    record: dict[str, float] = {}
    for name in ("bitfusion-edge", "bitfusion-cloud"):
        with tempfile.TemporaryDirectory() as cache:
            cold, table = _timed(lambda n=name, c=cache: get(n, cache_dir=c).table(specs))
            warm = statistics.median(
                _timed(lambda n=name, c=cache: get(n, cache_dir=c).table(specs))[0]
                for _ in range(args.repeats))
        record[f"{name}_cold_s"], record[f"{name}_cached_s"] = cold, warm
        print(f"{name:16s} cold {cold:7.2f} s   cached {warm * 1e3:7.1f} ms   "
              f"({len(table.metrics)} metrics: {', '.join(table.metrics)})")
    for name in ("bismo-edge", "bismo-cloud"):
        t = statistics.median(_timed(lambda n=name: get(n).table(specs))[0]
                              for _ in range(args.repeats))
        record[f"{name}_s"] = t
        print(f"{name:16s} build {t * 1e3:7.2f} ms")
    table = get("bismo-cloud").table(specs)
    rng = np.random.default_rng(0)
    w = rng.integers(1, 9, size=(10_000, len(specs)))
    a = rng.integers(1, 9, size=(10_000, len(specs)))
    t = statistics.median(_timed(lambda: table.evaluate_arrays(w, a))[0]
                          for _ in range(args.repeats))
    record["evaluate_arrays_10k_s"] = t
    print(f"evaluate_arrays  10,000 policies x {len(specs)} layers: {t * 1e3:.1f} ms")
    results.add(f"{MODEL}-{time.strftime('%Y%m%d-%H%M%S')}", **record)


if __name__ == "__main__":
    main()
