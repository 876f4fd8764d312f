"""Two BLAS libraries in one process: how long one slows the other down.

numpy's and scipy's wheels each ship their own OpenBLAS. After a multi-threaded call
returns, OpenBLAS's worker threads keep spinning on the cores for a while before they
sleep, so work started meanwhile by the *other* library (or by Python threads) competes
with them for the cores. This times a scipy ``ssyrk`` (4000 × 512) right after a numpy
GEMM and right after a scipy one, with pauses of 0 ms to 0.5 s in between: with two
cores the first is slower until the numpy threads have gone idle. nncompare therefore
runs its products and decompositions on numpy's BLAS (``stats._upper_gram``), and every
timed call in these benchmarks starts after a pause (``_util.settle``).

Run alone: ``python benchmarks/bench_blas_libraries.py``.
"""

from __future__ import annotations

import time

import numpy as np
from _util import fmt_s, table


def run(repeats: int = 7) -> list[list[str]]:
    from scipy.linalg import blas

    rng = np.random.default_rng(0)
    Z = rng.standard_normal((4000, 512)).astype(np.float32)
    A = rng.standard_normal((2000, 2000)).astype(np.float32)

    def scipy_syrk() -> None:
        blas.ssyrk(1.0, Z.T, trans=0, lower=1)

    def numpy_gemm() -> None:
        A @ A

    scipy_syrk()
    numpy_gemm()
    rows = []
    for pause in (0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5):
        after = {"numpy": [], "scipy": []}
        for _ in range(repeats):
            for first, fn in (("numpy", numpy_gemm), ("scipy", scipy_syrk)):
                time.sleep(0.6)  # both libraries idle
                fn()
                time.sleep(pause)
                t0 = time.perf_counter()
                scipy_syrk()
                after[first].append(time.perf_counter() - t0)
        a, b = np.median(after["numpy"]), np.median(after["scipy"])
        rows.append([f"{pause * 1e3:.0f} ms", fmt_s(a), fmt_s(b), f"{a / b:.2f}×"])
    return rows


if __name__ == "__main__":
    rows = run()
    print(
        table(
            rows,
            [
                "pause after the first call",
                "scipy ssyrk after a numpy GEMM",
                "after a scipy ssyrk",
                "ratio",
            ],
        )
    )
