"""Input validation with errors that say what was expected, what arrived and how to fix it."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nncompare._array import Array, as_array, harmonize, is_torch, namespace, to_numpy
from nncompare.errors import (  # noqa: F401  (re-exported: their historical home)
    ConstantFeatureWarning,
    NNCompareError,
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
    # (numpy would warn about that overflow: it only sends the check to the second step)
    import numpy as np

    with np.errstate(over="ignore", invalid="ignore"):
        total = xp.sum(X.detach() if is_torch(X) else X)
    if bool(xp.isfinite(total)):
        return
    finite = xp.isfinite(X)
    if not bool(xp.all(finite)):
        bad = to_numpy(~finite)
        count = int(bad.sum())
        first = tuple(int(i) for i in next(zip(*bad.nonzero(), strict=False)))
        values = to_numpy(X[first] if not is_torch(X) else X[first].detach())
        rows = (
            "np.isfinite(X).all(axis=1)"
            if X.ndim == 2
            else ("np.isfinite(X).reshape(len(X), -1).all(axis=1)")
        )
        raise ValueError(
            f"{name} contains non-finite values (NaN or infinity): {count} entr"
            f"{'y' if count == 1 else 'ies'}, the first at index {first} = {values}. "
            "Similarity measures are undefined for them; remove or impute those samples "
            f"in every input before comparing (e.g. keep = {rows}; X, Y = X[keep], Y[keep])."
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


def warn(message: str, category: type[Warning] = NNCompareWarning) -> None:
    """Warn, attributed to the first frame outside the nncompare package: the user's own
    call, however many front doors lie between (Python 3.12's ``skip_file_prefixes``, for
    3.11)."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)


# ------------------------------------------------------------------ declarative parameters
# A small take on scikit-learn's idea (sklearn.utils._param_validation): each option of a
# function is declared once, next to the function, as a constraint (or a list of alternative
# constraints); a decorator checks the keyword arguments of every call against them and the
# error message is generated from the declaration. The tests generate invalid values from
# the same declarations (tests/test_param_constraints.py).


class InvalidParameterError(NNCompareError, ValueError, TypeError):
    """An option of an nncompare function has a value outside its declared constraints.

    Both a ``ValueError`` and a ``TypeError`` (a wrong type is also a wrong value), so code
    catching either keeps working. ``function``, ``parameter`` and ``value`` say which call,
    which option and what arrived; ``reason`` is the message without the function's name.
    """

    def __init__(self, function: str, parameter: str, value: Any, reason: str) -> None:
        super().__init__(f"{function}: {reason}")
        self.function = function
        self.parameter = parameter
        self.value = value
        self.reason = reason


def _is_bool(value: Any) -> bool:
    kind = type(value)
    return kind is bool or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


def _is_real(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Real) and not _is_bool(value)


def _is_integral(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _num(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


class Constraint:
    """One allowed kind of value of an option; alternatives are given as a list.

    Subclasses define :meth:`accepts` (fast: it runs on every call that passes the option),
    :attr:`phrase` (a verb phrase completing "<name> must ...", e.g. "lie in (0, 1]"),
    :meth:`example` (a valid value) and :meth:`invalid` (values that violate the constraint,
    used by the generated tests).
    """

    phrase: str = "be valid"

    def accepts(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def example(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def invalid(self) -> list[Any]:
        """Values this constraint refuses (not necessarily refused by its alternatives)."""
        return [object()]

    def type_matches(self, value: Any) -> bool:
        """Whether ``value`` is of the kind this constraint is about (for the message)."""
        return self.accepts(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: must {self.phrase}>"


class Interval(Constraint):
    """Numbers between two bounds: ``Interval(float, 0, 1, closed="right")`` is (0, 1].

    Parameters
    ----------
    kind : {int, float}
        ``int``: integers (Python or numpy; not bool, not 2.0). ``float``: any finite real
        number (int, float, numpy scalars; not bool, not NaN or infinity).
    low, high : number or None
        The bounds; None for no bound on that side.
    closed : {"both", "left", "right", "neither"}, default "both"
        Which bounds belong to the interval.
    """

    def __init__(
        self, kind: type, low: float | None, high: float | None, *, closed: str = "both"
    ) -> None:
        if kind not in (int, float):
            raise ValueError(f"Interval kind must be int or float; got {kind!r}.")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(
                "Interval closed must be one of 'both', 'left', 'right', 'neither'; "
                f"got {closed!r}."
            )
        if low is not None and high is not None and not low < high:
            raise ValueError(f"Interval needs low < high; got low={low!r}, high={high!r}.")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed
        self._low_in = closed in ("both", "left")
        self._high_in = closed in ("both", "right")
        self._check_type = _is_integral if kind is int else _is_real
        self.phrase = self._phrase()

    def _phrase(self) -> str:
        lo, hi = self.low, self.high
        if self.kind is int:
            if hi is None and lo is not None:
                first = lo if self._low_in else lo + 1
                if first == 1:
                    return "be a positive integer"
                return f"be an integer >= {first}"
            if lo is None and hi is None:
                return "be an integer"
            noun = "an integer"
        else:
            if hi is None and lo == 0:
                return (
                    "be a finite positive number" if not self._low_in else "be a finite number >= 0"
                )
            if lo is None and hi is None:
                return "be a finite number"
            noun = None
        left = "(-inf" if lo is None else ("[" if self._low_in else "(") + _num(lo)
        right = "inf)" if hi is None else _num(hi) + ("]" if self._high_in else ")")
        span = f"{left}, {right}"
        return f"be {noun} in {span}" if noun else f"lie in {span}"

    def type_matches(self, value: Any) -> bool:
        return self._check_type(value)

    def accepts(self, value: Any) -> bool:
        kind = type(value)
        if not (kind is float or kind is int or self._check_type(value)):
            return False
        if kind is float and self.kind is int:
            return False
        if self.kind is float and not math.isfinite(value):
            return False
        lo, hi = self.low, self.high
        if lo is not None and not (value >= lo if self._low_in else value > lo):
            return False
        return hi is None or (value <= hi if self._high_in else value < hi)

    def example(self) -> Any:
        lo, hi = self.low, self.high
        if lo is None and hi is None:
            return self.kind(0) if self.kind is int else 0.0
        if hi is None:
            return self.kind(lo if self._low_in else lo + 1)
        if lo is None:
            return self.kind(hi if self._high_in else hi - 1)
        if self.kind is int:
            return lo if self._low_in else lo + 1
        return hi if self._high_in else (lo if self._low_in else (lo + hi) / 2)

    def invalid(self) -> list[Any]:
        out: list[Any] = ["0.5", True]
        lo, hi = self.low, self.high
        if self.kind is int:
            out.append(float(self.example()) + 0.5)
            if lo is not None:
                out.append(int(lo) - 1 if self._low_in else int(lo))
            if hi is not None:
                out.append(int(hi) + 1 if self._high_in else int(hi))
        else:
            out += [math.nan, math.inf, -math.inf]
            if lo is not None:
                out.append(float(lo) if not self._low_in else float(lo) - 0.5)
            if hi is not None:
                out.append(float(hi) if not self._high_in else float(hi) + 0.5)
        return out


class Options(Constraint):
    """One of a fixed set of values: ``Options("paper", "google")``.

    Strings match by equality (``numpy.str_`` too); other values (``True``/``False``, numbers)
    must also have the same type, so ``1`` is not ``True``.
    """

    def __init__(self, *values: Any) -> None:
        if not values:
            raise ValueError("Options needs at least one allowed value.")
        self.values = tuple(values)
        self._set = frozenset(values)
        self._types = frozenset(type(v) for v in values)
        self.phrase = "be one of " + ", ".join(repr(v) for v in values)

    def accepts(self, value: Any) -> bool:
        try:
            if value not in self._set:
                return False
        except TypeError:  # unhashable
            return False
        return isinstance(value, str) or type(value) in self._types

    def type_matches(self, value: Any) -> bool:
        return any(isinstance(value, t) for t in self._types)

    def example(self) -> Any:
        return self.values[0]

    def invalid(self) -> list[Any]:
        out: list[Any] = [1.5]
        if all(isinstance(v, str) for v in self.values):
            out += ["not-an-option", str(self.values[0]).upper() + "X"]
        return out


class Boolean(Constraint):
    """True or False (Python or numpy bools; not 0/1)."""

    phrase = "be one of True, False"

    def accepts(self, value: Any) -> bool:
        return _is_bool(value)

    def example(self) -> Any:
        return False

    def invalid(self) -> list[Any]:
        return [2, 1, "yes", None]


class Pair(Constraint):
    """A tuple or list of two values, each satisfying ``item``: ``dims=(dx, dy)``.

    Parameters
    ----------
    item : Constraint
    names : (str, str)
        What the two entries are, for the message ("a pair (dims_x, dims_y) of ...").
    """

    def __init__(self, item: Constraint, names: tuple[str, str] = ("x", "y")) -> None:
        self.item = item
        self.names = names
        what = item.phrase.removeprefix("be ").removeprefix("a ").removeprefix("an ")
        plural = what.replace("integer", "integers").replace("number", "numbers")
        self.phrase = f"be a pair ({names[0]}, {names[1]}) of {plural}"

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, tuple | list)
            and len(value) == 2
            and self.item.accepts(value[0])
            and self.item.accepts(value[1])
        )

    def type_matches(self, value: Any) -> bool:
        return isinstance(value, tuple | list)

    def example(self) -> Any:
        v = self.item.example()
        return (v, v)

    def invalid(self) -> list[Any]:
        v = self.item.example()
        bad = self.item.invalid()
        return [(v,), (v, v, v), (v, bad[-1]), [bad[-1], v]]


class Satisfies(Constraint):
    """Escape hatch: any value for which ``predicate(value)`` is true.

    Parameters
    ----------
    predicate : callable
        Returns True for valid values; exceptions it raises count as "not valid".
    phrase : str
        Completes "<name> must ...", e.g. "be 'NHWC' (channels last) or 'NCHW' (channels first)".
    example : object
        One valid value.
    invalid : sequence, optional
        Values the predicate refuses (for the generated tests).
    """

    def __init__(
        self,
        predicate: Callable[[Any], bool],
        phrase: str,
        *,
        example: Any,
        invalid: Sequence[Any] = (),
    ) -> None:
        self.predicate = predicate
        self.phrase = phrase
        self._example = example
        self._invalid = list(invalid)

    def type_matches(self, value: Any) -> bool:
        return True

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.predicate(value))
        except Exception:  # a predicate that fails refuses the value
            return False

    def example(self) -> Any:
        return self._example

    def invalid(self) -> list[Any]:
        return list(self._invalid) or [object()]


class ArrayLike(Constraint):
    """Anything with a shape or an ``__array__`` (numpy, torch, LayoutArray), or a list."""

    phrase = "be an array (numpy, torch or a nested list)"

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, list | tuple)
            or hasattr(value, "shape")
            or hasattr(value, "__array__")
        )

    def example(self) -> Any:
        return [0.0]

    def invalid(self) -> list[Any]:
        return ["text", 1.5]


class NoneOK(Constraint):
    """The value None (written ``None`` among the alternatives)."""

    phrase = "be None"

    def accepts(self, value: Any) -> bool:
        return value is None

    def example(self) -> Any:
        return None

    def invalid(self) -> list[Any]:
        return [object()]


class Alternatives:
    """The compiled constraints of one option: a value is valid when one alternative accepts
    it. Built by :func:`constrain` from a constraint or a list of them (``None`` allowed)."""

    def __init__(self, spec: Any) -> None:
        items = list(spec) if isinstance(spec, list | tuple) else [spec]
        if not items:
            raise ValueError("an option needs at least one constraint.")
        self.alternatives: tuple[Constraint, ...] = tuple(
            NoneOK() if c is None else c for c in items
        )
        for c in self.alternatives:
            if not isinstance(c, Constraint):
                raise TypeError(
                    "constraints must be Interval, Options, Boolean, Pair, Satisfies, ArrayLike "
                    f"or None; got {c!r}."
                )
        self.allows_none = any(isinstance(c, NoneOK) for c in self.alternatives)
        self._checks = tuple(c.accepts for c in self.alternatives)
        self.phrase = self._phrase()

    def _phrase(self) -> str:
        rest = [c for c in self.alternatives if not isinstance(c, NoneOK)]
        parts = [c.phrase for c in rest]
        if self.allows_none:
            if len(parts) == 1 and isinstance(rest[0], Options):
                return parts[0] + " or None"
            parts.append("be None")
        if len(parts) == 1:
            return parts[0]
        shared = "be " if all(p.startswith("be ") for p in parts) else ""
        tail = [p.removeprefix("be ") if shared else p for p in parts[1:]]
        if len(parts) == 2:
            comma = "," if " or " in parts[0] else ""
            return f"{parts[0]}{comma} or {tail[0]}"
        return f"{parts[0]}, {', '.join(tail[:-1])}, or {tail[-1]}"

    def accepts(self, value: Any) -> bool:
        for check in self._checks:
            if check(value):
                return True
        return False

    def example(self) -> Any:
        return self.alternatives[0].example()

    def invalid(self) -> list[Any]:
        """Values refused by every alternative (generated from the constraints)."""
        seen: list[Any] = []
        for c in self.alternatives:
            for v in c.invalid():
                if not self.accepts(v) and not any(v is s for s in seen):
                    seen.append(v)
        return seen

    def __repr__(self) -> str:
        return f"<constraints: must {self.phrase}>"


_NO_DEFAULT: Any = object()


def _shown(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return text


def _reason(name: str, value: Any, spec: Alternatives, default: Any) -> str:
    got = _shown(value)
    if not any(c.type_matches(value) for c in spec.alternatives):
        got += f" (of type {type(value).__name__})"
    if default is not _NO_DEFAULT and spec.accepts(default) and default is not None:
        fix = f"Pass e.g. {name}={default!r} (the default)."
    else:
        fix = f"Pass e.g. {name}={spec.example()!r}."
    return f"{name} must {spec.phrase}; got {got}. {fix}"


def constraints_of(function: Any) -> dict[str, Alternatives]:
    """The declared constraints of a function decorated with :func:`constrain` (else {})."""
    return dict(getattr(function, "__nncompare_constraints__", {}))


def check_parameters(function: Any, options: Mapping[str, Any], *, name: str | None = None) -> None:
    """Check ``options`` against ``function``'s declared constraints, as a call would.

    Options without a declared constraint are left alone (the caller checks the names).

    Raises
    ------
    InvalidParameterError
        The first option outside its constraints, with the same message as the call.
    """
    constraints = getattr(function, "__nncompare_constraints__", None)
    if not constraints:
        return
    defaults = getattr(function, "__nncompare_defaults__", {})
    label = name or getattr(function, "__name__", "this function")
    for key, value in options.items():
        spec = constraints.get(key)
        if spec is not None and not spec.accepts(value):
            reason = _reason(key, value, spec, defaults.get(key, _NO_DEFAULT))
            raise InvalidParameterError(label, key, value, reason)


def constrain(**constraints: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: check the named options of every call against declared constraints.

    ``@constrain(variance=[Interval(float, 0, 1, closed="right"), None])`` makes
    ``f(variance=1.5)`` raise :class:`InvalidParameterError` (a ``ValueError`` and a
    ``TypeError``) saying "f: variance must lie in (0, 1] or be None; got 1.5. Pass e.g.
    variance=0.99 (the default)." Each option takes a :class:`Constraint`, ``None``, or a
    list of alternatives. The checks run on the arguments actually passed, after a
    signature bound once at decoration; a value that *is* the default is not checked again.
    The function keeps its name, signature, docstring and ``__wrapped__`` (it stays
    picklable by name); its constraints are ``__nncompare_constraints__``.

    Raises
    ------
    TypeError
        At decoration: a constrained name that is not a parameter of the function, or a
        default value outside its own constraints.
    """
    compiled = {name: Alternatives(spec) for name, spec in constraints.items()}

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        import functools
        import inspect

        params = inspect.signature(function).parameters
        fname = function.__name__
        unknown = [n for n in compiled if n not in params]
        if unknown:
            raise TypeError(
                f"constrain({', '.join(unknown)}=...) on {fname}: expected parameters of "
                f"{fname}{inspect.signature(function)}; check the spelling."
            )
        defaults: dict[str, Any] = {}
        for n, spec in compiled.items():
            d = params[n].default
            if d is inspect.Parameter.empty:
                continue
            if not spec.accepts(d):
                raise TypeError(
                    f"constrain on {fname}: the default {n}={d!r} does not satisfy its own "
                    f"constraint (must {spec.phrase}); fix the declaration."
                )
            defaults[n] = d
        positional = [
            p.name
            for p in params.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        by_position = tuple((i, n, compiled[n]) for i, n in enumerate(positional) if n in compiled)
        table = {n: (spec.accepts, defaults.get(n, _NO_DEFAULT)) for n, spec in compiled.items()}

        def fail(key: str, value: Any) -> None:
            spec = compiled[key]
            reason = _reason(key, value, spec, defaults.get(key, _NO_DEFAULT))
            raise InvalidParameterError(fname, key, value, reason)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if kwargs:
                for key, value in kwargs.items():
                    entry = table.get(key)
                    if entry is not None and value is not entry[1] and not entry[0](value):
                        fail(key, value)
            if by_position:
                for i, key, spec in by_position:
                    if i < len(args) and not spec.accepts(args[i]):
                        fail(key, args[i])
            return function(*args, **kwargs)

        wrapper.__nncompare_constraints__ = dict(compiled)  # type: ignore[attr-defined]
        wrapper.__nncompare_defaults__ = dict(defaults)  # type: ignore[attr-defined]
        return wrapper

    return decorate
