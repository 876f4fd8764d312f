"""Array-library plumbing shared by every measure.

Measures are written once against the Python array API standard through
``array-api-compat``: numpy in, numpy out; torch in (CPU or GPU, with autograd)
stays torch. This module holds the few helpers that make that convenient:
finding the namespace of the inputs, casting to the working precision, and a
handful of operations whose spelling differs between libraries.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

Array = Any  # an array of any array-API library (numpy.ndarray, torch.Tensor, ...)


def is_torch(x: Any) -> bool:
    """True when ``x`` is a torch tensor (without importing torch)."""
    return array_api_compat.is_torch_array(x)


def is_numpy(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def as_array(x: Any, *, name: str = "X") -> Array:
    """Return ``x`` as an array: numpy and torch arrays pass, array-likes become numpy."""
    if is_torch(x) or isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__array_namespace__"):
        return x
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(
            f"{name} must be an array (numpy.ndarray or torch.Tensor) of shape "
            f"(n_samples, n_features); got an object of type {type(x).__name__}."
        ) from exc
    if arr.dtype == object:
        raise TypeError(
            f"{name} must be a numeric array of shape (n_samples, n_features); got an object "
            "array (ragged or non-numeric input). Convert it with numpy.asarray(..., dtype=float)."
        )
    return arr


def namespace(*arrays: Array) -> Any:
    """The array-API namespace shared by ``arrays`` (numpy or torch)."""
    return array_api_compat.array_namespace(*arrays)


def harmonize(X: Array, Y: Array) -> tuple[Array, Array]:
    """Bring X and Y into one library: when one is a torch tensor, the other follows it."""
    if is_torch(X) and not is_torch(Y):
        import torch

        Y = torch.as_tensor(np.asarray(Y), device=X.device)
    elif is_torch(Y) and not is_torch(X):
        import torch

        X = torch.as_tensor(np.asarray(X), device=Y.device)
    return X, Y


def float_dtype(xp: Any, dtype: str | None) -> Any:
    """Resolve a working precision name (``"float64"``/``"float32"``) in namespace ``xp``."""
    if dtype is None or dtype == "float64":
        return xp.float64
    if dtype == "float32":
        return xp.float32
    raise ValueError(f"dtype must be 'float64' or 'float32'; got {dtype!r}.")


def complex_dtype(xp: Any, real: Any) -> Any:
    return xp.complex128 if real == xp.float64 else xp.complex64


def to_float(xp: Any, x: Array, dtype: Any) -> Array:
    if x.dtype == dtype:
        return x
    if xp.isdtype(x.dtype, "complex floating"):
        return x
    return xp.astype(x, dtype)


def device_of(x: Array) -> Any:
    return array_api_compat.device(x)


def matmul_th(xp: Any, a: Array, b: Array) -> Array:
    """``a^H b`` for real or complex stacks of matrices (conjugate transpose of ``a``)."""
    at = xp.matrix_transpose(a)
    if xp.isdtype(a.dtype, "complex floating"):
        at = xp.conj(at)
    return at @ b


def conj_t(xp: Any, a: Array) -> Array:
    at = xp.matrix_transpose(a)
    if xp.isdtype(a.dtype, "complex floating"):
        at = xp.conj(at)
    return at


def real(xp: Any, a: Array) -> Array:
    if xp.isdtype(a.dtype, "complex floating"):
        return xp.real(a)
    return a


def to_scalar_float(x: Array) -> float:
    if is_torch(x):
        return float(x.detach().cpu())
    return float(x)


def to_numpy(x: Array) -> np.ndarray:
    """A numpy copy (or view) of any array, detached from autograd."""
    if is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def eps(xp: Any, dtype: Any) -> float:
    return float(xp.finfo(dtype).eps)
