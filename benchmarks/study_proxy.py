"""How well does an episode's score predict a policy's accuracy after recovery? Three proxies.

HAQ ranks policies by an episode score; the policy that ships is the one after fine-tuning.
This study draws random policies at a tight budget the way the search meets them (raw bits
uniform in k-8, projected onto the latency of uniform k-bit with the default rule), and scores
each on the whole held-out split three ways:

- ``ptq``: calibrated post-training quantization, float batch-norm statistics (the default
  episode score);
- ``bn``: the same after re-estimating batch-norm statistics on the quantized model
  (``EpisodeEvaluator(bn_batches=...)``, a few forward passes);
- ``recovery``: after ``--steps`` SGD steps of recovery (the re-ranking score, HAQ's own
  per-episode fine-tune), taken as the reference ranking.

With ``--final`` each policy also gets the final fine-tune every paper experiment uses (100
steps, distilled from the float model) and its test accuracy: the score that ships. It reports
Spearman's rank correlation of each proxy with ``recovery`` and with ``final``, and the seconds
each costs per policy.

    .venv/bin/python benchmarks/study_proxy.py [--model mobilenetv1-fmnist]
        [--hardware bismo-edge] [--bits 4] [--samples 12] [--steps 50] [--threads 1]
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from scipy.stats import spearmanr

from _harness import begin, budget_study_parser, latency_budget_problem
from haq.cost import Projector
from haq.policy import BitSpace, Policy
from haq.quantize import QuantConfig
from haq.search import FinalConfig, final_scorer
from haq.search._evaluator import EpisodeEvaluator


def main() -> None:
    parser = budget_study_parser(__doc__, "study_proxy", samples=12)
    parser.add_argument("--steps", type=int, default=50, help="recovery steps (reference)")
    parser.add_argument("--bn-batches", type=int, default=4)
    parser.add_argument("--final", action="store_true",
                        help="also fine-tune each policy 100 steps and score it on test")
    args, results = begin(parser)
    key = (f"{args.model}/{args.hardware}/{args.bits}/{args.samples}/{args.steps}/"
           f"{args.bn_batches}/{args.seed}" + ("/final" if args.final else ""))
    if results.finished(key):
        return
    budget, problem, splits = latency_budget_problem(args)
    specs = problem.specs
    common = dict(heldout=splits.heldout, calibration=problem.calibration,
                  quant_config=QuantConfig(), train_data=splits.train, seed=args.seed)
    evaluators = {
        "ptq": EpisodeEvaluator(problem.model, specs, **common),
        "bn": EpisodeEvaluator(problem.model, specs, bn_batches=args.bn_batches, **common),
        "recovery": EpisodeEvaluator(problem.model, specs, finetune_steps=args.steps, **common),
    }
    projector = Projector(problem.table, [budget], BitSpace(), specs)
    rng = np.random.default_rng(args.seed)
    policies = [Policy.uniform(specs, args.bits, args.bits)]
    for _ in range(args.samples):
        raw = [rng.integers(args.bits, 9, len(specs)) for _ in range(2)]
        policies.append(Policy.from_arrays(specs, *projector.project_arrays(*raw)))
    scores: dict[str, list[float]] = {name: [] for name in evaluators}
    seconds: dict[str, list[float]] = {name: [] for name in evaluators}
    if args.final:
        scorer = final_scorer(problem, splits.test, FinalConfig(1, steps=100), seed=args.seed)
        scores["final"], seconds["final"] = [], []
    for index, policy in enumerate(policies):
        for name, evaluator in evaluators.items():
            outcome = evaluator(policy)
            scores[name].append(outcome.accuracy)
            seconds[name].append(outcome.seconds)
        if args.final:
            start = time.perf_counter()
            scores["final"].append(scorer(policy))
            seconds["final"].append(time.perf_counter() - start)
        print(index, {name: round(s[-1], 2) for name, s in scores.items()}, flush=True)
    correlation = {f"{name} vs {ref}": float(spearmanr(scores[name], scores[ref]).statistic)
                   for ref in ("recovery", "final") if ref in scores
                   for name in ("ptq", "bn", "recovery") if name != ref}
    results.add(key, scores=scores, seconds={k: statistics.mean(v) for k, v in seconds.items()},
                spearman=correlation, first_is_uniform=True)
    print("Spearman:", correlation)
    print("seconds per policy:", {k: round(statistics.mean(v), 2) for k, v in seconds.items()})


if __name__ == "__main__":
    main()
