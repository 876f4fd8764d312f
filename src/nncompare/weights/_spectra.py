"""Weight covariances and their spectra: channel covariance, shrinkage (eq. 3), r_eff (eq. 4).

Guth & Ménard, "On the universality of neural encodings in CNNs", §3.2. A weight matrix of
size C_out × D (D = C_in · k² for a joint k × k convolution, C_in for a 1 × 1 or linear layer)
is read as C_out samples ("neurons") of a D-dimensional random vector. At initialisation
these are i.i.d. with variance σ² per entry; after training, the population covariance is
σ² I plus a low-rank "learned" part (the spiked covariance model of Johnstone 2001). With the
covariance normalised by σ² and γ = D / C_out, the eigenvalues of pure noise fill the
Marchenko–Pastur bulk up to (1 + √γ)², and the learned part is estimated by shrinking each
eigenvalue (Donoho, Gavish & Johnstone 2018).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nncompare._array import Array, as_array, is_torch, namespace, to_numpy
from nncompare._validation import check_finite

__all__ = [
    "channel_covariance",
    "default_init_variance",
    "effective_rank",
    "noise_edge",
    "shrink",
]

#: eigenvalues down to -EIG_RTOL · max|λ| are rounding of 0 (refused below that)
EIG_RTOL = 1e-8


def default_init_variance(weight_shape: tuple[int, ...]) -> float:
    """Per-entry variance of PyTorch's default initialisation of a conv or linear weight.

    ``torch.nn.Conv2d`` and ``torch.nn.Linear`` draw their weights from
    ``kaiming_uniform_(w, a=sqrt(5))``: U(-b, b) with b = 1 / sqrt(fan_in), whose variance is
    b² / 3 = 1 / (3 · fan_in), with fan_in = C_in · k · k (the product of every axis after the
    first).
    """
    fan_in = int(np.prod(weight_shape[1:])) if len(weight_shape) > 1 else 1
    return 1.0 / (3.0 * fan_in)


def _check_gamma(gamma: Any, name: str = "gamma") -> float:
    try:
        g = float(gamma)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a positive number (C_in / C_out of the weight the eigenvalues "
            f"came from); got {gamma!r} of type {type(gamma).__name__}."
        ) from None
    if not math.isfinite(g) or g <= 0:
        raise ValueError(
            f"{name} must be a finite number > 0: eq. 3 is defined for γ = C_in / C_out of a "
            f"weight with C_in ≥ 1 inputs and C_out ≥ 1 neurons; got {name}={gamma!r}. Pass "
            "gamma = weight.shape[1:].numel() / weight.shape[0] for a (C_out, C_in, k, k) "
            "weight."
        )
    return g


def noise_edge(gamma: float) -> float:
    """The upper edge (1 + √γ)² of the Marchenko–Pastur bulk of a normalised noise covariance."""
    g = _check_gamma(gamma)
    return (1.0 + math.sqrt(g)) ** 2


def _check_eigenvalues(eigenvalues: Any, name: str = "eigenvalues") -> Array:
    lam = as_array(eigenvalues, name=name)
    if lam.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-d array of covariance eigenvalues; got shape "
            f"{tuple(lam.shape)}. Pass np.linalg.eigvalsh(C) for a covariance C."
        )
    if lam.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass the eigenvalues of a d × d covariance, d ≥ 1.")
    check_finite(lam, name=name)
    xp = namespace(lam)
    if not xp.isdtype(lam.dtype, "real floating"):
        lam = xp.astype(lam, xp.float64)
    a = to_numpy(lam)
    top = float(np.abs(a).max())
    if float(a.min()) < -EIG_RTOL * top - 1e-300:
        raise ValueError(
            f"{name} must be those of a positive semi-definite covariance (≥ 0); the smallest "
            f"is {float(a.min()):.3g} (largest {float(a.max()):.3g}). Eigenvalues of a "
            "covariance are never negative beyond rounding: check that the matrix is a "
            "covariance (W.T @ W / C_out), not a difference of covariances."
        )
    return lam


def shrink(eigenvalues: Any, gamma: float) -> Array:
    """Shrink covariance eigenvalues to their learned part (Guth & Ménard, eq. 3).

    .. math::
        \\lambda \\mapsto \\begin{cases}
        \\frac{\\lambda - 1 - \\gamma}{2} + \\sqrt{\\left(\\frac{\\lambda + 1 - \\gamma}{2}
        \\right)^2 - \\lambda} & \\lambda > (1 + \\sqrt\\gamma)^2 \\\\
        0 & \\text{otherwise}
        \\end{cases}

    Parameters
    ----------
    eigenvalues : array, shape (d,)
        Eigenvalues of a weight covariance normalised so that the initialisation variance
        is 1 (see :func:`channel_covariance`); numpy or torch, any order.
    gamma : float
        γ = C_in / C_out (more generally D / C_out for a C_out × D weight matrix), > 0.

    Returns
    -------
    array, shape (d,)
        The shrunk eigenvalues in the input's order and array library (torch keeps
        autograd). Eigenvalues inside the noise bulk, λ ≤ (1 + √γ)², become 0; just above
        the edge the value jumps to √γ (the smallest detectable spike).

    Raises
    ------
    ValueError
        If ``gamma`` is not a finite positive number, or the eigenvalues are not finite or
        are negative beyond rounding.

    Notes
    -----
    The formula inverts the spiked-model relation between a population eigenvalue
    ℓ = 1 + s (a spike s above the unit noise) and the sample eigenvalue
    λ = ℓ + γ ℓ / (ℓ - 1) (Baik, Ben Arous & Péché 2005) and returns s.

    Examples
    --------
    >>> import numpy as np, nncompare as nc
    >>> nc.weights.shrink(np.array([8.0, 4.0, 1.0]), 1.0)
    array([5.82842712, 0.        , 0.        ])
    """
    g = _check_gamma(gamma)
    lam = _check_eigenvalues(eigenvalues)
    xp = namespace(lam)
    edge = (1.0 + math.sqrt(g)) ** 2
    above = lam > edge
    safe = xp.where(above, lam, xp.full_like(lam, 2.0 * edge))
    half = (safe + 1.0 - g) / 2.0
    disc = half * half - safe
    disc = xp.where(disc > 0, disc, xp.zeros_like(disc))
    value = (safe - 1.0 - g) / 2.0 + xp.sqrt(disc)
    return xp.where(above, value, xp.zeros_like(lam))


def effective_rank(eigenvalues: Any) -> float:
    """Eigenvalue-weighted mean rank r_eff = Σ_k k λ_k / Σ_k λ_k (Guth & Ménard, eq. 4).

    Parameters
    ----------
    eigenvalues : array, shape (d,)
        Covariance eigenvalues, normally after :func:`shrink`; sorted here in descending
        order (ranks start at 1).

    Returns
    -------
    float
        r_eff in [1, d]; a single non-zero eigenvalue gives 1, d equal ones (d + 1) / 2.
        When every eigenvalue is 0 (no learned component: the whole spectrum lay inside
        the noise bulk) the sum is empty and r_eff is reported as 0 by convention.

    Raises
    ------
    ValueError
        If the eigenvalues are not a finite 1-d array, or are negative beyond rounding.
    """
    lam = np.sort(to_numpy(_check_eigenvalues(eigenvalues)).astype(np.float64))[::-1]
    lam = np.where(lam > 0, lam, 0.0)
    total = float(lam.sum())
    if total <= 0:
        return 0.0
    ranks = np.arange(1, lam.size + 1, dtype=np.float64)
    return float((ranks * lam).sum() / total)


def as_weight_matrix(weight: Any, name: str = "weight") -> Array:
    """A conv (C_out, C_in, k, k) or linear (C_out, C_in) weight as a (C_out, D) matrix."""
    if not (is_torch(weight) or isinstance(weight, np.ndarray)) and hasattr(weight, "weight"):
        raise TypeError(
            f"{name} must be a weight array of shape (C_out, C_in) or (C_out, C_in, k, k); got "
            f"a {type(weight).__name__} module. Pass its tensor, e.g. module.weight."
        )
    w = as_array(weight, name=name)
    if w.ndim not in (2, 3, 4):
        raise ValueError(
            f"{name} must be a linear (C_out, C_in) or convolution (C_out, C_in, k, k) weight; "
            f"got shape {tuple(w.shape)}. Take the weight of a Conv2d or Linear layer."
        )
    if w.shape[0] < 2:
        raise ValueError(
            f"{name} has C_out = {w.shape[0]} output channel(s); a weight covariance needs at "
            f"least 2 neurons (its samples). Got shape {tuple(w.shape)}; compare layers with "
            "C_out ≥ 2."
        )
    check_finite(w, name=name)
    xp = namespace(w)
    if is_torch(w):
        w = w.reshape(w.shape[0], -1)
    else:
        w = np.reshape(w, (w.shape[0], -1))
    if not xp.isdtype(w.dtype, "real floating"):
        w = xp.astype(w, xp.float64)
    return w


def channel_covariance(weight: Any, init_variance: float | None = None) -> Array:
    """The input-channel covariance of a weight, normalised so the init variance is 1.

    .. math:: C = \\frac{1}{\\sigma^2 C_{out}} W^T W

    with W the weight as a C_out × D matrix (D = C_in for a linear or 1 × 1 conv weight,
    C_in · k² for a k × k conv, channel-major: index c · k² + position). The rows
    (neurons) are the samples; the covariance is uncentred, as for weights drawn around 0.

    Parameters
    ----------
    weight : array, shape (C_out, C_in) or (C_out, C_in, k, k)
        numpy or torch (the result follows; torch keeps autograd). C_out ≥ 2, finite.
    init_variance : float or None, default None
        σ², the per-entry variance at initialisation. None: PyTorch's default for Conv2d
        and Linear, ``kaiming_uniform_(a=sqrt(5))``, i.e. U(±1/sqrt(fan_in)) with variance
        1 / (3 · fan_in), fan_in = C_in · k² (:func:`default_init_variance`). Pass the
        variance of your own initialisation otherwise (e.g. 2 / fan_in for
        ``kaiming_normal_``).

    Returns
    -------
    array, shape (D, D)
        For weights still at their initialisation the expected value is the identity, and
        the eigenvalues fill the bulk [(1 - √γ)², (1 + √γ)²], γ = D / C_out.

    Raises
    ------
    ValueError
        If the weight is not 2-, 3- or 4-d, has fewer than 2 output channels or holds
        NaN/infinity, or ``init_variance`` is not a finite positive number.
    """
    W = as_weight_matrix(weight)
    shape = tuple(int(s) for s in weight.shape)
    if init_variance is None:
        var = default_init_variance(shape)
    else:
        try:
            var = float(init_variance)
        except (TypeError, ValueError):
            raise TypeError(
                f"init_variance must be a positive number or None; got {init_variance!r}."
            ) from None
        if not math.isfinite(var) or var <= 0:
            raise ValueError(
                f"init_variance must be a finite number > 0 (the per-entry variance of the "
                f"initial weights); got {init_variance!r}. None uses PyTorch's default "
                "1 / (3 fan_in)."
            )
    xp = namespace(W)
    return (xp.matrix_transpose(W) @ W) / (var * W.shape[0])


def weight_gamma(weight: Any) -> float:
    """γ = D / C_out of a weight read as a C_out × D matrix."""
    shape = tuple(int(s) for s in weight.shape)
    return float(np.prod(shape[1:])) / shape[0]


def eigh_desc(C: Any) -> tuple[Array, Array]:
    """Eigenvalues (descending) and eigenvectors (columns) of a symmetric matrix."""
    xp = namespace(C)
    C = 0.5 * (C + xp.matrix_transpose(C))
    w, V = xp.linalg.eigh(C)
    idx = xp.flip(xp.arange(w.shape[0]), axis=0)
    return xp.take(w, idx, axis=0), xp.take(V, idx, axis=1)


def shrunk_covariance(C: Any, gamma: float) -> Array:
    """C with its eigenvalues replaced by :func:`shrink` of them (the learned component)."""
    xp = namespace(C)
    w, V = eigh_desc(C)
    s = shrink(w, gamma)
    return (V * s[None, :]) @ xp.matrix_transpose(V)
