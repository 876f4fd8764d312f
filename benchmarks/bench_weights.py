"""``nc.weights.compare_weights`` on two ResNet-56s against the forward passes it needs.

compare_weights streams the data once through both networks (forward pre-hooks on every
weight layer feed the inputs' channel moments), then per layer aligns (eq. 1), maps B's
weights (eq. 2), shrinks both covariances (eq. 3) and computes cosine, zero point, upper
bound and S (eq. 5-6). The floor it cannot beat is the two forward passes themselves; this
script times both, round-robin in one interleaved run (so load drift hits both alike), and
reports the ratio. A: the pretrained akamaster ResNet-56; B: a ResNet-56 initialised with
seed 0 (the timing does not depend on what the weights are). Inputs: the first ``--n``
pixel-exact CIFAR-10 test images, normalised as the ResNets expect.

Usage::

    python benchmarks/bench_weights.py [--n 512] [--repeats 3] [--threads 1]

Writes ``benchmarks/results/weights_bench.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import (
    RESULTS,
    bench_interleaved,
    environment,
    fmt_s,
    fmt_x,
    positive_int,
    quiet_third_party,
    table,
    write_json,
)


def _shared() -> Path:
    env = os.environ.get("NNCOMPARE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="input images (<= 1017)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--n-rotations", type=int, default=8)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    import nncompare as nc
    from nncompare.models import cifar_preprocess, cifar_resnet

    quiet_third_party()
    torch.set_num_threads(args.threads)
    data = _shared() / "data"
    ck = sorted((data / "akamaster_resnet_cifar10").glob("resnet56-*.th"))
    if not ck:
        print(f"pretrained ResNet-56 not found under {data}", file=sys.stderr)
        return 1
    net_a = cifar_resnet(56, weights=ck[0]).eval()
    torch.manual_seed(0)
    net_b = cifar_resnet(56).eval()
    with np.load(data / "cifar10" / "cifar10_test_exact1017.npz") as f:
        x = cifar_preprocess(f["x"][: args.n])
    n_layers = len(nc.weights.weight_layers(net_a, net_b))

    def forward() -> None:
        with torch.no_grad():
            for i in range(0, len(x), args.batch_size):
                net_a(x[i : i + args.batch_size])
                net_b(x[i : i + args.batch_size])

    def compare() -> object:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # B's random layers have no learned component
            return nc.weights.compare_weights(
                net_a, net_b, x, batch_size=args.batch_size, n_rotations=args.n_rotations
            )

    timings = bench_interleaved(
        {"forward A+B": forward, "compare_weights": compare}, repeats=args.repeats
    )
    fwd, cw = timings["forward A+B"], timings["compare_weights"]
    ratio = cw.median / fwd.median
    frame = cw.last
    print(
        table(
            [
                ["forward passes of A and B", fmt_s(fwd.median), fmt_s(fwd.cpu_median), "1.00×"],
                ["compare_weights", fmt_s(cw.median), fmt_s(cw.cpu_median), fmt_x(ratio)],
            ],
            ["what", "wall (median)", "CPU (median)", "ratio"],
        )
    )
    print(
        f"{n_layers} weight layers, n = {len(x)} images ({len(x) * 32 * 32} positions at "
        f"the first layers), torch threads {args.threads}, {args.repeats} interleaved repeats"
    )
    record = {
        "benchmark": "weights",
        "what": "nc.weights.compare_weights(resnet56 pretrained, resnet56 seed 0, images) "
        "against the no-grad forward passes of both networks on the same images",
        "n_images": len(x),
        "batch_size": args.batch_size,
        "n_rotations": args.n_rotations,
        "n_weight_layers": n_layers,
        "torch_threads": args.threads,
        "forward": fwd.as_dict(),
        "compare_weights": cw.as_dict(),
        "ratio_wall": ratio,
        "ratio_cpu": cw.cpu_median / fwd.cpu_median,
        "S_by_layer": frame["S"].round(4).tolist(),
        "environment": environment(),
    }
    path = write_json(record, RESULTS / "weights_bench.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
