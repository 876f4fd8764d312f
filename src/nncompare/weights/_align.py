"""Aligning two networks' hidden layers and next-layer weights (Guth & Ménard eqs. 1-2).

The alignment of a layer is the orthogonal Procrustes map A between the *input*
representations φ (network A) and φ' (network B) of that layer, channels as features over
all N · H · W positions of a convolution's input (every position is a sample):

.. math:: \\min_{A^T A = I} \\mathbb{E}\\,\\|A\\phi(x) - \\phi'(x)\\|^2
          \\quad\\Rightarrow\\quad A = U V^T,\\; \\mathbb{E}[\\phi' \\phi^T] = U \\Sigma V^T

(Schönemann 1966). It is computed from streamed second moments
(:class:`nncompare.JointMoments`, memory O((C_a + C_b)²), independent of the number of
samples). B's weights w' map into A's basis as w = Aᵀ w' (eq. 2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nncompare._array import Array, as_array, is_torch, namespace, to_numpy
from nncompare._validation import check_finite
from nncompare.stats import JointMoments

__all__ = [
    "Alignment",
    "aligned_weights",
    "alignment",
    "alignment_from_moments",
    "stream_inputs",
]


@dataclass(frozen=True, repr=False)
class Alignment:
    """The Procrustes alignment of one layer's input representations (eq. 1).

    Attributes
    ----------
    matrix : numpy.ndarray, shape (C_b, C_a)
        A with orthonormal columns (C_a ≤ C_b) or rows (C_a > C_b): φ' ≈ A φ.
    layer, layer_b : str
        The layers (of A and of B) whose inputs were aligned.
    n_samples : int
        Samples of the representation: inputs × spatial positions.
    singular_values : numpy.ndarray
        Of the cross-moment E[φ' φᵀ] (their sum is E[<Aφ, φ'>]).
    residual : float
        E‖Aφ - φ'‖² / E‖φ'‖², the relative error of the alignment (0: exact rotation).
    centered : bool
        Whether the representations were centred (the paper: not).
    """

    matrix: np.ndarray
    layer: str
    layer_b: str
    n_samples: int
    singular_values: np.ndarray
    residual: float
    centered: bool

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.matrix.shape)  # type: ignore[return-value]

    def __repr__(self) -> str:
        cb, ca = self.matrix.shape
        return (
            f"Alignment(layer={self.layer!r}, C_a={ca}, C_b={cb}, n_samples={self.n_samples}, "
            f"residual={self.residual:.4g})"
        )


def alignment_from_moments(
    jm: JointMoments,
    a: str = "a",
    b: str = "b",
    *,
    center: bool = False,
    layer: str = "",
    layer_b: str | None = None,
) -> Alignment:
    """:class:`Alignment` of blocks ``a`` (network A) and ``b`` (network B) of a JointMoments."""
    if jm.n < 1:
        raise ValueError("the moments are empty: no sample reached the aligned layer.")
    comoment = to_numpy(jm.comoment).astype(np.float64)
    mean = to_numpy(jm.mean).astype(np.float64)
    n = jm.n
    sa = slice(jm.block(a).start, jm.block(a).stop)
    sb = slice(jm.block(b).start, jm.block(b).stop)
    second = comoment / n
    if not center:
        second = second + np.outer(mean, mean)
    M = second[sb, sa]  # E[φ' φᵀ], (C_b, C_a)
    A, s = _procrustes(M)
    caa = second[sa, sa]
    cbb = second[sb, sb]
    err = float(np.trace(A @ caa @ A.T) + np.trace(cbb) - 2.0 * s.sum())
    tb = float(np.trace(cbb))
    return Alignment(
        matrix=A,
        layer=layer,
        layer_b=layer if layer_b is None else layer_b,
        n_samples=int(n),
        singular_values=s,
        residual=max(err, 0.0) / tb if tb > 0 else float("nan") if err else 0.0,
        centered=bool(center),
    )


def _procrustes(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argmax over A with orthonormal columns/rows of tr(Aᵀ M), and M's singular values.

    A = U Vᵀ from M = U Σ Vᵀ. Directions with (numerically) zero singular value — channels
    that are never active on the data, e.g. dead ReLUs — leave A undetermined there (every
    completion is optimal); they are completed by the rotation closest to the identity
    (the padded identity E for unequal widths: Q = polar(U₀ᵀ E V₀)), so that a network
    aligned with itself gets A = I, whatever its dead channels.
    """
    cb, ca = M.shape
    U, s, Vt = np.linalg.svd(M, full_matrices=False)
    top = float(s.max()) if s.size else 0.0
    r = int(np.sum(s > max(cb, ca) * 1e-12 * top)) if top > 0 else 0
    A = U[:, :r] @ Vt[:r]
    if r < s.size:
        U0, V0 = U[:, r:], Vt[r:].T
        E = np.eye(cb, ca)
        P, _, Rt = np.linalg.svd(U0.T @ E @ V0)
        A = A + U0 @ (P @ Rt) @ V0.T
    return A, s


def _module(model: Any, name: str, side: str) -> Any:
    from torch import nn

    if not isinstance(model, nn.Module):
        raise TypeError(
            f"Expected model_{side} to be a torch.nn.Module, got {type(model).__name__}. Pass "
            "the network itself, not its state_dict or a path."
        )
    modules = dict(model.named_modules())
    if name not in modules:
        names = [n for n, m in modules.items() if isinstance(m, nn.Conv2d | nn.Linear)]
        raise ValueError(
            f"layer {name!r} is not a module of model_{side} ({type(model).__name__}); "
            f"expected one of its Conv2d/Linear layers: {names[:12]}"
            f"{' ...' if len(names) > 12 else ''}."
        )
    return modules[name]


def _as_rows(t: Any, name: str) -> Any:
    """(B, C, H, W) -> (B·H·W, C); (B, C) stays."""
    if t.ndim == 4:
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    if t.ndim == 2:
        return t
    raise ValueError(
        f"the input of {name!r} has shape {tuple(t.shape)}; expected (batch, C, H, W) for a "
        "convolution or (batch, C) for a linear layer."
    )


def stream_inputs(
    model_a: Any,
    model_b: Any,
    data: Any,
    pairs: Iterable[tuple[str, str]],
    *,
    batch_size: int = 256,
    max_samples: int | None = None,
    device: Any = None,
) -> dict[tuple[str, str], JointMoments]:
    """One pass of ``data`` through both models; the inputs of each layer pair streamed into a
    :class:`JointMoments` (blocks ``"a"`` and ``"b"``, channels as features, positions as
    samples). Nothing grows with the number of samples."""
    import torch

    from nncompare.capture import iter_batches

    pairs = list(dict.fromkeys(pairs))
    mods_a = {la: _module(model_a, la, "a") for la, _ in pairs}
    mods_b = {lb: _module(model_b, lb, "b") for _, lb in pairs}
    moments = {p: JointMoments(precision="float64") for p in pairs}
    seen: dict[str, dict[str, Any]] = {"a": {}, "b": {}}

    def hook(side: str, name: str) -> Any:
        def pre(module: Any, inputs: Any) -> None:
            if name not in seen[side]:  # first call of a reused module
                seen[side][name] = inputs[0].detach()

        return pre

    handles = [m.register_forward_pre_hook(hook("a", n)) for n, m in mods_a.items()]
    handles += [m.register_forward_pre_hook(hook("b", n)) for n, m in mods_b.items()]
    modes = [(m, m.training) for net in (model_a, model_b) for m in net.modules()]
    try:
        model_a.eval()
        model_b.eval()
        dev_a = next((p.device for p in model_a.parameters()), torch.device("cpu"))
        dtype = next((p.dtype for p in model_a.parameters() if p.is_floating_point()), None)
        dev = device if device is not None else dev_a
        with torch.no_grad():
            for x in iter_batches(data, batch_size, dev, dtype=dtype, max_samples=max_samples):
                seen["a"].clear()
                seen["b"].clear()
                model_a(x)
                model_b(x)
                for la, lb in pairs:
                    if la not in seen["a"] or lb not in seen["b"]:
                        side, name = ("a", la) if la not in seen["a"] else ("b", lb)
                        raise ValueError(
                            f"layer {name!r} of model_{side} was not called in its forward "
                            "pass; pick a layer the forward pass uses."
                        )
                    ta, tb = seen["a"][la], seen["b"][lb]
                    if ta.shape[0] != tb.shape[0] or ta.shape[2:] != tb.shape[2:]:
                        raise ValueError(
                            f"the inputs of {la!r} (model_a) and {lb!r} (model_b) have shapes "
                            f"{tuple(ta.shape)} and {tuple(tb.shape)}: their batch and spatial "
                            "sizes must agree so that positions pair up. Align layers at the "
                            "same resolution."
                        )
                    moments[(la, lb)].update(
                        {"a": _as_rows(ta, la).double(), "b": _as_rows(tb, lb).double()}
                    )
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.train(mode)
    for (la, _lb), jm in moments.items():
        if jm.n == 0:
            raise ValueError(f"no samples reached layer {la!r}: the data is empty.")
    return moments


def alignment(
    model_a: Any,
    model_b: Any,
    data: Any,
    layer: str,
    *,
    layer_b: str | None = None,
    center: bool = False,
    batch_size: int = 256,
    max_samples: int | None = None,
    device: Any = None,
) -> Alignment:
    """Orthogonal Procrustes alignment of the inputs of ``layer`` in two networks (eq. 1).

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
    data : tensor, ndarray, (x, y), Dataset, DataLoader or iterable of batches
        The inputs both networks see (see :func:`nncompare.capture.iter_batches`).
    layer : str
        Module name (``named_modules()`` path) whose *input* is aligned, e.g. the conv whose
        weights are compared next. For a factorized block pass the depthwise conv: its input
        φ is what A rotates (the K filter copies follow, see :func:`aligned_weights`).
    layer_b : str, optional
        The corresponding module of ``model_b`` (default: the same name).
    center : bool, default False
        Centre the representations first. The paper aligns raw (uncentred) activations.
    batch_size, max_samples, device
        Batching of ``data``; the moments stream, so memory does not grow with the data.

    Returns
    -------
    Alignment
        ``.matrix`` A of shape (C_b, C_a), φ' ≈ A φ; orthogonal when C_a = C_b, with
        orthonormal columns (rows) when C_a < C_b (C_a > C_b).

    Raises
    ------
    ValueError
        If a layer name is not a module, is not called in the forward pass, or the two
        inputs differ in batch or spatial size.
    """
    lb = layer if layer_b is None else layer_b
    jm = stream_inputs(
        model_a,
        model_b,
        data,
        [(layer, lb)],
        batch_size=batch_size,
        max_samples=max_samples,
        device=device,
    )[(layer, lb)]
    return alignment_from_moments(jm, center=center, layer=layer, layer_b=lb)


def _alignment_matrix(A: Any) -> np.ndarray:
    if isinstance(A, Alignment):
        return A.matrix
    a = to_numpy(as_array(A, name="alignment")).astype(np.float64)
    if a.ndim != 2:
        raise ValueError(
            f"alignment must be an Alignment or a (C_b, C_a) matrix; got shape {a.shape}."
        )
    check_finite(a, name="alignment")
    return a


def aligned_weights(weight_b: Any, alignment: Any, *, expansion: int | None = None) -> Array:
    """Map network B's next-layer weights into network A's basis: w = Aᵀ w' (eq. 2).

    Parameters
    ----------
    weight_b : array, shape (C_out, C_b · K, ...)
        B's weight acting on the aligned representation: a conv (C_out, C_b, k, k), linear
        (C_out, C_b) or the pointwise conv of a factorized block (C_out, K · C_b, 1, 1),
        whose input channels are the K depthwise filter copies of each of the C_b channels,
        channel-major (index c · K + j, the layout of ``Conv2d(C_b, K·C_b, groups=C_b)``).
        numpy or torch (the result follows; torch keeps autograd).
    alignment : Alignment or array of shape (C_b, C_a)
        From :func:`alignment` (φ' ≈ A φ).
    expansion : int, optional
        K, the number of filter copies per channel. None: weight_b.shape[1] / C_b (must be
        a whole number). The same A acts on each of the K copies.

    Returns
    -------
    array, shape (C_out, C_a · K, ...)
        In A's basis; for two networks that are exact rotations of each other this is A's
        own weight.

    Raises
    ------
    ValueError
        If the weight's input width is not a multiple K · C_b of the alignment's C_b, or
        does not match the given ``expansion``.
    """
    A = _alignment_matrix(alignment)
    cb, ca = A.shape
    w = as_array(weight_b, name="weight_b")
    if w.ndim < 2:
        raise ValueError(
            f"weight_b must be a weight of shape (C_out, C_in, ...); got shape {tuple(w.shape)}."
        )
    check_finite(w, name="weight_b")
    cin = int(w.shape[1])
    if expansion is None:
        if cin % cb:
            raise ValueError(
                f"weight_b has {cin} input channels, not a multiple of the alignment's "
                f"C_b = {cb} (A has shape {A.shape}). Align the representation that feeds this "
                "weight (for a factorized block: the depthwise conv's input), or pass "
                "expansion=K."
            )
        expansion = cin // cb
    if not isinstance(expansion, int | np.integer) or expansion < 1:
        raise ValueError(f"expansion must be a positive int (K); got {expansion!r}.")
    if cin != cb * expansion:
        raise ValueError(
            f"weight_b has {cin} input channels, but the alignment's C_b = {cb} times "
            f"expansion K = {expansion} is {cb * expansion}. Pass the weight that acts on the "
            "aligned layer, with its K filter copies."
        )
    xp = namespace(w)
    rest = tuple(int(s) for s in w.shape[2:])
    cout = int(w.shape[0])
    if is_torch(w):
        import torch

        At = torch.as_tensor(
            A, dtype=w.dtype if w.is_floating_point() else torch.float64, device=w.device
        )
        wf = w if w.is_floating_point() else w.double()
        r = wf.reshape(cout, cb, expansion, -1)
        out = torch.einsum("ba,objr->oajr", At, r)
        return out.reshape(cout, ca * expansion, *rest)
    wf = np.asarray(w, dtype=np.result_type(w.dtype, np.float32))
    r = wf.reshape(cout, cb, expansion, -1)
    out = np.einsum("ba,objr->oajr", A.astype(wf.dtype), r)
    del xp
    return out.reshape(cout, ca * expansion, *rest)


def kron_alignment(A: np.ndarray, repeat: int) -> np.ndarray:
    """A ⊗ I_repeat: A acting on the channel index of a channel-major (C, repeat) layout."""
    return np.kron(A, np.eye(repeat))


def as_pairs(layers: Any) -> list[tuple[str, str]]:
    """Layer names or (name_a, name_b) pairs, or a mapping name_a -> name_b, as pairs."""
    if isinstance(layers, str):
        return [(layers, layers)]
    if isinstance(layers, Mapping):
        return [(str(a), str(b)) for a, b in layers.items()]
    out = []
    for item in layers:
        if isinstance(item, str):
            out.append((item, item))
        elif isinstance(item, tuple | list) and len(item) == 2:
            out.append((str(item[0]), str(item[1])))
        else:
            raise TypeError(f"layers must hold names or (name_a, name_b) pairs; got {item!r}.")
    return out
