"""HAQ search end to end: mobilenetv1-fmnist on bismo-edge at 0.5x W8A8 latency, default preset.

Targets: 300 episodes <= 15 min on 2 cores; agent work (acting + DDPG updates) <= 10% of the
episode time. Reports setup time (tracing, cost table, calibration, float accuracy), seconds per
episode (mean, median, first 20 vs the rest: the quantized-weight cache warms up), and the
shares of evaluation, agent and projection, all read back from the run's own journal. Uses the
shipped trained weights when they exist (accuracies of an untrained network are meaningless;
the timing is the same).

    .venv/bin/python benchmarks/bench_search.py [--episodes 300] [--eval-samples 1000]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import haq
from _harness import begin, bench_parser
from haq.data import load
from haq.models import create, info
from haq.search import EvalConfig
from haq.search.rl import HaqConfig

MODEL = "mobilenetv1-fmnist"


def main() -> None:
    parser = bench_parser(__doc__, "bench_search", threads=None)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--finetune-steps", type=int, default=0)
    parser.add_argument("--run", type=Path, default=None, help="keep the run here")
    args, results = begin(parser)
    trained = info(MODEL).has_weights
    key = (f"{MODEL}-bismo-edge-0.5x-{args.episodes}ep-{args.eval_samples}s-"
           f"ft{args.finetune_steps}-t{torch.get_num_threads()}-h{HaqConfig().hidden}")
    run_dir = args.run or Path(tempfile.mkdtemp(prefix="bench_search_")) / "run"

    start = time.perf_counter()
    model, data = create(MODEL, pretrained=trained), load("fashion-mnist")
    last = {"t": time.perf_counter()}
    first_episode: dict[str, float] = {}

    def progress(event: dict) -> None:
        if event["episode"] == 0:
            first_episode["t"] = time.perf_counter()
        last["t"] = time.perf_counter()
        if (event["episode"] + 1) % 25 == 0:
            print(f"  episode {event['episode'] + 1}: best reward {event['best_reward']}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)

    result = haq.search(model, data, "bismo-edge", {"latency": "0.5"}, "haq",
                        episodes=args.episodes,
                        evaluation=EvalConfig(args.eval_samples, args.finetune_steps),
                        run_dir=run_dir, seed=0,
                        progress=progress)
    total = time.perf_counter() - start
    records = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    # wall time per episode from the journal's own timers (evaluation, agent, projection)
    evaluation = np.array([r["seconds"] for r in records])
    agent = np.array([r["agent_seconds"] for r in records])
    project = np.array([r["project_seconds"] for r in records])
    loop = last["t"] - first_episode["t"] + evaluation[0] + agent[0] + project[0]
    setup = total - loop
    per_episode = loop / len(records)
    summary = {
        "trained_weights": trained, "episodes": len(records), "total_s": round(total, 1),
        "setup_s": round(setup, 1), "s_per_episode": round(per_episode, 3),
        "median_eval_s": round(float(np.median(evaluation)), 3),
        "first20_eval_s": round(float(evaluation[:20].mean()), 3),
        "rest_eval_s": round(float(evaluation[20:].mean()), 3) if len(records) > 20 else None,
        "agent_share": round(float(agent.sum() / loop), 4),
        "agent_s_per_episode": round(float(agent.mean()), 4),
        "project_s_per_episode": round(float(project.mean()), 4),
        "cached_episodes": int(sum(r["cached"] for r in records)),
        "best_accuracy": result.best_accuracy,
        "float_accuracy": result.extra["float_accuracy"], "best_costs": result.costs,
        "best_policy": result.best.summary(), "run_dir": str(run_dir),
    }
    print(json.dumps(summary, indent=2))
    results.add(key, **summary)
    print(f"| {key} | {summary['total_s']:.0f} s | {summary['s_per_episode']:.2f} s/episode | "
          f"agent {100 * summary['agent_share']:.1f}% |")


if __name__ == "__main__":
    main()
