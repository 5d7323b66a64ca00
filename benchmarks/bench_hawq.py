"""HAWQ against OHQ and uniform at weights-only size budgets, post-training, on the test split.

For each budget "size of uniform k-bit weights" (k = 4, 3; activations fixed at 8 bits through
``BitSpace(weights_only=True, fixed_a_bits=8)``), each strategy searches with the public
``haq.search(...)`` on the ``size`` cost model; its best policy is then calibrated exactly as in
the search and scored on the test split without any fine-tuning. Results go to
``benchmarks/results/bench_hawq.jsonl`` (one line per model/budget/strategy/seed; a rerun skips
what is there).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_hawq.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch

import haq
from _harness import begin, bench_parser
from haq.cost import Budget
from haq.data import load, loader
from haq.models import create
from haq.policy import BitSpace
from haq.quantize import DEFAULT_CALIBRATION_BATCHES, QuantConfig

CALIBRATION_BATCH = 128  # as haq.search calibrates every policy


def test_accuracy(model: torch.nn.Module, splits, policy, seed: int) -> float:
    """Post-training test top-1 of ``policy``: calibrated on the batches the search used."""
    calibration = list(loader(splits.train, CALIBRATION_BATCH, shuffle=True, seed=seed))[
        :DEFAULT_CALIBRATION_BATCHES]
    quantized = haq.apply_policy_(copy.deepcopy(model), policy, calibration,
                                  QuantConfig.preset("default"))
    return float(haq.evaluate(quantized, splits.test))


def mean_weight_bits(result, specs) -> float:
    """Parameter-weighted mean weight bits of the best policy."""
    params = np.array([s.params for s in specs], dtype=np.float64)
    w, _ = result.best.arrays(specs)
    return float((w * params).sum() / params.sum())


def run_one(args: argparse.Namespace, bits: int, strategy: str, seed: int, model, splits,
            params: dict) -> dict:
    budget = Budget("size", 1.0, relative=True, reference=(bits, 8))
    space = BitSpace(weights_only=True, fixed_a_bits=8)
    start = time.perf_counter()
    result = haq.search(model, splits, "size", [budget], strategy, space=space, seed=seed,
                        **params)
    seconds = time.perf_counter() - start
    specs = haq.extract_specs(model, splits.train[0][0][None])
    record = {"model": args.model, "budget": f"size of W{bits}A8", "bits": bits,
              "strategy": strategy, "seed": seed, "params": params,
              "test_accuracy": test_accuracy(model, splits, result.best, seed),
              "heldout_accuracy": result.best_accuracy, "search_seconds": seconds,
              "score_seconds": result.extra.get("score_seconds"),
              "costs": result.costs, "limit": budget.limit, "policy": result.best.summary(),
              "mean_w_bits": mean_weight_bits(result, specs),
              "warnings": result.extra.get("warnings", [])}
    curvature = result.extra.get("curvature")
    if curvature is not None:
        record["curvature_converged"] = curvature["converged"]
        record["curvature_probes_per_batch"] = curvature["probes_per_batch"]
    return record


def main() -> None:
    parser = bench_parser(__doc__, "bench_hawq")
    parser.add_argument("--model", default="mobilenetv1-fmnist")
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 3])
    parser.add_argument("--strategies", nargs="+", default=["uniform", "ohq", "hawq"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--hawq-params", default="{}", help="JSON strategy parameters")
    parser.add_argument("--label", default="", help="appended to each key (e.g. another haq "
                        "checkout on PYTHONPATH) and recorded")
    args, results = begin(parser)
    model = create(args.model, pretrained=True)
    splits = load("fashion-mnist")
    hawq_params = json.loads(args.hawq_params)
    for bits in args.bits:
        for strategy in args.strategies:
            params = hawq_params if strategy == "hawq" else {}
            for seed in args.seeds:  # the seed also picks the calibration batches
                tag = "" if not params else "-" + json.dumps(params, sort_keys=True)
                label = f"-{args.label}" if args.label else ""
                key = f"{args.model}-W{bits}A8size-{strategy}-seed{seed}{tag}{label}"
                if results.finished(key):
                    continue
                record = results.add(key, label=args.label, **run_one(
                    args, bits, strategy, seed, model, splits, params))
                print(f"{key}: test {record['test_accuracy']:.2f} % (held-out "
                      f"{record['heldout_accuracy']}), {record['search_seconds']:.0f} s, "
                      f"mean w bits {record['mean_w_bits']:.2f}", flush=True)


if __name__ == "__main__":
    main()
