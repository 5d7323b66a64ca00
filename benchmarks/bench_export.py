"""Do exported models compute what haq computes, and how fast do they run in ONNX Runtime?

Parity: for each zoo model (mobilenetv1/v2-fmnist, resnet20-fmnist) and policy (uniform W8A8,
a seeded mixed 2-8-bit policy, the same mixed policy with k-means weights) the model is
quantized as `haq apply` does (8 seeded train batches of 128), exported to onnx, qonnx and
packed, and ``haq.export.check_parity`` compares each file with haq's model: onnx on the whole
test split; packed (bit-exact by construction, asserted in the tests) on the first
``--images`` test images, qonnx (its executor is slow) on the first ``--qonnx-images``. The
packed rows also record the ``size`` cost model's bytes, weights only and with
``overhead=True``, and the file's parts. As a
noise floor, haq's own two evaluation paths (the fast no-grad one and the straight-through one,
equal in exact arithmetic) are compared on the first ``--images`` images.

Runtime: ONNX Runtime CPU latency (median) at batch 1 and 64 of the float ONNX model, the W8A8
export (default, and with ``integer_kernels=True``) and the mixed export, beside the
bitfusion-edge cost model's predicted latency ratio to W8A8.

    .venv/bin/python benchmarks/bench_export.py [--only parity|runtime] [--threads 1]
        [--images 2000] [--qonnx-images 500]
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import haq.cost
import haq.export
from _harness import Results, begin, bench_parser
from haq import data as hdata
from haq.models import create, example_input
from haq.policy import Policy
from haq.quantize import QuantConfig, apply_policy_
from haq.specs import extract_specs

ZOO = ("mobilenetv1-fmnist", "mobilenetv2-fmnist", "resnet20-fmnist")
POLICIES = ("w8a8", "mixed", "kmeans")
FORMATS = ("onnx", "qonnx", "packed")


def policy_for(name: str, kind: str) -> tuple[Policy, QuantConfig]:
    """W8A8; mixed: weights and activations drawn from 2..8 bits (seed 7), first/last at 8."""
    specs = extract_specs(create(name), example_input(name))
    if kind == "w8a8":
        return Policy.uniform(specs, 8, 8), QuantConfig()
    rng = np.random.default_rng(7)
    w_bits, a_bits = rng.integers(2, 9, len(specs)), rng.integers(2, 9, len(specs))
    w_bits[0] = w_bits[-1] = a_bits[0] = a_bits[-1] = 8
    config = QuantConfig(weight_method="kmeans") if kind == "kmeans" else QuantConfig()
    return Policy.from_arrays(specs, w_bits, a_bits), config


def self_agreement(model: torch.nn.Module, batches: list) -> float:
    """% of images on which haq's no-grad and straight-through evaluations give the same top-1."""
    same = total = 0
    for x, _ in batches:
        with torch.no_grad():
            fast = model(x).argmax(1)
        slow = model(x.clone().requires_grad_(True)).argmax(1)
        same += int((fast == slow).sum())
        total += len(x)
    return 100 * same / total


def parity(results: Results, splits, calibration: list, images: int, qonnx_images: int) -> None:
    test = list(hdata.loader(splits.test, batch_size=500))
    first = {"onnx": test, "packed": _first(test, images), "qonnx": _first(test, qonnx_images)}
    for name in ZOO:
        specs = extract_specs(create(name), example_input(name))
        for kind in POLICIES:
            policy, config = policy_for(name, kind)
            model = apply_policy_(create(name, pretrained=True), policy, calibration,
                                  config).eval()
            floor_key = f"parity/{name}/{kind}/haq-self"
            if not results.done(floor_key):
                rec = results.add(floor_key, agreement=self_agreement(model, first["packed"]),
                                  images=images)
                print(f"{floor_key}: {rec['agreement']:.2f}%", flush=True)
            for fmt in FORMATS + (("onnx-integer",) if kind == "w8a8" else ()):
                key = f"parity/{name}/{kind}/{fmt}"
                if results.done(key):
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    path = haq.export.export(model, policy, fmt.split("-")[0],
                                             Path(tmp) / f"m.{fmt}",
                                             example_input=example_input(name),
                                             integer_kernels=fmt == "onnx-integer")
                    size = path.stat().st_size
                    extra = {}
                    if fmt == "packed":
                        extra = {f"size_model{suffix}_bytes": haq.cost.get(
                                     "size", kmeans=kind == "kmeans", overhead=overhead
                                 ).table(specs).evaluate(policy)["size"]
                                 for suffix, overhead in (("", False), ("_overhead", True))}
                        extra["parts"] = haq.export.size_breakdown(path)
                    started = time.perf_counter()
                    report = haq.export.check_parity(path, model, first[fmt.split("-")[0]])
                rec = results.add(key, **report.to_dict(), file_bytes=size,
                                  seconds=time.perf_counter() - started, **extra)
                print(f"{key}: {report.summary()} ({rec['seconds']:.0f} s)", flush=True)


def _first(batches: list, images: int) -> list:
    """The first ``images`` images of a list of (x, y) batches."""
    x = torch.cat([b[0] for b in batches])[:images]
    y = torch.cat([b[1] for b in batches])[:images]
    return list(zip(x.split(500), y.split(500), strict=True))


def float_onnx(name: str) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(create(name, pretrained=True).eval(), (example_input(name),), buffer,
                          dynamo=False, opset_version=21, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}})
    return buffer.getvalue()


def latency_ms(path: Path, batch: int, threads: int, repeats: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, 1, 28, 28)).astype(np.float32)
    for _ in range(5):
        session.run(None, {"input": x})
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {"input": x})
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def runtime(results: Results, calibration: list, threads: int) -> None:
    for name in ZOO:
        specs = extract_specs(create(name), example_input(name))
        table = haq.cost.get("bitfusion-edge").table(specs)
        w8a8 = table.evaluate(Policy.uniform(specs, 8, 8))["latency"]
        for variant in ("float", "w8a8", "w8a8-integer", "mixed"):
            key = f"runtime/{name}/{variant}"
            if results.done(key):
                continue
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "m.onnx"
                predicted = None
                if variant == "float":
                    path.write_bytes(float_onnx(name))
                else:
                    policy, config = policy_for(name, variant.split("-")[0])
                    model = apply_policy_(create(name, pretrained=True), policy, calibration,
                                          config)
                    haq.export.export(model, policy, "onnx", path,
                                      example_input=example_input(name),
                                      integer_kernels=variant.endswith("integer"))
                    predicted = table.evaluate(policy)["latency"] / w8a8
                ms = {b: latency_ms(path, b, threads, 200 if b == 1 else 30) for b in (1, 64)}
            rec = results.add(key, batch1_ms=ms[1], batch64_ms=ms[64], threads=threads,
                              predicted_latency_vs_w8a8=predicted,
                              cost_model="bitfusion-edge")
            print(f"{key}: batch 1 {rec['batch1_ms']:.2f} ms, batch 64 {rec['batch64_ms']:.1f} "
                  f"ms, predicted x W8A8 {predicted}", flush=True)


def main() -> None:
    parser = bench_parser(__doc__, "bench_export")
    parser.add_argument("--only", choices=("parity", "runtime"))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--qonnx-images", type=int, default=500)
    args, results = begin(parser)
    splits = hdata.load("fashion-mnist")
    train = hdata.loader(splits.train, batch_size=128, shuffle=True, seed=0)
    calibration = [x for x, _ in zip(train, range(8), strict=False)]
    if args.only != "parity":
        runtime(results, calibration, args.threads)
    if args.only != "runtime":
        parity(results, splits, calibration, args.images, args.qonnx_images)


if __name__ == "__main__":
    main()
