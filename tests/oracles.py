"""Independent reference implementations ("oracles") of every activation measure.

Each oracle is written from the defining paper's formula, as directly as possible and
along a different computational path from nncompare's: QR/SVD of the centred *data*
(nncompare works from whitened covariance moments), explicit centring matrices and
uncentred Gram matrices (nncompare centres features), explicit loops over samples,
scipy's Procrustes and Spearman routines. numpy/scipy only, no nncompare import.

Slow and unguarded: meant for small, well-conditioned, full-rank test data without ties.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr

__all__ = ["ORACLES", "hsic1_eq5", "hsic1_ustatistic", "oracle"]


def _centre(A: np.ndarray) -> np.ndarray:
    return A - A.mean(axis=0)


def _orthonormal_basis(A: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space of a full-column-rank matrix (QR)."""
    q, _ = np.linalg.qr(A)
    return q


def _centring_matrix(n: int) -> np.ndarray:
    return np.eye(n) - np.ones((n, n)) / n


def _canonical(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical correlations as cosines of principal angles (Björck & Golub 1973).

    Returns (Qx, U, rho): Qx U are the canonical variates of X (orthonormal columns).
    """
    qx = _orthonormal_basis(_centre(X))
    qy = _orthonormal_basis(_centre(Y))
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    return qx, u, rho


def cca(X: np.ndarray, Y: np.ndarray) -> float:
    """Mean canonical correlation (Hotelling 1936), all min(d1, d2) of them."""
    return float(np.mean(_canonical(X, Y)[2]))


def cca_r2(X: np.ndarray, Y: np.ndarray) -> float:
    """Mean squared canonical correlation (Kornblith et al. 2019, Section 4)."""
    return float(np.mean(_canonical(X, Y)[2] ** 2))


def svcca(X: np.ndarray, Y: np.ndarray, variance: float = 0.99) -> float:
    """Raghu et al. 2017: PCA (SVD of the centred data) to the smallest k whose cumulative
    variance fraction exceeds ``variance``, then mean CCA of the principal-component scores."""

    def reduce(A: np.ndarray) -> np.ndarray:
        u, s, _ = np.linalg.svd(_centre(A), full_matrices=False)
        frac = np.cumsum(s**2) / np.sum(s**2)
        k = 1
        while frac[k - 1] <= variance:
            k += 1
        return u[:, :k] * s[:k]

    return cca(reduce(X), reduce(Y))


def pwcca(X: np.ndarray, Y: np.ndarray) -> float:
    """Morcos, Raghu & Bengio 2018, Section 2.2, weights from the first argument.

    h_i: canonical variates of X, Gram–Schmidt orthonormalised; z_j: X's neurons;
    alpha_i ∝ Σ_j |<h_i, z_j>|; value = Σ_i alpha_i rho_i.
    """
    qx, u, rho = _canonical(X, Y)
    variates = qx @ u
    basis: list[np.ndarray] = []
    for i in range(variates.shape[1]):  # classical Gram–Schmidt, as in the paper
        v = variates[:, i].copy()
        for b in basis:
            v -= (b @ variates[:, i]) * b
        basis.append(v / np.linalg.norm(v))
    alpha = np.array([sum(abs(h @ X[:, j]) for j in range(X.shape[1])) for h in basis])
    alpha /= alpha.sum()
    return float(np.sum(alpha * rho))


def _hsic_biased(K: np.ndarray, L: np.ndarray) -> float:
    """tr(K H L H) (Gretton et al. 2005; the 1/(n-1)² factor cancels in CKA)."""
    H = _centring_matrix(K.shape[0])
    return float(np.trace(K @ H @ L @ H))


def _cka_from_grams(K: np.ndarray, L: np.ndarray, hsic: Callable[..., float]) -> float:
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019, eq. 4) from uncentred Gram matrices."""
    return _cka_from_grams(X @ X.T, Y @ Y.T, _hsic_biased)


def hsic1_eq5(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC_1 of Song et al. 2012, eq. 5, with explicit loops over samples.

    HSIC_1 = 1/(n(n-3)) [tr(K̃L̃) + 1ᵀK̃1 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) 1ᵀK̃L̃1],
    K̃, L̃: K, L with zeroed diagonal.
    """
    n = K.shape[0]
    Kt = [[0.0 if i == j else float(K[i, j]) for j in range(n)] for i in range(n)]
    Lt = [[0.0 if i == j else float(L[i, j]) for j in range(n)] for i in range(n)]
    trace = sum(Kt[i][j] * Lt[j][i] for i in range(n) for j in range(n))
    sum_k = sum(Kt[i][j] for i in range(n) for j in range(n))
    sum_l = sum(Lt[i][j] for i in range(n) for j in range(n))
    row_k = [sum(Kt[i][j] for i in range(n)) for j in range(n)]  # (1ᵀK̃)_j
    col_l = [sum(Lt[j][m] for m in range(n)) for j in range(n)]  # (L̃1)_j
    cross = sum(row_k[j] * col_l[j] for j in range(n))  # 1ᵀ K̃ L̃ 1
    total = trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross
    return total / (n * (n - 3))


def hsic1_ustatistic(K: np.ndarray, L: np.ndarray) -> float:
    """HSIC_1 as the U-statistic it is (Song et al. 2012, Theorem 3): the mean over all
    ordered quadruples of distinct indices of k_ij l_ij + k_ij l_qr - 2 k_ij l_iq. O(n⁴)."""
    n = K.shape[0]
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2.0 * K[i, j] * L[i, q]
        count += 1
    return total / count


def cka_debiased(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA with Song et al.'s unbiased HSIC_1 (eq. 5), uncentred Gram matrices."""
    return _cka_from_grams(X @ X.T, Y @ Y.T, hsic1_eq5)


def cka_rbf(X: np.ndarray, Y: np.ndarray, threshold: float = 1.0) -> float:
    """RBF CKA (Kornblith et al. 2019, Section 6.1): σ² = threshold² · median of all n²
    squared distances, K_ij = exp(-‖x_i - x_j‖² / (2σ²)), biased HSIC."""

    def kernel(A: np.ndarray) -> np.ndarray:
        d2 = cdist(A, A, "sqeuclidean")
        return np.exp(-d2 / (2.0 * threshold**2 * np.median(d2)))

    return _cka_from_grams(kernel(X), kernel(Y), _hsic_biased)


def lr_r2(X: np.ndarray, Y: np.ndarray) -> float:
    """R² of the least-squares fit of Y from X with an intercept (Kornblith et al. 2019)."""
    A = np.column_stack([X, np.ones(X.shape[0])])
    coef, *_ = np.linalg.lstsq(A, Y, rcond=None)
    resid = Y - A @ coef
    return float(1.0 - np.sum(resid**2) / np.sum(_centre(Y) ** 2))


def procrustes(X: np.ndarray, Y: np.ndarray) -> float:
    """max over orthogonal Q of <X̃Q, Ỹ> for centred, unit-Frobenius-norm data, the narrower
    one zero-padded (Williams et al. 2021; Ding et al. 2021), via scipy's Procrustes."""
    d = max(X.shape[1], Y.shape[1])

    def prep(A: np.ndarray) -> np.ndarray:
        A = _centre(A)
        A = A / np.linalg.norm(A)
        return np.pad(A, ((0, 0), (0, d - A.shape[1])))

    Xn, Yn = prep(X), prep(Y)
    Q, _ = orthogonal_procrustes(Xn, Yn)
    return float(np.sum((Xn @ Q) * Yn))


def shape(X: np.ndarray, Y: np.ndarray, alpha: float = 1.0) -> float:
    """Williams et al. 2021 shape metric: alpha = 1 is Procrustes; alpha = 0 (full whitening)
    gives cos θ = Σ rho_i / sqrt(d1 d2) for full-rank data."""
    if alpha == 1.0:
        return procrustes(X, Y)
    if alpha == 0.0:
        rho = _canonical(X, Y)[2]
        return float(np.sum(rho) / np.sqrt(X.shape[1] * Y.shape[1]))
    raise NotImplementedError("oracle for 0 < alpha < 1 not written")


def rsa(X: np.ndarray, Y: np.ndarray) -> float:
    """Kriegeskorte et al. 2008: Spearman correlation of the upper triangles of the
    correlation-distance RDMs (1 - Pearson r between samples' activation patterns)."""
    iu = np.triu_indices(X.shape[0], k=1)
    a = (1.0 - np.corrcoef(X))[iu]
    b = (1.0 - np.corrcoef(Y))[iu]
    return float(spearmanr(a, b).statistic)


def mutual_knn(X: np.ndarray, Y: np.ndarray, k: int = 10) -> float:
    """Huh et al. 2024: mean over samples of |N_X(i) ∩ N_Y(i)| / k, N the k nearest other
    samples by cosine similarity of the features. A loop over samples; ties assumed absent."""
    n = X.shape[0]

    def neighbours(A: np.ndarray) -> list[set[int]]:
        unit = A / np.linalg.norm(A, axis=1, keepdims=True)
        out = []
        for i in range(n):
            others = sorted((j for j in range(n) if j != i), key=lambda j: -(unit[i] @ unit[j]))
            out.append(set(others[:k]))
        return out

    nx, ny = neighbours(X), neighbours(Y)
    return float(np.mean([len(nx[i] & ny[i]) / k for i in range(n)]))


ORACLES: dict[str, Callable[..., float]] = {
    "cca": cca,
    "cca_r2": cca_r2,
    "svcca": svcca,
    "pwcca": pwcca,
    "cka": cka,
    "cka_debiased": cka_debiased,
    "cka_rbf": cka_rbf,
    "lr_r2": lr_r2,
    "procrustes": procrustes,
    "shape": shape,
    "rsa": rsa,
    "mutual_knn": mutual_knn,
}


def oracle(name: str, X: np.ndarray, Y: np.ndarray, **options: float) -> float:
    """The oracle value of measure ``name`` (registry name) with nncompare's defaults."""
    return ORACLES[name](
        np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64), **options
    )
