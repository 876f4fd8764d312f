"""Orthogonal Procrustes similarity and generalised shape metrics (Williams et al. 2021).

For centred data normalised to unit Frobenius norm, X̃ = Xc/‖Xc‖_F and Ỹ = Yc/‖Yc‖_F,

* similarity (``value``) = max_Q ⟨X̃ Q, Ỹ⟩ = ‖X̃ᵀ Ỹ‖_* = cos θ, Q over (semi-)orthogonal maps;
* angular distance θ = arccos(value) — a metric on shapes (Williams et al. 2021, eq. 3);
* Euclidean distance min_Q ‖X̃ Q - Ỹ‖_F = sqrt(2 - 2 value) (the normalised Procrustes
  distance of Ding et al. 2021; anatome reports 1 - value, half its square).

The shape metric with partial whitening ``alpha`` replaces X̃ by
X̃ (α I + (1 - α) Σ̃^{-1/2}) with Σ̃ = X̃ᵀ X̃ (unit trace), rescaled to unit norm:
alpha = 1 is Procrustes, alpha = 0 is the CCA-like metric with cos θ = Σρ_i / sqrt(r_x r_y).

Different widths are handled by letting Q be d1 × d2 with orthonormal rows or columns,
which is what zero-padding the narrower representation (netrep) amounts to.

References
----------
Williams, A. H., Kunz, E., Kornblith, S. & Linderman, S. W. (2021). Generalized shape
metrics on neural representations. NeurIPS.
Ding, F., Denain, J.-S. & Steinhardt, J. (2021). Grounding representation similarity with
statistical testing. NeurIPS.
"""

from __future__ import annotations

import math
from typing import Any

from nncompare._array import Array, to_scalar_float
from nncompare._validation import check_fraction
from nncompare.measures._inputs import to_moments
from nncompare.measures._linalg import DEFAULT_RTOL, diag
from nncompare.results import ProcrustesResult, ShapeResult

__all__ = ["procrustes", "shape"]


def _acos(v: float) -> float:
    return math.acos(min(1.0, max(-1.0, v)))


def _norms(xp: Any, m: Any) -> tuple[Array, Array]:
    """Squared Frobenius norms of the centred data, in units of each side's largest feature
    scale (the measures here are invariant to isotropic scaling; constant features are 0)."""
    cxx, cyy, _ = m.normalized()
    tx = xp.sum(diag(xp, cxx))
    ty = xp.sum(diag(xp, cyy))
    for label, t in (("X", tx), ("Y", ty)):
        if to_scalar_float(t) <= 0:
            raise ValueError(
                f"Procrustes similarity is undefined: every feature of {label} is constant, so "
                "its centred data is zero and cannot be normalised."
            )
    return tx, ty


def procrustes(
    X: Any, Y: Any = None, *, conv: str | None = None, layout: str | None = None
) -> ProcrustesResult:
    """Orthogonal Procrustes similarity of centred, norm-scaled data.

    .. math:: s(X, Y) = \\frac{\\|X_c^T Y_c\\|_*}{\\|X_c\\|_F\\,\\|Y_c\\|_F}

    Parameters
    ----------
    X : array (n, d1), conv activations, or :class:`~nncompare.Moments`
    Y : array (n, d2) or None

    Returns
    -------
    ProcrustesResult
        ``value`` in [0, 1]; ``angular`` = arccos(value) ∈ [0, π/2] (a metric; ``distance``);
        ``euclidean`` = sqrt(2 - 2 value); ``rotation`` Q (d1, d2) minimising
        ‖X̃ Q - Ỹ‖_F.
    """
    m = to_moments(X, Y, conv=conv, layout=layout, measure="procrustes", min_samples=3)
    xp = m.xp
    tx, ty = _norms(xp, m)
    U, s, Vh = xp.linalg.svd(m.normalized()[2], full_matrices=False)
    value = xp.sum(s) / xp.sqrt(tx * ty)
    v = to_scalar_float(value)
    return ProcrustesResult(
        measure="procrustes",
        value=value,
        n_samples=m.n,
        conventions={
            "centering": "columns",
            "scaling": "unit Frobenius norm",
            "widths": "semi-orthogonal Q (equivalent to zero padding)",
            "conv": conv,
        },
        angular=_acos(v),
        euclidean=math.sqrt(max(0.0, 2.0 - 2.0 * min(v, 1.0))),
        rotation=U @ Vh,
    )


def _partial_whitener(xp: Any, C: Array, alpha: float, rtol: float) -> Array:
    """Z = α I + (1 - α) Σ̃^{-1/2} (on the range of Σ̃ = C / tr C)."""
    Cn = C / xp.sum(diag(xp, C))
    evals, evecs = xp.linalg.eigh(Cn)
    top = xp.max(evals)
    mask = evals > rtol * top
    safe = xp.where(mask, evals, xp.ones_like(evals))
    f = xp.where(mask, alpha + (1.0 - alpha) / xp.sqrt(safe), xp.zeros_like(evals))
    return (evecs * f[None, :]) @ xp.matrix_transpose(evecs)


def shape(
    X: Any,
    Y: Any = None,
    *,
    alpha: float = 1.0,
    conv: str | None = None,
    layout: str | None = None,
    rtol: float = DEFAULT_RTOL,
) -> ShapeResult:
    """Generalised shape metric with partial whitening (Williams et al. 2021, Section 3).

    Parameters
    ----------
    alpha : float in [0, 1], default 1
        1: Procrustes (rotation-invariant); 0: full whitening (invariant to invertible
        linear maps, CCA-like: cos θ = Σρ_i / sqrt(rank_x rank_y)).

    Returns
    -------
    ShapeResult
        ``value`` = cos θ_alpha; ``angular`` θ_alpha (a metric; ``distance``); ``rotation``.

    Notes
    -----
    Partial whitening is applied to the unit-norm data, so every alpha is invariant to
    isotropic scaling. netrep whitens with the unnormalised Xcᵀ Xc, which makes its
    0 < alpha < 1 results depend on the data's scale; at alpha = 0 and 1 the two agree.
    """
    alpha = check_fraction("alpha", alpha, low_open=False)
    m = to_moments(X, Y, conv=conv, layout=layout, measure="shape", min_samples=3)
    xp = m.xp
    _norms(xp, m)
    if alpha == 0.0:
        # full whitening: any whitening gives the same nuclear norm; the scale-normalised
        # one of the CCA core keeps features of wildly different scales exact.

        from nncompare.measures.cca import _side

        sx, sy = _side(m, "x", rtol), _side(m, "y", rtol)
        cross = xp.matrix_transpose(sx.W) @ m.zxy @ sy.W
        s = xp.linalg.svdvals(cross)
        value = xp.sum(s) / xp.sqrt(xp.asarray(float(sx.rank * sy.rank), dtype=s.dtype))
        U, _, Vh = xp.linalg.svd(cross, full_matrices=False)
        rotation = U @ Vh  # in whitened coordinates
        return ShapeResult(
            measure="shape",
            value=value,
            n_samples=m.n,
            conventions={
                "alpha": 0.0,
                "centering": "columns",
                "whitening": "full (scale-normalised eigen-whitening)",
                "rank_rtol": rtol,
                "conv": conv,
            },
            alpha=0.0,
            angular=_acos(to_scalar_float(value)),
            rotation=rotation,
        )
    cxx, cyy, cxy = m.normalized()
    key = ("partial_whitener", alpha, rtol)
    if key not in m._cache_x:
        m._cache_x[key] = _partial_whitener(xp, cxx, alpha, rtol)
    if key not in m._cache_y:
        m._cache_y[key] = _partial_whitener(xp, cyy, alpha, rtol)
    Zx, Zy = m._cache_x[key], m._cache_y[key]
    cross = xp.matrix_transpose(Zx) @ cxy @ Zy
    nx = xp.sum(diag(xp, xp.matrix_transpose(Zx) @ cxx @ Zx))
    ny = xp.sum(diag(xp, xp.matrix_transpose(Zy) @ cyy @ Zy))
    U, s, Vh = xp.linalg.svd(cross, full_matrices=False)
    value = xp.sum(s) / xp.sqrt(nx * ny)
    return ShapeResult(
        measure="shape",
        value=value,
        n_samples=m.n,
        conventions={
            "alpha": alpha,
            "centering": "columns",
            "whitening": "of unit-norm data: alpha I + (1 - alpha) C^-1/2",
            "rank_rtol": rtol,
            "conv": conv,
        },
        alpha=alpha,
        angular=_acos(to_scalar_float(value)),
        rotation=U @ Vh,
    )
