"""Compare a set of models: every pair of models, layer by layer, through the one engine.

:func:`compare_many` captures each model once (one pass over the data drives them all;
or, with ``shard_size``, one task per data shard whose moments are merged exactly) and
evaluates every unordered pair of models from the accumulated moments. With
``resume=DIR`` the finished rows go to a result store (:mod:`nncompare.analyses._store`)
and a restarted run computes only what is missing.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nncompare.analyses.engine import (
    POLICIES,
    Accumulated,
    Pair,
    Progress,
    capture_sources,
    evaluate,
    measure_metadata,
    tidy_frame,
    tidy_rows,
)
from nncompare.analyses.engine import provenance as run_provenance
from nncompare.analyses.grid import parse_measures
from nncompare.analyses.inference import annotate, check_conv, check_settings
from nncompare.measures._registry import get as get_measure
from nncompare.results import ComparisonResult

__all__ = ["compare_many", "compare_models_resumed", "merge_accumulated"]

LAYER_PAIRS = ("matched", "all")


# ---------------------------------------------------------------------- sharded capture
def merge_accumulated(a: Accumulated, b: Accumulated) -> Accumulated:
    """``a`` with ``b`` (the same sources on later samples) merged into it, exactly.

    The joint moments merge by Chan et al.'s update (:meth:`nncompare.JointMoments.merge`),
    the kept arrays are appended in order; ``a`` is changed and returned.
    """
    if a.spectral or b.spectral:
        raise ValueError("conv='dft' moments do not merge; capture them in one pass.")
    for group, jm in b.groups.items():
        if group in a.groups:
            a.groups[group].merge(jm)
        else:
            a.groups[group] = jm
    for key, parts in b.arrays.items():
        a.arrays.setdefault(key, []).extend(parts)
    for name in ("group_of", "slot_of", "policy_of", "width_of", "names"):
        getattr(a, name).update(
            {k: v for k, v in getattr(b, name).items() if k not in getattr(a, name)}
        )
    a.n_samples += b.n_samples
    a._joined.clear()
    return a


@dataclass
class ShardCapture:
    """What an executor runs per data shard: every model on that shard, into moments.

    Carries the models and their resolved layer names (never the data: the shard is the
    item), so it pickles to processes and cluster workers.
    """

    models: dict[str, tuple[Any, list[str]]]
    conv: str
    batch_size: int
    keep_arrays: bool
    partition: Any = None

    def __call__(self, shard: Any) -> Accumulated:
        # a copy per shard: workers that are threads of one process (a LocalCluster with
        # processes=False, a thread pool) would otherwise hook the same modules at once
        models = copy.deepcopy(self.models)
        return capture_sources(
            models,
            shard,
            conv=self.conv,
            batch_size=self.batch_size,
            device=None,
            progress=False,
            max_samples=None,
            keep_arrays=self.keep_arrays,
            partition=self.partition,
        )


def _sliceable(data: Any) -> Any:
    """The input array of ``data`` where it can be cut into shards (tensor, array, (x, y));
    else None."""
    import numpy as np
    import torch

    x = data[0] if isinstance(data, tuple | list) and len(data) in (1, 2) else data
    return x if isinstance(x, torch.Tensor | np.ndarray) else None


def _tree_merge(parts: list[Accumulated]) -> Accumulated:
    while len(parts) > 1:
        nxt = [merge_accumulated(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        if len(parts) % 2:
            nxt.append(parts[-1])
        parts = nxt
    return parts[0]


def _sharded_capture(
    resolved: dict[str, tuple[Any, list[str]]],
    x: Any,
    n: int,
    shard_size: int,
    *,
    conv: str,
    batch_size: int,
    keep_arrays: bool,
    executor: Any,
    bar: Progress,
    partition: Any = None,
) -> Accumulated:
    fn = ShardCapture(resolved, conv, batch_size, keep_arrays, partition)
    shards = [x[s : min(s + shard_size, n)] for s in range(0, n, shard_size)]
    bar.start("capture", len(shards), "shard")
    try:
        if executor is None:
            parts = []
            for shard in shards:
                parts.append(fn(shard))
                bar.update(1)
            return _tree_merge(parts)
        if callable(getattr(executor, "map_reduce", None)):  # on the cluster (Dask)
            return executor.map_reduce(fn, shards, merge_accumulated, progress=bar)
        parts = list(executor.map(fn, shards))
        bar.update(len(parts))
        return _tree_merge(parts)
    finally:
        bar.close()


# ---------------------------------------------------------------------- the front door
def _as_models(models: Any, factory: Any = None) -> dict[str, Any]:
    from nncompare._io import read_state_dict, state_dict_from

    if isinstance(models, Mapping):
        out = {str(k): v for k, v in models.items()}
    elif isinstance(models, Sequence) and not isinstance(models, str | bytes):
        out = {str(i): m for i, m in enumerate(models)}
    else:
        raise TypeError(
            "models must be a mapping name -> torch.nn.Module (or -> checkpoint, with "
            f"factory=) or a sequence of them; got {type(models).__name__}."
        )
    if len(out) < 2:
        raise ValueError(f"compare_many needs at least two models; got {len(out)}.")
    if factory is not None and not callable(factory):
        raise TypeError(
            "factory must be a callable returning a fresh torch.nn.Module of the "
            f"checkpoints' architecture; got {type(factory).__name__}."
        )
    for name, m in out.items():
        if callable(getattr(m, "named_modules", None)):
            continue
        if factory is None:
            raise TypeError(
                f"models[{name!r}] must be a torch.nn.Module; got {type(m).__name__}. For "
                "checkpoints (state dicts or paths) pass factory=, a callable that builds the "
                "architecture."
            )
        net = factory()
        if isinstance(m, Mapping):
            state = state_dict_from(m, source=f"checkpoint {name!r}")
        else:
            state = read_state_dict(m, what=f"checkpoint {name!r}")
        net.load_state_dict(state)
        out[name] = net
    return out


def _layer_lists(
    models: dict[str, Any], layers: Any, pairs: str
) -> tuple[dict[str, list[str]], list[str]]:
    """Per model the layers to capture, and the labels whose layers are defaults."""
    from nncompare.capture import default_layers

    if layers is None:
        return {k: list(default_layers(m)) for k, m in models.items()}, list(models)
    if isinstance(layers, str):
        return {k: [layers] for k in models}, []
    if isinstance(layers, Mapping):
        missing = [k for k in models if k not in layers]
        if missing:
            raise ValueError(
                f"layers is a mapping, so it needs an entry for every model; missing "
                f"{missing} (has {sorted(map(str, layers))})."
            )
        out = {k: [layers[k]] if isinstance(layers[k], str) else list(layers[k]) for k in models}
        if pairs == "matched" and len({len(v) for v in out.values()}) > 1:
            raise ValueError(
                "pairs='matched' pairs the i-th layer of one model with the i-th of the "
                "other, so every model needs as many layers; got "
                f"{ {k: len(v) for k, v in out.items()} }. Pass pairs='all' for every layer "
                "pair."
            )
        return out, []
    return {k: list(layers) for k in models}, []


@dataclass
class _Pairs:
    """The pairs of a model set from the resolved layers, and the capture's partition:
    depth-matched pairs only need the cross-moments of one depth (one joint product per
    layer name, or per position), not those of every layer of every model."""

    labels: list[str]
    pairs: str
    by_position: bool

    def __call__(self, layers: dict[str, list[str]]) -> list[Pair]:
        out: list[Pair] = []
        for a, b in itertools.combinations(self.labels, 2):
            la, lb = layers[a], layers[b]
            if self.pairs == "all":
                out += [((a, x), (b, y)) for x in la for y in lb]
            elif self.by_position:
                out += [((a, x), (b, y)) for x, y in zip(la, lb, strict=False)]
            else:
                out += [((a, x), (b, x)) for x in la if x in lb]
        return out

    @property
    def partition(self) -> Any:
        return None if self.pairs == "all" else _part_of if not self.by_position else _position_of


def _part_of(key: tuple[str, str], layers: dict[str, list[str]]) -> str:
    return key[1]


def _position_of(key: tuple[str, str], layers: dict[str, list[str]]) -> int:
    return layers[key[0]].index(key[1])


def _make_pairs(labels: list[str], pairs: str, by_position: bool) -> _Pairs:
    return _Pairs(labels, pairs, by_position)


def compare_many(
    models: Mapping[str, Any] | Sequence[Any],
    data: Any,
    *,
    layers: Sequence[str] | str | Mapping[str, Sequence[str]] | None = None,
    pairs: str = "matched",
    measures: Sequence[str] | Mapping[str, Mapping[str, Any]] | str = (
        "cka",
        "cca",
        "svcca",
        "pwcca",
    ),
    conv: str = "mean",
    batch_size: int = 256,
    device: Any = None,
    max_samples: int | None = None,
    progress: bool = False,
    provenance: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    executor: Any = None,
    shard_size: int | None = None,
    resume: Any = None,
    factory: Any = None,
    as_result: bool = False,
    ci: float | None = None,
    n_boot: int = 1000,
    n_perm: int = 0,
    baseline: str | Sequence[str] | None = None,
    bootstrap: str | tuple[str, int] = "samples",
    interval: str = "basic",
    seed: int = 0,
) -> Any:
    """Compare every pair of models of a set, layer by layer, from one capture per model.

    Parameters
    ----------
    models : mapping name -> torch.nn.Module or checkpoint, or sequence of them
        The networks (a sequence is named "0", "1", ...). Each unordered pair of models is
        compared once (``model_a`` before ``model_b`` in the order given). A checkpoint (a
        state dict or a path, read with ``weights_only=True``) is loaded into
        ``factory()``.
    data : tensor, ndarray, (x, y), Dataset or DataLoader
        Inputs, fed in batches (see :func:`nncompare.capture.iter_batches`).
    layers : list of names or globs, or mapping name -> list, optional
        Default: :func:`nncompare.capture.default_layers` of each model, compared where the
        names agree (depth-matched for models of one architecture). A list: those names in
        every model. A mapping: each model's own list.
    pairs : {"matched", "all"}, default "matched"
        "matched": the same layer name in both models (with a mapping of ``layers``: the
        i-th layer of one model with the i-th of the other); "all": every layer of one
        model with every layer of the other.
    measures, conv, batch_size, device, max_samples, provenance
        As in :func:`nncompare.compare_models`.
    metadata : mapping model name -> dict, optional
        Each model's attributes (seed, width, learning rate, labels, ...), kept in the
        provenance (``df.attrs["provenance"]["metadata"]``): the metadata columns of
        :func:`nncompare.analyses.model_matrices` and the colour bars of its plots.
    progress : bool, default False
        Progress on stderr: "[1/2] capture" (samples, or shards), "[2/2] measures" (pairs
        × measures; advanced as Dask futures complete).
    executor : None, "threads", "processes", "dask", scheduler address, distributed.Client
        or object with ``map(fn, items)``
        Where the tasks run (see :mod:`nncompare.parallel`). A string names an executor
        made (and closed) for this call; ``"dask"`` starts a 2-worker LocalCluster.
    shard_size : int, optional
        Cut the inputs (a tensor, array or (x, y)) into shards of this many samples and
        capture each shard as one task of ``executor`` (all models on it; the models travel
        to the workers), then merge the shards' moments exactly (a tree of merges; on the
        cluster with Dask). Default: one capture in this process, or with
        ``executor="dask"``-like executors (``map_reduce``) shards of
        ``ceil(n / (2 × workers))``. The values equal the one-pass run to rounding.
    resume : path, optional
        A directory for the result store (``results.sqlite``): rows stored there by an
        earlier run with the same models (by content fingerprint), layers, measures,
        options and data (by hash) are read instead of computed; each model pair's rows
        are committed in one transaction as soon as they are done, so an interrupted run
        (even ``kill -9``) loses at most the pair it was computing. Needs re-iterable data.
    factory : callable, optional
        Builds a fresh model of the checkpoints' architecture (e.g.
        ``lambda: nc.models.cifar_resnet(depth=20)``); needed where ``models`` holds
        checkpoints.
    as_result : bool, default False
        Return the :class:`nncompare.ComparisonResult` (``kind="many"``) instead of its
        frame.
    ci, n_boot, n_perm, baseline, bootstrap, interval, seed
        Statistics of every value, as in :func:`nncompare.compare_models` (bootstrap
        intervals, permutation p-values, the ``"permutation"`` and ``"rotation"``
        baselines; for a random-network baseline use compare_models on a pair). They keep
        the activations in memory and are not combined with ``resume``.

    Returns
    -------
    pandas.DataFrame
        One row per (model pair, layer pair, measure): ``model_a``, ``model_b``,
        ``layer_a``, ``layer_b``, ``measure``, ``value``, ``distance``, ``policy``,
        ``n_samples``, the kept dims / ranks where they apply, ``error`` and ``note``, as
        :func:`nncompare.compare_models`; ``df.attrs`` holds ``provenance`` and
        ``measures``.

    Notes
    -----
    Each model runs over the data once, whatever the number of pairs (distinct module
    objects run once each); every layer's decomposition is done once by the moments and
    reused for all its pairs.

    Examples
    --------
    >>> df = nc.compare_many({"s0": net0, "s1": net1, "s2": net2}, x)  # doctest: +SKIP
    >>> df.pivot_table("value", ["model_a", "model_b"], ["layer_a", "measure"])  # doctest: +SKIP
    """
    from nncompare._validation import check_option

    nets = _as_models(models, factory)
    check_option("pairs", pairs, LAYER_PAIRS)
    check_option("conv", conv, POLICIES)
    spec = parse_measures(measures)
    if shard_size is not None and (
        isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1
    ):
        raise ValueError(f"shard_size must be a positive int or None; got {shard_size!r}.")
    if resume is not None and iter(data) is data:
        raise ValueError(
            "resume needs data that can be read more than once (a tensor, array, (x, y), "
            f"Dataset or DataLoader); got a one-shot iterator ({type(data).__name__})."
        )
    layer_lists, defaulted = _layer_lists(nets, layers, pairs)
    labels = list(nets)
    make_pairs = _make_pairs(labels, pairs, by_position=isinstance(layers, Mapping))
    keep_arrays = any(not get_measure(m).streaming for m in spec)
    stats = check_settings(
        ci, n_boot, n_perm, baseline, bootstrap=bootstrap, seed=seed, interval=interval,
        allowed=("permutation", "rotation"), where="compare_many (a pair of models per row)",
    )  # fmt: skip
    if stats is not None:
        check_conv(stats, conv)
        if resume is not None:
            raise ValueError(
                "ci, n_perm and baseline are not stored in the result store, so they cannot "
                "be combined with resume=; run without resume for the statistics."
            )
        keep_arrays = keep_arrays or stats.needs_arrays
    if metadata is not None:
        from nncompare.analyses.cluster import check_metadata

        provenance = {**dict(provenance or {}), "metadata": check_metadata(metadata, list(nets))}

    from nncompare.parallel import resolve_executor

    run, owned = resolve_executor(executor)
    try:
        return _compare_many(
            nets,
            data,
            layer_lists,
            defaulted,
            make_pairs,
            spec,
            conv=conv,
            batch_size=batch_size,
            device=device,
            max_samples=max_samples,
            progress=progress,
            provenance=provenance,
            run=run,
            shard_size=shard_size,
            resume=resume,
            keep_arrays=keep_arrays,
            as_result=as_result,
            stats=stats,
        )
    finally:
        if owned and callable(getattr(run, "close", None)):
            run.close()


def _capture(
    nets: dict[str, Any],
    data: Any,
    layer_lists: dict[str, list[str]],
    defaulted: list[str],
    make_pairs: Any,
    *,
    conv: str,
    batch_size: int,
    device: Any,
    max_samples: int | None,
    keep_arrays: bool,
    run: Any,
    shard_size: int | None,
    bar: Progress,
) -> Accumulated:
    models = {k: (m, layer_lists[k]) for k, m in nets.items()}
    partition = getattr(make_pairs, "partition", None)
    x = _sliceable(data)
    mapped = run is not None and callable(getattr(run, "map_reduce", None))
    if x is None or conv == "dft" or (shard_size is None and not mapped):
        return capture_sources(
            models,
            data,
            conv=conv,
            batch_size=batch_size,
            device=device,
            progress=bar,
            max_samples=max_samples,
            keep_arrays=keep_arrays,
            pairs=make_pairs,
            defaulted=defaulted,
            partition=partition,
        )
    n = len(x) if max_samples is None else min(len(x), max_samples)
    # the layers (globs, aliases, default layers that do not run) resolved on two samples
    probe = capture_sources(
        models,
        x[: min(2, n)],
        conv=conv,
        batch_size=batch_size,
        device=device,
        progress=False,
        max_samples=None,
        keep_arrays=False,
        pairs=make_pairs,
        defaulted=defaulted,
    )
    if shard_size is None:
        slots = getattr(run, "n_slots", 1)
        shard_size = max(1, -(-n // (2 * slots)))
    resolved = {k: (m, probe.layers[k]) for k, m in nets.items()}
    acc = _sharded_capture(
        resolved,
        x,
        n,
        shard_size,
        conv=conv,
        batch_size=batch_size,
        keep_arrays=keep_arrays,
        executor=run,
        bar=bar,
        partition=partition,
    )
    acc.layers, acc.aliases, acc.pairs = probe.layers, probe.aliases, probe.pairs
    return acc


class _Forward(Progress):
    """A view of a run's progress for one chunk of the measures: updates go to ``parent``;
    starting and closing phases is the parent's business."""

    def __init__(self, parent: Progress) -> None:
        super().__init__(False)
        self.parent = parent

    def start(self, what: str, total: int | None, unit: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.count += n
        self.parent.update(n)

    def note(self, text: str) -> None:
        self.parent.note(text)

    def close(self) -> None:
        pass


def _columns(p: Pair) -> dict[str, Any]:
    return {"model_a": p[0][0], "model_b": p[1][0], "layer_a": p[0][1], "layer_b": p[1][1]}


def _compare_many(
    nets: dict[str, Any],
    data: Any,
    layer_lists: dict[str, list[str]],
    defaulted: list[str],
    make_pairs: Any,
    spec: dict[str, dict[str, Any]],
    *,
    conv: str,
    batch_size: int,
    device: Any,
    max_samples: int | None,
    progress: bool,
    provenance: Mapping[str, Any] | None,
    run: Any,
    shard_size: int | None,
    resume: Any,
    keep_arrays: bool,
    as_result: bool,
    stats: Any = None,
) -> Any:
    bar = Progress(progress)
    capture_kw = dict(
        conv=conv,
        batch_size=batch_size,
        device=device,
        max_samples=max_samples,
        keep_arrays=keep_arrays,
        run=run,
        shard_size=shard_size,
        bar=bar,
    )
    if resume is None:
        acc = _capture(nets, data, layer_lists, defaulted, make_pairs, **capture_kw)
        pairs = acc.pairs
        outcomes = evaluate(acc, pairs, spec, executor=run, progress=bar)
        rows = tidy_rows(acc, pairs, outcomes, _columns)
        n_samples = acc.n_samples
        aliases = acc.aliases
    else:
        rows, n_samples, aliases, outcomes = _resumed(
            nets, data, layer_lists, defaulted, make_pairs, spec, resume, capture_kw
        )
    prov = run_provenance(
        {
            "models": {k: _describe(m) for k, m in nets.items()},
            "n_samples": n_samples,
            "conv_policy": conv,
            "batch_size": batch_size,
            **({"resume": str(resume)} if resume is not None else {}),
            **dict(provenance or {}),
        }
    )
    labels = list(nets)
    result = ComparisonResult(
        frame=tidy_frame(rows),
        kind="many",
        names=tuple(labels),
        layers_a=list(dict.fromkeys(r["layer_a"] for r in rows)),
        layers_b=list(dict.fromkeys(r["layer_b"] for r in rows)),
        measures=measure_metadata(spec, outcomes),
        provenance=prov,
        layer_aliases={k: dict(v) for k, v in aliases.items()},
        n_samples=n_samples,
        title=f"{len(labels)} models",
    )
    if stats is not None and resume is None:
        result.provenance["inference"] = stats.as_dict()
        annotate(result.frame, acc, pairs, spec, outcomes, stats, executor=run)
    return result if as_result else result.to_frame()


def _describe(model: Any) -> dict[str, Any]:
    n_params = sum(int(p.numel()) for p in model.parameters())
    return {"class": type(model).__name__, "parameters": n_params}


def _resumed(
    nets: dict[str, Any],
    data: Any,
    layer_lists: dict[str, list[str]],
    defaulted: list[str],
    make_pairs: Any,
    spec: dict[str, dict[str, Any]],
    resume: Any,
    capture_kw: dict[str, Any],
    columns: Any = _columns,
    keep_spectra: bool = False,
) -> tuple[list[dict[str, Any]], int, dict[str, dict[str, str]], dict[str, list[Any]]]:
    """The rows of a resumable run: stored ones read, missing ones computed and stored per
    model pair (one transaction each); the outcomes carry the stored conventions and
    spectra (``Outcome.index`` is the row's place in ``rows``)."""
    from nncompare.analyses._store import ResultStore, data_fingerprint, row_key
    from nncompare.capture import model_fingerprint

    bar: Progress = capture_kw["bar"]
    run = capture_kw["run"]
    fps = {k: model_fingerprint(m) for k, m in nets.items()}
    data_fp = data_fingerprint(
        data, batch_size=capture_kw["batch_size"], max_samples=capture_kw["max_samples"]
    )
    opts = {"conv": capture_kw["conv"], "max_samples": capture_kw["max_samples"]}
    store = ResultStore(resume)
    try:
        # the pairs follow from the resolved layers: resolve them on two samples, cheaply
        x = _sliceable(data)
        if x is not None:
            probe = capture_sources(
                {k: (m, layer_lists[k]) for k, m in nets.items()},
                x[:2],
                conv=capture_kw["conv"],
                batch_size=2,
                device=capture_kw["device"],
                progress=False,
                max_samples=None,
                keep_arrays=False,
                pairs=make_pairs,
                defaulted=defaulted,
            )
            pairs: list[Pair] = probe.pairs
            aliases = probe.aliases
        else:
            pairs, aliases = [], {}  # known after the capture

        def key_of(p: Pair, measure: str) -> str:
            return row_key(
                (fps[p[0][0]], fps[p[1][0]]),
                (p[0][1], p[1][1]),
                measure,
                spec[measure],
                opts,
                data_fp,
            )

        stored = store.get(key_of(p, m) for m in spec for p in pairs) if pairs else {}
        acc: Accumulated | None = None
        if not pairs or len(stored) < len(pairs) * len(spec):
            acc = _capture(nets, data, layer_lists, defaulted, make_pairs, **capture_kw)
            pairs, aliases = acc.pairs, acc.aliases
            stored = store.get(key_of(p, m) for m in spec for p in pairs)
        todo: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for m in spec:
            for i, p in enumerate(pairs):
                if key_of(p, m) not in stored:
                    todo.setdefault((p[0][0], p[1][0]), []).append((i, m))
        if todo:
            assert acc is not None
            bar.start("measures", sum(len(v) for v in todo.values()), "pair")
            try:
                for chunk in todo.values():  # one model pair: one transaction
                    fresh: dict[str, dict[str, Any]] = {}
                    for m in spec:
                        idx = [i for i, mm in chunk if mm == m]
                        if not idx:
                            continue
                        sub = [pairs[i] for i in idx]
                        got = evaluate(
                            acc,
                            sub,
                            {m: spec[m]},
                            executor=run,
                            keep_spectra=keep_spectra,
                            progress=_Forward(bar),
                        )
                        made = tidy_rows(acc, sub, got, columns)
                        for p, o, row in zip(sub, got[m], made, strict=True):
                            row["_conventions"] = o.conventions or {}
                            row["_rho"] = o.rho
                            fresh[key_of(p, m)] = row
                    store.put(fresh)
                    stored.update(json.loads(json.dumps(fresh, default=_plain)))
            finally:
                bar.close()
        from nncompare.analyses.engine import Outcome

        rows: list[dict[str, Any]] = []
        outcomes: dict[str, list[Any]] = {m: [] for m in spec}
        for m in spec:
            for p in pairs:
                row = dict(stored[key_of(p, m)])
                conventions = row.pop("_conventions", None) or {}
                rho = row.pop("_rho", None)
                row.update(columns(p))  # the labels of this run
                outcomes[m].append(
                    Outcome(m, len(rows), value=row["value"], conventions=conventions, rho=rho)
                )
                rows.append(row)
        n_samples = int(rows[0]["n_samples"]) if rows else 0
        return rows, n_samples, aliases, outcomes
    finally:
        store.close()


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else None


def compare_models_resumed(
    model_a: Any,
    model_b: Any,
    data: Any,
    *,
    models: dict[str, tuple[Any, list[str]]],
    defaulted: list[str],
    make_pairs: Any,
    spec: dict[str, dict[str, Any]],
    names: tuple[str, str],
    conv: str,
    batch_size: int,
    device: Any,
    max_samples: int | None,
    progress: bool,
    keep_spectra: bool,
    provenance: Mapping[str, Any],
    executor: Any,
    resume: Any,
) -> Any:
    """:func:`nncompare.compare_models` with ``resume=DIR``: its frame, rows read from the
    result store where they are there, the others computed and stored (one transaction
    per model pair, here the whole comparison's missing rows)."""
    if resume is not None and iter(data) is data:
        raise ValueError(
            "resume needs data that can be read more than once (a tensor, array, (x, y), "
            f"Dataset or DataLoader); got a one-shot iterator ({type(data).__name__})."
        )
    from nncompare.parallel import resolve_executor

    run, owned = resolve_executor(executor)
    label_b = list(models)[-1]
    keep_arrays = any(not get_measure(m).streaming for m in spec)

    def columns(p: Pair) -> dict[str, Any]:
        return {"model_a": names[0], "model_b": names[1], "layer_a": p[0][1], "layer_b": p[1][1]}

    try:
        rows, n_samples, aliases, outcomes = _resumed(
            {k: m for k, (m, _) in models.items()},
            data,
            {k: list(v) for k, (_, v) in models.items()},
            list(defaulted),
            make_pairs,
            spec,
            resume,
            dict(
                conv=conv,
                batch_size=batch_size,
                device=device,
                max_samples=max_samples,
                keep_arrays=keep_arrays,
                run=run,
                shard_size=None,
                bar=Progress(progress),
            ),
            columns=columns,
            keep_spectra=keep_spectra,
        )
    finally:
        if owned and callable(getattr(run, "close", None)):
            run.close()
    spectra: dict[str, dict[tuple[str, str], list[float]]] = {}
    kept: dict[tuple[str, str], tuple[int, int]] = {}
    for m, outs in outcomes.items():
        for o in outs:
            row = rows[o.index]
            lp = (row["layer_a"], row["layer_b"])
            if o.rho is not None:
                spectra.setdefault(m, {})[lp] = list(o.rho)
            if m == "svcca" and row.get("kept_dims_x") is not None:
                kept[lp] = (int(row["kept_dims_x"]), int(row["kept_dims_y"]))
    prov = run_provenance(
        {
            "model_a": _describe(model_a),
            "model_b": _describe(model_b),
            "n_samples": n_samples,
            "conv_policy": conv,
            "batch_size": batch_size,
            "resume": str(resume),
            **dict(provenance or {}),
        }
    )
    result = ComparisonResult(
        frame=tidy_frame(rows),
        kind="models",
        names=tuple(names),
        layers_a=list(dict.fromkeys(r["layer_a"] for r in rows)),
        layers_b=list(dict.fromkeys(r["layer_b"] for r in rows)),
        measures=measure_metadata(spec, outcomes),
        provenance=prov,
        spectra=spectra,
        kept_dims=kept,
        layer_aliases={
            (names[1] if lab == label_b else lab): dict(al) for lab, al in aliases.items()
        },
        n_samples=n_samples,
        title=f"{names[0]} vs {names[1]}",
    )
    return result.to_frame()
