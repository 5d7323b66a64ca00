"""Post-training quantization with haq's defaults: test top-1 without any fine-tune.

For each zoo model: float top-1, then uniform W8A8 / W4A8 / W3A8 with the default
``QuantConfig`` (batch norm folded, output-error weight clips, per-layer and sequential bias
correction, nearest rounding) and the same with ``rounding="learned"`` (three seeds on the
headline model); for comparison the defaults without the sequential correction
(``per-layer``), the older defaults (no folding, no bias correction, weight-MSE clips) and, on
the headline model, the steps between them and per-layer activation clips (``act_clip="best"``).
Calibration is what ``haq apply`` uses: the first 8 batches of 128 of the seeded (seed 0)
shuffled training loader. ``seconds`` (wall) and ``cpu_seconds`` (this process's CPU time, which
a busy shared machine inflates less) are calibration + quantization (``apply_policy_``), not the
evaluation; ``load`` is the 1-minute load average when the configuration finished.

    OMP_NUM_THREADS=1 python benchmarks/bench_ptq.py [--models NAME ...] [--only KEY]

Results: benchmarks/results/bench_ptq.jsonl (one line per configuration; resumable).
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

from _harness import Results, begin, bench_parser
from haq import data as hdata
from haq.finetune import evaluate
from haq.models import create, example_input, info
from haq.policy import Policy
from haq.quantize import QuantConfig, apply_policy_
from haq.search import calibration_batches
from haq.specs import extract_specs

MODELS = ("mobilenetv1-fmnist", "mobilenetv2-fmnist", "resnet20-fmnist")
HEADLINE = "mobilenetv1-fmnist"
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "learned": {"rounding": "learned"},
    # the defaults before the sequential correction (measured 2026-12-02)
    "per-layer": {"sequential_correction": False},
    "learned per-layer": {"rounding": "learned", "sequential_correction": False},
    # per-layer activation clips chosen by the layer's output error, on the headline model
    "best act clip": {"act_clip": "best"},
    # the defaults before batch-norm folding and bias correction, and the steps in between
    "previous": {"fold_bn": False, "bias_correction": False, "weight_clip": "mse",
                 "sequential_correction": False},
    "fold": {"bias_correction": False, "weight_clip": "mse", "sequential_correction": False},
    "fold+bias": {"weight_clip": "mse", "sequential_correction": False},
}


def _runs(model: str) -> list[tuple[str, int, int]]:
    """(config, weight bits, seed) to measure for ``model``."""
    runs = [(config, bits, 0) for config in ("default", "learned") for bits in (8, 4, 3)]
    if model == HEADLINE:
        runs += [("learned", bits, seed) for bits in (4, 3) for seed in (1, 2)]
        runs += [("best act clip", bits, 0) for bits in (4, 3)]
    runs += [("per-layer", bits, 0) for bits in (8, 4, 3)]
    seeds = (0, 1, 2) if model == HEADLINE else (0,)
    runs += [("learned per-layer", bits, seed) for bits in (4, 3) for seed in seeds]
    runs += [("previous", bits, 0) for bits in (8, 4, 3)]
    if model == HEADLINE:
        runs += [(step, bits, 0) for step in ("fold", "fold+bias") for bits in (4, 3)]
    return runs


def table(results: Results) -> str:
    """The measured rows as a markdown table (mean and range over seeds where there are several)."""
    rows = ["| model | config | policy | top-1 % (float) | seeds | CPU s | wall s |",
            "|---|---|---|---|---|---|---|"]
    records = list(results)
    floats = {r["model"]: r["accuracy"] for r in records if r["config"] == "float"}
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in records:
        if r["config"] != "float":
            groups.setdefault((r["model"], r["config"], r["w_bits"]), []).append(r)
    for (model, config, bits), runs in groups.items():
        accs = [r["accuracy"] for r in runs]
        mean = sum(accs) / len(accs)
        spread = f" ({min(accs):.2f}–{max(accs):.2f})" if len(accs) > 1 else ""
        cpu = sum(r["cpu_seconds"] for r in runs) / len(runs)
        wall = sum(r["seconds"] for r in runs) / len(runs)
        rows.append(f"| {model} | {config} | W{bits}A8 | {mean:.2f}{spread} "
                    f"({floats.get(model, float('nan')):.2f}) | {len(accs)} | {cpu:.1f} | "
                    f"{wall:.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = bench_parser(__doc__, "bench_ptq", keyed=True)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--table", action="store_true", help="print the results as markdown")
    args, results = begin(parser)
    if args.table:
        print(table(results))
        return
    for model in args.models:
        net = create(model, pretrained=True).eval()
        specs = extract_specs(net, example_input(model))
        splits = hdata.load(info(model).dataset)
        calibration = calibration_batches(splits.train)
        key = f"{model}/float"
        if not results.done(key):
            results.add(key, model=model, config="float", accuracy=evaluate(net, splits.test))
        for config, bits, seed in _runs(model):
            key = f"{model}/{config}/W{bits}A8/s{seed}"
            if results.done(key) or (args.only and args.only not in key):
                continue
            quant = QuantConfig(**CONFIGS[config], seed=seed)
            started, cpu_started = time.perf_counter(), time.process_time()
            quantized = apply_policy_(copy.deepcopy(net), Policy.uniform(specs, bits, 8),
                                      calibration, quant)
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
            accuracy = evaluate(quantized, splits.test)
            results.add(key, model=model, config=config, w_bits=bits, a_bits=8, seed=seed,
                        accuracy=accuracy, seconds=seconds, cpu_seconds=cpu_seconds,
                        load=os.getloadavg()[0], quant_config=quant.to_dict(),
                        calibration_images=sum(len(batch[0]) for batch in calibration))
            print(f"{key}: {accuracy:.2f}% in {seconds:.1f} s ({cpu_seconds:.1f} s CPU)",
                  flush=True)


if __name__ == "__main__":
    main()
