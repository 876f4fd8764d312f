"""Convolutional activations: reshape policies and the exact DFT path.

Convolutional activations arrive as (N, H, W, C) (or (N, L, C) for 1-D convolutions),
channels last. Three reshape policies turn them into (samples, features) matrices:

``"samples"``
    every image location is a sample: (N·H·W, C). Both inputs must share the spatial size.
    This is google/svcca's tutorial-002 "flatten" recipe and what Kornblith et al. call
    treating locations as examples.
``"flatten"``
    every image is a sample, every (location, channel) a feature: (N, H·W·C).
``"mean"``
    spatial average per channel: (N, C) (Morcos et al. 2018, §3: "averaging across all
    spatial locations within each filter").

and ``"dft"`` runs CCA/SVCCA block by block over spatial frequencies (Raghu et al. 2017,
§3.1 and Appendix): after a unitary 2-D DFT of every channel, the covariance of a
translation-invariant data set is block diagonal with one C×C block per frequency, so
CCA of the flattened representation splits into H·W small complex CCAs. For
translation-invariant (circularly shift-augmented) data this equals brute-force CCA on
the flattened view exactly, at a fraction of the cost. When the spatial sizes differ,
both are cropped in frequency to the smaller size (keeping the frequencies
-h/2 ≤ f < h/2 of each axis, as google/svcca's ``fourier_ccas`` does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nncompare._array import Array, as_array, harmonize, namespace, to_numpy
from nncompare._layout import resolve_layout, to_channels_last_if
from nncompare._validation import check_finite, check_option
from nncompare.measures._linalg import (
    DEFAULT_RTOL,
    Side,
    cca_core,
    check_not_trivial,
    diag,
    real,
    whiten,
)
from nncompare.results import DFTCCAResult

__all__ = ["dft_cca", "dft_cca_from_comoments", "reshape_conv", "reshape_pair"]

POLICIES = ("samples", "flatten", "mean")


def _check_conv(X: Array, name: str) -> None:
    if X.ndim not in (3, 4):
        hint = " It is already 2-D: drop conv=." if X.ndim == 2 else ""
        raise ValueError(
            f"{name} must be convolutional activations of shape (N, H, W, C) or (N, L, C), "
            f"or channels first with layout='NCHW'; got shape {tuple(X.shape)}.{hint}"
        )


def reshape_conv(X: Any, policy: str, *, layout: str | None = None) -> Array:
    """Turn convolutional activations into a (samples, features) matrix.

    Parameters
    ----------
    X : array, shape (N, H, W, C) or (N, L, C); channels first (N, C, H, W) / (N, C, L)
        with ``layout="NCHW"`` or when tagged so (:class:`nncompare.LayoutArray`, as
        returned by :func:`nncompare.capture`)
    policy : {"samples", "flatten", "mean"}
    layout : {None, "NHWC", "NCHW"}
        Where the channels are; None reads the array's own tag, else channels last (with a
        :class:`nncompare.LayoutWarning` when the shape looks channels first).

    Returns
    -------
    array, shape (N·H·W, C), (N, H·W·C) or (N, C)
    """
    check_option("conv", policy, POLICIES)
    lay = resolve_layout(X, layout, name="X") if getattr(X, "ndim", 0) > 2 else None
    X = as_array(X)
    _check_conv(X, "X")
    if lay is not None:
        X = to_channels_last_if(X, lay)
    xp = namespace(X)
    n, c = X.shape[0], X.shape[-1]
    if policy == "samples":
        return xp.reshape(X, (-1, c))
    if policy == "flatten":
        return xp.reshape(X, (n, -1))
    axes = tuple(range(1, X.ndim - 1))
    out = _mean64(X, axes)
    if not bool(xp.all(xp.isfinite(out))):  # the sum overflowed (|X| near 1e308): rescale
        g = _magnitude(xp, X)
        out = _mean64(X * (1.0 / g), axes) * g
    return out


def _mean64(X: Array, axes: tuple[int, ...]) -> Array:
    """Mean over ``axes`` accumulated and returned in float64 (no float64 copy of X)."""
    if isinstance(X, np.ndarray):
        with np.errstate(over="ignore", invalid="ignore"):
            return X.mean(axis=axes, dtype=np.float64)
    if hasattr(X, "detach"):  # torch
        import torch

        return torch.mean(X, dim=axes, dtype=torch.float64)
    xp = namespace(X)
    return xp.mean(xp.astype(X, xp.float64), axis=axes)


def reshape_pair(
    X: Array, Y: Array, policy: str, *, layout: str | None = None
) -> tuple[Array, Array]:
    check_option("conv", policy, (*POLICIES, "dft"))
    if X.ndim == 2 and Y.ndim == 2:
        return X, Y
    if policy == "samples" and X.ndim > 2 and Y.ndim > 2 and X.shape[1:-1] != Y.shape[1:-1]:
        raise ValueError(
            "conv='samples' pairs image locations, so both inputs need the same spatial size; "
            f"got {tuple(X.shape[1:-1])} and {tuple(Y.shape[1:-1])}. Use conv='mean', "
            "conv='flatten', or conv='dft' (which crops frequencies to the smaller size)."
        )
    X2 = reshape_conv(X, policy, layout=layout) if X.ndim > 2 else X
    Y2 = reshape_conv(Y, policy, layout=layout) if Y.ndim > 2 else Y
    if policy == "samples" and (X.ndim == 2) != (Y.ndim == 2):
        raise ValueError(
            "conv='samples' needs convolutional activations on both sides; got shapes "
            f"{tuple(X.shape)} and {tuple(Y.shape)}. Use conv='mean' or conv='flatten'."
        )
    return X2, Y2


def _crop_indices(size: int, target: int) -> np.ndarray:
    """Indices (into an FFT axis of length `size`) of the `target` lowest frequencies.

    Signed frequencies -target//2 .. target - target//2 - 1, returned in the natural FFT
    order of an axis of length `target` (0, 1, ..., -1).
    """
    signed = [j if j < target - target // 2 else j - target for j in range(target)]
    return np.asarray([f % size for f in signed], dtype=np.int64)


def _is_complex(xp: Any, X: Array) -> bool:
    return bool(xp.isdtype(X.dtype, "complex floating"))


# spectra of data whose largest magnitude lies outside [2^-SAFE, 2^SAFE] are rescaled by a
# power of two (exact) before any product: the measures are invariant to it
_SAFE_EXP = 200
_PRESCALE_EXP = 1000


def _magnitude(xp: Any, X: Array) -> float:
    """The power of two just above max |X| (1.0 for zero arrays), from two reductions."""
    data = X.detach() if hasattr(X, "detach") else X
    if _is_complex(xp, data):
        top = float(to_numpy(xp.max(xp.abs(data))))
    else:
        top = max(abs(float(to_numpy(xp.min(data)))), abs(float(to_numpy(xp.max(data)))))
    if top == 0.0:
        return 1.0
    m, e = np.frexp(top)
    return float(np.ldexp(1.0, int(e) - (1 if m == 0.5 else 0)))


def _units(g: float) -> float:
    """The factor (a power of two) the spectra of data of magnitude g are multiplied by."""
    e = int(np.frexp(g)[1])
    return 1.0 if abs(e) <= _SAFE_EXP else float(np.ldexp(1.0, -e))


def _noise_floor(xp: Any, X: Array, g: float) -> Array:
    """Per channel, the centred variance (summed over samples) a spectrum coefficient can
    show from rounding alone: (κ eps)² Σ_s ‖x_sc‖², κ = 8 (1 + log2 of the spatial size),
    eps of the input's dtype (at least float64's). In the units of the rescaled spectra."""
    from nncompare._validation import CONSTANT_ULPS, dtype_eps

    size = int(np.prod(X.shape[1:-1]))
    eps = max(dtype_eps(X.dtype), float(np.finfo(np.float64).eps))
    kappa = CONSTANT_ULPS * (1.0 + np.log2(max(size, 1)))
    u = _units(g)
    X2 = xp.reshape(X.detach() if hasattr(X, "detach") else X, (-1, X.shape[-1]))
    if isinstance(X2, np.ndarray) and X2.dtype.kind == "f" and u == 1.0:
        energy = np.einsum("ij,ij->j", X2, X2, dtype=np.float64)
    else:
        Xu = X2 * u if u != 1.0 else X2
        if _is_complex(xp, Xu):
            Xu = xp.abs(Xu)
        Xu = xp.astype(Xu, xp.float64) if Xu.dtype != xp.float64 else Xu
        energy = xp.sum(Xu * Xu, axis=0)
    return (kappa * eps) ** 2 * energy


def zero_rounding_level(
    xp: Any, Cxx: Array, Cyy: Array, Cxy: Array, floor_x: Array, floor_y: Array
) -> tuple[Array, Array, Array]:
    """Zero the rows and columns of spectrum coefficients whose variance is rounding noise.

    A channel that is constant over the samples (or a fixed spatial pattern) has a spectrum
    that is constant in exact arithmetic, but the FFT leaves rounding noise in it; whitened,
    that noise would look like a perfectly informative direction. A coefficient (f, c) whose
    centred variance is below ``floor_c`` (:func:`_noise_floor`) is treated as constant.
    """
    keep_x = xp.astype(real(xp, diag(xp, Cxx)) > floor_x, xp.float64)
    keep_y = xp.astype(real(xp, diag(xp, Cyy)) > floor_y, xp.float64)
    if bool(xp.all(keep_x == 1.0)) and bool(xp.all(keep_y == 1.0)):
        return Cxx, Cyy, Cxy
    Cxx = Cxx * keep_x[..., :, None] * keep_x[..., None, :]
    Cyy = Cyy * keep_y[..., :, None] * keep_y[..., None, :]
    Cxy = Cxy * keep_x[..., :, None] * keep_y[..., None, :]
    return Cxx, Cyy, Cxy


def _spectra(
    xp: Any, X: Array, target: tuple[int, ...], cdt: Any, *, magnitude: float | None = None
) -> Array:
    """Unitary DFT over the spatial axes, cropped to `target`; returns (*target, N, C).

    With ``magnitude`` (see :func:`_magnitude`), data beyond 2^±200 are rescaled by an exact
    power of two (:func:`_units`): before the FFT when it could overflow, after it otherwise.
    """
    u = 1.0 if magnitude is None else _units(magnitude)
    if u != 1.0 and int(np.frexp(magnitude)[1]) > _PRESCALE_EXP:
        X, u = X * u, 1.0
    spatial_axes = tuple(range(1, X.ndim - 1))
    # real input goes straight into the FFT (no complex copy); the working precision is
    # float64 -> complex128 (complex64 only if cdt asks for it)
    want = (
        cdt
        if xp.isdtype(X.dtype, "complex floating")
        else (xp.float64 if cdt == xp.complex128 else xp.float32)
    )
    if X.dtype != want:
        X = xp.astype(X, want)
    F = xp.fft.fftn(X, axes=spatial_axes, norm="ortho")
    if u != 1.0:
        F = F * u
    for ax, (size, t) in zip(spatial_axes, zip(X.shape[1:-1], target, strict=True), strict=True):
        if size != t:
            idx = xp.asarray(_crop_indices(size, t), device=_device(F))
            F = xp.take(F, idx, axis=ax)
    # (N, *spatial, C) -> (*spatial, N, C)
    perm = (*spatial_axes, 0, X.ndim - 1)
    return xp.permute_dims(F, perm)


def _device(a: Array) -> Any:
    import array_api_compat

    return array_api_compat.device(a)


def _conjugate_partners(target: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Representative frequencies of the grid and, for every grid point, its source.

    For real inputs the spectrum at -f is the conjugate of the spectrum at f, so the
    co-moments at -f are the conjugates of those at f. On the cropped grid (signed
    frequencies -t//2 .. t - t//2 - 1 per axis) a point's partner -f lies inside the grid
    unless some axis sits at -t/2 (even t). Returns the flat indices to compute (``reps``)
    and, per grid point, (index into ``reps``, whether to conjugate).
    """
    signed = [np.array([j if j < t - t // 2 else j - t for j in range(t)]) for t in target]
    grids = np.meshgrid(*signed, indexing="ij")
    flat = np.ravel_multi_index(
        tuple(np.mod(g, t) for g, t in zip(grids, target, strict=True)), target
    ).ravel()
    size = int(np.prod(target))
    partner = np.full(size, -1, dtype=np.int64)
    neg = [-g for g in grids]
    inside = np.ones(grids[0].shape, dtype=bool)
    for g, t in zip(neg, target, strict=True):
        inside &= (g >= -(t // 2)) & (g <= t - t // 2 - 1)
    pidx = np.ravel_multi_index(
        tuple(np.mod(g, t) for g, t in zip(neg, target, strict=True)), target
    ).ravel()
    partner[flat[inside.ravel()]] = pidx[inside.ravel()]
    source = np.empty(size, dtype=np.int64)
    conj = np.zeros(size, dtype=bool)
    reps: list[int] = []
    rep_pos: dict[int, int] = {}
    for i in range(size):
        p_ = int(partner[i])
        if p_ >= 0 and p_ < i:  # partner already computed: reuse its conjugate
            source[i] = rep_pos[p_]
            conj[i] = p_ != i
        else:
            rep_pos[i] = len(reps)
            source[i] = len(reps)
            reps.append(i)
    return np.asarray(reps, dtype=np.int64), np.stack([source, conj.astype(np.int64)])


def _block_comoments(
    xp: Any, F: Array, G: Array, *, real: bool = True
) -> tuple[Array, Array, Array]:
    """Per-frequency centred co-moments of spectra (*t, N, c); conjugate frequencies of real
    inputs (``real``) are computed once and filled in by conjugation (about half the work).
    Spectra of complex inputs have no such symmetry: every frequency is computed."""
    target = tuple(int(v) for v in F.shape[:-2])
    n, c1, c2 = F.shape[-2], F.shape[-1], G.shape[-1]
    size = int(np.prod(target)) if target else 1
    if real:
        reps, (source, conj) = _conjugate_partners(target)
    else:
        reps = source = np.arange(size, dtype=np.int64)
        conj = np.zeros(size, dtype=np.int64)
    dev = _device(F)
    Ff = xp.take(xp.reshape(F, (size, n, c1)), xp.asarray(reps, device=dev), axis=0)
    Gf = xp.take(xp.reshape(G, (size, n, c2)), xp.asarray(reps, device=dev), axis=0)
    Fc = Ff - xp.mean(Ff, axis=-2, keepdims=True)
    Gc = Gf - xp.mean(Gf, axis=-2, keepdims=True)
    FcH = xp.conj(xp.matrix_transpose(Fc))
    out = []
    for C in (FcH @ Fc, xp.conj(xp.matrix_transpose(Gc)) @ Gc, FcH @ Gc):
        full = xp.take(C, xp.asarray(source, device=dev), axis=0)
        flip = xp.asarray(conj.astype(bool), device=dev)[:, None, None]
        full = xp.where(flip, xp.conj(full), full)
        out.append(xp.reshape(full, (*target, C.shape[-2], C.shape[-1])))
    return out[0], out[1], out[2]


def _pca_blocks(
    xp: Any, C: Array, *, variance: float | None, dims: int | None, rtol: float
) -> tuple[Side, int]:
    """Principal directions selected globally over all frequency blocks, then whitened."""
    evals, evecs = xp.linalg.eigh(C)
    evals = xp.flip(evals, axis=-1)
    evecs = xp.flip(evecs, axis=-1)
    ev = to_numpy(evals)
    flat = np.sort(np.clip(ev.ravel(), 0, None))[::-1]
    total = flat.sum()
    if total <= 0:
        raise ValueError("svcca is undefined: an input has zero variance.")
    rank = int(np.sum(flat > rtol * flat[0]))
    if dims is not None:
        k = min(dims, rank)
    else:
        ratio = np.cumsum(flat) / total
        k = min(int(np.searchsorted(ratio, variance, side="right")) + 1, rank)
    thresh = flat[k - 1]
    keep = ev >= thresh
    # exact ties at the threshold can keep a few more than k (conjugate frequency pairs)
    mask = xp.asarray(keep, device=_device(evals))
    safe = xp.where(mask, evals, xp.ones_like(evals))
    inv = xp.where(mask, 1.0 / xp.sqrt(xp.abs(safe)), xp.zeros_like(evals))
    W = evecs * xp.astype(inv, evecs.dtype)[..., None, :]
    rank_arr = xp.sum(xp.astype(mask, xp.int64), axis=-1)
    side = Side(
        W=W,
        evals=evals,
        evecs=evecs,
        mask=mask,
        rank=rank_arr,
        scale=xp.ones_like(evals),
        n_constant=0,
    )
    return side, int(keep.sum())


def dft_cca(
    X: Any,
    Y: Any,
    *,
    rtol: float = DEFAULT_RTOL,
    variance: float | None = None,
    dims: tuple[int | None, int | None] | None = None,
    layout: str | None = None,
) -> DFTCCAResult:
    """Exact CCA (or SVCCA) of convolutional activations through the DFT (Raghu et al. §3.1).

    Parameters
    ----------
    X : array, shape (N, H1, W1, C1) or (N, L1, C1)
    Y : array, shape (N, H2, W2, C2) or (N, L2, C2)
    variance, dims
        When given, SVCCA: principal directions are chosen over all frequencies jointly
        (by variance fraction, or the top ``dims``), which for translation-invariant data is
        exactly the SVD step on the flattened representation.
    layout : {None, "NHWC", "NCHW"}
        Where the channels are (see :func:`reshape_conv`).

    Returns
    -------
    DFTCCAResult
        ``value`` = mean of all canonical correlations over all frequencies (equal to mean
        CCA of the flattened, translation-augmented representation);
        ``rho_per_frequency`` (*spatial, k), ``mean_per_frequency`` (*spatial,).

    Notes
    -----
    google/svcca's ``fourier_ccas`` casts to complex64 and defines no aggregate; we work in
    complex128 and report the mean over all coefficients (its ``mean_of_all_coefs``).
    Conjugate frequencies (f and -f) carry identical coefficients for real inputs; both are
    counted, as in the flattened representation.
    """
    lx = resolve_layout(X, layout, name="X") if getattr(X, "ndim", 0) > 2 else None
    ly = resolve_layout(Y, layout, name="Y") if getattr(Y, "ndim", 0) > 2 else None
    X = as_array(X, name="X", allow_complex=True)
    Y = as_array(Y, name="Y", allow_complex=True)
    X, Y = harmonize(X, Y)
    X = to_channels_last_if(X, lx) if lx else X
    Y = to_channels_last_if(Y, ly) if ly else Y
    _check_conv(X, "X")
    _check_conv(Y, "Y")
    if X.ndim != Y.ndim:
        raise ValueError(
            f"X and Y must have the same number of spatial axes; got shapes {tuple(X.shape)} "
            f"and {tuple(Y.shape)}."
        )
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"X and Y must hold the same samples; got {X.shape[0]} and {Y.shape[0]} images."
        )
    n = int(X.shape[0])
    if n < 2:
        raise ValueError(f"dft CCA needs at least 2 images; got {n}.")
    check_finite(X, name="X")
    check_finite(Y, name="Y")
    xp = namespace(X, Y)
    target = tuple(min(a, b) for a, b in zip(X.shape[1:-1], Y.shape[1:-1], strict=True))
    real = not (_is_complex(xp, X) or _is_complex(xp, Y))
    gx, gy = _magnitude(xp, X), _magnitude(xp, Y)
    F = _spectra(xp, X, target, xp.complex128, magnitude=gx)
    G = _spectra(xp, Y, target, xp.complex128, magnitude=gy)
    Cxx, Cyy, Cxy = _block_comoments(xp, F, G, real=real)
    Cxx, Cyy, Cxy = zero_rounding_level(
        xp, Cxx, Cyy, Cxy, _noise_floor(xp, X, gx), _noise_floor(xp, Y, gy)
    )
    resized = X.shape[1:-1] != Y.shape[1:-1]
    return dft_cca_from_comoments(
        Cxx,
        Cyy,
        Cxy,
        n,
        target=target,
        rtol=rtol,
        variance=variance,
        dims=dims,
        resized=resized,
    )


def dft_cca_from_comoments(
    Cxx: Array,
    Cyy: Array,
    Cxy: Array,
    n: int,
    *,
    target: tuple[int, ...],
    rtol: float = DEFAULT_RTOL,
    variance: float | None = None,
    dims: tuple[int | None, int | None] | None = None,
    resized: bool = False,
) -> DFTCCAResult:
    """DFT CCA/SVCCA from per-frequency complex co-moments (*target, c1, c1) etc. or (F, ...).

    Used by :func:`dft_cca` and by streaming comparisons (:class:`nncompare.stats.SpectralMoments`).
    """
    xp = namespace(Cxx, Cyy, Cxy)
    shape = tuple(int(t) for t in target)
    Cxx = xp.reshape(Cxx, (*shape, Cxx.shape[-2], Cxx.shape[-1]))
    Cyy = xp.reshape(Cyy, (*shape, Cyy.shape[-2], Cyy.shape[-1]))
    Cxy = xp.reshape(Cxy, (*shape, Cxy.shape[-2], Cxy.shape[-1]))
    svd_mode = variance is not None or dims is not None
    if svd_mode:
        dx, dy = dims if dims is not None else (None, None)
        sx, kx = _pca_blocks(xp, Cxx, variance=variance, dims=dx, rtol=rtol)
        sy, ky = _pca_blocks(xp, Cyy, variance=variance, dims=dy, rtol=rtol)
    else:
        sx = whiten(xp, Cxx, rtol=rtol)
        sy = whiten(xp, Cyy, rtol=rtol)
        kx = ky = None
        if int(xp.max(sx.rank)) == 0 or int(xp.max(sy.rank)) == 0:
            raise ValueError("dft CCA is undefined: an input is constant at every frequency.")
    check_not_trivial(n, to_numpy(sx.rank), to_numpy(sy.rank), what="dft CCA")
    core = cca_core(xp, sx, sy, Cxy, want_vectors=False)
    k = xp.minimum(sx.rank, sy.rank)
    kmax = int(xp.max(k))
    rho = core.rho[..., :kmax]
    valid = xp.arange(kmax, device=_device(rho))[None] < xp.reshape(k, (-1, 1))
    valid = xp.reshape(valid, rho.shape)
    rho = xp.where(valid, rho, xp.zeros_like(rho))
    k_f = xp.astype(k, rho.dtype)
    # The flattened representation has min(total rank_x, total rank_y) canonical
    # correlations; frequencies where one side keeps more directions than the other
    # contribute exact zeros (the cross-covariance is block diagonal), so the mean divides
    # by the flattened count, not by the sum of per-frequency minima.
    n_coef = min(int(xp.sum(sx.rank)), int(xp.sum(sy.rank)))
    if n_coef == 0:
        raise ValueError("dft CCA is undefined: no direction is kept on one side at any frequency.")
    value = xp.sum(rho) / n_coef
    mean_pf = xp.sum(rho, axis=-1) / xp.where(k_f > 0, k_f, xp.ones_like(k_f))
    return DFTCCAResult(
        measure="svcca" if svd_mode else "cca",
        value=value,
        n_samples=n,
        conventions={
            "conv": "dft",
            "transform": "unitary DFT over spatial axes (complex128)",
            "resize": "frequency cropping to the smaller size" if resized else "none",
            "average": "mean of all coefficients over all frequencies",
            "rank_rtol": rtol,
            "selection": None
            if not svd_mode
            else (
                f"top {dims} directions over all frequencies"
                if dims is not None
                else f"cumulative variance fraction > {variance} over all frequencies"
            ),
        },
        rho_per_frequency=rho,
        k_per_frequency=k,
        mean_per_frequency=mean_pf,
        spatial_shape=shape,
        n_coefficients=n_coef,
        kept_dims_x=kx,
        kept_dims_y=ky,
    )
