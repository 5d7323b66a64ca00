"""How much does the final fine-tune recipe move test accuracy? Fixed policies, several recipes.

Every HAQ-paper comparison here ends with "the same final fine-tune" of each policy; this study
holds the policies fixed (uniform WkAk and any saved policy JSON) and varies the recipe: the
project's default (SGD lr 0.01, cosine, augmentation), a lower learning rate, and knowledge
distillation from the float model (``TrainConfig.distill``) at several strengths and lengths.
Test top-1 after each, one JSON line per (model, policy, recipe, seed).

    .venv/bin/python benchmarks/study_finetune.py [--model mobilenetv1-fmnist]
        [--policies W4A4,W5A5,path/to/policy.json] [--recipes base,kd] [--steps 100]
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

from _harness import begin, bench_parser
from haq.finetune import TrainConfig, evaluate, final_finetune_config, finetune
from haq.models import create, example_input
from haq.policy import Policy
from haq.quantize import QuantConfig, apply_policy_
from haq.search import CALIBRATION_BATCH
from haq.specs import extract_specs

RECIPES = {  # name: (changes to final_finetune_config, step multiplier)
    "base": ({}, 1),
    "lr3e-3": ({"lr": 0.003}, 1),
    "kd": ({"distill": 1.0}, 1),
    "kd-half": ({"distill": 0.5}, 1),
    "kd-x3": ({"distill": 1.0}, 3),
    "base-x3": ({}, 3),
}


def recipe(name: str, seed: int, steps: int) -> TrainConfig:
    changes, multiple = RECIPES[name]
    return dataclasses.replace(final_finetune_config(seed, 1), steps=steps * multiple, **changes)


def load_policy(text: str, specs) -> Policy:
    """"W5A5" -> uniform; anything else is a policy JSON file."""
    if text.startswith("W") and "A" in text and not Path(text).exists():
        w, a = text[1:].split("A")
        return Policy.uniform(specs, int(w), int(a))
    return Policy.load(text)


def main() -> None:
    parser = bench_parser(__doc__, "study_finetune")
    parser.add_argument("--model", default="mobilenetv1-fmnist")
    parser.add_argument("--policies", default="W4A4,W5A5,W6A6")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--steps", type=int, default=100, help="steps of the base recipe")
    parser.add_argument("--seed", type=int, default=0)
    args, results = begin(parser)
    from haq.data import load, loader
    from haq.quantize import DEFAULT_CALIBRATION_BATCHES

    model = create(args.model, pretrained=True)
    specs = extract_specs(model, example_input(args.model))
    splits = load("fashion-mnist")
    calibration = list(loader(splits.train, CALIBRATION_BATCH, shuffle=True, seed=args.seed))[
        :DEFAULT_CALIBRATION_BATCHES]
    for policy_text in args.policies.split(","):
        policy = load_policy(policy_text, specs)
        for name in args.recipes.split(","):
            key = f"{args.model}/{Path(policy_text).stem}/{name}/{args.steps}/{args.seed}"
            if results.done(key):
                print(key, results.records[key]["test_accuracy"], "(done)")
                continue
            start = time.perf_counter()
            quantized = apply_policy_(copy.deepcopy(model), policy, calibration, QuantConfig())
            config = recipe(name, args.seed, args.steps)
            finetune(quantized, splits.train, config, teacher=model)
            accuracy = evaluate(quantized, splits.test)
            results.add(key, model=args.model, policy=policy_text, recipe=name,
                        config=config.to_dict(), test_accuracy=accuracy,
                        seconds=time.perf_counter() - start)
            print(key, accuracy, flush=True)


if __name__ == "__main__":
    main()
