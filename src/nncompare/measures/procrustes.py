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

The value needs only the singular values of X̃ᵀ Ỹ; the rotation (an SVD with vectors) is
computed when ``result.rotation`` is first read. With ``precision="auto"`` and float32
arrays the products are float32 (summed in float64) and the singular values come from the
eigenvalues of the smaller Gram matrix (X̃ᵀỸ)ᵀ(X̃ᵀỸ), whose absolute error (about 1e-8 of
the largest singular value) is below that of the float32 products: the value agrees with
``precision="float64"`` (the exact path, singular values by SVD) to about 1e-7 .. 1e-6
(noise singular values of about 6e-8 of the largest stand in for exact zeros when the
cross-covariance is rank-deficient, so the error is at most about min(d1, d2) · 6e-8).

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

from nncompare._array import Array, is_torch, to_scalar_float
from nncompare.measures._inputs import prepare_pair
from nncompare.measures._linalg import (
    DEFAULT_RTOL,
    check_products,
    diag,
    eigh_desc_stable,
    linear_moments,
    svdvals_via_gram,
    whitening_side,
    with_exact_fallback,
)
from nncompare.measures._params import CONV, LAYOUT, PRECISION, RTOL, Interval, constrain
from nncompare.results import Pending, ProcrustesResult, ShapeResult
from nncompare.stats import JointMoments, Moments, cross_moments

__all__ = ["procrustes", "shape"]


def _acos(v: float) -> float:
    return math.acos(min(1.0, max(-1.0, v)))


def _norms(xp: Any, m: Any) -> tuple[Array, Array]:
    """Squared Frobenius norms of the centred data, in units of each side's largest feature
    scale (the measures here are invariant to isotropic scaling; constant features are 0)."""
    rx, _ = m.relative_scale("x")
    ry, _ = m.relative_scale("y")
    tx = xp.sum(diag(xp, m.zxx) * (rx * rx))
    ty = xp.sum(diag(xp, m.zyy) * (ry * ry))
    return _check_norms(tx, ty)


def _check_norms(tx: Array, ty: Array) -> tuple[Array, Array]:
    for label, t in (("X", tx), ("Y", ty)):
        if to_scalar_float(t) <= 0:
            raise ValueError(
                f"Procrustes similarity is undefined: every feature of {label} is constant, so "
                "its centred data is zero and cannot be normalised."
            )
    return tx, ty


@constrain(conv=CONV, layout=LAYOUT, precision=PRECISION)
def procrustes(
    X: Any,
    Y: Any = None,
    *,
    conv: str | None = None,
    layout: str | None = None,
    precision: str = "auto",
) -> ProcrustesResult:
    """Orthogonal Procrustes similarity of centred, norm-scaled data.

    .. math:: s(X, Y) = \\frac{\\|X_c^T Y_c\\|_*}{\\|X_c\\|_F\\,\\|Y_c\\|_F}

    Parameters
    ----------
    X : array (n, d1), conv activations, or :class:`~nncompare.Moments`
    Y : array (n, d2) or None
    precision : {"auto", "float32", "float64"}, default "auto"
        Precision of the products (arrays only): the inputs' own (float32 for float32
        arrays; agreement with the exact path about 1e-7 .. 1e-6, see the module notes), or
        ``"float64"``, the exact path.

    Returns
    -------
    ProcrustesResult
        ``value`` in [0, 1]; ``angular`` = arccos(value) ∈ [0, π/2] (a metric; ``distance``);
        ``euclidean`` = sqrt(2 - 2 value); ``rotation`` Q (d1, d2) minimising
        ‖X̃ Q - Ỹ‖_F (computed on first access).
    """
    if isinstance(X, Moments | JointMoments):
        m, _ = linear_moments(
            X, Y, conv=conv, layout=layout, measure="procrustes", precision=precision, min_samples=3
        )
        xp, n, product_precision = m.xp, m.n, m.product_precision
        tx, ty = _norms(xp, m)
        rx, _ = m.relative_scale("x")
        ry, _ = m.relative_scale("y")
        cross = rx[:, None] * m.zxy * ry[None, :]
    else:
        # the value needs only the cross-covariance and the two total variances: one product
        X, Y = prepare_pair(X, Y, conv=conv, layout=layout, min_samples=3, measure="procrustes")
        cm = cross_moments(X, Y, precision=precision)
        xp, n, product_precision = cm.xp, cm.n, cm.product_precision
        tx, ty = _check_norms(cm.ssx, cm.ssy)
        cross = cm.cross
    s = _singular_values(xp, cross, product_precision)
    value = xp.sum(s) / xp.sqrt(tx * ty)
    v = to_scalar_float(value)
    return ProcrustesResult(
        measure="procrustes",
        value=value,
        n_samples=n,
        conventions={
            "centering": "columns",
            "scaling": "unit Frobenius norm",
            "widths": "semi-orthogonal Q (equivalent to zero padding)",
            "conv": conv,
        },
        angular=_acos(v),
        euclidean=math.sqrt(max(0.0, 2.0 - 2.0 * min(v, 1.0))),
        rotation=Pending(lambda: _polar(xp, cross)),
    )


def _singular_values(xp: Any, A: Array, product_precision: str | None) -> Array:
    """Singular values of A: by SVD, or — for float32 products without autograd — from the
    eigenvalues of the smaller Gram matrix (cheaper; accurate to ~1e-8 of the largest)."""
    if product_precision == "float32" and not (is_torch(A) and A.requires_grad):
        return svdvals_via_gram(xp, A)
    return xp.linalg.svdvals(A)


def _polar(xp: Any, A: Array) -> Array:
    """The (semi-)orthogonal factor U Vᵀ of A = U S Vᵀ."""
    U, _, Vh = xp.linalg.svd(A, full_matrices=False)
    return U @ Vh


def _partial_whitener(xp: Any, C: Array, alpha: float, rtol: float) -> tuple[Array, Array, float]:
    """Z = α I + (1 - α) Σ̃^{-1/2} (on the range of Σ̃ = C / tr C), with tr(Zᵀ C Z) and the
    amplification of relative rounding errors of C (rank · ‖D^{1/2} Z‖_F² / tr(Zᵀ Σ̃ Z),
    D = diag Σ̃: ``tr R⁻¹`` at alpha = 0, the rank at alpha = 1; see ``_linalg``)."""
    t = xp.sum(diag(xp, C))
    Cn = C / t
    # under autograd without the 0/0 of repeated (e.g. constant-feature) zero eigenvalues
    evals, evecs = eigh_desc_stable(xp, Cn)
    top = xp.max(evals)
    mask = evals > rtol * top
    safe = xp.where(mask, evals, xp.ones_like(evals))
    f = xp.where(mask, alpha + (1.0 - alpha) / xp.sqrt(safe), xp.zeros_like(evals))
    Z = (evecs * f[None, :]) @ xp.matrix_transpose(evecs)
    spread = xp.sum(f * f * xp.where(mask, evals, xp.zeros_like(evals)))  # tr(Zᵀ Σ̃ Z)
    rank = float(xp.sum(xp.astype(mask, xp.float64)))
    d = diag(xp, Cn)
    amp = rank * xp.sum(d[:, None] * (Z * Z)) / spread
    return Z, t * spread, _float(amp)


def _float(v: Array) -> float:
    return float(v.detach()) if is_torch(v) else float(v)


@constrain(
    alpha=Interval(float, 0, 1, closed="both"),
    conv=CONV,
    layout=LAYOUT,
    rtol=RTOL,
    precision=PRECISION,
)
def shape(
    X: Any,
    Y: Any = None,
    *,
    alpha: float = 1.0,
    conv: str | None = None,
    layout: str | None = None,
    rtol: float = DEFAULT_RTOL,
    precision: str = "auto",
) -> ShapeResult:
    """Generalised shape metric with partial whitening (Williams et al. 2021, Section 3).

    Parameters
    ----------
    alpha : float in [0, 1], default 1
        1: Procrustes (rotation-invariant); 0: full whitening (invariant to invertible
        linear maps, CCA-like: cos θ = Σρ_i / sqrt(rank_x rank_y)).
    precision : {"auto", "float32", "float64"}, default "auto"
        Precision of the products (arrays only), as in :func:`procrustes`; with alpha < 1
        the moments are recomputed in float64 when the whitening is too ill-conditioned for
        float32 products (as in :func:`nncompare.cca`).

    Returns
    -------
    ShapeResult
        ``value`` = cos θ_alpha; ``angular`` θ_alpha (a metric; ``distance``); ``rotation``
        (computed on first access).

    Notes
    -----
    Partial whitening is applied to the unit-norm data, so every alpha is invariant to
    isotropic scaling. netrep whitens with the unnormalised Xcᵀ Xc, which makes its
    0 < alpha < 1 results depend on the data's scale; at alpha = 0 and 1 the two agree.
    """
    alpha = float(alpha)  # values checked by @constrain
    m, exact = linear_moments(
        X, Y, conv=conv, layout=layout, measure="shape", precision=precision, min_samples=3
    )
    return with_exact_fallback(lambda m: _shape(m, alpha, rtol, conv), m, exact)


def _shape(m: Any, alpha: float, rtol: float, conv: str | None) -> ShapeResult:
    xp = m.xp
    _norms(xp, m)
    if alpha == 0.0:
        # full whitening: any whitening gives the same nuclear norm; the scale-normalised
        # one of the CCA core keeps features of wildly different scales exact.
        sx, sy = whitening_side(m, "x", rtol, "shape"), whitening_side(m, "y", rtol, "shape")
        cross = xp.matrix_transpose(sx.W) @ m.zxy @ sy.W
        s = _singular_values(xp, cross, m.product_precision)
        value = xp.sum(s) / xp.sqrt(xp.asarray(float(sx.rank * sy.rank), dtype=s.dtype))
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
            rotation=Pending(lambda: _polar(xp, cross)),  # in whitened coordinates
        )
    cxx, cyy, cxy = m.normalized()
    key = ("partial_whitener", alpha, rtol)
    Zx, nx, ax = m.cached("x", key, lambda: _partial_whitener(xp, cxx, alpha, rtol))
    Zy, ny, ay = m.cached("y", key, lambda: _partial_whitener(xp, cyy, alpha, rtol))
    check_products(m.product_precision, ax, measure="shape", label="X")
    check_products(m.product_precision, ay, measure="shape", label="Y")
    cross = xp.matrix_transpose(Zx) @ cxy @ Zy
    s = _singular_values(xp, cross, m.product_precision)
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
        rotation=Pending(lambda: _polar(xp, cross)),
    )
