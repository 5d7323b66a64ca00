"""HGQ vs uniform fixed-point QAT on Fashion-MNIST: accuracy against exact EBOPs.

Model: the HGQ paper's SVHN-style CNN scaled to 28x28 grey images (Conv16-Pool-Conv16-Pool-
Conv24, Dense42-Dense64-Dense10, ReLU, 3x3 valid convs, no BatchNorm), pre-trained in float.

* **Uniform QAT**: every weight and every layer input on one fixed-point width b (weights b-1
  magnitude bits + sign, f per layer from the weight range; inputs b bits from their range),
  f frozen, ``--epochs`` x ``--steps`` batches of QAT per width. b = 3, 4, 5, 6.
* **HGQ**: one run from the same float model, per-weight f for weights, per-layer f for inputs
  (the paper's SVHN setting), cost = EBOPs, beta warm-up then geometric ramp; every "epoch"
  (``--steps`` batches) offers (validation accuracy, EBOPs) to the Pareto front. Matched
  compute: by default HGQ trains as many batches as the four QAT runs together.

Every point is scored on the official 10k test split, with exact EBOPs after tracing the input
ranges on training data. HGQ "dominates" a uniform point when some front point has EBOPs <= its
EBOPs and test accuracy >= its accuracy.

    .venv/bin/python benchmarks/bench_hgq.py [--train 20000] [--epochs 30] [--steps 60]
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from _harness import begin, bench_parser
from haq.data import load
from haq.search.hgq._cost import EbopsCost
from haq.search.hgq._layers import trace_ranges, wrap_model
from haq.search.hgq._quantizer import integer_bits
from haq.search.hgq._train import BetaControl, HgqTrainer, accuracy
from haq.specs import extract_specs


def svhn_style_cnn() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 24, 3), nn.ReLU(), nn.Flatten(),
            nn.Linear(24 * 3 * 3, 42), nn.ReLU(), nn.Linear(42, 64), nn.ReLU(),
            nn.Linear(64, 10))


def batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, ...]]:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def pretrain(model: nn.Module, data: list, epochs: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(data), generator=gen).tolist():
            x, y = data[i]
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()


def score(model: nn.Module, layers: dict, train: list, test: list) -> tuple[float, float]:
    """(test accuracy %, exact EBOPs) after tracing input ranges on training batches."""
    trace_ranges(model, layers, [x for x, _ in train[:20]])
    return accuracy(model, test), EbopsCost(layers).absolute()


def uniform_qat(float_model: nn.Module, specs, train: list, val: list, test: list, bits: int,
                epochs: int, steps: int) -> tuple[float, float]:
    model, layers = wrap_model(float_model, specs, [x for x, _ in train[:8]])
    with torch.no_grad():
        for layer in layers.values():
            w_int = integer_bits(layer.weight.abs().max())
            layer.weight_quant.f.fill_(float((bits - 1) - w_int))
            a_int = integer_bits(torch.maximum(layer.act_max, -layer.act_min).max())
            layer.act_quant.f.fill_(float(bits - a_int - layer.act_signed().max()))
            layer.weight_quant.f.requires_grad_(False)
            layer.act_quant.f.requires_grad_(False)
    trainer = HgqTrainer(model, layers, lambda: torch.zeros(()),
                         BetaControl(beta0=1e-12, beta1=1e-12, epochs=epochs), lr=5e-4,
                         f_lr=0.0, gamma=0.0, seed=0, steps_per_epoch=steps)
    data = type("B", (), {"train": train, "val": val})()
    for _ in range(epochs):
        trainer.train_epoch(data)
    return score(model, layers, train, test)


def hgq_front(float_model: nn.Module, specs, train: list, val: list, test: list, epochs: int,
              steps: int, beta0: float, beta1: float, warmup: int) -> list[dict]:
    model, layers = wrap_model(float_model, specs, [x for x, _ in train[:8]],
                               weight_granularity="element", act_granularity="layer",
                               init_weight_bits=6.0, init_act_bits=8.0)
    cost = EbopsCost(layers)
    control = BetaControl(mode="schedule", beta0=beta0, beta1=beta1, warmup_epochs=warmup,
                          epochs=epochs)
    trainer = HgqTrainer(model, layers, cost, control, lr=5e-4, f_lr=0.05, gamma=2e-6, seed=0,
                         steps_per_epoch=steps)
    data = type("B", (), {"train": train, "val": val})()
    for _ in range(epochs):
        trainer.train_epoch(data)
        trainer.offer({"epoch": trainer.epoch - 1, "accuracy": accuracy(model, val),
                       "cost": cost.absolute()})
    points = []
    for point in trainer.front:
        model.load_state_dict(point["state"])
        acc, ebops = score(model, layers, train, test)
        points.append({"epoch": point["epoch"], "val_accuracy": point["accuracy"],
                       "test_accuracy": acc, "ebops": ebops})
    return points


def main() -> None:
    parser = bench_parser(__doc__, "bench_hgq", threads=None)
    parser.add_argument("--train", type=int, default=20000, help="training samples used")
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30, help="QAT 'epochs' per bit width")
    parser.add_argument("--hgq-epochs", type=int, default=None,
                        help="HGQ 'epochs' (default: 4 x --epochs, the QAT runs' total)")
    parser.add_argument("--steps", type=int, default=60, help="batches per 'epoch'")
    parser.add_argument("--beta0", type=float, default=0.03)
    parser.add_argument("--beta1", type=float, default=300.0)
    parser.add_argument("--warmup", type=int, default=10)
    args, results = begin(parser)
    clock = time.perf_counter()
    splits = load("fashion-mnist")
    tx, ty = splits.train.tensors[0][: args.train], splits.train.tensors[1][: args.train]
    hx, hy = splits.heldout.tensors[0][:2000], splits.heldout.tensors[1][:2000]
    train, val = batches(tx, ty, 128), batches(hx, hy, 500)
    test = batches(*splits.test.tensors[:2], 1000)
    model = svhn_style_cnn()
    pretrain(model, train, args.pretrain_epochs)
    float_acc = accuracy(model, test)
    specs = extract_specs(model, tx[:1])
    print(f"float CNN: test {float_acc:.2f}% ({time.perf_counter() - clock:.0f} s)")
    uniform = {}
    for bits in (3, 4, 5, 6):
        acc, ebops = uniform_qat(model, specs, train, val, test, bits, args.epochs, args.steps)
        uniform[bits] = {"test_accuracy": acc, "ebops": ebops}
        print(f"uniform fixed<{bits}> QAT: test {acc:.2f}%  EBOPs {ebops:,.0f}  "
              f"({time.perf_counter() - clock:.0f} s)")
    hgq_epochs = args.hgq_epochs or 4 * args.epochs
    front = hgq_front(model, specs, train, val, test, hgq_epochs, args.steps, args.beta0,
                      args.beta1, args.warmup)
    for p in front:
        print(f"HGQ epoch {p['epoch']:3d}: test {p['test_accuracy']:.2f}%  EBOPs "
              f"{p['ebops']:,.0f}  (val {p['val_accuracy']:.2f}%)")
    wins = 0
    for bits, u in uniform.items():
        under = [p for p in front if p["ebops"] <= u["ebops"]]
        best = max((p["test_accuracy"] for p in under), default=None)
        win = best is not None and best >= u["test_accuracy"]
        wins += int(win)
        shown = "none" if best is None else f"{best:.2f}%"
        print(f"budget = uniform {bits}-bit EBOPs {u['ebops']:,.0f}: uniform "
              f"{u['test_accuracy']:.2f}% vs best HGQ within budget {shown} -> "
              f"{'HGQ' if win else 'uniform'}")
    print(f"HGQ dominates at {wins} of {len(uniform)} matched budgets "
          f"(total {time.perf_counter() - clock:.0f} s)")
    results.add(f"fmnist-{time.strftime('%Y%m%d-%H%M%S')}", args=vars(args),
                             float_accuracy=float_acc, uniform=uniform, front=front, wins=wins,
                             seconds=time.perf_counter() - clock)


if __name__ == "__main__":
    main()
