"""Linear regression R² (Kornblith et al. 2019; Csiszárik et al. 2021, Definition 6.1).

R²_LR(X → Y) = 1 - ‖Xc B - Yc‖_F² / ‖Yc‖_F² with B = Xc⁺ Yc the least-squares map
(centred data, i.e. with intercept). From moments: ‖Yc‖² - ‖Xc B - Yc‖² =
tr(Cyx Cxx⁺ Cxy) = ‖Wᵀ Cxy‖_F², W a whitening of Cxx. Asymmetric: how well X predicts Y.
Csiszárik et al. write the definition without centring; we centre (fit an intercept) so
that the value is translation invariant, as Kornblith et al. do.
"""

from __future__ import annotations

from typing import Any

from nncompare._array import to_scalar_float
from nncompare._validation import ConstantFeatureWarning, RankDeficiencyWarning, warn
from nncompare.measures._inputs import to_moments
from nncompare.measures._linalg import DEFAULT_RTOL, check_products, diag, whiten
from nncompare.measures._params import CONV, LAYOUT, RTOL, constrain
from nncompare.results import RegressionResult

__all__ = ["lr_r2"]


@constrain(conv=CONV, layout=LAYOUT, rtol=RTOL)
def lr_r2(
    X: Any,
    Y: Any = None,
    *,
    conv: str | None = None,
    layout: str | None = None,
    rtol: float = DEFAULT_RTOL,
) -> RegressionResult:
    """R² of the least-squares fit of Y from X (with intercept).

    Parameters
    ----------
    X : array (n, d1) — the predictor — or :class:`~nncompare.Moments`
    Y : array (n, d2) — the target
    conv : {None, "samples", "flatten", "mean"}
    layout : {None, "NHWC", "NCHW"}
        Where the channels of convolutional activations are. None: the array's own tag
        (:class:`nncompare.LayoutArray`; :func:`nncompare.capture` tags its output "NCHW"),
        else channels last, with a :class:`nncompare.LayoutWarning` when the shape looks
        channels first.
    rtol : float
        Relative eigenvalue cut-off for the numerical rank of X (minimum-norm solution).

    Returns
    -------
    RegressionResult
        ``value`` in [0, 1]; ``coef`` B (d1, d2) and ``intercept`` (d2,) such that
        Ŷ = X B + intercept; ``r2_per_feature`` (d2,) (NaN-free: constant targets get 1 if
        predicted exactly, which they are); ``rank_x``.

    Notes
    -----
    With n ≤ rank(X) + 1 the fit interpolates and R² = 1 whatever the data: this raises.
    """
    m = to_moments(X, Y, conv=conv, layout=layout, measure="lr_r2")
    xp = m.xp
    # R² is invariant to per-feature scales of X (whiten the rescaled features) and to an
    # isotropic scale of Y; each target's own R² is invariant to its scale.
    sx = whiten(xp, m.zxx, m.constant_x(), rtol=rtol)
    # accumulated Moments with float32 products: refuse an inversion too ill-conditioned
    check_products(m.product_precision, sx.amplification, measure="lr_r2", label="X")
    if sx.rank == 0:
        raise ValueError(
            "lr_r2 is undefined: every feature of X is constant, so it predicts nothing."
        )
    if sx.n_constant:
        warn(f"lr_r2: X has {sx.n_constant} constant feature(s); ignored.", ConstantFeatureWarning)
    if sx.rank < m.d1 - sx.n_constant:
        warn(
            f"lr_r2: X is rank-deficient (rank {sx.rank}); using the minimum-norm fit.",
            RankDeficiencyWarning,
        )
    if m.n - 1 <= sx.rank:
        raise ValueError(
            f"lr_r2 is trivially 1 here: X has rank {sx.rank} with only n={m.n} samples, so the "
            "least-squares fit interpolates any Y. Use more samples than features of X."
        )
    total_y = diag(xp, m.zyy)  # per target, in its own rescaled units
    rel_y, _ = m.relative_scale("y")
    w = rel_y * rel_y
    if to_scalar_float(xp.sum(w * total_y)) <= 0:
        raise ValueError("lr_r2 is undefined: every feature of Y is constant (zero variance).")
    P = xp.matrix_transpose(sx.W) @ m.zxy  # (d1, d2) whitened cross moments
    explained = xp.sum(P * P, axis=0)
    value = xp.sum(w * explained) / xp.sum(w * total_y)
    # B in the data's units: B = diag(1 / scale_x) B_z diag(scale_y)
    coef = (1.0 / m.scale_x)[:, None] * (sx.W @ P) * m.scale_y[None, :]
    intercept = m.mean_y - m.mean_x @ coef
    safe = xp.where(total_y > 0, total_y, xp.ones_like(total_y))
    per = xp.where(total_y > 0, explained / safe, xp.ones_like(total_y))
    return RegressionResult(
        measure="lr_r2",
        value=value,
        n_samples=m.n,
        conventions={
            "centering": "columns (fit with intercept)",
            "direction": "X predicts Y",
            "solution": "minimum-norm least squares",
            "rank_rtol": rtol,
            "conv": conv,
        },
        coef=coef,
        intercept=intercept,
        r2_per_feature=per,
        rank_x=sx.rank,
    )
