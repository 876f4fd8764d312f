"""Fuzzing every registered measure with hostile input (issue: hardening).

For random shapes, NaN/inf entries, exactly constant and near-constant columns, scales from
1e-300 to 1e300, integer/bool/float16/float32/complex dtypes and torch devices, every call
must either

* return a finite value inside the measure's documented range that equals the value of the
  same data at unit scale (every activation measure is invariant to isotropic scaling;
  ``bures_wasserstein`` is homogeneous of degree ½ in the covariances), or
* raise a documented error (``ValueError`` / ``TypeError`` / ``MemoryError`` raised by
  nncompare itself, i.e. whose innermost frame is nncompare's code).

Anything else — a NaN, an inf, a value outside the range, a value that changes with the
scale, or an exception thrown from inside numpy, scipy or torch — is a failure.
"""

from __future__ import annotations

import math
import os
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nncompare as nc
from nncompare.measures import available

torch = pytest.importorskip("torch")

PACKAGE_DIR = str(Path(nc.__file__).resolve().parent)
ACTIVATION_MEASURES = sorted(k for k, v in available().items() if v.input == "activations")
COVARIANCE_MEASURES = sorted(k for k, v in available().items() if v.input == "covariances")
DOCUMENTED_ERRORS = (ValueError, TypeError, MemoryError)
# More examples for a deeper local run: NNCOMPARE_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py
EXAMPLES = int(os.environ.get("NNCOMPARE_FUZZ_EXAMPLES", "60"))

# Scales each dtype can hold without the data itself being changed (overflow / underflow
# of the input is a different input, not a scale): powers of ten for float64, powers of two
# (exact, so the scaled input is the same numbers) for the low-precision dtypes.
SCALES = {
    "float64": (10.0, -300, 300),
    "float32": (2.0, -100, 100),
    "float16": (2.0, -8, 8),
    "int64": (1.0, 0, 0),
    "bool": (1.0, 0, 0),
}


def _raised_by_nncompare(exc: BaseException) -> bool:
    """True when the innermost frame of the traceback is nncompare's own code."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and str(Path(frames[-1].filename).resolve()).startswith(PACKAGE_DIR)


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """('value', float) or ('error', exception); fails on undocumented exceptions."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn(*args, **kwargs)
            value = float(result)
    except DOCUMENTED_ERRORS as exc:
        if not _raised_by_nncompare(exc):
            tb = "".join(traceback.format_exception(exc))
            pytest.fail(f"exception from inside a dependency, not a documented error:\n{tb}")
        return "error", exc
    except Exception as exc:  # pragma: no cover - the failure path
        tb = "".join(traceback.format_exception(exc))
        pytest.fail(f"undocumented exception type {type(exc).__name__}:\n{tb}")
    return "value", value


@st.composite
def hostile_pair(draw: Any) -> dict[str, Any]:
    n = draw(st.integers(1, 40))
    d1 = draw(st.integers(1, 7))
    d2 = draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d1))
    Y = X[:, :1] @ rng.normal(size=(1, d2)) + rng.normal(size=(n, d2))
    for M in (X, Y):
        for j in range(M.shape[1]):
            kind = draw(st.sampled_from(["normal"] * 6 + ["constant", "near_constant"]))
            if kind == "constant":
                M[:, j] = draw(st.sampled_from([0.0, 0.1, 0.3, -7.25, 1e4]))
            elif kind == "near_constant":
                M[:, j] = 0.3 + 1e-6 * rng.normal(size=n)
    poison = draw(st.sampled_from([None] * 6 + [np.nan, np.inf, -np.inf]))
    if poison is not None:
        target = draw(st.sampled_from(["X", "Y"]))
        M = X if target == "X" else Y
        M[draw(st.integers(0, n - 1)), draw(st.integers(0, M.shape[1] - 1))] = poison
    dtype = draw(st.sampled_from(["float64"] * 4 + ["float32", "float16", "int64", "bool"]))
    base, lo, hi = SCALES[dtype]
    sx = base ** draw(st.integers(lo, hi))
    sy = base ** draw(st.integers(lo, hi))
    backend = draw(st.sampled_from(["numpy", "numpy", "torch"]))
    return {"X": X, "Y": Y, "dtype": dtype, "sx": sx, "sy": sy, "backend": backend}


def _as_dtype(M: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "int64":
        return np.round(np.nan_to_num(M, nan=0.0, posinf=9.0, neginf=-9.0) * 3).astype(np.int64)
    if dtype == "bool":
        return np.nan_to_num(M, nan=0.0) > 0
    return M.astype(dtype)


def _backend(M: np.ndarray, backend: str) -> Any:
    return torch.from_numpy(np.ascontiguousarray(M)) if backend == "torch" else M


def _scaled(M: np.ndarray, s: float, dtype: str) -> np.ndarray:
    if dtype in ("int64", "bool"):
        return _as_dtype(M, dtype)
    with np.errstate(over="ignore", under="ignore"):
        return (M.astype(np.float64) * s).astype(dtype)


def _check_range(name: str, value: float) -> None:
    lo, hi = available()[name].value_range
    tol = 1e-9 * max(1.0, abs(value))
    assert math.isfinite(value), f"{name} returned {value}"
    assert lo - tol <= value <= hi + tol, f"{name} = {value} outside its range [{lo}, {hi}]"


@pytest.mark.parametrize("name", ACTIVATION_MEASURES)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=hostile_pair())
def test_activation_measure_value_or_documented_error(name: str, case: dict[str, Any]) -> None:
    fn = available()[name].function
    dtype, backend = case["dtype"], case["backend"]
    # The unit-scale reference: the same numbers in the same dtype and backend.
    X1 = _backend(_as_dtype(case["X"], dtype), backend)
    Y1 = _backend(_as_dtype(case["Y"], dtype), backend)
    ref_kind, ref = _outcome(fn, X1, Y1)
    Xs = _backend(_scaled(case["X"], case["sx"], dtype), backend)
    Ys = _backend(_scaled(case["Y"], case["sy"], dtype), backend)
    kind, got = _outcome(fn, Xs, Ys)
    if kind == "error":
        return  # a documented error, raised by nncompare itself
    _check_range(name, got)
    assert ref_kind == "value", (
        f"{name} returned {got} at scales ({case['sx']:g}, {case['sy']:g}) in {dtype}/"
        f"{backend} but raised at unit scale: {ref}"
    )
    tol = {"float64": 1e-7, "float32": 2e-3, "float16": 5e-2}.get(dtype, 1e-7)
    assert got == pytest.approx(ref, rel=tol, abs=tol), (
        f"{name}: {got} at scales ({case['sx']:g}, {case['sy']:g}) in {dtype}/{backend}, "
        f"{ref} at unit scale"
    )


@pytest.mark.parametrize("name", ACTIVATION_MEASURES)
def test_complex_input_is_refused_clearly(name: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)) + 1j * rng.normal(size=(30, 4))
    Y = rng.normal(size=(30, 3))
    fn = available()[name].function
    for a, b in ((X, Y), (Y, X), (torch.from_numpy(X), torch.from_numpy(Y))):
        with pytest.raises((TypeError, ValueError), match="complex") as info:
            fn(a, b)
        assert _raised_by_nncompare(info.value)


@pytest.mark.parametrize("name", ACTIVATION_MEASURES)
def test_meta_device_is_refused_clearly(name: str) -> None:
    X = torch.empty(30, 4, device="meta")
    Y = torch.empty(30, 3, device="meta")
    fn = available()[name].function
    with pytest.raises((TypeError, ValueError), match="meta") as info:
        fn(X, Y)
    assert _raised_by_nncompare(info.value)


@st.composite
def hostile_covariances(draw: Any) -> dict[str, Any]:
    d = draw(st.integers(1, 6))
    n = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.normal(size=(n, d))
    B = rng.normal(size=(n + draw(st.integers(0, 5)), d))
    C1, C2 = A.T @ A / n, B.T @ B / len(B)
    poison = draw(st.sampled_from([None] * 6 + [np.nan, np.inf]))
    if poison is not None:
        C1[0, 0] = poison
    dtype = draw(st.sampled_from(["float64", "float64", "float32"]))
    base, lo, hi = SCALES[dtype]
    s = base ** draw(st.integers(lo, hi))
    backend = draw(st.sampled_from(["numpy", "torch"]))
    return {"C1": C1, "C2": C2, "dtype": dtype, "s": s, "backend": backend}


@pytest.mark.parametrize("name", COVARIANCE_MEASURES)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=hostile_covariances())
def test_covariance_measure_value_or_documented_error(name: str, case: dict[str, Any]) -> None:
    fn = available()[name].function
    dtype, s = case["dtype"], case["s"]
    C1 = case["C1"].astype(dtype)
    C2 = case["C2"].astype(dtype)
    ref_kind, ref = _outcome(fn, _backend(C1, case["backend"]), _backend(C2, case["backend"]))
    kind, got = _outcome(
        fn,
        _backend(_scaled(case["C1"], s, dtype), case["backend"]),
        _backend(_scaled(case["C2"], s, dtype), case["backend"]),
    )
    if kind == "error":
        return
    _check_range(name, got)
    assert ref_kind == "value", f"{name} returned {got} at scale {s:g} but raised at unit scale"
    expected = ref * math.sqrt(s) if name == "bures_wasserstein" else ref
    tol = 1e-7 if dtype == "float64" else 2e-3
    # Bures–Wasserstein of nearly equal covariances is a difference of nearly equal
    # numbers: compare on the scale of the covariances' traces.
    atol = tol
    if name == "bures_wasserstein":
        atol = tol * math.sqrt(s * float(np.trace(C1) + np.trace(C2)))
    assert got == pytest.approx(expected, rel=tol, abs=atol)
