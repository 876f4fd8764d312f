"""Executors of the comparison engine's pair tasks: in this process, threads, processes.

An executor is any object with ``map(fn, items)`` returning ``fn(item)`` for every item,
in order (:class:`Executor`); :func:`nncompare.analyses.engine.evaluate` hands it one
function (the :class:`~nncompare.analyses.engine.PairRunner`, which carries the
accumulated moments and arrays) and the :class:`~nncompare.analyses.engine.PairTask` list
of one measure. The engine itself needs none of the classes here: without an executor it
runs the tasks in an inline loop.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from nncompare.analyses.engine import validate_executor

__all__ = [
    "Executor",
    "ProcessExecutor",
    "SerialExecutor",
    "ThreadExecutor",
    "check_executor",
]


@runtime_checkable
class Executor(Protocol):
    """What the engine needs of an executor: ``map(fn, items)`` -> the results in order."""

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterable[Any]: ...


class SerialExecutor:
    """Evaluate the pair tasks one after the other in this process (what ``executor=None``
    does)."""

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return [fn(item) for item in items]


class ThreadExecutor:
    """Evaluate the pair tasks on a pool of threads (:mod:`concurrent.futures`).

    Useful where the measures spend their time in BLAS/LAPACK or on a GPU (which release
    the GIL); the results equal the serial ones.

    Parameters
    ----------
    max_workers : int, optional
        As in :class:`concurrent.futures.ThreadPoolExecutor`.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return list(pool.map(fn, items))


def _shutdown(pool: ProcessPoolExecutor) -> None:
    pool.shutdown(wait=True, cancel_futures=True)


class ProcessExecutor:
    """Evaluate the pair tasks in a pool of worker processes.

    The function and the tasks are pickled to the workers, so everything they carry must
    pickle: the engine's :class:`~nncompare.analyses.engine.PairRunner` carries the
    accumulated moments (:class:`nncompare.JointMoments`, numpy or torch) and the kept
    arrays, never the models. The ``"spawn"`` start method is the default (safe with torch
    and threads; each worker imports nncompare once). The pool is started on the first
    ``map`` and kept for the next ones (one per measure of a comparison); ``close()``, the
    ``with`` statement or garbage collection ends it.

    Parameters
    ----------
    max_workers : int, optional
        Worker processes (default: :func:`os.cpu_count`).
    mp_context : {"spawn", "forkserver", "fork"} or multiprocessing context, default "spawn"
    chunksize : int, optional
        Tasks sent to a worker at once. Default: the tasks split evenly over the workers,
        so the function (with the moments it carries) is sent about once per worker.

    Notes
    -----
    Autograd does not cross processes (torch refuses to pickle a non-leaf tensor that
    requires grad): use the in-process default for gradients. Warnings of the measures
    raised in a worker stay in that worker (the pair's ``note`` column still records the
    measures' own warnings). ``keep_results=True`` needs result objects that pickle; the
    lazily computed details (CCA directions, Procrustes rotations) do not, so keep results
    in process.

    Examples
    --------
    >>> from nncompare.parallel import ProcessExecutor  # doctest: +SKIP
    >>> with ProcessExecutor(4) as ex:  # doctest: +SKIP
    ...     df = nc.compare_models(a, b, x, executor=ex)
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        mp_context: Any = "spawn",
        chunksize: int | None = None,
    ) -> None:
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise ValueError(f"max_workers must be a positive int or None; got {max_workers!r}.")
        if chunksize is not None and (
            isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1
        ):
            raise ValueError(f"chunksize must be a positive int or None; got {chunksize!r}.")
        if isinstance(mp_context, str):
            methods = multiprocessing.get_all_start_methods()
            if mp_context not in methods:
                raise ValueError(
                    f"mp_context must be one of {methods} on this platform (or a "
                    f"multiprocessing context); got {mp_context!r}."
                )
            mp_context = multiprocessing.get_context(mp_context)
        self.max_workers = max_workers
        self.mp_context = mp_context
        self.chunksize = chunksize
        self._pool: ProcessPoolExecutor | None = None
        self._finalizer: Any = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.max_workers, mp_context=self.mp_context)
            self._finalizer = weakref.finalize(self, _shutdown, self._pool)
        return self._pool

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        items = list(items)
        if not items:
            return []
        pool = self._get_pool()
        chunk = self.chunksize
        if chunk is None:
            workers = self.max_workers or os.cpu_count() or 1
            chunk = max(1, math.ceil(len(items) / workers))
        return list(pool.map(fn, items, chunksize=chunk))

    def close(self) -> None:
        """End the worker processes (a later ``map`` starts new ones)."""
        if self._finalizer is not None:
            self._finalizer()
        self._pool = self._finalizer = None

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(
            "a ProcessExecutor cannot be pickled (it owns worker processes); create one in "
            "the process that runs the comparison."
        )


def check_executor(executor: Any) -> Any:
    """``executor`` itself, a :class:`SerialExecutor` for None; TypeError without ``map``."""
    if executor is None:
        return SerialExecutor()
    return validate_executor(executor)
