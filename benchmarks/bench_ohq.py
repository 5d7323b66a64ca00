"""OHQ end to end (data-free MQE sensitivity + exact ILP) on mobilenetv1-fmnist. Target: <= 1 min
on 2 cores. ``--model`` picks another zoo model.

Times the synthetic (BN-matched) probe inputs, the |L| x (|B_w| + |B_a|) MQE probes and the ILP
separately, under a ``bismo-edge`` latency budget (0.5x W8A8) plus a size budget (0.6x W8A8),
and again on a latency table measured on this host by ``haq.hw.profile`` (any cost table
works). Uses the shipped trained weights when they exist (the sensitivities of an untrained
network are meaningless; the timing is the same).

    .venv/bin/python benchmarks/bench_ohq.py [--threads 1]
"""

from __future__ import annotations

import time

import numpy as np

from _harness import begin, bench_parser
from haq.cost import Budget, get
from haq.hw import profile
from haq.models import create, example_input, info
from haq.policy import BitSpace, Policy
from haq.search import SearchProblem
from haq.search.ohq import OhqStrategy
from haq.specs import extract_specs

MODEL = "mobilenetv1-fmnist"


def main() -> None:
    parser = bench_parser(__doc__, "bench_ohq", threads=None)
    parser.add_argument("--model", default=MODEL, help="zoo model")
    args, results = begin(parser)
    name = args.model
    trained = info(name).has_weights
    model = create(name, pretrained=trained)
    x = example_input(name)
    specs = extract_specs(model, x)
    table = get("bismo-edge").table(specs)
    size = get("size").table(specs)
    table.values["size"], table.units["size"] = size.values["size"], size.units["size"]
    problem = SearchProblem(specs=specs, table=table, space=BitSpace((2, 8), (2, 8)),
                            budgets=[Budget("latency", 0.5, relative=True),
                                     Budget("size", 0.6, relative=True)], model=model)
    strategy = OhqStrategy()
    start = time.perf_counter()
    inputs, kind = strategy.probe_inputs(problem, seed=0)
    t_inputs = time.perf_counter() - start
    start = time.perf_counter()
    result = strategy.run(problem, seed=0)
    t_total = time.perf_counter() - start
    record = {"trained_weights": trained, "layers": len(specs), "probe_inputs": kind,
              "end_to_end_s": t_total, "score_s": result.extra["score_seconds"],
              "ilp_s": result.extra["ilp_seconds"], "synthetic_inputs_s": t_inputs,
              "policy": result.best.summary(), "costs": result.costs,
              "ilp_optimal": result.extra["ilp_optimal"]}
    ref = table.evaluate(Policy.uniform(specs, 8, 8))
    print(f"{name} ({len(specs)} layers, trained weights: {trained}), probes on {kind} inputs")
    print(f"OHQ end to end {t_total:.1f} s = sensitivity {record['score_s']:.1f} s "
          f"(of which synthetic inputs ~{t_inputs:.1f} s) + ILP {record['ilp_s']:.3f} s")
    print(f"policy {record['policy']}")
    print("costs: " + ", ".join(f"{m} {v:.4g} ({v / ref[m]:.2f}x W8A8)"
                                for m, v in result.costs.items()))
    start = time.perf_counter()
    measured = profile(model, x, repeats=15)
    t_profile = time.perf_counter() - start
    mproblem = SearchProblem(specs=specs, table=measured, space=BitSpace((2, 8), (2, 8)),
                             budgets=[Budget("latency", 1.0, relative=True)], model=model)
    start = time.perf_counter()
    mresult = OhqStrategy().run(mproblem, seed=0)
    t_measured = time.perf_counter() - start
    w, _ = mresult.best.arrays(specs)
    record.update(profile_s=t_profile, measured_table_end_to_end_s=t_measured,
                  measured_table_policy=mresult.best.summary(),
                  measured_latency_ms=mresult.costs["latency"],
                  measured_w8a8_ms=float(measured.full_array("latency")[:, 7, 7].sum()))
    print(f"host-measured table: profile {t_profile:.1f} s, OHQ {t_measured:.1f} s, policy "
          f"{record['measured_table_policy']} at {record['measured_latency_ms']:.3f} ms "
          f"(W8A8 {record['measured_w8a8_ms']:.3f} ms; mean w bits {np.mean(w):.2f})")
    results.add(f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", **record)


if __name__ == "__main__":
    main()
