"""Worker threads for numpy kernels that release the GIL.

numpy's element-wise loops, reductions, matrix products and linear algebra release the
GIL, so a few Python threads run them in parallel on one machine's cores with no copies.
The number of workers follows the thread count BLAS is told to use (``OMP_NUM_THREADS``
and friends), else the usable CPUs; work is split so that every part is computed the
same way whatever the count (the results do not depend on it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "blas_single_threaded",
    "block_map",
    "row_slices",
    "thread_map",
    "worker_count",
    "worker_pool",
]

T = TypeVar("T")


def worker_count() -> int:
    """Threads to use: as many as BLAS is told to use, else the usable CPUs."""
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        val = os.environ.get(key, "")
        if val.isdigit() and int(val) > 0:
            return int(val)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def blas_single_threaded() -> Any:
    """Context limiting BLAS to one thread (threadpoolctl, when installed).

    Many mid-sized BLAS calls from worker threads: a multi-threaded BLAS synchronises its
    threads on every call, which costs more than it saves at these sizes and collapses
    (10× slower, measured) when other processes share the cores.
    """
    controller = _controller()
    if controller is None:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


_CONTROLLER: tuple[int, Any] | None = None


def _controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries, kept while no module is imported.

    Finding the libraries costs about 1 ms (``threadpool_limits`` does it on every call);
    a limit through a kept controller costs 0.02 ms. BLAS libraries arrive with imports
    (numpy, scipy, torch), so the view is rebuilt whenever ``sys.modules`` has grown; a
    library it missed would only run with its own thread count, never give other results.
    """
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover
        return None
    key = len(sys.modules)
    cached = _CONTROLLER
    if cached is None or cached[0] != key:
        cached = (key, ThreadpoolController())
        _CONTROLLER = cached
    return cached[1]


def worker_pool(workers: int) -> Any:
    """A context giving an executor with ``map``: a pool of ``workers`` threads kept for
    several rounds of work, or an inline stand-in for one worker (no thread hand-off).
    Its tasks run under numpy's default error handling; see :func:`thread_map`."""
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(workers)
    return contextlib.nullcontext(_InlinePool())


class _InlinePool:
    """``map`` in the calling thread."""

    @staticmethod
    def map(fn: Callable[[Any], T], items: Iterable[Any]) -> Iterator[T]:
        return map(fn, items)


def thread_map(fn: Callable[[Any], T], items: Iterable[Any], workers: int | None = None) -> list[T]:
    """``[fn(item) for item in items]`` on up to ``workers`` threads (default
    :func:`worker_count`), under the caller's floating-point error handling (numpy's
    ``errstate`` does not reach other threads). One worker, or one item: inline."""
    items = list(items)
    workers = worker_count() if workers is None else workers
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    errors = np.geterr()

    def run(item: Any) -> T:
        with np.errstate(**errors):
            return fn(item)

    with worker_pool(min(workers, len(items))) as pool:
        return list(pool.map(run, items))


def row_slices(n: int, parts: int) -> list[slice]:
    """``parts`` contiguous slices covering range(n) (fewer when n is smaller; one empty
    slice when n is 0)."""
    bounds = np.linspace(0, n, max(1, min(parts, n)) + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a] or [slice(0, n)]


def block_map(
    fn: Callable[[int, int], T], n: int, block: int, workers: int | None = None
) -> list[T]:
    """``[fn(r0, r1) for each block [r0, r1) of range(n)]``, blocks of fixed size ``block``
    (the last one shorter), each worker taking a contiguous run of them.

    The blocks do not depend on the number of workers, so a result assembled from the
    returned list in order (a sum, say) has the same bits whatever the count.
    """
    starts = range(0, n, block)
    workers = worker_count() if workers is None else workers

    def run(span: slice) -> list[T]:
        return [fn(r0, min(n, r0 + block)) for r0 in starts[span]]

    return [r for part in thread_map(run, row_slices(len(starts), workers), workers) for r in part]
