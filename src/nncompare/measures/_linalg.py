"""Linear algebra shared by the CCA family, regression and shape metrics.

Everything works on centred sums of products (``comoment`` matrices, see
:mod:`nncompare.stats`), optionally stacked along leading axes (the DFT path uses a
stack of complex blocks, one per spatial frequency). All decompositions are
Hermitian eigen-decompositions of scale-normalised matrices, so that features with
very different scales (1e-4 .. 1e4) keep their full precision: CCA and regression
are invariant to per-feature scaling, and we use that freedom to work with
correlation matrices.

Rank handling: a direction of a correlation matrix whose eigenvalue is below
``rtol`` times the largest is treated as numerically absent (duplicated features,
exact linear combinations). Constant features (values equal up to rounding, see
:func:`nncompare._validation.constant_mask`) are removed before that.

Precision of the products: co-moments formed in float32 (``precision="auto"`` with
float32 inputs, see :class:`nncompare.JointMoments`) carry relative errors of about
u = 2⁻²⁴ in every entry, which inverting a covariance amplifies. Each whitening records its
amplification ``a = ‖D^{1/2} W‖_F²`` (D the diagonal of the co-moment; ``tr R⁻¹`` for the
correlation matrix R), and measures refuse float32 products when ``a`` exceeds
:data:`FLOAT32_AMPLIFICATION_LIMIT` (:func:`check_products`): in-memory callers then
recompute the moments in float64 (:func:`linear_moments`), accumulated ``Moments`` raise
:class:`ProductPrecisionError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nncompare._array import Array, conj_t, device_of, is_torch, real
from nncompare._threads import blas_single_threaded, thread_map, worker_count
from nncompare.errors import NNCompareError

if TYPE_CHECKING:
    from nncompare.stats import Moments

DEFAULT_RTOL = 1e-10


@dataclass
class Side:
    """Whitening of one representation, computed once and reused for every partner.

    ``W`` (…, d, d) satisfies Wᴴ C W = diag(mask): the centred data times W has unit-norm,
    mutually orthogonal columns on the kept directions and zero columns elsewhere.
    """

    W: Array
    evals: Array  # eigenvalues of the correlation matrix, descending
    evecs: Array
    mask: Array  # kept directions, descending eigenvalue order
    rank: Any  # int, or integer array for stacks
    scale: Array  # 1/std per feature (0 for constant ones)
    n_constant: int
    # per-feature factors taking W from the rescaled features the measures work with to the
    # data's units (directions, regression coefficients); None when they are the same
    unscale: Array | None = None
    # how much W amplifies relative rounding errors of C: ‖D^{1/2} W‖_F² (see the module
    # notes); None when not computed (stacks of blocks)
    amplification: float | None = None
    # Cholesky whitening of R = diag(scale) C diag(scale) = L Lᵀ: L⁻¹ and L (lower
    # triangular), W = diag(scale) L⁻ᵀ
    tri: Array | None = None
    chol: Array | None = None


def _bool_to_float(xp: Any, b: Array, like: Array) -> Array:
    return xp.astype(b, real_dtype(xp, like))


def real_dtype(xp: Any, a: Array) -> Any:
    if xp.isdtype(a.dtype, "complex floating"):
        return xp.float64 if a.dtype == xp.complex128 else xp.float32
    return a.dtype


def diag(xp: Any, C: Array) -> Array:
    """Diagonal of a (stack of) square matrices, shape (..., d) (a view where possible: no
    copy of a strided block such as ``Moments.zxx``)."""
    if isinstance(C, np.ndarray):
        return np.diagonal(C, axis1=-2, axis2=-1)
    if is_torch(C):
        import torch

        return torch.diagonal(C, dim1=-2, dim2=-1)
    d = C.shape[-1]
    flat = xp.reshape(C, (*C.shape[:-2], d * d))
    return flat[..., :: d + 1]


CHOLESKY_PIVOT_FLOOR = 1e-6


def _tri_inv(xp: Any, L: Array) -> Array:
    """Inverse of a lower-triangular matrix (triangular solve where the library has one)."""
    if is_torch(L):
        import torch

        eye = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device)
        return torch.linalg.solve_triangular(L, eye, upper=False)
    if isinstance(L, np.ndarray):
        from scipy.linalg import lapack

        # L comes from a Cholesky factorisation with a zero upper triangle, which trtri
        # leaves untouched
        inv, info = lapack.get_lapack_funcs("trtri", (L,))(L, lower=1)
        if info == 0:
            return inv
        from scipy.linalg import solve_triangular

        return solve_triangular(L, np.eye(L.shape[-1]), lower=True, check_finite=False)
    return xp.linalg.inv(L)


def _cholesky(xp: Any, R: Array) -> Array:
    """Lower Cholesky factor; raises when R is not (numerically) positive definite."""
    if isinstance(R, np.ndarray):
        # numpy's LAPACK: it releases the GIL (the two sides factor concurrently) and shares
        # one BLAS with the products (see stats._upper_gram)
        return np.linalg.cholesky(R)
    return xp.linalg.cholesky(R)


def _cholesky_side(xp: Any, R: Array, scale: Array, n_constant: int) -> Side | None:
    """Whitening by Cholesky of a well-conditioned correlation matrix, or None.

    Accepted only when every pivot of the unit-diagonal correlation matrix exceeds
    ``CHOLESKY_PIVOT_FLOOR`` (so no feature is within 1e-3 of a linear combination of
    the previous ones); otherwise the eigen-decomposition decides the numerical rank.
    Cholesky costs d³/3 flops against ~9d³ for an eigen-decomposition.
    """
    if n_constant or R.ndim != 2:
        return None
    try:
        L = _cholesky(xp, R)
    except Exception:  # not positive definite: rank-deficient
        return None
    piv = diag(xp, L)
    if not bool(xp.all(piv * piv > CHOLESKY_PIVOT_FLOOR)):
        return None
    Linv = _tri_inv(xp, L)
    W = scale[:, None] * xp.matrix_transpose(Linv)
    d = R.shape[-1]
    mask = xp.ones(d, dtype=xp.bool, device=device_of(R))
    amp = _detached_float(xp.sum(Linv * Linv))  # tr R⁻¹ = ‖L⁻¹‖_F²
    return Side(
        W=W,
        evals=None,
        evecs=None,
        mask=mask,
        rank=d,
        scale=scale,
        n_constant=0,
        amplification=amp,
        tri=Linv,
        chol=L,
    )


def whiten(
    xp: Any,
    C: Array,
    constant: Array | None = None,
    *,
    rtol: float = DEFAULT_RTOL,
) -> Side:
    """Scale-normalised whitening of a (stack of) centred co-moment matrices ``C`` (…, d, d).

    Parameters
    ----------
    constant : bool array (…, d), optional
        Features known to be exactly constant; they are excluded.
    rtol : float
        Relative eigenvalue cut-off for the numerical rank.

    Notes
    -----
    A single well-conditioned real matrix is whitened by Cholesky (fast path, full rank);
    anything else — stacks, constant features, near-collinear features — by a Hermitian
    eigen-decomposition with the ``rtol`` rank cut-off. Any whitening gives the same
    canonical correlations and directions.
    """
    var = real(xp, diag(xp, C))
    if constant is None:
        constant = var <= 0
    else:
        constant = constant | (var <= 0)
    n_constant = int(xp.sum(xp.astype(constant, xp.int64)))
    safe_var = xp.where(constant, xp.ones_like(var), var)
    scale = xp.where(constant, xp.zeros_like(var), 1.0 / xp.sqrt(safe_var))
    scale_c = xp.astype(scale, C.dtype) if C.dtype != scale.dtype else scale
    R = scale_c[..., :, None] * C * scale_c[..., None, :]
    if not xp.isdtype(R.dtype, "complex floating"):
        fast = _cholesky_side(xp, R, scale_c, n_constant)
        if fast is not None:
            return fast
    if is_torch(R) and R.requires_grad:
        # autograd: constant features (dead units) give repeated zero eigenvalues, where the
        # plain eigh backward is 0/0 (NaN gradients); they are masked out below anyway
        evals, evecs = eigh_desc_stable(xp, R)
    else:
        evals, evecs = xp.linalg.eigh(R)
        # descending order
        evals = xp.flip(evals, axis=-1)
        evecs = xp.flip(evecs, axis=-1)
    lam_max = evals[..., :1]
    mask = evals > rtol * xp.where(lam_max > 0, lam_max, xp.ones_like(lam_max))
    mask = mask & (evals > 0)
    safe = xp.where(mask, evals, xp.ones_like(evals))
    inv_sqrt = xp.where(mask, 1.0 / xp.sqrt(safe), xp.zeros_like(evals))
    inv_sqrt_c = xp.astype(inv_sqrt, C.dtype) if C.dtype != inv_sqrt.dtype else inv_sqrt
    W = scale_c[..., :, None] * (evecs * inv_sqrt_c[..., None, :])
    rank_arr = xp.sum(xp.astype(mask, xp.int64), axis=-1)
    rank = int(rank_arr) if rank_arr.ndim == 0 else rank_arr
    # tr R⁺ on the kept directions
    amp = _detached_float(xp.sum(inv_sqrt * inv_sqrt)) if inv_sqrt.ndim == 1 else None
    return Side(
        W=W,
        evals=evals,
        evecs=evecs,
        mask=mask,
        rank=rank,
        scale=scale,
        n_constant=n_constant,
        amplification=amp,
    )


def _detached_float(v: Array) -> float:
    return float(v.detach()) if is_torch(v) else float(v)


# ---------------------------------------------------------------------- product precision
#: Largest amplification (``Side.amplification``) of float32 product rounding (u = 2⁻²⁴)
#: a covariance inversion may have: u · a ≤ 1e-3 bounds the error estimate. Observed errors
#: are far below the estimate: 1e-9 .. 1e-6 on real activations (ResNet-20/32 on CIFAR-10,
#: a = 9e2 .. 3e3) and on the benchmark pair (a = 5.4e2); about 5e-6 at a = 3e4.
FLOAT32_AMPLIFICATION_LIMIT = 2.0**14

_U32 = 2.0**-24


class ProductPrecisionError(NNCompareError, ValueError):
    """Co-moments formed in float32 are too inexact for the inversion a measure needs.

    Raised for accumulated ``Moments``/``JointMoments`` (``precision="auto"`` with float32
    batches, or ``precision="float32"``) whose covariance is so ill-conditioned that float32
    rounding could change the result by more than about 1e-3. Accumulate with
    ``precision="float64"``; measures given the arrays recompute in float64 themselves.
    """


def check_products(
    product_precision: str | None, amplification: float | None, *, measure: str, label: str
) -> None:
    """Raise :class:`ProductPrecisionError` when float32 products are too inexact for an
    inversion of ``label``'s covariance that amplifies their rounding ``amplification``-fold
    (``Side.amplification``; see :data:`FLOAT32_AMPLIFICATION_LIMIT`)."""
    if product_precision != "float32" or amplification is None:
        return
    a = float(amplification)
    if a <= FLOAT32_AMPLIFICATION_LIMIT:
        return
    raise ProductPrecisionError(
        f"{measure}: the co-moments were formed in float32 (precision='auto' with float32 "
        f"batches, or precision='float32'), and inverting the covariance of {label} amplifies "
        f"their rounding about {a:.3g}-fold (accepted up to {FLOAT32_AMPLIFICATION_LIMIT:g}: "
        "ill-conditioned or nearly collinear features), so the result could be off by up to "
        f"about {a * _U32:.1g}. Accumulate with precision='float64' "
        "(nc.Moments(precision='float64'), nc.JointMoments(precision='float64')), or pass the "
        "arrays themselves (the measure then recomputes in float64)."
    )


def both_sides(m: Moments, compute_x: Any, compute_y: Any) -> tuple[Any, Any]:
    """``(compute_x(), compute_y())``: the two sides' decompositions, which are independent.

    For numpy moments on a machine with several cores they run concurrently, each with
    single-threaded BLAS (numpy's LAPACK calls release the GIL): a d × d eigen-
    decomposition barely speeds up with a second BLAS thread (its reduction to tridiagonal
    form is memory bound), two of them side by side nearly halve the time. Each result is
    the same as computed alone. Elsewhere (torch, other libraries) one after the other.
    """
    if isinstance(m.zxx, np.ndarray) and worker_count() > 1:
        with blas_single_threaded():
            sx, sy = thread_map(lambda f: f(), [compute_x, compute_y], 2)
        return sx, sy
    return compute_x(), compute_y()


def whitening_side(m: Moments, which: str, rtol: float, measure: str = "cca") -> Side:
    """The whitening of one side of ``m`` (``which`` "x" or "y"), cached on the moments.

    Whitens the rescaled features (x - mean) / scale (CCA is invariant to per-feature
    scales); ``unscale`` = 1 / scale takes directions back to the data's units. Shared by
    the CCA family and the fully whitened shape metric (alpha = 0), so a grid computing
    both decomposes each layer once (:meth:`nncompare.Moments.cached`).

    Raises :class:`ProductPrecisionError` when the moments' products were float32 and this
    inversion amplifies their rounding too much.
    """

    def compute() -> Side:
        C = m.zxx if which == "x" else m.zyy
        const = m.constant_x() if which == "x" else m.constant_y()
        side = whiten(m.xp, C, const, rtol=rtol)
        side.unscale = 1.0 / (m.scale_x if which == "x" else m.scale_y)
        return side

    side = m.cached(which, ("whiten", rtol), compute)
    check_products(m.product_precision, side.amplification, measure=measure, label=which.upper())
    return side


def linear_moments(
    X: Any,
    Y: Any,
    *,
    conv: str | None,
    layout: str | None,
    measure: str,
    precision: str,
    min_samples: int = 2,
) -> tuple[Any, Any]:
    """Moments of (X, Y) with products in ``precision``, and a way back to the exact path.

    Returns ``(m, exact)``: ``exact`` is None, or — for arrays whose products were formed in
    float32 — a function returning their float64 Moments, for measures whose inversion turns
    out too ill-conditioned for float32 products (:func:`with_exact_fallback`). Accumulated
    Moments are returned as they are (``precision`` must then be left at "auto").
    """
    from nncompare.measures._inputs import prepare_pair, to_moments
    from nncompare.stats import JointMoments, Moments, check_precision

    precision = check_precision(precision)
    if isinstance(X, Moments | JointMoments):
        if precision != "auto":
            raise ValueError(
                f"{measure}: precision={precision!r} applies to arrays; these Moments were "
                "accumulated with their own precision. Pass the arrays, or accumulate with "
                f"nc.Moments(precision={precision!r})."
            )
        return to_moments(
            X, Y, conv=conv, layout=layout, measure=measure, min_samples=min_samples
        ), None
    if Y is None:
        raise TypeError(f"{measure}(X, Y) needs two activation matrices; Y is missing.")
    X, Y = prepare_pair(X, Y, conv=conv, layout=layout, min_samples=min_samples, measure=measure)
    m = Moments.from_arrays(X, Y, validated=True, precision=precision)
    if m.product_precision != "float32":
        return m, None
    return m, lambda: Moments.from_arrays(X, Y, validated=True, precision="float64")


def with_exact_fallback(compute: Any, m: Any, exact: Any) -> Any:
    """``compute(m)``; when float32 products prove too inexact (:class:`ProductPrecisionError`)
    and the arrays are at hand (``exact``), ``compute`` of their float64 Moments instead."""
    if exact is None:
        return compute(m)
    try:
        return compute(m)
    except ProductPrecisionError:
        return compute(exact())


def svdvals_via_gram(xp: Any, M: Array) -> Array:
    """Singular values of a real matrix M (descending, min(d1, d2) of them) from the
    eigenvalues of the smaller of Mᵀ M and M Mᵀ.

    About twice as fast as an SVD (a tridiagonal instead of a bidiagonal reduction), with
    an absolute error of about sqrt(d · eps) ≈ 1e-8 of the largest singular value for the
    smallest ones (eps · σ²_max in σ²): used only where the inputs themselves carry larger
    errors (co-moments formed in float32).
    """
    if M.shape[-1] <= M.shape[-2]:
        G = xp.matrix_transpose(M) @ M
    else:
        G = M @ xp.matrix_transpose(M)
    ev = xp.flip(xp.linalg.eigvalsh(G), axis=-1)
    return xp.sqrt(xp.clip(ev, 0.0, None))


def whitened_cross(xp: Any, side_x: Side, side_y: Side, Cxy: Array) -> Array:
    """Wₓᴴ Cxy W_y (two general products: numpy's BLAS, shared with every other product;
    triangular products would need scipy's second BLAS, see stats._upper_gram)."""
    return conj_t(xp, side_x.W) @ Cxy @ side_y.W


@dataclass
class CCACore:
    rho: Array  # (..., kmax) descending; entries past k are not canonical correlations
    k: Any  # int or int array: number of canonical correlations
    U: Array | None
    Vh: Array | None
    side_x: Side
    side_y: Side
    cxy: Array = None


def cca_core(
    xp: Any,
    side_x: Side,
    side_y: Side,
    Cxy: Array,
    *,
    want_vectors: bool = True,
    differentiable_vectors: bool = False,
    values_from_gram: bool = False,
) -> CCACore:
    """Canonical correlations from two whitenings and the cross co-moment ``Cxy`` (…, d1, d2).

    ``differentiable_vectors``: keep the singular vectors in the autograd graph (PWCCA's
    weights depend on them); otherwise only the correlations carry gradients, which stay
    well defined even when correlations repeat. ``values_from_gram``: correlations alone
    from :func:`svdvals_via_gram` (for co-moments formed in float32, without autograd).
    """
    M = whitened_cross(xp, side_x, side_y, Cxy)
    U = Vh = None
    needs_grad = bool(getattr(M, "requires_grad", False))
    if want_vectors and not needs_grad:
        U, rho, Vh = xp.linalg.svd(M, full_matrices=False)
    elif values_from_gram and not want_vectors and not needs_grad and M.ndim == 2:
        rho = svdvals_via_gram(xp, M)
    else:
        # singular values alone have well-defined gradients even when they repeat
        rho = xp.linalg.svdvals(M)
        if want_vectors:
            Mv = M if differentiable_vectors else M.detach()
            U, _, Vh = xp.linalg.svd(Mv, full_matrices=False)
    if isinstance(side_x.rank, int):
        k = min(side_x.rank, side_y.rank)
    else:
        k = xp.minimum(side_x.rank, side_y.rank)
    # canonical correlations are cosines: clip the last-ulp excursions above 1
    rho = xp.clip(rho, 0.0, 1.0)
    return CCACore(rho=rho, k=k, U=U, Vh=Vh, side_x=side_x, side_y=side_y, cxy=Cxy)


def check_not_trivial(n: int, rank_x: Any, rank_y: Any, *, what: str = "CCA") -> None:
    """Raise when the sample size forces canonical correlations of exactly 1.

    After centring, n samples span an (n - 1)-dimensional space; two subspaces of
    dimensions r_x and r_y inside it share at least r_x + r_y - (n - 1) dimensions, so
    that many canonical correlations equal 1 whatever the data.
    """
    import numpy as np

    rx = np.asarray(rank_x)
    ry = np.asarray(rank_y)
    forced = int(np.max(rx + ry - (n - 1)))
    if forced > 0:
        raise ValueError(
            f"{what} is trivially perfect here: with n={n} samples the centred data span "
            f"{n - 1} dimensions, and the inputs have ranks {int(np.max(rx))} and "
            f"{int(np.max(ry))}, so at least {forced} canonical correlation(s) equal 1 "
            "whatever the data. Use more samples than rank_x + rank_y (ideally many times "
            "more), reduce dimensions first (nc.svcca(..., dims=k) with 2k < n), use "
            "conv='samples' or conv='mean' for convolutional activations, or a measure that "
            "is meaningful for n < d (nc.cka, nc.procrustes)."
        )


def sqrtm_psd(xp: Any, C: Array) -> Array:
    """Symmetric square root of a positive semi-definite matrix (negative eigenvalues → 0)."""
    evals, evecs = xp.linalg.eigh(C)
    # eigenvalues within roundoff of zero are zero (their square roots would be ~sqrt(eps))
    tol = C.shape[-1] * float(np.finfo(np.float64).eps) * xp.max(xp.abs(evals))
    evals = xp.where(evals > tol, evals, xp.zeros_like(evals))
    return (evecs * xp.sqrt(evals)[..., None, :]) @ conj_t(xp, evecs)


def eigh_desc_stable(xp: Any, A: Array, *, cluster_rtol: float = 1e-10) -> tuple[Array, Array]:
    """Eigenvalues (descending) and eigenvectors of a real symmetric matrix, for autograd.

    The exact eigenvector derivative has terms 1 / (λ_j - λ_i), infinite when eigenvalues
    repeat (X == Y makes every canonical correlation 1). Within a cluster of eigenvalues
    equal to ``cluster_rtol`` times the largest magnitude, the basis is arbitrary and no
    first-order change of a basis-independent quantity flows through those terms; they are
    set to zero, as in degenerate perturbation theory. Elsewhere the gradient is exact.
    Without autograd this is ``eigh`` in descending order.
    """
    if not (is_torch(A) and A.requires_grad and A.ndim == 2):
        evals, evecs = xp.linalg.eigh(A)
        return xp.flip(evals, axis=-1), xp.flip(evecs, axis=-1)
    return _stable_eigh_function().apply(A, float(cluster_rtol))


_STABLE_EIGH: Any = None


def _stable_eigh_function() -> Any:
    global _STABLE_EIGH
    if _STABLE_EIGH is None:
        import torch

        class StableEigh(torch.autograd.Function):
            @staticmethod
            def forward(ctx: Any, A: Any, rtol: float) -> tuple[Any, Any]:
                evals, evecs = torch.linalg.eigh(A)
                evals, evecs = evals.flip(-1), evecs.flip(-1)
                ctx.save_for_backward(evals, evecs)
                ctx.rtol = rtol
                return evals, evecs

            @staticmethod
            def backward(ctx: Any, g_evals: Any, g_evecs: Any) -> tuple[Any, None]:
                evals, evecs = ctx.saved_tensors
                inner = torch.zeros(
                    evecs.shape[-1], evecs.shape[-1], dtype=evecs.dtype, device=evecs.device
                )
                if g_evals is not None:
                    inner = inner + torch.diag_embed(g_evals)
                if g_evecs is not None:
                    gap = evals[None, :] - evals[:, None]  # λ_j - λ_i
                    tol = ctx.rtol * float(evals.abs().max().clamp_min(1e-300))
                    far = gap.abs() > tol
                    F = torch.where(far, 1.0 / torch.where(far, gap, torch.ones_like(gap)), 0.0)
                    inner = inner + F * (evecs.mT @ g_evecs)
                return evecs @ inner @ evecs.mT, None

        _STABLE_EIGH = StableEigh
    return _STABLE_EIGH
