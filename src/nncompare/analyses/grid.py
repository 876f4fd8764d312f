"""All-pairs comparison of many activation matrices (layers × layers, models × models).

The linear measures (CCA family, linear CKA, R², Procrustes, shape) need only the joint
second moments, so the cross-products of *all* pairs come from one joint product of the
concatenated activations (:class:`nncompare.JointMoments`), and each layer's covariance is
decomposed once, however many partners it has. Linear CKA of every pair is read off that
joint product at once (all cross-block and per-layer Frobenius norms in one vectorised
pass). ``rsa`` computes each layer's RDM (and its ranks) once and correlates the stored
vectors pair by pair. The other kernel and neighbourhood measures (``cka_debiased``,
``cka_rbf``, ``mutual_knn``) and the DFT path are evaluated pair by pair from the arrays.
"""

from __future__ import annotations

import difflib
import inspect
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nncompare._array import as_array, device_of, is_torch, to_numpy, to_scalar_float
from nncompare._layout import resolve_layout, to_channels_last_if
from nncompare._threads import thread_map, worker_count
from nncompare._validation import check_option, dtype_eps
from nncompare.analyses.engine import (
    SPECTRUM_MEASURES,
    array_sources,
    evaluate,
    measure_metadata,
    moment_sources,
    tidy_frame,
)
from nncompare.analyses.engine import provenance as run_provenance
from nncompare.analyses.inference import check_settings
from nncompare.measures._registry import distance as measure_distance
from nncompare.measures._registry import get as get_measure
from nncompare.stats import JointMoments

__all__ = ["GridResult", "grid_from_moments", "pairwise"]


@dataclass
class GridResult:
    """Values of several measures for every (layer_a, layer_b) pair.

    Attributes
    ----------
    names_a, names_b : list of str
        Row and column layer names.
    values : dict of str -> ndarray, shape (len(names_a), len(names_b))
        One matrix per measure (NaN where a pair could not be computed; see ``errors``).
    results : dict of (measure, a, b) -> Result
        Full result objects (canonical correlations, kept dims, ...), when kept.
    errors : dict of (measure, a, b) -> str
        Why a pair has no value (e.g. CCA trivially perfect because n ≤ rank).
    n_samples : int
    options : dict of measure -> dict of options used
    details : dict of (measure, a, b) -> dict of str -> int
        The integer details of each value (SVCCA's kept dims, ranks) where they apply.
    measure_info : dict of measure -> MeasureRecord
        Options, conventions and the registry's direction, reference and description.
    policies_a, policies_b : dict of layer -> str
        How each layer was reduced to a matrix ("none" for 2-D activations, else the
        ``conv`` policy).
    provenance : dict
        Versions, platform, time and the comparison's settings.
    inference : dict of (measure, a, b) -> dict of str -> float
        The statistics asked of :func:`pairwise` (``ci=``, ``n_perm=``, ``baseline=``):
        ``ci_low``, ``ci_high``, ``boot_se``, ``p_value``, ... per pair; columns of
        :meth:`to_frame` and :meth:`to_comparison`. ``notes`` holds their remarks.

    :meth:`to_comparison` gives the :class:`nncompare.ComparisonResult` that the report and
    the plots read (``nc.report.write_report(grid, out)``, ``nc.plot.heatmap(grid, "cka")``
    accept the grid itself).
    """

    names_a: list[str]
    names_b: list[str]
    values: dict[str, np.ndarray]
    n_samples: int
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], str] = field(default_factory=dict)
    details: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)
    measure_info: dict[str, Any] = field(default_factory=dict)
    policies_a: dict[str, str] = field(default_factory=dict)
    policies_b: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    inference: dict[tuple[str, str, str], dict[str, float]] = field(default_factory=dict)
    notes: dict[tuple[str, str, str], str] = field(default_factory=dict)

    @property
    def measures(self) -> list[str]:
        return list(self.values)

    def __getitem__(self, measure: str) -> np.ndarray:
        return self.values[measure]

    def to_frame(self, **extra_columns: Any) -> Any:
        """Tidy pandas DataFrame: one row per (layer_a, layer_b, measure).

        ``distance`` goes with ``value`` as in :func:`nncompare.compare_models`:
        arccos(value) for procrustes/shape, the value for bures_wasserstein, else 1 − value.
        """
        import pandas as pd

        rows = []
        for measure, mat in self.values.items():
            for i, a in enumerate(self.names_a):
                for j, b in enumerate(self.names_b):
                    res = self.results.get((measure, a, b))
                    row = {
                        "layer_a": a,
                        "layer_b": b,
                        "measure": measure,
                        "value": float(mat[i, j]),
                        "distance": measure_distance(measure, float(mat[i, j])),
                        "n_samples": self.n_samples,
                        **self.inference.get((measure, a, b), {}),
                        "error": self.errors.get((measure, a, b)),
                    }
                    if res is not None:
                        for attr in ("kept_dims_x", "kept_dims_y", "rank_x", "rank_y"):
                            v = getattr(res, attr, None)
                            if v is not None:
                                row[attr] = int(v) if np.ndim(to_numpy(v)) == 0 else None
                    row.update(extra_columns)
                    rows.append(row)
        return pd.DataFrame(rows)

    def to_comparison(
        self, names: tuple[str, str] = ("A", "B"), *, title: str | None = None
    ) -> Any:
        """The grid as a :class:`nncompare.ComparisonResult`, in the schema of
        :func:`nncompare.compare_models`.

        Columns ``model_a``, ``model_b`` (the ``names``), ``layer_a``, ``layer_b``,
        ``measure``, ``value``, ``distance``, ``policy``, ``n_samples``, the integer details
        that occur (``kept_dims_x`` ...), ``error`` and ``note``; the metadata typed:
        measures, provenance, SVCCA's kept dims and, from kept results
        (``keep_results=True``), the canonical-correlation spectra.
        """
        from nncompare.results import ComparisonResult

        if len(names) != 2:
            raise ValueError(f"names must be two labels (model A, model B); got {names!r}.")
        name_a, name_b = str(names[0]), str(names[1])
        rows = []
        spectra: dict[str, dict[tuple[str, str], list[float]]] = {}
        kept: dict[tuple[str, str], tuple[int, int]] = {}
        for measure, mat in self.values.items():
            for i, a in enumerate(self.names_a):
                for j, b in enumerate(self.names_b):
                    key = (measure, a, b)
                    pa, pb = self.policies_a.get(a, "none"), self.policies_b.get(b, "none")
                    det = self.details.get(key, {})
                    rows.append(
                        {
                            "model_a": name_a,
                            "model_b": name_b,
                            "layer_a": a,
                            "layer_b": b,
                            "measure": measure,
                            "value": float(mat[i, j]),
                            "distance": measure_distance(measure, float(mat[i, j])),
                            "policy": pa if pa == pb else f"{pa}/{pb}",
                            "n_samples": self.n_samples,
                            **det,
                            **self.inference.get(key, {}),
                            "error": self.errors.get(key),
                            "note": self.notes.get(key),
                        }
                    )
                    if measure == "svcca" and {"kept_dims_x", "kept_dims_y"} <= set(det):
                        kept[(a, b)] = (det["kept_dims_x"], det["kept_dims_y"])
                    res = self.results.get(key)
                    rho = getattr(res, "rho", None) if res is not None else None
                    if measure in SPECTRUM_MEASURES and rho is not None:
                        spectra.setdefault(measure, {})[(a, b)] = [float(r) for r in to_numpy(rho)]
        info = self.measure_info or measure_metadata(self.options, {})
        return ComparisonResult(
            frame=tidy_frame(rows),
            kind="models",
            names=tuple(dict.fromkeys((name_a, name_b))),
            layers_a=list(self.names_a),
            layers_b=list(self.names_b),
            measures=dict(info),
            provenance={"n_samples": self.n_samples, **self.provenance},
            spectra=spectra,
            kept_dims=kept,
            n_samples=self.n_samples,
            title=title if title is not None else f"{name_a} vs {name_b}",
        )


# options set for the whole comparison, not per measure
_GRID_ARGUMENTS = {
    "conv": "the conv= argument of the comparison (pairwise, compare_models, ...)",
    "layout": "the layout= argument of nc.pairwise (compare_models knows the captured layout)",
    "precision": "the precision= argument of nc.pairwise (the precision of the joint product)",
}


def measure_options(name: str) -> list[str]:
    """The options a measure takes in a comparison: its keyword arguments except X, Y,
    conv, layout and precision (which the comparison sets for every measure)."""
    fn = get_measure(name).function
    params = inspect.signature(fn).parameters.values()
    return [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in ("X", "Y", *_GRID_ARGUMENTS)
    ]


def _check_options(name: str, options: Mapping[str, Any]) -> None:
    accepted = measure_options(name)
    for key in options:
        if key in _GRID_ARGUMENTS:
            raise TypeError(
                f"{key!r} is not an option of {name}: set it for the whole comparison with "
                f"{_GRID_ARGUMENTS[key]}."
            )
        if key not in accepted:
            close = difflib.get_close_matches(str(key), accepted, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listed = (
                f"its options are {', '.join(map(repr, accepted))}"
                if accepted
                else "it takes no options"
            )
            raise TypeError(
                f"{name} has no option {key!r}{hint}; {listed} (see help(nncompare.{name}))."
            )
    # values too, before any model runs: a bad value is the caller's error, not a pair's
    get_measure(name).check_options(dict(options))


def parse_measures(
    measures: Sequence[str] | Mapping[str, Mapping[str, Any]] | str,
) -> dict[str, dict[str, Any]]:
    """``measures`` as ``{name: options}``, every name and option name checked.

    Raises
    ------
    ValueError
        No measure, an unknown name, or a measure of covariance matrices.
    TypeError
        Options that are not a mapping, or an option the measure does not take (the error
        names the ones it does). Option *values* are checked by the measure itself.
    """
    if isinstance(measures, str):
        measures = [measures]
    if isinstance(measures, Mapping):
        out = {}
        for k, v in measures.items():
            if v is not None and not isinstance(v, Mapping):
                raise TypeError(
                    f"the options of {k!r} must be a mapping {{option: value}} (or None), e.g. "
                    f"{{'svcca': {{'variance': 0.99}}}}; got {v!r}."
                )
            out[str(k)] = dict(v or {})
    else:
        out = {str(m): {} for m in measures}
    if not out:
        raise ValueError("measures must name at least one measure, e.g. ['cka', 'cca'].")
    for name, opts in out.items():
        info = get_measure(name)
        if info.input != "activations":
            raise ValueError(f"{name!r} compares covariance matrices, not activations.")
        _check_options(name, opts)
    return out


def _as_matrix(name: str, arr: Any, conv: str | None, layout: str | None = None) -> Any:
    lay = None
    if getattr(arr, "ndim", 0) > 2:
        lay = resolve_layout(arr, layout, name=f"layer {name!r}")
    arr = as_array(arr, name=name)
    if lay is not None:
        arr = to_channels_last_if(arr, lay)  # from here on every conv layer is channels last
    if arr.ndim > 2:
        if conv is None:
            raise ValueError(
                f"layer {name!r} has activations of shape {tuple(arr.shape)}; pass conv='mean', "
                "'samples', 'flatten' or 'dft' to say how convolutional activations are compared."
            )
        if conv != "dft":
            from nncompare.measures.conv import reshape_conv

            return reshape_conv(arr, conv, layout="NHWC")  # channels last by now
    elif arr.ndim == 1:
        arr = arr[:, None]
    return arr


# ---------------------------------------------------------------------- linear CKA grid
def cka_grid(
    jm: JointMoments, rows: Sequence[str], cols: Sequence[str], *, upper: bool = False
) -> np.ndarray:
    """Linear CKA of every (row, column) pair of layers held by ``jm``; NaN where undefined.

    With W the joint co-moments in units of each layer's largest feature scale (constant
    features zero), CKA(a, b) = ‖W_ab‖²_F / (‖W_aa‖_F ‖W_bb‖_F): the numbers of
    ``nc.cka(jm.pair(a, b))``, up to the order of the sums. The per-layer norms are formed
    once, and every row layer's squared entries are summed over all column layers in one
    pass and gathered into column blocks by one indicator product (no per-pair work).
    ``upper=True`` (rows == cols) forms only the blocks on and above the diagonal and
    mirrors them. NaN marks pairs with a layer whose every feature is constant (see
    :func:`nncompare.cka` for the message).

    Returns
    -------
    ndarray, shape (len(rows), len(cols)), float64
    """
    xp = jm.xp
    Z = jm.zcom
    if is_torch(Z):
        Z = Z.detach()
    dev = device_of(Z)
    scale = to_numpy(jm.scale)
    const = jm.constant()
    names = list(dict.fromkeys([*rows, *cols]))
    rel = np.zeros(int(Z.shape[0]))
    slices = {}
    for nm in names:
        b = jm.block(nm)
        s = slice(b.start, b.stop)
        slices[nm] = s
        live = scale[s][~const[s]]
        g = float(live.max()) if live.size else 1.0
        rel[s] = np.where(const[s], 0.0, scale[s] / g)
    relx = xp.asarray(rel, device=dev)
    self_h: dict[str, float] = {}
    for nm in names:
        s = slices[nm]
        W = relx[s][:, None] * Z[s, s] * relx[s][None, :]
        self_h[nm] = to_scalar_float(xp.sum(W * W))
    # the columns of every column layer, side by side, and where each layer starts there
    starts = [slices[c].start for c in cols]
    stops = [slices[c].stop for c in cols]
    offs = np.cumsum([0, *(b - a for a, b in zip(starts, stops, strict=True))])
    contiguous = all(stops[j] == starts[j + 1] for j in range(len(cols) - 1))
    if contiguous:
        col_sel: Any = slice(starts[0], stops[-1])
    else:
        col_sel = xp.asarray(
            np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)]),
            device=dev,
        )
    indicator = np.zeros((len(cols), int(offs[-1])))
    for j in range(len(cols)):
        indicator[j, offs[j] : offs[j + 1]] = 1.0
    P = xp.asarray(indicator, device=dev)
    # the relative scales are powers of two: (r_i z_ij r_j)² = r_i² z_ij² r_j² exactly
    rel2 = relx * relx
    relc2 = rel2[col_sel] if contiguous else xp.take(rel2, col_sel)
    H = np.zeros((len(rows), len(cols)))

    def row_layer(i: int) -> None:
        s = slices[rows[i]]
        first = i if upper else 0  # upper: only the column layers from this one on
        c0 = int(offs[first])
        block = Z[s, col_sel] if contiguous else xp.take(Z[s, :], col_sel, axis=1)
        block = block[:, c0:]
        colsum = (rel2[s] @ (block * block)) * relc2[c0:]
        H[i, first:] = to_numpy(P[first:, c0:] @ colsum)

    # numpy: the row layers in worker threads (each writes its own row of H)
    workers = worker_count() if isinstance(Z, np.ndarray) else 1
    thread_map(row_layer, range(len(rows)), workers)
    if upper:
        H = np.triu(H) + np.triu(H, 1).T
    hr = np.array([self_h[r] for r in rows])
    hc = np.array([self_h[c] for c in cols])
    with np.errstate(divide="ignore", invalid="ignore"):
        values = H / np.sqrt(hr[:, None] * hc[None, :])
    values[(hr <= 0)[:, None] | (hc <= 0)[None, :]] = np.nan
    return values


# ---------------------------------------------------------------------- RSA per layer
def _rsa_cache_budget(v: Any) -> int:
    """Bytes the stored RDM vectors may take: half the memory available beside room for the
    n × n matrices of one more pair (as :func:`nncompare.rsa` counts them)."""
    from nncompare.measures._kernels import RSA_N2_ARRAYS, memory_limit

    limit, _ = memory_limit(v)
    n2 = 2.0 * int(v.shape[0])  # the vector holds n(n - 1)/2 entries
    return int(max(0.0, (limit - 2.0 * RSA_N2_ARRAYS * 8.0 * n2) / 2.0))


class RDMCache:
    """Per-layer RDM vectors of a grid (for :func:`nncompare.measures.rsa.rsa_cached`).

    The least recently used vectors are dropped when the stored ones would exceed
    ``budget`` bytes (default: set from the memory available when the first is stored), so a
    grid of many layers at large n recomputes some RDMs instead of running out of memory.
    With the grid's loop order (rows outer, columns inner) every RDM is computed once as
    long as the column layers' vectors fit.
    """

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        self.nbytes = 0
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()  # pair tasks may run on several threads

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    @staticmethod
    def _size(v: Any) -> int:
        return 0 if isinstance(v, tuple) else 8 * int(v.shape[0])

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def get(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            self._store(key, value)

    def _store(self, key: Any, value: Any) -> None:
        size = self._size(value)
        if self.budget is None and size:
            self.budget = _rsa_cache_budget(value)
        if key in self._items:
            self.nbytes -= self._size(self._items.pop(key))
        budget = self.budget if self.budget is not None else 0
        if size > budget:  # would not fit even alone: not kept
            return
        while self._items and self.nbytes + size > budget:
            _, old = self._items.popitem(last=False)
            self.nbytes -= self._size(old)
        self._items[key] = value
        self.nbytes += size


# ---------------------------------------------------------------------- precision
_PRECISIONS = ("auto", "float32", "float64")


def _product_dtype(mats: Sequence[Any], precision: str) -> str:
    """Precision of the joint product: with ``"auto"`` the inputs' own (float32 when every
    layer is a float of at most 32 bits), else ``precision`` itself."""
    check_option("precision", precision, _PRECISIONS)
    if precision != "auto":
        return precision
    eps32 = float(np.finfo(np.float32).eps)
    narrow = all(dtype_eps(m.dtype) >= eps32 for m in mats)
    return "float32" if narrow else "float64"


def pairwise(
    acts_a: Mapping[str, Any],
    acts_b: Mapping[str, Any] | None = None,
    *,
    measures: Sequence[str] | Mapping[str, Mapping[str, Any]] | str = ("cka", "cca"),
    conv: str | None = None,
    layout: str | None = None,
    keep_results: bool = False,
    errors: str = "record",
    precision: str = "auto",
    executor: Any = None,
    ci: float | None = None,
    n_boot: int = 1000,
    n_perm: int = 0,
    baseline: str | Sequence[str] | None = None,
    bootstrap: str | tuple[str, int] = "samples",
    interval: str = "basic",
    seed: int = 0,
) -> GridResult:
    """Compare every layer of ``acts_a`` with every layer of ``acts_b`` (or of ``acts_a``).

    Parameters
    ----------
    acts_a, acts_b : mapping of name -> array (n, d) or conv activations (n, *spatial, c)
        Activations over the same n samples. Without ``acts_b`` the grid is a × a (a
        symmetric measure is computed once per unordered pair, except for pairs whose
        value is undefined, so that each orientation gets its own message in ``errors``,
        and with ``keep_results``, whose result objects are per orientation).
    measures : list of names, or {name: {option: value}}
        Registry names (see ``nc.measures.available()``) with optional options, e.g.
        ``{"svcca": {"variance": 0.99}, "cka": {}}``. An option the measure does not take
        raises ``TypeError`` naming the ones it does; a bad option value gives the
        measure's own error for every pair (recorded, or raised with ``errors="raise"``).
    conv : {None, "samples", "flatten", "mean", "dft"}
        Reshape policy for convolutional activations; with "samples" all layers must share a
        spatial size; "dft" is evaluated pair by pair for the CCA family.
    layout : {None, "NHWC", "NCHW"}
        Where the channels of convolutional layers are; None reads each array's tag
        (:class:`nncompare.LayoutArray`, e.g. from :func:`nncompare.capture`), else channels
        last (see :func:`nncompare.reshape_conv`).
    keep_results : bool
        Keep every full result object (canonical correlations ...) in ``GridResult.results``.
    errors : {"record", "raise"}
        A pair whose measure is undefined (e.g. CCA with n ≤ rank) gets NaN and its message in
        ``GridResult.errors`` ("record"), or the exception propagates ("raise").
    precision : {"auto", "float32", "float64"}, default "auto"
        Precision of the joint product of the linear measures (the O(n D²) work), as in
        :class:`nncompare.JointMoments`: ``"auto"`` forms it in the inputs' own precision,
        i.e. float32 when every layer is float32 (or float16/bfloat16), float64 otherwise;
        the products are summed in float64 and every decomposition is float64, so float32
        products agree with ``precision="float64"`` (the exact path) to about 1e-6 or
        better (4.5e-9 for CKA on the 10 × 5000 × 256 benchmark grid).
    executor : None, "threads", "processes", "dask", str or object with ``map(fn, items)``
        Evaluates the (measure, pair) tasks (None: in this process; the names, a Dask
        scheduler address or ``distributed.Client``, and the executors of
        :mod:`nncompare.parallel`, as in :func:`nncompare.compare_models`).
    ci, n_boot, n_perm, baseline, bootstrap, interval, seed
        Statistics of every value, as in :func:`nncompare.compare_models` (bootstrap
        intervals, permutation p-values, the ``"permutation"`` and ``"rotation"``
        baselines; ``"random_network"`` needs a model: use compare_models). Kept in
        :attr:`GridResult.inference`; not with ``conv="dft"``.

    Returns
    -------
    GridResult

    Notes
    -----
    Linear measures (``nc.measures.get(m).streaming``) come from one joint product of all
    layers; linear CKA of every pair is evaluated from it at once (:func:`cka_grid`), the
    others pair by pair from each layer's decomposition, done once. ``rsa`` computes every
    layer's RDM and ranks once (:class:`RDMCache`).
    """
    if errors not in ("record", "raise"):
        raise ValueError(f"errors must be 'record' or 'raise'; got {errors!r}.")
    spec = parse_measures(measures)
    stats = check_settings(
        ci,
        n_boot,
        n_perm,
        baseline,
        bootstrap=bootstrap,
        interval=interval,
        seed=seed,
        allowed=("permutation", "rotation"),
        where="pairwise (arrays, no model)",
    )
    if stats is not None and conv == "dft":
        raise ValueError(
            "ci, n_perm and baseline resample the samples of activation matrices, which "
            "conv='dft' does not form; use conv='mean' or 'flatten' for the statistics."
        )
    if not isinstance(acts_a, Mapping) or not acts_a:
        raise TypeError("acts_a must be a non-empty mapping {layer_name: activations}.")
    same = acts_b is None
    acts_b_ = acts_a if same else acts_b
    if not isinstance(acts_b_, Mapping) or not acts_b_:
        raise TypeError("acts_b must be a non-empty mapping {layer_name: activations}.")
    mats_a = {str(k): _as_matrix(str(k), v, conv, layout) for k, v in acts_a.items()}
    mats_b = (
        mats_a
        if same
        else {str(k): _as_matrix(str(k), v, conv, layout) for k, v in acts_b_.items()}
    )
    n_set = {int(v.shape[0]) for v in (*mats_a.values(), *mats_b.values())}
    if len(n_set) != 1:
        sizes = {k: int(v.shape[0]) for k, v in {**mats_a, **mats_b}.items()}
        raise ValueError(
            f"all layers must hold the same samples; got sample counts {sizes}. With "
            "conv='samples' every layer needs the same spatial size."
        )
    names_a, names_b = list(mats_a), list(mats_b)
    streaming = any(get_measure(m).streaming for m in spec) and conv != "dft"
    keys_a = [("a", a) for a in names_a]
    keys_b = keys_a if same else [("b", b) for b in names_b]
    mats = dict(zip(keys_a, mats_a.values(), strict=True))
    if not same:
        mats.update(zip(keys_b, mats_b.values(), strict=True))
    if streaming:
        dtype = _product_dtype(list(mats.values()), precision)
    else:
        check_option("precision", precision, _PRECISIONS)
        dtype = None
    # errors name a layer as the caller did: "x", or "acts_b:x" where two mappings are given
    labels = {k: k[1] if same else f"acts_{k[0]}:{k[1]}" for k in mats}
    acc = array_sources(
        mats, streaming=streaming, product_dtype=dtype, dft=conv == "dft", names=labels
    )
    pairs = [(ka, kb) for ka in keys_a for kb in keys_b]
    outcomes = evaluate(
        acc,
        pairs,
        spec,
        executor=executor,
        errors=errors,
        keep_results=keep_results,
        mirror=same,
        cka_at_once=True,
        record_notes=False,
    )
    out = _grid(names_a, names_b, acc.n_samples, spec, outcomes)

    def policy(v: Any) -> str:
        return str(conv) if getattr(v, "ndim", 2) > 2 else "none"

    if stats is not None:
        _grid_statistics(out, acc, pairs, spec, outcomes, stats, executor, acts_a, acts_b_)
    out.policies_a = {str(k): policy(v) for k, v in acts_a.items()}
    out.policies_b = {str(k): policy(v) for k, v in acts_b_.items()}
    out.provenance = run_provenance(
        {
            "n_samples": acc.n_samples,
            "conv_policy": conv,
            "precision": precision,
            "memory": "arrays in memory",
            **({"inference": stats.as_dict()} if stats is not None else {}),
        }
    )
    return out


def _grid_statistics(
    out: GridResult,
    acc: Any,
    pairs: Sequence[Any],
    spec: dict[str, dict[str, Any]],
    outcomes: Mapping[str, Sequence[Any]],
    stats: Any,
    executor: Any,
    acts_a: Mapping[str, Any],
    acts_b: Mapping[str, Any],
) -> None:
    """The statistics of every pair into ``out.inference`` / ``out.notes``."""
    from nncompare.analyses.inference import compute

    group = {}
    for side, acts in (("a", acts_a), ("b", acts_b)):
        for k, v in acts.items():
            key = (side, str(k))
            if key in acc.arrays:
                group[key] = max(int(acc.arrays[key][0].shape[0]) // int(v.shape[0]), 1)
    if acts_b is acts_a:
        group.update({("b", k): g for (_, k), g in list(group.items())})
    for t, cols, notes in compute(
        acc, pairs, spec, outcomes, stats, executor=executor, group=group
    ):
        key = (t.measure, t.a[1], t.b[1])
        out.inference[key] = cols
        if notes:
            out.notes[key] = " ".join(notes)


def _grid(
    names_a: Sequence[str],
    names_b: Sequence[str],
    n_samples: int,
    spec: dict[str, dict[str, Any]],
    outcomes: Mapping[str, Sequence[Any]],
) -> GridResult:
    """The engine's outcomes (pairs in row-major order) as a :class:`GridResult`."""
    out = GridResult(
        names_a=list(names_a),
        names_b=list(names_b),
        values={m: np.full((len(names_a), len(names_b)), np.nan) for m in spec},
        n_samples=n_samples,
        options=spec,
    )
    nb = len(names_b)
    for measure, outs in outcomes.items():
        for o in outs:
            i, j = divmod(o.index, nb)
            key = (measure, names_a[i], names_b[j])
            if o.error is not None:
                out.errors[key] = o.error
                continue
            out.values[measure][i, j] = o.value
            if o.details:
                out.details[key] = dict(o.details)
            if o.result is not None:
                out.results[key] = o.result
    out.measure_info = measure_metadata(spec, outcomes)
    return out


def grid_from_moments(
    jm: JointMoments,
    names_a: Sequence[str],
    names_b: Sequence[str],
    *,
    measures: Sequence[str] | Mapping[str, Mapping[str, Any]] | str = ("cka", "cca"),
    keep_results: bool = False,
    labels_a: Sequence[str] | None = None,
    labels_b: Sequence[str] | None = None,
) -> GridResult:
    """A grid of streaming measures from accumulated joint moments (no arrays needed).

    ``names_a``/``names_b`` are block names in ``jm``; ``labels_*`` rename them in the result.
    Non-streaming measures raise ``ValueError``. Linear CKA of all pairs is evaluated at
    once (:func:`cka_grid`).
    """
    spec = parse_measures(measures)
    for m in spec:
        if not get_measure(m).streaming:
            raise ValueError(
                f"{m!r} needs the samples themselves (not a function of moments); compute it "
                "in memory with nc.pairwise on arrays, or use nc.MinibatchCKA."
            )
    la = list(labels_a) if labels_a is not None else list(names_a)
    lb = list(labels_b) if labels_b is not None else list(names_b)
    keys_a = [("a", str(a)) for a in names_a]
    keys_b = [("b", str(b)) for b in names_b]
    blocks = {**dict(zip(keys_a, map(str, names_a), strict=True))}
    blocks.update(zip(keys_b, map(str, names_b), strict=True))
    acc = moment_sources(jm, blocks)
    pairs = [(ka, kb) for ka in keys_a for kb in keys_b]
    outcomes = evaluate(
        acc, pairs, spec, keep_results=keep_results, cka_at_once=True, record_notes=False
    )
    out = _grid(la, lb, jm.n, spec, outcomes)
    out.provenance = run_provenance(
        {"n_samples": jm.n, "memory": "streaming moments (independent of n)"}
    )
    return out
