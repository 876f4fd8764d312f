"""Executors for the comparison engine: where the tasks of a comparison run.

Every front door (:func:`nncompare.compare_models`, :func:`nncompare.compare_checkpoints`,
:func:`nncompare.pairwise`, :func:`nncompare.compare_many`) takes ``executor=``: ``None``
(the default: in this process), ``"threads"``, ``"processes"``, ``"dask"`` (a 2-worker
:class:`distributed.LocalCluster`), a Dask scheduler address (``"tcp://host:8786"``), a
``distributed.Client``, or any object with ``map(fn, items)`` returning the results in
order (:func:`resolve_executor` says which is which).

* :class:`SerialExecutor` — one after the other, in this process.
* :class:`ThreadExecutor` — a thread pool (BLAS, LAPACK and GPUs release the GIL).
* :class:`ProcessExecutor` — a pool of worker processes (``spawn``); the tasks carry the
  accumulated moments, so they pickle. A plain
  :class:`concurrent.futures.ProcessPoolExecutor` works too: it already has ``map``.
* :class:`DaskExecutor` — a Dask cluster (``pip install "nncompare[parallel]"``); it also
  maps the per-shard captures of :func:`nncompare.compare_many` and tree-merges their
  moments on the cluster.
"""

from nncompare.parallel._dask import DaskExecutor, is_dask_client, resolve_executor
from nncompare.parallel._executors import (
    Executor,
    ProcessExecutor,
    SerialExecutor,
    ThreadExecutor,
    check_executor,
)

__all__ = [
    "DaskExecutor",
    "Executor",
    "ProcessExecutor",
    "SerialExecutor",
    "ThreadExecutor",
    "check_executor",
    "is_dask_client",
    "resolve_executor",
]
