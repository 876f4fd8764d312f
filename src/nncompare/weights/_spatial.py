"""Spatial filters: the k² × k² covariance and its eigenfilters (Guth & Ménard §2.2, Fig. 1)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nncompare._array import Array, as_array, is_torch, namespace, to_numpy
from nncompare._validation import check_finite

__all__ = [
    "SpatialEigenfilters",
    "conv_layers",
    "spatial_covariance",
    "spatial_eigenfilters",
    "subspace_overlap",
]

#: consecutive eigenvalues closer than this (relative to the larger) may swap ranks
DEGENERATE_RTOL = 0.1


def _check_conv_weight(weight: Any, name: str = "weight") -> Array:
    w = as_array(weight, name=name)
    if w.ndim != 4:
        raise ValueError(
            f"{name} must be a Conv2d weight of shape (C_out, C_in, k, k); got shape "
            f"{tuple(w.shape)}. Spatial filters exist only for 2-d convolutions; pass "
            "conv.weight of a torch.nn.Conv2d."
        )
    kh, kw = int(w.shape[2]), int(w.shape[3])
    if kh != kw:
        raise ValueError(
            f"{name} has a non-square kernel {kh} × {kw}; spatial eigenfilters need square "
            "k × k kernels. Compare square-kernel layers only."
        )
    if kh < 2:
        raise ValueError(
            f"{name} has a 1 × 1 kernel (shape {tuple(w.shape)}): it has no spatial structure "
            "and a 1 × 1 spatial covariance. Pass layers with k ≥ 2 (pointwise layers are "
            "compared through their channel covariance, nc.weights.channel_covariance)."
        )
    if w.shape[0] * w.shape[1] < 1:
        raise ValueError(f"{name} is empty (shape {tuple(w.shape)}).")
    check_finite(w, name=name)
    return w


def spatial_covariance(weight: Any) -> Array:
    """The k² × k² second moment of the spatial filters of a conv weight (§2.2).

    .. math:: \\Sigma = \\frac{1}{C_{out} C_{in}} \\sum_{o, c} \\mathrm{vec}(w_{o,c})
              \\mathrm{vec}(w_{o,c})^T

    the average over the C_out · C_in filters w_{o,c} ∈ R^{k × k} (row-major vec); uncentred,
    as in Trockman et al. (2023) and the paper.

    Parameters
    ----------
    weight : array, shape (C_out, C_in, k, k)
        A Conv2d weight, numpy or torch (the result follows; torch keeps autograd). Any
        square k ≥ 2 is accepted, odd or even (even kernels have no centre pixel, but their
        spatial covariance and eigenfilters are defined the same way); eigenfilters of
        different kernel sizes live in different spaces and are not compared
        (:func:`subspace_overlap` refuses them).

    Returns
    -------
    array, shape (k², k²)
    """
    w = _check_conv_weight(weight)
    xp = namespace(w)
    k = int(w.shape[2])
    F = w.reshape(-1, k * k) if is_torch(w) else np.reshape(w, (-1, k * k))
    if not xp.isdtype(F.dtype, "real floating"):
        F = xp.astype(F, xp.float64)
    return (xp.matrix_transpose(F) @ F) / F.shape[0]


def _templates(k: int) -> np.ndarray:
    """An orthonormal basis of R^{k×k}: Gram–Schmidt of the monomials x^a y^b (a, b < k) on
    centred coordinates in [-1, 1], ordered by total degree (1, x, y, x², xy, y², ...)."""
    c = np.linspace(-1.0, 1.0, k)
    yy, xx = np.meshgrid(c, c, indexing="ij")
    monos = sorted(((a, b) for a in range(k) for b in range(k)), key=lambda t: (t[0] + t[1], -t[0]))
    M = np.stack([(xx**a * yy**b).ravel() for a, b in monos], axis=1)
    Q, R = np.linalg.qr(M)
    return Q * np.sign(np.diag(R))[None, :]


def sign_fix(vectors: np.ndarray, k: int) -> np.ndarray:
    """Signs of unit vectors (k² × r, columns) made reproducible across layers and networks.

    Each eigenvector is expanded in the fixed orthonormal polynomial basis of
    :func:`_templates` (constant, x-ramp, y-ramp, second-order, ... patterns on centred
    coordinates); its sign is chosen so that its largest coefficient is positive. The
    Gaussian-like first eigenfilter is thus positive at the centre, derivative-like
    filters increase to the right (or downwards), and the same pattern gets the same sign
    in every layer, network and kernel size.
    """
    T = _templates(k)
    coef = T.T @ vectors
    idx = np.argmax(np.abs(coef), axis=0)
    s = np.sign(coef[idx, np.arange(coef.shape[1])])
    s[s == 0] = 1.0
    return s


@dataclass(frozen=True, repr=False)
class SpatialEigenfilters:
    """Eigen-decomposition of one layer's spatial covariance.

    Attributes
    ----------
    layer : str
    eigenvalues : numpy.ndarray, shape (k²,)
        Descending.
    eigenvectors : numpy.ndarray, shape (k², k, k)
        ``eigenvectors[r]`` is the r-th eigenfilter as a k × k image (unit norm),
        sign-fixed (:func:`sign_fix`) so that signs agree across layers and networks.
    near_degenerate : numpy.ndarray of bool, shape (k²,)
        Ranks whose eigenvalue is within ``degenerate_rtol`` (relative) of a neighbour's:
        their order may swap between layers or networks (the paper's "flipped order").
    kernel_size : int
    n_filters : int
        C_out · C_in, the number of k × k filters averaged.
    covariance : numpy.ndarray, shape (k², k²)
    degenerate_rtol : float
        The relative tolerance used for ``near_degenerate``.
    """

    layer: str
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    near_degenerate: np.ndarray
    kernel_size: int
    n_filters: int
    covariance: np.ndarray
    degenerate_rtol: float = DEGENERATE_RTOL

    @property
    def explained(self) -> np.ndarray:
        """Fraction of the total second moment carried by each rank."""
        tot = float(self.eigenvalues.sum())
        return self.eigenvalues / tot if tot > 0 else np.zeros_like(self.eigenvalues)

    def flipped_pairs(self) -> list[tuple[int, int]]:
        """Pairs (r, r + 1) of 0-based ranks whose eigenvalues are near-degenerate."""
        lam = self.eigenvalues
        rtol = self.degenerate_rtol
        return [(r, r + 1) for r in range(lam.size - 1) if _close(lam[r], lam[r + 1], rtol)]

    def __repr__(self) -> str:
        lead = ", ".join(f"{v:.3g}" for v in self.explained[:4])
        return (
            f"SpatialEigenfilters(layer={self.layer!r}, k={self.kernel_size}, "
            f"n_filters={self.n_filters}, explained[:4]=[{lead}], "
            f"near_degenerate={int(self.near_degenerate.sum())})"
        )


def _close(a: float, b: float, rtol: float) -> bool:
    top = max(abs(a), abs(b))
    return top > 0 and abs(a - b) <= rtol * top


def eigenfilters_of(
    weight: Any, layer: str = "weight", *, degenerate_rtol: float = DEGENERATE_RTOL
) -> SpatialEigenfilters:
    """:class:`SpatialEigenfilters` of one conv weight."""
    w = _check_conv_weight(weight, name=layer)
    k = int(w.shape[2])
    C = to_numpy(spatial_covariance(w)).astype(np.float64)
    lam, V = np.linalg.eigh(0.5 * (C + C.T))
    lam, V = lam[::-1].copy(), V[:, ::-1].copy()
    lam = np.where(lam > 0, lam, 0.0)
    V = V * sign_fix(V, k)[None, :]
    near = np.zeros(lam.size, dtype=bool)
    for r in range(lam.size - 1):
        if _close(lam[r], lam[r + 1], degenerate_rtol):
            near[r] = near[r + 1] = True
    return SpatialEigenfilters(
        layer=layer,
        eigenvalues=lam,
        eigenvectors=V.T.reshape(-1, k, k),
        near_degenerate=near,
        kernel_size=k,
        n_filters=int(w.shape[0] * w.shape[1]),
        covariance=C,
        degenerate_rtol=float(degenerate_rtol),
    )


def conv_layers(model: Any, *, min_kernel: int = 2) -> dict[str, Any]:
    """The torch Conv2d modules of ``model`` with square kernels ≥ ``min_kernel``, in order."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise TypeError(
            f"Expected a torch.nn.Module with Conv2d layers, got {type(model).__name__}. Pass "
            "the network itself, or a mapping {name: conv weight}."
        )
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
        and m.kernel_size[0] == m.kernel_size[1]
        and m.kernel_size[0] >= min_kernel
    }


def conv_weight_of(model: Any, name: str, *, what: str = "spatial eigenfilters") -> Any:
    """The weight of the Conv2d called ``name`` in ``model`` (a clear error otherwise)."""
    from torch import nn

    modules = dict(model.named_modules())
    convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    if name not in modules:
        raise ValueError(
            f"layer {name!r} is not a module of this {type(model).__name__}; expected one of "
            f"its Conv2d layers: {convs[:12]}{' ...' if len(convs) > 12 else ''}. See "
            "nc.list_layers(model)."
        )
    m = modules[name]
    if not isinstance(m, nn.Conv2d):
        raise TypeError(
            f"{what} need a Conv2d layer; {name!r} is a {type(m).__name__}. Pick one of the "
            f"Conv2d layers: {convs[:12]}{' ...' if len(convs) > 12 else ''}."
        )
    return m.weight


def spatial_eigenfilters(
    model: Any,
    layers: str | Iterable[str] | None = None,
    *,
    degenerate_rtol: float = DEGENERATE_RTOL,
) -> dict[str, SpatialEigenfilters]:
    """Spatial eigenfilters of every (or the given) convolution layer (§2.2, Fig. 1).

    Parameters
    ----------
    model : torch.nn.Module or mapping of str to array
        Any network with ``torch.nn.Conv2d`` layers (VGG, the CIFAR ResNets, ...), or a
        mapping ``{name: weight (C_out, C_in, k, k)}``.
    layers : str, iterable of str or None, default None
        Conv layer names (``model.named_modules()`` paths). None: every Conv2d with a square
        kernel k ≥ 2, in model order (1 × 1 convolutions, e.g. ResNet shortcuts, have no
        spatial structure and are left out; naming one explicitly is an error).
    degenerate_rtol : float, default 0.1
        Consecutive eigenvalues within this relative distance are flagged
        ``near_degenerate`` (their ranks may appear swapped between layers).

    Returns
    -------
    dict of str to SpatialEigenfilters
        In layer order; each with ``.eigenvalues`` (descending) and ``.eigenvectors`` of
        shape (k², k, k), signs fixed consistently across layers and networks
        (:func:`sign_fix`).

    Raises
    ------
    ValueError / TypeError
        For a name that is not a module, a layer that is not a Conv2d, a 1 × 1 or
        non-square kernel, or a weight with NaN/infinity.
    """
    if not (isinstance(degenerate_rtol, int | float) and 0 <= degenerate_rtol < 1):
        raise ValueError(f"degenerate_rtol must be a number in [0, 1); got {degenerate_rtol!r}.")
    if isinstance(model, Mapping):
        weights = dict(model)
        names = list(weights) if layers is None else _names(layers)
        missing = [n for n in names if n not in weights]
        if missing:
            raise ValueError(
                f"layers {missing} are not in the mapping; it holds {list(weights)[:12]}."
            )
        return {n: eigenfilters_of(weights[n], n, degenerate_rtol=degenerate_rtol) for n in names}
    if layers is None:
        found = conv_layers(model)
        if not found:
            raise ValueError(
                f"this {type(model).__name__} has no Conv2d layer with a square kernel k ≥ 2; "
                "spatial eigenfilters need k × k convolutions."
            )
        weights = {n: m.weight for n, m in found.items()}
    else:
        weights = {n: conv_weight_of(model, n) for n in _names(layers)}
    return {n: eigenfilters_of(w, n, degenerate_rtol=degenerate_rtol) for n, w in weights.items()}


def _names(layers: str | Iterable[str]) -> list[str]:
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("layers is empty; pass at least one conv layer name, or None for all.")
    return names


def _basis(x: Any, rank: int, name: str) -> tuple[np.ndarray, int]:
    if isinstance(x, SpatialEigenfilters):
        V = x.eigenvectors.reshape(x.eigenvectors.shape[0], -1).T
        k = x.kernel_size
    else:
        a = to_numpy(as_array(x, name=name)).astype(np.float64)
        if a.ndim == 3:  # (r, k, k) images
            k = a.shape[1]
            V = a.reshape(a.shape[0], -1).T
        elif a.ndim == 2:
            V = a
            k = round(math.sqrt(a.shape[0]))
        else:
            raise ValueError(
                f"{name} must be a SpatialEigenfilters result or eigenvectors of shape "
                f"(rank, k, k); got shape {a.shape}."
            )
    if not 1 <= rank <= V.shape[1]:
        raise ValueError(f"rank must be between 1 and {V.shape[1]}; got {rank}.")
    return V[:, :rank], k


def subspace_overlap(a: Any, b: Any, rank: int = 3) -> float:
    """Overlap of the leading ``rank``-dimensional eigen-subspaces of two layers.

    ``‖U_aᵀ U_b‖_F² / rank``, U the first ``rank`` eigenvectors: the mean squared cosine of
    the principal angles, 1 for the same subspace, 0 for orthogonal ones, and rank / k² on
    average for two random subspaces of R^{k²} (the chance level, 3/9 for the top 3 of a
    3 × 3 layer).

    Parameters
    ----------
    a, b : SpatialEigenfilters or array of shape (r, k, k)
        Two layers' eigenfilters with the same kernel size.
    rank : int, default 3

    Raises
    ------
    ValueError
        If the kernel sizes differ (e.g. 3 × 3 against 4 × 4 or 5 × 5: filters in different
        spaces have no overlap), or ``rank`` is out of range.
    """
    Ua, ka = _basis(a, rank, "a")
    Ub, kb = _basis(b, rank, "b")
    if ka != kb:
        raise ValueError(
            f"the eigenfilters have different kernel sizes, {ka} × {ka} and {kb} × {kb}; "
            "subspaces of R^{k²} can only be compared for equal k (odd against even "
            "included). Compare layers of one kernel size."
        )
    return float(np.sum((Ua.T @ Ub) ** 2) / rank)
