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


def as_array(x: Any, *, name: str = "X", allow_complex: bool = False) -> Array:
    """Return ``x`` as a real numeric array: numpy and torch arrays pass, array-likes become numpy.

    Refused with ``TypeError``: complex arrays (the measures are defined for real
    activations; pass ``x.real`` or ``abs(x)`` explicitly if that is what you mean), masked
    arrays (the mask would be ignored), non-numeric dtypes (strings, objects, datetimes),
    and torch tensors without data (the ``meta`` device) or with a sparse layout.
    numpy subclasses such as ``numpy.matrix`` become plain arrays. ``allow_complex``
    admits complex arrays (the exact DFT path, which works in the complex domain).
    """
    if is_torch(x):
        _check_torch(x, name, allow_complex)
        return x
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy masked array; nncompare would ignore its mask. Drop the masked "
            f"samples (e.g. {name}[~{name}.mask.any(axis=1)].data) or fill them "
            f"({name}.filled(value)) first."
        )
    if isinstance(x, np.ndarray):
        arr = x if type(x) is np.ndarray else np.asarray(x)
    elif hasattr(x, "__array_namespace__"):
        if not allow_complex:
            _check_dtype_generic(x, name)
        return x
    else:
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
    if arr.dtype.kind == "c" and not allow_complex:
        raise TypeError(_complex_message(name, str(arr.dtype)))
    if arr.dtype.kind not in ("biufc" if allow_complex else "biuf"):
        raise TypeError(
            f"{name} must be a real numeric array (bool, integer or float); got dtype "
            f"{arr.dtype}. Convert it with numpy.asarray(..., dtype=float)."
        )
    return arr


def _complex_message(name: str, dtype: str) -> str:
    return (
        f"{name} has the complex dtype {dtype}; nncompare compares real activations. Pass "
        f"{name}.real, abs({name}) or the stacked real and imaginary parts "
        "(e.g. numpy.concatenate([X.real, X.imag], axis=1)), whichever your analysis means."
    )


def _check_torch(x: Any, name: str, allow_complex: bool = False) -> None:
    if x.device.type == "meta":
        raise TypeError(
            f"{name} is a torch tensor on the 'meta' device, which has a shape but no values; "
            "nothing can be computed from it. Run the model on a real device (cpu, cuda, mps) "
            "to get activations."
        )
    import torch

    if x.layout != torch.strided:
        raise TypeError(
            f"{name} is a torch tensor with layout {x.layout}; pass a dense tensor "
            f"({name}.to_dense())."
        )
    if x.is_complex():
        if allow_complex:
            return
        raise TypeError(_complex_message(name, str(x.dtype)))
    if x.dtype.is_floating_point or x.dtype == torch.bool:
        return
    if x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        return
    raise TypeError(
        f"{name} must be a real numeric tensor (bool, integer or float); got dtype {x.dtype}. "
        f"Convert it with {name}.to(torch.float32)."
    )


def _check_dtype_generic(x: Any, name: str) -> None:
    try:
        xp = x.__array_namespace__()
        complex_ = xp.isdtype(x.dtype, "complex floating")
    except Exception:  # pragma: no cover - libraries without isdtype
        return
    if complex_:
        raise TypeError(_complex_message(name, str(x.dtype)))


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
        t = x.detach().cpu()
        try:
            return t.numpy()
        except TypeError:  # dtypes numpy lacks (bfloat16, float8): widen, exactly
            import torch

            return t.to(dtype=torch.float64).numpy()
    return np.asarray(x)


def eps(xp: Any, dtype: Any) -> float:
    return float(xp.finfo(dtype).eps)
