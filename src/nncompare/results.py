"""Small result objects: a value plus the details that explain it.

Every measure returns one of these. ``float(result)`` is the value (a similarity,
higher = more alike, unless the measure's registry entry says otherwise);
``result.value`` keeps the input's array library (a 0-d torch tensor with autograd
for torch inputs); the other attributes hold the details (canonical correlations,
kept dimensions, weights, the conventions used).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from nncompare._array import Array, to_numpy, to_scalar_float

__all__ = [
    "CCAResult",
    "CKAResult",
    "ComparisonResult",
    "CovarianceResult",
    "DFTCCAResult",
    "MeasureRecord",
    "PWCCAResult",
    "ProcrustesResult",
    "RegressionResult",
    "Result",
    "SVCCAResult",
    "ShapeResult",
    "as_frame",
    "bare_frame",
    "with_metadata",
]


class Pending:
    """A result attribute computed on first access (``compute()``, run once): for details
    the value itself does not need, e.g. a Procrustes rotation (an SVD with vectors)."""

    def __init__(self, compute: Any) -> None:
        self.compute = compute

    def __repr__(self) -> str:
        return "<computed on first access>"


class _Deferred:
    """Descriptor of a result field that may hold a :class:`Pending`; resolved on access."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return None  # the dataclass default
        v = obj.__dict__.get(self.name)
        if isinstance(v, Pending):
            v = v.compute()
            obj.__dict__[self.name] = v
        return v

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


@dataclass(frozen=True, repr=False, eq=False)
class Result:
    """Base result: ``measure`` name, ``value``, ``n_samples`` and the ``conventions`` used."""

    measure: str
    value: Any
    n_samples: int
    conventions: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return to_scalar_float(self.value)

    def item(self) -> float:
        return float(self)

    @property
    def distance(self) -> float:
        """1 - value (a pseudo-distance; metric measures override it with their metric)."""
        return 1.0 - float(self)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly dict of the scalar details (arrays summarised by their shape)."""
        out: dict[str, Any] = {"measure": self.measure, "value": float(self)}
        for f in fields(self):
            if f.name in ("measure", "value"):
                continue
            v = self.__dict__.get(f.name)  # as stored: a Pending detail is not computed
            if isinstance(v, int | float | str | bool) or v is None:
                out[f.name] = v
            elif isinstance(v, dict):
                out[f.name] = {k: _jsonable(x) for k, x in v.items()}
            elif hasattr(v, "shape") and len(getattr(v, "shape", ())) == 0:
                out[f.name] = to_scalar_float(v)
        return out

    def __repr__(self) -> str:
        extras = []
        for f in fields(self):
            if f.name in ("measure", "value", "conventions"):
                continue
            v = self.__dict__.get(f.name)  # as stored: a Pending detail is not computed
            if hasattr(v, "shape") and len(v.shape) > 0:
                extras.append(f"{f.name}=<array {tuple(v.shape)}>")
            elif isinstance(v, float):
                extras.append(f"{f.name}={v:.6g}")
            elif v is None:
                continue
            else:
                extras.append(f"{f.name}={v!r}")
        inner = ", ".join([f"value={float(self):.6g}", *extras])
        return f"{type(self).__name__}[{self.measure}]({inner})"


def _jsonable(x: Any) -> Any:
    if isinstance(x, int | float | str | bool) or x is None:
        return x
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "shape"):
        arr = to_numpy(x)
        return arr.tolist() if arr.size <= 64 else f"<array {arr.shape}>"
    return str(x)


@dataclass(frozen=True, repr=False, eq=False)
class CCAResult(Result):
    """Canonical correlation analysis.

    Attributes
    ----------
    rho : array, shape (k,)
        Canonical correlations in descending order, k = min(rank_x, rank_y).
    directions_x, directions_y : array, shapes (d1, k), (d2, k)
        Canonical weights: ``(X - X.mean(0)) @ directions_x`` are the canonical variates,
        with unit sample variance (ddof=1) and mutually uncorrelated. Computed on first
        access (the singular vectors cost more than the correlations).
    rank_x, rank_y : int
        Numerical ranks of the centred inputs (features kept by the whitening).
    n_constant_x, n_constant_y : int
        Constant features ignored.
    """

    rho: Array = None
    directions: Any = field(default=None, repr=False)
    rank_x: int = 0
    rank_y: int = 0
    n_constant_x: int = 0
    n_constant_y: int = 0

    def _dirs(self) -> tuple[Array, Array]:
        d = self.directions
        if callable(d):  # computed on first use: the value itself needs only the correlations
            d = d()
            object.__setattr__(self, "directions", d)
        return d

    @property
    def directions_x(self) -> Array:
        """Canonical weights of X, (d1, k); computed on first access."""
        return self._dirs()[0]

    @property
    def directions_y(self) -> Array:
        """Canonical weights of Y, (d2, k); computed on first access."""
        return self._dirs()[1]

    @property
    def r2(self) -> float:
        """Mean squared canonical correlation (R²_CCA)."""
        r = to_numpy(self.rho)
        return float((r**2).mean())


@dataclass(frozen=True, repr=False, eq=False)
class SVCCAResult(CCAResult):
    """SVCCA: CCA on the top singular directions of each input.

    Attributes
    ----------
    kept_dims_x, kept_dims_y : int
        Singular directions kept per side.
    variance_explained_x, variance_explained_y : float
        Fraction of the total variance the kept directions explain.
    """

    kept_dims_x: int = 0
    kept_dims_y: int = 0
    variance_explained_x: float = math.nan
    variance_explained_y: float = math.nan


@dataclass(frozen=True, repr=False, eq=False)
class PWCCAResult(Result):
    """Projection-weighted CCA (Morcos et al. 2018).

    Attributes
    ----------
    rho : array, shape (k,)
        Canonical correlations, descending.
    weights : array, shape (k,)
        Projection weights alpha_i (sum to 1), aligned with ``rho``. For ``symmetric=True``
        these are the first argument's weights; ``weights_y`` holds the second's.
    """

    rho: Array = None
    weights: Array = None
    weights_y: Array | None = None
    rank_x: int = 0
    rank_y: int = 0

    @property
    def distance(self) -> float:
        """The PWCCA distance of Morcos et al.: 1 - value (not symmetric unless symmetric=True)."""
        return 1.0 - float(self)


@dataclass(frozen=True, repr=False, eq=False)
class DFTCCAResult(Result):
    """CCA/SVCCA of convolutional activations block by block over spatial frequencies.

    Attributes
    ----------
    rho_per_frequency : array, shape (*spatial, k)
        Canonical correlations at every kept frequency (descending per frequency; entries past
        a block's own k are NaN-free zeros and are not counted, see ``k_per_frequency``).
    k_per_frequency : array of int, shape (*spatial,)
        Number of canonical correlations at each frequency.
    n_coefficients : int
        Canonical correlations of the flattened representation, min(Σ rank_x, Σ rank_y):
        frequencies where one side has more directions contribute exact zeros. ``value`` is
        the sum of all coefficients over this count.
    mean_per_frequency : array, shape (*spatial,)
    spatial_shape : tuple
        The frequency grid after cropping (the smaller of the two spatial sizes).
    kept_dims_x, kept_dims_y : int or None
        For SVCCA: directions kept over all frequencies (selected globally by variance).
    """

    rho_per_frequency: Array = None
    k_per_frequency: Array = None
    mean_per_frequency: Array = None
    spatial_shape: tuple[int, ...] = ()
    kept_dims_x: int | None = None
    kept_dims_y: int | None = None
    n_coefficients: int = 0

    @property
    def rho(self) -> Array:
        """All canonical correlations over all frequencies, sorted descending."""
        import numpy as np

        r = to_numpy(self.rho_per_frequency)
        k = to_numpy(self.k_per_frequency)
        vals = [r[idx][: k[idx]] for idx in np.ndindex(*k.shape)]
        allr = np.concatenate(vals) if vals else np.zeros(0)
        if self.n_coefficients > allr.size:  # exact zeros of the flattened representation
            allr = np.concatenate([allr, np.zeros(self.n_coefficients - allr.size)])
        return np.sort(allr)[::-1]


@dataclass(frozen=True, repr=False, eq=False)
class CKAResult(Result):
    """Centred kernel alignment: value = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""

    hsic_xy: Any = None
    hsic_xx: Any = None
    hsic_yy: Any = None

    @property
    def angular(self) -> float:
        """arccos(CKA), the angle between the centred Gram matrices (netrep's LinearCKA score)."""
        return math.acos(min(1.0, max(-1.0, float(self))))


@dataclass(frozen=True, repr=False, eq=False)
class RegressionResult(Result):
    """Least-squares fit of Y from X: value = R² = 1 - ||Yc - Xc B||² / ||Yc||².

    Attributes
    ----------
    coef : array, shape (d1, d2)
        Minimum-norm least-squares coefficients B (on centred data).
    intercept : array, shape (d2,)
    r2_per_feature : array, shape (d2,)
    """

    coef: Array = None
    intercept: Array = None
    r2_per_feature: Array = None
    rank_x: int = 0


@dataclass(frozen=True, repr=False, eq=False)
class ProcrustesResult(Result):
    """Orthogonal Procrustes similarity of centred, norm-scaled data.

    value = ||Xcᵀ Yc||_* / (||Xc||_F ||Yc||_F) = cos θ, with

    * ``angular`` θ = arccos(value) ∈ [0, π/2], the Procrustes shape metric (Williams et al. 2021),
    * ``euclidean`` = min_Q ||Xc Q/||Xc|| - Yc/||Yc|| ||_F = sqrt(2 - 2 value) (Ding et al. 2021),
    * ``rotation`` Q (d1, d2), the optimal (semi-)orthogonal map from X's space to Y's
      (computed on first access: the value needs only singular values).
    """

    angular: float = math.nan
    euclidean: float = math.nan
    rotation: Array | None = _Deferred()  # type: ignore[assignment]

    @property
    def distance(self) -> float:
        return self.angular


@dataclass(frozen=True, repr=False, eq=False)
class ShapeResult(Result):
    """Generalised shape metric with partial whitening ``alpha`` (Williams et al. 2021).

    value = cos θ_alpha; ``angular`` θ_alpha is a metric on shapes.
    """

    alpha: float = 1.0
    angular: float = math.nan
    rotation: Array | None = _Deferred()  # type: ignore[assignment]  # computed on access

    @property
    def distance(self) -> float:
        return self.angular


@dataclass(frozen=True, repr=False, eq=False)
class CovarianceResult(Result):
    """Comparison of two covariance matrices (value plus the Bures–Wasserstein pieces)."""

    nuclear: float = math.nan
    trace_1: float = math.nan
    trace_2: float = math.nan

    @property
    def distance(self) -> float:
        """The Bures–Wasserstein distance itself, or 1 - cosine for ``covariance_cosine``."""
        return float(self) if self.measure == "bures_wasserstein" else 1.0 - float(self)


# ---------------------------------------------------------------------- comparisons
@dataclass
class MeasureRecord:
    """What a comparison says about one measure: the options it ran with, the conventions
    of its values, and the registry's direction, reference and description."""

    options: dict[str, Any] = field(default_factory=dict)
    conventions: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool | None = None
    reference: str | None = None
    description: str | None = None
    streaming: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if v is not None or k != "streaming"}

    @classmethod
    def from_dict(cls, d: Any) -> MeasureRecord:
        """The record of an ``attrs["measures"][name]`` dict (anything else: an empty one)."""
        d = dict(d) if isinstance(d, Mapping) else {}
        opts, conv = d.get("options"), d.get("conventions")
        return cls(
            options=dict(opts) if isinstance(opts, Mapping) else {},
            conventions=dict(conv) if isinstance(conv, Mapping) else {},
            higher_is_better=d.get("higher_is_better"),
            reference=d.get("reference"),
            description=d.get("description"),
            streaming=d.get("streaming"),
        )


def _pair_key(
    k: Any, layers_a: Sequence[str] = (), layers_b: Sequence[str] = ()
) -> tuple[str, str]:
    """A ``"layer_a|layer_b"`` attrs key as a tuple (tuples pass through); the known layer
    names decide where a name holding ``"|"`` ends."""
    if isinstance(k, tuple | list) and len(k) == 2:
        return (str(k[0]), str(k[1]))
    key = str(k)
    names_b = set(layers_b)
    for a in sorted(layers_a, key=len, reverse=True):
        if key.startswith(a + "|") and (not names_b or key[len(a) + 1 :] in names_b):
            return (a, key[len(a) + 1 :])
    a, _, b = key.partition("|")
    return (a, b)


def _kept_pair(v: Any) -> tuple[int | None, int | None] | None:
    """An ``attrs["kept_dims"]`` entry ``[kept_x, kept_y]`` as ints (None where missing);
    None for an entry that is not such a pair."""
    try:
        x, y = list(v)[:2]
        return (None if x is None else int(x), None if y is None else int(y))
    except (TypeError, ValueError):
        return None


def _mapping(v: Any) -> dict[Any, Any]:
    return dict(v) if isinstance(v, Mapping) else {}


_TYPED_ATTRS = (
    "provenance",
    "measures",
    "spectra",
    "kept_dims",
    "layer_aliases",
    "title",
    "kind",
)


@dataclass
class ComparisonResult:
    """A comparison's tidy table and its typed metadata.

    The front doors (:func:`nncompare.compare_models`, :func:`nncompare.compare_checkpoints`)
    build one of these and return ``result.to_frame()``, the pandas DataFrame with the
    metadata in ``DataFrame.attrs`` (``provenance``, ``measures``, ``spectra``,
    ``kept_dims``, ``layer_aliases``, ``title``), so ``df.query(...)`` and
    ``nc.report.write_report(df, ...)`` work as always. Readers get the typed view back
    with :meth:`from_frame` (of such a frame, of a :class:`nncompare.GridResult`, or of
    this object itself), once, and then read the typed fields: the report, the plots and
    the CLI accept all three. Columns and item access (``result["value"]``,
    ``len(result)``, ``result.query(...)``) are the frame's.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per (pair, measure); see :func:`nncompare.compare_models`.
    kind : {"models", "checkpoints", "many"}
        Which front door made it (the checkpoint frame has ``checkpoint``, ``reference``
        and ``layer`` columns instead of ``model_a/b`` and ``layer_a/b``; "many", of
        :func:`nncompare.compare_many`, has the columns of "models" for many model pairs,
        and ``attrs["kind"] == "many"``).
    names : tuple of str
        The model labels, or the checkpoint labels.
    layers_a, layers_b : list of str
        The layers compared on either side (resolved: globs expanded, aliases merged).
    measures : dict of str -> MeasureRecord
    provenance : dict
        Versions, platform, time, command, data description, conv policy ...
    spectra : dict of measure -> {(layer_a, layer_b): canonical correlations}
    kept_dims : dict of (layer_a, layer_b) -> (kept_x, kept_y)
        SVCCA's kept dimensions per pair.
    layer_aliases : dict of model label -> {merged name: kept name}
    n_samples : int
    title : str or None
    extra : dict
        Any other ``attrs`` entries of the frame it was read from (kept, and written back).
    """

    frame: Any
    kind: str = "models"
    names: tuple[str, ...] = ()
    layers_a: list[str] = field(default_factory=list)
    layers_b: list[str] = field(default_factory=list)
    measures: dict[str, MeasureRecord] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    spectra: dict[str, dict[tuple[str, str], list[float]]] = field(default_factory=dict)
    kept_dims: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    layer_aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    n_samples: int = 0
    title: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def attrs(self) -> dict[str, Any]:
        """The metadata as the JSON-friendly ``DataFrame.attrs`` dict of old readers."""
        out: dict[str, Any] = {
            "provenance": dict(self.provenance),
            "measures": {m: info.as_dict() for m, info in self.measures.items()},
        }
        if self.kind == "models":
            out["spectra"] = {
                m: {f"{a}|{b}": list(rho) for (a, b), rho in per.items()}
                for m, per in self.spectra.items()
            }
            out["kept_dims"] = {f"{a}|{b}": list(v) for (a, b), v in self.kept_dims.items()}
            out["layer_aliases"] = {k: dict(v) for k, v in self.layer_aliases.items()}
        if self.kind == "many":
            out["kind"] = "many"
            out["layer_aliases"] = {k: dict(v) for k, v in self.layer_aliases.items()}
        if self.title is not None:
            out["title"] = self.title
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    def to_frame(self) -> Any:
        """The tidy DataFrame with :meth:`attrs` attached (the frame itself, not a copy)."""
        self.frame.attrs = self.attrs
        return self.frame

    @classmethod
    def from_frame(cls, df: Any) -> ComparisonResult:
        """The typed view of a comparison: the one place where ``DataFrame.attrs`` is read.

        Accepts the frame of :func:`nncompare.compare_models` or
        :func:`nncompare.compare_checkpoints` (its ``attrs`` read once; missing or malformed
        entries are empty), a :class:`nncompare.GridResult` (via its ``to_comparison()``),
        or a :class:`ComparisonResult` (returned as it is).
        """
        if isinstance(df, ComparisonResult):
            return df
        to_comparison = getattr(df, "to_comparison", None)
        if callable(to_comparison) and not hasattr(df, "columns"):
            return to_comparison()
        cols = set(getattr(df, "columns", ()))
        if not {"measure", "value"} <= cols:
            raise TypeError(
                "ComparisonResult.from_frame expects the DataFrame returned by compare_models "
                "or compare_checkpoints (columns measure, value, ...) or a GridResult of "
                f"nc.pairwise; got {type(df).__name__}"
                f"{' with columns ' + str(sorted(map(str, cols))) if cols else ''}."
            )
        return cls.from_table(df, getattr(df, "attrs", None))

    @classmethod
    def from_table(cls, df: Any, attrs: Any = None) -> ComparisonResult:
        """The typed view of a tidy table ``df`` (columns ``measure``, ``value``, ...) with
        the metadata ``attrs`` in the ``DataFrame.attrs`` form (e.g. read from
        ``results.json``)."""
        attrs = _mapping(attrs)
        cols = set(getattr(df, "columns", ()))
        kind = "checkpoints" if "checkpoint" in cols else "models"
        if kind == "models" and attrs.get("kind") == "many":
            kind = "many"

        def uniq(col: str) -> list[str]:
            return [str(v) for v in dict.fromkeys(df[col])] if col in cols else []

        if kind in ("models", "many"):
            names = tuple(dict.fromkeys([*uniq("model_a"), *uniq("model_b")]))
            la, lb = uniq("layer_a"), uniq("layer_b")
        else:
            names = tuple(uniq("checkpoint"))
            la = lb = uniq("layer")
        prov = _mapping(attrs.get("provenance"))
        n = prov.get("n_samples")
        if n is None and "n_samples" in cols and len(df):
            n = df["n_samples"].iloc[0]
        try:
            n_samples = int(n) if n is not None else 0
        except (TypeError, ValueError):
            n_samples = 0
        spectra: dict[str, dict[tuple[str, str], list[float]]] = {}
        for m, per in _mapping(attrs.get("spectra")).items():
            spectra[str(m)] = {
                _pair_key(k, la, lb): list(v) for k, v in _mapping(per).items() if v is not None
            }
        kept: dict[tuple[str, str], Any] = {}
        for k, v in _mapping(attrs.get("kept_dims")).items():
            pair = _kept_pair(v)
            if pair is not None:
                kept[_pair_key(k, la, lb)] = pair
        title = attrs.get("title")
        return cls(
            frame=df,
            kind=kind,
            names=names,
            layers_a=la,
            layers_b=lb,
            measures={
                str(m): MeasureRecord.from_dict(v)
                for m, v in _mapping(attrs.get("measures")).items()
            },
            provenance=prov,
            spectra=spectra,
            kept_dims=kept,
            layer_aliases={
                str(k): _mapping(v) for k, v in _mapping(attrs.get("layer_aliases")).items()
            },
            n_samples=n_samples,
            title=None if title is None else str(title),
            extra={str(k): v for k, v in attrs.items() if k not in _TYPED_ATTRS},
        )

    @property
    def table(self) -> Any:
        """The tidy frame without its ``attrs`` (for column work; see :func:`bare_frame`)."""
        return bare_frame(self.frame)

    # the frame's own interface, for code written against the DataFrame
    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, key: Any) -> Any:
        return self.frame[key]

    def __getattr__(self, name: str) -> Any:  # columns and methods (attrs is the property)
        if name.startswith("__") or name == "frame":
            raise AttributeError(name)
        return getattr(self.frame, name)


def bare_frame(df: Any) -> Any:
    """``df`` without its ``DataFrame.attrs`` (a shallow copy when it has any): pandas
    deep-copies ``attrs`` (spectra and all) into every derived Series and frame, which
    dominates the cost of column work on a frame with large metadata."""
    if not getattr(df, "attrs", None):
        return df
    out = df.copy(deep=False)
    out.attrs = {}
    return out


def with_metadata(df: Any, attrs: Any) -> Any:
    """``df`` with ``attrs`` (a mapping; anything else: none) as its ``DataFrame.attrs``."""
    df.attrs = dict(attrs) if isinstance(attrs, Mapping) else {}
    return df


def as_frame(obj: Any) -> Any:
    """A comparison frame with its attrs: ``obj.to_frame()`` for a
    :class:`ComparisonResult`, ``obj`` itself otherwise."""
    return obj.to_frame() if isinstance(obj, ComparisonResult) else obj
