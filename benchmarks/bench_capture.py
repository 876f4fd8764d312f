"""Capture + comparison throughput against the forward passes alone, and memory vs n.

    .venv/bin/python benchmarks/bench_capture.py            # full (~3-5 min on 2 cores)
    .venv/bin/python benchmarks/bench_capture.py --quick    # smoke (< 1 min)

Workload: CIFAR ResNet-20 vs ResNet-32 (random weights; timing does not depend on them),
inputs 3×32×32, 11 layers per model (stem, every block's output, the pooled feature and the
logits), measures CKA, CCA and SVCCA, conv policy "mean" (and "samples" on layer1 blocks).

1. Throughput: ``nc.compare_models`` over n samples versus the floor, the two models'
   forward passes alone over the same batches (``torch.inference_mode``). The ratio says
   what hooks, reshapes, the streaming moment updates and the final decompositions add.
2. Memory: peak resident memory of a fresh process running ``compare_models`` on a stream
   of n generated batches (never materialised), for growing n. The streaming statistics are
   (D × D) per group, so the peak must not grow with n.

Results go to benchmarks/results/capture.json and are summarised in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYERS = ["relu", "layer1.*.relu2", "layer2.*.relu2", "layer3.*.relu2", "avgpool", "linear"]


def _batches(n: int, batch: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < n:
        b = min(batch, n - done)
        yield torch.randn(b, 3, 32, 32, generator=g)
        done += b


def _models():
    import torch

    from nncompare.workbench.models import cifar_resnet

    torch.manual_seed(0)
    a = cifar_resnet(20).eval()
    b = cifar_resnet(32).eval()
    return a, b


def throughput(n: int, batch: int, conv: str) -> dict:
    import torch

    import nncompare as nc

    a, b = _models()
    # warm-up
    with torch.inference_mode():
        x = torch.randn(batch, 3, 32, 32)
        a(x), b(x)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for x in _batches(n, batch):
            a(x)
            b(x)
    floor = time.perf_counter() - t0
    layers_a = LAYERS if conv == "mean" else ["layer1.*.relu2"]
    t0 = time.perf_counter()
    df = nc.compare_models(
        a,
        b,
        _batches(n, batch),
        layers_a=layers_a,
        layers_b=layers_a,
        measures=["cka", "cca", "svcca"],
        conv=conv,
        batch_size=batch,
    )
    total = time.perf_counter() - t0
    return {
        "n": n,
        "batch": batch,
        "conv": conv,
        "layers_per_model": int(df["layer_a"].nunique()),
        "pairs": int(len(df) // 3),
        "forward_only_s": floor,
        "compare_s": total,
        "ratio": total / floor,
        "samples_per_s": n / total,
    }


def peak_memory_child(n: int, batch: int) -> None:
    """Run in a subprocess: compare over n streamed samples, print peak RSS (MiB)."""
    import nncompare as nc

    a, b = _models()
    nc.compare_models(
        a,
        b,
        _batches(n, batch),
        layers_a=LAYERS,
        layers_b=LAYERS,
        measures=["cka", "svcca"],
        conv="mean",
        batch_size=batch,
    )
    print(
        json.dumps(
            {"n": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        )
    )


def peak_memory(n: int, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(n), "--batch", str(batch)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args(argv)
    if args.child is not None:
        peak_memory_child(args.child, args.batch)
        return {}
    import numpy as np
    import torch

    sizes = [512, 1024, 2048] if args.quick else [2048, 8192, 32768]
    n_tp = 1024 if args.quick else 4096
    res = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "throughput": [
            throughput(n_tp, args.batch, "mean"),
            throughput(n_tp, args.batch, "samples"),
        ],
        "memory": [peak_memory(n, args.batch) for n in sizes],
    }
    print(
        f"{'conv':<8} {'n':>6} {'layers':>6} {'forward s':>10} {'compare s':>10} "
        f"{'ratio':>6} {'samples/s':>10}"
    )
    for r in res["throughput"]:
        print(
            f"{r['conv']:<8} {r['n']:>6} {r['layers_per_model']:>6} {r['forward_only_s']:>10.2f}"
            f" {r['compare_s']:>10.2f} {r['ratio']:>6.2f} {r['samples_per_s']:>10.0f}"
        )
    print(f"{'n':>8} {'peak RSS MiB':>13}")
    for r in res["memory"]:
        print(f"{r['n']:>8} {r['peak_rss_mib']:>13.0f}")
    out = HERE / "results" / ("capture_quick.json" if args.quick else "capture.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
