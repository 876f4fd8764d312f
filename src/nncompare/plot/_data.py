"""Reading the tidy comparison frame (``nc.compare_models``) for plots and reports.

Everything here tolerates missing optional columns and attrs and NaN values: a frame needs
only ``layer_a``, ``layer_b``, ``measure`` and ``value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "REQUIRED_COLUMNS",
    "MeasureMeta",
    "best_matches",
    "check_frame",
    "color_limits",
    "kept_dims_table",
    "layer_order",
    "lean",
    "measure_matrix",
    "measure_meta",
    "measures_in",
    "model_names",
    "pretty_measure",
    "spectra_of",
    "split_pair",
]

REQUIRED_COLUMNS = ("layer_a", "layer_b", "measure", "value")

_PRETTY = {
    "cca": "Mean CCA",
    "cca_r2": "R²_CCA",
    "svcca": "SVCCA",
    "pwcca": "PWCCA",
    "cka": "Linear CKA",
    "cka_debiased": "Debiased CKA",
    "cka_rbf": "RBF CKA",
    "lr_r2": "Linear regression R²",
    "procrustes": "Procrustes similarity",
    "shape": "Shape similarity",
    "rsa": "RSA",
    "mutual_knn": "Mutual k-NN",
    "bures_wasserstein": "Bures–Wasserstein",
    "covariance_cosine": "Covariance cosine",
}


def pretty_measure(measure: Any) -> str:
    """Display name of a measure ("cka" -> "Linear CKA"); unknown names pass through."""
    return _PRETTY.get(str(measure), str(measure))


def check_frame(df: Any) -> None:
    """Raise a helpful error unless ``df`` looks like the tidy comparison frame."""
    cols = getattr(df, "columns", None)
    if cols is None:
        raise TypeError(
            f"expected the pandas DataFrame returned by nc.compare_models; got {type(df).__name__}."
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise ValueError(
            f"the results frame lacks column(s) {missing}; expected the tidy frame of "
            "nc.compare_models (one row per layer_a, layer_b, measure, with a value), "
            f"got columns {list(cols)}."
        )


def lean(df: Any) -> Any:
    """``df`` without its attrs, for column work: pandas deep-copies ``attrs`` (spectra and
    all) into every derived Series and frame, which dominates the cost of large attrs."""
    if not getattr(df, "attrs", None):
        return df
    out = df.copy(deep=False)
    out.attrs = {}
    return out


def _unique(values: Any) -> list[Any]:
    out: dict[Any, None] = {}
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        out.setdefault(v, None)
    return list(out)


def measures_in(df: Any) -> list[Any]:
    """Measures in order of first appearance."""
    return _unique(lean(df)["measure"].tolist())


def layer_order(df: Any, side: str, measure: Any = None) -> list[Any]:
    """Layer names of ``side`` ("a" or "b") in order of first appearance in the whole frame
    (restricted to those present for ``measure`` when given)."""
    col = f"layer_{side}"
    df = lean(df)
    order = _unique(df[col].tolist())
    if measure is not None:
        present = set(_unique(df.loc[df["measure"] == measure, col]))
        order = [x for x in order if x in present]
    return order


def _float_values(series: Any) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def measure_matrix(df: Any, measure: Any) -> tuple[list[Any], list[Any], np.ndarray]:
    """(rows, cols, values): the layer_a × layer_b grid of one measure (NaN where absent)."""
    df = lean(df)
    sub = df[df["measure"] == measure]
    rows = layer_order(df, "a", measure)
    cols = layer_order(df, "b", measure)
    ri = {r: i for i, r in enumerate(rows)}
    ci = {c: j for j, c in enumerate(cols)}
    mat = np.full((len(rows), len(cols)), np.nan)
    seen = np.zeros(mat.shape, dtype=bool)
    for a, b, v in zip(sub["layer_a"], sub["layer_b"], _float_values(sub["value"]), strict=True):
        i, j = ri.get(a), ci.get(b)
        if i is None or j is None or seen[i, j]:
            continue
        seen[i, j] = True
        mat[i, j] = v
    return rows, cols, mat


@dataclass
class MeasureMeta:
    """What the renderers need to know about a measure."""

    name: str
    higher_is_better: bool = True
    value_range: tuple[float, float] | None = None
    description: str = ""
    reference: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    conventions: dict[str, Any] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return "higher = more similar" if self.higher_is_better else "lower = more similar"

    @property
    def label(self) -> str:
        return pretty_measure(self.name)


def measure_meta(df: Any, measure: Any) -> MeasureMeta:
    """Metadata from ``df.attrs["measures"]``, completed from the measure registry."""
    attrs = getattr(df, "attrs", {}) or {}
    entry = (attrs.get("measures") or {}).get(measure) or {}
    if not isinstance(entry, Mapping):
        entry = {}
    info = None
    try:
        from nncompare.measures._registry import get

        info = get(str(measure))
    except Exception:  # unknown measure: keep what the frame says
        info = None
    hib = entry.get("higher_is_better")
    if hib is None:
        hib = info.higher_is_better if info is not None else True
    rng = None
    if info is not None:
        rng = (float(info.value_range[0]), float(info.value_range[1]))
    return MeasureMeta(
        name=str(measure),
        higher_is_better=bool(hib),
        value_range=rng,
        description=str(entry.get("description") or (info.description if info else "")),
        reference=str(entry.get("reference") or (info.reference if info else "")),
        options=dict(entry.get("options") or {}),
        conventions=dict(entry.get("conventions") or {}),
    )


def color_limits(
    values: np.ndarray,
    value_range: tuple[float, float] | None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> tuple[float, float]:
    """Colour limits: the measure's range where finite, else the data's."""
    finite = values[np.isfinite(values)]
    lo, hi = value_range if value_range is not None else (math.nan, math.nan)
    if vmin is None:
        vmin = lo if math.isfinite(lo) else (float(finite.min()) if finite.size else 0.0)
    if vmax is None:
        vmax = hi if math.isfinite(hi) else (float(finite.max()) if finite.size else 1.0)
    if not vmax > vmin:
        vmax = vmin + 1.0
    return float(vmin), float(vmax)


def model_names(df: Any) -> tuple[str, str]:
    """Labels of the two models (columns ``model_a``/``model_b``), default ("A", "B")."""
    out = []
    for side, default in (("a", "A"), ("b", "B")):
        col = f"model_{side}"
        name = default
        if col in getattr(df, "columns", ()):
            vals = _unique(lean(df)[col].tolist())
            if vals:
                name = str(vals[0])
        out.append(name)
    return out[0], out[1]


def best_matches(
    df: Any, measure: Any
) -> tuple[list[Any], list[Any | None], np.ndarray, np.ndarray]:
    """For each layer_a: its best layer_b (max or min by the measure's direction).

    Returns (rows, best layer_b or None, best value (NaN when the row is all NaN),
    value for the same-named layer_b (NaN when there is none)).
    """
    rows, cols, mat = measure_matrix(df, measure)
    hib = measure_meta(df, measure).higher_is_better
    best_name: list[Any | None] = []
    best_val = np.full(len(rows), np.nan)
    same_val = np.full(len(rows), np.nan)
    col_index = {c: j for j, c in enumerate(cols)}
    for i, r in enumerate(rows):
        row = mat[i]
        ok = np.isfinite(row)
        if ok.any():
            cand = np.where(ok, row, -np.inf if hib else np.inf)
            j = int(np.argmax(cand) if hib else np.argmin(cand))
            best_name.append(cols[j])
            best_val[i] = row[j]
        else:
            best_name.append(None)
        if r in col_index:
            same_val[i] = row[col_index[r]]
    return rows, best_name, best_val, same_val


def split_pair(
    key: str, layers_a: list[Any] | None = None, layers_b: list[Any] | None = None
) -> tuple[str, str]:
    """Split a ``"layer_a|layer_b"`` key; known layer names disambiguate names containing "|"."""
    if layers_a:
        b_names = {str(b) for b in layers_b} if layers_b else None
        for a in sorted((str(x) for x in layers_a), key=len, reverse=True):
            if key.startswith(a + "|"):
                rest = key[len(a) + 1 :]
                if b_names is None or rest in b_names:
                    return a, rest
    a, sep, b = key.partition("|")
    return (a, b) if sep else (key, "")


def spectra_of(obj: Any, measure: str) -> dict[str, np.ndarray]:
    """Canonical-correlation spectra ``{"a|b": rho (descending)}`` of one measure from a frame
    (``attrs["spectra"]``), a ``{measure: {pair: rho}}`` mapping or a ``{pair: rho}`` mapping."""
    if hasattr(obj, "attrs") and hasattr(obj, "columns"):
        src = (obj.attrs.get("spectra") or {}).get(measure) or {}
    elif isinstance(obj, Mapping):
        if obj and all(isinstance(v, Mapping) for v in obj.values()):
            src = obj.get(measure) or {}
        else:
            src = obj
    else:
        raise TypeError(
            "expected a results DataFrame or a mapping of spectra {'layer_a|layer_b': rho}; "
            f"got {type(obj).__name__}."
        )
    out: dict[str, np.ndarray] = {}
    for k, v in src.items():
        if v is None:
            continue
        arr = np.asarray(v, dtype=float).ravel()
        if arr.size:
            out[str(k)] = arr
    return out


def kept_dims_table(df: Any, measure: str = "svcca") -> tuple[dict[str, int], dict[str, int]]:
    """Kept SVCCA dimensions per layer of A (x side) and of B (y side), from the
    ``kept_dims_x``/``kept_dims_y`` columns, else from ``attrs["kept_dims"]``."""
    kx: dict[str, int] = {}
    ky: dict[str, int] = {}
    cols = getattr(df, "columns", ())
    if "kept_dims_x" in cols or "kept_dims_y" in cols:
        data = lean(df)
        sub = data[data["measure"] == measure] if "measure" in cols else data
        for side, store, col in (("a", kx, "kept_dims_x"), ("b", ky, "kept_dims_y")):
            if col not in cols:
                continue
            vals = _float_values(sub[col])
            for name, v in zip(sub[f"layer_{side}"], vals, strict=True):
                if np.isfinite(v):
                    store.setdefault(str(name), round(float(v)))
    attrs = getattr(df, "attrs", {}) or {}
    kept = attrs.get("kept_dims") or {}
    if isinstance(kept, Mapping) and kept:
        la = [str(x) for x in layer_order(df, "a")] if "layer_a" in cols else None
        lb = [str(x) for x in layer_order(df, "b")] if "layer_b" in cols else None
        for key, dims in kept.items():
            try:
                x, y = (None if d is None else int(d) for d in list(dims)[:2])
            except (TypeError, ValueError):
                continue
            a, b = split_pair(str(key), la, lb)
            if x is not None:
                kx.setdefault(a, x)
            if y is not None:
                ky.setdefault(b, y)
    return kx, ky
