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

import contextlib
import functools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from nncompare._array import Array, as_array, device_of, harmonize, namespace, to_numpy
from nncompare._layout import resolve_layout, to_channels_last_if
from nncompare._threads import (
    blas_single_threaded,
    block_map,
    row_slices,
    worker_count,
    worker_pool,
)
from nncompare._validation import check_finite, check_option, warn
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


def _floor_coefficient(X: Array, *, single: bool = False) -> float:
    """(κ eps)² of :func:`_noise_floor`: κ = 8 (1 + log2 of the spatial size), eps of the
    input's dtype (at least float64's; float32's when the products are, ``single``)."""
    from nncompare._validation import CONSTANT_ULPS, dtype_eps

    size = int(np.prod(X.shape[1:-1]))
    eps = max(dtype_eps(X.dtype), float(np.finfo(np.float32 if single else np.float64).eps))
    kappa = CONSTANT_ULPS * (1.0 + np.log2(max(size, 1)))
    return float((kappa * eps) ** 2)


# data whose squares sum to within 2^±2·_FAST_EXP need no rescaling (see _scan)
_FAST_EXP = 190


def _scan(xp: Any, X: Array, name: str) -> tuple[float, float, Array]:
    """Validate X and find its spectrum units and noise floor, in one pass when possible.

    Returns ``(magnitude, units, floor)``: the power of two just above max |X| (on the
    fast route below: a power of two above it, at most 2^(_FAST_EXP + 1)), the factor the
    spectra are multiplied by (:func:`_units`) and the per-channel noise floor
    (:func:`_noise_floor`). For real float numpy data, the
    per-channel energies Σ x² decide everything: they are finite only when every value is
    (NaN and ±inf propagate), and max |x|² lies between max energy / (samples · locations)
    and max energy, so when both bounds are well inside float64's range the units are 1
    and the floor is the energy times (κ eps)². Otherwise (integers, complex, torch,
    extreme magnitudes) the exact checks run: :func:`check_finite`, :func:`_magnitude`.
    """
    if isinstance(X, np.ndarray) and X.dtype.kind == "f" and X.size:
        energy = _channel_energies(X)
        top = float(energy.max())
        if np.isfinite(top) and top > 0.0:
            hi = np.sqrt(top)
            lo = np.sqrt(top / (X.size // X.shape[-1]))
            if lo >= 2.0**-_FAST_EXP and hi <= 2.0**_FAST_EXP:
                bound = float(np.ldexp(1.0, int(np.frexp(hi)[1])))  # a power of two >= max |x|
                return bound, 1.0, _floor_coefficient(X) * energy
    check_finite(X, name=name)
    g = _magnitude(xp, X)
    return g, _units(g), _noise_floor(xp, X, g)


#: samples per block of the per-channel energies (fixed: the sum's order, hence its bits,
#: does not depend on the number of workers)
_SCAN_SAMPLES = 64


def _channel_energies(X: np.ndarray) -> np.ndarray:
    """Σ x² per channel (last axis) in float64: blocks of samples spread over the workers,
    the blocks' sums added in order."""
    ax = "abcdefgh"[: X.ndim]
    spec = f"{ax},{ax}->{ax[-1]}"

    def part(r0: int, r1: int) -> np.ndarray:
        blk = X[r0:r1]
        return np.einsum(spec, blk, blk, dtype=np.float64)

    energy = np.zeros(int(X.shape[-1]))
    for e in block_map(part, int(X.shape[0]), _SCAN_SAMPLES):
        energy += e
    return energy


# threads for scipy.fft and the per-frequency work; BLAS held to one thread meanwhile
_fft_workers = worker_count
_blas_single_threaded = blas_single_threaded


# ---------------------------------------------------------------------- frequency plan
@dataclass(frozen=True)
class _Plan:
    """Which frequencies of the grid ``target`` are computed, and how the others follow.

    The grid lists the signed frequencies -t/2 ≤ f < t/2 of every axis in natural FFT
    order (0, 1, …, -1), flattened in C order. For real inputs the blocks at -f are the
    complex conjugates of those at f, so only one of each pair (a *representative*) is
    computed; its canonical correlations serve both.
    """

    target: tuple[int, ...]
    reps: np.ndarray  # (R, nsp) signed frequencies whose blocks are computed
    rep_flat: np.ndarray  # (R,) their flat grid indices
    source: np.ndarray  # (S,) index into reps of every grid point
    conj: np.ndarray  # (S,) bool: the point's blocks are the conjugates of its rep's

    @property
    def multiplicity(self) -> np.ndarray:
        """Grid points each representative stands for (1 or 2)."""
        return np.bincount(self.source, minlength=len(self.reps))

    @property
    def is_identity(self) -> bool:
        return len(self.reps) == len(self.source)


def _signed_axis(t: int) -> np.ndarray:
    j = np.arange(t)
    return np.where(j < t - t // 2, j, j - t)


def _grid(target: tuple[int, ...]) -> np.ndarray:
    """(S, nsp) signed frequencies of the grid, natural FFT order, C order."""
    mesh = np.meshgrid(*(_signed_axis(t) for t in target), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1).astype(np.int64)


def _plan_from_reps(target: tuple[int, ...], G: np.ndarray, rep_flat: np.ndarray) -> _Plan:
    reps_idx, source = np.unique(rep_flat, return_inverse=True)
    conj = rep_flat != np.arange(len(rep_flat))
    return _Plan(target, G[reps_idx], reps_idx, source.astype(np.int64).ravel(), conj)


def _partners(target: tuple[int, ...], G: np.ndarray, periodic: tuple[bool, ...]) -> np.ndarray:
    """Flat grid index of every point's conjugate partner -f (-1 when outside the grid).

    On a ``periodic`` axis every input has exactly the grid's size t, so -f is taken
    modulo t (-t/2 and t/2 are the same frequency); elsewhere -f must itself be a kept
    frequency (a cropped input's -t/2 has its partner t/2 outside the grid).
    """
    t = np.asarray(target, dtype=np.int64)
    P = -G
    per = np.asarray(periodic, dtype=bool)
    if per.any():
        wrapped = np.mod(P, t)
        wrapped = np.where(wrapped < t - t // 2, wrapped, wrapped - t)
        P = np.where(per[None, :], wrapped, P)
    inside = np.all((P >= -(t // 2)) & (P <= t - t // 2 - 1), axis=1)
    flat = np.ravel_multi_index(tuple(np.mod(P, t).T), target)
    return np.where(inside, flat, -1)


def _frequency_plan(
    target: tuple[int, ...], *, conjugate: bool, periodic: tuple[bool, ...] | None = None
) -> _Plan:
    """The representatives of the grid: every point (``conjugate=False``, complex inputs),
    or one of each conjugate pair {f, -f} (real inputs), chosen with the larger last
    coordinate (then the previous axes), so that it lies in the half plane an rfft keeps."""
    G = _grid(target)
    S = len(G)
    if not conjugate:
        return _plan_from_reps(target, G, np.arange(S))
    partner = _partners(target, G, periodic or (False,) * len(target))
    P = G[np.where(partner >= 0, partner, np.arange(S))]
    g_wins = np.ones(S, dtype=bool)
    decided = np.zeros(S, dtype=bool)
    for a in reversed(range(len(target))):
        g_wins = np.where(~decided & (G[:, a] < P[:, a]), False, g_wins)
        decided |= G[:, a] != P[:, a]
    rep_flat = np.where((partner >= 0) & ~g_wins, partner, np.arange(S))
    return _plan_from_reps(target, G, rep_flat)


def _slots(plan: _Plan, size: tuple[int, ...], *, half: bool) -> tuple[np.ndarray, np.ndarray]:
    """Where each representative's spectrum sits in the DFT of an input of spatial ``size``.

    Returns flat indices into the (half-plane when ``half``) DFT grid and whether to take
    the conjugate: a real input's rfft keeps last coordinates 0..s/2 only, and the
    spectrum at f outside that half is the conjugate of the one at -f.
    """
    if not half:
        idx = np.mod(plan.reps, np.asarray(size, dtype=np.int64))
        return np.ravel_multi_index(tuple(idx.T), size), np.zeros(len(idx), dtype=bool)
    idx, conj = _half_plane(plan, size)
    rshape = (*size[:-1], size[-1] // 2 + 1)
    return np.ravel_multi_index(tuple(idx.T), rshape), conj


def _half_plane(plan: _Plan, size: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The DFT index (R, nsp), within an input of spatial ``size``, of each
    representative's spectrum, or of its partner's where the representative lies outside
    the half plane of the last axis an rfft keeps (last index 0 .. s/2), with the flag
    that its conjugate is taken there."""
    s = np.asarray(size, dtype=np.int64)
    idx = np.mod(plan.reps, s)
    direct = idx[:, -1] <= s[-1] // 2
    return np.where(direct[:, None], idx, np.mod(-plan.reps, s)), ~direct


# ---------------------------------------------------------------------- spectra, moments
class _Workspace:
    """Scratch arrays reused from chunk to chunk and from call to call.

    A fresh large array costs a page fault per 4 KiB on its first touch, which at these
    sizes is a good part of the work; :class:`nncompare.SpectralMoments` keeps one
    workspace for all its batches. ``get(key, shape)`` returns a C-contiguous float64
    array of that shape, a view of a buffer reallocated only when it is too small. Keys
    name the use (and the worker slot), so no two users share a buffer.
    """

    def __init__(self) -> None:
        self._flat: dict[Any, np.ndarray] = {}

    def get(self, key: Any, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
        size = int(np.prod(shape, dtype=np.int64))
        key = (key, np.dtype(dtype).str)
        flat = self._flat.get(key)
        if flat is None or flat.size < size:
            flat = self._flat[key] = np.empty(size, dtype=dtype)
        return flat[:size].reshape(shape)


@dataclass
class _Source:
    """One input's share of a joint per-frequency co-moment computation."""

    X: Array  # (N, *spatial, C), channels last
    units: float  # power of two the spectra are multiplied by
    prescale: bool  # multiply X itself (its FFT would overflow)


def _dft(xp: Any, X: Array, *, half: bool, single: bool = False) -> Array:
    """Unitary DFT over the spatial axes of (N, *spatial, C) in complex128 (numpy with
    ``single``: complex64).

    Frequency major, (S', N, C), where S' is the half plane of the last axis for ``half``;
    numpy through scipy.fft (threaded).
    """
    nsp = X.ndim - 2
    n, c = int(X.shape[0]), int(X.shape[-1])
    if isinstance(X, np.ndarray):
        import scipy.fft

        if single:
            want = np.complex64 if X.dtype.kind == "c" else np.float32
        else:
            want = np.complex128 if X.dtype.kind == "c" else np.float64
        if X.dtype != want:
            X = X.astype(want)
        fn = scipy.fft.rfftn if half else scipy.fft.fftn
        F = fn(np.moveaxis(X, 0, -2), axes=tuple(range(nsp)), norm="ortho", workers=_fft_workers())
        return np.reshape(F, (-1, n, c))
    want = xp.complex128 if _is_complex(xp, X) else xp.float64
    if X.dtype != want:
        X = xp.astype(X, want)
    # the spatial axes first: the transform then writes the frequency-major layout the
    # products read, and (torch, CPU) runs about twice as fast as over the middle axes
    X = xp.permute_dims(X, (*range(1, nsp + 1), 0, nsp + 1))
    axes = tuple(range(nsp))
    F = (
        xp.fft.rfftn(X, axes=axes, norm="ortho")
        if half
        else xp.fft.fftn(X, axes=axes, norm="ortho")
    )
    return xp.reshape(F, (-1, n, c))


def _conjugated(xp: Any, A: Array) -> Array:
    """The complex conjugate of A as an array of its own.

    torch's conj is a lazy view, and a batched product with a conjugated, transposed
    operand first copies that operand in a slow strided pass (0.56 s against 0.1 s for
    (130, 2000, 64) complex128 on two cores); the conjugate is therefore resolved here,
    in one contiguous pass.
    """
    C = xp.conj(A)
    resolve = getattr(C, "resolve_conj", None)
    return resolve() if resolve is not None else C


# bytes of spectra per chunk of samples in the numpy co-moment pass (all inputs together):
# reused memory, cache resident for the products that follow
_CHUNK_BYTES = 128 * 2**20


def _joint_comoments(
    xp: Any,
    sources: list[_Source],
    plan: _Plan,
    *,
    half: bool,
    workspace: _Workspace | None = None,
    single: bool = False,
) -> tuple[Array, Array]:
    """Per-representative means (R, D) and centred co-moments (R, D, D) of the inputs'
    spectra side by side (D = Σ C), in complex128: ``Σ_s (z_s - z̄)ᴴ (z_s - z̄)``.

    numpy: the samples are taken in chunks (see :func:`_joint_comoments_numpy`): memory
    O(R·D² + chunk), not O(N·R·D); ``workspace`` keeps the scratch arrays for later calls.
    Other libraries: one FFT per input, then the batched complex products of each pair of
    inputs (the blocks below the diagonal are the conjugate transposes of those above).
    A representative that stands for its conjugate frequency is conjugated in the results,
    not in the data: the centred co-moments of conj(z) are the conjugates of z's. Only
    where two inputs disagree on that (layers of different sizes) is the data of the
    second flipped, at the frequencies where they disagree.
    """
    widths = [int(s.X.shape[-1]) for s in sources]
    starts = np.cumsum([0, *widths])
    if isinstance(sources[0].X, np.ndarray):
        return _joint_comoments_numpy(
            sources, plan, half=half, starts=starts, workspace=workspace, single=single
        )
    dev = device_of(sources[0].X)
    blocks, means, flips = [], [], []
    for s in sources:
        X = s.X * s.units if s.prescale else s.X
        size = tuple(int(v) for v in X.shape[1:-1])
        slots, conj = _slots(plan, size, half=half)
        F = xp.take(_dft(xp, X, half=half), xp.asarray(slots, device=dev), axis=0)  # (R, N, C)
        if flips and bool((conj != flips[0]).any()):  # relative to the first input's
            rel = xp.asarray(conj != flips[0], device=dev)[:, None, None]
            F = xp.where(rel, xp.conj(F), F)
        u = 1.0 if s.prescale else s.units
        if u != 1.0:
            F = F * u
        m = xp.mean(F, axis=-2, keepdims=True)
        F -= m  # a fresh array (in place where the library allows it)
        blocks.append(F)
        means.append(m[:, 0, :])
        flips.append(conj)
    rows: list[list[Array]] = []
    for i in range(len(blocks)):
        Ac = xp.matrix_transpose(_conjugated(xp, blocks[i]))  # (R, C_i, N), freed after the row
        rows.append(
            [
                xp.conj(xp.matrix_transpose(rows[j][i])) if j < i else Ac @ blocks[j]
                for j in range(len(blocks))
            ]
        )
    com = xp.concat([xp.concat(r, axis=-1) for r in rows], axis=-2) if len(rows) > 1 else rows[0][0]
    mean = xp.concat(means, axis=-1) if len(means) > 1 else means[0]
    if bool(flips[0].any()):
        flip = xp.asarray(flips[0], device=dev)
        com = xp.where(flip[:, None, None], xp.conj(com), com)
        mean = xp.where(flip[:, None], xp.conj(mean), mean)
    return mean, com


def _joint_comoments_numpy(
    sources: list[_Source],
    plan: _Plan,
    *,
    half: bool,
    starts: np.ndarray,
    workspace: _Workspace | None = None,
    single: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The numpy route of :func:`_joint_comoments` (chunked, BLAS syrk accumulation).

    One pass over the data: per chunk of samples, the spectra of every input at the
    representatives (:class:`_GemmSpectra` for small real inputs, else
    :class:`_FFTSpectra`); per frequency, the chunk's spectra minus a shift μ₀ go into one
    real (chunk, 2D + 1) buffer (real parts of all inputs, imaginary parts, then a column
    of ones; one pass, cache resident) whose symmetric product is accumulated in place.
    The ones column makes the same product also sum the shifted spectra; the centred
    co-moments follow as ``Σ (z - μ₀)ᴴ (z - μ₀) - n δᴴ δ`` with δ = mean - μ₀. The shift
    is the first sample's spectrum: constant coefficients (dead channels, fixed patterns)
    then give exact zeros, and since the shift is one of the samples, a coefficient's
    shifted sum of squares is at most n + 1 times its centred one (log2(n + 1) bits lost
    to the correction, at worst). Where it exceeds 2^_SHIFT_BITS times (many samples and
    an outlying first one), the pass is repeated with the exact mean spectrum (the
    spectrum of the mean image) as the shift.

    ``single`` (real float inputs): the spectra and each chunk's products in float32, the
    sums over chunks, the correction and everything after in float64. The shift is then
    the spectrum of the mean image (float32 cannot spare the bits a sample shift may cost),
    and the residual δ it leaves is of the order of float32's rounding of the mean.
    """
    R = len(plan.reps)
    n = int(sources[0].X.shape[0])
    ws = _Workspace() if workspace is None else workspace
    inputs, chunk = _spectra_inputs(sources, plan, half=half, ws=ws, single=single)
    workers = min(_fft_workers(), R)
    bits = _SHIFT_BITS_SINGLE if single else _SHIFT_BITS
    with _blas_single_threaded(), worker_pool(workers) as pool:
        mean, com, excess = _shifted_pass(
            inputs, R, int(starts[-1]), starts, n, chunk, pool, workers, None, ws, bits
        )
        if single and not all(_in_single_range(t.magnitudes) for t in inputs):
            raise _OutOfSingleRange
        if excess:
            shifts = [t.spectrum_of(t.X.mean(axis=0, dtype=t.mean_dtype)) for t in inputs]
            mean, com, _ = _shifted_pass(
                inputs, R, int(starts[-1]), starts, n, chunk, pool, workers, shifts, ws, bits
            )
    return mean, com


def _spectra_inputs(
    sources: list[_Source], plan: _Plan, *, half: bool, ws: _Workspace, single: bool
) -> tuple[list[_FFTSpectra | _GemmSpectra], int]:
    """Each source's spectra route (:class:`_GemmSpectra` for small real inputs, else
    :class:`_FFTSpectra`) and the samples per chunk: (nearly) equal chunks, so that their
    buffers are reused, of at most ``_CHUNK_BYTES`` of spectra."""
    inputs: list[_FFTSpectra | _GemmSpectra] = []
    per_sample = 0
    for k, s in enumerate(sources):
        X = s.X * s.units if s.prescale else s.X
        u = 1.0 if s.prescale else s.units
        route = _GemmSpectra if _gemm_suits(X) else _FFTSpectra
        dt = np.float32 if single else np.float64
        inputs.append(route(X, plan, u, half=half, ws=ws, key=k, dtype=dt))
        per_sample += inputs[-1].bytes_per_sample // (2 if single else 1)
    n = int(sources[0].X.shape[0])
    most = int(max(16, min(n, _CHUNK_BYTES // max(per_sample, 1))))
    return inputs, -(-n // -(-n // most))


@dataclass
class _RawSums:
    """The shifted sums of a run of batches (:class:`nncompare.SpectralMoments`), before
    they are centred: what :func:`_shifted_pass` forms and then corrects.

    ``acc`` (R, 2D + 1, 2D + 1) holds Σ over the run's samples of the products of
    [Re(z - μ₀) | Im(z - μ₀) | 1]; ``shifts`` are μ₀ per input in its route's layout (the
    first sample's spectra), ``mu0`` the same at the representatives (R, D); ``key``
    says which inputs (spatial sizes, dtypes, units) a later batch must bring to join.
    """

    acc: np.ndarray
    shifts: list[np.ndarray]
    mu0: np.ndarray
    n: int
    key: tuple[Any, ...]

    def takes(self, key: tuple[Any, ...], n: int) -> bool:
        """Whether a batch of n samples with this ``key`` may join the run."""
        return key == self.key and self.n + n <= _RUN_MAX


def _run_sums(
    sources: list[_Source],
    plan: _Plan,
    *,
    half: bool,
    workspace: _Workspace,
    run: _RawSums | None,
    key: tuple[Any, ...],
) -> _RawSums:
    """Add a batch of numpy inputs (float64 products) to ``run``, or start a run with it.

    A run starts with the first sample's spectra as its shift and keeps it for every
    batch that joins. The run's sums live in ``workspace`` (its ``"acc"`` buffer): nothing
    else may use that workspace until :func:`_centred_run` has read them.
    """
    starts = np.cumsum([0, *[int(s.X.shape[-1]) for s in sources]])
    R, D = len(plan.reps), int(starts[-1])
    n = int(sources[0].X.shape[0])
    if not (run.takes(key, n) if run is not None else n <= _RUN_MAX):
        raise AssertionError("the caller checks _RawSums.takes first")
    inputs, chunk = _spectra_inputs(sources, plan, half=half, ws=workspace, single=False)
    workers = min(_fft_workers(), R)
    with _blas_single_threaded(), worker_pool(workers) as pool:
        if run is None:
            return _fresh_sums(
                inputs, R, D, starts, n, chunk, pool, workers, None, workspace, key=key
            )
        _accumulate_chunks(
            inputs, run.acc, starts, n, chunk, pool, workers, run.shifts, workspace, False
        )
    run.n += n
    return run


def _centred_run(run: _RawSums) -> tuple[np.ndarray, np.ndarray]:
    """Means (R, D) and centred co-moments (R, D, D) of a run (see :func:`_run_sums`).

    The run's shift is one of its at most ``_RUN_MAX`` samples, so the correction loses at
    most log2(_RUN_MAX + 1) = _SHIFT_BITS bits: no second pass is ever needed."""
    workers = min(_fft_workers(), len(run.mu0))
    with _blas_single_threaded(), worker_pool(workers) as pool:
        mean, com, _ = _centre_sums(run.acc, run.mu0, run.n, pool, workers, _SHIFT_BITS)
    return mean, com


# the first-sample shift is kept while no coefficient's shifted sum of squares exceeds its
# centred one by more than 2^_SHIFT_BITS (bits of the products lost to the correction);
# float32 products have fewer bits to spare
_SHIFT_BITS = 10
_SHIFT_BITS_SINGLE = 4
# a run of batches (SpectralMoments) shares one shift, the first sample of its first
# batch, while it holds at most this many samples: its shifted sums of squares then stay
# within n + 1 ≤ 2^_SHIFT_BITS times the centred ones, the bound checked above
_RUN_MAX = 2**_SHIFT_BITS - 1


class _OutOfSingleRange(Exception):
    """float32 spectra and products would over- or underflow for these data (see
    :func:`_in_single_range`): the caller takes the float64 path instead."""


def _in_single_range(magnitudes: list[np.ndarray] | None) -> bool:
    """Whether per-channel largest magnitudes (one array per block; None: checked before)
    keep float32 products from over- and underflow: finite, and zero or within
    [2^-_SINGLE_EXP, 2^_SINGLE_EXP]."""
    if magnitudes is None:
        return True
    if not magnitudes:
        return False
    with np.errstate(invalid="ignore"):
        top = np.max(np.stack(magnitudes), axis=0)
        inside = (top >= 2.0**-_SINGLE_EXP) & (top <= 2.0**_SINGLE_EXP)
    return bool(np.all(inside | (top == 0.0)))


# the DFT as two small matrix products (_GemmSpectra) costs ~4 (Σ spatial sizes) flops per
# value against the FFT's ~5 log2(spatial size), but runs at the matrix-product rate, many
# times the rate pocketfft reaches on short strided transforms: it wins up to here
_GEMM_MAX_SPATIAL_SUM = 56


def _gemm_suits(X: np.ndarray) -> bool:
    """Whether :class:`_GemmSpectra` handles X: real, one or two spatial axes, small."""
    small = sum(int(v) for v in X.shape[1:-1]) <= _GEMM_MAX_SPATIAL_SUM
    return X.dtype.kind in "fiub" and X.ndim in (3, 4) and small


class _FFTSpectra:
    """One input's spectra at the representatives through scipy.fft (any size, complex).

    A chunk's transform is frequency major (S', rows, C), complex128 (complex64 with
    float32 products); representative r reads slot ``slots[r]``, conjugated where
    ``conj[r]``, times ``u``.
    """

    def __init__(
        self,
        X: np.ndarray,
        plan: _Plan,
        u: float,
        *,
        half: bool,
        ws: _Workspace,
        key: Any,
        dtype: Any = np.float64,
    ) -> None:
        self.X, self.u, self.half, self.dtype = X, u, half, np.dtype(dtype)
        self.single = self.dtype == np.float32
        self.magnitudes: list[np.ndarray] | None = None  # checked before (_single_safe)
        size = tuple(int(v) for v in X.shape[1:-1])
        self.slots, self.conj = _slots(plan, size, half=half)
        self.mean_dtype = np.complex128 if X.dtype.kind == "c" else np.float64
        cols = int(np.prod(size[:-1], dtype=np.int64)) * (size[-1] // 2 + 1 if half else size[-1])
        self.bytes_per_sample = 16 * cols * int(X.shape[-1])

    def transform(self, rows: slice, pool: Any, workers: int) -> np.ndarray:
        return _dft(np, self.X[rows], half=self.half, single=self.single)

    def first(self, T: np.ndarray) -> np.ndarray:
        return T[:, 0, :].copy()

    def spectrum_of(self, image: np.ndarray) -> np.ndarray:
        return _dft(np, image[None], half=self.half, single=self.single)[:, 0, :]

    def fill(self, T: np.ndarray, mu: np.ndarray, r: int, re: np.ndarray, im: np.ndarray) -> None:
        z, m = T[self.slots[r]], mu[self.slots[r]]
        np.subtract(z.real, m.real, out=re)
        if self.conj[r]:
            np.subtract(m.imag, z.imag, out=im)
        else:
            np.subtract(z.imag, m.imag, out=im)
        if self.u != 1.0:
            re *= self.u
            im *= self.u

    def at_reps(self, mu: np.ndarray) -> np.ndarray:
        """A shift (S', C) at the representatives (R, C), in the co-moments' units."""
        m = mu[self.slots] * self.u
        return np.where(self.conj[:, None], np.conj(m), m)


class _GemmSpectra:
    """One real input's spectra at the representatives as real matrix products.

    The unitary DFT is separable. Over the last spatial axis (W) a real (2 Kw, W) matrix
    of cosines and negated sines gives the real and imaginary parts at the Kw frequencies
    the representatives use; over the first axis (H, 2-D inputs) a real (2 Kh, 2 H)
    matrix acts on those parts ([[cos, sin], [-sin, cos]] blocks: the complex product
    written in reals). Only the frequencies used are formed, at any input size (so
    cropping is built in). Each block of samples is transposed to (W, H, samples, C)
    (channel rows stay contiguous), after which each step is one large matrix product:
    W by (H · samples · C), then per W frequency (2 Kh, 2 H) by (2 H, samples · C). The
    chunk's transform is frequency major, (Kw, 2, Kh, rows, C) in the products' precision, so a
    representative's real and imaginary parts are contiguous (rows, C) blocks. Identical
    images give identical spectra (the same products, column by column): exact zeros
    after the shift. ``u`` is folded into the first matrix (a power of two: exact).
    """

    # bytes of input per block of the transposition and the first product: the block and
    # its first product stay in cache (2 MB: 16 float64 samples of 16 x 16 x 64, 1.15x
    # faster than blocks of 64 on the benchmark machine); between 4 and 64 samples
    BLOCK_BYTES = 2 * 2**20

    def __init__(
        self,
        X: np.ndarray,
        plan: _Plan,
        u: float,
        *,
        half: bool,
        ws: _Workspace,
        key: Any,
        dtype: Any = np.float64,
    ) -> None:
        self.X, self.mean_dtype, self.dtype = X, np.float64, np.dtype(dtype)
        # with float32 products: each block's per-channel largest magnitude (list.append
        # is atomic, so the workers share it), checked by the caller afterwards
        self.magnitudes: list[np.ndarray] | None = [] if self.dtype == np.float32 else None
        size = tuple(int(v) for v in X.shape[1:-1])
        self.size, self.c = size, int(X.shape[-1])
        # each representative's spectrum, or (outside the half plane of the last axis, as
        # an rfft keeps it) the conjugate of its partner's: at most size/2 + 1 frequencies
        # on the last axis. Without this, representatives such as (-t/2, w < 0), which a
        # grid without wrap-around keeps, would need every W frequency (nearly twice the
        # work; SpectralMoments)
        freqs, self.conj = _half_plane(plan, size)
        fw = np.unique(freqs[:, -1])
        self.iw = np.searchsorted(fw, freqs[:, -1])
        self.kw = len(fw)
        cw, sw = _trig(fw, size[-1])
        self.MW = np.stack([cw * u, -sw * u], axis=1).reshape(2 * self.kw, size[-1])
        if len(size) == 1:
            self.ih, self.kh, self.MH = np.zeros(len(freqs), dtype=np.int64), 1, None
        else:
            fh = np.unique(freqs[:, 0])
            self.ih, self.kh = np.searchsorted(fh, freqs[:, 0]), len(fh)
            ch, sh = _trig(fh, size[0])
            self.MH = np.block([[ch, sh], [-sh, ch]])  # rows (re/im, kh), columns (re/im, h)
            self.MH = self.MH.astype(self.dtype)
        self.MW = self.MW.astype(self.dtype)
        self.ws, self.key = ws, key
        self.bytes_per_sample = 16 * self.kw * self.kh * self.c
        image = int(np.prod(size)) * self.c * self.dtype.itemsize
        self.block = int(min(64, max(4, self.BLOCK_BYTES // image)))

    def _shape(self, m: int) -> tuple[int, ...]:
        return (self.kw, 2, self.kh, m, self.c)

    def _scratch(self, b: int, slot: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Worker ``slot``'s transposition and first-product buffers for b samples."""
        spatial = self.size[::-1]
        Xt = self.ws.get(("Xt", slot), (*spatial, b, self.c), self.dtype)
        rest = int(Xt.size) // spatial[0]
        A = None if self.MH is None else self.ws.get(("A", slot), (2 * self.kw, rest), self.dtype)
        return Xt, A

    def _into(self, X: np.ndarray, out: np.ndarray, m0: int, slot: Any = None) -> None:
        """The spectra of the samples X (a block) into out[..., m0 : m0 + len(X), :]."""
        b, c = int(X.shape[0]), self.c
        m = int(out.shape[3])
        Xt, A = self._scratch(b, slot)
        np.copyto(Xt, _to_spatial_major(X))  # one pass, channel rows stay contiguous
        if self.magnitudes is not None:  # float32 products: per-channel range, from cache
            axes = tuple(range(Xt.ndim - 1))
            top = np.maximum(np.abs(Xt.max(axis=axes)), np.abs(Xt.min(axis=axes)))
            self.magnitudes.append(top.astype(np.float64))
        cols = Xt.reshape(Xt.shape[0], -1)  # (W, ([H,] b, C))
        if A is None:  # 1-D: out (Kw, 2, 1, m, C), rows (kw, re/im)
            np.matmul(self.MW, cols, out=_block_cols(out.reshape(2 * self.kw, m, c), m0, b))
            return
        h = self.size[0]
        np.matmul(self.MW, cols, out=A)  # ((kw, re/im), (h, b, C))
        A3 = A.reshape(self.kw, 2 * h, b * c)
        for k in range(self.kw):
            dst = _block_cols(out[k].reshape(2 * self.kh, m, c), m0, b)
            np.matmul(self.MH, A3[k], out=dst)

    def transform(self, rows: slice, pool: Any, workers: int) -> np.ndarray:
        X = self.X[rows]
        m = int(X.shape[0])
        out = self.ws.get(("spectra", self.key), self._shape(m), self.dtype)
        errors = np.geterr()
        blocks = [slice(s, min(s + self.block, m)) for s in range(0, m, self.block)]

        def part(slot: int) -> None:  # worker slot takes every workers-th block
            with np.errstate(**errors):
                for sl in blocks[slot::workers]:
                    self._into(X[sl], out, sl.start, slot)

        list(pool.map(part, range(min(workers, len(blocks)))))
        return out

    def first(self, T: np.ndarray) -> np.ndarray:
        return T[:, :, :, 0].copy()  # (Kw, 2, Kh, C)

    def spectrum_of(self, image: np.ndarray) -> np.ndarray:
        out = np.empty(self._shape(1), dtype=self.dtype)
        kept, self.magnitudes = self.magnitudes, None
        try:
            self._into(image[None], out, 0, "single")
        finally:
            self.magnitudes = kept
        return out[:, :, :, 0]

    def fill(self, T: np.ndarray, mu: np.ndarray, r: int, re: np.ndarray, im: np.ndarray) -> None:
        i, j = self.iw[r], self.ih[r]
        np.subtract(T[i, 0, j], mu[i, 0, j], out=re)
        if self.conj[r]:
            np.subtract(mu[i, 1, j], T[i, 1, j], out=im)
        else:
            np.subtract(T[i, 1, j], mu[i, 1, j], out=im)

    def at_reps(self, mu: np.ndarray) -> np.ndarray:
        m = mu[self.iw, 0, self.ih] + 1j * mu[self.iw, 1, self.ih]  # (R, C)
        return np.where(self.conj[:, None], np.conj(m), m)


def _to_spatial_major(X: np.ndarray) -> np.ndarray:
    """(b, [H,] W, C) viewed as ([W, H,] b, C): spatial axes first, last one leading."""
    nsp = X.ndim - 2
    return X.transpose(*range(nsp, 0, -1), 0, nsp + 1)


def _block_cols(a: np.ndarray, m0: int, b: int) -> np.ndarray:
    """Columns (samples m0 .. m0 + b, all channels) of a (rows, m, C) array as a 2-D
    (rows, b · C) view (an ``out=`` target)."""
    return _rows_view(a[:, m0 : m0 + b], 1)


def _rows_view(a: np.ndarray, first: int) -> np.ndarray:
    """``a`` as a 2-D matrix of its first ``first`` axes by the rest, without a copy (an
    ``out=`` target): the trailing axes must be contiguous, the leading ones merge."""
    expect = a.itemsize
    for size, stride in zip(reversed(a.shape[first:]), reversed(a.strides[first:]), strict=True):
        if size > 1 and stride != expect:
            raise AssertionError("the trailing axes must be contiguous")
        expect *= size
    for i in range(first - 1):
        if a.shape[i + 1] > 1 and a.strides[i] != a.strides[i + 1] * a.shape[i + 1]:
            raise AssertionError("the leading axes must merge")
    rows = int(np.prod(a.shape[:first], dtype=np.int64))
    inner = int(np.prod(a.shape[first:], dtype=np.int64))
    return np.lib.stride_tricks.as_strided(
        a, shape=(rows, inner), strides=(a.strides[first - 1], a.itemsize)
    )


def _trig(freqs: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of 2π f x / size over x < size, (len(freqs), size), divided by
    sqrt(size) (the unitary DFT's factor); the phase is reduced modulo size exactly."""
    phase = np.mod(np.outer(freqs, np.arange(size)), size) * (2.0 * np.pi / size)
    scale = 1.0 / np.sqrt(size)
    return np.cos(phase) * scale, np.sin(phase) * scale


def _shifted_pass(
    inputs: list[_FFTSpectra | _GemmSpectra],
    R: int,
    D: int,
    starts: np.ndarray,
    n: int,
    chunk: int,
    pool: Any,
    workers: int,
    shifts: list[np.ndarray] | None,
    ws: _Workspace,
    bits: int = _SHIFT_BITS,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """One pass of :func:`_joint_comoments_numpy` with the given shifts per input (None:
    the first sample's spectra). Returns the means, the centred co-moments and whether the
    shift lost more than ``bits`` bits on some coefficient."""
    sums = _fresh_sums(inputs, R, D, starts, n, chunk, pool, workers, shifts, ws, key=())
    mean, com, excess = _centre_sums(sums.acc, sums.mu0, n, pool, workers, bits)
    return mean, com, excess and shifts is None


def _fresh_sums(
    inputs: list[_FFTSpectra | _GemmSpectra],
    R: int,
    D: int,
    starts: np.ndarray,
    n: int,
    chunk: int,
    pool: Any,
    workers: int,
    shifts: list[np.ndarray] | None,
    ws: _Workspace,
    *,
    key: tuple[Any, ...],
) -> _RawSums:
    """The shifted sums of n samples in ``ws``'s ``"acc"`` buffer (overwritten), with the
    given shifts (None: the first sample's spectra)."""
    acc = ws.get("acc", (R, 2 * D + 1, 2 * D + 1))  # written whole by the first chunk
    mus = _accumulate_chunks(inputs, acc, starts, n, chunk, pool, workers, shifts, ws, True)
    return _RawSums(acc, mus, _shifts_at_reps(inputs, mus, R, starts), n, key)


def _accumulate_chunks(
    inputs: list[_FFTSpectra | _GemmSpectra],
    acc: np.ndarray,
    starts: np.ndarray,
    n: int,
    chunk: int,
    pool: Any,
    workers: int,
    shifts: list[np.ndarray] | None,
    ws: _Workspace,
    fresh: bool,
) -> list[np.ndarray]:
    """Add the real (2D + 1, 2D + 1) products of the shifted spectra [real parts |
    imaginary parts | 1] of every chunk of samples to ``acc`` (R, 2D + 1, 2D + 1), per
    representative (``fresh``: overwrite it instead). Returns the shifts, per input in its
    route's layout (None given: the first sample's spectra)."""
    # numpy's matmul runs BLAS syrk for buf.T @ buf and, unlike scipy's BLAS wrappers,
    # releases the GIL, so the workers' products overlap; later chunks go through a
    # scratch block added on
    R, E = int(acc.shape[0]), int(acc.shape[-1])
    D = (E - 1) // 2
    groups = [range(i, R, workers) for i in range(workers)]
    dt = inputs[0].dtype  # the products' precision (float64 sums of float32 products)
    same = dt == np.float64
    bufs = [ws.get(("buf", i), (chunk, E), dt) for i in range(workers)]
    scratch = [ws.get(("sum", i), (E, E), dt) for i in range(workers)]
    for b in bufs:
        b[:, -1] = 1.0
    errors = np.geterr()  # the caller's floating-point error handling, for the workers
    mus = shifts

    def accumulate(reps: range, spectra: list[np.ndarray], rows: int, first: bool) -> None:
        buf = bufs[reps.start][:rows]
        with np.errstate(**errors):
            for r in reps:
                for k, t in enumerate(inputs):
                    a, b = starts[k], starts[k + 1]
                    t.fill(spectra[k], mus[k], r, buf[:, a:b], buf[:, D + a : D + b])
                if first and same:
                    np.matmul(buf.T, buf, out=acc[r])
                else:
                    tmp = scratch[reps.start]
                    np.matmul(buf.T, buf, out=tmp)
                    if first:
                        acc[r] = tmp
                    else:
                        acc[r] += tmp

    for s0 in range(0, n, chunk):
        rows = min(chunk, n - s0)
        with np.errstate(**errors):
            spectra = [t.transform(slice(s0, s0 + rows), pool, workers) for t in inputs]
        if mus is None:
            mus = [t.first(T) for t, T in zip(inputs, spectra, strict=True)]
        first = fresh and s0 == 0
        step = functools.partial(accumulate, spectra=spectra, rows=rows, first=first)
        list(pool.map(step, groups))
        del spectra
    assert mus is not None  # n > 0
    return mus


def _shifts_at_reps(
    inputs: list[_FFTSpectra | _GemmSpectra], mus: list[np.ndarray], R: int, starts: np.ndarray
) -> np.ndarray:
    """The shifts at the representatives (R, D), in the co-moments' units and orientation."""
    mu0 = np.empty((R, int(starts[-1])), dtype=np.complex128)
    for k, t in enumerate(inputs):
        mu0[:, starts[k] : starts[k + 1]] = t.at_reps(mus[k])
    return mu0


def _centre_sums(
    acc: np.ndarray, mu0: np.ndarray, n: int, pool: Any, workers: int, bits: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Means (R, D) and centred co-moments (R, D, D) from the shifted sums ``acc`` of
    :func:`_accumulate_chunks` over n samples and their shifts ``mu0`` (R, D); and whether
    the correction lost more than ``bits`` bits on some coefficient."""
    R, D = int(mu0.shape[0]), int(mu0.shape[1])
    errors = np.geterr()
    sums = np.empty((R, D), dtype=np.complex128)
    sums.real = acc[:, 2 * D, :D]
    sums.imag = acc[:, 2 * D, D : 2 * D]
    delta = sums / n
    com = np.empty((R, D, D), dtype=np.complex128)
    slices = _block_slices(R, workers)

    def assemble(sl: slice) -> bool:
        with np.errstate(**errors):
            c = com[sl]
            a = acc[sl, : 2 * D, : 2 * D]
            sq = np.diagonal(a, axis1=1, axis2=2)
            shifted = sq[:, :D] + sq[:, D:]
            _hermitian_from_real(a, out=c, minus=(float(n), delta[sl]))
            idx = np.arange(D)
            centred = c.real[:, idx, idx]
            with np.errstate(invalid="ignore"):
                lost = shifted > np.ldexp(np.maximum(centred, 0.0), bits)
            return bool(np.any(lost & (shifted > 0)))

    excess = any(list(pool.map(assemble, slices)))
    return mu0 + delta, com, excess


def _hermitian_from_real(
    acc: np.ndarray,
    *,
    out: np.ndarray | None = None,
    minus: tuple[float, np.ndarray] | None = None,
) -> np.ndarray:
    """Complex Hermitian (R, D, D) blocks from the real symmetric (R, 2D, 2D) products of
    the columns [real parts | imaginary parts]: with Z = A + iB, ZᴴZ = (AᵀA + BᵀB) +
    i (AᵀB - BᵀA), and BᵀA is the lower-left block.

    ``minus=(w, δ)`` (δ of shape (R, D)) subtracts w δ_rᴴ δ_r from block r on the way
    (the shift correction of :func:`_shifted_pass`), while the block is in cache.
    """
    D = acc.shape[-1] // 2
    com = np.empty((acc.shape[0], D, D), dtype=np.complex128) if out is None else out
    idx = np.arange(D)
    for r, (a, c) in enumerate(zip(acc, com, strict=True)):  # block by block, in cache
        np.add(a[:D, :D], a[D:, D:], out=c.real)
        ba = a[D:, :D]
        np.subtract(ba.T, ba, out=c.imag)
        if minus is not None:
            d = minus[1][r]
            c -= (minus[0] * np.conj(d))[:, None] * d[None, :]
            c.imag[idx, idx] = 0.0
    return com


# ---------------------------------------------------------------------- decompositions
# Cholesky whitening of a correlation block is used when ‖L⁻¹‖_F² (≥ 1/λ_min) certifies
# λ_min ≥ 1/_CHOL_MAX_INV: then the block has full rank under any rtol the eigh path would
# apply (see _whiten_blocks) and both whitenings give canonical correlations that agree to
# ~d · _CHOL_MAX_INV · eps ≈ 1e-10.
_CHOL_MAX_INV = 1e4


def _cholesky_blocks(xp: Any, R: Array) -> tuple[Array, np.ndarray]:
    """Lower Cholesky factors of a stack of Hermitian blocks and which succeeded."""
    m = int(R.shape[0])
    if isinstance(R, np.ndarray):
        try:
            return np.linalg.cholesky(R), np.ones(m, dtype=bool)
        except np.linalg.LinAlgError:
            L = np.zeros_like(R)
            ok = np.zeros(m, dtype=bool)
            for i in range(m):
                try:
                    L[i] = np.linalg.cholesky(R[i])
                    ok[i] = True
                except np.linalg.LinAlgError:
                    pass
            return L, ok
    if hasattr(R, "detach"):  # torch
        import torch

        L, info = torch.linalg.cholesky_ex(R)
        return L, to_numpy(info) == 0
    try:
        return xp.linalg.cholesky(R), np.ones(m, dtype=bool)
    except Exception:  # other libraries: all or nothing
        return R, np.zeros(m, dtype=bool)


def _tri_inv_blocks(xp: Any, L: Array) -> Array:
    """Inverses of a stack of lower-triangular blocks."""
    if isinstance(L, np.ndarray):
        from scipy.linalg.lapack import get_lapack_funcs

        (trtri,) = get_lapack_funcs(("trtri",), (L,))
        out = np.empty_like(L)
        for i in range(L.shape[0]):
            out[i], _ = trtri(L[i], lower=1)
        return out
    if hasattr(L, "detach"):  # torch
        import torch

        eye = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device)
        return torch.linalg.solve_triangular(L, eye.expand(L.shape), upper=False)
    return xp.linalg.inv(L)


def _whiten_blocks(xp: Any, C: Array, *, rtol: float) -> Side:
    """Scale-normalised whitening of a stack of Hermitian co-moment blocks (R, d, d).

    A block whose correlation matrix R = S C S has a Cholesky factor with
    ‖L⁻¹‖_F² ≤ min(_CHOL_MAX_INV, 1 / (2 rtol d)) is whitened by W = S L⁻ᴴ: its smallest
    eigenvalue (at least 1/‖L⁻¹‖_F²) exceeds rtol times its largest (at most d), so the
    eigen-decomposition would keep every direction too. The others (constant or nearly
    dependent features) go through :func:`whiten`'s eigen-decomposition with its rank
    cut-off. Either way Wᴴ C W = diag(kept), and the canonical correlations agree.
    """
    m, d = int(C.shape[0]), int(C.shape[-1])
    dev = device_of(C)
    var = real(xp, diag(xp, C))
    usable = np.nonzero(to_numpy(xp.all(var > 0, axis=-1)))[0] if m else np.zeros(0, int)
    accept = np.zeros(m, dtype=bool)
    W_chol = None
    if usable.size:
        sub = usable.size < m
        Cu = xp.take(C, xp.asarray(usable, device=dev), axis=0) if sub else C
        vu = xp.take(var, xp.asarray(usable, device=dev), axis=0) if sub else var
        s_c = xp.astype(1.0 / xp.sqrt(vu), C.dtype)
        L, ok = _cholesky_blocks(xp, s_c[..., :, None] * Cu * s_c[..., None, :])
        if ok.any():
            Linv = _tri_inv_blocks(xp, L)
            plain = Linv.detach() if hasattr(Linv, "detach") else Linv
            fro = to_numpy(xp.sum(xp.abs(plain) ** 2, axis=(-2, -1)))
            bound = _CHOL_MAX_INV if rtol <= 0 else min(_CHOL_MAX_INV, 0.5 / (rtol * d))
            good = ok & np.isfinite(fro) & (fro <= bound)
            if good.any():
                accept[usable[good]] = True
                W_chol = s_c[..., :, None] * xp.conj(xp.matrix_transpose(Linv))
                if not good.all():
                    W_chol = xp.take(W_chol, xp.asarray(np.nonzero(good)[0], device=dev), axis=0)
    if W_chol is None:
        return whiten(xp, C, rtol=rtol)
    rest = np.nonzero(~accept)[0]
    ranks = np.full(m, d, dtype=np.int64)
    W = W_chol
    if rest.size:
        side = whiten(xp, xp.take(C, xp.asarray(rest, device=dev), axis=0), rtol=rtol)
        ranks[rest] = to_numpy(side.rank)
        order = np.concatenate([np.nonzero(accept)[0], rest])
        W_all = xp.concat([W_chol, xp.astype(side.W, W_chol.dtype)], axis=0)
        W = xp.take(W_all, xp.asarray(np.argsort(order), device=dev), axis=0)
    return Side(
        W=W,
        evals=None,
        evecs=None,
        mask=None,
        rank=xp.asarray(ranks, device=dev),
        scale=xp.ones_like(var),
        n_constant=0,
    )


def _pca_blocks(
    xp: Any,
    C: Array,
    multiplicity: np.ndarray,
    *,
    variance: float | None,
    dims: int | None,
    rtol: float,
    pool: Any = None,
) -> tuple[Side, int]:
    """Principal directions selected globally over all frequency blocks, then whitened.

    ``multiplicity`` counts the grid points each block stands for (a representative and
    its conjugate partner have identical eigenvalues). ``pool`` (numpy blocks): a thread
    pool the eigen-decompositions are split over.
    """
    if pool is None:
        evals, evecs = xp.linalg.eigh(C)
    else:
        parts = list(pool.map(np.linalg.eigh, [C[sl] for sl in _block_slices(len(C), 2)]))
        evals = np.concatenate([e for e, _ in parts])
        evecs = np.concatenate([v for _, v in parts])
    evals = xp.flip(evals, axis=-1)
    evecs = xp.flip(evecs, axis=-1)
    ev = to_numpy(evals)
    flat = np.sort(np.clip(np.repeat(ev, multiplicity, axis=0).ravel(), 0, None))[::-1]
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
    mask = xp.asarray(keep, device=device_of(evals))
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
    return side, int((keep.sum(axis=-1) * multiplicity).sum())


_block_slices = row_slices  # contiguous slices of the frequency blocks


def _side_rows(side: Side, sl: slice) -> Side:
    """The blocks ``sl`` of a stacked whitening."""
    fields = ("W", "evals", "evecs", "mask", "rank", "scale")
    return replace(
        side, **{f: getattr(side, f)[sl] for f in fields if getattr(side, f) is not None}
    )


def _evaluate(
    xp: Any,
    Cxx: Array,
    Cyy: Array,
    Cxy: Array,
    n: int,
    plan: _Plan,
    *,
    rtol: float,
    variance: float | None,
    dims: tuple[int | None, int | None] | None,
    resized: bool,
    single: bool = False,
) -> DFTCCAResult:
    """DFT CCA/SVCCA from the co-moments of the representatives (R, c, c') of ``plan``
    (``single``: formed from float32 spectra and products, for the conventions)."""
    shape = plan.target
    mult = plan.multiplicity
    svd_mode = variance is not None or dims is not None
    # numpy blocks are decomposed by as many threads as the FFT uses (numpy's linear
    # algebra releases the GIL; BLAS is held to one thread by the callers); every block is
    # decomposed on its own, so the split does not change any result
    workers = min(_fft_workers(), len(Cxx)) if isinstance(Cxx, np.ndarray) else 1
    with worker_pool(workers) as pool:
        slices = _block_slices(len(Cxx), workers)
        if svd_mode:
            dx, dy = dims if dims is not None else (None, None)
            par = pool if workers > 1 else None
            sx, kx = _pca_blocks(xp, Cxx, mult, variance=variance, dims=dx, rtol=rtol, pool=par)
            sy, ky = _pca_blocks(xp, Cyy, mult, variance=variance, dims=dy, rtol=rtol, pool=par)
            rank_x, rank_y = to_numpy(sx.rank), to_numpy(sy.rank)
            check_not_trivial(n, rank_x, rank_y, what="dft CCA")

            def part(sl: slice) -> Array:
                a, b = (sx, sy) if len(slices) == 1 else (_side_rows(sx, sl), _side_rows(sy, sl))
                return cca_core(xp, a, b, Cxy[sl], want_vectors=False).rho

            rhos = list(pool.map(part, slices))
        else:
            kx = ky = None

            def part(sl: slice) -> tuple[np.ndarray, np.ndarray, Array]:
                one = len(slices) == 1
                a = _whiten_blocks(xp, Cxx if one else Cxx[sl], rtol=rtol)
                b = _whiten_blocks(xp, Cyy if one else Cyy[sl], rtol=rtol)
                if int(xp.max(a.rank)) == 0 or int(xp.max(b.rank)) == 0:
                    # nothing to correlate in these blocks (all of them: an error below)
                    width = min(int(Cxy.shape[-2]), int(Cxy.shape[-1]))
                    rows = sl.stop - sl.start
                    empty = None if one else np.zeros((rows, width))
                    return to_numpy(a.rank), to_numpy(b.rank), empty
                core = cca_core(xp, a, b, Cxy if one else Cxy[sl], want_vectors=False)
                return to_numpy(a.rank), to_numpy(b.rank), core.rho

            results = list(pool.map(part, slices))
            rank_x = np.concatenate([r[0] for r in results])
            rank_y = np.concatenate([r[1] for r in results])
            if int(rank_x.max()) == 0 or int(rank_y.max()) == 0:
                raise ValueError("dft CCA is undefined: an input is constant at every frequency.")
            check_not_trivial(n, rank_x, rank_y, what="dft CCA")
            rhos = [r[2] for r in results]
    rho_all = rhos[0] if len(rhos) == 1 else np.concatenate(rhos)
    k_np = np.minimum(rank_x, rank_y)
    kmax = int(k_np.max())
    if svd_mode and kmax == 0:
        chosen = f"dims={dims}" if dims is not None else f"variance={variance}"
        warn(
            f"svcca with {chosen} keeps X's and Y's principal directions at different "
            "frequencies, none in common, so every canonical correlation is 0 by "
            "definition (the kept subspaces of the flattened representations are "
            "orthogonal). Keep more directions (a larger dims, or variance=0.99) to "
            "compare the layers."
        )
    dev = device_of(rho_all)
    rho = rho_all[..., :kmax]
    valid = xp.asarray(np.arange(kmax)[None, :] < k_np[:, None], device=dev)
    rho = xp.where(valid, rho, xp.zeros_like(rho))
    # The flattened representation has min(total rank_x, total rank_y) canonical
    # correlations; frequencies where one side keeps more directions than the other
    # contribute exact zeros (the cross-covariance is block diagonal), so the mean divides
    # by the flattened count, not by the sum of per-frequency minima.
    n_coef = min(int((rank_x * mult).sum()), int((rank_y * mult).sum()))
    if n_coef == 0:
        raise ValueError("dft CCA is undefined: no direction is kept on one side at any frequency.")
    weights = xp.asarray(mult.astype(np.float64), device=dev)
    value = xp.sum(xp.sum(rho, axis=-1) * xp.astype(weights, rho.dtype)) / n_coef
    src = xp.asarray(plan.source, device=dev)
    rho_grid = xp.reshape(xp.take(rho, src, axis=0), (*shape, kmax))
    k_grid = xp.reshape(xp.asarray(k_np[plan.source], device=dev), shape)
    k_f = xp.astype(k_grid, rho.dtype)
    mean_pf = xp.sum(rho_grid, axis=-1) / xp.where(k_f > 0, k_f, xp.ones_like(k_f))
    return DFTCCAResult(
        measure="svcca" if svd_mode else "cca",
        value=value,
        n_samples=n,
        conventions={
            "conv": "dft",
            "transform": "unitary DFT over spatial axes "
            + (
                "(float32 spectra and products per chunk, float64 sums and decompositions)"
                if single
                else "(complex128)"
            ),
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
        rho_per_frequency=rho_grid,
        k_per_frequency=k_grid,
        mean_per_frequency=mean_pf,
        spatial_shape=shape,
        n_coefficients=n_coef,
        kept_dims_x=kx,
        kept_dims_y=ky,
    )


def dft_cca(
    X: Any,
    Y: Any,
    *,
    rtol: float = DEFAULT_RTOL,
    variance: float | None = None,
    dims: tuple[int | None, int | None] | None = None,
    layout: str | None = None,
    precision: str = "auto",
) -> DFTCCAResult:
    """Exact CCA (or SVCCA) of convolutional activations through the DFT (Raghu et al. §3.1).

    Parameters
    ----------
    X : array, shape (N, H1, W1, C1) or (N, L1, C1)
    Y : array, shape (N, H2, W2, C2) or (N, L2, C2)
    variance, dims
        When given, SVCCA: principal directions are chosen over all frequencies jointly
        (by variance fraction, or the top ``dims``), which for translation-invariant data is
        exactly the SVD step on the flattened representation. If the two selections
        share no frequency, the value is 0 by definition and an ``NNCompareWarning``
        says so.
    layout : {None, "NHWC", "NCHW"}
        Where the channels are (see :func:`reshape_conv`).
    precision : {"auto", "float32", "float64"}
        Precision of the spectra and their products (numpy inputs). "auto": float32 for
        float32 inputs, else float64. With float32, each chunk's spectra and products are
        formed in float32 and summed, corrected and decomposed in float64 (agreement with
        "float64" to ~1e-6 on the benchmarks); channels whose magnitude lies outside
        [2^-40, 2^40] send the pair to the float64 path. Other array libraries: complex128.

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
    counted, as in the flattened representation, and each pair is computed once.

    Cost: the spectra of each input at the frequencies needed (for real inputs one of
    each conjugate pair ±f): for numpy inputs with H + W ≤ 56 as two real matrix products
    (the separable DFT, see :class:`_GemmSpectra`), else one FFT (scipy.fft); then per
    kept frequency one symmetric product of the centred spectra (the joint real
    (N, 2(C1 + C2)) matrix of real and imaginary parts, BLAS syrk), then batched
    decompositions: Cholesky whitening where the block is well conditioned (certified,
    see :func:`_whiten_blocks`), an eigen-decomposition with the rank cut-off elsewhere,
    and singular values only. numpy inputs are taken in chunks of samples (memory
    O(R·(C1 + C2)² + chunk), not the spectra of all samples) in one pass over the data
    (see :func:`_joint_comoments_numpy`); the transforms, products and decompositions are
    split over as many threads as ``OMP_NUM_THREADS`` (else the usable CPUs) allows, and
    BLAS is held to one thread meanwhile (through threadpoolctl when installed: a
    multi-threaded BLAS loses on these mid-sized products, badly on a shared machine).
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
    xp = namespace(X, Y)
    sx = tuple(int(v) for v in X.shape[1:-1])
    sy = tuple(int(v) for v in Y.shape[1:-1])
    target = tuple(min(a, b) for a, b in zip(sx, sy, strict=True))
    real_input = not (_is_complex(xp, X) or _is_complex(xp, Y))
    periodic = tuple(a == b == t for a, b, t in zip(sx, sy, target, strict=True))
    plan = _frequency_plan(target, conjugate=real_input, periodic=periodic)
    from nncompare.stats import check_precision, product_dtype

    precision = check_precision(precision)
    single = (
        real_input
        and all(isinstance(A, np.ndarray) and A.dtype.kind == "f" for A in (X, Y))
        and product_dtype(np, (X, Y), precision) == np.float32
        # the matrix-product DFT checks the range on the way; the FFT route before
        and all(_gemm_suits(A) or _single_safe(A) for A in (X, Y))
    )
    try:
        com, floor_x, floor_y = _pair_comoments(xp, X, Y, plan, half=real_input, single=single)
    except _OutOfSingleRange:
        single = False
        com, floor_x, floor_y = _pair_comoments(xp, X, Y, plan, half=real_input)
    c1 = int(X.shape[-1])
    Cxx, Cyy, Cxy = zero_rounding_level(
        xp, com[:, :c1, :c1], com[:, c1:, c1:], com[:, :c1, c1:], floor_x, floor_y
    )
    with _blas_single_threaded() if isinstance(com, np.ndarray) else contextlib.nullcontext():
        return _evaluate(
            xp,
            Cxx,
            Cyy,
            Cxy,
            n,
            plan,
            rtol=rtol,
            variance=variance,
            dims=dims,
            resized=sx != sy,
            single=single,
        )


# co-moments whose largest diagonal lies inside 2^±_GRAM_EXP cannot have over- or
# underflowed in a way the exact rescaling (see _units) would have avoided
_GRAM_EXP = 800


def _pair_comoments(
    xp: Any, X: Array, Y: Array, plan: _Plan, *, half: bool, single: bool = False
) -> tuple[Array, Array, Array]:
    """Joint co-moments (R, C1 + C2, C1 + C2) of X's and Y's spectra and their noise floors.

    Real float numpy data first go straight in (no validation pass): multiplying data by a
    power of two is exact, so the rescaling of :func:`_scan` only matters when the FFT or
    the products over- or underflow, which the co-moments' diagonal shows (non-finite, or
    beyond 2^±_GRAM_EXP; NaN and ±inf input make it non-finite). The noise floors then come
    from Parseval's identity: Σ_s x_sc² = Σ_f (C_f[c, c] + n |z̄_f[c]|²) over the whole grid,
    which the representatives cover when the input is not cropped. Otherwise, and for
    other libraries, the data are validated and rescaled first.
    """
    n = int(X.shape[0])
    c1 = int(X.shape[-1])
    if all(isinstance(A, np.ndarray) and A.dtype.kind == "f" for A in (X, Y)):
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            mean, com = _joint_comoments(
                xp,
                [_Source(X, 1.0, False), _Source(Y, 1.0, False)],
                plan,
                half=half,
                single=single,
            )
            d = np.real(np.diagonal(com, axis1=-2, axis2=-1))
            fine = True
            for part in (d[:, :c1], d[:, c1:]):
                top = float(part.max())
                fine &= bool(np.isfinite(part).all()) and 2.0**-_GRAM_EXP < top < 2.0**_GRAM_EXP
            energy = plan.multiplicity.astype(np.float64) @ (d + n * np.abs(mean) ** 2)
        if fine:
            floors = []
            for A, sl in ((X, slice(0, c1)), (Y, slice(c1, None))):
                if tuple(A.shape[1:-1]) == plan.target:
                    floors.append(_floor_coefficient(A, single=single) * energy[sl])
                else:
                    floors.append(_scan(xp, A, "X" if A is X else "Y")[2])
            return com, floors[0], floors[1]
    gx, ux, floor_x = _scan(xp, X, "X")
    gy, uy, floor_y = _scan(xp, Y, "Y")
    sources = [
        _Source(X, ux, int(np.frexp(gx)[1]) > _PRESCALE_EXP and ux != 1.0),
        _Source(Y, uy, int(np.frexp(gy)[1]) > _PRESCALE_EXP and uy != 1.0),
    ]
    _, com = _joint_comoments(xp, sources, plan, half=half)
    return com, floor_x, floor_y


# float32 spectra and products of channels whose largest magnitude lies in
# [2^-_SINGLE_EXP, 2^_SINGLE_EXP] (or that are all zero) neither over- nor underflow
_SINGLE_EXP = 40


def _single_safe(X: np.ndarray) -> bool:
    """Whether X's spectra and their products may be formed in float32 (see _SINGLE_EXP):
    per channel, the largest magnitude is finite and inside the range, or zero."""
    axes = tuple(range(X.ndim - 1))
    with np.errstate(invalid="ignore"):
        top = np.maximum(np.abs(X.max(axis=axes)), np.abs(X.min(axis=axes))).astype(np.float64)
    inside = (top >= 2.0**-_SINGLE_EXP) & (top <= 2.0**_SINGLE_EXP)
    return bool(np.all(inside | (top == 0.0)))


def _detected_plan(xp: Any, blocks: tuple[Array, ...], target: tuple[int, ...]) -> _Plan:
    """The conjugate pairs {f, -f} of the grid whose blocks are exact complex conjugates.

    Co-moments of real inputs (e.g. from :class:`nncompare.SpectralMoments`, which
    fills -f by conjugating f) have this symmetry bit for bit; such a pair is decomposed
    once. Any other block, or any input that carries gradients, is computed on its own.
    """
    G = _grid(target)
    S = len(G)
    identity = _plan_from_reps(target, G, np.arange(S))
    if any(bool(getattr(b, "requires_grad", False)) for b in blocks):
        return identity
    full = _frequency_plan(target, conjugate=True, periodic=(True,) * len(target))
    if full.is_identity:
        return identity
    rep_flat = full.rep_flat[full.source]
    pts = np.nonzero(full.conj)[0]
    dev = device_of(blocks[0])
    a = xp.asarray(pts, device=dev)
    b = xp.asarray(rep_flat[pts], device=dev)
    same = np.ones(len(pts), dtype=bool)
    for B in blocks:
        eq = xp.take(B, a, axis=0) == xp.conj(xp.take(B, b, axis=0))
        same &= to_numpy(xp.all(xp.all(eq, axis=-1), axis=-1))
    merged = np.arange(S)
    merged[pts[same]] = rep_flat[pts[same]]
    return _plan_from_reps(target, G, merged)


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

    Used by :func:`dft_cca` and by streaming comparisons (:class:`nncompare.SpectralMoments`).
    Conjugate frequency pairs whose blocks are exact conjugates (co-moments of real
    inputs filled by symmetry) are decomposed once.
    """
    xp = namespace(Cxx, Cyy, Cxy)
    shape = tuple(int(t) for t in target)
    size = int(np.prod(shape))
    Cxx = xp.reshape(Cxx, (size, Cxx.shape[-2], Cxx.shape[-1]))
    Cyy = xp.reshape(Cyy, (size, Cyy.shape[-2], Cyy.shape[-1]))
    Cxy = xp.reshape(Cxy, (size, Cxy.shape[-2], Cxy.shape[-1]))
    plan = _detected_plan(xp, (Cxx, Cyy, Cxy), shape)
    if not plan.is_identity:
        idx = xp.asarray(plan.rep_flat, device=device_of(Cxx))
        Cxx, Cyy, Cxy = (xp.take(C, idx, axis=0) for C in (Cxx, Cyy, Cxy))
    with _blas_single_threaded() if isinstance(Cxx, np.ndarray) else contextlib.nullcontext():
        return _evaluate(
            xp,
            Cxx,
            Cyy,
            Cxy,
            n,
            plan,
            rtol=rtol,
            variance=variance,
            dims=dims,
            resized=resized,
        )
