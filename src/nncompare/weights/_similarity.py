"""Similarity of two weight covariances (Guth & Ménard eqs. 5-6, Fig. 3)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nncompare._array import as_array, harmonize, namespace, to_numpy
from nncompare._validation import check_finite
from nncompare.measures.covariance import bures_wasserstein, covariance_cosine
from nncompare.weights._spectra import (
    _check_gamma,
    effective_rank,
    eigh_desc,
    noise_edge,
    shrink,
    shrunk_covariance,
)

__all__ = [
    "CovarianceSimilarity",
    "EigenvectorSimilarity",
    "covariance_similarity",
    "eigenvector_similarity",
    "random_rotation",
]


@dataclass(frozen=True, repr=False)
class CovarianceSimilarity:
    """Eq. 5-6 of Guth & Ménard between two (shrunk) weight covariances.

    Attributes
    ----------
    bures_wasserstein : float
        d(C1, C2) = (tr C1 + tr C2 - 2 ‖C1^½ C2^½‖_*)^½, in the normalised units (init
        variance 1).
    cosine : float
        cos θ(C1, C2) = ‖C1^½ C2^½‖_* / sqrt(tr C1 tr C2) (eq. 5), in [0, 1].
    S : float
        (cosine - zero_point) / (upper_bound - zero_point) (eq. 6): 0 for a random rotation
        of C1, 1 for a fresh estimate of C1 from as many neurons. It exceeds 1 when C2 is
        closer to C1 than an independent re-estimation would be (a network compared with
        itself or an exact rotated copy: cosine 1, S = (1 - zero_point) / (upper_bound -
        zero_point), 1.1 to 1.4 for the layers of the CIFAR ResNet-20).
    zero_point : float
        Mean of cos θ(C1, O C1 Oᵀ) over ``n_rotations`` seeded Haar-random rotations O.
    upper_bound : float
        Mean of cos θ(C1, Ĉ1), Ĉ1 the shrunk covariance of C_out = d / γ₁ Gaussian vectors
        of covariance C1 + σ² I (σ² = 1 in normalised units), over ``n_rotations`` draws.
    r_eff_1, r_eff_2 : float
        Effective ranks (eq. 4) of the compared covariances' eigenvalues.
    gamma : tuple of float
        (γ₁, γ₂) used for the shrinkage and the upper bound.
    shrunk : bool
        Whether C1 and C2 were shrunk here (eq. 3) before comparing.
    n_rotations : int
    seed : int
    """

    bures_wasserstein: float
    cosine: float
    S: float
    zero_point: float
    upper_bound: float
    r_eff_1: float
    r_eff_2: float
    gamma: tuple[float, float]
    shrunk: bool
    n_rotations: int
    seed: int
    conventions: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.S)

    def __repr__(self) -> str:
        return (
            f"CovarianceSimilarity(S={self.S:.4f}, cosine={self.cosine:.4f}, "
            f"bures_wasserstein={self.bures_wasserstein:.4g}, zero_point={self.zero_point:.4f}, "
            f"upper_bound={self.upper_bound:.4f}, r_eff=({self.r_eff_1:.2f}, {self.r_eff_2:.2f}))"
        )


@dataclass(frozen=True, repr=False)
class EigenvectorSimilarity:
    """|cos| between the leading eigenvectors of two covariances (Fig. 3 of Guth & Ménard).

    Attributes
    ----------
    matrix : array, shape (k, k)
        ``matrix[i, j] = |<u_i, v_j>|``, u_i the i-th eigenvector of C1 (descending
        eigenvalues), v_j that of C2; numpy or torch like the inputs.
    chance : float
        1 / sqrt(d): the typical |cos| of two random unit vectors of R^d. The paper's colour
        scale is white at ``chance`` and black at ``5 * chance``.
    r_eff_1, r_eff_2 : float
        Effective ranks (eq. 4) of C1 and C2 (after shrinkage when ``gamma`` was given),
        the arrows on the rank axes.
    eigenvalues_1, eigenvalues_2 : numpy.ndarray, shape (d,)
        Descending eigenvalues (shrunk when ``gamma`` was given).
    d, k : int
    """

    matrix: Any
    chance: float
    r_eff_1: float
    r_eff_2: float
    eigenvalues_1: np.ndarray
    eigenvalues_2: np.ndarray
    d: int
    k: int

    def __repr__(self) -> str:
        return (
            f"EigenvectorSimilarity(k={self.k}, d={self.d}, chance={self.chance:.3f}, "
            f"r_eff=({self.r_eff_1:.2f}, {self.r_eff_2:.2f}))"
        )


def random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed random orthogonal d × d matrix (QR of a Gaussian, signs fixed)."""
    Z = rng.standard_normal((d, d))
    Q, R = np.linalg.qr(Z)
    return Q * np.sign(np.where(np.diag(R) == 0, 1.0, np.diag(R)))[None, :]


def random_frame(d: int, r: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random d × r matrix with orthonormal columns (the first r columns of a Haar
    rotation), from the QR decomposition of a d × r Gaussian."""
    Q, R = np.linalg.qr(rng.standard_normal((d, r)))
    return Q * np.sign(np.where(np.diag(R) == 0, 1.0, np.diag(R)))[None, :]


def shrunk_factor(X: np.ndarray, gamma: float) -> np.ndarray:
    """L with L Lᵀ the shrunk (eq. 3) sample covariance Xᵀ X / n of the rows of X (n × d),
    from the thin SVD of X (cheaper than the d × d eigen-decomposition when n < d)."""
    _, sv, Vt = np.linalg.svd(X, full_matrices=False)
    lam = sv**2 / X.shape[0]
    s = shrink(lam, gamma)
    keep = s > 0
    return Vt[keep].T * np.sqrt(s[keep])[None, :]


def _check_square(C: Any, name: str) -> Any:
    C = as_array(C, name=name)
    if C.ndim != 2 or C.shape[0] != C.shape[1] or C.shape[0] < 1:
        raise ValueError(
            f"{name} must be a square (d, d) weight covariance; got shape {tuple(C.shape)}. "
            "Compute it with nc.weights.channel_covariance(weight)."
        )
    check_finite(C, name=name)
    return C


def _gammas(gamma: Any) -> tuple[float, float]:
    if gamma is None:
        raise TypeError(
            "gamma is required: γ = C_in / C_out of the weights the covariances came from "
            "(eq. 3; it also sets the C_out = d / γ neurons of the upper bound). Pass "
            "gamma=weight.shape[1:].numel() / weight.shape[0], or a pair (γ1, γ2)."
        )
    if isinstance(gamma, Sequence) and not isinstance(gamma, str):
        if len(gamma) != 2:
            raise ValueError(
                f"gamma must be a number or a pair (γ1, γ2); got a sequence of {len(gamma)}."
            )
        return _check_gamma(gamma[0], "gamma[0]"), _check_gamma(gamma[1], "gamma[1]")
    g = _check_gamma(gamma)
    return g, g


def _nothing_learned(name: str, gamma: float, top: float) -> ValueError:
    return ValueError(
        f"{name} has no learned component: after shrinkage (eq. 3, γ = {gamma:.4g}) every "
        f"eigenvalue is 0, since the largest, {top:.4g}, lies inside the noise bulk "
        f"(edge (1 + √γ)² = {noise_edge(gamma):.4g}). The covariance cosine is undefined "
        "for it. Check that the covariance was normalised by the init variance "
        "(channel_covariance(weight, init_variance=...)), or compare with shrink=False."
    )


def _factor(C: np.ndarray) -> np.ndarray:
    """L with C = L Lᵀ (d × r, r the numerical rank of the PSD matrix C)."""
    w, V = np.linalg.eigh(C)
    top = float(np.abs(w).max()) if w.size else 0.0
    keep = w > C.shape[0] * np.finfo(np.float64).eps * top
    return V[:, keep] * np.sqrt(w[keep])[None, :]


def _cos_factors(L1: np.ndarray, L2: np.ndarray) -> float:
    """cos θ of L1 L1ᵀ and L2 L2ᵀ: ‖C1^½ C2^½‖_* = ‖L1ᵀ L2‖_* for any such factors."""
    t1, t2 = float(np.sum(L1 * L1)), float(np.sum(L2 * L2))
    if t1 <= 0 or t2 <= 0:
        return 0.0
    fid = float(np.linalg.svd(L1.T @ L2, compute_uv=False).sum())
    return min(fid / np.sqrt(t1 * t2), 1.0)


def covariance_similarity(
    C1: Any,
    C2: Any,
    *,
    shrink: bool = True,
    gamma: float | tuple[float, float] | None = None,
    n_rotations: int = 8,
    seed: int = 0,
) -> CovarianceSimilarity:
    """Bures–Wasserstein distance, cosine (eq. 5) and normalised similarity S (eq. 6).

    Parameters
    ----------
    C1, C2 : array, shape (d, d)
        Weight covariances in one basis (for two networks: C2 aligned into C1's basis,
        see :func:`aligned_weights`), normalised so the init variance is 1
        (:func:`channel_covariance`). numpy or torch.
    shrink : bool, default True
        Shrink both spectra first (eq. 3, :func:`shrink`). Pass False for covariances that
        are already shrunk (``gamma`` is still needed for the upper bound).
    gamma : float or (float, float)
        γ = C_in / C_out of the weights C1 (and C2) came from. Required.
    n_rotations : int, default 8
        Random rotations averaged for the zero point, and Gaussian re-estimations averaged
        for the upper bound.
    seed : int, default 0
        Seed of those draws (the result is deterministic).

    Returns
    -------
    CovarianceSimilarity
        ``.bures_wasserstein``, ``.cosine``, ``.S``, ``.zero_point``, ``.upper_bound``
        (floats), ``float(result)`` is S.

    Raises
    ------
    ValueError
        If the matrices are not square, finite, of one size, PSD; if ``gamma`` is not
        positive; if a shrunk covariance is 0 (nothing above the noise edge: the cosine is
        undefined); or if the upper bound does not exceed the zero point (C1 ∝ I: a
        rotation-invariant covariance, for which S is undefined).

    Notes
    -----
    The zero point is cos θ(C1, O C1 Oᵀ), O Haar-random; the upper bound is cos θ(C1, Ĉ1)
    with Ĉ1 the shrinkage of the sample covariance of C_out = round(d / γ₁) draws of
    N(0, C1 + I): the similarity one would measure between C1 and a second network with
    the same learned covariance and its own initialisation noise (§3.2). Both use the
    shrunk C1.
    """
    C1 = _check_square(C1, "C1")
    C2 = _check_square(C2, "C2")
    C1, C2 = harmonize(C1, C2)
    if C1.shape != C2.shape:
        raise ValueError(
            f"C1 and C2 must have the same shape; got {tuple(C1.shape)} and {tuple(C2.shape)}. "
            "Align the weights of the second network into the first one's basis first "
            "(nc.weights.aligned_weights), which maps them to the first one's width."
        )
    if not isinstance(n_rotations, int | np.integer) or isinstance(n_rotations, bool):
        raise TypeError(f"n_rotations must be an int ≥ 1; got {n_rotations!r}.")
    if n_rotations < 1:
        raise ValueError(f"n_rotations must be ≥ 1; got {n_rotations}.")
    g1, g2 = _gammas(gamma)
    a1 = to_numpy(C1).astype(np.float64)
    a2 = to_numpy(C2).astype(np.float64)
    a1, a2 = 0.5 * (a1 + a1.T), 0.5 * (a2 + a2.T)
    if shrink:
        for name, a, g in (("C1", a1, g1), ("C2", a2, g2)):
            top = float(np.linalg.eigvalsh(a).max())
            if top <= noise_edge(g):
                raise _nothing_learned(name, g, top)
        a1 = shrunk_covariance(a1, g1)
        a2 = shrunk_covariance(a2, g2)
    for name, a in (("C1", a1), ("C2", a2)):
        if float(np.trace(a)) <= 0:
            raise ValueError(
                f"{name} is zero (trace 0): the covariance cosine is undefined. Pass a "
                "covariance with at least one positive eigenvalue."
            )
    bw = float(bures_wasserstein(a1, a2).value)
    cos = float(covariance_cosine(a1, a2).value)
    d = a1.shape[0]
    rng = np.random.default_rng(seed)
    # the draws use factors C = L Lᵀ of the (low-rank, shrunk) matrices: the fidelity is the
    # nuclear norm of the small matrix L1ᵀ L2 (the same value covariance_cosine gives)
    L1 = _factor(a1)  # U1 Λ^½, orthogonal columns
    scale = np.sqrt(np.sum(L1 * L1, axis=0))
    zeros = []
    for _ in range(n_rotations):
        # O L1 = (O U1) Λ^½, and O U1 is a Haar-random orthonormal d × r frame
        zeros.append(_cos_factors(L1, random_frame(d, L1.shape[1], rng) * scale[None, :]))
    zero = float(np.mean(zeros))
    n_out = max(2, round(d / g1))
    uppers = []
    for _ in range(n_rotations):
        # C_out samples of N(0, C1 + I): the learned part plus unit initialisation noise
        X = rng.standard_normal((n_out, L1.shape[1])) @ L1.T + rng.standard_normal((n_out, d))
        uppers.append(_cos_factors(L1, shrunk_factor(X, d / n_out)))
    upper = float(np.mean(uppers))
    if not upper > zero:
        raise ValueError(
            f"S (eq. 6) is undefined here: the upper bound cos θ(C1, Ĉ1) = {upper:.4g} does "
            f"not exceed the zero point cos θ(C1, O C1 Oᵀ) = {zero:.4g}. This happens when C1 "
            "is (nearly) a multiple of the identity, or when C_out = d / γ neurons are too "
            "few to re-estimate it. Compare the cosine itself instead."
        )
    S = (cos - zero) / (upper - zero)
    r1 = effective_rank(np.linalg.eigvalsh(a1).clip(0, None))
    r2 = effective_rank(np.linalg.eigvalsh(a2).clip(0, None))
    return CovarianceSimilarity(
        bures_wasserstein=bw,
        cosine=cos,
        S=float(S),
        zero_point=zero,
        upper_bound=upper,
        r_eff_1=r1,
        r_eff_2=r2,
        gamma=(g1, g2),
        shrunk=bool(shrink),
        n_rotations=int(n_rotations),
        seed=int(seed),
        conventions={
            "S": "(cos - zero_point) / (upper_bound - zero_point)",
            "zero_point": "mean cos(C1, O C1 O^T), O Haar-random",
            "upper_bound": "mean cos(C1, shrink(cov of round(d/gamma1) draws of N(0, C1 + I)))",
            "n_out": n_out,
        },
    )


def eigenvector_similarity(
    C1: Any,
    C2: Any,
    k: int | None = None,
    *,
    gamma: float | tuple[float, float] | None = None,
) -> EigenvectorSimilarity:
    """|cos| matrix between the leading eigenvectors of two covariances (Fig. 3).

    Parameters
    ----------
    C1, C2 : array, shape (d, d)
        Covariances in one basis (e.g. aligned channel covariances). numpy or torch; the
        matrix follows (torch keeps autograd).
    k : int or None, default None
        Number of leading eigenvectors (1 ≤ k ≤ d); None: all d.
    gamma : float or (float, float), optional
        γ = C_in / C_out of the weights; when given, the effective-rank markers and the
        reported eigenvalues are those of the shrunk spectra (eq. 3), otherwise of the raw
        ones. The eigenvectors are the same either way.

    Returns
    -------
    EigenvectorSimilarity
        ``.matrix`` (k, k) of |cos|, ``.chance`` = 1 / sqrt(d), ``.r_eff_1``, ``.r_eff_2``.
    """
    C1 = _check_square(C1, "C1")
    C2 = _check_square(C2, "C2")
    C1, C2 = harmonize(C1, C2)
    if C1.shape != C2.shape:
        raise ValueError(
            f"C1 and C2 must have the same shape; got {tuple(C1.shape)} and {tuple(C2.shape)}. "
            "Align the second network's weights first (nc.weights.aligned_weights)."
        )
    d = int(C1.shape[0])
    if k is None:
        k = d
    if not isinstance(k, int | np.integer) or isinstance(k, bool):
        raise TypeError(f"k must be an int between 1 and d = {d}; got {k!r}.")
    if not 1 <= k <= d:
        raise ValueError(f"k must be between 1 and d = {d} (the covariance size); got k={k}.")
    xp = namespace(C1, C2)
    if not xp.isdtype(C1.dtype, "real floating"):
        C1 = xp.astype(C1, xp.float64)
    if not xp.isdtype(C2.dtype, "real floating"):
        C2 = xp.astype(C2, xp.float64)
    w1, V1 = eigh_desc(C1)
    w2, V2 = eigh_desc(C2)
    M = xp.abs(xp.matrix_transpose(V1[:, :k]) @ V2[:, :k])
    e1 = np.clip(to_numpy(w1).astype(np.float64), 0, None)
    e2 = np.clip(to_numpy(w2).astype(np.float64), 0, None)
    if gamma is not None:
        g1, g2 = _gammas(gamma)
        e1, e2 = to_numpy(shrink(e1, g1)), to_numpy(shrink(e2, g2))
    return EigenvectorSimilarity(
        matrix=M,
        chance=1.0 / math.sqrt(d),
        r_eff_1=effective_rank(e1),
        r_eff_2=effective_rank(e2),
        eigenvalues_1=e1,
        eigenvalues_2=e2,
        d=d,
        k=int(k),
    )
