"""Two BLAS libraries in one process: how long one slows the other down.

numpy's and scipy's wheels each ship their own OpenBLAS. After a multi-threaded call
returns, OpenBLAS's worker threads keep spinning on the cores for a while before they
sleep, so work started meanwhile by the *other* library (or by Python threads) competes
with them for the cores. This times a scipy ``ssyrk`` (4000 × 512) right after a numpy
GEMM and right after a scipy one, with pauses of 0 ms to 0.5 s in between: with two
cores the first is slower until the numpy threads have gone idle. nncompare therefore
runs its products and decompositions on numpy's BLAS (``stats._upper_gram``), and every
timed call in these benchmarks starts after a pause (``_util.settle``).

The second table is the same effect within numpy's own library: two 512 × 512 ``eigh``
side by side on nncompare's two worker threads, each with single-threaded BLAS (as
``measures._linalg.both_sides`` runs a measure's two decompositions), right after a
two-thread numpy GEMM or after a pause. OpenBLAS reads how long its workers spin from
``OPENBLAS_THREAD_TIMEOUT`` (cycles = 2^value, 4 to 30, default 28) when it loads; run the
script with it set to compare.

Run alone: ``python benchmarks/bench_blas_libraries.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _util import fmt_s, table

#: seconds before each trial, so that every OpenBLAS worker has gone to sleep
_IDLE = 0.6


def _after(first: Callable[[], Any] | None, pause: float, fn: Callable[[], Any]) -> float:
    """Seconds of ``fn()`` started ``pause`` s after ``first()`` returned (None: no first
    call), on a machine left idle beforehand."""
    time.sleep(_IDLE)
    if first is not None:
        first()
        time.sleep(pause)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


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
                after[first].append(_after(fn, pause, scipy_syrk))
        a, b = np.median(after["numpy"]), np.median(after["scipy"])
        rows.append([f"{pause * 1e3:.0f} ms", fmt_s(a), fmt_s(b), f"{a / b:.2f}×"])
    return rows


def run_worker_threads(repeats: int = 7) -> list[list[str]]:
    """Two concurrent single-threaded eigh after a two-thread numpy GEMM, by pause."""
    from nncompare._threads import blas_single_threaded, thread_map

    rng = np.random.default_rng(0)
    A = rng.standard_normal((2000, 2000))
    C = np.cov(rng.standard_normal((2000, 512)).T)
    Cs = [C, C.copy()]

    def pair() -> None:
        with blas_single_threaded():
            thread_map(np.linalg.eigh, Cs, 2)

    def gemm() -> None:
        A @ A

    pair()
    gemm()

    q = float(np.median([_after(None, 0.0, pair) for _ in range(repeats)]))
    rows = [["no GEMM before", fmt_s(q), "1.00×"]]
    for pause in (0.0, 0.02, 0.05, 0.1, 0.2):
        a = float(np.median([_after(gemm, pause, pair) for _ in range(repeats)]))
        rows.append([f"{pause * 1e3:.0f} ms after a GEMM", fmt_s(a), f"{a / q:.2f}×"])
    return rows


if __name__ == "__main__":
    import argparse
    import os

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()

    print(f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', '(unset)')}")
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
    print()
    print(
        table(
            run_worker_threads(),
            ["two single-threaded eigh (512²) on two threads", "median", "× quiet"],
        )
    )
