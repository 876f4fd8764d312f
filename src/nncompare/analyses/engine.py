"""The comparison engine: named activation sources -> moments -> pairs -> tidy rows.

Every comparison (:func:`nncompare.pairwise`, :func:`nncompare.compare_models`,
:func:`nncompare.compare_checkpoints`) runs the same four steps here:

1. **Sources.** Activations are named by tuple keys ``(source, layer)``: models × layers
   captured with forward hooks in one pass over the data (:func:`capture_sources`;
   checkpoints are models with other weights), arrays already in memory or memory-mapped
   from a capture cache (:func:`array_sources`; ``nc.capture(..., cache_dir=...)`` returns
   such a mapping), or joint moments accumulated elsewhere (:func:`moment_sources`).
2. **Accumulation.** Every batch flows into streaming joint moments
   (:class:`nncompare.JointMoments`, one per spatial group) or per-frequency moments
   (:class:`nncompare.SpectralMoments`, ``conv="dft"``); the kernel and neighbourhood
   measures keep the arrays (:class:`Accumulated`).
3. **Pairs.** Each (measure, pair) is one :class:`PairTask`; an *executor* maps the tasks
   (in this process by default; :mod:`nncompare.parallel` has threads and processes, and
   any object with ``map(fn, items)`` will do, see *The executor seam* below). Each
   layer's decomposition is done once by the moments (cached per block); ``rsa`` keeps
   each layer's RDM (:class:`nncompare.analyses.grid.RDMCache`); linear CKA of a whole
   grid can be read off the joint product at once
   (:func:`nncompare.analyses.grid.cka_grid`).
4. **Tidy rows.** :func:`tidy_rows` turns the outcomes into the one schema the front
   doors, the report and the plots share; :class:`nncompare.ComparisonResult` holds
   the frame with its typed metadata.

The executor seam
-----------------
``executor=`` of every front door is ``None`` (the tasks run in this process, one after
the other) or any object with ``map(fn, items)`` that returns ``fn(item)`` for every item,
in the order of ``items`` (:func:`validate_executor` checks for ``map``; the results are
checked to be one :class:`Outcome` per task). :func:`evaluate` calls ``map`` once per
measure (and once more for mirrored pairs whose partner failed) with

* ``fn``: a :class:`PairRunner`, a picklable callable carrying everything the measure
  needs, i.e. the accumulated moments (:class:`nncompare.JointMoments`,
  :class:`nncompare.SpectralMoments`), the kept arrays of the kernel measures, the
  measures' options and an RDM cache; never the models, the data loader or the progress
  bar;
* ``items``: the :class:`PairTask` tuples ``(measure, index, key_a, key_b)``, small and
  self-contained.

``fn(task)`` returns an :class:`Outcome` (value or error message, notes, kept dims and
ranks, spectrum). The executors of :mod:`nncompare.parallel` (threads, processes, Dask:
:class:`nncompare.parallel.DaskExecutor`, ``pip install "nncompare[parallel]"``) and a
plain :class:`concurrent.futures.ProcessPoolExecutor` fit as they are; the front doors
also take their names (``"threads"``, ``"processes"``, ``"dask"``), a Dask scheduler
address or a ``distributed.Client`` (:func:`validate_executor` resolves them through
:func:`nncompare.parallel.resolve_executor`, imported when asked for). An executor that
also has ``map_reduce(fn, items, merge, progress=)`` (Dask's) lets
:func:`nncompare.compare_many` capture data shards as tasks and merge their moments on the
cluster. Neither the measures nor the front doors change for a new executor.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import platform
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from nncompare._validation import NNCompareWarning, check_option
from nncompare.measures._registry import distance as measure_distance
from nncompare.measures._registry import get as get_measure
from nncompare.stats import JointMoments

__all__ = [
    "Accumulated",
    "Outcome",
    "PairRunner",
    "PairTask",
    "array_sources",
    "capture_sources",
    "evaluate",
    "measure_metadata",
    "models_result",
    "provenance",
    "tidy_frame",
    "tidy_rows",
    "validate_executor",
]

Key = tuple[str, str]  # (source, layer): a model label, a checkpoint label, "a"/"b" ...
Pair = tuple[Key, Key]

POLICIES = ("mean", "samples", "flatten", "dft")
DFT_MEASURES = ("cca", "cca_r2", "svcca")
SPECTRUM_MEASURES = ("cca", "svcca", "pwcca", "cca_r2")
_DETAILS = ("kept_dims_x", "kept_dims_y", "rank_x", "rank_y")
_MIRRORED = {  # a detail of (a, b) as the detail of (b, a)
    "kept_dims_x": "kept_dims_y",
    "kept_dims_y": "kept_dims_x",
    "rank_x": "rank_y",
    "rank_y": "rank_x",
}


# ---------------------------------------------------------------------- executors
def validate_executor(executor: Any) -> Any:
    """``executor`` itself (None: the tasks run in this process); TypeError without ``map``.

    The engine needs nothing of an executor but ``map(fn, items)``; the executors
    themselves live in :mod:`nncompare.parallel`, above the engine.
    """
    if executor is None:
        return None
    if isinstance(executor, str) or any(
        c.__name__ == "Client" and c.__module__.split(".")[0] == "distributed"
        for c in type(executor).__mro__
    ):
        # "threads", "processes", "dask", "tcp://...", a distributed.Client: resolved by
        # nncompare.parallel (above the engine, so imported here, when asked for); an
        # executor made here closes its pool or cluster when it is garbage collected
        from nncompare.parallel import resolve_executor

        return resolve_executor(executor)[0]
    if not callable(getattr(executor, "map", None)):
        raise TypeError(
            "executor must have a map(fn, items) method returning the results in order (e.g. "
            "nncompare.parallel.ThreadExecutor() or ProcessExecutor(), or a "
            "concurrent.futures pool), be one of 'threads', 'processes', 'dask', a Dask "
            "scheduler address ('tcp://host:8786') or a distributed.Client, or be None to run "
            f"in this process; got {executor!r}."
        )
    return executor


# ---------------------------------------------------------------------- progress
class Progress:
    """One progress display over a whole run: a tqdm bar per phase, on stderr.

    Phases are numbered ("[1/2] capture", "[2/2] measures"). Without tqdm one line per
    phase is written to stderr when it ends. Disabled, every method does nothing.
    """

    def __init__(self, enabled: bool, n_phases: int = 2) -> None:
        self.enabled = bool(enabled)
        self.n_phases = n_phases
        self._index = 0
        self._bar: Any = None
        self._plain: list[Any] = []
        self._lock = threading.Lock()
        self.count = 0  # updates in the current phase

    def start(self, what: str, total: int | None, unit: str) -> None:
        self.close()
        if not self.enabled:
            return
        self._index += 1
        self.count = 0
        desc = f"nncompare [{self._index}/{self.n_phases}] {what}"
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm comes with the torch extra
            self._plain = [desc, total, unit, 0]
            return
        self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.count += n
            if self._bar is not None:
                self._bar.update(n)
            elif self._plain:
                self._plain[3] += n

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._plain:
            desc, total, unit, done = self._plain
            of = f"/{total}" if total is not None else ""
            print(f"{desc}: {done}{of} {unit}s", file=sys.stderr)
            self._plain = []


# ---------------------------------------------------------------------- accumulation
@dataclass
class Accumulated:
    """Everything accumulated from the sources, keyed by ``(source, layer)`` tuples.

    ``groups`` holds one :class:`JointMoments` per spatial group (``()`` for vectors and
    every policy but ``conv="samples"``); ``names`` the block name of each key in them
    (display only: keys are never parsed back from it). ``arrays`` keeps the batches of
    the layers the kernel measures need. ``conv="dft"`` fills ``spectral`` (per cropped
    frequency grid) from a capture, or keeps the channels-last arrays from memory
    (``dft_in_memory``).
    """

    groups: dict[tuple[int, ...], JointMoments] = field(default_factory=dict)
    group_of: dict[Key, tuple[int, ...]] = field(default_factory=dict)
    slot_of: dict[Key, Any] = field(default_factory=dict)
    policy_of: dict[Key, str] = field(default_factory=dict)
    width_of: dict[Key, int] = field(default_factory=dict)
    names: dict[Key, str] = field(default_factory=dict)
    arrays: dict[Key, list[Any]] = field(default_factory=dict)
    n_samples: int = 0
    spectral: dict[tuple[int, ...], Any] = field(default_factory=dict)
    spectral_members: dict[tuple[int, ...], list[Key]] = field(default_factory=dict)
    dft_target: dict[Pair, tuple[int, ...]] = field(default_factory=dict)
    dft_in_memory: bool = False
    layers: dict[str, list[str]] = field(default_factory=dict)
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    pairs: list[Any] = field(default_factory=list)
    _joined: dict[Key, Any] = field(default_factory=dict, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_joined")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _joined={})

    def slot(self, key: Key) -> Any:
        """Which of ``groups`` holds ``key``: its spatial group, or (group, part) where the
        capture was partitioned."""
        return self.slot_of.get(key, self.group_of[key])

    def name(self, key: Key) -> str:
        if key not in self.names:
            self.names[key] = f"{key[0]}:{key[1]}"
        return self.names[key]

    def array(self, key: Key) -> Any:
        """The kept activations of ``key``, all batches joined (once)."""
        with self._lock:
            if key not in self._joined:
                parts = self.arrays[key]
                self._joined[key] = parts[0] if len(parts) == 1 else np.concatenate(parts, 0)
            return self._joined[key]


def _to_matrix(t: Any, policy: str) -> tuple[Any, tuple[int, ...], str]:
    """Torch activation (N, C, *spatial) or (N, d) -> 2-D matrix, spatial group, policy used."""
    if t.ndim == 2:
        return t, (), "none"
    if t.ndim == 1:
        return t[:, None], (), "none"
    n, c = t.shape[0], t.shape[1]
    spatial = tuple(int(s) for s in t.shape[2:])
    if policy == "mean":
        return t.mean(dim=tuple(range(2, t.ndim))), (), "mean"
    cl = t.movedim(1, -1)  # (N, *spatial, C)
    if policy == "flatten":
        return cl.reshape(n, -1), (), "flatten"
    return cl.reshape(-1, c), spatial, "samples"


def _channels_last(t: Any) -> Any:
    """(N, C, *spatial) -> (N, *spatial, C); vectors (N, d) unchanged."""
    if t.ndim <= 2:
        return t if t.ndim == 2 else t[:, None]
    return t.movedim(1, -1)


def _update_spectral(acc: Accumulated, acts: Mapping[Key, Any], pairs: list[Pair]) -> None:
    """Feed one batch into per-frequency-grid spectral accumulators (exact DFT path)."""
    from nncompare.measures._spectral import SpectralMoments

    if not acc.spectral_members:
        nsp = max((a.ndim - 2 for a in acts.values()), default=0)
        if nsp == 0:
            raise ValueError(
                "conv='dft' needs convolutional layers; all chosen layers are vectors."
            )
        sizes: dict[Key, tuple[int, ...]] = {}
        for key, a in acts.items():
            if a.ndim == 2:
                sizes[key] = (1,) * nsp
            elif a.ndim - 2 != nsp:
                raise ValueError(
                    "conv='dft' needs layers with the same number of spatial axes; got "
                    f"{a.ndim - 2} for {acc.name(key)!r} and {nsp} elsewhere."
                )
            else:
                sizes[key] = tuple(int(v) for v in a.shape[1:-1])
        for ka, kb in pairs:
            t = tuple(min(p, q) for p, q in zip(sizes[ka], sizes[kb], strict=True))
            acc.dft_target[(ka, kb)] = t
            members = acc.spectral_members.setdefault(t, [])
            for k in (ka, kb):
                if k not in members:
                    members.append(k)
        for t in acc.spectral_members:
            acc.spectral[t] = SpectralMoments(t)
    for t, members in acc.spectral_members.items():
        acc.spectral[t].update({acc.name(k): acts[k] for k in members})


def capture_sources(
    models: Mapping[str, tuple[Any, list[str]]],
    data: Any,
    *,
    conv: str,
    batch_size: int,
    device: Any,
    progress: bool | Progress,
    max_samples: int | None,
    keep_arrays: bool,
    pairs: list[Pair] | Callable[[dict[str, list[str]]], list[Any]] | None = None,
    defaulted: Sequence[str] = (),
    partition: Callable[[Key, dict[str, list[str]]], Any] | None = None,
) -> Accumulated:
    """One pass over ``data`` through every model, accumulating moments (and arrays).

    ``models`` maps a source label to ``(module, layer names or globs)``. Glob patterns are
    resolved against the first batch, so that matches returning the very same tensor (a
    stage and its last block) are kept once (:func:`nncompare.capture.resolve_layers`);
    labels in ``defaulted`` (layer lists chosen by default) lose the modules that do not
    run. ``pairs`` may be a function of the final ``{label: layers}`` that returns the
    pairs to evaluate (tuples starting with ``(key_a, key_b)``); they are kept in
    ``Accumulated.pairs``. Distinct module objects run once each, whatever their labels.
    ``partition(key, layers)`` (optional) names a part for each key: keys of different
    parts go to different joint moments (``Accumulated.slot``), so only cross-moments
    within a part are formed (e.g. one part per layer depth when only depth-matched pairs
    are compared: memory and time grow with the parts' sizes, not with all keys at once).
    """
    import torch

    from nncompare.capture import ActivationRecorder, iter_batches
    from nncompare.capture._data import _n_samples_exact
    from nncompare.capture._layers import _output_groups, _resolve

    check_option("conv", conv, POLICIES)
    first_model = next(iter(models.values()))[0]
    if device is None:
        try:
            device = next(first_model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    for lab, (m, layers) in models.items():
        modules = dict(m.named_modules())
        for layer in _resolve(m, layers)[0]:
            if isinstance(modules.get(layer), torch.jit.ScriptModule):
                raise ValueError(
                    f"layer {layer!r} of {lab} is a TorchScript module, and TorchScript does not "
                    "support forward hooks, so its activations cannot be recorded. Record the "
                    "model's 'output' instead, or export the model with torch.export (dynamic "
                    "batch dimension), whose layers keep their names and can be hooked."
                )
    bar = progress if isinstance(progress, Progress) else Progress(progress, n_phases=1)
    batches = iter_batches(data, batch_size=batch_size, device=device, max_samples=max_samples)
    first = next(batches, None)
    if first is None:
        raise ValueError("the data yielded no samples; pass at least a few hundred inputs.")
    batches = itertools.chain([first], batches)
    probe = first[: min(2, len(first))]
    acc = Accumulated()
    resolved: dict[str, tuple[Any, list[str]]] = {}
    for lab, (m, layers) in models.items():
        names, aliases = _resolve(m, layers, sample_input=probe)
        if lab in defaulted:
            not_run = set(_output_groups(m, names, probe)[1])
            names = [n for n in names if n not in not_run] or names
        resolved[lab] = (m, names)
        if aliases:
            acc.aliases[lab] = aliases
    acc.layers = {lab: names for lab, (_, names) in resolved.items()}
    if callable(pairs):
        acc.pairs = list(pairs(acc.layers))
        pairs = [(p[0], p[1]) for p in acc.pairs]
    by_model: dict[int, tuple[Any, list[str], list[str]]] = {}
    for lab, (m, layers) in resolved.items():
        entry = by_model.setdefault(id(m), (m, [], []))
        entry[1].append(lab)
        for layer in layers:
            if layer not in entry[2]:
                entry[2].append(layer)
    total = _n_samples_exact(data)
    if total is not None and max_samples is not None:
        total = min(total, max_samples)
    bar.start("capture", total, "sample")
    recorders = [
        (m, labels, ActivationRecorder(m, layers, reuse="first"))
        for m, labels, layers in by_model.values()
    ]
    try:
        for rec in (r for _, _, r in recorders):
            rec.__enter__()
        for x in batches:
            per_group: dict[tuple[int, ...], dict[str, Any]] = {}
            nb = int(x.shape[0])
            dft_acts: dict[Key, Any] = {}
            for _m, labels, rec in recorders:
                out = rec.run(x)
                for lab in labels:
                    for layer in resolved[lab][1]:
                        key = (lab, layer)
                        if conv == "dft":
                            dft_acts[key] = _channels_last(out[layer]).to(torch.float64)
                            acc.policy_of[key] = "dft"
                            acc.group_of[key] = ()
                            continue
                        mat, group, used = _to_matrix(out[layer], conv)
                        mat = mat.to(torch.float64)
                        prev = acc.group_of.setdefault(key, group)
                        if prev != group:
                            raise ValueError(
                                f"layer {layer!r} of {lab} changed its spatial size between "
                                f"batches ({prev} -> {group})."
                            )
                        acc.policy_of[key] = used
                        acc.width_of[key] = int(mat.shape[1])
                        slot = group
                        if partition is not None:  # only pairs within a part are asked for
                            slot = acc.slot_of.setdefault(key, (group, partition(key, acc.layers)))
                        per_group.setdefault(slot, {})[acc.name(key)] = mat
                        if keep_arrays:
                            acc.arrays.setdefault(key, []).append(mat.cpu().numpy())
            for group, batch in per_group.items():
                acc.groups.setdefault(group, JointMoments()).update(batch)
            if conv == "dft":
                _update_spectral(acc, dft_acts, pairs or [])
            acc.n_samples += nb
            bar.update(nb)
    finally:
        for _, _, rec in recorders:
            rec.__exit__(None, None, None)
        bar.close()
    if acc.n_samples == 0:
        raise ValueError("the data yielded no samples; pass at least a few hundred inputs.")
    return acc


def array_sources(
    mats: Mapping[Key, Any],
    *,
    streaming: bool,
    product_dtype: str | None = None,
    dft: bool = False,
    policies: Mapping[Key, str] | None = None,
    names: Mapping[Key, str] | None = None,
) -> Accumulated:
    """Arrays already in memory (2-D, or channels-last conv arrays with ``dft``), all over
    the same samples: one joint product of all of them where ``streaming`` measures are
    asked for (in ``product_dtype``), and the arrays kept for the others. ``policies``
    names how each array was reduced (the ``policy`` column; default "none"); ``names``
    (distinct) label the arrays in the moments and in error messages (default
    "source:layer")."""
    acc = Accumulated(dft_in_memory=dft)
    if names is not None:
        if len(set(names.values())) != len(names):
            raise ValueError(f"array labels must be distinct; got {sorted(names.values())}.")
        acc.names.update(names)
    for key, m in mats.items():
        acc.arrays[key] = [m]
        acc.group_of[key] = ()
        acc.policy_of[key] = "dft" if dft else (policies or {}).get(key, "none")
        acc.n_samples = int(m.shape[0])
    if streaming:
        jm = JointMoments(dtype=product_dtype) if product_dtype else JointMoments()
        jm.update({acc.name(k): m for k, m in mats.items()})
        acc.groups[()] = jm
    return acc


def moment_sources(jm: JointMoments, blocks: Mapping[Key, str]) -> Accumulated:
    """Joint moments accumulated elsewhere; ``blocks`` names each key's block in ``jm``."""
    acc = Accumulated(groups={(): jm}, names=dict(blocks), n_samples=jm.n)
    for key in blocks:
        acc.group_of[key] = ()
        acc.policy_of[key] = "none"
    return acc


# ---------------------------------------------------------------------- one pair
def _dft_options(measure: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :meth:`SpectralMoments.dft_cca` for ``measure``'s options,
    each value checked by the measure's declared constraints, as ``nc.svcca(..., conv="dft")``
    checks it (the same message)."""
    from nncompare.measures._linalg import DEFAULT_RTOL

    get_measure(measure).check_options(opts)
    kw: dict[str, Any] = {"rtol": float(opts.get("rtol", DEFAULT_RTOL))}
    if measure != "svcca":
        return kw
    dims = opts.get("dims")
    if dims is None:
        variance = opts.get("variance", 0.99)
        if variance is None:
            raise ValueError(
                "svcca: variance=None needs dims (the number of directions to keep); pass a "
                "fraction of variance such as variance=0.99, or dims=20."
            )
        kw["variance"] = float(variance)
    elif isinstance(dims, tuple | list):
        kw["dims"] = (int(dims[0]), int(dims[1]))
    else:
        kw["dims"] = (int(dims), int(dims))
    return kw


def _dft_measure(acc: Accumulated, pair: Pair, measure: str, opts: dict[str, Any]) -> Any:
    if measure not in DFT_MEASURES:
        raise ValueError(
            f"{measure} is not defined with conv='dft' (only {', '.join(DFT_MEASURES)}); use "
            "conv='mean', 'samples' or 'flatten' for it."
        )
    kw = _dft_options(measure, opts)
    t = acc.dft_target[pair]
    res = acc.spectral[t].dft_cca(acc.name(pair[0]), acc.name(pair[1]), **kw)
    if measure == "cca_r2":
        r = np.asarray(res.rho)
        res = type(res)(**{**res.__dict__, "measure": "cca_r2", "value": float(np.mean(r**2))})
    return res


def compute_pair(
    acc: Accumulated, pair: Pair, measure: str, opts: dict[str, Any], rdm_cache: Any
) -> Any:
    """The full result object of ``measure`` on one pair, from what ``acc`` holds."""
    ka, kb = pair
    ga, gb = acc.group_of[ka], acc.group_of[kb]
    if ga != gb:
        raise ValueError(
            "conv='samples' pairs image locations, so both layers need the same spatial size; "
            f"got {ga or 'vector'} and {gb or 'vector'}. Use conv='mean' to compare across "
            "resolutions."
        )
    if acc.dft_target:
        return _dft_measure(acc, pair, measure, opts)
    fn = get_measure(measure).function
    if acc.dft_in_memory:
        return fn(acc.array(ka), acc.array(kb), **opts, conv="dft")
    sa, sb = acc.slot(ka), acc.slot(kb)
    if sa != sb and sa in acc.groups and get_measure(measure).streaming:
        raise ValueError(
            f"{acc.name(ka)} and {acc.name(kb)} were accumulated in different joint moments "
            "(capture_sources(partition=...)), so their cross-moments are not there; "
            "capture them in one part."
        )
    if sa in acc.groups and get_measure(measure).streaming:
        return fn(acc.groups[sa].pair(acc.name(ka), acc.name(kb)), **opts)
    if measure == "rsa" and rdm_cache is not None:  # each layer's RDM and ranks once
        from nncompare.measures.rsa import rsa_cached

        return rsa_cached(acc.array(ka), acc.array(kb), keys=pair, cache=rdm_cache, **opts)
    return fn(acc.array(ka), acc.array(kb), **opts)


# ---------------------------------------------------------------------- outcomes
class PairTask(NamedTuple):
    """One unit of work an executor receives: ``measure`` on the pair ``(a, b)``, the
    ``index``-th pair of the comparison."""

    measure: str
    index: int
    a: Key
    b: Key


@dataclass
class Outcome:
    """One evaluated (measure, pair): the value, or why there is none, and small details.

    ``details`` holds the integer kept dims / ranks, ``rho`` the canonical correlations of
    a CCA-type measure (when spectra are kept), ``result`` the full result object (when
    results are kept).
    """

    measure: str
    index: int
    value: float = float("nan")
    error: str | None = None
    notes: tuple[str, ...] = ()
    details: dict[str, int] = field(default_factory=dict)
    rho: list[float] | None = None
    conventions: dict[str, Any] | None = None
    result: Any = None


_TASK = threading.local()  # the notes list of the pair task running on this thread


@contextmanager
def _task_notes() -> Iterator[list[str]]:
    """The notes of one pair task (filled where :class:`_Notes` routes the warnings)."""
    _TASK.notes = notes = []
    try:
        yield notes
    finally:
        _TASK.notes = None


class _Notes:
    """Warnings raised inside pair tasks, routed to the task that raised them.

    The measures' own warnings (:class:`NNCompareWarning`) become the task's notes; any
    other warning is emitted again once the evaluation is over. Thread-safe: each thread
    records into its own task. In another process (a worker of a process pool or a
    cluster) the tasks route the measures' warnings to their notes themselves
    (:func:`_route_notes_here`); other warnings stay in that process.
    """

    open_here = 0  # evaluations recording notes in this process

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._others: list[tuple[Any, Any, str, int]] = []

    def __enter__(self) -> _Notes:
        if not self.enabled:  # warnings reach the caller as they are raised
            return self
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("always", NNCompareWarning)
        warnings.showwarning = self._show
        _Notes.open_here += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.enabled:
            return
        _Notes.open_here -= 1
        self._cm.__exit__(*exc)
        for message, category, filename, lineno in self._others:
            warnings.warn_explicit(message, category, filename, lineno)

    def _show(self, message: Any, category: Any, filename: str, lineno: int, *args: Any) -> None:
        notes = getattr(_TASK, "notes", None)
        if notes is not None and issubclass(category, NNCompareWarning):
            notes.append(str(message))
            return
        with self._lock:
            self._others.append((message, category, filename, lineno))


_ROUTED_HERE = False  # whether _route_notes_here ran in this process


def _route_notes_here() -> None:
    """Route the measures' warnings to the running task's notes in this process, for good.

    Done once, by the first task that records notes in a process where no evaluation is
    open (a worker), so that its notes equal those of the serial run: every
    :class:`NNCompareWarning` is shown (not once per location) and, inside a task, becomes
    a note; other warnings, and those raised outside tasks, are shown as before.
    """
    global _ROUTED_HERE
    if _ROUTED_HERE:
        return
    shown = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, *args: Any) -> None:
        notes = getattr(_TASK, "notes", None)
        if notes is not None and issubclass(category, NNCompareWarning):
            notes.append(str(message))
            return
        shown(message, category, filename, lineno, *args)

    warnings.filterwarnings("always", category=NNCompareWarning)
    warnings.showwarning = show
    _ROUTED_HERE = True


def _outcome(
    measure: str, index: int, res: Any, *, keep_spectra: bool, keep_result: bool
) -> Outcome:
    out = Outcome(measure, index, value=float(res), conventions=dict(res.conventions))
    for attr in _DETAILS:
        v = getattr(res, attr, None)
        if isinstance(v, int | np.integer):
            out.details[attr] = int(v)
    if keep_spectra and measure in SPECTRUM_MEASURES and getattr(res, "rho", None) is not None:
        from nncompare._array import to_numpy

        out.rho = [float(r) for r in to_numpy(res.rho)]
    if keep_result:
        out.result = res
    return out


@dataclass
class PairRunner:
    """What an executor calls on each :class:`PairTask`: the measure on that pair, from
    the accumulated moments and arrays, as an :class:`Outcome`.

    It pickles without anything process-local (locks, the progress display stay behind;
    the kept arrays and the RDM cache travel), so an executor may run the tasks in other
    processes or on a cluster; the streaming measures' tasks also need the accumulators
    (:class:`nncompare.JointMoments`) to pickle.
    """

    acc: Accumulated
    spec: Mapping[str, dict[str, Any]]
    rdm_cache: Any
    errors: str = "record"
    keep_spectra: bool = False
    keep_results: bool = False
    progress: Progress | None = None
    record_notes: bool = False

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": None}

    def __call__(self, t: PairTask) -> Outcome:
        if self.record_notes and not _Notes.open_here:  # in a worker process
            _route_notes_here()
        with _task_notes() as said:
            try:
                res = compute_pair(
                    self.acc, (t.a, t.b), t.measure, self.spec[t.measure], self.rdm_cache
                )
                got = _outcome(
                    t.measure,
                    t.index,
                    res,
                    keep_spectra=self.keep_spectra,
                    keep_result=self.keep_results,
                )
            except ValueError as exc:
                if self.errors == "raise":
                    raise
                got = Outcome(t.measure, t.index, error=str(exc))
        got.notes = tuple(dict.fromkeys(said))
        if self.progress is not None:
            self.progress.update(1)
        return got


def evaluate(
    acc: Accumulated,
    pairs: Sequence[Pair],
    spec: Mapping[str, dict[str, Any]],
    *,
    executor: Any = None,
    errors: str = "record",
    keep_results: bool = False,
    keep_spectra: bool = False,
    mirror: bool = False,
    cka_at_once: bool = False,
    record_notes: bool = True,
    progress: Progress | None = None,
) -> dict[str, list[Outcome]]:
    """Every measure of ``spec`` on every pair: ``{measure: [Outcome per pair]}``.

    Each (measure, pair) is one :class:`PairTask`, mapped by ``executor`` (default None:
    an inline loop in this process; see the module docstring for what an executor
    receives); the tasks of one measure are mapped together, in pair order.
    A pair whose measure is undefined gets NaN and the message (``errors="record"``), or
    the exception propagates (``"raise"``). With ``record_notes`` the measures' warnings
    become per-pair notes instead of being raised.

    ``mirror``: a symmetric measure's value on a pair whose reverse came earlier is copied
    from it (not its error, whose message names an orientation, and not with
    ``keep_results``, whose objects are per orientation). ``cka_at_once``: linear CKA of
    all pairs from one joint product (:func:`nncompare.analyses.grid.cka_grid`) instead of
    per-pair tasks (undefined pairs still get their own task, for the message).
    """
    from nncompare.analyses.grid import RDMCache

    check_option("errors", errors, ("record", "raise"))
    run = validate_executor(executor)
    bar = progress if progress is not None else Progress(False)
    runner = PairRunner(
        acc,
        dict(spec),
        RDMCache(),
        errors=errors,
        keep_spectra=keep_spectra,
        keep_results=keep_results,
        progress=bar,
        record_notes=record_notes,
    )

    def mapped(items: list[PairTask]) -> list[Outcome]:
        if not items:
            return []
        if run is None:  # in this process, one after the other
            return [runner(t) for t in items]
        before = bar.count
        got = list(run.map(runner, items))
        if len(got) != len(items) or not all(isinstance(g, Outcome) for g in got):
            raise TypeError(
                f"executor.map(fn, items) must return fn(item) for every item, in order: it "
                f"returned {len(got)} result(s) for {len(items)} task(s) "
                f"({', '.join(sorted({type(g).__name__ for g in got})) or 'nothing'}); check "
                f"the map method of {type(run).__name__}."
            )
        bar.update(len(got) - (bar.count - before))  # tasks that ran elsewhere
        return got

    out: dict[str, list[Outcome]] = {}
    bar.start("measures", len(pairs) * len(spec), "pair")
    try:
        with _Notes(record_notes):
            for measure in spec:
                bar.note(measure)
                out[measure] = _evaluate_measure(
                    acc,
                    pairs,
                    measure,
                    mapped,
                    mirror=mirror and not keep_results,
                    at_once=cka_at_once and not keep_results,
                    bar=bar,
                )
    finally:
        bar.close()
    return out


def _evaluate_measure(
    acc: Accumulated,
    pairs: Sequence[Pair],
    measure: str,
    run: Callable[[list[PairTask]], Iterable[Outcome]],
    *,
    mirror: bool,
    at_once: bool,
    bar: Progress,
) -> list[Outcome]:
    """One measure on every pair: the grid at once (CKA), mirrored values, and the tasks
    ``run`` maps (first every pair not mirrored, then those whose mirror had an error)."""
    from nncompare.analyses.grid import cka_grid

    got: list[Outcome | None] = [None] * len(pairs)
    info = get_measure(measure)
    groups = {acc.slot(k) for p in pairs for k in p}
    jm = acc.groups.get(next(iter(groups))) if len(groups) == 1 else None
    if (
        at_once
        and measure == "cka"
        and jm is not None
        and not acc.dft_in_memory
        and not acc.dft_target
        and jm.n >= 3
    ):
        rows = list(dict.fromkeys(a for a, _ in pairs))
        cols = list(dict.fromkeys(b for _, b in pairs))
        vals = cka_grid(
            jm, [acc.name(k) for k in rows], [acc.name(k) for k in cols], upper=rows == cols
        )
        ri, ci = {k: i for i, k in enumerate(rows)}, {k: j for j, k in enumerate(cols)}
        for index, (a, b) in enumerate(pairs):
            v = float(vals[ri[a], ci[b]])
            if not np.isnan(v):
                got[index] = Outcome(measure, index, value=v)
                bar.update(1)
    first = {p: i for i, p in reversed(list(enumerate(pairs)))}
    later: list[tuple[int, int]] = []
    todo: list[PairTask] = []
    for index, (a, b) in enumerate(pairs):
        if got[index] is not None:
            continue
        partner = first.get((b, a))
        if mirror and info.symmetric and a != b and partner is not None and partner < index:
            later.append((index, partner))
        else:
            todo.append(PairTask(measure, index, a, b))
    for res in run(todo):
        got[res.index] = res
    again: list[PairTask] = []
    for index, partner in later:
        src = got[partner]
        if src is not None and src.error is None:
            swapped = {_MIRRORED.get(k, k): v for k, v in src.details.items()}
            got[index] = Outcome(measure, index, value=src.value, details=swapped)
            bar.update(1)
        else:
            again.append(PairTask(measure, index, *pairs[index]))
    for res in run(again):
        got[res.index] = res
    return [g for g in got if g is not None]


# ---------------------------------------------------------------------- tidy rows
def tidy_rows(
    acc: Accumulated,
    pairs: Sequence[Pair],
    outcomes: Mapping[str, list[Outcome]],
    columns: Callable[[Pair], dict[str, Any]],
    *,
    details: bool = True,
) -> list[dict[str, Any]]:
    """The one tidy schema: per (measure, pair) the pair's ``columns(pair)`` then
    ``measure``, ``value``, ``distance``, ``policy``, ``n_samples``, the integer details
    that apply (kept dims, ranks; with ``details``), ``error`` and ``note``."""
    rows = []
    for measure, outs in outcomes.items():
        for o in outs:
            ka, kb = pairs[o.index]
            pa, pb = acc.policy_of[ka], acc.policy_of[kb]
            row = {
                **columns(pairs[o.index]),
                "measure": measure,
                "value": o.value,
                "distance": measure_distance(measure, o.value),
                "policy": pa if pa == pb else f"{pa}/{pb}",
                "n_samples": acc.n_samples,
                **(o.details if details else {}),
                "error": o.error,
                "note": " ".join(o.notes) if o.notes else None,
            }
            rows.append(row)
    return rows


def tidy_frame(rows: list[dict[str, Any]], *, all_details: bool = False) -> Any:
    """The tidy rows as a DataFrame; the integer detail columns (kept dims, ranks) as
    nullable integers (every one of them with ``all_details``, else those that occur)."""
    import pandas as pd

    df = pd.DataFrame.from_records(rows)
    if all_details:
        at = list(df.columns).index("error") if "error" in df else len(df.columns)
        for col in _DETAILS:
            if col not in df:
                df.insert(at, col, None)
                at += 1
    for col in _DETAILS:
        if col in df:
            df[col] = df[col].astype("Int64")
    return df


def models_result(
    acc: Accumulated,
    pairs: Sequence[Pair],
    outcomes: Mapping[str, list[Outcome]],
    spec: Mapping[str, dict[str, Any]],
    names: Sequence[str],
    provenance: Mapping[str, Any],
    layer_aliases: Mapping[str, dict[str, str]] | None = None,
    *,
    all_details: bool = False,
) -> Any:
    """The :class:`nncompare.ComparisonResult` of a layer × layer comparison of two
    sources: rows named by the pairs' layers, spectra and SVCCA's kept dims per pair."""
    from nncompare.results import ComparisonResult

    rows = tidy_rows(
        acc,
        pairs,
        outcomes,
        lambda p: {
            "model_a": names[0],
            "model_b": names[1],
            "layer_a": p[0][1],
            "layer_b": p[1][1],
        },
    )
    spectra: dict[str, dict[tuple[str, str], list[float]]] = {}
    kept: dict[tuple[str, str], tuple[int, int]] = {}
    for measure, outs in outcomes.items():
        for o in outs:
            layer_pair = (pairs[o.index][0][1], pairs[o.index][1][1])
            if o.rho is not None:
                spectra.setdefault(measure, {})[layer_pair] = o.rho
            if measure == "svcca" and {"kept_dims_x", "kept_dims_y"} <= set(o.details):
                kept[layer_pair] = (o.details["kept_dims_x"], o.details["kept_dims_y"])
    return ComparisonResult(
        frame=tidy_frame(rows, all_details=all_details),
        kind="models",
        names=tuple(names),
        layers_a=list(dict.fromkeys(a[1] for a, _ in pairs)),
        layers_b=list(dict.fromkeys(b[1] for _, b in pairs)),
        measures=measure_metadata(spec, outcomes),
        provenance=dict(provenance),
        spectra=spectra,
        kept_dims=kept,
        layer_aliases=dict(layer_aliases or {}),
        n_samples=acc.n_samples,
        title=f"{names[0]} vs {names[1]}",
    )


def measure_metadata(
    spec: Mapping[str, dict[str, Any]], outcomes: Mapping[str, list[Outcome]]
) -> dict[str, Any]:
    """Per measure: options, the conventions of its first value, and the registry's
    direction, reference, description and streaming flag."""
    from nncompare.results import MeasureRecord

    meta = {}
    for name in spec:
        info = get_measure(name)
        conv = next((o.conventions for o in outcomes.get(name, ()) if o.conventions), {})
        meta[name] = MeasureRecord(
            options=dict(spec[name]),
            conventions=dict(conv),
            higher_is_better=info.higher_is_better,
            reference=info.reference,
            description=info.description,
            streaming=info.streaming,
        )
    return meta


def provenance(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Versions (torch's where it is loaded), platform, time and command line, completed
    by ``extra``."""
    from nncompare._version import __version__

    out: dict[str, Any] = {
        "nncompare": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
    torch = sys.modules.get("torch")  # where torch took part (never imported for this)
    if torch is not None:
        out["torch"] = torch.__version__
    out.update(extra)
    return out
