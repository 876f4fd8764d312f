"""Direct matching: closed-form stitching matrices from streamed joint moments.

Every method works on the centred least-squares problem in channel space (Csiszárik et al.
2021, Sec. 3.2 and 4.2): the activations of A (resized to B's spatial size) and of B at the
cuts are reshaped to (N·H·W, C) matrices — every position of every image is one row — and
only their means and centred (co-)moments are kept (:class:`nncompare.JointMoments`, float64,
memory O((C_a + C_b)²) whatever N). With Cxx = A_cᵀA_c, Cxy = A_cᵀB_c (A_c, B_c centred):

* ``"ls"`` (eq. 2): M = A_c⁺ B_c = Cxx⁺ Cxy (minimum norm when A is rank deficient).
* ``"procrustes"``: M = U Vᵀ for Cxy = U S Vᵀ, the orthogonal M minimising ||A_c M - B_c||_F
  (equal widths).
* ``"rrr"`` (reduced-rank regression, Izenman 1975; the paper's Sec. 4.2): M = M_LS V_k V_kᵀ,
  V_k the top k right singular vectors of A_c M_LS, i.e. the top k eigenvectors of
  M_LSᵀ Cxx M_LS = Cxyᵀ Cxx⁺ Cxy.
* ``"lasso"`` (eq. 3, in scikit-learn's scaling): each column m_j of M minimises
  (1 / 2N)·||A_c m_j - b_j||² + α·||m_j||₁. Solved exactly by scikit-learn's coordinate
  descent on a square-root factor of the Gram matrix: with Cxx = Q diag(w) Qᵀ, R = diag(√w) Qᵀ
  and ỹ_j = diag(1/√w) Qᵀ cxy_j (positive w only), ||R m - ỹ_j||² equals ||A_c m - b_j||²
  up to a constant, so the objective is the one on the materialised data; the penalty is
  rescaled by N / rank(R) for scikit-learn's 1 / (2 n_samples).

The bias is b = mean_B - mean_A M in every case, which makes A M + b the best affine map of
the given kind (the problem separates into means and centred parts).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from nncompare._array import to_numpy
from nncompare.capture._data import iter_batches
from nncompare.errors import RankDeficiencyWarning
from nncompare.stats import JointMoments
from nncompare.stitching._result import StitchResult
from nncompare.stitching._stitched import Stitched

__all__ = ["METHODS", "channels_last_rows", "fit"]

METHODS = ("ls", "procrustes", "rrr", "lasso")


def channels_last_rows(a: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) activations -> (N·prod(...), C) rows, channels as features."""
    if a.ndim == 2:
        return a
    return a.movedim(1, -1).reshape(-1, a.shape[1])


def check_stitched(stitched: Any, where: str) -> Stitched:
    if not isinstance(stitched, Stitched):
        raise TypeError(
            f"Expected a Stitched model (from nc.stitch) as the first argument of {where}, "
            f"got {type(stitched).__name__}."
        )
    return stitched


def stream_moments(
    stitched: Stitched,
    data: Any,
    *,
    batch_size: int = 256,
    max_samples: int | None = None,
    precision: str = "float64",
) -> tuple[JointMoments, int]:
    """Joint moments of the (resized) activations of A and of B at the cuts, over positions."""
    jm = JointMoments(precision=precision)
    n_inputs = 0
    for x in iter_batches(
        data,
        batch_size,
        stitched.device,
        dtype=stitched.float_dtype,
        max_samples=max_samples,
    ):
        stitched.build(x)
        with torch.no_grad():
            a = stitched.resize_a(stitched.front_a(x))
            b = stitched.front_b(x)
        jm.update({"a": channels_last_rows(a), "b": channels_last_rows(b)})
        n_inputs += len(x)
    if jm.n < 2:
        raise ValueError(
            f"Expected data with at least 2 activation positions to fit a stitching matrix, "
            f"got {jm.n}. Pass more samples."
        )
    return jm, n_inputs


def _pinv_psd(C: np.ndarray) -> tuple[np.ndarray, int]:
    """Pseudo-inverse of a symmetric positive semi-definite matrix, and its numerical rank."""
    w, Q = np.linalg.eigh(C)
    top = float(w.max()) if w.size else 0.0
    keep = w > max(top, 0.0) * C.shape[0] * np.finfo(np.float64).eps
    inv = (Q[:, keep] / w[keep]) @ Q[:, keep].T
    return inv, int(keep.sum())


def _check_rank(k: Any, c_a: int, c_b: int, method: str) -> int:
    if k is None:
        raise ValueError(
            f"method={method!r} needs rank=, the rank k of the stitching matrix "
            f"(1 <= k <= min(C_a, C_b) = {min(c_a, c_b)}); got None."
        )
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"Expected rank to be a positive integer, got {k!r}.")
    if k > min(c_a, c_b):
        raise ValueError(
            f"Expected rank <= min(C_a, C_b) = {min(c_a, c_b)} (C_a = {c_a}, C_b = {c_b}), got "
            f"rank={k}. Choose a smaller rank, or method='ls' for the full-rank fit."
        )
    return int(k)


def _lasso(
    cxx: np.ndarray,
    cxy: np.ndarray,
    n: int,
    alpha: float,
    max_iter: int,
    tol: float,
) -> np.ndarray:
    try:
        from sklearn.linear_model import Lasso
    except ImportError as err:  # pragma: no cover - exercised only without scikit-learn
        raise ImportError(
            "method='lasso' uses scikit-learn's coordinate descent, which is not installed. "
            "Install it with `pip install 'nncompare[data]'` (or `pip install scikit-learn`)."
        ) from err
    w, Q = np.linalg.eigh(cxx)
    keep = w > max(float(w.max()), 0.0) * cxx.shape[0] * np.finfo(np.float64).eps
    root = np.sqrt(w[keep])
    R = root[:, None] * Q[:, keep].T  # R^T R = Cxx (on its range)
    Yt = (Q[:, keep].T @ cxy) / root[:, None]  # R^T Yt = Cxy
    r = int(keep.sum())
    model = Lasso(alpha=alpha * n / r, fit_intercept=False, max_iter=max_iter, tol=tol)
    model.fit(R, Yt)
    coef = np.asarray(model.coef_, dtype=np.float64).reshape(cxy.shape[1], cxy.shape[0])
    return coef.T


def fit(
    stitched: Stitched,
    data: Any,
    method: str = "ls",
    *,
    rank: int | None = None,
    alpha: float | None = None,
    batch_size: int = 256,
    max_samples: int | None = None,
    precision: str = "float64",
    max_iter: int = 10000,
    tol: float = 1e-6,
) -> StitchResult:
    """Direct matching: set the stitching layer to a closed-form fit of B's activations.

    A's activations at ``layer_a`` (resized to B's spatial size when ``resize`` is set) and
    B's at ``layer_b`` are streamed batch by batch into :class:`nncompare.JointMoments` over
    all N·H·W positions, channels as features (Csiszárik et al. 2021, Sec. 3.2); the matrix
    is then computed from the moments alone, so memory does not grow with N. See the module
    notes for the exact formulas.

    Parameters
    ----------
    stitched : Stitched
        From :func:`nncompare.stitch`; its stitching layer is overwritten.
    data : array, (inputs, labels), Dataset or DataLoader
        Inputs of the two models (labels are not used).
    method : {"ls", "procrustes", "rrr", "lasso"}, default "ls"
        Least squares M = A⁺B (eq. 2); orthogonal Procrustes (equal widths); reduced-rank
        regression M_LS V_k V_kᵀ of rank ``rank``; L1-penalised least squares with
        penalty ``alpha`` (eq. 3). For a ``"lowrank"`` stitched model use ``"rrr"``
        (``rank`` defaults to its bottleneck width).
    rank : int, optional
        The rank k for ``"rrr"``.
    alpha : float, optional
        The L1 penalty for ``"lasso"``, on the scale of scikit-learn's ``Lasso``: each
        column minimises (1 / 2N)·||A_c m - b||² + alpha·||m||₁ (N = positions).
    batch_size : int, default 256
        Inputs per forward pass.
    max_samples : int, optional
        Use only the first inputs.
    precision : {"float64", "float32", "auto"}, default "float64"
        Precision of the per-batch products (see :class:`nncompare.JointMoments`); the
        exact float64 default suits the inversions.
    max_iter, tol : int, float
        Passed to scikit-learn's coordinate descent (``"lasso"``).

    Returns
    -------
    StitchResult
        ``matrix`` (C_a, C_b), ``bias``, ``fit_r2`` on the fitted positions, ``n_samples``
        inputs and ``n_positions`` rows.

    Raises
    ------
    ValueError
        For an unknown method, a missing or too large ``rank``, Procrustes between unequal
        widths, ``alpha`` missing or not positive, or fewer than 2 positions.
    """
    check_stitched(stitched, "nc.stitching.fit")
    if method not in METHODS:
        raise ValueError(
            f"Expected method to be one of {METHODS} (direct matching; task-loss matching is "
            f"nc.stitching.train), got {method!r}."
        )
    if stitched.kind == "lowrank" and method != "rrr":
        raise ValueError(
            f"This stitched model has a rank-{stitched.rank} bottleneck (kind='lowrank'), so "
            f"it can hold only a low-rank matrix; method={method!r} gives a full-rank one. "
            f"Use method='rrr' (rank {stitched.rank}), or stitch with kind='linear'."
        )
    if method == "rrr" and stitched.kind == "lowrank":
        if rank is None:
            rank = stitched.rank
        elif isinstance(rank, int | np.integer) and rank > stitched.rank:
            raise ValueError(
                f"Expected rank <= {stitched.rank}, the bottleneck width of this "
                f"kind='lowrank' stitched model, got rank={rank}. Leave rank=None to use "
                "the bottleneck width."
            )
    if method == "lasso":
        if alpha is None or isinstance(alpha, bool) or not np.isfinite(float(alpha)) or alpha <= 0:
            raise ValueError(
                f"method='lasso' needs a finite alpha > 0 (the L1 penalty, eq. 3), got "
                f"alpha={alpha!r}. Use method='ls' for no penalty."
            )
    elif alpha is not None:
        raise ValueError(f"alpha= applies to method='lasso' only, got it with method={method!r}.")
    if method != "rrr" and rank is not None:
        raise ValueError(
            f"rank= applies to method='rrr' only, got rank={rank!r} with method={method!r}."
        )
    if stitched.stitch_layer is not None:  # check the options before the (long) pass
        c_a, c_b = stitched.widths
        if method == "procrustes" and c_a != c_b:
            raise _procrustes_widths(c_a, c_b)
        if method == "rrr":
            _check_rank(rank, c_a, c_b, method)

    jm, n_inputs = stream_moments(
        stitched, data, batch_size=batch_size, max_samples=max_samples, precision=precision
    )
    m = jm.pair("a", "b")
    n = int(m.n)
    mean_x, mean_y = to_numpy(m.mean_x).astype(np.float64), to_numpy(m.mean_y).astype(np.float64)
    cxx, cxy, cyy = (to_numpy(c).astype(np.float64) for c in (m.cxx, m.cxy, m.cyy))
    const_x = np.asarray(to_numpy(m.constant_x()), dtype=bool)
    cxx[const_x, :] = 0.0
    cxx[:, const_x] = 0.0
    cxy[const_x, :] = 0.0
    c_a, c_b = cxy.shape
    options: dict[str, Any] = {"batch_size": batch_size, "precision": precision}

    if method == "procrustes":
        if c_a != c_b:
            raise _procrustes_widths(c_a, c_b)
        U, _, Vt = np.linalg.svd(cxy)
        M = U @ Vt
    else:
        inv, r = _pinv_psd(cxx)
        live = int((~const_x).sum())
        if r < live:
            warnings.warn(
                f"The activations of model_a at {stitched.layer_a!r} span {r} of their "
                f"{live} non-constant channels; the least-squares matrix is the minimum-norm "
                "one (A⁺B), not unique.",
                RankDeficiencyWarning,
                stacklevel=2,
            )
        M = inv @ cxy
        if method == "rrr":
            k = _check_rank(rank, c_a, c_b, method)
            G = M.T @ cxx @ M
            G = (G + G.T) / 2
            _, V = np.linalg.eigh(G)
            Vk = V[:, ::-1][:, :k]
            M = M @ Vk @ Vk.T
            options["rank"] = k
        elif method == "lasso":
            M = _lasso(cxx, cxy, n, float(alpha), max_iter, tol)
            options.update(alpha=float(alpha), max_iter=max_iter, tol=tol)
    bias = mean_y - mean_x @ M
    sse = np.trace(cyy) - 2 * np.sum(M * cxy) + np.sum(M * (cxx @ M))
    sst = np.trace(cyy)
    stitched.set_matrix(M, bias)
    stitched.method = method
    return StitchResult(
        method=method,
        matrix=M,
        bias=bias,
        layer_a=stitched.layer_a,
        layer_b=stitched.layer_b,
        kind=stitched.kind,
        rank=options.get("rank", stitched.rank),
        resize=stitched.resize,
        options=options,
        n_samples=n_inputs,
        n_positions=n,
        fit_r2=float(1 - sse / sst) if sst > 0 else None,
    )


def _procrustes_widths(c_a: int, c_b: int) -> ValueError:
    return ValueError(
        f"method='procrustes' fits an orthogonal matrix, which needs equal widths at the two "
        f"cuts; got C_a = {c_a} and C_b = {c_b}. Use method='ls' (any widths) instead."
    )
