"""Gram matrices, centring and HSIC estimators (shared by CKA and minibatch CKA)."""

from __future__ import annotations

from typing import Any

from nncompare._array import Array, to_scalar_float


def sq_distances(xp: Any, X: Array) -> Array:
    """Squared Euclidean distances between rows, (n, n), clipped at 0 against roundoff."""
    sq = xp.sum(X * X, axis=1)
    D = sq[:, None] + sq[None, :] - 2.0 * (X @ xp.matrix_transpose(X))
    D = xp.where(D > 0, D, xp.zeros_like(D))
    n = X.shape[0]
    eye = xp.eye(n, dtype=D.dtype, device=_device(D))
    return D * (1.0 - eye)


def _device(a: Array) -> Any:
    import array_api_compat

    return array_api_compat.device(a)


def median_all(xp: Any, D: Array) -> Array:
    """Median of all n² entries (diagonal zeros included), averaging the two middle values.

    This is numpy's median and Kornblith et al.'s convention; torch.median (ckatorch)
    returns the lower middle value instead.
    """
    flat = xp.sort(xp.reshape(D, (-1,)))
    m = flat.shape[0]
    if m % 2:
        return flat[m // 2]
    return 0.5 * (flat[m // 2 - 1] + flat[m // 2])


def gram(xp: Any, X: Array, kernel: str, threshold: float = 1.0) -> Array:
    """Linear or RBF Gram matrix of the rows of X (features centred for the linear kernel)."""
    if kernel == "linear":
        Xc = X - xp.mean(X, axis=0)
        return Xc @ xp.matrix_transpose(Xc)
    D = sq_distances(xp, X)
    med = median_all(xp, D)
    if to_scalar_float(med) <= 0:
        raise ValueError(
            "RBF CKA is undefined: the median squared distance between samples is 0 (more than "
            "half of the sample pairs are identical). Remove duplicate samples or use "
            "the linear kernel."
        )
    return xp.exp(-D / (2.0 * threshold**2 * med))


def center_gram(xp: Any, K: Array) -> Array:
    """H K H with H = I - 11ᵀ/n."""
    row = xp.mean(K, axis=0)
    total = xp.mean(row)
    return K - row[None, :] - row[:, None] + total


def ucenter_gram(xp: Any, K: Array) -> Array:
    """U-centring (Song et al. 2012; Kornblith et al. 2019): unbiased HSIC as <ũK, ũL>.

    Zero the diagonal, subtract row and column sums over (n - 2), add the total over
    (n - 1)(n - 2), zero the diagonal again.
    """
    n = K.shape[0]
    eye = xp.eye(n, dtype=K.dtype, device=_device(K))
    Kt = K * (1.0 - eye)
    r = xp.sum(Kt, axis=0)
    s = xp.sum(r)
    out = Kt - r[None, :] / (n - 2) - r[:, None] / (n - 2) + s / ((n - 1) * (n - 2))
    return out * (1.0 - eye)


def hsic_unbiased(xp: Any, K: Array, L: Array) -> Array:
    """Unbiased HSIC₁ estimator (Song et al. 2012, eq. 5), for n ≥ 4."""
    n = K.shape[0]
    eye = xp.eye(n, dtype=K.dtype, device=_device(K))
    Kt = K * (1.0 - eye)
    Lt = L * (1.0 - eye)
    term1 = xp.sum(Kt * Lt)
    sk = xp.sum(Kt, axis=0)
    sl = xp.sum(Lt, axis=0)
    term2 = xp.sum(sk) * xp.sum(sl) / ((n - 1) * (n - 2))
    term3 = 2.0 * xp.sum(sk * sl) / (n - 2)
    return (term1 + term2 - term3) / (n * (n - 3))
