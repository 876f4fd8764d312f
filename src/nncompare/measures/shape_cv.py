"""Cross-validated generalised shape metrics: the alignment is fitted on training samples and
the distance is evaluated on held-out samples.

The shape metric of :func:`nncompare.shape` (Williams et al. 2021, Section 3) is an
optimum over alignments: partial whitening with ``alpha`` followed by the best orthogonal
map. Evaluated on the samples it was fitted on, that optimum is biased towards similarity,
and badly so when the number of samples n is not much larger than the number of features
d: two independent random representations with n = 2d look substantially alike, and with
n <= d any two are identical at alpha = 0 (cos θ = 1 whatever the data). Williams et al.
therefore fit the alignment on one set of stimuli and report the distance on another (their
``netrep`` package's ``fit``/``score``). :class:`ShapeMetric` does this with nncompare's
conventions, and :func:`shape_cv` runs it over K folds.

The fitted map, for each side (shown for X; Y likewise)
---------------------------------------------------------
On the training samples X (n, d1):

* centring mean m_x and Frobenius norm s_x = ‖X - m_x‖_F, so X̃ = (X - m_x) / s_x has unit
  norm (constant features are zeroed);
* partial whitening Z_x = α I + (1 - α) Σ̃^{-1/2} with Σ̃ = X̃ᵀ X̃, on the span of the
  training data (eigenvalues above ``rtol`` times the largest; α = 0 whitens the
  scale-normalised correlation matrix, as :func:`nncompare.shape` does);
* the rotation Q (d1, d2) = U Vᵀ from the SVD U S Vᵀ of (X̃ Z_x)ᵀ (Ỹ Z_y), which maximises
  ⟨X̃ Z_x Q, Ỹ Z_y⟩ over (semi-)orthogonal maps.

Held-out samples are mapped with the training quantities, a_x = ((X_test - m_x) / s_x) Z_x,
and scored as

.. math:: \\cos\\theta = \\frac{\\langle a_x Q, a_y\\rangle_F}{\\|a_x\\|_F\\,\\|a_y\\|_F},
   \\qquad \\theta = \\arccos(\\cos\\theta) \\in [0, \\pi]

(held-out similarities can be negative). On the training samples themselves this is
exactly :func:`nncompare.shape` (``value`` and ``angular``).

Known differences from netrep
-----------------------------
* nncompare whitens the unit-norm data (every alpha is invariant to isotropic scaling);
  netrep whitens Xcᵀ Xc, so its 0 < alpha < 1 values depend on the data's scale.
* Directions that the training data do not span (only when n_train - 1 < d) are not
  aligned by the fit; nncompare drops them from the held-out data (the maps act on the
  training span), so that a representation is at distance 0 from itself. netrep keeps them
  at alpha = 1 (rotated by an arbitrary completion of the SVD) and amplifies them by
  1/sqrt(1e-7) at alpha < 1.
* Different widths: Q is semi-orthogonal and the norms in the denominator are those of the
  un-rotated a_x, a_y, which is what netrep's zero padding amounts to.

References
----------
Williams, A. H., Kunz, E., Kornblith, S. & Linderman, S. W. (2021). Generalized shape
metrics on neural representations. NeurIPS. Section 3 (the metrics); the alignment fitted
on training data and evaluated on test data as in their ``netrep`` package
(``LinearMetric.fit`` / ``score``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nncompare._array import Array, as_array, harmonize, is_torch, namespace, to_scalar_float
from nncompare._validation import check_fraction, check_matrix, constant_columns
from nncompare.errors import NNCompareError
from nncompare.measures._linalg import DEFAULT_RTOL, diag
from nncompare.results import Result

__all__ = ["NotFittedError", "ShapeCVResult", "ShapeMetric", "ShapeScoreResult", "shape_cv"]


class NotFittedError(NNCompareError, ValueError, AttributeError):
    """A :class:`ShapeMetric` was used before :meth:`ShapeMetric.fit`."""


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True, repr=False, eq=False)
class ShapeScoreResult(Result):
    """Shape metric of held-out samples under an alignment fitted on training samples.

    Attributes
    ----------
    value : 0-d array (numpy, or torch with autograd)
        cos θ ∈ [-1, 1] between the aligned held-out representations.
    angular : float
        θ = arccos(value) ∈ [0, π]; also ``distance``.
    euclidean : float
        sqrt(2 - 2 value) ∈ [0, 2]: the distance between the aligned held-out
        representations, each scaled to unit Frobenius norm.
    alpha : float
        Partial whitening of the fit.
    n_train, n_test : int
        Samples the alignment was fitted on, and samples scored (``n_samples`` = n_test).
    """

    alpha: float = 1.0
    angular: float = math.nan
    euclidean: float = math.nan
    n_train: int = 0
    n_test: int = 0

    @property
    def distance(self) -> float:
        return self.angular


@dataclass(frozen=True, repr=False, eq=False)
class ShapeCVResult(Result):
    """K-fold cross-validated shape metric (:func:`shape_cv`).

    Attributes
    ----------
    value : 0-d array (numpy, or torch with autograd)
        Mean over folds of the held-out cos θ.
    test_distance, train_distance : float
        Mean over folds of the held-out and of the in-sample angular distance θ
        (``distance`` is ``test_distance``). Note that the mean of θ is not arccos of the
        mean of cos θ.
    train_value : float
        Mean over folds of the in-sample cos θ (what :func:`nncompare.shape` gives on each
        training set).
    test_values, train_values, test_distances, train_distances : numpy array (folds,)
        The per-fold values and angular distances.
    n_train, n_test : tuple of int
        Samples per fold used for fitting and for scoring.
    alpha, folds, seed, shuffle
        The settings.
    """

    alpha: float = 1.0
    folds: int = 0
    seed: int | None = 0
    shuffle: bool = True
    test_distance: float = math.nan
    train_distance: float = math.nan
    train_value: float = math.nan
    test_values: Any = None
    train_values: Any = None
    test_distances: Any = None
    train_distances: Any = None
    n_train: tuple[int, ...] = field(default_factory=tuple)
    n_test: tuple[int, ...] = field(default_factory=tuple)

    @property
    def distance(self) -> float:
        return self.test_distance

    @property
    def gap(self) -> float:
        """test_distance - train_distance: how much the in-sample fit flatters the pair."""
        return self.test_distance - self.train_distance

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        for name in ("test_values", "train_values", "test_distances", "train_distances"):
            out[name] = [float(v) for v in getattr(self, name)]
        out["n_train"] = list(self.n_train)
        out["n_test"] = list(self.n_test)
        return out


# ----------------------------------------------------------------------------- helpers
def _acos(v: float) -> float:
    return math.acos(min(1.0, max(-1.0, v)))


def _check_rtol(rtol: Any) -> float:
    try:
        r = float(rtol)
    except (TypeError, ValueError):
        raise TypeError(f"rtol must be a number in (0, 1); got {rtol!r}.") from None
    if not 0.0 < r < 1.0:
        raise ValueError(
            f"rtol must lie in (0, 1) (the relative eigenvalue cut-off of the span); got {r}."
        )
    return r


def _pair(
    X: Any, Y: Any, names: tuple[str, str], min_samples: int, what: str
) -> tuple[Array, Array, Array, Array]:
    """Validate two (n, d) matrices over the same samples: (X, Y) in one array library as
    float64, and their constant-feature masks (judged at the input's own precision)."""
    from nncompare.stats import JointMoments, Moments

    nx, ny = names
    for label, A in ((nx, X), (ny, Y)):
        if isinstance(A, Moments | JointMoments):
            raise TypeError(
                f"{what} needs the samples themselves, not accumulated moments: the alignment "
                f"is fitted on some samples and evaluated on others. Pass {label} as an "
                "(n_samples, n_features) array."
            )
        if A is None:
            raise TypeError(f"{what} needs two activation matrices; {label} is missing.")
    X = as_array(X, name=nx)
    Y = as_array(Y, name=ny)
    X, Y = harmonize(X, Y)
    for label, A in ((nx, X), (ny, Y)):
        if A.ndim != 2:
            hint = (
                " For convolutional activations reduce them first, e.g. "
                f"nc.reshape_conv({label}, 'mean') or 'flatten' (keep one row per stimulus, "
                "so that folds split stimuli)."
                if A.ndim in (3, 4)
                else ""
            )
            raise ValueError(
                f"{label} must be a 2-D array of shape (n_samples, n_features); got shape "
                f"{tuple(A.shape)}.{hint}"
            )
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{nx} and {ny} must hold the same samples in the same order (rows); got {nx} with "
            f"{X.shape[0]} rows and {ny} with {Y.shape[0]} rows. Pass activations of both "
            "networks on the same inputs."
        )
    if X.shape[0] < min_samples:
        raise ValueError(
            f"{what} needs at least {min_samples} samples; got {X.shape[0]} ({nx} has shape "
            f"{tuple(X.shape)}). Pass more samples (rows)."
        )
    X = check_matrix(X, name=nx, min_samples=min_samples)
    Y = check_matrix(Y, name=ny, min_samples=min_samples)
    xp = namespace(X, Y)
    masks = []
    for label, A in ((nx, X), (ny, Y)):
        masks.append(constant_columns(xp, A))
        if bool(xp.all(masks[-1])):
            raise ValueError(
                f"{what} is undefined: every feature of {label} is constant over its "
                f"{A.shape[0]} samples ({A.shape[1]} features), so {label} carries no "
                "information. Check the layer (dead units?) or the inputs."
            )
    return xp.astype(X, xp.float64), xp.astype(Y, xp.float64), masks[0], masks[1]


def _whitener(xp: Any, C: Array, constant: Array, alpha: float, rtol: float) -> tuple[Array, int]:
    """(d, d) partial whitening of unit-norm data with co-moment ``C``, and the span's rank.

    alpha > 0: Z = α P + (1 - α) Σ̃^{+1/2} (P the projector on the span), Σ̃ = C / tr C.
    alpha = 0: Z = S R^{+1/2}-whitening of the correlation matrix R = S C S (S = 1/std per
    feature, 0 for constant ones): any whitening gives the same metric, and this one keeps
    features of very different scales exact.
    """
    if alpha > 0.0:
        A = C / xp.sum(diag(xp, C))
        scale = None
    else:
        var = diag(xp, C)
        ok = (~constant) & (var > 0)
        scale = xp.where(ok, 1.0 / xp.sqrt(xp.where(ok, var, xp.ones_like(var))), 0.0 * var)
        A = scale[:, None] * C * scale[None, :]
    evals, evecs = xp.linalg.eigh(A)
    top = xp.max(evals)
    mask = (evals > rtol * top) & (evals > 0)
    safe = xp.where(mask, evals, xp.ones_like(evals))
    f = xp.where(mask, alpha + (1.0 - alpha) / xp.sqrt(safe), xp.zeros_like(evals))
    Z = (evecs * f[None, :]) @ xp.matrix_transpose(evecs)
    if scale is not None:
        Z = scale[:, None] * Z
    return Z, int(to_scalar_float(xp.sum(xp.astype(mask, xp.int64))))


def _unit_centred(xp: Any, A: Array, constant: Array) -> tuple[Array, Array, Array]:
    """Mean, Frobenius norm and (A - mean) / norm with constant features zeroed."""
    mean = xp.mean(A, axis=0)
    Ac = xp.where(constant[None, :], 0.0 * A, A - mean)
    g = xp.max(xp.abs(Ac))  # > 0: some feature varies (checked)
    Ag = Ac / g
    r = xp.sqrt(xp.sum(Ag * Ag))
    return mean, g * r, Ag / r


# ----------------------------------------------------------------------------- estimator
class ShapeMetric:
    """Generalised shape metric with the alignment fitted on training samples.

    Fit learns, for each side, the centring mean, the scale, the partial whitening and the
    (semi-)orthogonal rotation between the two (Williams et al. 2021, Section 3); score
    maps held-out samples with them and returns cos θ between the aligned representations.
    In-sample, ``ShapeMetric(alpha).fit(X, Y).score(X, Y)`` equals
    ``nc.shape(X, Y, alpha=alpha)``; on held-out samples the value is free of the
    optimistic bias of fitting the alignment to the samples being compared.

    Parameters
    ----------
    alpha : float in [0, 1], default 1
        Partial whitening: 1 is Procrustes (rotations only), 0 is full whitening
        (invariant to invertible linear maps, CCA-like).
    rtol : float in (0, 1), default 1e-10
        Eigenvalues of the training (correlation, for alpha = 0) matrix below ``rtol``
        times the largest are outside the span the fit acts on.

    Attributes
    ----------
    mean_x_, mean_y_ : array (d1,), (d2,)
        Training means (the held-out data are centred with them).
    scale_x_, scale_y_ : 0-d array
        Frobenius norms of the centred training data.
    whitener_x_, whitener_y_ : array (d1, d1), (d2, d2)
        Partial whitening of the unit-norm data, zero outside the training span.
    rotation_ : array (d1, d2)
        Q, with orthonormal rows or columns on the aligned span.
    rank_x_, rank_y_ : int
        Dimensions of the training spans.
    train_value_ : 0-d array
        cos θ on the training samples (equals :func:`nncompare.shape`).
    n_train_ : int

    Notes
    -----
    Held-out samples are centred with the *training* means, so a shift of the test
    distribution counts against similarity (as in netrep). Inputs are (n, d) matrices,
    numpy or torch (computed in float64; torch stays torch, with autograd). See the module
    docstring for the exact maps and the differences from netrep.

    References
    ----------
    Williams, A. H., Kunz, E., Kornblith, S. & Linderman, S. W. (2021). Generalized shape
    metrics on neural representations. NeurIPS.

    Examples
    --------
    >>> import numpy as np, nncompare as nc
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(200, 50)), rng.normal(size=(200, 40))
    >>> metric = nc.ShapeMetric(alpha=1.0).fit(X[:100], Y[:100])
    >>> float(metric.train_value_) > 0.5 > abs(float(metric.score(X[100:], Y[100:])))
    True
    """

    def __init__(self, alpha: float = 1.0, *, rtol: float = DEFAULT_RTOL) -> None:
        self.alpha = check_fraction("alpha", alpha, low_open=False)
        self.rtol = _check_rtol(rtol)
        self._fitted = False

    def __repr__(self) -> str:
        base = f"ShapeMetric(alpha={self.alpha:g}, rtol={self.rtol:g})"
        if not self._fitted:
            return base
        d1, d2 = self.rotation_.shape
        return f"{base} fitted on n_train={self.n_train_}, d=({d1}, {d2})"

    # -------------------------------------------------------------- fitting
    def fit(self, X_train: Any, Y_train: Any) -> ShapeMetric:
        """Learn the centring, whitening and rotation from training samples.

        Parameters
        ----------
        X_train : array (n_train, d1), numpy or torch
        Y_train : array (n_train, d2), the same samples (rows) in the same order

        Returns
        -------
        ShapeMetric
            ``self``, fitted.
        """
        X, Y, cx, cy = _pair(X_train, Y_train, ("X_train", "Y_train"), 3, "ShapeMetric.fit")
        xp = namespace(X, Y)
        sides = []
        for A, const in ((X, cx), (Y, cy)):
            mean, scale, At = _unit_centred(xp, A, const)
            Z, rank = _whitener(xp, xp.matrix_transpose(At) @ At, const, self.alpha, self.rtol)
            sides.append((mean, scale, Z, rank, At @ Z))
        (mx, sx, Zx, rx, ax), (my, sy, Zy, ry, ay) = sides
        U, s, Vh = xp.linalg.svd(xp.matrix_transpose(ax) @ ay, full_matrices=False)
        # singular directions with s at rounding level are undetermined: leave them out
        tol = max(U.shape[0], Vh.shape[1]) * float(np.finfo(np.float64).eps)
        k = int(to_scalar_float(xp.sum(xp.astype(s > tol * xp.max(s), xp.int64))))
        Q = U[:, :k] @ Vh[:k, :]
        norm = xp.sqrt(xp.sum(ax * ax) * xp.sum(ay * ay))
        self.mean_x_, self.mean_y_ = mx, my
        self.scale_x_, self.scale_y_ = sx, sy
        self.whitener_x_, self.whitener_y_ = Zx, Zy
        self.rank_x_, self.rank_y_ = rx, ry
        self.rotation_ = Q
        self.train_value_ = xp.clip(xp.sum(s[:k]) / norm, -1.0, 1.0)
        self.n_train_ = int(X.shape[0])
        self._fitted = True
        return self

    # -------------------------------------------------------------- evaluation
    def _check_fitted(self, method: str) -> None:
        if not self._fitted:
            raise NotFittedError(
                f"This ShapeMetric is not fitted yet, so {method} has no alignment to use: "
                "call fit(X_train, Y_train) first, or fit_score(X_train, Y_train, X_test, "
                "Y_test)."
            )

    def _params(self, like: Array) -> tuple[Array, ...]:
        """The fitted quantities in ``like``'s array library (numpy fit, torch test: moved)."""
        p = (
            self.mean_x_,
            self.mean_y_,
            self.scale_x_,
            self.scale_y_,
            self.whitener_x_,
            self.whitener_y_,
            self.rotation_,
        )
        if is_torch(like) and not is_torch(self.rotation_):
            import torch

            return tuple(torch.as_tensor(np.asarray(a), device=like.device) for a in p)
        if is_torch(like):
            return tuple(a.to(like.device) for a in p)
        return p

    def _map(self, X: Any, Y: Any, names: tuple[str, str], min_samples: int, what: str) -> Any:
        self._check_fitted(what)
        d1, d2 = self.rotation_.shape
        for label, A, d, side in ((names[0], X, d1, "X"), (names[1], Y, d2, "Y")):
            shape = getattr(A, "shape", None)
            if shape is not None and len(shape) == 2 and shape[1] != d:
                raise ValueError(
                    f"{what}: {label} has {shape[1]} features but this ShapeMetric was fitted "
                    f"on {side} with {d} (X_train had {d1}, Y_train {d2}). Pass activations of "
                    "the same layers, features in the same order, as in fit."
                )
        if is_torch(self.rotation_):
            X, Y = harmonize(self.rotation_, X)[1], harmonize(self.rotation_, Y)[1]
        X, Y, _, _ = _pair(X, Y, names, min_samples, what)
        xp = namespace(X, Y)
        mx, my, sx, sy, Zx, Zy, Q = self._params(X)
        ax = ((X - mx) / sx) @ Zx
        ay = ((Y - my) / sy) @ Zy
        return xp, ax, ay, Q

    def transform(self, X: Any, Y: Any) -> tuple[Array, Array]:
        """Map samples into the aligned space: X's onto Y's (partially whitened) coordinates.

        Parameters
        ----------
        X : array (n, d1)
        Y : array (n, d2)

        Returns
        -------
        (array (n, d2), array (n, d2))
            ``((X - m_x) / s_x) Z_x Q`` and ``((Y - m_y) / s_y) Z_y``. Their Frobenius cosine
            is :meth:`score`'s value, except where Y's training span has fewer dimensions
            than X's: the part of X beyond it has no counterpart in Y and is dropped by Q,
            while :meth:`score` keeps its norm (the zero-padding convention).
        """
        _, ax, ay, Q = self._map(X, Y, ("X", "Y"), 1, "ShapeMetric.transform")
        return ax @ Q, ay

    def score(self, X_test: Any, Y_test: Any) -> ShapeScoreResult:
        """Shape metric of (held-out) samples under the fitted alignment.

        Parameters
        ----------
        X_test : array (n_test, d1), n_test >= 2
        Y_test : array (n_test, d2), the same samples in the same order

        Returns
        -------
        ShapeScoreResult
            ``value`` cos θ ∈ [-1, 1] (0-d array of the input's library), ``angular`` θ
            (``distance``), ``euclidean`` sqrt(2 - 2 cos θ), ``n_train``, ``n_test``,
            ``alpha``.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ValueError
            Feature counts that differ from the fit, fewer than 2 samples, non-finite
            values, a side whose features are all constant, or held-out data with no
            component in the training span.
        """
        xp, ax, ay, Q = self._map(X_test, Y_test, ("X_test", "Y_test"), 2, "ShapeMetric.score")
        nx, ny = xp.sum(ax * ax), xp.sum(ay * ay)
        for label, t, side in (("X_test", nx, "X"), ("Y_test", ny, "Y")):
            if to_scalar_float(t) <= 0:
                raise ValueError(
                    f"ShapeMetric.score: {label} has no component in the span of {side}_train "
                    f"({self.rank_x_ if side == 'X' else self.rank_y_} dimensions), so the "
                    "fitted alignment says nothing about it. Fit on more (or more varied) "
                    "training samples."
                )
        value = xp.clip(xp.sum((ax @ Q) * ay) / xp.sqrt(nx * ny), -1.0, 1.0)
        v = to_scalar_float(value)
        return ShapeScoreResult(
            measure="shape",
            value=value,
            n_samples=int(ax.shape[0]),
            conventions={
                "alpha": self.alpha,
                "alignment": f"fitted on {self.n_train_} training samples",
                "centering": "training means",
                "whitening": "of unit-norm data: alpha I + (1 - alpha) C^-1/2, on the span",
                "rank_rtol": self.rtol,
            },
            alpha=self.alpha,
            angular=_acos(v),
            euclidean=math.sqrt(max(0.0, 2.0 - 2.0 * v)),
            n_train=self.n_train_,
            n_test=int(ax.shape[0]),
        )

    def fit_score(self, X_train: Any, Y_train: Any, X_test: Any, Y_test: Any) -> ShapeScoreResult:
        """``fit(X_train, Y_train)`` then ``score(X_test, Y_test)``."""
        return self.fit(X_train, Y_train).score(X_test, Y_test)


# ----------------------------------------------------------------------------- K-fold
def _splits(
    n: int, folds: int | Sequence[Any], seed: int | None, shuffle: bool
) -> list[np.ndarray]:
    """Held-out index sets (each sorted); the training set of each is the rest."""
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer | Sequence | np.ndarray):
        raise TypeError(
            "folds must be an integer (the number of folds) or a sequence of held-out index "
            f"arrays; got {folds!r}."
        )
    if isinstance(folds, int | np.integer):
        k = int(folds)
        if k < 2:
            raise ValueError(f"folds must be at least 2 (K-fold cross-validation); got {k}.")
        if n // k < 2 or n - -(-n // k) < 3:
            raise ValueError(
                f"folds={k} with {n} samples leaves held-out folds of {n // k} sample(s) and "
                f"training sets of {n - -(-n // k)}; each held-out fold needs at least 2 "
                f"samples and each training set 3. Use folds <= {max(2, n // 2)} or more "
                "samples."
            )
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        return [np.sort(part) for part in np.array_split(order, k)]
    out = []
    for i, idx in enumerate(folds):
        a = np.asarray(idx)
        if a.ndim != 1 or not (a.dtype.kind in "iu" or a.size == 0):
            raise TypeError(
                f"folds[{i}] must be a 1-D array of integer sample indices; got "
                f"{type(idx).__name__} with dtype {a.dtype} and shape {a.shape}."
            )
        if a.size and (a.min() < 0 or a.max() >= n):
            raise ValueError(
                f"folds[{i}] holds indices outside [0, {n}) (min {a.min()}, max {a.max()}); "
                f"there are {n} samples."
            )
        a = np.unique(a)
        if a.size < 2 or n - a.size < 3:
            raise ValueError(
                f"folds[{i}] holds out {a.size} distinct sample(s) and leaves {n - a.size} for "
                "training; each held-out set needs at least 2 samples and each training set 3."
            )
        out.append(a)
    if len(out) < 1:
        raise ValueError("folds is an empty sequence; pass at least one held-out index array.")
    return out


def shape_cv(
    X: Any,
    Y: Any,
    *,
    alpha: float = 1.0,
    folds: int | Sequence[Any] = 5,
    seed: int | None = 0,
    shuffle: bool = True,
    rtol: float = DEFAULT_RTOL,
) -> ShapeCVResult:
    """K-fold cross-validated generalised shape metric (Williams et al. 2021).

    For each fold the alignment (centring, partial whitening ``alpha``, rotation) is fitted
    on the other folds with :class:`ShapeMetric` and evaluated on the held-out fold; the
    result holds the per-fold held-out and in-sample distances and their means.

    Parameters
    ----------
    X : array (n, d1), numpy or torch
    Y : array (n, d2), the same samples in the same order
    alpha : float in [0, 1], default 1
        1: Procrustes; 0: full whitening (CCA-like).
    folds : int or sequence of index arrays, default 5
        Number of folds (samples split into ``folds`` near-equal parts), or the held-out
        sample indices of each split (the training set of a split is every other sample;
        e.g. one split per stimulus class).
    seed : int or None, default 0
        Seed of the shuffle before splitting: the same seed gives the same folds.
    shuffle : bool, default True
        Shuffle before splitting; False makes contiguous folds (data already in random
        order, or to keep blocks of related samples together).
    rtol : float, default 1e-10
        Relative eigenvalue cut-off of the training span (see :class:`ShapeMetric`).

    Returns
    -------
    ShapeCVResult
        ``value`` mean held-out cos θ; ``test_distance`` / ``train_distance`` mean
        held-out / in-sample angular distance θ (``distance`` = ``test_distance``, ``gap``
        their difference); per fold ``test_values``, ``train_values``, ``test_distances``,
        ``train_distances``, ``n_train``, ``n_test``.

    Notes
    -----
    In-sample, the optimal alignment flatters every pair: independent random
    representations with n = 2d reach cos θ of about 0.55 at alpha = 1 and 0.63 at
    alpha = 0, while their held-out cos θ is near 0; with n <= d the in-sample cos θ is
    1 at alpha = 0 whatever the data. Compare networks by the held-out distance when d is
    not small compared with n.

    References
    ----------
    Williams, A. H., Kunz, E., Kornblith, S. & Linderman, S. W. (2021). Generalized shape
    metrics on neural representations. NeurIPS.

    Examples
    --------
    >>> import numpy as np, nncompare as nc
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 20))
    >>> Y = X @ rng.normal(size=(20, 30)) + 0.5 * rng.normal(size=(300, 30))
    >>> cv = nc.shape_cv(X, Y, alpha=0.5, folds=5)
    >>> cv.train_distance <= cv.test_distance
    True
    """
    alpha = check_fraction("alpha", alpha, low_open=False)
    rtol = _check_rtol(rtol)
    X, Y, _, _ = _pair(X, Y, ("X", "Y"), 5, "shape_cv")
    xp = namespace(X, Y)
    n = int(X.shape[0])
    splits = _splits(n, folds, seed, shuffle)
    device = X.device if is_torch(X) else None
    tests, trains, n_train, n_test = [], [], [], []
    for i, held in enumerate(splits):
        keep = np.setdiff1d(np.arange(n), held)
        tr = xp.asarray(keep, device=device) if device is not None else keep
        te = xp.asarray(held, device=device) if device is not None else held
        try:
            metric = ShapeMetric(alpha, rtol=rtol).fit(
                xp.take(X, tr, axis=0), xp.take(Y, tr, axis=0)
            )
            res = metric.score(xp.take(X, te, axis=0), xp.take(Y, te, axis=0))
        except ValueError as exc:
            raise ValueError(
                f"shape_cv, fold {i + 1} of {len(splits)} ({keep.size} training and "
                f"{held.size} held-out samples): {exc}"
            ) from exc
        tests.append(res.value)
        trains.append(metric.train_value_)
        n_train.append(int(keep.size))
        n_test.append(int(held.size))
    test_values = np.array([to_scalar_float(v) for v in tests])
    train_values = np.array([to_scalar_float(v) for v in trains])
    test_d = np.array([_acos(v) for v in test_values])
    train_d = np.array([_acos(v) for v in train_values])
    return ShapeCVResult(
        measure="shape_cv",
        value=xp.mean(xp.stack(tests)),
        n_samples=n,
        conventions={
            "alpha": alpha,
            "folds": len(splits),
            "seed": seed,
            "shuffle": shuffle,
            "split": "K-fold over samples" if isinstance(folds, int) else "given held-out sets",
            "centering": "training means",
            "rank_rtol": rtol,
        },
        alpha=alpha,
        folds=len(splits),
        seed=seed,
        shuffle=shuffle,
        test_distance=float(np.mean(test_d)),
        train_distance=float(np.mean(train_d)),
        train_value=float(np.mean(train_values)),
        test_values=test_values,
        train_values=train_values,
        test_distances=test_d,
        train_distances=train_d,
        n_train=tuple(n_train),
        n_test=tuple(n_test),
    )
