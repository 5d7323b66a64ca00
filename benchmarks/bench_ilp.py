"""How long does the exact bit-allocation ILP take? Target: < 1 s for 100 layers x 64 pairs
with two budgets.

Two workloads, each solved for several seeds:

* ``synthetic``: 100 layers, all 64 (w, a) pairs in 1..8, a random score that falls with bits
  plus a random interaction term, two random cost metrics, budgets at a random 10-60 % of the
  way from the cheapest to the dearest policy (``haq.testing.random_score_and_costs``);
* ``mobilenetv2-bismo``: MobileNet-V2 (ImageNet shapes, 53 layers) priced by ``bismo-cloud``
  (latency and DRAM budgets at 0.5x and 0.9x W8A8; DRAM cannot go below 0.81x), with a score
  ``s_w 4^-w + s_a 4^-a`` (per-layer random scales), the shape OHQ and HAWQ produce.

    .venv/bin/python benchmarks/bench_ilp.py [--seeds 20]
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from _harness import begin, bench_parser
from haq.cost import Budget, get
from haq.models import create, example_input
from haq.policy import GRID_SIZE, BitSpace
from haq.search._ilp import Constraint, solve_choice
from haq.specs import extract_specs
from haq.testing import random_score_and_costs


def synthetic(seed: int) -> tuple[np.ndarray, np.ndarray, list[Constraint]]:
    rng = np.random.default_rng(seed)
    score, costs = random_score_and_costs(100, rng, n_costs=2)
    mask = np.zeros((100, GRID_SIZE, GRID_SIZE), dtype=bool)
    mask[:, :8, :8] = True
    cons = []
    for m, cost in enumerate(costs):
        per_layer = np.where(mask, cost, np.nan).reshape(100, -1)
        lo, hi = np.nanmin(per_layer, 1).sum(), np.nanmax(per_layer, 1).sum()
        cons.append(Constraint(f"m{m}", cost, lo + rng.uniform(0.1, 0.6) * (hi - lo)))
    return score, mask, cons


def mobilenet(seed: int, specs, table) -> tuple[np.ndarray, np.ndarray, list[Constraint]]:
    rng = np.random.default_rng(seed)
    bits = np.arange(1, GRID_SIZE + 1, dtype=np.float64)
    sw = rng.uniform(0.2, 5.0, size=len(specs))[:, None] * 4.0 ** -bits[None]
    sa = rng.uniform(0.2, 5.0, size=len(specs))[:, None] * 4.0 ** -bits[None]
    sw[:, -1] = sa[:, -1] = 0.0  # float
    score = sw[:, :, None] + sa[:, None, :]
    mask = BitSpace((1, 8), (1, 8)).mask(specs)
    cons = [Constraint(b.metric, table.full_array(b.metric), b.resolve(table))
            for b in (Budget("latency", 0.5, relative=True), Budget("dram", 0.9, relative=True))]
    return score, mask, cons


def main() -> None:
    parser = bench_parser(__doc__, "bench_ilp", threads=None)
    parser.add_argument("--seeds", type=int, default=20, help="instances per workload")
    args, results = begin(parser)
    specs = extract_specs(create("mobilenetv2-imagenet"), example_input("mobilenetv2-imagenet"))
    table = get("bismo-cloud").table(specs)
    record: dict[str, float] = {}
    for name, build in (("synthetic", synthetic),
                        ("mobilenetv2-bismo", lambda s: mobilenet(s, specs, table))):
        times, optimal = [], 0
        for seed in range(args.seeds):
            score, mask, cons = build(seed)
            start = time.perf_counter()
            choice = solve_choice(score, mask, cons)
            times.append(time.perf_counter() - start)
            optimal += int(choice.optimal)
            rows = np.arange(score.shape[0])
            for con in cons:  # the budgets really hold
                total = con.cost[rows, choice.w_index, choice.a_index].sum()
                assert total <= con.limit * (1 + 1e-9), (name, seed, con.metric)
        med, worst = statistics.median(times), max(times)
        record[f"{name}_median_s"], record[f"{name}_max_s"] = med, worst
        record[f"{name}_p90_s"] = float(np.percentile(times, 90))
        print(f"{name:18s} layers {score.shape[0]:3d}  median {med:.3f} s  p90 "
              f"{record[f'{name}_p90_s']:.3f} s  max {worst:.3f} s  proven optimal "
              f"{optimal}/{args.seeds}")
    results.add(f"ilp-{time.strftime('%Y%m%d-%H%M%S')}", seeds=args.seeds, **record)


if __name__ == "__main__":
    main()
