"""The sequential bias correction's sample: what each kept image costs a search episode and buys.

``calibrate_(..., correction_images=N)`` keeps the first N calibration images; every
``set_policy_`` with new bits then runs them through the quantized model once. A search sets a
policy per episode, so N prices every episode (``EvalConfig.correction_images``, 256 by
default), while ``apply_policy_`` and the final model keep 1,024. For each N this measures the
CPU seconds of one ``set_policy_`` that changes one layer's bits (mean of three), the held-out
scoring of 500 images it is paid beside, and the test top-1 of uniform W4A8 and W3A8
(calibration as ``haq apply``: 8 seeded batches of 128 training images).

    OMP_NUM_THREADS=1 python benchmarks/bench_correction.py [--models NAME ...]

Results: benchmarks/results/bench_correction.jsonl (one line per (model, N); resumable).
"""

from __future__ import annotations

import copy
import time

import torch

from _harness import begin, bench_parser
from haq import data as hdata
from haq.finetune import evaluate
from haq.models import create, example_input, info
from haq.policy import Policy
from haq.quantize import (
    QuantConfig,
    calibrate_,
    prepare_,
    set_policy_,
)
from haq.search import calibration_batches
from haq.specs import extract_specs

SIZES = (128, 256, 512, 1024)


def set_policy_seconds(model: torch.nn.Module, base: Policy, repeats: int = 3) -> float:
    """CPU seconds of one ``set_policy_`` that moves one layer's weights up a bit."""
    names = list(base.layers)
    started = time.process_time()
    for index in range(repeats):
        name = names[index]
        bits = base.layers[name]
        set_policy_(model, {name: (bits.w_bits + 1, bits.a_bits)})
        set_policy_(model, {name: (bits.w_bits, bits.a_bits)})  # back, for the next
    return (time.process_time() - started) / (2 * repeats)


def main() -> None:
    parser = bench_parser(__doc__, "bench_correction", keyed=True)
    parser.add_argument("--models", nargs="+", default=["mobilenetv1-fmnist"])
    args, results = begin(parser)
    for model in args.models:
        net = create(model, pretrained=True).eval()
        specs = extract_specs(net, example_input(model))
        splits = hdata.load(info(model).dataset)
        calibration = calibration_batches(splits.train)
        heldout = torch.utils.data.Subset(splits.heldout, range(500))
        for size in SIZES:
            key = f"{model}/{size}"
            if results.done(key) or (args.only and args.only not in key):
                continue
            accuracy, seconds = {}, {}
            for bits in (4, 3):
                policy = Policy.uniform(specs, bits, 8)
                quantized = prepare_(copy.deepcopy(net), list(policy.layers), QuantConfig())
                calibrate_(quantized, calibration, correction_images=size)
                set_policy_(quantized, policy)
                accuracy[f"W{bits}A8"] = evaluate(quantized, splits.test)
                seconds[f"W{bits}A8"] = set_policy_seconds(quantized, policy)
            started = time.process_time()
            evaluate(quantized, heldout)
            scoring = time.process_time() - started
            results.add(key, model=model, correction_images=size, accuracy=accuracy,
                        set_policy_cpu_seconds=seconds, heldout500_cpu_seconds=scoring)
            print(key, accuracy, {k: round(v, 2) for k, v in seconds.items()},
                  f"scoring 500: {scoring:.2f} s", flush=True)


if __name__ == "__main__":
    main()
