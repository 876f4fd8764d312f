"""Gram matrices, distances, centring and HSIC estimators (CKA, minibatch CKA, RSA, k-NN).

Also the guards shared by the O(n²) measures (``cka_rbf``, ``rsa``, ``mutual_knn``):

* constancy relative to scale: a feature is constant when its range over the samples is
  within ``CONSTANT_ULPS`` units of roundoff of its magnitude, max - min <= 8·eps·max|x|
  (eps of the input's dtype), so 0.3 repeated 30 times is constant although its computed
  mean is not exactly 0.3;
* power-of-two rescaling before products (exact, so any finite input neither overflows
  nor underflows in x·y);
* a memory estimate before the n × n matrices are formed (:class:`InsufficientMemoryError`).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from nncompare._array import Array, device_of, is_torch, to_scalar_float
from nncompare.errors import NNCompareError

CONSTANT_ULPS = 8.0
MEMORY_ENV = "NNCOMPARE_MAX_MEMORY"
FALLBACK_MEMORY = 8 * 2**30  # bytes assumed free when the platform cannot tell
# Peak memory of the O(n²) measures in units of one float64 n × n array (8 n² bytes),
# measured with tracemalloc on numpy inputs, plus a margin (tests/test_hardening_kernels.py
# checks that the estimates are not below the measured peaks).
RBF_CKA_N2_ARRAYS = 5.5
RBF_CKA_DEBIASED_N2_ARRAYS = 7.5
RSA_N2_ARRAYS = 5.5
RDM_N2_ARRAYS = 4.5


class InsufficientMemoryError(NNCompareError, MemoryError):
    """An O(n²) measure would need more memory than is available (checked before allocating).

    The limit is the available memory (free RAM, or free GPU memory for CUDA tensors), or
    the environment variable ``NNCOMPARE_MAX_MEMORY`` (bytes, or e.g. ``"64GiB"``) when set.
    """


def input_eps(xp: Any, X: Array) -> float:
    """Relative precision of ``X``'s dtype (0 for integers and booleans, which are exact)."""
    if xp.isdtype(X.dtype, "integral") or xp.isdtype(X.dtype, "bool"):
        return 0.0
    if xp.isdtype(X.dtype, "complex floating"):
        return float(xp.finfo(xp.float64 if X.dtype == xp.complex128 else xp.float32).eps)
    return float(xp.finfo(X.dtype).eps)


def constant_columns(xp: Any, X: Array, eps: float) -> Array:
    """Boolean (d,) mask of the columns that are constant relative to their scale.

    A column is constant when max - min <= ``CONSTANT_ULPS`` · eps · max |x| over it: its
    variation is at the level of the roundoff of its own values. ``eps`` is the relative
    precision of the input's dtype (:func:`input_eps`); ``X`` may be a float64 copy.
    """
    A = X.detach() if is_torch(X) else X
    hi = xp.max(A, axis=0)
    lo = xp.min(A, axis=0)
    mag = xp.maximum(xp.abs(hi), xp.abs(lo))
    return (hi - lo) <= (CONSTANT_ULPS * eps) * mag


def constant_rows(xp: Any, X: Array, eps: float) -> Array:
    """Boolean (n,) mask of the samples whose features all have the same value (relative rule)."""
    return constant_columns(xp, xp.matrix_transpose(X), eps)


def check_not_all_constant(
    xp: Any, X: Array, eps: float, *, label: str, measure: str, consequence: str
) -> Array:
    """Raise the documented ValueError when every feature of ``X`` is constant.

    Returns the constant-column mask for further use.
    """
    mask = constant_columns(xp, X, eps)
    if bool(xp.all(mask)):
        n, d = X.shape
        raise ValueError(
            f"{measure} is undefined: every feature of {label} is constant over the {n} "
            f"samples ({d} feature{'s' if d != 1 else ''}), so {consequence}. Check the "
            "layer (dead units?) or the inputs."
        )
    return mask


def pow2_factor(xp: Any, X: Array) -> float:
    """The power of two that brings max |X| into [0.5, 1) (1.0 for zero input).

    Multiplying by it is exact (only exponents change), so the result is the same for X and
    for 2^k X, and products of entries can neither overflow nor underflow for any finite
    input. For subnormal maxima the factor stops at 2^1000 (a float must hold it).
    """
    m = to_scalar_float(xp.max(xp.abs(X.detach() if is_torch(X) else X)))
    if m == 0.0 or not math.isfinite(m):
        return 1.0
    return math.ldexp(1.0, min(-math.frexp(m)[1], 1000))


def centred_features(xp: Any, X: Array, eps: float) -> tuple[Array, float, float]:
    """Columns centred, constant ones (relative rule) set to exactly 0, then rescaled.

    Distances between rows are unchanged by centring and by dropping constant features; this
    makes them exact for constant features (whose computed mean does not round exactly) and
    accurate for data far from the origin.

    Returns
    -------
    Z : array (n, d)
        max |Z| in [0.5, 1) (unless every feature is constant: then Z = 0).
    factor : float
        Z = factor · (centred X): distances of Z divided by ``factor`` are those of X.
    offset : float
        max |X| in the units of Z: the entries of Z carry an absolute rounding error of about
        2 eps · offset from the centring.
    """
    mask = constant_columns(xp, X, eps)
    Xc = X - xp.mean(X, axis=0)
    Xc = xp.where(mask[None, :], xp.zeros_like(Xc), Xc)
    mx = to_scalar_float(xp.max(xp.abs(X.detach() if is_torch(X) else X)))
    mc = to_scalar_float(xp.max(xp.abs(Xc.detach() if is_torch(Xc) else Xc)))
    factor = pow2_factor(xp, Xc)
    return Xc * factor, factor, factor * mx if mc > 0 else 0.0


def centring_rounding(d: int, max_sq: float, offset: float) -> float:
    """Rounding bound of squared distances ‖z_i - z_j‖² from the Gram form of centred data.

    ``8 (d + 2) eps max‖z‖²`` for the products plus ``16 sqrt(d) eps offset max‖z‖`` for the
    centring of data far from the origin (``offset`` from :func:`centred_features`).
    """
    eps = 2.220446049250313e-16
    return gram_rounding(d) * max_sq + 16.0 * math.sqrt(d) * eps * offset * math.sqrt(max_sq)


def sq_distances(xp: Any, X: Array) -> Array:
    """Squared Euclidean distances between rows, (n, n), clipped at 0 against roundoff."""
    sq = xp.sum(X * X, axis=1)
    D = sq[:, None] + sq[None, :] - 2.0 * (X @ xp.matrix_transpose(X))
    D = xp.where(D > 0, D, xp.zeros_like(D))
    n = X.shape[0]
    eye = xp.eye(n, dtype=D.dtype, device=device_of(D))
    return D * (1.0 - eye)


def gram_rounding(d: int) -> float:
    """Relative rounding bound used for ties between Gram-form entries: 8 (d + 2) eps.

    Each entry x·y of d-vectors is off by at most about (d + 2) eps ‖x‖‖y‖, so two values
    that are equal in exact arithmetic differ by a few times that.
    """
    return 8.0 * (d + 2) * 2.220446049250313e-16


# ------------------------------------------------------------------ memory guard
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "tib": 2**40,
}


def parse_bytes(text: str) -> int:
    """``"64GiB"``, ``"500 MB"``, ``"1e9"`` -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(
            f"{MEMORY_ENV} must be a number of bytes, optionally with a unit (e.g. 64GiB, "
            f"500MB, 2e9); got {text!r}."
        )
    return int(float(m.group(1)) * _UNITS[unit])


def format_bytes(nbytes: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{int(nbytes)} B"


def _host_available() -> int | None:
    """Available RAM in bytes (Linux MemAvailable, else free pages), or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _cuda_available(device: Any) -> int | None:
    try:
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        # memory held by torch's caching allocator but not in use can be reused too
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    except Exception:  # pragma: no cover - no CUDA, or a driver that cannot tell
        return None


def memory_limit(X: Array) -> tuple[int, str]:
    """Bytes an O(n²) computation on ``X``'s device may use, and where that figure comes from."""
    env = os.environ.get(MEMORY_ENV)
    if env:
        return parse_bytes(env), f"the limit set by {MEMORY_ENV}"
    if is_torch(X) and X.device.type == "cuda":
        free = _cuda_available(X.device)
        if free is not None:
            return free, f"free memory on {X.device}"
    free = _host_available()
    if free is None:
        return FALLBACK_MEMORY, "an assumed limit (the platform does not report free memory)"
    return free, "available memory"


def check_memory(X: Array, *, measure: str, n_bytes: float, what: str, alternative: str) -> None:
    """Raise :class:`InsufficientMemoryError` when ``n_bytes`` will not fit, before allocating."""
    limit, source = memory_limit(X)
    if n_bytes > limit:
        raise InsufficientMemoryError(
            f"{measure} on n={int(X.shape[0])} samples needs about {format_bytes(n_bytes)} "
            f"({what}), more than the {format_bytes(limit)} of {source}. {alternative} "
            f"To allow more, set the environment variable {MEMORY_ENV} (e.g. "
            f"{MEMORY_ENV}=64GiB)."
        )


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


def gram(
    xp: Any, X: Array, kernel: str, threshold: float = 1.0, eps: float = 2.220446049250313e-16
) -> Array:
    """Linear or RBF Gram matrix of the rows of X (features centred for the linear kernel).

    For the RBF kernel the distances come from :func:`centred_features` (constant features,
    relative to the precision ``eps`` of the input's dtype, contribute exactly 0; rescaled by
    a power of two), so the kernel is the same for X, X + c and 2^k X and finite at any scale.
    """
    if kernel == "linear":
        Xc = X - xp.mean(X, axis=0)
        return Xc @ xp.matrix_transpose(Xc)
    D = sq_distances(xp, centred_features(xp, X, eps)[0])
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
    eye = xp.eye(n, dtype=K.dtype, device=device_of(K))
    Kt = K * (1.0 - eye)
    r = xp.sum(Kt, axis=0)
    s = xp.sum(r)
    out = Kt - r[None, :] / (n - 2) - r[:, None] / (n - 2) + s / ((n - 1) * (n - 2))
    return out * (1.0 - eye)


def hsic_unbiased(xp: Any, K: Array, L: Array) -> Array:
    """Unbiased HSIC₁ estimator (Song et al. 2012, eq. 5), for n ≥ 4."""
    n = K.shape[0]
    eye = xp.eye(n, dtype=K.dtype, device=device_of(K))
    Kt = K * (1.0 - eye)
    Lt = L * (1.0 - eye)
    term1 = xp.sum(Kt * Lt)
    sk = xp.sum(Kt, axis=0)
    sl = xp.sum(Lt, axis=0)
    term2 = xp.sum(sk) * xp.sum(sl) / ((n - 1) * (n - 2))
    term3 = 2.0 * xp.sum(sk * sl) / (n - 2)
    return (term1 + term2 - term3) / (n * (n - 3))
