"""How much does fake quantization slow down evaluation?

Times a float MobileNet-V1 (Fashion-MNIST shape: 1x28x28 input, 10 classes) and the same model
fake-quantized by ``haq.quantize.apply_policy_`` on 2,000 images, in eval mode under no_grad,
and prints the ratio quantized / float (median of several interleaved repeats). Target: <= 1.5.
Also times ``set_policy_`` the first time a policy is seen and when every (layer, bits) is cached.

    .venv/bin/python benchmarks/bench_fakequant.py [--repeats 7] [--images 2000] [--batch 250]
        [--threads 2] [--channels-last]

On a shared machine, compare the printed load average with the core count: other processes
inflate both timings, and the ratio is only meaningful when the load is low.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from _harness import begin, bench_parser
from haq.policy import LayerBits, Policy
from haq.quantize import QuantConfig, apply_policy_, quantized_layers, set_policy_
from haq.specs import extract_specs


def build_model() -> tuple[nn.Module, str]:
    """The zoo MobileNet-V1 if ``haq.models`` provides it, else an equivalent local copy."""
    try:
        from haq.models import create

        return create("mobilenetv1-fmnist"), "haq.models mobilenetv1-fmnist"
    except (ImportError, Exception):  # noqa: BLE001 - any failure: fall back to the local copy
        return _local_mobilenet_v1(), "local MobileNet-V1 x0.5 (haq.models unavailable)"


def _local_mobilenet_v1() -> nn.Module:
    def block(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))

    widths = [(32, 1), (64, 1), (64, 1), (128, 2), (128, 1), (256, 1), (256, 1), (256, 1),
              (256, 1), (256, 1), (256, 1), (512, 2), (512, 1)]
    layers, cin = [block(1, 16, 3, 2)], 16
    for cout, stride in widths:
        layers += [block(cin, cin, 3, stride, groups=cin), block(cin, cout, 1, 1)]
        cin = cout
    torch.manual_seed(0)  # benchmark script, not library code
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(cin, 10)).eval()


def mixed_policy(names: list[str], generator: torch.Generator) -> Policy:
    """A random mixed policy in 2..8 bits, first and last layer at 8 (as HAQ pins them)."""
    bits = torch.randint(2, 9, (len(names), 2), generator=generator).tolist()
    layers = {n: LayerBits(w, a) for n, (w, a) in zip(names, bits, strict=True)}
    layers[names[0]] = layers[names[-1]] = LayerBits(8, 8)
    return Policy(layers)


def time_eval(model: nn.Module, batches: list[torch.Tensor]) -> tuple[float, float]:
    """(wall-clock s, process CPU s). CPU time is less inflated by other processes' load."""
    start, start_cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for x in batches:
            model(x)
    return time.perf_counter() - start, time.process_time() - start_cpu


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(args: argparse.Namespace, channels_last: bool) -> dict[str, float]:
    float_model, source = build_model()
    quant_model, _ = build_model()
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(args.images, 1, 28, 28, generator=gen)
    batches = list(images.split(args.batch))
    if channels_last:
        float_model = float_model.to(memory_format=torch.channels_last)
        quant_model = quant_model.to(memory_format=torch.channels_last)
        batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    names = [s.name for s in extract_specs(float_model, batches[0][:1])]
    policy = mixed_policy(names, gen)
    config = QuantConfig()
    first = timed(lambda: apply_policy_(quant_model, policy, batches[:4], config))
    other = mixed_policy(names, gen)
    new_policy = timed(lambda: set_policy_(quant_model, other))
    cached = timed(lambda: set_policy_(quant_model, policy))
    quant_model.eval()
    time_eval(float_model, batches[:2]), time_eval(quant_model, batches[:2])  # warm-up
    float_times, quant_times = [], []
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
        float_times.append(time_eval(float_model, batches))
        quant_times.append(time_eval(quant_model, batches))
    t_float = statistics.median(t for t, _ in float_times)
    t_quant = statistics.median(t for t, _ in quant_times)
    cpu_float = statistics.median(c for _, c in float_times)
    cpu_quant = statistics.median(c for _, c in quant_times)
    return {"model": source, "layers": len(quantized_layers(quant_model)),
            "float_s": t_float, "quant_s": t_quant, "ratio": t_quant / t_float,
            "float_cpu_s": cpu_float, "quant_cpu_s": cpu_quant,
            "cpu_ratio": cpu_quant / cpu_float,
            "apply_policy_s": first, "set_policy_new_s": new_policy,
            "set_policy_cached_s": cached}


def main() -> None:
    parser = bench_parser(__doc__, "bench_fakequant", threads=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--channels-last", action="store_true",
                        help="also time both models in channels_last memory format")
    args, results = begin(parser)
    print("load average before (1, 5, 15 min):", os.getloadavg())
    for channels_last in (False, True) if args.channels_last else (False,):
        r = run(args, channels_last)
        fmt = "channels_last" if channels_last else "contiguous"
        print(f"[{fmt}] {r['model']}, {r['layers']} quantized layers, {args.images} images, "
              f"batch {args.batch}, median of {args.repeats}:")
        print(f"  float {r['float_s'] * 1e3:.1f} ms, fake-quant {r['quant_s'] * 1e3:.1f} ms, "
              f"ratio {r['ratio']:.3f} (target <= 1.5)")
        print(f"  process CPU time: float {r['float_cpu_s']:.2f} s, fake-quant "
              f"{r['quant_cpu_s']:.2f} s, ratio {r['cpu_ratio']:.3f}")
        print(f"  apply_policy_ (wrap + calibrate 4 batches + set) {r['apply_policy_s']:.2f} s; "
              f"set_policy_ new policy {r['set_policy_new_s'] * 1e3:.1f} ms, "
              f"all (layer, bits) cached {r['set_policy_cached_s'] * 1e3:.2f} ms")
        print("  load average after:", os.getloadavg())
        results.add(f"{fmt}-{args.images}-{args.batch}-{args.threads}", format=fmt,
                    images=args.images, batch=args.batch, repeats=args.repeats,
                    load_average=os.getloadavg(), **r)


if __name__ == "__main__":
    main()
