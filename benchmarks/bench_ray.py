"""Distributed search on Ray: episodes per minute with 1 and 2 workers, and batched-agent quality.

Two studies, one line each per configuration in ``benchmarks/results/bench_ray.jsonl``:

* ``speed``: one HAQ search problem (``--model`` on Fashion-MNIST, ``bismo-edge``, latency
  <= 0.5x W8A8, 1,000 held-out images per episode) built once, then ``--episodes`` episodes in
  this process (no Ray), on a local Ray with 1 worker, and with 2 workers (one torch thread
  each). The rate is measured after the first round, so actor start-up (each actor receives
  and unpickles the evaluator) is reported apart.
* ``oracle``: the identity oracle (``haq.testing.identity_oracle``; 8 layers, latency 0.25x
  W8A8, known optimum), HAQ's default preset for 300 episodes with K = 1 and K = 2 policies
  per round (K = 2 on the in-process executor, which runs the same algorithm as 2 Ray
  workers); quality = share of the achievable gain collected (1.0 = optimal).

    OMP_NUM_THREADS=1 python benchmarks/bench_ray.py --study speed --episodes 10
    OMP_NUM_THREADS=1 python benchmarks/bench_ray.py --study oracle [--projection saving]
"""

from __future__ import annotations

import dataclasses
import time

from _harness import begin, bench_parser
from haq.executors import LocalExecutor, RayExecutor
from haq.search import build_problem, get_strategy, run_strategy
from haq.testing import identity_oracle


def timed_search(problem, episodes: int, executor) -> dict:
    """Run HAQ, time every episode's arrival; the steady rate excludes the first round."""
    stamps: list[float] = []
    start = time.perf_counter()
    result = run_strategy(dataclasses.replace(problem, executor=executor), "haq",
                          {"episodes": episodes, "warmup": 4}, seed=0,
                          progress=lambda _event: stamps.append(time.perf_counter()))
    k = 1 if executor is None else executor.workers
    steady = (len(stamps) - k) / (stamps[-1] - stamps[k - 1]) * 60.0
    return {"episodes": episodes, "episodes_per_min": steady,
            "first_round_seconds": stamps[k - 1] - start,
            "total_seconds": time.perf_counter() - start, "best_accuracy": result.best_accuracy,
            "eval_seconds_mean": sum(r["seconds"] for r in result.history) / len(result.history)}


def speed(args, results) -> None:
    import ray

    from haq.data import load

    problem = build_problem(args.model, load("fashion-mnist"), "bismo-edge",
                            {"latency": "0.5"}, seed=0)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for name, executor in (("in-process", None), ("ray-1", RayExecutor(1)),
                               ("ray-2", RayExecutor(2))):
            key = f"speed/{args.model}/{name}/e{args.episodes}"
            if results.finished(key):
                continue
            record = results.add(key, study="speed", model=args.model, executor=name,
                                 **timed_search(problem, args.episodes, executor))
            print(key, f"{record['episodes_per_min']:.1f} episodes/min")
    finally:
        ray.shutdown()


def oracle(args, results) -> None:
    syn = identity_oracle(layers=8, budget=0.25, seed=0)
    for seed in args.seeds:
        for k in (1, 2):
            rule = "" if args.projection == "widest" else f"/{args.projection}"
            key = f"oracle/k{k}/s{seed}{rule}"
            if results.finished(key):
                continue
            problem = dataclasses.replace(syn.problem(), executor=LocalExecutor(k))
            result = get_strategy("haq", projection=args.projection).run(problem, seed=seed)
            record = results.add(key, study="oracle", k=k, seed=seed, episodes=300,
                                 projection=args.projection,
                                 quality=syn.quality(result.best_accuracy))
            print(key, f"quality {record['quality']:.4f}")


def main() -> None:
    parser = bench_parser(__doc__, "bench_ray")
    parser.add_argument("--study", choices=("speed", "oracle", "both"), default="both")
    parser.add_argument("--model", default="mobilenetv1-fmnist")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per speed run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="oracle seeds")
    parser.add_argument("--projection", default="widest", help="oracle: the budget projection "
                        "rule (\"saving\" leaves the agent more to learn)")
    args, results = begin(parser)
    if args.study in ("oracle", "both"):
        oracle(args, results)
    if args.study in ("speed", "both"):
        speed(args, results)


if __name__ == "__main__":
    main()
