"""Reading a comparison (``nc.compare_models``, ``nc.pairwise``) for plots and reports.

Every entry point turns its input into a :class:`nncompare.ComparisonResult` once
(:func:`comparison`: the tidy frame of :func:`nncompare.compare_models`, a
:class:`nncompare.GridResult` or the result itself) and the helpers here read its typed
fields (``measures``, ``spectra``, ``kept_dims``, ...). Everything tolerates missing
optional columns and metadata and NaN values: a frame needs only ``layer_a``,
``layer_b``, ``measure`` and ``value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nncompare.results import ComparisonResult, bare_frame

__all__ = [
    "REQUIRED_COLUMNS",
    "ColorScale",
    "MeasureMeta",
    "Reference",
    "best_matches",
    "check_frame",
    "color_limits",
    "color_scale",
    "color_scale_note",
    "comparison",
    "kept_dims_table",
    "layer_order",
    "lean",
    "measure_matrix",
    "measure_meta",
    "measures_in",
    "model_names",
    "pretty_measure",
    "reference_matches",
    "reference_pairs",
    "spectra_of",
    "split_pair",
]

REQUIRED_COLUMNS = ("layer_a", "layer_b", "measure", "value")


def pretty_measure(measure: Any) -> str:
    """Display name of a measure, its registry label ("cka" -> "Linear CKA"); unknown names
    pass through."""
    from nncompare.measures._registry import available

    info = available().get(str(measure))
    return info.label if info is not None else str(measure)


def check_frame(df: Any) -> None:
    """Raise a helpful error unless ``df`` looks like the tidy comparison frame."""
    cols = getattr(df, "columns", None)
    if cols is None:
        raise TypeError(
            "expected the pandas DataFrame returned by nc.compare_models (or a "
            f"ComparisonResult, or the GridResult of nc.pairwise); got {type(df).__name__}."
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise ValueError(
            f"the results frame lacks column(s) {missing}; expected the tidy frame of "
            "nc.compare_models (one row per layer_a, layer_b, measure, with a value), "
            f"got columns {list(cols)}."
        )


def comparison(obj: Any) -> ComparisonResult:
    """``obj`` as a :class:`nncompare.ComparisonResult`, checked to be a layer × layer
    comparison: a result is returned as it is, a :class:`nncompare.GridResult` converted
    (``to_comparison()``), a frame checked (:func:`check_frame`) and read once
    (:meth:`nncompare.ComparisonResult.from_frame`)."""
    if isinstance(obj, ComparisonResult):
        res = obj
    elif callable(getattr(obj, "to_comparison", None)) and not hasattr(obj, "columns"):
        res = ComparisonResult.from_frame(obj)
    else:
        check_frame(obj)
        return ComparisonResult.from_frame(obj)
    check_frame(res.frame)
    return res


def lean(df: Any) -> Any:
    """The tidy frame of ``df`` (a frame or a :class:`nncompare.ComparisonResult`) without
    its metadata, for column work (:func:`nncompare.results.bare_frame`)."""
    if isinstance(df, ComparisonResult):
        return bare_frame(df.frame)
    return bare_frame(df)


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
    """Metadata of ``measure`` recorded in the comparison (``ComparisonResult.measures``),
    completed from the measure registry."""
    record = comparison(df).measures.get(str(measure))
    entry: dict[str, Any] = record.as_dict() if record is not None else {}
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


@dataclass(frozen=True)
class ColorScale:
    """Colour limits of a heatmap and the measures that share them.

    Attributes
    ----------
    vmin, vmax : float
    family : str
        The measures' family (``MeasureInfo.family`` in the registry: "CKA", "CCA", ...);
        empty when the scale is the measure's own.
    shared_with : tuple of str
        The other measures of the frame on the same scale (registry names).
    """

    vmin: float
    vmax: float
    family: str = ""
    shared_with: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        """A short sentence for a colourbar label or a caption ("" when not shared)."""
        if not self.shared_with:
            return ""
        others = ", ".join(pretty_measure(m) for m in self.shared_with)
        return (
            f"colour scale [{_num(self.vmin)}, {_num(self.vmax)}] shared with {others} "
            f"({self.family} family)"
        )


def _num(x: float) -> str:
    text = f"{x:g}"
    return text.replace("-", "−")


def color_scale(
    df: Any,
    measure: Any,
    values: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    share: bool = True,
) -> ColorScale:
    """Colour limits for one measure's heatmap, shared across its family.

    Measures of the frame from the same registry family (the CKA variants; CCA, SVCCA,
    PWCCA; ...) with the same direction and finite ranges share one scale: the union of
    their ranges, from the registry (``nc.measures.available()``). So linear CKA on
    [0, 1] next to debiased CKA on [−1, 1] is drawn on [−1, 1], and equal values have equal
    colours. Explicit ``vmin``/``vmax`` win; unknown or unbounded measures use their own
    range or the data's.
    """
    try:
        from nncompare.measures._registry import available

        registry = available()
    except Exception:  # pragma: no cover - the registry always imports
        registry = {}
    info = registry.get(str(measure))
    own = measure_meta(df, measure).value_range
    lo, hi = color_limits(values, own, vmin, vmax)
    if not share or info is None or (vmin is not None and vmax is not None):
        return ColorScale(lo, hi)
    r_lo, r_hi = (float(x) for x in info.value_range)
    if not (math.isfinite(r_lo) and math.isfinite(r_hi)):
        return ColorScale(lo, hi)
    members = []
    for m in measures_in(df):
        other = registry.get(str(m))
        if (
            other is None
            or str(m) == str(measure)
            or other.family != info.family
            or other.higher_is_better != info.higher_is_better
        ):
            continue
        o_lo, o_hi = (float(x) for x in other.value_range)
        if not (math.isfinite(o_lo) and math.isfinite(o_hi)):
            continue
        members.append(str(m))
        r_lo, r_hi = min(r_lo, o_lo), max(r_hi, o_hi)
    if not members:
        return ColorScale(lo, hi)
    lo = lo if vmin is not None else r_lo
    hi = hi if vmax is not None else r_hi
    if not hi > lo:
        hi = lo + 1.0
    return ColorScale(lo, hi, info.family, tuple(members))


def color_scale_note(df: Any, measure: Any) -> str:
    """A caption sentence on the shared colour scale of ``measure``'s heatmap ("" when its
    scale is its own)."""
    _, _, mat = measure_matrix(df, measure)
    scale = color_scale(df, measure, mat)
    if not scale.shared_with:
        return ""
    note = scale.note
    return f" {note[0].upper()}{note[1:]}, so equal values have equal colours."


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
    value at the reference layer_b of :func:`reference_pairs` — the same-named layer when both
    models have the same layer names, else the layer at the same relative depth — NaN when
    there is none).
    """
    rows, cols, mat = measure_matrix(df, measure)
    hib = measure_meta(df, measure).higher_is_better
    ref = reference_pairs(rows, cols)
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
        b = ref.match.get(r)
        if b is not None and b in col_index:
            same_val[i] = row[col_index[b]]
    return rows, best_name, best_val, same_val


@dataclass(frozen=True)
class Reference:
    """Which layer of B is the natural counterpart ("the diagonal") of each layer of A.

    Attributes
    ----------
    match : dict
        layer of A -> its reference layer of B (layers without one are absent).
    kind : {"name", "stage", "depth", "none"}
        How the pairs were made: same names; relative depth within same-named stages
        (``layer1.*``, ``layer2.*``, ...); relative depth over the whole list; no layers.
    """

    match: dict[Any, Any]
    kind: str

    @property
    def label(self) -> str:
        """Adjective for figures and tables: "same-named" or "depth-matched"."""
        return "same-named" if self.kind == "name" else "depth-matched"

    def explain(self, name_a: str = "A", name_b: str = "B") -> str:
        """One sentence saying how the pairs were made, naming the two models."""
        if self.kind == "name":
            return "Reference pairs: layers with the same name in both models."
        if self.kind == "stage":
            return (
                f"Reference pairs: the layer lists differ, so each layer of {name_a} is matched "
                f"with the layer of {name_b} at the closest relative depth within the same "
                "stage (same name prefix before the first '.')."
            )
        if self.kind == "depth":
            return (
                f"Reference pairs: the layer lists differ, so layer i of {name_a} (relative "
                f"depth i/(n−1)) is matched with the layer j of {name_b} whose relative depth "
                "j/(m−1) is closest."
            )
        return "No reference pairs."


def _stage(name: Any) -> str:
    s = str(name)
    return s.split(".", 1)[0] if "." in s else s


def _stages(names: list[Any]) -> list[tuple[str, list[Any]]] | None:
    """Consecutive runs of names with the same stage prefix; None when a stage recurs later
    (names not grouped by stage)."""
    runs: list[tuple[str, list[Any]]] = []
    for n in names:
        st = _stage(n)
        if runs and runs[-1][0] == st:
            runs[-1][1].append(n)
        elif any(r[0] == st for r in runs):
            return None
        else:
            runs.append((st, [n]))
    return runs


def _relative_match(a: list[Any], b: list[Any]) -> dict[Any, Any]:
    """Layer k of ``a`` -> the layer j of ``b`` with j/(nb−1) closest to k/(na−1), compared
    exactly in integers (ties go to the shallower layer); a single layer sits at depth 1 (the
    output of its stage)."""
    na, nb = len(a), len(b)
    out: dict[Any, Any] = {}
    for k, name in enumerate(a):
        if nb == 1:
            out[name] = b[0]
            continue
        if na == 1:
            out[name] = b[-1]
            continue
        # |k/(na-1) - j/(nb-1)| ∝ |k (nb-1) - j (na-1)|
        j = min(range(nb), key=lambda j: (abs(k * (nb - 1) - j * (na - 1)), j))
        out[name] = b[j]
    return out


def reference_pairs(rows: list[Any], cols: list[Any], how: str = "auto") -> Reference:
    """The reference ("diagonal") layer of B for each layer of A, both in depth order.

    Parameters
    ----------
    rows, cols : list
        Layers of A and of B in the order they appear in the models (the order of the
        results frame).
    how : {"auto", "name", "stage", "depth"}
        "auto": same-named pairs when both models have exactly the same layer names;
        otherwise relative depth within stages when both lists consist of the same stages in
        the same order (``layer1.0 … layer1.2`` vs ``layer1.0 … layer1.4``: ResNets of
        different depth), otherwise relative depth over the whole list. "name": only
        same-named pairs, whatever the lists.

    Returns
    -------
    Reference
    """
    if how not in ("auto", "name", "stage", "depth"):
        raise ValueError(f"reference must be 'auto', 'name', 'stage' or 'depth'; got {how!r}.")
    rows, cols = list(rows), list(cols)
    if not rows or not cols:
        return Reference({}, "none")
    same_names = {str(r) for r in rows} == {str(c) for c in cols}
    if how == "name" or (how == "auto" and same_names):
        by_text = {str(c): c for c in cols}
        return Reference({r: by_text[str(r)] for r in rows if str(r) in by_text}, "name")
    if how in ("auto", "stage"):
        sa, sb = _stages(rows), _stages(cols)
        usable = (
            sa is not None
            and sb is not None
            and len(sa) >= 2
            and [s for s, _ in sa] == [s for s, _ in sb]
            and any(len(m) > 1 for _, m in (*sa, *sb))
        )
        if usable:
            match: dict[Any, Any] = {}
            for (_, ma), (_, mb) in zip(sa, sb, strict=True):
                match.update(_relative_match(ma, mb))
            return Reference(match, "stage")
        if how == "stage":
            raise ValueError(
                "reference='stage' needs both layer lists to consist of the same stages "
                "(name prefixes before the first '.') in the same order; got stages "
                f"{[s for s, _ in sa or []]} and {[s for s, _ in sb or []]}. "
                "Use reference='depth' instead."
            )
    return Reference(_relative_match(rows, cols), "depth")


def reference_matches(df: Any, measure: Any, how: str = "auto") -> tuple[Any, ...]:
    """(rows, reference layer_b per row or None, value at that pair (NaN when absent),
    :class:`Reference`) for one measure of the frame."""
    rows, cols, mat = measure_matrix(df, measure)
    ref = reference_pairs(rows, cols, how)
    col_index = {c: j for j, c in enumerate(cols)}
    names: list[Any | None] = []
    vals = np.full(len(rows), np.nan)
    for i, r in enumerate(rows):
        b = ref.match.get(r)
        names.append(b)
        if b is not None:
            vals[i] = mat[i, col_index[b]]
    return rows, names, vals, ref


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


def is_comparison(obj: Any) -> bool:
    """Whether ``obj`` is a comparison the plots read (a frame, a
    :class:`nncompare.ComparisonResult` or a :class:`nncompare.GridResult`), not a mapping."""
    return isinstance(obj, ComparisonResult) or (
        not isinstance(obj, Mapping)
        and (hasattr(obj, "columns") or callable(getattr(obj, "to_comparison", None)))
    )


def spectra_of(obj: Any, measure: str) -> dict[str, np.ndarray]:
    """Canonical-correlation spectra ``{"a|b": rho (descending)}`` of one measure from a
    comparison (``ComparisonResult.spectra``; a frame or a grid is read with
    :func:`comparison`), a ``{measure: {pair: rho}}`` mapping or a ``{pair: rho}`` mapping."""
    src: Mapping[Any, Any]
    if is_comparison(obj):
        per = comparison(obj).spectra.get(str(measure)) or {}
        src = {f"{k[0]}|{k[1]}" if isinstance(k, tuple) else str(k): v for k, v in per.items()}
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
    ``kept_dims_x``/``kept_dims_y`` columns, else from ``ComparisonResult.kept_dims``."""
    res = comparison(df)
    df = res.frame
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
    for (a, b), (x, y) in res.kept_dims.items():
        if x is not None:
            kx.setdefault(str(a), x)
        if y is not None:
            ky.setdefault(str(b), y)
    return kx, ky
