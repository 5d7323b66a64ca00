"""What one more policy costs a search with the default QuantConfig (sequential correction on).

For each zoo model: calibrate once and quantize uniform W4A8 and W3A8 (so every layer's weights,
clips and per-layer corrections for both are cached), then switch between the two policies
``--repeats`` times with ``set_policy_``. What is left per switch is the sequential bias
correction's forward pass of the kept calibration images (and copying cached tensors); it is
reported as CPU seconds per ``set_policy_`` (this process's CPU time).

    OMP_NUM_THREADS=1 python benchmarks/bench_policy_cost.py [--models NAME ...] [--repeats 4]

Results: benchmarks/results/bench_policy_cost.jsonl (one line per model; resumable).
"""

from __future__ import annotations

import os
import time

from _harness import begin, bench_parser
from haq import data as hdata
from haq.models import create, example_input, info
from haq.policy import Policy
from haq.quantize import DEFAULT_CALIBRATION_BATCHES, apply_policy_, set_policy_
from haq.specs import extract_specs

MODELS = ("mobilenetv1-fmnist", "mobilenetv2-fmnist", "resnet20-fmnist")


def main() -> None:
    parser = bench_parser(__doc__, "bench_policy_cost", keyed=True)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=4)
    args, results = begin(parser)
    for model in args.models:
        key = f"{model}/W4A8<->W3A8"
        if results.done(key) or (args.only and args.only not in key):
            continue
        net = create(model, pretrained=True).eval()
        specs = extract_specs(net, example_input(model))
        loader = hdata.loader(hdata.load(info(model).dataset).train, batch_size=128,
                              shuffle=True, seed=0)
        calibration = [b for b, _ in zip(loader, range(DEFAULT_CALIBRATION_BATCHES),
                                         strict=False)]
        policies = [Policy.uniform(specs, bits, 8) for bits in (4, 3)]
        apply_policy_(net, policies[0], calibration)
        set_policy_(net, policies[1])
        started = time.process_time()
        for i in range(args.repeats):
            set_policy_(net, policies[i % 2])
        per_policy = (time.process_time() - started) / args.repeats
        results.add(key, model=model, cpu_seconds_per_policy=per_policy, repeats=args.repeats,
                    load=os.getloadavg()[0])
        print(f"{key}: {per_policy:.2f} CPU s per set_policy_", flush=True)


if __name__ == "__main__":
    main()
