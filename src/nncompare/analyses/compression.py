"""Compression by SVCCA projection (Raghu et al. 2017, §4.4, Appendix F, Fig. App.5).

A layer's output ``x`` (``n`` features, the input of the following ``nn.Linear`` with
weights ``W``) is replaced by its projection onto the top ``k`` SVCCA directions found
against a reference (the model's own logits, or a layer of another network), and the
projection is folded into the following layer as the factorised map
``(W R)(P x) + b'``: a ``k x n`` map ``P`` then an ``m x k`` map ``W R``, so that the
parameters and multiply-adds of that layer go from ``m n`` to ``k (n + m)``.

The directions. Over the fitting data, ``x`` is centred (mean ``mu``, covariance
``S``), reduced to the principal directions that keep ``keep`` of its variance (the SV
step), whitened, and correlated with the reference treated the same way (the CCA step).
The canonical directions (columns of ``D``, ``D^T S D = I``) come first in order of
canonical correlation; when ``k`` exceeds their number (at most the reference's
dimension, e.g. 10 logits), the remaining SV directions follow, uncorrelated with the
chosen ones, in order of variance. ``P = D_k^T`` gives the ``k`` canonical
coordinates and ``R = S D_k`` the least-squares reconstruction of ``x`` from them:
``x_hat = mu + R P (x - mu)`` is the projection of every neuron (as a vector over the
samples) onto the span of the top ``k`` canonical variates, which is what the paper
describes. ``R P`` is an (oblique) projector; it equals ``P^T P`` when the directions
are orthonormal. With ``k`` the full rank of ``x`` (``keep=1.0``) ``x_hat = x``: the
compressed network computes the original function.

The random baseline draws ``k`` Gaussian directions in the same reduced space and
reconstructs the same way.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nncompare.stats import JointMoments

__all__ = ["CompressionResult", "compression_sweep", "svcca_compress"]

_PASS_THROUGH = (nn.Flatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)


@dataclass
class CompressionResult:
    """A compressed copy of a model and what it costs.

    Attributes
    ----------
    model : torch.nn.Module
        The compressed copy (the original is untouched). The following linear layer
        ``next_layer`` is replaced by ``nn.Sequential(project=Linear(n, k, bias=False),
        linear=Linear(k, m))``.
    layer, next_layer : str
        The compressed layer (whose output is projected) and the linear layer that
        consumes it.
    k, n : int
        Kept directions and the layer's width.
    reference : str
        ``"logits"``, ``"model"`` (another network's layer) or ``"random"``.
    accuracy, original_accuracy : float or None
        On ``eval_data`` (``None`` without labels).
    params, original_params : int
        Parameter counts.
    flops, original_flops : float
        Forward FLOPs per sample (``FlopCounterMode``; 2 per multiply-add).
    correlations : numpy.ndarray
        Canonical correlations of the directions found (empty for ``"random"``).
    """

    model: nn.Module
    layer: str
    next_layer: str
    k: int
    n: int
    reference: str
    accuracy: float | None
    original_accuracy: float | None
    params: int
    original_params: int
    flops: float
    original_flops: float
    correlations: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def fraction(self) -> float:
        """``k / n``."""
        return self.k / self.n

    def to_dict(self) -> dict[str, Any]:
        """The numbers as a plain dict (no model)."""
        return {
            "layer": self.layer,
            "next_layer": self.next_layer,
            "k": self.k,
            "n": self.n,
            "fraction": self.fraction,
            "reference": self.reference,
            "accuracy": self.accuracy,
            "original_accuracy": self.original_accuracy,
            "params": self.params,
            "original_params": self.original_params,
            "flops": self.flops,
            "original_flops": self.original_flops,
        }


# --------------------------------------------------------------------------- helpers


def _split_data(data: Any, what: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    elif isinstance(data, list | tuple) and len(data) == 2:
        x, y = data
    elif isinstance(data, torch.Tensor | np.ndarray):
        x, y = data, None
    else:
        raise TypeError(
            f"{what} must be an (inputs, labels) pair, a Dataset with .x and .y, or an input "
            f"array; got {type(data).__name__}."
        )
    x = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
    if not x.is_floating_point():
        raise TypeError(
            f"{what}: inputs have dtype {x.dtype}, expected a floating dtype; convert first, "
            "e.g. x.float() / 255 for uint8 images."
        )
    if y is not None:
        y = torch.as_tensor(np.asarray(y) if isinstance(y, np.ndarray) else y)
        if y.ndim != 1 or len(y) != len(x) or y.is_floating_point():
            raise ValueError(
                f"{what}: labels must be a 1-D integer array with one entry per input, got "
                f"shape {tuple(y.shape)} for {len(x)} inputs."
            )
    return x, y


def _batches(x: torch.Tensor, model: nn.Module, size: int = 256) -> Iterator[torch.Tensor]:
    p = next(iter(model.parameters()), None)
    dtype = p.dtype if p is not None else torch.float32
    device = p.device if p is not None else torch.device("cpu")
    for s in range(0, len(x), size):
        yield x[s : s + size].to(device=device, dtype=dtype)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> float | None:
    if y is None:
        return None
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for s, xb in zip(range(0, len(x), 256), _batches(x, model), strict=True):
                pred = model(xb).argmax(dim=1).cpu()
                correct += int((pred == y[s : s + 256]).sum())
    finally:
        for m, mode in modes:
            m.training = mode
    return correct / len(x)


def _count_flops(model: nn.Module, x: torch.Tensor) -> float:
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(next(_batches(x[:1], model)))
    finally:
        for m, mode in modes:
            m.training = mode
    return float(fc.get_total_flops())


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _module(model: nn.Module, name: str, role: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not isinstance(name, str) or name not in modules or name == "":
        sample = [n for n in modules if n][:12]
        raise ValueError(
            f"{role} {name!r} is not a module of the {type(model).__name__}; pass a name from "
            f"model.named_modules(), e.g. one of {sample}."
        )
    return modules[name]


def following_linear(model: nn.Module, layer: str) -> str:
    """The name of the ``nn.Linear`` that consumes ``layer``'s output directly.

    ``layer`` must sit in an ``nn.Sequential`` (at any depth) and be followed, through
    parameter-free ``Flatten``/``Identity``/``Dropout`` modules only (also across the end
    of an inner Sequential), by an ``nn.Linear``.
    """
    _module(model, layer, "layer")
    parts = layer.split(".")
    tried = []
    while parts:
        parent_name = ".".join(parts[:-1])
        parent = model.get_submodule(parent_name) if parent_name else model
        if not isinstance(parent, nn.Sequential):
            break
        names = [n for n, _ in parent.named_children()]
        for sibling in names[names.index(parts[-1]) + 1 :]:
            mod = getattr(parent, sibling)
            full = f"{parent_name}.{sibling}" if parent_name else sibling
            if isinstance(mod, nn.Linear):
                return full
            if isinstance(mod, _PASS_THROUGH):
                continue
            tried.append(f"{full!r} ({type(mod).__name__})")
            break
        else:
            parts = parts[:-1]
            continue
        break
    found = tried[0] if tried else "no nn.Linear (or the layer is not inside an nn.Sequential)"
    raise ValueError(
        f"svcca_compress needs the output of layer {layer!r} to enter an nn.Linear directly "
        f"(only Flatten/Identity/Dropout in between, inside nn.Sequential containers); after "
        f"{layer!r} comes {found}. Pick the layer whose output feeds a linear layer, e.g. "
        "the pooled features before the classifier or the activation before fc2."
    )


def _check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= int(k) <= n:
        raise ValueError(
            f"k must be an int in 1..{n} (the layer has {n} features), got {k!r}; k is the "
            "number of SVCCA directions kept."
        )
    return int(k)


def _check_keep(keep: Any) -> float:
    if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 < keep <= 1:
        raise ValueError(
            f"keep must be a fraction of variance in (0, 1] (the SV step keeps the principal "
            f"directions explaining it; 0.99 in the paper), got {keep!r}."
        )
    return float(keep)


def _reduce(cov: np.ndarray, keep: float) -> tuple[np.ndarray, np.ndarray]:
    """Principal directions (columns) and their variances keeping ``keep`` of the total."""
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0.0, None), evecs[:, order]
    total = float(evals.sum())
    tol = max(evals[0] if len(evals) else 0.0, 0.0) * len(evals) * np.finfo(float).eps * 10
    rank = int((evals > tol).sum())
    if total <= 0 or rank == 0:
        return evecs[:, :0], evals[:0]
    if keep >= 1.0:
        r = rank
    else:
        r = int(np.searchsorted(np.cumsum(evals) / total, keep) + 1)
        r = min(max(r, 1), rank)
    return evecs[:, :r], evals[:r]


def _complement(A: np.ndarray, r: int) -> np.ndarray:
    """Orthonormal columns spanning the complement of ``A``'s columns in R^r, taken from the
    coordinate axes in order (the SV directions by decreasing variance)."""
    basis = [A[:, j] for j in range(A.shape[1])]
    extra = []
    for i in range(r):
        v = np.zeros(r)
        v[i] = 1.0
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            for b in basis + extra:
                v = v - (b @ v) * b
        norm = float(np.linalg.norm(v))
        if norm > 1e-8:
            extra.append(v / norm)
        if len(basis) + len(extra) == r:
            break
    return np.stack(extra, axis=1) if extra else np.zeros((r, 0))


def _directions(
    mean: np.ndarray,
    cov_xx: np.ndarray,
    cov_yy: np.ndarray | None,
    cov_xy: np.ndarray | None,
    keep: float,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``D`` (n x r, S-orthonormal, in order), ``S D`` and the canonical correlations."""
    Ux, sx = _reduce(cov_xx, keep)
    r = Ux.shape[1]
    if r == 0:
        raise ValueError(
            "the layer's output is constant over the data (zero variance); there is no "
            "direction to keep. Check the data or pick another layer."
        )
    if rng is not None:  # random baseline: Gaussian directions, Gram-Schmidt in whitened space
        A, _ = np.linalg.qr(rng.normal(size=(r, r)))
        rho = np.zeros(0)
    else:
        Uy, sy = _reduce(cov_yy, keep)
        if Uy.shape[1] == 0:
            raise ValueError(
                "the reference is constant over the data (zero variance); SVCCA has nothing "
                "to correlate with. Check the reference layer or the data."
            )
        # whitened cross-covariance
        C = (Ux / np.sqrt(sx)).T @ cov_xy @ (Uy / np.sqrt(sy))
        A0, rho, _ = np.linalg.svd(C, full_matrices=False)
        A = np.concatenate([A0, _complement(A0, r)], axis=1)
        rho = np.clip(rho, 0.0, 1.0)
    D = (Ux / np.sqrt(sx)) @ A  # n x r, D^T S D = I
    R = (Ux * np.sqrt(sx)) @ A  # S D
    return D, R, rho


def _moments(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    reference: Any,
) -> tuple[JointMoments, str | None]:
    """Stream the layer's output (flattened) and the reference's into joint moments."""
    jm = JointMoments(precision="float64")
    seen: dict[str, torch.Tensor] = {}

    def grab(key: str) -> Any:
        def hook(_m: nn.Module, _i: Any, out: Any) -> None:
            if not isinstance(out, torch.Tensor):
                raise TypeError(
                    f"layer output must be a tensor to be compressed, got {type(out).__name__}."
                )
            seen[key] = out.detach().reshape(out.shape[0], -1)

        return hook

    handles = [_module(model, layer, "layer").register_forward_hook(grab("x"))]
    other = None
    if isinstance(reference, tuple):
        other, other_layer = reference
        handles.append(
            _module(other, other_layer, "reference layer").register_forward_hook(grab("y"))
        )
    models = [model] + ([other] if other is not None else [])
    modes = [(m, m.training) for net in models for m in net.modules()]
    try:
        for net in models:
            net.eval()
        with torch.no_grad():
            for xb in _batches(x, model):
                out = model(xb)
                if other is not None:
                    other(xb.to(next(iter(other.parameters())).device))
                else:
                    seen["y"] = out.reshape(out.shape[0], -1)
                jm.update({k: seen[k].double().cpu().numpy() for k in ("x", "y")})
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return jm, None


def _check_reference(reference: Any) -> str:
    if isinstance(reference, str):
        if reference in ("logits", "random"):
            return reference
    elif (
        isinstance(reference, tuple)
        and len(reference) == 2
        and isinstance(reference[0], nn.Module)
        and isinstance(reference[1], str)
    ):
        return "model"
    raise ValueError(
        "reference must be 'logits' (the model's own outputs), 'random' (random-projection "
        f"baseline) or a pair (other_model, 'layer_name'); got {reference!r}."
    )


# --------------------------------------------------------------------------- compress


def svcca_compress(
    model: nn.Module,
    layer: str,
    data: Any,
    k: int,
    *,
    reference: str | tuple[nn.Module, str] = "logits",
    eval_data: Any = None,
    keep: float = 0.99,
    seed: int = 0,
) -> CompressionResult:
    """Compress ``layer`` of ``model`` to its top ``k`` SVCCA directions.

    Parameters
    ----------
    model : torch.nn.Module
        The network (not modified). ``layer``'s output must enter an ``nn.Linear``
        directly (only ``Flatten``/``Identity``/``Dropout`` in between, inside
        ``nn.Sequential`` containers), e.g. the pooled features before the classifier.
    layer : str
        Name from ``model.named_modules()``.
    data : (x, y) pair, Dataset with .x/.y, or inputs
        Fitting data for the directions (labels unused), streamed in batches of 256.
    k : int
        Directions kept, ``1 <= k <=`` the layer's width; at most the rank kept by the
        SV step can be used.
    reference : "logits", "random" or (other_model, other_layer), default "logits"
        What the directions are correlated with: the model's own outputs, another
        network's layer run on the same inputs, or nothing (random directions: the
        baseline).
    eval_data : (x, y) pair or Dataset, optional
        Where the accuracy is measured (default: ``data`` if it has labels).
    keep : float, default 0.99
        Fraction of variance the SV step keeps on both sides; ``1.0`` keeps every
        direction with non-zero variance (then ``k`` = the rank reproduces the model).
    seed : int, default 0
        Seed of the random baseline.

    Returns
    -------
    CompressionResult
        ``.model`` (the compressed copy), accuracy, parameter count and FLOPs of both.

    Raises
    ------
    ValueError
        Unknown layer; a layer not followed by a linear layer; ``k`` out of range or above
        the rank kept; a constant layer or reference.

    Examples
    --------
    >>> import nncompare as nc  # doctest: +SKIP
    >>> res = nc.analyses.svcca_compress(net, "pool", (x, y), k=8)  # doctest: +SKIP
    >>> res.params, res.original_params, res.accuracy  # doctest: +SKIP
    """
    return _compress(model, layer, data, k, reference, eval_data, keep, seed, cap=False)


def _compress(
    model: nn.Module,
    layer: str,
    data: Any,
    k: Any,
    reference: Any,
    eval_data: Any,
    keep: Any,
    seed: int,
    *,
    cap: bool,
) -> CompressionResult:
    kind = _check_reference(reference)
    keep = _check_keep(keep)
    x, y = _split_data(data, "data")
    if eval_data is None:
        ex, ey = x, y
    else:
        ex, ey = _split_data(eval_data, "eval_data")
    next_name = following_linear(model, layer)
    linear = model.get_submodule(next_name)
    assert isinstance(linear, nn.Linear)
    n, m = linear.in_features, linear.out_features
    k = _check_k(k, n)
    if len(x) < 2:
        raise ValueError(f"data has {len(x)} sample(s); SVCCA needs at least 2 (many more than k).")

    jm, _ = _moments(model, layer, x, reference if kind == "model" else None)
    bx, by = jm.block("x"), jm.block("y")
    if bx.dim != n:
        raise ValueError(
            f"layer {layer!r} outputs {bx.dim} features per sample but {next_name!r} takes "
            f"{n}; the output must be what the linear layer consumes."
        )
    mean_all = np.asarray(jm.mean, dtype=np.float64)
    cov = np.asarray(jm.comoment, dtype=np.float64) / jm.n
    sx, sy = slice(bx.start, bx.stop), slice(by.start, by.stop)
    rng = np.random.default_rng(seed) if kind == "random" else None
    D, R, rho = _directions(mean_all[sx], cov[sx, sx], cov[sy, sy], cov[sx, sy], keep, rng)
    if cap:
        k = min(k, D.shape[1])
    if k > D.shape[1]:
        hint = (
            "lower k or raise keep (keep=1.0 keeps the full rank)"
            if keep < 1.0
            else "its output has that rank over the data (dead or linearly dependent units); "
            "lower k"
        )
        raise ValueError(
            f"k={k} exceeds the {D.shape[1]} directions the SV step kept for layer {layer!r} "
            f"(keep={keep}); {hint}."
        )
    mu = mean_all[sx]
    P = D[:, :k].T  # k x n
    Rk = R[:, :k]  # n x k
    W = linear.weight.detach().to(torch.float64).cpu().numpy()
    b = (
        linear.bias.detach().to(torch.float64).cpu().numpy()
        if linear.bias is not None
        else np.zeros(m)
    )
    W2 = W @ Rk
    b2 = b + W @ mu - W2 @ (P @ mu)

    compressed = copy.deepcopy(model)
    dtype, device = linear.weight.dtype, linear.weight.device
    project = nn.Linear(n, k, bias=False, device=device, dtype=dtype)
    expand = nn.Linear(k, m, device=device, dtype=dtype)
    with torch.no_grad():
        project.weight.copy_(torch.from_numpy(P))
        expand.weight.copy_(torch.from_numpy(W2))
        expand.bias.copy_(torch.from_numpy(b2))
    parent_name, _, child = next_name.rpartition(".")
    parent = compressed.get_submodule(parent_name) if parent_name else compressed
    setattr(parent, child, nn.Sequential(OrderedDict(project=project, linear=expand)))

    return CompressionResult(
        model=compressed,
        layer=layer,
        next_layer=next_name,
        k=k,
        n=n,
        reference=kind,
        accuracy=_accuracy(compressed, ex, ey),
        original_accuracy=_accuracy(model, ex, ey),
        params=_n_params(compressed),
        original_params=_n_params(model),
        flops=_count_flops(compressed, ex),
        original_flops=_count_flops(model, ex),
        correlations=rho[: min(k, len(rho))],
    )


def compression_sweep(
    model: nn.Module,
    layers: str | Sequence[str],
    data: Any,
    fractions: Sequence[float] = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0),
    *,
    eval_data: Any = None,
    references: Sequence[Any] = ("logits", "random"),
    consecutive: bool = True,
    keep: float = 0.99,
    seed: int = 0,
) -> Any:
    """Accuracy against kept fraction, per layer and for consecutive compression.

    Parameters
    ----------
    model : torch.nn.Module
        The network (not modified).
    layers : str or sequence of str
        Layers to compress (each feeding a linear layer), bottom to top.
    data, eval_data
        As for :func:`svcca_compress` (fitting and evaluation data).
    fractions : sequence of float, default (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
        Kept fractions ``k / n`` in ``(0, 1]``; ``k = max(1, round(fraction * n))``,
        capped at the directions the SV step kept.
    references : sequence, default ("logits", "random")
        Each ``"logits"``, ``"random"`` or ``(other_model, other_layers)`` with
        ``other_layers`` a name, a list aligned with ``layers``, or None (same names).
    consecutive : bool, default True
        Also compress all ``layers`` together (each fitted on the already compressed
        network below it, Fig. App.5), rows with ``mode == "consecutive"``.
    keep, seed
        As for :func:`svcca_compress`.

    Returns
    -------
    pandas.DataFrame
        Columns ``mode ("single"/"consecutive"), layer, reference, fraction (asked),
        kept_fraction (``k / n`` used: lower where the SV step kept fewer directions), k, n,
        accuracy, original_accuracy, params, original_params, flops, original_flops``;
        for consecutive rows ``layer`` joins the layers with ``+`` and ``k``/``n`` are
        sums over them.
    """
    import pandas as pd

    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("compression_sweep needs at least one layer, got an empty list.")
    fr = [float(f) for f in fractions]
    if not fr or any(not 0 < f <= 1 for f in fr):
        raise ValueError(f"fractions must be a non-empty list of values in (0, 1], got {fr}.")
    rows: list[dict[str, Any]] = []

    def resolve(ref: Any, i: int) -> tuple[Any, str]:
        if isinstance(ref, str):
            return ref, ref
        other, other_layers = ref
        if other_layers is None:
            name = names[i]
        elif isinstance(other_layers, str):
            name = other_layers
        else:
            name = list(other_layers)[i]
        return (other, name), "model"

    def widths(net: nn.Module) -> dict[str, int]:
        return {
            n: net.get_submodule(following_linear(net, n)).in_features  # type: ignore[union-attr]
            for n in names
        }

    n_of = widths(model)
    for ref in references:
        for f in fr:
            for i, name in enumerate(names):
                r, label = resolve(ref, i)
                res = _compress_capped(model, name, data, f, n_of[name], r, eval_data, keep, seed)
                rows.append({"mode": "single", **res.to_dict(), "reference": label, "fraction": f})
            if consecutive and len(names) > 1:
                net, ks, last = model, 0, None
                for i, name in enumerate(names):
                    r, label = resolve(ref, i)
                    last = _compress_capped(
                        net, name, data, f, n_of[name], r, eval_data, keep, seed
                    )
                    net, ks = last.model, ks + last.k
                assert last is not None
                row = last.to_dict()
                row.update(
                    mode="consecutive",
                    layer="+".join(names),
                    reference=label,
                    fraction=f,
                    k=ks,
                    n=sum(n_of.values()),
                    original_accuracy=_accuracy(
                        model,
                        *_split_data(eval_data if eval_data is not None else data, "eval_data"),
                    ),
                    original_params=_n_params(model),
                    original_flops=_count_flops(model, _split_data(data, "data")[0]),
                )
                rows.append(row)
    cols = [
        "mode", "layer", "reference", "fraction", "kept_fraction", "k", "n", "accuracy",
        "original_accuracy", "params", "original_params", "flops", "original_flops",
    ]  # fmt: skip
    out = pd.DataFrame(rows)
    out["kept_fraction"] = out["k"] / out["n"]
    return out[cols]


def _compress_capped(
    model: nn.Module,
    layer: str,
    data: Any,
    fraction: float,
    n: int,
    reference: Any,
    eval_data: Any,
    keep: float,
    seed: int,
) -> CompressionResult:
    k = max(1, min(n, math.floor(fraction * n + 0.5)))
    return _compress(model, layer, data, k, reference, eval_data, keep, seed, cap=True)
