"""Representation alignment (Imani, Hu & White, eq. 2), Propositions 1 and 2, streaming.

Everything here works on one representation matrix Φ (n × d) and the label vectors of one
task. The preparation, shared by every function, is :func:`prepare`:

* **rows** (``normalize``): ``"rows"`` (default) scales every row to unit length, as the
  paper's experiments do ("normalized to length one"); all-zero rows stay zero. ``"max"``
  divides Φ by its largest row norm c = maxᵢ ‖xᵢ‖, the smallest single scale with
  ‖xᵢ‖ ≤ 1 (it keeps the rows' relative lengths; streamed, ΦᵀΦ and Φᵀy are accumulated
  unscaled and divided by c² and c at the end, which is exact). ``None`` uses Φ as it is.
* **labels** (``kind``): ``"classes"`` turns two classes into one ±1 vector (+1 for the
  larger class value in sorted order) and k ≥ 3 classes into k one-vs-rest ±1 vectors,
  reported per class and summed; ``"regression"`` centres each target column to mean zero.
  ``"auto"`` (default): bool, integer and string labels are classes, floating labels are
  regression targets.

Alignment(Φ, y, τ) = Σ_{i: σᵢ ≥ τ, σᵢ > 0} (uᵢᵀy)² (eq. 2) sums over the positive singular
values of Φ, so that at τ = 0 it equals ‖P_Φ y‖², the squared norm of the projection of y
onto Φ's column space. (The paper's U is n × n with σ_{d+1:n} = 0; counting those zero
singular values at τ = 0 would add the least-squares residual ‖y − P_Φ y‖², reported
separately as ``residual``.)

References
----------
Imani, E., Hu, W. & White, M. (2022). Representation alignment in neural networks.
Transactions on Machine Learning Research.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nncompare._array import (
    Array,
    as_array,
    device_of,
    harmonize,
    is_torch,
    namespace,
    to_numpy,
)
from nncompare._validation import check_finite, check_option, warn
from nncompare.errors import NNCompareWarning, RankDeficiencyWarning
from nncompare.stats import JointMoments

__all__ = [
    "KINDS",
    "NORMALIZATIONS",
    "AlignmentCurve",
    "IterationsBound",
    "PredictedLoss",
    "SmallSampleWarning",
    "StreamingAlignment",
    "alignment",
    "curve",
    "iterations_bound",
    "predicted_loss",
    "prepare",
]

KINDS = ("auto", "classes", "regression")
NORMALIZATIONS = ("rows", "max", None)
_EPS = float(np.finfo(np.float64).eps)


class SmallSampleWarning(NNCompareWarning):
    """Φ has fewer samples than features (n < d); the paper assumes n ≥ d."""


# ----------------------------------------------------------------------------- labels
@dataclass(frozen=True)
class _Labels:
    kind: str  # "classes" or "regression"
    names: tuple[str, ...]
    classes: tuple[Any, ...] | None  # class values (classes only)


def _label_values(y: Any, n: int | None, *, name: str = "y") -> tuple[Any, bool]:
    """y as numpy (or torch for float tensors), with its shape checked; True when categorical."""
    if is_torch(y):
        if y.ndim not in (1, 2):
            raise ValueError(
                f"{name} must be a vector of labels of shape (n_samples,) or a matrix of "
                f"regression targets (n_samples, n_targets); got shape {tuple(y.shape)}."
            )
        categorical = not y.dtype.is_floating_point
        vals: Any = y
    else:
        arr = np.asarray(y)
        if arr.ndim not in (1, 2):
            raise ValueError(
                f"{name} must be a vector of labels of shape (n_samples,) or a matrix of "
                f"regression targets (n_samples, n_targets); got shape {arr.shape}."
            )
        categorical = arr.dtype.kind in "biuUSO"
        vals = arr
    if n is not None and int(vals.shape[0]) != n:
        raise ValueError(
            f"{name} has {int(vals.shape[0])} labels but Phi has {n} rows; pass one label per "
            "sample (row of Phi), in the same order."
        )
    if not categorical:
        if is_torch(vals):
            ok = bool(vals.isfinite().all())
        else:
            ok = bool(np.isfinite(vals.astype(np.float64)).all())
        if not ok:
            raise ValueError(
                f"{name} contains NaN or infinite labels; alignment is undefined for them. "
                f"Drop those samples from Phi and {name} first."
            )
    return vals, categorical


def _resolve_kind(kind: str, categorical: bool, y: Any) -> str:
    check_option("kind", kind, KINDS)
    if kind == "auto":
        kind = "classes" if categorical else "regression"
    if kind == "classes" and y.ndim != 1:
        raise ValueError(
            f"class labels must be a vector of shape (n_samples,); got shape {tuple(y.shape)}. "
            "Pass kind='regression' (and float targets) for a matrix of regression targets."
        )
    return kind


def _classes_of(values: np.ndarray, name: str = "y") -> tuple[Any, ...]:
    classes = tuple(np.unique(values).tolist())
    if len(classes) < 2:
        raise ValueError(
            f"{name} holds one class only ({classes[0]!r} for every sample); alignment with a "
            "constant label vector is not defined. Pass labels of at least two classes."
            if classes
            else f"{name} is empty; pass one label per sample."
        )
    return classes


def _class_names(classes: Sequence[Any]) -> tuple[str, ...]:
    if len(classes) == 2:
        return (f"{classes[1]} vs {classes[0]}",)
    return tuple(str(c) for c in classes)


def _label_matrix(y: Any, n: int, kind: str, xp: Any, dev: Any) -> tuple[Array, _Labels]:
    """The (n, c) float64 label vectors of ``y`` (module docstring) in namespace ``xp``."""
    vals, categorical = _label_values(y, n)
    kind = _resolve_kind(kind, categorical, vals)
    if kind == "classes":
        v = to_numpy(vals).reshape(-1)
        classes = _classes_of(v)
        idx = np.searchsorted(np.asarray(classes, dtype=v.dtype), v)
        if len(classes) == 2:
            mat = np.where(idx == 1, 1.0, -1.0)[:, None]
        else:
            mat = np.where(idx[:, None] == np.arange(len(classes))[None, :], 1.0, -1.0)
        labels = _Labels("classes", _class_names(classes), classes)
        return xp.asarray(mat, device=dev), labels
    if is_torch(vals) and xp is namespace(vals):
        Y = vals.to(dtype=xp.float64, device=dev)
    else:
        Y = xp.asarray(np.asarray(to_numpy(vals), dtype=np.float64), device=dev)
    if Y.ndim == 1:
        Y = Y[:, None]
    Y = Y - xp.mean(Y, axis=0)[None, :]
    q = int(Y.shape[1])
    spread = to_numpy(xp.max(xp.abs(Y), axis=0)) if n else np.zeros(q)
    if n and not np.all(spread > 0):
        raise ValueError(
            "y is constant (the same target value for every sample); after centring the label "
            "vector is zero and alignment is not defined. Pass targets that vary."
        )
    names = ("y",) if q == 1 else tuple(f"y{j}" for j in range(q))
    return Y, _Labels("regression", names, None)


# ----------------------------------------------------------------------------- Phi
def _check_phi(Phi: Any) -> Array:
    Phi = as_array(Phi, name="Phi")
    if Phi.ndim != 2:
        raise ValueError(
            "Phi must be a 2-D representation matrix of shape (n_samples, n_features); got "
            f"shape {tuple(Phi.shape)}. Flatten or average convolutional activations first "
            "(e.g. nc.reshape_conv)."
        )
    if Phi.shape[0] < 1 or Phi.shape[1] < 1:
        raise ValueError(
            f"Phi must have at least one sample and one feature; got shape {tuple(Phi.shape)}."
        )
    check_finite(Phi, name="Phi")
    return Phi


def _row_norms(xp: Any, Phi: Array) -> Array:
    return xp.sqrt(xp.sum(Phi * Phi, axis=1))


def _normalize_rows(xp: Any, Phi: Array) -> Array:
    norms = _row_norms(xp, Phi)
    safe = xp.where(norms > 0, norms, xp.ones_like(norms))
    return Phi / safe[:, None]


def _check_normalize(normalize: Any) -> str | None:
    if normalize == "none":
        normalize = None
    check_option("normalize", normalize, NORMALIZATIONS)
    return normalize


def prepare(
    Phi: Any, y: Any, *, normalize: str | None = "rows", kind: str = "auto"
) -> tuple[Array, Array, tuple[str, ...]]:
    """Φ and the label vectors exactly as every function of :mod:`nncompare.alignment` uses them.

    Parameters
    ----------
    Phi : array (n_samples, n_features), numpy or torch
    y : array (n_samples,) of labels or (n_samples, n_targets) of regression targets
    normalize : {"rows", "max", None}, default "rows"
        ``"rows"``: every row scaled to unit length (zero rows stay zero); ``"max"``: Φ
        divided by its largest row norm; None: unchanged.
    kind : {"auto", "classes", "regression"}, default "auto"
        How labels become label vectors (see the module docstring).

    Returns
    -------
    Phi : array (n, d), float64, in Φ's library
    Y : array (n, c), float64: the c label vectors (±1 or centred targets), one per column
    names : tuple of str
        One name per label vector (the class, "a vs b" for two classes, "y" for one target).
    """
    Phi, Y, labels = _prepare(Phi, y, normalize=normalize, kind=kind)
    return Phi, Y, labels.names


def _prepare(Phi: Any, y: Any, *, normalize: str | None, kind: str) -> tuple[Array, Array, _Labels]:
    Phi = _check_phi(Phi)
    normalize = _check_normalize(normalize)
    xp = namespace(Phi)
    Phi = xp.astype(Phi, xp.float64) if Phi.dtype != xp.float64 else Phi
    n = int(Phi.shape[0])
    if is_torch(Phi) or not is_torch(y):
        Y, labels = _label_matrix(y, n, kind, xp, device_of(Phi))
    else:  # torch labels with numpy Phi: the labels follow Phi
        Y, labels = _label_matrix(to_numpy(y), n, kind, xp, device_of(Phi))
    if normalize == "rows":
        Phi = _normalize_rows(xp, Phi)
    elif normalize == "max":
        c = xp.max(_row_norms(xp, Phi))
        if not bool(c > 0):
            raise ValueError(
                "Phi is all zeros; its singular values are all zero and alignment is not defined."
            )
        Phi = Phi / c
    return Phi, Y, labels


# ----------------------------------------------------------------------------- results
def _check_taus(taus: Any) -> np.ndarray:
    arr = np.asarray(to_numpy(taus) if is_torch(taus) else taus, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError(f"tau must be a number or a 1-D sequence; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"tau must be finite; got {taus!r}.")
    if np.any(arr < 0):
        raise ValueError(
            f"tau is a threshold on singular values and must be >= 0; got {float(arr.min())}. "
            "Alignment(Phi, y, tau) sums (u_i^T y)^2 over the singular values sigma_i >= tau."
        )
    return arr


@dataclass
class AlignmentCurve:
    """Singular values of Φ, the label vectors' squared projections and the alignment curve.

    Attributes
    ----------
    singular_values : array (r,)
        The positive singular values σ₁ ≥ … ≥ σ_r of the prepared Φ (r = ``rank``).
    projections : array (r, c)
        (uᵢᵀy)² for each singular direction (row) and label vector (column).
    taus : array (m,)
        The thresholds at which ``alignment`` is given.
    alignment : array (m, c)
        Alignment(Φ, y_k, τ) = Σ_{σᵢ ≥ τ} (uᵢᵀy_k)² per threshold and label vector.
    total : array (m,)
        ``alignment`` summed over the label vectors.
    labels : tuple of str
        Name of each label vector.
    kind : {"classes", "regression"}
    label_norms : array (c,)
        ‖y_k‖² of each label vector.
    residual : array (c,)
        ‖y_k − P_Φ y_k‖², the part of each label vector outside Φ's column space.
    rank, n_samples, n_features : int
    normalize : {"rows", "max", None}
    method : {"svd", "streamed"}
        Thin SVD of Φ in memory, or the eigen-decomposition of the accumulated ΦᵀΦ.

    The arrays are numpy for numpy input and torch (differentiable) for torch input.
    """

    singular_values: Array
    projections: Array
    taus: Array
    alignment: Array
    total: Array
    labels: tuple[str, ...]
    kind: str
    label_norms: Array
    residual: Array
    rank: int
    n_samples: int
    n_features: int
    normalize: str | None
    method: str

    def at(self, tau: Any) -> Array:
        """Alignment per label vector at ``tau`` (a number: shape (c,); a sequence: (m, c))."""
        t = _check_taus(tau)
        return _curve_values(self.singular_values, self.projections, t)

    def to_frame(self, what: str = "curve") -> Any:
        """A tidy :class:`pandas.DataFrame`.

        ``"curve"``: columns ``tau``, ``label``, ``alignment`` (one row per threshold and
        label vector, plus ``label="sum"`` rows when there are several label vectors);
        ``"spectrum"``: columns ``index`` (1-based), ``singular_value``, ``label``,
        ``projection``.
        """
        import pandas as pd

        check_option("what", what, ("curve", "spectrum"))
        if what == "spectrum":
            s = to_numpy(self.singular_values)
            p = to_numpy(self.projections)
            rows = [
                {"index": i + 1, "singular_value": float(s[i]), "label": lab,
                 "projection": float(p[i, k])}
                for k, lab in enumerate(self.labels)
                for i in range(len(s))
            ]  # fmt: skip
            return pd.DataFrame(rows, columns=["index", "singular_value", "label", "projection"])
        taus = to_numpy(self.taus)
        a = to_numpy(self.alignment)
        tot = to_numpy(self.total)
        rows = [
            {"tau": float(t), "label": lab, "alignment": float(a[j, k])}
            for k, lab in enumerate(self.labels)
            for j, t in enumerate(taus)
        ]
        if len(self.labels) > 1:
            rows += [{"tau": float(t), "label": "sum", "alignment": float(tot[j])}
                     for j, t in enumerate(taus)]  # fmt: skip
        return pd.DataFrame(rows, columns=["tau", "label", "alignment"])

    def __repr__(self) -> str:
        s = to_numpy(self.singular_values)
        top = f"{float(s[0]):.4g}" if len(s) else "-"
        return (
            f"AlignmentCurve(n_samples={self.n_samples}, n_features={self.n_features}, "
            f"rank={self.rank}, sigma_max={top}, labels={list(self.labels)}, "
            f"method={self.method!r})"
        )


def _curve_values(S: Array, P: Array, taus: np.ndarray) -> Array:
    """Σ_{σᵢ ≥ τ} P[i] for each τ: shape (c,) for a 0-d ``taus``, else (m, c)."""
    xp = namespace(S, P)
    t = xp.asarray(np.atleast_1d(taus), dtype=xp.float64, device=device_of(S))
    mask = xp.astype(S[None, :] >= t[:, None], xp.float64)  # (m, r)
    out = mask @ P
    return out[0] if np.ndim(taus) == 0 else out


def _default_taus(S: Array) -> np.ndarray:
    s = np.unique(to_numpy(S))
    return np.concatenate([[0.0], s[s > 0]])


def _warn_shape(n: int, d: int, rank: int) -> None:
    if n < d:
        warn(
            f"Phi has fewer samples than features (n={n} < d={d}); the paper assumes n >= d. "
            f"Its rank is at most n ({rank} here), so any label vector lies mostly in its "
            "column space and alignment at tau = 0 is close to ||y||^2. Use more samples than "
            "features for a meaningful curve.",
            SmallSampleWarning,
        )
    elif rank < d:
        warn(
            f"Phi is rank deficient: rank {rank} of {d} features (constant, duplicated or "
            "linearly dependent features, e.g. dead ReLUs). The curve is still defined: it sums "
            f"over the {rank} positive singular values.",
            RankDeficiencyWarning,
        )


def _result(
    S: Array,
    P: Array,
    norms: Array,
    taus: Any,
    *,
    labels: _Labels | tuple[str, ...],
    kind: str,
    n: int,
    d: int,
    normalize: str | None,
    method: str,
) -> AlignmentCurve:
    xp = namespace(S, P)
    t = _default_taus(S) if taus is None else np.atleast_1d(_check_taus(taus))
    a = _curve_values(S, P, t)
    names = labels.names if isinstance(labels, _Labels) else tuple(labels)
    return AlignmentCurve(
        singular_values=S,
        projections=P,
        taus=xp.asarray(t, dtype=xp.float64, device=device_of(S)),
        alignment=a,
        total=xp.sum(a, axis=1),
        labels=names,
        kind=kind,
        label_norms=norms,
        residual=norms - xp.sum(P, axis=0),
        rank=int(S.shape[0]),
        n_samples=n,
        n_features=d,
        normalize=normalize,
        method=method,
    )


def _svd_spectrum(Phi: Array, Y: Array) -> tuple[Array, Array]:
    """Positive singular values of Φ and (uᵢᵀy)² (r, c), from a thin SVD."""
    xp = namespace(Phi, Y)
    n, d = (int(s) for s in Phi.shape)
    U, S, _ = xp.linalg.svd(Phi, full_matrices=False)
    smax = float(to_numpy(S[0])) if S.shape[0] else 0.0
    r = int(np.sum(to_numpy(S) > smax * max(n, d) * _EPS)) if smax > 0 else 0
    U, S = U[:, :r], S[:r]
    P = (xp.matrix_transpose(U) @ Y) ** 2
    return S, P


def _gram_spectrum(G: Array, B: Array, n: int) -> tuple[Array, Array]:
    """Positive singular values of Φ and (uᵢᵀy)² from ΦᵀΦ and ΦᵀY: (vᵢᵀΦᵀy)² / σᵢ²."""
    xp = namespace(G, B)
    d = int(G.shape[0])
    G = (G + xp.matrix_transpose(G)) / 2
    lam, V = xp.linalg.eigh(G)
    lam = xp.flip(lam, axis=0)
    V = xp.flip(V, axis=1)
    lmax = float(to_numpy(lam[0])) if d else 0.0
    tol = lmax * max(d, 1) * _EPS * 4
    r = int(np.sum(to_numpy(lam) > tol)) if lmax > 0 else 0
    lam, V = lam[:r], V[:, :r]
    P = (xp.matrix_transpose(V) @ B) ** 2 / lam[:, None]
    return xp.sqrt(lam), P


# ----------------------------------------------------------------------------- functions
def curve(
    Phi: Any,
    y: Any,
    taus: Any = None,
    *,
    normalize: str | None = "rows",
    kind: str = "auto",
) -> AlignmentCurve:
    """The alignment curve of Φ and the labels y (Imani et al., eq. 2; Figs. 2, 3, 5).

    Parameters
    ----------
    Phi : array (n_samples, n_features), numpy or torch
        The representation, one row per sample. Prepared as described in :func:`prepare`.
    y : array (n_samples,) or (n_samples, n_targets)
        Class labels or regression targets (``kind``).
    taus : sequence of float >= 0, optional
        Thresholds on the singular values. Default: 0 and every distinct positive singular
        value (the curve is a step function that changes only there).
    normalize : {"rows", "max", None}, default "rows"
    kind : {"auto", "classes", "regression"}, default "auto"

    Returns
    -------
    AlignmentCurve
        Singular values, projections (uᵢᵀy)², the curve per label vector and summed.

    Warns
    -----
    RankDeficiencyWarning
        Φ has rank below its number of features (the curve sums over the positive singular
        values; ``rank`` says how many).
    SmallSampleWarning
        n < d.

    Examples
    --------
    >>> import numpy as np, nncompare as nc
    >>> rng = np.random.default_rng(0)
    >>> Phi = rng.normal(size=(200, 5))
    >>> y = (Phi[:, 0] > 0).astype(int)
    >>> c = nc.alignment.curve(Phi, y)
    >>> bool(np.all(np.diff(c.total) <= 1e-12))
    True
    """
    P_, Y, labels = _prepare(Phi, y, normalize=normalize, kind=kind)
    n, d = (int(s) for s in P_.shape)
    S, P = _svd_spectrum(P_, Y)
    _warn_shape(n, d, int(S.shape[0]))
    xp = namespace(P_, Y)
    return _result(
        S, P, xp.sum(Y * Y, axis=0), taus, labels=labels, kind=labels.kind, n=n, d=d,
        normalize=_check_normalize(normalize), method="svd",
    )  # fmt: skip


def alignment(
    Phi: Any,
    y: Any,
    tau: Any = 0.0,
    *,
    normalize: str | None = "rows",
    kind: str = "auto",
    per_label: bool = False,
) -> Array:
    """Alignment(Φ, y, τ) = Σ_{i: σᵢ ≥ τ} (uᵢᵀy)² (Imani et al., eq. 2).

    Parameters
    ----------
    Phi : array (n_samples, n_features), numpy or torch
        The representation; rows scaled so that ‖xᵢ‖ ≤ 1 (``normalize``, see :func:`prepare`).
    y : array (n_samples,) or (n_samples, n_targets)
        Labels: two classes become one ±1 vector, k classes k one-vs-rest ±1 vectors,
        regression targets are centred (``kind``).
    tau : float >= 0 or sequence of them, default 0
        Threshold(s) on the singular values. At 0 the alignment is ‖P_Φ y‖².
    normalize : {"rows", "max", None}, default "rows"
    kind : {"auto", "classes", "regression"}, default "auto"
    per_label : bool, default False
        Return one value per label vector (class, target) instead of their sum.

    Returns
    -------
    array
        0-d (one tau) or (m,) (m taus); with ``per_label`` a trailing axis of length c.
        numpy for numpy input, torch (differentiable) for torch input.
    """
    t = _check_taus(tau)
    c = curve(Phi, y, taus=np.atleast_1d(t), normalize=normalize, kind=kind)
    xp = namespace(c.alignment)
    out = c.alignment if per_label else xp.sum(c.alignment, axis=1)
    return out[0] if t.ndim == 0 else out


# ----------------------------------------------------------------------------- streaming
class StreamingAlignment:
    """Exact alignment curves from batches: ΦᵀΦ and Φᵀy accumulated, memory independent of n.

    Feed ``update(Phi_batch, y_batch)`` over the samples, then call :meth:`curve`. Because
    (uᵢᵀy)² = (vᵢᵀΦᵀy)² / σᵢ², with vᵢ and σᵢ² the eigenvectors and eigenvalues of ΦᵀΦ,
    the curve equals the in-memory SVD result of :func:`curve` (to rounding; singular values
    below about 1e-7·σ_max are not resolved by the Gram matrix and count as zero).

    The d × d Gram matrix comes from :class:`nncompare.JointMoments` (its centred co-moments
    plus n·mean·meanᵀ, in float64); class labels add one feature-sum vector per class
    (Φᵀ1_k), so the classes need not be known in advance; regression targets are a second
    block of the joint moments, and centring them needs only the centred cross-moment.
    ``normalize="max"`` accumulates unscaled rows and the largest row norm c seen; the
    result divides ΦᵀΦ by c² and Φᵀy by c, exactly as if Φ had been divided by c first.

    Parameters
    ----------
    normalize : {"rows", "max", None}, default "rows"
    kind : {"auto", "classes", "regression"}, default "auto"
        Decided by the first batch's labels when "auto".
    """

    def __init__(self, *, normalize: str | None = "rows", kind: str = "auto") -> None:
        self.normalize = _check_normalize(normalize)
        check_option("kind", kind, KINDS)
        self.kind = kind
        self._requested = kind
        self.n = 0
        self._jm = JointMoments(precision="float64")
        self._class_sums: dict[Any, Array] = {}
        self._class_counts: dict[Any, int] = {}
        self._max_norm: Array | None = None
        self._q: int | None = None
        self._d: int | None = None

    def update(self, Phi: Any, y: Any) -> StreamingAlignment:
        """Add a batch: rows of Φ and their labels (numpy or torch, one library throughout)."""
        Phi = _check_phi(Phi)
        xp = namespace(Phi)
        Phi = xp.astype(Phi, xp.float64) if Phi.dtype != xp.float64 else Phi
        nb, d = (int(s) for s in Phi.shape)
        if self._d is not None and d != self._d:
            raise ValueError(
                f"this batch of Phi has {d} features but earlier batches had {self._d}; feed "
                "the same representation (the same layer) in every batch."
            )
        vals, categorical = _label_values(y, nb)
        kind = _resolve_kind(self._requested, categorical, vals)
        if self.n and kind != self.kind:
            raise ValueError(
                f"the labels of this batch look like {kind} but earlier batches were {self.kind}; "
                "pass kind='classes' or kind='regression' explicitly."
            )
        self.kind = kind
        self._d = d
        if self.normalize == "rows":
            Phi = _normalize_rows(xp, Phi)
        elif self.normalize == "max":
            m = xp.max(_row_norms(xp, Phi))
            self._max_norm = m if self._max_norm is None else xp.maximum(self._max_norm, m)
        if kind == "classes":
            v = to_numpy(vals).reshape(-1)
            for cls in np.unique(v).tolist():
                rows = xp.asarray(np.nonzero(v == cls)[0], device=device_of(Phi))
                part = xp.sum(xp.take(Phi, rows, axis=0), axis=0)
                prev = self._class_sums.get(cls)
                self._class_sums[cls] = part if prev is None else prev + part
                self._class_counts[cls] = self._class_counts.get(cls, 0) + int(rows.shape[0])
            self._jm.update({"phi": Phi})
        else:
            if is_torch(vals):
                _, Yb = harmonize(Phi, vals)
                Yb = Yb.to(dtype=Phi.dtype)
            else:
                Yb = xp.asarray(np.asarray(vals, dtype=np.float64), device=device_of(Phi))
            if Yb.ndim == 1:
                Yb = Yb[:, None]
            if self._q is not None and int(Yb.shape[1]) != self._q:
                raise ValueError(
                    f"this batch has {int(Yb.shape[1])} targets per sample but earlier batches "
                    f"had {self._q}."
                )
            self._q = int(Yb.shape[1])
            self._jm.update({"phi": Phi, "y": Yb})
        self.n += nb
        return self

    def merge(self, other: StreamingAlignment) -> StreamingAlignment:
        """Fold another accumulator (other samples, the same representation) into this one."""
        if not isinstance(other, StreamingAlignment):
            raise TypeError(f"merge() expects a StreamingAlignment; got {type(other).__name__}.")
        if other.n == 0:
            return self
        if self.n and (other.kind != self.kind or other._d != self._d):
            raise ValueError(
                "cannot merge accumulators of different representations or label kinds: "
                f"({self._d} features, {self.kind}) vs ({other._d} features, {other.kind})."
            )
        if other.normalize != self.normalize:
            raise ValueError(
                f"cannot merge accumulators with normalize={self.normalize!r} and "
                f"{other.normalize!r}."
            )
        self._jm.merge(other._jm)
        for cls, s in other._class_sums.items():
            prev = self._class_sums.get(cls)
            self._class_sums[cls] = s if prev is None else prev + s
            self._class_counts[cls] = self._class_counts.get(cls, 0) + other._class_counts[cls]
        if other._max_norm is not None:
            xp = namespace(other._max_norm)
            self._max_norm = (
                other._max_norm
                if self._max_norm is None
                else xp.maximum(self._max_norm, other._max_norm)
            )
        self.kind, self._d, self._q = other.kind, other._d, other._q
        self.n += other.n
        return self

    def moments(self) -> tuple[Array, Array, Array, tuple[str, ...]]:
        """(ΦᵀΦ (d, d), ΦᵀY (d, c), ‖y_k‖² (c,), label names) of the prepared Φ and labels."""
        if self.n == 0:
            raise ValueError("This accumulator is empty: call update(Phi, y) with a batch first.")
        jm = self._jm
        xp = jm.xp
        ph = jm.block("phi")
        sp = slice(ph.start, ph.stop)
        C = jm.comoment
        mean = jm.mean
        n = self.n
        G = C[sp, sp] + n * (mean[sp][:, None] * mean[sp][None, :])
        if self.kind == "classes":
            classes = tuple(sorted(self._class_sums))
            _classes_of(np.asarray(classes, dtype=object))
            total = n * mean[sp]
            sums = [self._class_sums[c] for c in classes]
            if len(classes) == 2:
                B = (2 * sums[1] - total)[:, None]
            else:
                B = xp.stack([2 * s - total for s in sums], axis=1)
            norms = xp.asarray([float(n)] * int(B.shape[1]), dtype=xp.float64,
                               device=device_of(G))  # fmt: skip
            names = _class_names(classes)
        else:
            yb = jm.block("y")
            sy = slice(yb.start, yb.stop)
            B = C[sp, sy]
            norms = xp.sum(C[sy, sy] * xp.eye(int(B.shape[1]), dtype=xp.float64,
                                               device=device_of(C)), axis=1)  # fmt: skip
            if not np.all(to_numpy(norms) > 0):
                raise ValueError(
                    "y is constant (the same target value for every sample); after centring "
                    "the label vector is zero and alignment is not defined."
                )
            q = int(B.shape[1])
            names = ("y",) if q == 1 else tuple(f"y{j}" for j in range(q))
        if self.normalize == "max":
            c = self._max_norm
            if not bool(c > 0):
                raise ValueError("Phi is all zeros; alignment is not defined.")
            G = G / (c * c)
            B = B / c
        return G, B, norms, names

    def curve(self, taus: Any = None) -> AlignmentCurve:
        """The alignment curve of everything fed so far (as :func:`curve`)."""
        G, B, norms, names = self.moments()
        S, P = _gram_spectrum(G, B, self.n)
        _warn_shape(self.n, int(G.shape[0]), int(S.shape[0]))
        return _result(
            S, P, norms, taus, labels=names, kind=self.kind, n=self.n, d=int(G.shape[0]),
            normalize=self.normalize, method="streamed",
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"StreamingAlignment(n={self.n}, n_features={self._d}, kind={self.kind!r}, "
            f"normalize={self.normalize!r})"
        )


# ----------------------------------------------------------------------------- Props 1-2
@dataclass
class PredictedLoss:
    """Squared-error loss of full-batch gradient descent predicted by Proposition 1.

    Attributes
    ----------
    loss : array (steps + 1,)
        ‖Φw_t − y‖² for t = 0 … steps, summed over the label vectors.
    per_label : array (steps + 1, c)
        The same per label vector.
    fitted : array (steps + 1, c)
        ‖Φw_t − Φw*‖² = Σᵢ (1 − ησᵢ²)^{2t} (uᵢᵀy)² (eq. 3, squared).
    residual : array (c,)
        ‖Φw* − y‖², the loss that gradient descent converges to.
    lr : float
    curve : AlignmentCurve
        The spectrum the prediction is made from.
    """

    loss: Array
    per_label: Array
    fitted: Array
    residual: Array
    lr: float
    curve: AlignmentCurve

    @property
    def steps(self) -> Array:
        xp = namespace(self.loss)
        return xp.arange(int(self.loss.shape[0]))


def _check_lr(lr: Any) -> float:
    try:
        v = float(lr)
    except (TypeError, ValueError):
        raise TypeError(f"lr must be a positive number; got {lr!r}.") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"lr must be a positive, finite step size; got {lr!r}.")
    return v


def predicted_loss(
    Phi: Any,
    y: Any,
    lr: float,
    steps: int,
    *,
    normalize: str | None = "rows",
    kind: str = "auto",
) -> PredictedLoss:
    """Loss of gradient descent on a linear model, predicted from the alignment spectrum.

    Full-batch gradient descent w_{t+1} = w_t − lr·Φᵀ(Φw_t − y) from w₀ = 0 has, by
    Proposition 1 of Imani et al.,

        ‖Φw_t − y‖² = Σᵢ (1 − lr·σᵢ²)^{2t} (uᵢᵀy)² + ‖Φw* − y‖²,

    the sum over the positive singular values. This is an identity for any step size (the
    Proposition's condition lr < 1/σ_max² is what makes it converge monotonically), also for
    rank-deficient Φ, and it equals a real run step by step on the prepared Φ and labels
    (:func:`prepare`: rows normalised by default, so run gradient descent on those).

    Parameters
    ----------
    Phi, y : as in :func:`curve`
    lr : float > 0
        Step size η.
    steps : int >= 0
        Number of gradient steps; ``steps + 1`` losses are returned (t = 0 … steps).
    normalize, kind : as in :func:`curve`

    Returns
    -------
    PredictedLoss
        ``.loss`` (steps + 1,), summed over label vectors; ``.per_label`` (steps + 1, c).

    Warns
    -----
    NNCompareWarning
        lr ≥ 1/σ_max² (outside Proposition 1's condition; the values are still the exact
        losses of that run, which oscillates and, for lr ≥ 2/σ_max², diverges).
    """
    lr = _check_lr(lr)
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}.")
    c = curve(Phi, y, taus=[0.0], normalize=normalize, kind=kind)
    xp = namespace(c.singular_values)
    S, P = c.singular_values, c.projections
    smax = float(to_numpy(S[0])) if S.shape[0] else 0.0
    if smax > 0 and lr * smax**2 >= 1:
        warn(
            f"lr = {lr:g} is not below 1/sigma_max^2 = {1 / smax**2:g} (sigma_max = {smax:.4g}), "
            "the condition of Proposition 1: gradient descent "
            + ("diverges" if lr * smax**2 >= 2 else "oscillates")
            + ". The predicted losses are still those of that run. Use a smaller lr.",
            NNCompareWarning,
        )
    t = xp.asarray(np.arange(int(steps) + 1), dtype=xp.float64, device=device_of(S))
    factor = (1 - lr * S * S)[None, :] ** (2 * t[:, None])  # (T, r)
    fitted = factor @ P  # (T, c)
    per_label = fitted + c.residual[None, :]
    return PredictedLoss(
        loss=xp.sum(per_label, axis=1),
        per_label=per_label,
        fitted=fitted,
        residual=c.residual,
        lr=lr,
        curve=c,
    )


@dataclass(frozen=True)
class IterationsBound:
    """Proposition 2: iterations of gradient descent sufficient to reduce the loss by ω.

    Attributes
    ----------
    iterations : float
        −log(1 − ω/δ) / (2·lr·τ²): after this many steps the loss has dropped by at least ω.
    alignment : float
        δ = Alignment(Φ, y, τ) (summed over label vectors).
    reduction : float
        ω = ``fraction``·δ.
    tau, lr, fraction : float
    """

    iterations: float
    alignment: float
    reduction: float
    tau: float
    lr: float
    fraction: float

    def __float__(self) -> float:
        return self.iterations


def iterations_bound(
    Phi: Any,
    y: Any,
    tau: float,
    lr: float,
    *,
    fraction: float = 0.9,
    normalize: str | None = "rows",
    kind: str = "auto",
) -> IterationsBound:
    """Proposition 2 of Imani et al.: how fast gradient descent harvests the aligned part.

    If Alignment(Φ, y, τ) = δ with 0 < τ ≤ σ_max and 0 < lr < 1/σ_max², gradient descent
    from w₀ = 0 reduces the loss ‖Φw − y‖² by ω = ``fraction``·δ within at most
    −log(1 − ω/δ) / (2·lr·τ²) iterations (log(10)/(2·lr·τ²) for the paper's 0.9).

    Parameters
    ----------
    Phi, y : as in :func:`curve`
    tau : float, 0 < tau <= sigma_max
    lr : float, 0 < lr < 1/sigma_max**2
    fraction : float in [0, 1), default 0.9
    normalize, kind : as in :func:`curve`

    Returns
    -------
    IterationsBound
        ``float(bound)`` is the number of iterations.
    """
    lr = _check_lr(lr)
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        raise TypeError(f"fraction must be a number in [0, 1); got {fraction!r}.") from None
    if not 0 <= f < 1:
        raise ValueError(f"fraction must lie in [0, 1) (omega = fraction * delta); got {f}.")
    t = float(_check_taus(tau))
    c = curve(Phi, y, taus=[t], normalize=normalize, kind=kind)
    S = to_numpy(c.singular_values)
    smax = float(S[0]) if len(S) else 0.0
    if not 0 < t <= smax:
        raise ValueError(
            f"Proposition 2 needs 0 < tau <= sigma_max = {smax:.6g}; got tau = {t:g}. Pick a "
            "threshold among the singular values (AlignmentCurve.singular_values)."
        )
    if lr * smax**2 >= 1:
        raise ValueError(
            f"Proposition 2 needs lr < 1/sigma_max^2 = {1 / smax**2:.6g}; got lr = {lr:g}."
        )
    delta = float(to_numpy(c.total)[0])
    iters = -math.log1p(-f) / (2 * lr * t * t)
    return IterationsBound(iters, delta, f * delta, t, lr, f)
