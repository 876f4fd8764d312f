"""Small result objects: a value plus the details that explain it.

Every measure returns one of these. ``float(result)`` is the value (a similarity,
higher = more alike, unless the measure's registry entry says otherwise);
``result.value`` keeps the input's array library (a 0-d torch tensor with autograd
for torch inputs); the other attributes hold the details (canonical correlations,
kept dimensions, weights, the conventions used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from nncompare._array import Array, to_numpy, to_scalar_float

__all__ = [
    "CCAResult",
    "CKAResult",
    "CovarianceResult",
    "DFTCCAResult",
    "PWCCAResult",
    "ProcrustesResult",
    "RegressionResult",
    "Result",
    "SVCCAResult",
    "ShapeResult",
]


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
            v = getattr(self, f.name)
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
            v = getattr(self, f.name)
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
    * ``rotation`` Q (d1, d2), the optimal (semi-)orthogonal map from X's space to Y's.
    """

    angular: float = math.nan
    euclidean: float = math.nan
    rotation: Array | None = None

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
    rotation: Array | None = None

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
