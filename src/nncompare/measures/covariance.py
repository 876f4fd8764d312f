"""Comparisons of covariance matrices: Bures–Wasserstein distance and covariance cosine.

For symmetric positive semi-definite C1, C2 (d × d),

* fidelity ‖C1^{1/2} C2^{1/2}‖_* = tr (C1^{1/2} C2 C1^{1/2})^{1/2};
* Bures–Wasserstein distance d²(C1, C2) = tr C1 + tr C2 - 2 ‖C1^{1/2} C2^{1/2}‖_*
  (the 2-Wasserstein distance between centred Gaussians; Bhatia, Jain & Lim 2019);
* covariance cosine cos θ(C1, C2) = ‖C1^{1/2} C2^{1/2}‖_* / sqrt(tr C1 tr C2)
  (Guth & Ménard, eq. 5), in [0, 1], 1 iff C1 ∝ C2.
"""

from __future__ import annotations

from typing import Any

from nncompare._array import Array, as_array, harmonize, namespace, to_numpy, to_scalar_float
from nncompare._validation import check_finite
from nncompare.measures._linalg import diag, sqrtm_psd
from nncompare.results import CovarianceResult

__all__ = ["bures_wasserstein", "covariance_cosine"]


def _check_cov(C: Any, name: str) -> Array:
    C = as_array(C, name=name)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(
            f"{name} must be a square (d, d) covariance matrix; got shape {tuple(C.shape)}. "
            "For activations compute it first, e.g. np.cov(X, rowvar=False)."
        )
    check_finite(C, name=name)
    import numpy as np

    a = to_numpy(C).astype(np.float64)
    scale = max(float(np.abs(a).max()), 1e-300)
    if not np.allclose(a, a.T, rtol=1e-8, atol=1e-10 * scale):
        raise ValueError(f"{name} must be symmetric; max |C - Cᵀ| = {np.abs(a - a.T).max():.3g}.")
    w = np.linalg.eigvalsh(0.5 * (a + a.T))
    if w.min() < -1e-8 * max(w.max(), 0.0) - 1e-300:
        raise ValueError(
            f"{name} must be positive semi-definite; its smallest eigenvalue is {w.min():.3g} "
            f"(largest {w.max():.3g})."
        )
    return C


def _fidelity(C1: Any, C2: Any) -> tuple[Any, Array, Array, Array]:
    C1 = _check_cov(C1, "C1")
    C2 = _check_cov(C2, "C2")
    C1, C2 = harmonize(C1, C2)
    if C1.shape != C2.shape:
        raise ValueError(
            f"C1 and C2 must have the same shape; got {tuple(C1.shape)} and {tuple(C2.shape)}. "
            "Covariances of different widths cannot be compared directly (align or pad first)."
        )
    xp = namespace(C1, C2)
    C1 = xp.astype(C1, xp.float64)
    C2 = xp.astype(C2, xp.float64)
    C1 = 0.5 * (C1 + xp.matrix_transpose(C1))
    C2 = 0.5 * (C2 + xp.matrix_transpose(C2))
    R1 = sqrtm_psd(xp, C1)
    inner = R1 @ C2 @ R1
    w = xp.linalg.eigvalsh(0.5 * (inner + xp.matrix_transpose(inner)))
    w = xp.where(w > 0, w, xp.zeros_like(w))
    fid = xp.sum(xp.sqrt(w))
    return xp, fid, xp.sum(diag(xp, C1)), xp.sum(diag(xp, C2))


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
    """
    xp, fid, t1, t2 = _fidelity(C1, C2)
    d2 = t1 + t2 - 2.0 * fid
    d2 = xp.where(d2 > 0, d2, xp.zeros_like(d2))
    return CovarianceResult(
        measure="bures_wasserstein",
        value=xp.sqrt(d2),
        n_samples=0,
        conventions={"definition": "sqrt(tr C1 + tr C2 - 2 ||C1^1/2 C2^1/2||_*)"},
        nuclear=to_scalar_float(fid),
        trace_1=to_scalar_float(t1),
        trace_2=to_scalar_float(t2),
    )


def covariance_cosine(C1: Any, C2: Any) -> CovarianceResult:
    """Cosine similarity of covariances (Guth & Ménard, eq. 5); higher = more alike.

    .. math:: \\cos\\theta(C_1, C_2) = \\frac{\\|C_1^{1/2} C_2^{1/2}\\|_*}
              {\\sqrt{\\mathrm{tr}\\,C_1\\,\\mathrm{tr}\\,C_2}}
    """
    xp, fid, t1, t2 = _fidelity(C1, C2)
    if float(t1) <= 0 or float(t2) <= 0:
        raise ValueError("covariance_cosine is undefined for a zero covariance matrix.")
    return CovarianceResult(
        measure="covariance_cosine",
        value=fid / xp.sqrt(t1 * t2),
        n_samples=0,
        conventions={"definition": "||C1^1/2 C2^1/2||_* / sqrt(tr C1 tr C2)"},
        nuclear=to_scalar_float(fid),
        trace_1=to_scalar_float(t1),
        trace_2=to_scalar_float(t2),
    )
