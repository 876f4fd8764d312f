"""Executors for the comparison engine: where the (measure, layer pair) tasks run.

Every front door (:func:`nncompare.compare_models`, :func:`nncompare.compare_checkpoints`,
:func:`nncompare.pairwise`) takes ``executor=``: any object with ``map(fn, items)``
returning the results in order. ``None`` (the default) runs the tasks in this process.

* :class:`SerialExecutor` — one after the other, in this process.
* :class:`ThreadExecutor` — a thread pool (BLAS, LAPACK and GPUs release the GIL).
* :class:`ProcessExecutor` — a pool of worker processes (``spawn``); the tasks carry the
  accumulated moments, so they pickle. A plain
  :class:`concurrent.futures.ProcessPoolExecutor` works too: it already has ``map``.

A Dask client plugs in the same way; see :mod:`nncompare.analyses.engine` for the five
lines of the wrapper.
"""

from nncompare.parallel._executors import (
    Executor,
    ProcessExecutor,
    SerialExecutor,
    ThreadExecutor,
    check_executor,
)

__all__ = ["Executor", "ProcessExecutor", "SerialExecutor", "ThreadExecutor", "check_executor"]
