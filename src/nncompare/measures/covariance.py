"""Comparisons of covariance matrices: Bures–Wasserstein distance and covariance cosine.

For symmetric positive semi-definite C1, C2 (d × d),

* fidelity ‖C1^{1/2} C2^{1/2}‖_* = tr (C1^{1/2} C2 C1^{1/2})^{1/2};
* Bures–Wasserstein distance d²(C1, C2) = tr C1 + tr C2 - 2 ‖C1^{1/2} C2^{1/2}‖_*
  (the 2-Wasserstein distance between centred Gaussians; Bhatia, Jain & Lim 2019);
* covariance cosine cos θ(C1, C2) = ‖C1^{1/2} C2^{1/2}‖_* / sqrt(tr C1 tr C2)
  (Guth & Ménard, eq. 5), in [0, 1], 1 iff C1 ∝ C2.
"""

from __future__ import annotations

import math
from typing import Any

from nncompare._array import (
    Array,
    as_array,
    harmonize,
    is_torch,
    namespace,
    to_numpy,
    to_scalar_float,
)
from nncompare._validation import check_finite
from nncompare.measures._kernels import pow2_factor
from nncompare.results import CovarianceResult

__all__ = ["bures_wasserstein", "covariance_cosine"]


EPS64 = 2.220446049250313e-16
PSD_ULPS = 10.0  # eigenvalue tolerance in units of d · eps(dtype) · max |eigenvalue|
PSD_FLOOR = 1e-8  # never stricter than this relative tolerance (rounding of the input's source)


def psd_tolerance(d: int, eps: float) -> float:
    """Relative tolerance below 0 for the eigenvalues of a d × d PSD matrix of precision eps.

    ``max(10 · d · eps, 1e-8)``: a covariance computed in float32 (eps ≈ 1.2e-7) that is
    rank-deficient has eigenvalues of about ±d · eps · λ_max where it should have zeros.
    """
    return max(PSD_ULPS * d * eps, PSD_FLOOR)


def _check_cov(C: Any, name: str) -> tuple[Array, float]:
    """Validate a covariance matrix: square, finite, symmetric and PSD up to rounding.

    Tolerances are relative to the precision of ``C``'s dtype and to its scale: entries may
    differ from their transposes by ``max(10 d eps, 1e-8)`` times the largest entry, and
    eigenvalues may be as low as ``-max(10 d eps, 1e-8) λ_max`` (they are treated as 0);
    anything more negative is refused.
    """
    C = as_array(C, name=name)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(
            f"{name} must be a square (d, d) covariance matrix; got shape {tuple(C.shape)}. "
            "For activations compute it first, e.g. np.cov(X, rowvar=False)."
        )
    check_finite(C, name=name)
    import numpy as np

    a = to_numpy(C)
    eps = float(np.finfo(a.dtype).eps) if np.issubdtype(a.dtype, np.inexact) else 0.0
    a = a.astype(np.float64)
    d = a.shape[0]
    rel = psd_tolerance(d, max(eps, float(np.finfo(np.float64).eps)))
    scale = max(float(np.abs(a).max()), 1e-300)
    asym = float(np.abs(a - a.T).max())
    if asym > rel * scale:
        raise ValueError(
            f"{name} must be symmetric; max |C - Cᵀ| = {asym:.3g} (largest entry "
            f"{scale:.3g}; rounding allows {rel * scale:.2g}). Symmetrise it with (C + C.T) / 2 "
            "if the asymmetry is expected."
        )
    w = np.linalg.eigvalsh(0.5 * (a + a.T))
    top = max(float(np.abs(w).max()), 0.0)
    if w.min() < -rel * top - 1e-300:
        raise ValueError(
            f"{name} must be positive semi-definite; its smallest eigenvalue is {w.min():.3g} "
            f"(largest {w.max():.3g}; eigenvalues down to -{rel * top:.2g} count as rounding "
            f"for a {d} × {d} {C.dtype} matrix)."
        )
    return C, eps


def _psd_root(xp: Any, C: Array, eps: float) -> tuple[Array, Array]:
    """C^{1/2} and tr C of the PSD matrix nearest C up to rounding.

    Eigenvalues with |λ| <= d · eps · max|λ| (eps of the input's dtype) are rounding of zero
    and set to 0 (as are the small negative ones that passed :func:`_check_cov`), so that a
    rank-deficient float32 covariance is compared as the PSD matrix it stands for.
    """
    d = C.shape[-1]
    evals, evecs = xp.linalg.eigh(C)
    top = xp.max(xp.abs(evals))
    keep = evals > (d * max(eps, EPS64)) * top
    evals = xp.where(keep, evals, xp.zeros_like(evals))
    root = xp.sqrt(xp.where(keep, evals, xp.ones_like(evals))) * xp.astype(keep, evals.dtype)
    return (evecs * root[None, :]) @ xp.matrix_transpose(evecs), xp.sum(evals)


def _fidelity(C1: Any, C2: Any) -> tuple[Any, Array, Array, Array, float, Array, Array]:
    """Namespace, fidelity and traces of s·C1 and s·C2, the power-of-two scale s used, and
    the square roots of s·C1 and s·C2."""
    C1, e1 = _check_cov(C1, "C1")
    C2, e2 = _check_cov(C2, "C2")
    C1, C2 = harmonize(C1, C2)
    if C1.shape != C2.shape:
        raise ValueError(
            f"C1 and C2 must have the same shape; got {tuple(C1.shape)} and {tuple(C2.shape)}. "
            "Covariances of different widths cannot be compared directly (align or pad first)."
        )
    xp = namespace(C1, C2)
    C1 = xp.astype(C1, xp.float64)
    C2 = xp.astype(C2, xp.float64)
    # one power-of-two scale for both (exact): no overflow or underflow at any finite scale
    s = min(pow2_factor(xp, C1), pow2_factor(xp, C2))
    C1 = 0.5 * (C1 + xp.matrix_transpose(C1)) * s
    C2 = 0.5 * (C2 + xp.matrix_transpose(C2)) * s
    R1, t1 = _psd_root(xp, C1, e1)
    R2, t2 = _psd_root(xp, C2, e2)
    # ‖C1^{1/2} C2^{1/2}‖_* from singular values: accurate to eps ‖R1 R2‖ (the square roots
    # of the eigenvalues of R1 C2 R1 would turn rounding of zero into sqrt(eps))
    fid = xp.sum(xp.linalg.svdvals(R1 @ R2))
    return xp, fid, t1, t2, s, R1, R2


def bures_wasserstein(C1: Any, C2: Any) -> CovarianceResult:
    """Bures–Wasserstein distance between covariance matrices (a metric; lower = more alike).

    .. math:: d_{BW}(C_1, C_2) = \\big(\\mathrm{tr}\\,C_1 + \\mathrm{tr}\\,C_2
              - 2\\,\\|C_1^{1/2} C_2^{1/2}\\|_*\\big)^{1/2}

    Parameters
    ----------
    C1, C2 : array, shape (d, d), symmetric positive semi-definite

    Returns
    -------
    CovarianceResult
        ``value`` the distance (≥ 0); ``nuclear`` the fidelity ‖C1^{1/2} C2^{1/2}‖_*;
        ``trace_1``, ``trace_2``.

    Notes
    -----
    Tolerances follow the input's dtype and scale: with eps its precision (float32:
    1.2e-7) and λ_max the largest eigenvalue magnitude, eigenvalues down to
    ``-max(10 d eps, 1e-8) λ_max`` are accepted as rounding (more negative ones are refused
    with ``ValueError``), and eigenvalues with ``|λ| <= d eps λ_max`` are set to 0, so a
    rank-deficient float32 covariance is compared as the PSD matrix it stands for.
    """
    xp, fid, t1, t2, s, R1, R2 = _fidelity(C1, C2)
    # d² = min over orthogonal U of ‖R1 - R2 U‖_F², attained at the polar factor U = P Qᵀ of
    # R2 R1 = P Σ Qᵀ. Forming R1 - R2 U avoids the cancellation in tr C1 + tr C2 - 2 fid
    # (which limits that formula to sqrt(eps) relative accuracy near C1 = C2). U is held
    # fixed for the gradient: at the minimiser its derivative does not contribute.
    P, _, Qt = xp.linalg.svd(R2 @ R1)
    U = P @ Qt
    if is_torch(U):
        U = U.detach()
    diff = R1 - R2 @ U
    d2 = xp.sum(diff * diff)
    pos = d2 > 0
    dist = xp.where(pos, xp.sqrt(xp.where(pos, d2, xp.ones_like(d2))), xp.zeros_like(d2))
    return CovarianceResult(
        measure="bures_wasserstein",
        value=dist / math.sqrt(s),
        n_samples=0,
        conventions={"definition": "sqrt(tr C1 + tr C2 - 2 ||C1^1/2 C2^1/2||_*)"},
        nuclear=to_scalar_float(fid) / s,
        trace_1=to_scalar_float(t1) / s,
        trace_2=to_scalar_float(t2) / s,
    )


def covariance_cosine(C1: Any, C2: Any) -> CovarianceResult:
    """Cosine similarity of covariances (Guth & Ménard, eq. 5); higher = more alike.

    .. math:: \\cos\\theta(C_1, C_2) = \\frac{\\|C_1^{1/2} C_2^{1/2}\\|_*}
              {\\sqrt{\\mathrm{tr}\\,C_1\\,\\mathrm{tr}\\,C_2}}

    In [0, 1]; a value above 1 by rounding (C1 ∝ C2) is reported as 1. Eigenvalues within
    rounding of 0 (relative to the dtype's precision, see :func:`bures_wasserstein`) are 0.
    """
    xp, fid, t1, t2, s, _, _ = _fidelity(C1, C2)
    if to_scalar_float(t1) <= 0 or to_scalar_float(t2) <= 0:
        raise ValueError("covariance_cosine is undefined for a zero covariance matrix.")
    value = fid / (xp.sqrt(t1) * xp.sqrt(t2))
    # at most 1 by Cauchy–Schwarz; an excess of a few ulps (C1 ∝ C2) is rounding
    value = xp.where(value > 1.0, xp.ones_like(value), value)
    return CovarianceResult(
        measure="covariance_cosine",
        value=value,
        n_samples=0,
        conventions={"definition": "||C1^1/2 C2^1/2||_* / sqrt(tr C1 tr C2)"},
        nuclear=to_scalar_float(fid) / s,
        trace_1=to_scalar_float(t1) / s,
        trace_2=to_scalar_float(t2) / s,
    )
