"""All-pairs comparison of many activation matrices (layers × layers, models × models).

The linear measures (CCA family, linear CKA, R², Procrustes, shape) need only the joint
second moments, so the cross-products of *all* pairs come from one joint product of the
concatenated activations (:class:`nncompare.JointMoments`), and each layer's covariance is
decomposed once, however many partners it has. Kernel and neighbourhood measures
(``cka_debiased``, ``cka_rbf``, ``rsa``, ``mutual_knn``) and the DFT path are evaluated pair
by pair from the arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nncompare._array import as_array, to_numpy
from nncompare._layout import resolve_layout, to_channels_last_if
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
    """

    names_a: list[str]
    names_b: list[str]
    values: dict[str, np.ndarray]
    n_samples: int
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], str] = field(default_factory=dict)

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


def parse_measures(
    measures: Sequence[str] | Mapping[str, Mapping[str, Any]] | str,
) -> dict[str, dict[str, Any]]:
    if isinstance(measures, str):
        measures = [measures]
    if isinstance(measures, Mapping):
        out = {str(k): dict(v or {}) for k, v in measures.items()}
    else:
        out = {str(m): {} for m in measures}
    if not out:
        raise ValueError("measures must name at least one measure, e.g. ['cka', 'cca'].")
    for name in out:
        info = get_measure(name)
        if info.input != "activations":
            raise ValueError(f"{name!r} compares covariance matrices, not activations.")
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


def pairwise(
    acts_a: Mapping[str, Any],
    acts_b: Mapping[str, Any] | None = None,
    *,
    measures: Sequence[str] | Mapping[str, Mapping[str, Any]] | str = ("cka", "cca"),
    conv: str | None = None,
    layout: str | None = None,
    keep_results: bool = False,
    errors: str = "record",
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
        ``{"svcca": {"variance": 0.99}, "cka": {}}``.
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

    Returns
    -------
    GridResult
    """
    if errors not in ("record", "raise"):
        raise ValueError(f"errors must be 'record' or 'raise'; got {errors!r}.")
    spec = parse_measures(measures)
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
    streaming = {m for m in spec if get_measure(m).streaming and conv != "dft"}
    jm = None
    keys_a = {a: f"a:{a}" for a in names_a}
    keys_b = keys_a if same else {b: f"b:{b}" for b in names_b}
    if streaming:
        jm = JointMoments()
        batch = {keys_a[a]: mats_a[a] for a in names_a}
        if not same:
            batch.update({keys_b[b]: mats_b[b] for b in names_b})
        jm.update(batch)
    out = GridResult(
        names_a=names_a,
        names_b=names_b,
        values={m: np.full((len(names_a), len(names_b)), np.nan) for m in spec},
        n_samples=n_set.pop(),
        options=spec,
    )
    for measure, opts in spec.items():
        info = get_measure(measure)
        fn = info.function
        for i, a in enumerate(names_a):
            for j, b in enumerate(names_b):
                # A symmetric measure's value is mirrored from the cell computed above the
                # diagonal. Not its error (the message names X or Y, i.e. an orientation),
                # nor kept results (directions, ranks ... are per side): those cells are
                # computed in their own orientation.
                if (
                    same
                    and info.symmetric
                    and j < i
                    and not keep_results
                    and (measure, names_a[j], names_b[i]) not in out.errors
                ):
                    out.values[measure][i, j] = out.values[measure][j, i]
                    continue
                try:
                    if measure in streaming:
                        res = fn(jm.pair(keys_a[a], keys_b[b]), **opts)
                    else:
                        extra = {"conv": conv} if conv == "dft" else {}
                        res = fn(mats_a[a], mats_b[b], **opts, **extra)
                except ValueError as exc:
                    if errors == "raise":
                        raise
                    out.errors[(measure, a, b)] = str(exc)
                    continue
                out.values[measure][i, j] = float(res)
                if keep_results:
                    out.results[(measure, a, b)] = res
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
    Non-streaming measures raise ``ValueError``.
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
    out = GridResult(
        names_a=la,
        names_b=lb,
        values={m: np.full((len(la), len(lb)), np.nan) for m in spec},
        n_samples=jm.n,
        options=spec,
    )
    for measure, opts in spec.items():
        fn = get_measure(measure).function
        for i, a in enumerate(names_a):
            for j, b in enumerate(names_b):
                try:
                    res = fn(jm.pair(a, b), **opts)
                except ValueError as exc:
                    out.errors[(measure, la[i], lb[j])] = str(exc)
                    continue
                out.values[measure][i, j] = float(res)
                if keep_results:
                    out.results[(measure, la[i], lb[j])] = res
    return out
