"""Input validation with errors that say what was expected, what arrived and how to fix it."""

from __future__ import annotations

import warnings
from typing import Any

from nncompare._array import Array, as_array, harmonize, is_torch, namespace, to_numpy
from nncompare.errors import (  # noqa: F401  (re-exported: their historical home)
    ConstantFeatureWarning,
    NNCompareWarning,
    RankDeficiencyWarning,
)


def check_matrix(X: Any, *, name: str = "X", min_samples: int = 2) -> Array:
    """Validate one (n_samples, n_features) activation matrix.

    Raises
    ------
    ValueError
        Wrong number of dimensions, too few samples, no features, or non-finite entries.
    """
    X = as_array(X, name=name)
    if X.ndim != 2:
        hint = ""
        if X.ndim in (3, 4):
            hint = (
                " For convolutional activations of shape (N, H, W, C) or (N, L, C) pass "
                "conv='mean', 'samples', 'flatten' or 'dft' to choose how space is handled."
            )
        elif X.ndim == 1:
            hint = " For a single feature reshape it with X[:, None]."
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); got an array with "
            f"{X.ndim} dimension(s) and shape {tuple(X.shape)}.{hint}"
        )
    n, d = X.shape
    if d < 1:
        raise ValueError(f"{name} has no features (shape {tuple(X.shape)}); at least 1 is needed.")
    if n < min_samples:
        raise ValueError(
            f"{name} has {n} sample(s); this measure needs at least {min_samples}. "
            "Pass more samples (rows)."
        )
    check_finite(X, name=name)
    return X


def check_finite(X: Array, *, name: str = "X") -> None:
    xp = namespace(X)
    if xp.isdtype(X.dtype, "integral") or xp.isdtype(X.dtype, "bool"):
        return
    # One cheap reduction decides the common case: a sum of finite values is finite unless
    # it overflows, and any NaN/inf makes it non-finite. Only then look element by element.
    total = xp.sum(X.detach() if is_torch(X) else X)
    if bool(xp.isfinite(total)):
        return
    finite = xp.isfinite(X)
    if not bool(xp.all(finite)):
        bad = to_numpy(~finite)
        count = int(bad.sum())
        first = tuple(int(i) for i in next(zip(*bad.nonzero(), strict=False)))
        values = to_numpy(X[first] if not is_torch(X) else X[first].detach())
        raise ValueError(
            f"{name} contains non-finite values (NaN or infinity): {count} entr"
            f"{'y' if count == 1 else 'ies'}, the first at index {first} = {values}. "
            "Similarity measures are undefined for them; remove or impute those samples "
            "(e.g. X[np.isfinite(X).all(axis=1)]) before comparing."
        )


#: A feature is constant when max - min <= CONSTANT_ULPS * eps * max(|min|, |max|):
#: its values agree to a few units of rounding of its own magnitude (eps of its dtype).
CONSTANT_ULPS = 8.0


def dtype_eps(dtype: Any) -> float:
    """Machine epsilon of a floating dtype (numpy or torch); 0 for integer and bool dtypes."""
    import numpy as np

    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        np_dtype = None
    if np_dtype is not None:
        return float(np.finfo(np_dtype).eps) if np_dtype.kind in "fc" else 0.0
    import torch

    if dtype.is_floating_point or dtype.is_complex:
        return float(torch.finfo(dtype).eps)
    return 0.0


def constant_mask(lo: Any, hi: Any, eps: Any) -> Any:
    """The constancy rule on per-feature extremes (host numpy arrays, float64).

    A feature is constant when its range is within ``CONSTANT_ULPS`` units of rounding of its
    magnitude: ``max - min <= CONSTANT_ULPS * eps * max(|min|, |max|)``, with ``eps`` the
    machine epsilon of the data's dtype (0 for integers: exact equality). The rule is
    relative, so a feature of values ~1e-200 that vary by 100% is not constant, while
    ``numpy.full(n, 0.1)`` (whose computed mean is not exactly 0.1) is.
    """
    import numpy as np

    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        spread = hi - lo  # inf when the range overflows: certainly not constant
        mag = np.maximum(np.abs(lo), np.abs(hi))
        return spread <= CONSTANT_ULPS * np.asarray(eps, dtype=np.float64) * mag


def constant_columns(xp: Any, X: Array) -> Array:
    """Boolean array (n_features,): which columns of X are constant (see :func:`constant_mask`).

    Works on numpy and torch (any device; no gradient flows through it); the result lives
    in X's library and device. Use it to ignore or refuse constant features consistently
    with the linear measures.
    """
    import numpy as np

    xp = namespace(X)  # the array-API namespace (also when the bare torch module is passed)
    if X.shape[0] == 0:
        return xp.zeros(X.shape[1], dtype=xp.bool)
    data = X
    if is_torch(X):
        import torch

        data = X.detach()
        if data.dtype == torch.bool:
            data = data.to(torch.uint8)
    lo = to_numpy(xp.min(data, axis=0))
    hi = to_numpy(xp.max(data, axis=0))
    mask = constant_mask(lo, hi, dtype_eps(X.dtype))
    import array_api_compat

    return xp.asarray(np.asarray(mask), device=array_api_compat.device(X))


def check_pair(X: Any, Y: Any, *, min_samples: int = 2) -> tuple[Array, Array]:
    """Validate two activation matrices over the same samples and bring them into one library."""
    X = as_array(X, name="X")
    Y = as_array(Y, name="Y")
    X, Y = harmonize(X, Y)
    if X.ndim >= 1 and Y.ndim >= 1 and X.shape[0] != Y.shape[0]:
        raise ValueError(
            "X and Y must hold the same samples in the same order (rows); got "
            f"X with {X.shape[0]} rows (shape {tuple(X.shape)}) and Y with {Y.shape[0]} rows "
            f"(shape {tuple(Y.shape)}). Pass activations of both networks on the same inputs."
        )
    X = check_matrix(X, name="X", min_samples=min_samples)
    Y = check_matrix(Y, name="Y", min_samples=min_samples)
    return X, Y


def check_option(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}."
        )


def check_fraction(
    name: str, value: Any, *, low_open: bool = True, high_closed: bool = True
) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number in (0, 1]; got {value!r}.") from None
    ok = (v > 0 if low_open else v >= 0) and (v <= 1 if high_closed else v < 1)
    if not ok:
        lo = "(0" if low_open else "[0"
        hi = "1]" if high_closed else "1)"
        raise ValueError(f"{name} must lie in {lo}, {hi}; got {v}.")
    return v


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise TypeError(f"{name} must be a positive integer; got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value}.")
    return int(value)


def warn(message: str, category: type[Warning] = NNCompareWarning, stacklevel: int = 3) -> None:
    warnings.warn(message, category, stacklevel=stacklevel)
