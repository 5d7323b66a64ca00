"""What does a HAQ episode look like at a tight budget? Random raw policies, projected, scored.

HAQ's agent proposes raw bits; the budget projection only ever lowers them. This study draws
random raw policies the way the warm-up episodes do (every operand uniform in 2-8 bits) and,
for contrast, with every operand at or above the budget's uniform bit width, projects each
onto the budget with both projection rules ("widest" and "saving", haq.cost.Projector), and
scores it on the held-out images an episode uses. The uniform k-bit policy that defines the
budget is scored beside them. Both rules see the same raw policies.

    .venv/bin/python benchmarks/study_projection.py [--model mobilenetv1-fmnist]
        [--hardware bismo-edge] [--bits 4] [--samples 30] [--threads 1]
"""

from __future__ import annotations

import statistics

import numpy as np

from _harness import begin, budget_study_parser, latency_budget_problem
from haq.cost import Projector
from haq.policy import BitSpace, Policy


def main() -> None:
    args, results = begin(budget_study_parser(__doc__, "study_projection", samples=30))
    key = f"{args.model}/{args.hardware}/{args.bits}/{args.samples}/{args.seed}"
    if results.finished(key):
        return
    budget, problem, _ = latency_budget_problem(args)
    specs, table = problem.specs, problem.table
    reference = Policy.uniform(specs, args.bits, args.bits)
    projectors = {rule: Projector(table, [budget], BitSpace(), specs, rule)
                  for rule in ("widest", "saving")}
    rng = np.random.default_rng(args.seed)

    def score_projected(low: int) -> dict[str, list[float]]:
        scores: dict[str, list[float]] = {rule: [] for rule in projectors}
        for _ in range(args.samples):
            raw = [rng.integers(low, 9, len(specs)) for _ in range(2)]
            for rule, projector in projectors.items():
                w, a = projector.project_arrays(*raw)
                policy = Policy.from_arrays(specs, w, a)
                scores[rule].append(problem.evaluate(policy).accuracy)
        return scores

    uniform_score = problem.evaluate(reference).accuracy
    samplers = {}
    for label, low in (("raw 2-8 bits (HAQ warm-up)", 2), (f"raw {args.bits}-8 bits", args.bits)):
        for rule, scores in score_projected(low).items():
            samplers[f"{label}, {rule}"] = scores
    summary = {name: {"mean": statistics.mean(s), "median": statistics.median(s),
                      "max": max(s), "scores": s} for name, s in samplers.items()}
    results.add(key, float_heldout=problem.float_accuracy, uniform_heldout=uniform_score,
                samplers=summary)
    print(f"float {problem.float_accuracy:.1f} %, uniform W{args.bits}A{args.bits} "
          f"{uniform_score:.1f} % held-out")
    for name, row in summary.items():
        print(f"{name}: mean {row['mean']:.1f}, median {row['median']:.1f}, "
              f"max {row['max']:.1f} % over {args.samples} projected policies")


if __name__ == "__main__":
    main()
