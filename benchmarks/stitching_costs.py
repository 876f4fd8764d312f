"""Cost of stitching ResNet-20 into ResNet-32 at layer1, against the forward passes alone.

For each n (training images), in a fresh child process:

* LS direct matching (``nc.stitching.fit``, moments streamed over n·32·32 positions) against
  the forward passes it needs (front of A and front of B) without any statistics;
* the extra peak memory of the fit (VmHWM above the resident size before it, measured
  first in the child; Linux), which should not grow with n — the images are kept as uint8
  and preprocessed batch by batch;
* one task-loss epoch (``nc.stitching.train``, soft targets) against one forward+backward
  pass of B's back on B's own activations (the unavoidable part of an epoch).

Data as in ``stitching_resnet.py`` (``../shared`` or ``$NNCOMPARE_SHARED``).

Usage::

    python benchmarks/stitching_costs.py [--sizes 1000 2000 4000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _shared() -> Path:
    env = os.environ.get("NNCOMPARE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


class _Batches:
    """Re-iterable (inputs, labels) batches preprocessed on the fly from uint8 images."""

    def __init__(self, x, y, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    def __iter__(self):
        import torch

        from nncompare.models import cifar_preprocess

        for i in range(0, len(self.x), self.batch_size):
            sl = slice(i, i + self.batch_size)
            yield cifar_preprocess(self.x[sl]), torch.from_numpy(self.y[sl])


def probe(n: int, threads: int, batch_size: int) -> dict:
    import numpy as np
    import torch

    import nncompare as nc
    from nncompare.models import cifar_resnet

    torch.set_num_threads(threads)
    ckpt = _shared() / "data" / "akamaster_resnet_cifar10"
    a = cifar_resnet(20, next(ckpt.glob("resnet20-*.th"))).eval()
    b = cifar_resnet(32, next(ckpt.glob("resnet32-*.th"))).eval()
    with np.load(_shared() / "data" / "cifar10" / "cifar10_train_jpeg10k.npz") as f:
        x, y = f["x"][:n].copy(), f["y"][:n].copy()
    data = _Batches(x, y, batch_size)
    s = nc.stitch(a, "layer1", b, "layer1")

    with torch.no_grad():  # warm up (first-call allocations) on one batch
        xb, _ = next(iter(data))
        s.build(xb)
        s.front_a(xb)
        s.front_b(xb)

    rss = _status_kib("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    r = nc.stitching.fit(s, data, "ls")
    t_fit = time.perf_counter() - t0
    peak = _status_kib("VmHWM")

    t0 = time.perf_counter()
    with torch.no_grad():
        for xb, _ in data:
            s.front_a(xb)
            s.front_b(xb)
    t_forward = time.perf_counter() - t0

    t0 = time.perf_counter()
    nc.stitching.train(s, data, init=None, epochs=1, progress=False, batch_size=batch_size)
    t_epoch = time.perf_counter() - t0

    t0 = time.perf_counter()
    for xb, _ in data:
        with torch.no_grad():
            fb = s.front_b(xb)
        fb.requires_grad_(True)
        s.back_b(fb).sum().backward()
    t_back = time.perf_counter() - t0
    extra = None if rss is None or peak is None else (peak - rss) / 1024
    return {
        "n": n,
        "positions": r.n_positions,
        "forward_s": t_forward,
        "fit_s": t_fit,
        "fit_extra_peak_mib": extra,
        "task_epoch_s": t_epoch,
        "back_fwd_bwd_s": t_back,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe is not None:
        print(json.dumps(probe(args.probe, args.threads, args.batch_size)))
        return 0
    if not (_shared() / "data" / "akamaster_resnet_cifar10").is_dir():
        print(f"shared data not found under {_shared()} (set NNCOMPARE_SHARED)", file=sys.stderr)
        return 2
    print(
        f"ResNet-20 -> ResNet-32 at layer1 (16 channels, 32x32), torch threads {args.threads}, "
        f"batch {args.batch_size}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "| n images | positions | forwards s | LS fit s | fit / forwards | fit extra peak MiB "
        "| task epoch s | B back fwd+bwd s | epoch / back |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--probe", str(n), "--threads", str(args.threads)]
        cmd += ["--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        peak = "n/a" if r["fit_extra_peak_mib"] is None else f"{r['fit_extra_peak_mib']:.0f}"
        print(
            f"| {r['n']} | {r['positions']:,} | {r['forward_s']:.1f} | {r['fit_s']:.1f} | "
            f"{r['fit_s'] / r['forward_s']:.2f} | {peak} | {r['task_epoch_s']:.1f} | "
            f"{r['back_fwd_bwd_s']:.1f} | {r['task_epoch_s'] / r['back_fwd_bwd_s']:.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
