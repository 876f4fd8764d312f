"""The CCA family: CCA, R²_CCA, SVCCA and PWCCA.

All four are computed from the means and centred second moments of the two
representations (:class:`nncompare.Moments`), so each works identically in memory
and streamed batch by batch. Every function accepts

* ``X`` (n, d1) and ``Y`` (n, d2) arrays (numpy or torch; torch stays torch, with autograd),
* convolutional activations (N, H, W, C) / (N, L, C) with ``conv=`` one of
  ``"samples"``, ``"flatten"``, ``"mean"`` or ``"dft"`` (exact DFT path, Raghu et al. §3.1),
* or a filled :class:`nncompare.Moments` as the single argument.

Conventions (shared by the family)
----------------------------------
* Columns are centred; per-feature scales are normalised before decomposition
  (CCA is invariant to them), so scales spanning 1e-4..1e4 lose no precision.
* Constant features (equal up to rounding: max - min <= 8 eps max(|min|, |max|)) are
  ignored; directions whose correlation-matrix eigenvalue
  falls below ``rtol`` times the largest are treated as absent (numerical rank). Both
  emit a warning and are reported in the result (``rank_x``, ``n_constant_x``, ...).
* Canonical correlations number k = min(rank_x, rank_y); "mean CCA" averages all k
  (not google/svcca's 98%-of-sum truncated mean).
* When rank_x + rank_y > n - 1 some canonical correlations are 1 whatever the data;
  this raises ``ValueError`` instead of returning a meaningless 1.
* No ridge regularisation (google/svcca's ``epsilon``) unless ``convention="google"``.
* ``precision="auto"`` (default) forms the products in the inputs' own precision: float32
  for float32 arrays (half the time of float64), summed in float64, every decomposition in
  float64; agreement with ``precision="float64"`` (the exact path) is about 1e-7 .. 1e-6.
  When a covariance is too ill-conditioned for float32 products (nearly collinear
  features, see :data:`nncompare.measures._linalg.FLOAT32_AMPLIFICATION_LIMIT`) the
  moments are recomputed in float64 automatically; accumulated float32 Moments raise
  :class:`~nncompare.measures._linalg.ProductPrecisionError` instead.

References
----------
Hotelling, H. (1936). Relations between two sets of variates. Biometrika 28, 321-377.
Raghu, M., Gilmer, J., Yosinski, J. & Sohl-Dickstein, J. (2017). SVCCA: Singular Vector
Canonical Correlation Analysis for Deep Learning Dynamics and Interpretability. NeurIPS.
Morcos, A. S., Raghu, M. & Bengio, S. (2018). Insights on representational similarity in
neural networks with canonical correlation. NeurIPS, Section 2.2.
Kornblith, S., Norouzi, M., Lee, H. & Hinton, G. (2019). Similarity of neural network
representations revisited. ICML, Section 4 (R²_CCA).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nncompare._array import Array, conj_t, device_of, to_numpy
from nncompare._validation import (
    ConstantFeatureWarning,
    RankDeficiencyWarning,
    warn,
)
from nncompare.measures._linalg import (
    DEFAULT_RTOL,
    CCACore,
    Side,
    both_sides,
    cca_core,
    check_not_trivial,
    check_products,
    diag,
    eigh_desc_stable,
    linear_moments,
    whitened_cross,
    whitening_side,
    with_exact_fallback,
)
from nncompare.measures._params import (
    CONV,
    LAYOUT,
    POSITIVE_INT,
    PRECISION,
    RTOL,
    Boolean,
    Interval,
    Options,
    Pair,
    constrain,
)
from nncompare.results import CCAResult, PWCCAResult, SVCCAResult
from nncompare.stats import Moments

__all__ = ["cca", "cca_r2", "pwcca", "svcca"]


# ---------------------------------------------------------------------- helpers
def _warn_rank(m: Moments, sx: Side, sy: Side, measure: str) -> None:
    for label, side, d in (("X", sx, m.d1), ("Y", sy, m.d2)):
        if side.n_constant:
            warn(
                f"{measure}: {label} has {side.n_constant} constant feature(s) out of {d}; "
                "they carry no information and were ignored.",
                ConstantFeatureWarning,
            )
        if side.rank < d - side.n_constant:
            warn(
                f"{measure}: {label} is rank-deficient (numerical rank {side.rank} of "
                f"{d - side.n_constant} non-constant features: duplicated or linearly dependent "
                f"features); CCA is computed in its {side.rank}-dimensional column space.",
                RankDeficiencyWarning,
            )


def _all_constant(m: Moments, sx: Side, sy: Side, measure: str) -> None:
    for label, side, d in (("X", sx, m.d1), ("Y", sy, m.d2)):
        if side.rank == 0:
            raise ValueError(
                f"{measure} is undefined: every feature of {label} is constant over the "
                f"{m.n} samples ({d} features), so {label} carries no information. Check the "
                "layer (dead units?) or the inputs."
            )


def _core(
    m: Moments,
    rtol: float,
    measure: str,
    sx: Side | None = None,
    sy: Side | None = None,
    warn_rank: bool = True,
    differentiable_vectors: bool = False,
    want_vectors: bool = True,
    decompose: bool = True,
) -> CCACore:
    if sx is None and sy is None:
        sx, sy = both_sides(
            m,
            lambda: whitening_side(m, "x", rtol, measure),
            lambda: whitening_side(m, "y", rtol, measure),
        )
    sx = sx if sx is not None else whitening_side(m, "x", rtol, measure)
    sy = sy if sy is not None else whitening_side(m, "y", rtol, measure)
    _all_constant(m, sx, sy, measure)
    check_not_trivial(m.n, sx.rank, sy.rank, what=measure)
    if warn_rank:
        _warn_rank(m, sx, sy, measure)
    if not decompose:  # the caller decomposes the whitened cross moments itself
        k = min(sx.rank, sy.rank)
        return CCACore(rho=None, k=k, U=None, Vh=None, side_x=sx, side_y=sy, cxy=m.zxy)
    return cca_core(
        m.xp,
        sx,
        sy,
        m.zxy,
        want_vectors=want_vectors,
        differentiable_vectors=differentiable_vectors,
        values_from_gram=m.product_precision == "float32",
    )


def _lazy_directions(core: CCACore, n: int) -> Any:
    """Directions as a deferred computation (vectors only when someone asks for them)."""
    if core.U is not None:
        return _directions(core, n)

    def compute() -> tuple[Array, Array]:
        import array_api_compat

        xp = array_api_compat.array_namespace(core.side_x.W)
        M = conj_t(xp, core.side_x.W) @ core.cxy @ core.side_y.W
        if hasattr(M, "detach"):
            M = M.detach()
        core.U, _, core.Vh = xp.linalg.svd(M, full_matrices=False)
        return _directions(core, n)

    return compute


def _directions(core: CCACore, n: int) -> tuple[Array, Array]:
    k = core.k
    sx, sy = core.side_x, core.side_y
    xp_scale = math.sqrt(max(n - 1, 1))
    A = (sx.W @ core.U[:, :k]) * xp_scale
    B = (sy.W @ conj_t_(core.Vh)[:, :k]) * xp_scale
    if sx.unscale is not None:
        A = sx.unscale[:, None] * A
    if sy.unscale is not None:
        B = sy.unscale[:, None] * B
    return A, B


def conj_t_(a: Array) -> Array:
    import array_api_compat

    return conj_t(array_api_compat.array_namespace(a), a)


def _dft_precision(precision: str, measure: str) -> dict[str, Any]:
    """Keyword arguments passing ``precision`` on to the DFT path (which may not take it)."""
    from nncompare.stats import check_precision

    if check_precision(precision) == "auto":
        return {}
    import inspect

    from nncompare.measures.conv import dft_cca

    if "precision" in inspect.signature(dft_cca).parameters:
        return {"precision": precision}
    raise ValueError(
        f"{measure}: precision={precision!r} applies to the moments path; conv='dft' forms "
        "its own products. Leave precision at 'auto' with conv='dft'."
    )


# ---------------------------------------------------------------------- CCA
@constrain(conv=CONV, layout=LAYOUT, rtol=RTOL, precision=PRECISION)
def cca(
    X: Any,
    Y: Any = None,
    *,
    conv: str | None = None,
    layout: str | None = None,
    rtol: float = DEFAULT_RTOL,
    precision: str = "auto",
) -> CCAResult:
    """Canonical correlation analysis; value = mean canonical correlation.

    Finds directions a_i, b_i maximising corr(X a_i, Y b_i) subject to the variates being
    uncorrelated with the earlier ones (Hotelling 1936). With Σ the centred covariances,
    the canonical correlations ρ_1 ≥ ρ_2 ≥ … ≥ ρ_k are the singular values of
    Σ_XX^{-1/2} Σ_XY Σ_YY^{-1/2}.

    Parameters
    ----------
    X : array (n, d1), conv activations (see ``conv``), or :class:`~nncompare.Moments`
    Y : array (n, d2), or None when ``X`` is a Moments
    conv : {None, "samples", "flatten", "mean", "dft"}
        How convolutional activations (N, H, W, C) are turned into matrices; see
        :func:`nncompare.reshape_conv`. ``"dft"`` runs the exact block-diagonal DFT path.
    layout : {None, "NHWC", "NCHW"}
        Where the channels of convolutional activations are. None: the array's own tag
        (:class:`nncompare.LayoutArray`; :func:`nncompare.capture` tags its output "NCHW"),
        else channels last, with a :class:`nncompare.LayoutWarning` when the shape looks
        channels first.
    rtol : float, default 1e-10
        Relative eigenvalue cut-off defining the numerical rank.
    precision : {"auto", "float32", "float64"}, default "auto"
        Precision of the products (arrays only): ``"auto"`` the inputs' own (float32 for
        float32 arrays, agreeing with the exact path to about 1e-6; recomputed in float64
        when a covariance is too ill-conditioned for that), ``"float64"`` the exact path.

    Returns
    -------
    CCAResult
        ``value`` = mean(ρ); ``rho`` (k,), ``directions_x`` (d1, k), ``directions_y`` (d2, k),
        ``rank_x``, ``rank_y``, ``n_constant_x``, ``n_constant_y``.

    Raises
    ------
    ValueError
        Non-finite values, mismatched samples, all-constant input, or rank_x + rank_y ≥ n
        (some correlations would be 1 whatever the data).

    Examples
    --------
    >>> import numpy as np, nncompare as nc
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 10))
    >>> r = nc.cca(X, X @ rng.normal(size=(10, 10)) + 3.0)
    >>> round(float(r), 8)
    1.0
    """
    rtol = float(rtol)
    if conv == "dft":
        from nncompare.measures.conv import dft_cca

        return dft_cca(X, Y, rtol=rtol, layout=layout, **_dft_precision(precision, "cca"))
    m, exact = linear_moments(X, Y, conv=conv, layout=layout, measure="cca", precision=precision)
    return with_exact_fallback(lambda m: _cca(m, rtol, conv), m, exact)


def _cca(m: Moments, rtol: float, conv: str | None) -> CCAResult:
    core = _core(m, rtol, "cca", want_vectors=False)
    xp = m.xp
    k = core.k
    rho = core.rho[:k]
    return CCAResult(
        measure="cca",
        value=xp.mean(rho),
        n_samples=m.n,
        conventions=_conventions(conv, rtol, "mean of all k = min(rank_x, rank_y) correlations"),
        rho=rho,
        directions=_lazy_directions(core, m.n),
        rank_x=core.side_x.rank,
        rank_y=core.side_y.rank,
        n_constant_x=core.side_x.n_constant,
        n_constant_y=core.side_y.n_constant,
    )


@constrain(conv=CONV, layout=LAYOUT, rtol=RTOL, precision=PRECISION)
def cca_r2(
    X: Any,
    Y: Any = None,
    *,
    conv: str | None = None,
    layout: str | None = None,
    rtol: float = DEFAULT_RTOL,
    precision: str = "auto",
) -> CCAResult:
    """Mean squared canonical correlation, R²_CCA (Kornblith et al. 2019, Section 4).

    .. math:: R^2_{CCA} = \\frac{1}{k} \\sum_{i=1}^{k} \\rho_i^2
              = \\frac{\\|Q_X^T Q_Y\\|_F^2}{k}

    with Q the orthonormal bases of the centred inputs and k = min(rank_x, rank_y). Same
    parameters and details as :func:`cca`. Kornblith et al. divide by min(d1, d2); we divide
    by the ranks, which equals it for full-rank inputs and stays meaningful otherwise.
    """
    rtol = float(rtol)
    base = cca(X, Y, conv=conv, layout=layout, rtol=rtol, precision=precision)
    rho = base.rho if conv != "dft" else None
    if conv == "dft":
        import numpy as np

        r = base.rho
        value = float(np.mean(r**2))
        return type(base)(**{**base.__dict__, "measure": "cca_r2", "value": value})
    import array_api_compat

    xp = array_api_compat.array_namespace(rho)
    return CCAResult(
        measure="cca_r2",
        value=xp.mean(rho**2),
        n_samples=base.n_samples,
        conventions={**base.conventions, "average": "mean of squared correlations over k"},
        rho=rho,
        directions=base.directions,
        rank_x=base.rank_x,
        rank_y=base.rank_y,
        n_constant_x=base.n_constant_x,
        n_constant_y=base.n_constant_y,
    )


def _conventions(conv: str | None, rtol: float, average: str) -> dict[str, Any]:
    return {
        "conv": conv,
        "centering": "columns",
        "rank_rtol": rtol,
        "average": average,
        "regularization": "none",
    }


# ---------------------------------------------------------------------- SVCCA
def _pca_side(
    xp: Any, C: Array, *, variance: float | None, dims: int | None, label: str, rtol: float
) -> tuple[Side, float]:
    """Keep the top principal directions of a centred co-moment matrix; whiten them."""
    # descending; under autograd without the 0/0 of repeated (e.g. constant-feature) zeros
    evals, evecs = eigh_desc_stable(xp, C)
    ev = to_numpy(evals)
    import numpy as np

    total = float(np.clip(ev, 0, None).sum())
    if total <= 0:
        raise ValueError(f"svcca is undefined: {label} has zero variance (every feature constant).")
    rank = int(np.sum(ev > rtol * ev[0]))
    if dims is not None:
        if dims > C.shape[-1]:
            raise ValueError(
                f"dims={dims} exceeds the number of features of {label} ({C.shape[-1]}); "
                f"pass dims <= {C.shape[-1]}."
            )
        k = dims
        if k > rank:
            warn(
                f"svcca: {label} has numerical rank {rank} < dims={dims}; keeping {rank} "
                "directions.",
                RankDeficiencyWarning,
            )
            k = rank
    else:
        ratio = np.cumsum(np.clip(ev, 0, None)) / total
        # smallest k whose cumulative fraction exceeds `variance` (scikit-learn's PCA rule)
        k = int(np.searchsorted(ratio, variance, side="right")) + 1
        k = min(k, rank)
    explained = float(np.clip(ev[:k], 0, None).sum() / total)
    d = C.shape[-1]
    keep = np.zeros(d, dtype=bool)
    keep[:k] = True
    mask = xp.asarray(keep, device=device_of(evals))
    # the k kept directions only (descending order: the first k columns)
    W = evecs[:, :k] * (1.0 / xp.sqrt(xp.abs(evals[:k])))[None, :]
    # rounding amplification ‖D^{1/2} W‖_F² (see _linalg), D the diagonal of C
    amp = xp.sum(diag(xp, C)[:, None] * (W * W))
    side = Side(
        W=W,
        evals=evals,
        evecs=evecs,
        mask=mask,
        rank=k,
        scale=xp.ones_like(evals),
        n_constant=0,
        amplification=float(amp.detach()) if hasattr(amp, "detach") else float(amp),
    )
    return side, explained


@constrain(
    variance=[Interval(float, 0, 1, closed="right"), None],
    dims=[POSITIVE_INT, Pair(POSITIVE_INT, ("dims_x", "dims_y")), None],
    conv=CONV,
    layout=LAYOUT,
    rtol=RTOL,
    precision=PRECISION,
)
def svcca(
    X: Any,
    Y: Any = None,
    *,
    variance: float | None = 0.99,
    dims: int | tuple[int, int] | None = None,
    conv: str | None = None,
    layout: str | None = None,
    rtol: float = DEFAULT_RTOL,
    precision: str = "auto",
) -> SVCCAResult:
    """Singular Vector CCA (Raghu et al. 2017, Section 2); value = mean canonical correlation.

    Step 1 (SV): per input, keep the top singular directions of the centred data — the
    smallest number whose cumulative fraction of the variance (squared singular values)
    exceeds ``variance`` (scikit-learn's PCA rule), or exactly ``dims`` directions.
    Step 2 (CCA): canonical correlations between the kept principal-component scores.

    Parameters
    ----------
    X, Y, conv, rtol
        As in :func:`cca`. With ``conv="dft"`` the directions are selected by variance over
        all spatial frequencies jointly, which is the exact SVCCA of the flattened
        representation for translation-invariant data (Raghu et al. §3.1).
    variance : float in (0, 1], default 0.99
        Fraction of variance to keep (ignored when ``dims`` is given).
    dims : int or (int, int), optional
        Number of directions to keep, for both inputs or per input (google/svcca's tutorial
        "keep top k", e.g. 20).
    precision : {"auto", "float32", "float64"}, default "auto"
        Precision of the products, as in :func:`cca`.

    Returns
    -------
    SVCCAResult
        As :class:`CCAResult` plus ``kept_dims_x``, ``kept_dims_y``,
        ``variance_explained_x``, ``variance_explained_y``. ``directions_x`` are expressed in
        the original feature coordinates.

    Notes
    -----
    Known differences: anatome keeps singular *values* (not variances) summing to 99% of
    uncentred data (not translation invariant); google's tutorial keeps a fixed k and adds
    a 1e-10 ridge; rtd centres the wrong axis. See the README's measure table.
    """
    rtol = float(rtol)
    dx = dy = None
    if dims is not None:  # values checked by @constrain
        dx, dy = (int(d) for d in dims) if isinstance(dims, tuple | list) else (int(dims),) * 2
        variance = None
    elif variance is None:
        raise ValueError(
            "svcca: variance=None needs dims (the number of directions to keep); pass a "
            "fraction of variance such as variance=0.99, or dims=20."
        )
    else:
        variance = float(variance)
    if conv == "dft":
        from nncompare.measures.conv import dft_cca

        return dft_cca(
            X,
            Y,
            rtol=rtol,
            variance=variance,
            dims=(dx, dy) if dx else None,
            layout=layout,
            **_dft_precision(precision, "svcca"),
        )
    m, exact = linear_moments(X, Y, conv=conv, layout=layout, measure="svcca", precision=precision)
    return with_exact_fallback(lambda m: _svcca(m, variance, dx, dy, rtol, conv), m, exact)


def _svcca(
    m: Moments,
    variance: float | None,
    dx: int | None,
    dy: int | None,
    rtol: float,
    conv: str | None,
) -> SVCCAResult:
    xp = m.xp
    # PCA is invariant to isotropic scaling only: work in units of each side's largest scale
    txx, tyy, txy = m.normalized()

    def pca(which: str, C: Array, d: int | None) -> tuple[Side, Any]:
        side, explained = _pca_side(
            xp, C, variance=variance, dims=d, label=which.upper(), rtol=rtol
        )
        _, g = m.relative_scale(which)
        side.unscale = xp.full(C.shape[-1], 1.0 / g, dtype=C.dtype, device=device_of(C))
        return side, explained

    (sx, ex), (sy, ey) = both_sides(
        m,
        lambda: m.cached("x", ("pca", variance, dx, rtol), lambda: pca("x", txx, dx)),
        lambda: m.cached("y", ("pca", variance, dy, rtol), lambda: pca("y", tyy, dy)),
    )
    check_products(m.product_precision, sx.amplification, measure="svcca", label="X")
    check_products(m.product_precision, sy.amplification, measure="svcca", label="Y")
    check_not_trivial(m.n, sx.rank, sy.rank, what="svcca")
    n_const = {}
    for label, const, d in (("X", m.constant_x(), m.d1), ("Y", m.constant_y(), m.d2)):
        c = int(to_numpy(const).sum())
        n_const[label] = c
        if c:
            warn(
                f"svcca: {label} has {c} constant feature(s) out of {d}; they carry no variance "
                "and are never among the kept directions.",
                ConstantFeatureWarning,
            )
    core = cca_core(
        xp, sx, sy, txy, want_vectors=False, values_from_gram=m.product_precision == "float32"
    )
    k = core.k
    rho = core.rho[:k]
    conventions = _conventions(conv, rtol, "mean of all k correlations between kept directions")
    conventions.update(
        {
            "selection": f"top {dx}/{dy} directions"
            if dx
            else f"smallest k with cumulative variance fraction > {variance}",
        }
    )
    return SVCCAResult(
        measure="svcca",
        value=xp.mean(rho),
        n_samples=m.n,
        conventions=conventions,
        rho=rho,
        directions=_lazy_directions(core, m.n),
        rank_x=sx.rank,
        rank_y=sy.rank,
        n_constant_x=n_const["X"],
        n_constant_y=n_const["Y"],
        kept_dims_x=sx.rank,
        kept_dims_y=sy.rank,
        variance_explained_x=ex,
        variance_explained_y=ey,
    )


# ---------------------------------------------------------------------- PWCCA
@constrain(
    convention=Options("paper", "google"),
    symmetric=Boolean(),
    conv=CONV,
    layout=LAYOUT,
    rtol=RTOL,
    epsilon=Interval(float, 0, None, closed="left"),
    precision=PRECISION,
)
def pwcca(
    X: Any,
    Y: Any = None,
    *,
    convention: str = "paper",
    symmetric: bool = False,
    conv: str | None = None,
    layout: str | None = None,
    rtol: float = DEFAULT_RTOL,
    epsilon: float = 0.0,
    precision: str = "auto",
) -> PWCCAResult:
    """Projection-weighted CCA (Morcos, Raghu & Bengio 2018, Section 2.2).

    With h_i = X̃ a_i the canonical variates of the *first* argument (orthonormalised by
    Gram–Schmidt) and z_j its neuron activation vectors,

    .. math:: \\tilde\\alpha_i = \\sum_j |\\langle h_i, z_j\\rangle|, \\quad
              \\alpha_i = \\tilde\\alpha_i / \\sum_k \\tilde\\alpha_k, \\quad
              \\mathrm{PWCCA}(X, Y) = \\sum_i \\alpha_i \\rho_i .

    The paper's distance is 1 - PWCCA (``result.distance``); it is not symmetric.

    Parameters
    ----------
    convention : {"paper", "google"}
        ``"paper"`` (default): weights from the first argument's canonical variates, as
        defined in the paper; translation invariant (h_i is centred, so centring z_j changes
        nothing). ``"google"``: reproduces google/svcca ``compute_pwcca`` numbers — weights
        from the side with fewer kept neurons, directions Uᵀ(A − m) + m with uncentred
        activations, its covariance rescaling and ``epsilon`` pruning+ridge — with the
        argument-order crash of the original fixed (its second branch indexes the wrong
        input). That convention depends on neuron order and on the activation means.
    symmetric : bool, default False
        Average PWCCA(X, Y) and PWCCA(Y, X) (paper convention only).
    conv, rtol
        As in :func:`cca`.
    epsilon : float, default 0
        google convention only: google/svcca's epsilon (relative variance pruning and ridge).
    precision : {"auto", "float32", "float64"}, default "auto"
        Precision of the products, as in :func:`cca`.

    Returns
    -------
    PWCCAResult
        ``value``, ``rho``, ``weights`` (aligned with rho), ``weights_y`` when symmetric.
    """
    rtol = float(rtol)
    if conv == "dft":
        raise ValueError(
            "pwcca does not support conv='dft' (projection weights need the neuron basis, "
            "which the DFT mixes). Use conv='mean', 'samples' or 'flatten'."
        )
    if convention == "google" and symmetric:
        raise ValueError("symmetric=True is defined for convention='paper' only.")
    if convention == "paper" and epsilon:
        raise ValueError("epsilon applies to convention='google' only; got epsilon with 'paper'.")
    m, exact = linear_moments(X, Y, conv=conv, layout=layout, measure="pwcca", precision=precision)
    return with_exact_fallback(
        lambda m: _pwcca(m, convention, symmetric, rtol, float(epsilon), conv), m, exact
    )


def _pwcca(
    m: Moments, convention: str, symmetric: bool, rtol: float, epsilon: float, conv: str | None
) -> PWCCAResult:
    xp = m.xp
    if convention == "google":
        sx, sy = both_sides(
            m,
            lambda: whitening_side(m, "x", rtol, "pwcca"),
            lambda: whitening_side(m, "y", rtol, "pwcca"),
        )
        _all_constant(m, sx, sy, "pwcca")
        check_not_trivial(m.n, sx.rank, sy.rank, what="pwcca")
        return _pwcca_google(m, epsilon=epsilon)
    plain_numpy = isinstance(m.zxy, np.ndarray) and not symmetric
    core = _core(m, rtol, "pwcca", want_vectors=False, decompose=False)
    k = core.k
    M = whitened_cross(xp, core.side_x, core.side_y, m.zxy)
    # Only the kept whitened directions: the dropped ones are zero rows/columns of M, and a
    # zero canonical correlation's singular vector could otherwise lie along them (then
    # W U has a zero column and the projection weights are 0/0). Full-rank sides keep all.
    mx, my = core.side_x.mask, core.side_y.mask
    if not (bool(xp.all(mx)) and bool(xp.all(my))):
        M = M[mx, :][:, my]
    V = None
    if plain_numpy:
        # Only the left singular vectors are needed: the eigenvectors of M Mᵀ (a symmetric
        # eigenproblem of the smaller side) cost a third of a full SVD; ρ² are its eigenvalues.
        evals, evecs = np.linalg.eigh(M @ M.T)
        order = np.argsort(evals)[::-1][:k]
        rho = np.sqrt(np.clip(evals[order], 0.0, 1.0))
        U = evecs[:, order]
    elif getattr(M, "requires_grad", False):
        # Autograd: ρ from the singular values (their gradients are finite even when they
        # repeat) and the weights' directions from eigenvectors whose gradient ignores
        # rotations inside clusters of equal correlations (X == Y, Y = X Q: all ρ = 1),
        # where the exact SVD gradient is 0/0.
        rho = xp.clip(xp.linalg.svdvals(M)[:k], 0.0, 1.0)
        U = eigh_desc_stable(xp, M @ xp.matrix_transpose(M))[1][:, :k]
        if symmetric:
            V = eigh_desc_stable(xp, xp.matrix_transpose(M) @ M)[1][:, :k]
    else:
        U, rho, Vh = xp.linalg.svd(M, full_matrices=False)
        rho, U, V = xp.clip(rho[:k], 0.0, 1.0), U[:, :k], conj_t(xp, Vh)[:, :k]
    # projection weights need the neurons' own scales: columns of the rescaled moments are
    # multiplied back by scale / g (the common factor g cancels in the normalisation)
    rel_x, _ = m.relative_scale("x")
    wx = _side_weights(xp, core.side_x, U, m.zxx, rel_x)
    value = xp.sum(wx * rho)
    weights_y = None
    if symmetric:
        rel_y, _ = m.relative_scale("y")
        wy = _side_weights(xp, core.side_y, V, m.zyy, rel_y)
        value = 0.5 * (value + xp.sum(wy * rho))
        weights_y = wy
    return PWCCAResult(
        measure="pwcca",
        value=value,
        n_samples=m.n,
        conventions={
            **_conventions(conv, rtol, "projection-weighted"),
            "convention": "paper",
            "weights_from": "both (averaged)" if symmetric else "first argument (X)",
        },
        rho=rho,
        weights=wx,
        weights_y=weights_y,
        rank_x=core.side_x.rank,
        rank_y=core.side_y.rank,
    )


def _side_weights(xp: Any, side: Side, U: Array, C: Array, col_scale: Array) -> Array:
    """Projection weights of the canonical variates with whitened directions ``U`` (d, k).

    For a Cholesky whitening of numpy moments (full rank) the variates h = X̃ W U are
    orthonormal already (Uᵀ Wᵀ C W U = Uᵀ U = I), so Gram–Schmidt is the identity, and
    ⟨h_i, z_j⟩ = (Uᵀ Wᵀ C)_ij = ((L U)ᵀ diag(1/scale))_ij since C W = diag(1/scale) L: one
    triangular product instead of four general ones, a Cholesky and a solve (equal to
    rounding). Otherwise :func:`_projection_weights`.
    """
    L = side.chol
    if L is not None and isinstance(U, np.ndarray) and U.dtype == np.float64:
        LU = L @ U
        P = xp.matrix_transpose(LU) * (col_scale / side.scale)[None, :]
        w = xp.sum(xp.abs(P), axis=1)
        return w / xp.sum(w)
    W = side.W if U.shape[0] == side.W.shape[-1] else side.W[:, side.mask]  # kept directions
    return _projection_weights(xp, W @ U, C, col_scale)


def _projection_weights(xp: Any, A: Array, C: Array, col_scale: Array) -> Array:
    """alpha_i ∝ Σ_j |<h_i, z_j>| with h = X̃ A orthonormalised (Gram–Schmidt ≡ Cholesky).

    <h_i, z_j> = (Aᵀ C)_{ij} for centred z; with the Gram G = Aᵀ C A = L Lᵀ the
    Gram–Schmidt basis is H L^{-T}, whose projections are L^{-1} Aᵀ C. Here A and C are in
    rescaled units (z / scale); ``col_scale`` (∝ scale) restores each neuron's own size.
    """
    G = xp.matrix_transpose(A) @ C @ A
    G = 0.5 * (G + xp.matrix_transpose(G))
    L = xp.linalg.cholesky(G)
    rhs = (xp.matrix_transpose(A) @ C) * col_scale[None, :]
    if isinstance(L, np.ndarray):
        from scipy.linalg import solve_triangular

        P = solve_triangular(L, rhs, lower=True, check_finite=False)
    else:
        P = xp.linalg.solve(L, rhs)
    w = xp.sum(xp.abs(P), axis=1)
    return w / xp.sum(w)


def _pwcca_google(m: Moments, *, epsilon: float) -> PWCCAResult:
    """google/svcca compute_pwcca, re-derived from moments (argument-order bug fixed)."""
    import numpy as np

    xp = m.xp
    n = m.n
    if n - 1 <= 0:
        raise ValueError("pwcca needs at least 2 samples.")
    # the google convention is invariant to scaling X and Y separately (each covariance is
    # divided by its largest entry): work in units of each side's largest feature scale
    cxx_t, cyy_t, cxy_t = m.normalized()
    _, gx = m.relative_scale("x")
    _, gy = m.relative_scale("y")
    mean_x, mean_y = m.mean_x / gx, m.mean_y / gy
    if not (np.all(np.isfinite(to_numpy(mean_x))) and np.all(np.isfinite(to_numpy(mean_y)))):
        raise ValueError(
            "pwcca (google convention) uses uncentred activations, and these means are beyond "
            "1e300 times the spread of the data, which float64 cannot hold. Use "
            "convention='paper' (translation invariant)."
        )
    # google: np.cov (ddof=1), each block rescaled by the largest absolute entry
    sxx = cxx_t / (n - 1)
    syy = cyy_t / (n - 1)
    sxy = cxy_t / (n - 1)
    xmax = xp.max(xp.abs(sxx))
    ymax = xp.max(xp.abs(syy))
    if float(xmax) == 0 or float(ymax) == 0:
        raise ValueError("pwcca is undefined: one input has zero variance in every feature.")
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / xp.sqrt(xmax * ymax)
    kx = to_numpy(_diag(xp, sxx)) >= epsilon
    ky = to_numpy(_diag(xp, syy)) >= epsilon
    ix = xp.asarray(np.flatnonzero(kx), device=device_of(sxx))
    iy = xp.asarray(np.flatnonzero(ky), device=device_of(syy))
    if ix.shape[0] == 0 or iy.shape[0] == 0:
        raise ValueError(
            "pwcca (google convention): every neuron of one input was pruned by epsilon "
            f"={epsilon}; lower epsilon."
        )
    sxx = xp.take(xp.take(sxx, ix, axis=0), ix, axis=1)
    syy = xp.take(xp.take(syy, iy, axis=0), iy, axis=1)
    sxy = xp.take(xp.take(sxy, ix, axis=0), iy, axis=1)
    sxx = sxx + epsilon * xp.eye(sxx.shape[0], dtype=sxx.dtype)
    syy = syy + epsilon * xp.eye(syy.shape[0], dtype=syy.dtype)
    ix_ = _inv_sqrt_pinv(xp, sxx)
    iy_ = _inv_sqrt_pinv(xp, syy)
    arr = ix_ @ sxy @ iy_
    U, s, Vh = xp.linalg.svd(arr, full_matrices=True)
    use_x = ix.shape[0] <= iy.shape[0]
    if use_x:
        coef, C, mu, idx = xp.matrix_transpose(U), cxx_t, mean_x, ix
    else:
        coef, C, mu, idx = Vh, cyy_t, mean_y, iy
    C = xp.take(xp.take(C, idx, axis=0), idx, axis=1)
    mu = xp.take(mu, idx, axis=0)
    # directions D = coef (A - m) + m 1ᵀ;  D Dᵀ = coef C coefᵀ + n m mᵀ;  D Aᵀ = coef C + n m mᵀ
    nmm = n * (mu[:, None] * mu[None, :])
    G = coef @ C @ xp.matrix_transpose(coef) + nmm
    G = 0.5 * (G + xp.matrix_transpose(G))
    rho = xp.abs(s)
    illposed = (
        "pwcca (google convention) is ill-posed on these inputs: with duplicated, constant or "
        "linearly dependent neurons that epsilon={eps} does not prune, google/svcca's pseudo-"
        "inverse square root produces {what}. Use convention='paper' (rank-aware), or a larger "
        "epsilon."
    )
    if float(xp.max(rho)) > 1.0 + 1e-6:
        raise ValueError(
            illposed.format(eps=epsilon, what=f"'correlations' up to {float(xp.max(rho)):.3g}")
        )
    try:
        L = xp.linalg.cholesky(G)
    except Exception:
        raise ValueError(illposed.format(eps=epsilon, what="a singular direction basis")) from None
    proj = xp.linalg.solve(L, coef @ C + nmm)
    w = xp.sum(xp.abs(proj), axis=1)
    w = w / xp.sum(w)
    kk = min(rho.shape[0], w.shape[0])
    value = xp.sum(w[:kk] * rho[:kk])
    return PWCCAResult(
        measure="pwcca",
        value=value,
        n_samples=n,
        conventions={
            "convention": "google (google/svcca compute_pwcca, argument-order bug fixed)",
            "epsilon": epsilon,
            "weights_from": "X" if use_x else "Y",
            "centering": "weights use uncentred activations",
        },
        rho=rho[:kk],
        weights=w[:kk],
        rank_x=int(ix.shape[0]),
        rank_y=int(iy.shape[0]),
    )


def _diag(xp: Any, C: Array) -> Array:
    from nncompare.measures._linalg import diag

    return diag(xp, C)


def _inv_sqrt_pinv(xp: Any, S: Array) -> Array:
    """google/svcca's Σ^{-1/2}: the square root of the pseudo-inverse via eigh."""
    inv = xp.linalg.pinv(S)
    w, v = xp.linalg.eigh(inv)
    w = xp.where(w > 0, w, xp.zeros_like(w))
    return (v * xp.sqrt(w)[None, :]) @ xp.matrix_transpose(v)
