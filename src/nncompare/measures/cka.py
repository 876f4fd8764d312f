"""Centred kernel alignment (CKA): linear, debiased linear, and RBF.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for Gram matrices K, L of the two
representations over the same n samples (Kornblith, Norouzi, Lee & Hinton 2019, eq. 4;
Cortes, Mohri & Rostamizadeh 2012).

* ``cka``: linear kernel, biased HSIC. With centred features Xc, Yc:
  ``||Xcᵀ Yc||_F² / (||Xcᵀ Xc||_F ||Ycᵀ Yc||_F)``; computed in feature space
  (d × d products, streaming-friendly) or Gram space (n × n) — whichever is cheaper.
* ``cka_debiased``: linear kernel with the unbiased HSIC estimator (Song et al. 2012)
  as in Kornblith et al.'s ``debiased=True``; can be negative, still not an unbiased
  estimate of CKA itself.
* ``cka_rbf``: Gaussian kernel exp(-‖x_i - x_j‖² / (2σ²)) with σ = ``threshold`` ×
  the median distance, i.e. σ² = threshold² · median(D²) over all n² squared distances
  (diagonal zeros included; numpy's median, averaging the two middle values when n² is
  even — ckatorch's torch.median takes the lower one, 1e-7..1e-5 relative difference).
* ``MinibatchCKA``: kernel CKA accumulated over minibatches with the unbiased HSIC
  estimator (Nguyen, Raghu & Kornblith 2021), for any number of samples.

References
----------
Kornblith, S., Norouzi, M., Lee, H. & Hinton, G. (2019). Similarity of neural network
representations revisited. ICML.
Song, L., Smola, A., Gretton, A., Bedo, J. & Borgwardt, K. (2012). Feature selection via
dependence maximization. JMLR 13, eq. 5 (unbiased HSIC).
Nguyen, T., Raghu, M. & Kornblith, S. (2021). Do wide and deep networks learn the same
things? ICLR 2021, Section 3.1 (minibatch CKA).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nncompare._array import (
    Array,
    as_array,
    device_of,
    harmonize,
    is_torch,
    namespace,
    to_scalar_float,
)
from nncompare._validation import check_option, check_pair
from nncompare.measures._inputs import prepare_pair, to_moments
from nncompare.measures._kernels import center_gram, gram, hsic_unbiased, ucenter_gram
from nncompare.measures._params import CONV, LAYOUT, PRECISION, Boolean, Interval, constrain
from nncompare.results import CKAResult
from nncompare.stats import Moments, centred_normalised, check_precision

__all__ = ["MinibatchCKA", "cka", "cka_debiased", "cka_rbf"]


def _fro2(xp: Any, A: Array) -> Array:
    return xp.sum(A * A)


def _linear_hsics(m: Moments) -> tuple[Array, Array, Array, float, float]:
    """||Cxy||², ||Cxx||², ||Cyy||² in units of each side's largest feature scale, and those."""
    xp = m.xp
    cxx, cyy, cxy = m.normalized()
    _, gx = m.relative_scale("x")
    _, gy = m.relative_scale("y")
    return _fro2(xp, cxy), _fro2(xp, cxx), _fro2(xp, cyy), gx, gy


def _units(g: float) -> float:
    """g², the factor from normalised to data units of a Gram entry (inf/0 when out of range)."""
    with np.errstate(over="ignore", under="ignore"):
        return float(np.float64(g) * np.float64(g))


def _undefined(label: str) -> ValueError:
    return ValueError(
        f"CKA is undefined: {label} has zero variance in every feature (all samples give the "
        "same activation), so its centred Gram matrix is zero. Check the layer (dead units?) "
        "or the inputs."
    )


@constrain(conv=CONV, layout=LAYOUT, precision=PRECISION)
def cka(
    X: Any,
    Y: Any = None,
    *,
    conv: str | None = None,
    layout: str | None = None,
    precision: str = "auto",
) -> CKAResult:
    """Linear CKA (Kornblith et al. 2019, eq. 4 with a linear kernel; the RV coefficient).

    .. math:: \\mathrm{CKA}(X, Y) = \\frac{\\|X_c^T Y_c\\|_F^2}
              {\\|X_c^T X_c\\|_F \\, \\|Y_c^T Y_c\\|_F}

    Parameters
    ----------
    X : array (n, d1), conv activations, or :class:`~nncompare.Moments`
    Y : array (n, d2) or None
    conv : {None, "samples", "flatten", "mean"}
        Reshape policy for convolutional activations (:func:`nncompare.reshape_conv`).
    layout : {None, "NHWC", "NCHW"}
        Where the channels of convolutional activations are. None: the array's own tag
        (:class:`nncompare.LayoutArray`; :func:`nncompare.capture` tags its output "NCHW"),
        else channels last, with a :class:`nncompare.LayoutWarning` when the shape looks
        channels first.
    precision : {"auto", "float32", "float64"}, default "auto"
        Precision of the feature-space products (arrays only): ``"auto"`` the inputs' own —
        float32 for float32 arrays, summed in float64 (agreement with the exact path about
        1e-9 .. 1e-7: CKA amplifies no rounding) — or ``"float64"``, the exact path.

    Returns
    -------
    CKAResult
        ``value`` in [0, 1]; ``hsic_xy``, ``hsic_xx``, ``hsic_yy`` (unnormalised
        ||Xcᵀ Yc||², ||Xcᵀ Xc||², ||Ycᵀ Yc||²); ``angular`` = arccos(value).

    Invariances: orthogonal transforms, isotropic scaling and translation of either input;
    not invertible linear maps.
    """
    if conv == "dft":
        raise ValueError("cka does not support conv='dft'; use 'samples', 'flatten' or 'mean'.")
    # CKA is invariant to isotropic scaling: every product is formed in units of each side's
    # largest feature scale (g_x, g_y), so no finite input over- or underflows; constant
    # features (equal up to rounding) are exactly zero. hsic_* are reported in the data's
    # units (they over/underflow beyond about 1e+-75; the value does not).
    precision = check_precision(precision)
    if isinstance(X, Moments):
        if precision != "auto":
            raise ValueError(
                f"cka: precision={precision!r} applies to arrays; these Moments were "
                "accumulated with their own precision."
            )
        m = to_moments(X, Y, conv=conv, layout=layout, measure="cka", min_samples=3)
        xp, n, form = m.xp, m.n, "feature space (from moments)"
        hxy, hxx, hyy, gx, gy = _linear_hsics(m)
    else:
        X, Y = prepare_pair(X, Y, conv=conv, layout=layout, min_samples=3, measure="cka")
        n, d1 = X.shape
        d2 = Y.shape[1]
        xp = namespace(X, Y)
        if n * n < d1 * d1 + d2 * d2 + d1 * d2:
            Xt, gx = centred_normalised(xp, X)
            Yt, gy = centred_normalised(xp, Y)
            K = Xt @ xp.matrix_transpose(Xt)
            L = Yt @ xp.matrix_transpose(Yt)
            hxy, hxx, hyy = xp.sum(K * L), _fro2(xp, K), _fro2(xp, L)
            form = "Gram space"
        else:
            m = Moments.from_arrays(X, Y, validated=True, precision=precision)
            hxy, hxx, hyy, gx, gy = _linear_hsics(m)
            form = "feature space"
    if to_scalar_float(hxx) <= 0:
        raise _undefined("X")
    if to_scalar_float(hyy) <= 0:
        raise _undefined("Y")
    value = hxy / xp.sqrt(hxx * hyy)
    fx, fy = _units(gx), _units(gy)
    hxy, hxx, hyy = hxy * (fx * fy), hxx * (fx * fx), hyy * (fy * fy)
    return CKAResult(
        measure="cka",
        value=value,
        n_samples=int(n),
        conventions={
            "kernel": "linear",
            "estimator": "biased HSIC (centred Gram)",
            "computed_in": form,
            "conv": conv,
        },
        hsic_xy=hxy,
        hsic_xx=hxx,
        hsic_yy=hyy,
    )


@constrain(conv=CONV, layout=LAYOUT, precision=PRECISION)
def cka_debiased(
    X: Any,
    Y: Any = None,
    *,
    conv: str | None = None,
    layout: str | None = None,
    precision: str = "auto",
) -> CKAResult:
    """Linear CKA with the unbiased HSIC estimator (Kornblith et al. 2019, ``debiased=True``).

    With K = Xc Xcᵀ, L = Yc Ycᵀ, a_i = K_ii, b_i = L_ii and n samples, each HSIC term is

    .. math:: \\langle K, L\\rangle - \\tfrac{n}{n-2}\\, a\\cdot b
              + \\tfrac{(\\sum a)(\\sum b)}{(n-1)(n-2)}

    (the unbiased HSIC₁ of Song et al. 2012 up to the common factor n(n-3), using that
    centred Gram matrices have zero row sums). Needs n ≥ 4. The value can be slightly
    negative for unrelated representations; it is *not* clipped. ``precision`` as in
    :func:`cka` (float32 products for float32 arrays by default; the absolute error of the
    value is then about 1e-7).
    """
    precision = check_precision(precision)
    if conv == "dft":
        raise ValueError("cka_debiased does not support conv='dft'.")
    if isinstance(X, Moments):
        raise TypeError(
            "cka_debiased needs per-sample squared norms, which Moments do not hold; pass the "
            "arrays, or use nc.MinibatchCKA for streaming (unbiased HSIC averaged over batches)."
        )
    X, Y = prepare_pair(X, Y, conv=conv, layout=layout, min_samples=4, measure="cka_debiased")
    xp = namespace(X, Y)
    n = int(X.shape[0])
    d1, d2 = X.shape[1], Y.shape[1]
    # as in cka: products in units of each side's largest feature scale, constant features 0
    if n * n >= d1 * d1 + d2 * d2 + d1 * d2:
        # feature space, from one chunked joint product (no centred copies of the data)
        from nncompare.stats import batch_stats, product_dtype

        norms: list[Any] = []
        st = batch_stats(xp, [X, Y], product_dtype(xp, (X, Y), precision), row_norms=norms)
        a, b = norms
        rx, gx = st.relative(0, d1)
        ry, gy = st.relative(d1, d1 + d2)
        dev = device_of(X)
        rel = xp.asarray(np.concatenate([rx, ry]), device=dev)
        T = rel[:, None] * st.zcom * rel[None, :]
        kl = _fro2(xp, T[:d1, d1:])
        kk = _fro2(xp, T[:d1, :d1])
        ll = _fro2(xp, T[d1:, d1:])
        return _debiased_result(xp, n, kl, kk, ll, a, b, conv, gx, gy)
    Xt, gx = centred_normalised(xp, X)
    Yt, gy = centred_normalised(xp, Y)
    a = xp.sum(Xt * Xt, axis=1)
    b = xp.sum(Yt * Yt, axis=1)
    K = Xt @ xp.matrix_transpose(Xt)
    L = Yt @ xp.matrix_transpose(Yt)
    kl, kk, ll = xp.sum(K * L), xp.sum(K * K), xp.sum(L * L)
    return _debiased_result(xp, n, kl, kk, ll, a, b, conv, gx, gy)


def _debiased_result(
    xp: Any,
    n: int,
    kl: Array,
    kk: Array,
    ll: Array,
    a: Array,
    b: Array,
    conv: str | None,
    gx: float = 1.0,
    gy: float = 1.0,
) -> CKAResult:
    def debias(t: Array, u: Array, v: Array) -> Array:
        return t - n / (n - 2) * xp.sum(u * v) + xp.sum(u) * xp.sum(v) / ((n - 1) * (n - 2))

    hxy, hxx, hyy = debias(kl, a, b), debias(kk, a, a), debias(ll, b, b)
    if to_scalar_float(hxx) <= 0:
        raise _undefined("X")
    if to_scalar_float(hyy) <= 0:
        raise _undefined("Y")
    value = hxy / xp.sqrt(hxx * hyy)
    fx, fy = _units(gx), _units(gy)
    hxy, hxx, hyy = hxy * (fx * fy), hxx * (fx * fx), hyy * (fy * fy)
    scale = 1.0 / (n * (n - 3))
    return CKAResult(
        measure="cka_debiased",
        value=value,
        n_samples=n,
        conventions={
            "kernel": "linear",
            "estimator": "unbiased HSIC_1 (Song et al. 2012)",
            "conv": conv,
        },
        hsic_xy=hxy * scale,
        hsic_xx=hxx * scale,
        hsic_yy=hyy * scale,
    )


@constrain(
    threshold=Interval(float, 0, None, closed="neither"),
    debiased=Boolean(),
    conv=CONV,
    layout=LAYOUT,
)
def cka_rbf(
    X: Any,
    Y: Any = None,
    *,
    threshold: float = 1.0,
    debiased: bool = False,
    conv: str | None = None,
    layout: str | None = None,
) -> CKAResult:
    """CKA with Gaussian (RBF) kernels, bandwidth relative to the median distance.

    K_ij = exp(-‖x_i - x_j‖² / (2 σ²)), σ² = ``threshold``² · median_{i,j} ‖x_i - x_j‖²
    (Kornblith et al. 2019, Section 6.1; median over all n² entries, diagonal included,
    numpy's median). ``debiased=True`` uses U-centring (unbiased HSIC) instead of H K H.
    Memory and time are O(n²): when the kernel matrices would not fit in the available
    memory (or ``NNCOMPARE_MAX_MEMORY``), an
    :class:`~nncompare.measures._kernels.InsufficientMemoryError` is raised before anything
    is allocated; stream with ``nc.MinibatchCKA(kernel="rbf")`` instead.
    Features constant relative to their scale (max - min <= 8·eps·max|x|) are ignored; a layer
    whose every feature is constant raises ``ValueError``. The value is the same for X and
    c·X + t at any finite scale (distances are formed from centred, power-of-two rescaled
    features).

    Parameters
    ----------
    threshold : float > 0, default 1.0
        Bandwidth as a fraction of the median distance (Kornblith's notebook uses 0.2–1.0).
    """
    threshold = float(threshold)  # values checked by @constrain
    if isinstance(X, Moments):
        raise TypeError(
            "cka_rbf needs the samples themselves (a kernel is not a function of moments); "
            "pass arrays, or stream with nc.MinibatchCKA(kernel='rbf')."
        )
    if conv == "dft":
        raise ValueError("cka_rbf does not support conv='dft'.")
    X, Y = prepare_pair(
        X, Y, conv=conv, layout=layout, min_samples=4 if debiased else 3, measure="cka_rbf"
    )
    xp = namespace(X, Y)
    n = int(X.shape[0])
    from nncompare.measures import _kernels as kern

    kern.check_memory(
        X,
        measure="cka_rbf",
        n_bytes=(kern.RBF_CKA_DEBIASED_N2_ARRAYS if debiased else kern.RBF_CKA_N2_ARRAYS)
        * 8.0
        * n
        * n,
        what="float64 n × n kernel matrices",
        alternative="Stream it over batches with nc.MinibatchCKA(kernel='rbf'), or use a "
        "random subset of the samples.",
    )
    eps_x, eps_y = kern.input_eps(xp, X), kern.input_eps(xp, Y)
    X, Y = xp.astype(X, xp.float64), xp.astype(Y, xp.float64)
    for label, A, e in (("X", X, eps_x), ("Y", Y, eps_y)):
        kern.check_not_all_constant(
            xp, A, e, label=label, measure="cka_rbf", consequence="its kernel matrix is constant"
        )
    K = gram(xp, X, "rbf", threshold, eps_x)
    L = gram(xp, Y, "rbf", threshold, eps_y)
    c = ucenter_gram if debiased else center_gram
    Kc, Lc = c(xp, K), c(xp, L)
    hxy, hxx, hyy = xp.sum(Kc * Lc), xp.sum(Kc * Kc), xp.sum(Lc * Lc)
    if to_scalar_float(hxx) <= 0:
        raise _undefined("X")
    if to_scalar_float(hyy) <= 0:
        raise _undefined("Y")
    return CKAResult(
        measure="cka_rbf",
        value=hxy / xp.sqrt(hxx * hyy),
        n_samples=n,
        conventions={
            "kernel": "rbf",
            "threshold": threshold,
            "bandwidth": "sigma^2 = threshold^2 * median of all n^2 squared distances "
            "(numpy median: mean of the two middle values)",
            "estimator": "unbiased HSIC (U-centring)" if debiased else "biased HSIC (H K H)",
            "conv": conv,
        },
        hsic_xy=hxy,
        hsic_xx=hxx,
        hsic_yy=hyy,
    )


# ---------------------------------------------------------------------- minibatch CKA
class MinibatchCKA:
    """Kernel CKA accumulated over minibatches with the unbiased HSIC estimator.

    For each minibatch b of m samples, the unbiased estimator HSIC₁ of Song et al.
    (2012) is computed for the pairs (K, L), (K, K) and (L, L); CKA is

    .. math:: \\mathrm{CKA}_{mb} = \\frac{\\sum_b \\mathrm{HSIC}_1(K_b, L_b)}
              {\\sqrt{\\sum_b \\mathrm{HSIC}_1(K_b, K_b)\\,\\sum_b \\mathrm{HSIC}_1(L_b, L_b)}}

    (Nguyen, Raghu & Kornblith 2021, eq. 3). Memory is O(m²) per batch and O(1) across
    batches. With one batch holding all samples and a linear kernel, this is the debiased
    linear CKA of Kornblith et al. (2019). Available as ``nncompare.MinibatchCKA``.

    Parameters
    ----------
    kernel : {"linear", "rbf"}
        Gram matrices; "rbf" uses exp(-‖x-y‖² / (2 σ²)) with σ² = threshold² · median of the
        squared distances *within each batch* (Kornblith's bandwidth convention, per batch).
    threshold : float
        RBF bandwidth as a fraction of the median distance.
    """

    def __init__(self, kernel: str = "linear", *, threshold: float = 1.0) -> None:
        check_option("kernel", kernel, ("linear", "rbf"))
        self.kernel = kernel
        self.threshold = float(threshold)
        # sums of the batch HSICs in units where the data of X and Y have magnitudes gx, gy
        # (powers of two, the largest seen; linear kernel only): no over/underflow
        self._sxy: Any = 0.0
        self._sxx: Any = 0.0
        self._syy: Any = 0.0
        self._gx = self._gy = 1.0
        self.n_batches = 0
        self.n = 0
        self._xp: Any = None

    @property
    def hsic_xy(self) -> Any:
        """Summed HSIC(K, L) in the data's units (over/underflows only for extreme data)."""
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            return self._sxy * _units(self._gx) * _units(self._gy)

    @property
    def hsic_xx(self) -> Any:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            return self._sxx * _units(self._gx) * _units(self._gx)

    @property
    def hsic_yy(self) -> Any:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            return self._syy * _units(self._gy) * _units(self._gy)

    def update(self, X: Any, Y: Any) -> MinibatchCKA:
        """Add a minibatch (at least 4 samples; a batch of 0 samples is a no-op)."""
        X0, Y0 = harmonize(as_array(X, name="X"), as_array(Y, name="Y"))
        if X0.ndim == 2 and Y0.ndim == 2 and X0.shape[0] == 0 and Y0.shape[0] == 0:
            return self
        X, Y = check_pair(X0, Y0, min_samples=4)
        xp = namespace(X, Y)
        # centred, in units of the batch's largest feature scale, constant features zeroed:
        # both kernels are invariant to that (RBF's bandwidth is relative to the median)
        Xt, gx = centred_normalised(xp, X)
        Yt, gy = centred_normalised(xp, Y)
        K = gram(xp, Xt, self.kernel, self.threshold)
        L = gram(xp, Yt, self.kernel, self.threshold)
        hxy = hsic_unbiased(xp, K, L)
        hxx = hsic_unbiased(xp, K, K)
        hyy = hsic_unbiased(xp, L, L)
        if self.kernel == "rbf":
            gx = gy = 1.0
        self._add(xp, hxy, hxx, hyy, gx, gy)
        self.n_batches += 1
        self.n += int(X.shape[0])
        return self

    def _add(self, xp: Any, hxy: Any, hxx: Any, hyy: Any, gx: float, gy: float) -> None:
        """Add HSIC sums given in units (gx, gy), converting to the running units."""
        first = self.n_batches == 0
        Gx, Gy = (gx, gy) if first else (max(self._gx, gx), max(self._gy, gy))
        # exact powers of two <= 1 (they may underflow to 0: negligible contributions)
        ax, ay = _units(self._gx / Gx), _units(self._gy / Gy)
        bx, by = _units(gx / Gx), _units(gy / Gy)
        if first:
            self._sxy, self._sxx, self._syy = hxy * (bx * by), hxx * (bx * bx), hyy * (by * by)
        else:
            self._sxy = self._sxy * (ax * ay) + hxy * (bx * by)
            self._sxx = self._sxx * (ax * ax) + hxx * (bx * bx)
            self._syy = self._syy * (ay * ay) + hyy * (by * by)
        self._gx, self._gy = Gx, Gy
        self._xp = xp

    def merge(self, other: MinibatchCKA) -> MinibatchCKA:
        if not isinstance(other, MinibatchCKA):
            raise TypeError(f"merge() expects a MinibatchCKA; got {type(other).__name__}.")
        if (other.kernel, other.threshold) != (self.kernel, self.threshold):
            raise ValueError("cannot merge MinibatchCKA accumulators with different kernels.")
        if other.n_batches == 0:
            return self
        self._add(other._xp, other._sxy, other._sxx, other._syy, other._gx, other._gy)
        self.n_batches += other.n_batches
        self.n += other.n
        return self

    def compute(self) -> Any:
        """The minibatch CKA as a :class:`~nncompare.results.CKAResult`."""
        if self.n_batches == 0:
            raise ValueError("MinibatchCKA is empty: call update(X_batch, Y_batch) first.")
        xp = self._xp
        sxx, syy = self._sxx, self._syy
        if float(sxx) <= 0 or float(syy) <= 0:
            raise ValueError(
                "minibatch CKA is undefined: the summed unbiased HSIC of a representation with "
                f"itself is not positive (HSIC(K,K)={float(self.hsic_xx):.3g}, "
                f"HSIC(L,L)={float(self.hsic_yy):.3g}). Use larger batches or check for "
                "constant activations."
            )
        denom = xp.sqrt(sxx * syy) if is_torch(sxx) else float(np.sqrt(float(sxx) * float(syy)))
        value = self._sxy / denom
        return CKAResult(
            measure="cka_minibatch",
            value=value,
            n_samples=self.n,
            conventions={
                "kernel": self.kernel,
                "threshold": self.threshold if self.kernel == "rbf" else None,
                "estimator": "unbiased HSIC_1 (Song et al. 2012) summed over "
                f"{self.n_batches} minibatches (Nguyen et al. 2021)",
            },
            hsic_xy=self.hsic_xy,
            hsic_xx=self.hsic_xx,
            hsic_yy=self.hsic_yy,
        )
