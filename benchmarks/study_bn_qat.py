"""Short quantization-aware fine-tune of a folded model: folded-BN QAT, folded weights, or BN kept.

Uniform W4A8 on a zoo model, calibrated as ``haq apply`` does, then ``haq.finetune.finetune``
for a few hundred steps (SGD, lr 0.005 cosine, distillation from the float model, augmentation:
the ``haq finetune`` recipe, shortened). ``bn-qat``: the defaults (batch norm folded before
quantization; the fine-tune trains a BatchNorm after each folded layer with batch statistics for
the first half of the steps, frozen after, and folds it back: ``TrainConfig(bn_qat=True,
bn_freeze=0.5)``). ``folded``: the folded weight and bias train directly (``bn_qat=False``; the
statistics stay frozen in them). ``kept``: ``QuantConfig(fold_bn=False)`` (each BatchNorm stays
after its quantized conv and trains with batch statistics; that model is not the folded one a
runtime executes). Test top-1 before and after.

    OMP_NUM_THREADS=1 python benchmarks/study_bn_qat.py [--steps 200] [--seeds 0 1] [--schemes ...]

Results: benchmarks/results/study_bn_qat.jsonl (one line per configuration; resumable).
"""

from __future__ import annotations

import copy
import time

from _harness import begin, bench_parser
from haq import data as hdata
from haq.finetune import TrainConfig, evaluate, finetune
from haq.models import create, example_input, info
from haq.policy import Policy
from haq.quantize import DEFAULT_CALIBRATION_BATCHES, QuantConfig, apply_policy_
from haq.specs import extract_specs

SCHEMES = {  # (how the model is quantized, whether the fine-tune trains folded BatchNorms)
    "bn-qat": (QuantConfig(), True),
    "folded": (QuantConfig(), False),
    "kept": (QuantConfig(fold_bn=False), False),
}


def main() -> None:
    parser = bench_parser(__doc__, "study_bn_qat")
    parser.add_argument("--model", default="mobilenetv1-fmnist")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--schemes", nargs="+", choices=list(SCHEMES), default=list(SCHEMES))
    args, results = begin(parser)
    net = create(args.model, pretrained=True).eval()
    specs = extract_specs(net, example_input(args.model))
    splits = hdata.load(info(args.model).dataset)
    loader = hdata.loader(splits.train, batch_size=128, shuffle=True, seed=0)
    calibration = [x for x, _ in zip(loader, range(DEFAULT_CALIBRATION_BATCHES), strict=False)]
    for seed in args.seeds:
        for scheme in args.schemes:
            quant, bn_qat = SCHEMES[scheme]
            key = f"{args.model}/W{args.bits}A8/{scheme}/steps{args.steps}/s{seed}/v2"
            if results.finished(key):
                continue
            model = apply_policy_(copy.deepcopy(net), Policy.uniform(specs, args.bits, 8),
                                  calibration, quant)
            before = evaluate(model, splits.test)
            config = TrainConfig(steps=args.steps, lr=0.005, seed=seed, augment=True,
                                 distill=1.0, bn_qat=bn_qat)
            started = time.process_time()
            finetune(model, splits.train, config, teacher=net)
            cpu = time.process_time() - started
            after = evaluate(model, splits.test)
            results.add(key, model=args.model, scheme=scheme, w_bits=args.bits, a_bits=8,
                        steps=args.steps, seed=seed, before=before, after=after,
                        cpu_seconds=cpu, quant_config=quant.to_dict(),
                        train_config=config.to_dict())
            print(f"{key}: {before:.2f}% -> {after:.2f}% ({cpu:.0f} s CPU)", flush=True)


if __name__ == "__main__":
    main()
