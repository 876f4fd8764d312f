"""Where the exact DFT path's time goes: spectra, co-moment products, decompositions.

``nc.cca(X, Y, conv="dft")`` on numpy inputs runs three stages, timed here one inside the
other in one run (interleaved, each call after a settling pause):

1. **spectra**: the matrix-product DFT (``conv._GemmSpectra``) of every chunk of samples
   of both inputs, at the frequencies the representatives use;
2. **co-moments**: ``conv._joint_comoments`` (the spectra again, then per representative
   the shifted real and imaginary parts copied into one buffer, its symmetric product
   accumulated, and the Hermitian blocks assembled);
3. **cca**: the whole measure (co-moments, then per-frequency whitening and singular
   values).

Differences give each stage's share: products = co-moments − spectra, decompositions =
cca − co-moments. Beside each: the stage's flops per second, and a plain numpy GEMM
(2000 × 2000) in the same dtype for the machine's rate. Flops counted: the DFT's two real
products (2 · rows · inner · columns each); the per-representative symmetric products as
n · E² with E = 2 (C1 + C2) + 1 (a syrk's useful flops).

Run alone: ``python benchmarks/bench_dft_stages.py [--shape N,H,W,C] [--repeats 5]``
(``--blas-threads 1`` for one thread).
"""

from __future__ import annotations

import argparse
import sys
import time

from _util import early_thread_limit

early_thread_limit(sys.argv)

import numpy as np  # noqa: E402
from _util import bench, fmt_s, loadavg, positive_int, settle, table  # noqa: E402
from bench_conv import make_conv_pair  # noqa: E402

import nncompare as nc  # noqa: E402
from nncompare.measures import conv  # noqa: E402


class _Clock:
    """Wall time spent inside a function during one call of something else (wrapped)."""

    def __init__(self, owner: object, name: str) -> None:
        self.owner, self.name, self.total = owner, name, 0.0
        self.real = getattr(owner, name)

    def __enter__(self) -> _Clock:
        real = self.real

        def timed(*args: object, **kwargs: object) -> object:
            t0 = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - t0

        setattr(self.owner, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.owner, self.name, self.real)


def _split(X: np.ndarray, Y: np.ndarray, repeats: int) -> dict[str, float]:
    """Medians of the whole call and of its spectra and co-moment stages, from the same
    calls (each after a settling pause)."""
    nc.cca(X, Y, conv="dft")  # warm-up
    rows: dict[str, list[float]] = {"cca": [], "co-moments": [], "spectra": []}
    for _ in range(repeats):
        settle()
        with (
            _Clock(conv, "_joint_comoments") as com,
            _Clock(conv._GemmSpectra, "transform") as spec,
        ):
            t0 = time.perf_counter()
            nc.cca(X, Y, conv="dft")
            rows["cca"].append(time.perf_counter() - t0)
        rows["co-moments"].append(com.total)
        rows["spectra"].append(spec.total)
    return {k: float(np.median(v)) for k, v in rows.items()}


def _flops(X: np.ndarray, Y: np.ndarray) -> tuple[float, float, int]:
    """The DFT's and the symmetric products' flops, and the number of representatives."""
    size = tuple(int(v) for v in X.shape[1:-1])
    # the plan nc.cca builds for two real inputs of one size (periodic axes)
    plan = conv._frequency_plan(size, conjugate=True, periodic=(True,) * len(size))
    t = conv._GemmSpectra(X, plan, 1.0, half=True, ws=conv._Workspace(), key=0)
    n = int(X.shape[0])
    h = size[0] if len(size) == 2 else 1
    dft = 0.0
    for A in (X, Y):
        c = int(A.shape[-1])
        dft += 2.0 * (2 * t.kw) * size[-1] * (h * n * c)  # over W
        if len(size) == 2:
            dft += t.kw * 2.0 * (2 * t.kh) * (2 * h) * (n * c)  # over H, per W frequency
    E = 2 * (int(X.shape[-1]) + int(Y.shape[-1])) + 1
    return dft, float(len(plan.reps)) * n * E * E, len(plan.reps)


def run(shape: tuple[int, int, int, int], repeats: int) -> str:
    X, Y = make_conv_pair(*shape)
    out = []
    for dtype in (np.float64, np.float32):
        Xd, Yd = X.astype(dtype), Y.astype(dtype)
        dft_flops, gram_flops, reps = _flops(Xd, Yd)
        t = _split(Xd, Yd, repeats)
        A = np.random.default_rng(1).standard_normal((2000, 2000)).astype(dtype)
        gemm = bench(lambda A=A: A @ A, repeats=repeats).median
        gemm_rate = 2.0 * 2000**3 / gemm
        products = t["co-moments"] - t["spectra"]
        decomp = t["cca"] - t["co-moments"]
        name = np.dtype(dtype).name

        def rate(flops: float, sec: float, gemm_rate: float = gemm_rate) -> str:
            return f"{flops / sec / 1e9:.1f} GFlop/s ({flops / sec / gemm_rate:.0%} of GEMM)"

        out += [
            [name, "spectra", fmt_s(t["spectra"]), rate(dft_flops, t["spectra"])],
            [name, "products (co-moments − spectra)", fmt_s(products), rate(gram_flops, products)],
            [name, "decompositions (cca − co-moments)", fmt_s(decomp), "-"],
            [name, "whole nc.cca(conv='dft')", fmt_s(t["cca"]), "-"],
            [name, "GEMM 2000 × 2000", fmt_s(gemm), f"{gemm_rate / 1e9:.1f} GFlop/s"],
        ]
    head = f"shape {shape}, {reps} representatives, {repeats} repeats, load average {loadavg()}"
    return head + "\n" + table(out, ["input", "stage", "median", "rate"])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="2000,16,16,64", help="N,H,W,C (default 2000,16,16,64)")
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--blas-threads", type=int, default=None, help="applied before numpy loads")
    args = p.parse_args()
    parts = args.shape.split(",")
    if len(parts) != 4 or not all(v.strip().isdigit() and int(v) > 0 for v in parts):
        p.error(f"--shape takes N,H,W,C (four positive integers); got {args.shape!r}")
    shape = tuple(int(v) for v in parts)
    print(run(shape, args.repeats))  # type: ignore[arg-type]
