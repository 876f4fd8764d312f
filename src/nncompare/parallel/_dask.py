"""Dask executor of the engine's tasks, and the names ``executor=`` accepts.

:class:`DaskExecutor` runs the engine's pair tasks (and, in :func:`nncompare.compare_many`,
the per-shard captures) on a ``dask.distributed`` cluster: a :class:`distributed.LocalCluster`
it starts itself, a scheduler address, or a :class:`distributed.Client` the caller owns.
Dask is imported when an executor first needs it, never at import of nncompare.

:func:`resolve_executor` turns the ``executor=`` values of the front doors into an
executor: None, ``"serial"``, ``"threads"``, ``"processes"``, ``"dask"``, a scheduler
address (``"tcp://host:8786"``), a ``distributed.Client``, or any object with ``map``.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["DaskExecutor", "is_dask_client", "resolve_executor"]

_INSTALL = 'pip install "nncompare[parallel]"'
NAMES = ("serial", "threads", "processes", "dask")


def _import_distributed() -> Any:
    """``distributed``, or ImportError saying how to install it."""
    try:
        import distributed
    except ImportError as err:
        raise ImportError(
            "executor='dask' needs dask.distributed, which is not installed; install it with "
            f"{_INSTALL} (or pip install 'dask[distributed]'), or use executor=None, "
            "'threads' or 'processes'."
        ) from err
    return distributed


def is_dask_client(obj: Any) -> bool:
    """Whether ``obj`` is a ``distributed.Client`` (checked without importing dask)."""
    return any(
        c.__name__ == "Client" and c.__module__.split(".")[0] == "distributed"
        for c in type(obj).__mro__
    )


def _close(client: Any, cluster: Any) -> None:
    for thing in (client, cluster):
        if thing is not None:
            try:
                thing.close()
            except Exception:  # pragma: no cover - closing at exit must never raise
                pass


def _apply(item: Any, fn: Any) -> Any:
    return fn(item)


def _apply_chunk(items: list[Any], fn: Any) -> list[Any]:
    return [fn(item) for item in items]


def _merge(a: Any, b: Any, merge: Any) -> Any:
    return merge(a, b)


class DaskExecutor:
    """Evaluate the engine's tasks on a Dask cluster (``dask.distributed``).

    ``map(fn, items)`` sends ``fn`` to the workers once (scattered) and one task per item;
    the results come back in the order of ``items``. ``map_reduce(fn, items, merge)`` maps
    and then merges the results pairwise on the cluster (a tree of exact merges, e.g. of
    :class:`nncompare.JointMoments`), returning the one merged result. A progress display
    passed by the engine (``fn.progress``) is advanced as each future completes.

    Parameters
    ----------
    client : distributed.Client, optional
        A client the caller owns (never closed here).
    address : str, optional
        A scheduler address such as ``"tcp://10.0.0.5:8786"``; a client to it is opened on
        first use and closed by :meth:`close`.
    n_workers : int, default 2
        Workers of the :class:`distributed.LocalCluster` started (on first use) when neither
        ``client`` nor ``address`` is given; closed by :meth:`close`.
    threads_per_worker : int, default 1
    processes : bool, default False
        Whether the LocalCluster's workers are processes (False: threads of this process,
        which start quickly).
    chunksize : int, optional
        Items per Dask task in :meth:`map` (each Dask task costs a few milliseconds of
        scheduling). Default: the items split into about four chunks per worker thread.

    Notes
    -----
    The cluster or client this executor opened is closed by :meth:`close`, the ``with``
    statement, or when the executor is garbage collected.

    Examples
    --------
    >>> from nncompare.parallel import DaskExecutor  # doctest: +SKIP
    >>> with DaskExecutor(n_workers=4) as ex:  # doctest: +SKIP
    ...     df = nc.compare_many(models, x, executor=ex)
    """

    def __init__(
        self,
        client: Any = None,
        *,
        address: str | None = None,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        processes: bool = False,
        chunksize: int | None = None,
    ) -> None:
        if client is not None and address is not None:
            raise ValueError(
                "pass either client= (a distributed.Client) or address= (a scheduler address), "
                f"not both; got client={client!r} and address={address!r}."
            )
        if client is not None and not is_dask_client(client):
            raise TypeError(
                f"client must be a distributed.Client; got {type(client).__name__}. Pass "
                "address='tcp://host:port' for a scheduler address."
            )
        for name, v in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int; got {v!r}.")
        if chunksize is not None and (
            isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1
        ):
            raise ValueError(f"chunksize must be a positive int or None; got {chunksize!r}.")
        if client is None:
            _import_distributed()  # fail here, with the install hint, not on first use
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.processes = bool(processes)
        self.chunksize = chunksize
        self._client = client
        self._owned: tuple[Any, Any] | None = None
        self._finalizer: Any = None
        self._sent: dict[str, Any] = {}  # the last function mapped and its future

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` (opened, with its LocalCluster, on first use)."""
        if self._client is None:
            distributed = _import_distributed()
            cluster = None
            if self.address is not None:
                client = distributed.Client(self.address, set_as_default=False)
            else:
                cluster = distributed.LocalCluster(
                    n_workers=self.n_workers,
                    threads_per_worker=self.threads_per_worker,
                    processes=self.processes,
                    dashboard_address=":0",
                )
                client = distributed.Client(cluster, set_as_default=False)
            self._client = client
            self._owned = (client, cluster)
            self._finalizer = weakref.finalize(self, _close, client, cluster)
        return self._client

    @property
    def n_slots(self) -> int:
        """Worker threads on the cluster now (at least 1)."""
        try:
            info = self.client.scheduler_info()
            return max(1, sum(int(w.get("nthreads", 1)) for w in info["workers"].values()))
        except Exception:  # pragma: no cover - an unusual scheduler
            return 1

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, computed on the cluster, in order: chunks of
        ``chunksize`` items per Dask task (default: about four chunks per worker thread)."""
        items = list(items)
        if not items:
            return []
        client = self.client
        progress = getattr(fn, "progress", None)
        size = self.chunksize or max(1, math.ceil(len(items) / (4 * self.n_slots)))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        futures = client.map(_apply_chunk, chunks, fn=self._scattered(fn), pure=False)
        if progress is not None:
            from distributed import as_completed

            length = {f.key: len(c) for f, c in zip(futures, chunks, strict=True)}
            for done in as_completed(futures, loop=client.loop):
                progress.update(length[done.key])
        return [out for part in client.gather(futures) for out in part]

    def _scattered(self, fn: Any) -> Any:
        """``fn`` on the workers, sent once for successive maps of the same function (the
        engine maps one runner, with all the moments, once per measure)."""
        box = self._sent
        if box.get("fn") is not None and box["fn"]() is fn:
            return box["future"]
        sent = fn
        if getattr(fn, "progress", None) is not None:  # advanced here, not by the workers
            sent = copy.copy(fn)
            sent.progress = None
        [future] = self.client.scatter([sent], broadcast=True, hash=False)
        box.clear()
        try:
            box["fn"] = weakref.ref(fn)
        except TypeError:  # not weakly referable: sent again next time
            return future
        box["future"] = future
        weakref.finalize(fn, box.clear)  # the workers' copy is released with the function
        return future

    def map_reduce(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        merge: Callable[[Any, Any], Any],
        *,
        progress: Any = None,
    ) -> Any:
        """``fn`` on every item on the cluster, then ``merge`` of neighbours, pairwise, until
        one result is left (a tree reduction: items in order, so merge need only be exact,
        not commutative). ``progress.update(1)`` per finished ``fn``."""
        items = list(items)
        if not items:
            raise ValueError("map_reduce needs at least one item; got none.")
        client = self.client
        [fn_future] = client.scatter([fn], broadcast=True, hash=False)
        level = client.map(_apply, items, fn=fn_future, pure=False)
        del fn_future
        if progress is not None:
            from distributed import as_completed

            for _ in as_completed(level, loop=client.loop):
                progress.update(1)
        while len(level) > 1:
            nxt = [
                client.submit(_merge, level[i], level[i + 1], merge, pure=False)
                for i in range(0, len(level) - 1, 2)
            ]
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        return level[0].result()

    def close(self) -> None:
        """Close the client and LocalCluster this executor opened (not a caller's client)."""
        self._sent.clear()
        if self._finalizer is not None:
            self._finalizer()
            self._client = None
        self._owned = self._finalizer = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(
            "a DaskExecutor cannot be pickled (it owns a client); create one in the process "
            "that runs the comparison."
        )

    def __repr__(self) -> str:
        where = (
            f"address={self.address!r}"
            if self.address
            else "client"
            if self._owned is None and self._client is not None
            else f"LocalCluster(n_workers={self.n_workers})"
        )
        return f"DaskExecutor({where})"


def resolve_executor(executor: Any) -> tuple[Any, bool]:
    """The executor named by a front door's ``executor=`` value, and whether it was made
    here (then the caller closes it, where it has ``close``).

    ``None`` -> None (in this process); ``"serial"``, ``"threads"``, ``"processes"`` ->
    :class:`SerialExecutor`, :class:`ThreadExecutor`, :class:`ProcessExecutor`;
    ``"dask"`` -> a :class:`DaskExecutor` on a 2-worker LocalCluster; a string with
    ``"://"`` -> a :class:`DaskExecutor` on that scheduler; a ``distributed.Client`` -> a
    :class:`DaskExecutor` on it (the client stays the caller's); any object with
    ``map(fn, items)`` -> itself.
    """
    from nncompare.analyses.engine import validate_executor
    from nncompare.parallel._executors import ProcessExecutor, SerialExecutor, ThreadExecutor

    if executor is None:
        return None, False
    if isinstance(executor, str):
        name = executor.strip()
        if "://" in name:
            return DaskExecutor(address=name), True
        made = {
            "serial": SerialExecutor,
            "threads": ThreadExecutor,
            "processes": ProcessExecutor,
            "dask": DaskExecutor,
        }.get(name.lower())
        if made is None:
            raise ValueError(
                f"executor must be None, one of {', '.join(map(repr, NAMES))}, a Dask scheduler "
                "address such as 'tcp://host:8786', a distributed.Client, or an object with "
                f"map(fn, items); got {executor!r}."
            )
        return made(), True
    if is_dask_client(executor):
        return DaskExecutor(executor), True
    return validate_executor(executor), False
