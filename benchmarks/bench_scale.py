"""Scale: seconds per PTQ episode against the float evaluation, peak RSS, and cold cost tables,
from resnet20-fmnist (41M MACs) up to resnet50-imagenet (4.1G MACs).

Every model runs in a fresh subprocess at one thread (``torch.set_num_threads(1)``) on
``haq.search.zoo_on_synthetic`` data: synthetic images of the model's input shape, made on
demand, labelled by the float model (trained weights for the Fashion-MNIST models, random
weights fitted to the images for the ImageNet-shaped ones). Measured per model, with N
held-out images:

* ``label_s``: labelling the N images (one float pass); ``data_s``: only making and batching
  them (no model), which both evaluations below include;
* ``float_s``: float evaluation of the N images at the search's batch size;
* ``fill_s``: ``set_policy_`` with uniform 2..8 bits once each, which fills the per-(layer,
  bits) caches a search fills during its first episodes (weight clips, activation clips);
* ``episode_s``: PTQ episodes after that (random per-layer bits in 2..8: ``set_policy_`` +
  evaluation of the N images), the median and all of them;
* ``peak_rss_gib``: ``ru_maxrss`` of the subprocess (everything above included);
* ``profile``: the aten ops taking most self time in an episode and in the float evaluation
  on the first 64 images (``torch.profiler``).

``cost-tables`` builds resnet50-imagenet's table on every cost model into an empty
``HAQ_CACHE_DIR`` (cold). Results: ``benchmarks/results/bench_scale.jsonl``, one line per key;
a rerun skips finished keys (``--only KEY`` runs some). ``--jobs 2`` runs two single-thread
subprocesses at once (one per core).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_scale.py [--images 512] [--jobs 1]
    PYTHONPATH=src .venv/bin/python benchmarks/bench_scale.py --markdown   # the tables
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from _harness import Results, begin, bench_parser

# model -> timed episodes (fewer for the slowest, whose one episode of 512 images is minutes)
MODELS = {"resnet20-fmnist": 3, "mobilenetv1-fmnist": 3, "mobilenetv2-imagenet": 3,
          "vit-tiny-imagenet": 2, "resnet50-imagenet": 1}
TABLE_MODEL = "resnet50-imagenet"
PROFILE_IMAGES = 64
CALIBRATION_IMAGES = 128


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _top_ops(fn: Any, count: int = 6) -> list[tuple[str, float]]:
    """(aten op, self CPU seconds) of the ``count`` most expensive ops while ``fn`` runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return [(e.key, round(e.self_cpu_time_total / 1e6, 3)) for e in ops[:count]]


def _random_policy(specs: list[Any], seed: int) -> Any:
    import numpy as np

    from haq.policy import Policy

    rng = np.random.default_rng(seed)
    w, a = (rng.integers(2, 9, len(specs)).tolist() for _ in range(2))
    return Policy.from_arrays(specs, w, a)


def measure_model(name: str, images: int, episodes: int) -> dict[str, Any]:
    """Every number of one model (see the module docstring); runs in its own process."""
    import torch
    from torch.utils.data import Subset

    from haq.data import loader
    from haq.finetune import evaluate
    from haq.policy import Policy
    from haq.quantize import set_policy_
    from haq.search import EvalConfig, build_problem, zoo_on_synthetic

    torch.set_num_threads(1)
    out: dict[str, Any] = {"model": name, "images": images}
    out["fit_s"], (net, splits) = _timed(
        lambda: zoo_on_synthetic(name, seed=0, sizes=(CALIBRATION_IMAGES, images, 1)))
    out["label_s"], _ = _timed(splits.heldout.labels)
    out["build_s"], problem = _timed(lambda: build_problem(
        net, splits, "size", {"size": "1.0"}, evaluation=EvalConfig(samples=images), seed=0))
    evaluator, specs = problem.evaluate, problem.specs
    heldout, batch = evaluator.heldout, evaluator.batch_size
    out.update(layers=len(specs), params=sum(p.numel() for p in net.parameters()),
               macs=sum(s.macs for s in specs), batch=batch,
               float_accuracy=problem.float_accuracy)
    out["data_s"], _ = _timed(lambda: sum(len(y) for _, y in loader(heldout, batch)))
    out["float_s"], _ = _timed(lambda: evaluate(net, heldout, batch_size=batch))
    model = evaluator.model
    out["fill_s"], _ = _timed(lambda: [set_policy_(model, Policy.uniform(specs, b, b))
                                       for b in range(2, 9)])
    results = [evaluator(_random_policy(specs, seed)) for seed in range(episodes)]
    out["episode_all_s"] = [round(r.seconds, 3) for r in results]
    out["episode_s"] = statistics.median(r.seconds for r in results)
    out["episode_accuracy"] = [r.accuracy for r in results]
    out["ratio"] = out["episode_s"] / out["float_s"]
    first = Subset(heldout, range(min(PROFILE_IMAGES, len(heldout))))
    set_policy_(model, _random_policy(specs, 0))
    out["profile"] = {
        "episode": _top_ops(lambda: evaluate(model, first, batch_size=batch)),
        "float": _top_ops(lambda: evaluate(net, first, batch_size=batch))}
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def measure_tables() -> dict[str, Any]:
    """Cold build seconds of resnet50-imagenet's table on every cost model (own process)."""
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["HAQ_CACHE_DIR"] = cache
        from haq.cost import available, get
        from haq.models import create, example_input
        from haq.specs import extract_specs

        specs = extract_specs(create(TABLE_MODEL), example_input(TABLE_MODEL))
        seconds = {name: round(_timed(lambda n=name: get(n).table(specs))[0], 3)
                   for name in available() if name != "table"}  # "table" loads a user file
    return {"model": TABLE_MODEL, "layers": len(specs), "table_s": seconds,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _child(key: str, args: argparse.Namespace) -> None:
    record = measure_tables() if key == "cost-tables" else measure_model(
        key, args.images, MODELS[key])
    print(json.dumps(record))


def _run(key: str, args: argparse.Namespace) -> tuple[str, dict[str, Any] | None, float]:
    command = [sys.executable, __file__, "--child", key, "--images", str(args.images)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(f"{key} failed:\n{done.stderr[-3000:]}", flush=True)
        return key, None, wall
    return key, json.loads(done.stdout.strip().splitlines()[-1]), wall


def markdown(results: Results, images: int) -> str:
    """The docs/benchmarks.md tables of the finished keys."""
    lines = ["| model | layers | params | MACs/image | batch | float eval s | episode s | "
             "episode / float | same, data excluded | data s | fill caches s | peak RSS GiB |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for name, episodes in MODELS.items():
        r = results.records.get(f"{name}@{images}")
        if r is None:
            continue
        model_only = (r["episode_s"] - r["data_s"]) / (r["float_s"] - r["data_s"])
        lines.append(
            f"| {name} | {r['layers']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:,.0f}M | "
            f"{r['batch']} | {r['float_s']:.2f} | {r['episode_s']:.2f} (median of {episodes}) | "
            f"{r['ratio']:.2f}x | {model_only:.2f}x | {r['data_s']:.2f} | {r['fill_s']:.1f} | "
            f"{r['peak_rss_gib']:.2f} |")
    tables = results.records.get(f"cost-tables@{images}")
    if tables is not None:
        lines += ["", f"| cost model ({tables['model']}, cold) | build s |", "|---|--:|"]
        lines += [f"| {n} | {s:.2f} |" for n, s in tables["table_s"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, "bench_scale")
    parser.add_argument("--images", type=int, default=512, help="held-out images per episode")
    parser.add_argument("--jobs", type=int, default=1, help="subprocesses at once")
    parser.add_argument("--only", nargs="*", help="keys to run (default: all)")
    parser.add_argument("--markdown", action="store_true", help="print the results as tables")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args)
        return
    if args.markdown:
        print(markdown(Results(args.results, args.variant), args.images))
        return
    args, results = begin(parser)  # one thread, as in every subprocess
    # slowest first, so two jobs finish together
    keys = [k for k in ("resnet50-imagenet", "cost-tables", *MODELS)
            if not (args.only and k not in args.only)]
    keys = [k for k in dict.fromkeys(keys) if not results.finished(f"{k}@{args.images}")]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in as_completed([pool.submit(_run, k, args) for k in keys]):
            key, record, wall = future.result()
            if record is not None:
                results.add(f"{key}@{args.images}", wall_s=wall, jobs=args.jobs, **record)
                print(f"{key}: {json.dumps(record)}", flush=True)


if __name__ == "__main__":
    main()
