"""``compare_weights``: every weight-lens quantity per layer in one tidy frame."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nncompare._array import to_numpy
from nncompare.errors import NNCompareWarning
from nncompare.weights._align import (
    Alignment,
    alignment_from_moments,
    as_pairs,
    kron_alignment,
    stream_inputs,
)
from nncompare.weights._similarity import covariance_similarity
from nncompare.weights._spectra import (
    channel_covariance,
    default_init_variance,
    effective_rank,
    noise_edge,
    shrunk_covariance,
    weight_gamma,
)

__all__ = ["AlignedCovariances", "aligned_covariances", "compare_weights", "weight_layers"]

COLUMNS = [
    "layer", "layer_b", "r_eff_a", "r_eff_b", "bw", "cosine", "S", "zero_point",
    "upper_bound", "c_in_a", "c_in_b", "c_out_a", "c_out_b", "gamma_a", "gamma_b",
    "alignment_residual", "n_samples", "note",
]  # fmt: skip


@dataclass(frozen=True, repr=False)
class AlignedCovariances:
    """One layer's weight covariances of two networks, both in network A's basis.

    Attributes
    ----------
    layer, layer_b : str
    C_a, C_b : numpy.ndarray, shape (D, D)
        Channel covariances (normalised: init variance 1), B's aligned: Ãᵀ C_b Ã with
        Ã = A ⊗ I (A on the channel index of each spatial position / filter copy).
    shrunk_a, shrunk_b : numpy.ndarray, shape (D, D)
        Their learned components (eq. 3), each shrunk in its own network's basis with its
        own γ before B's is rotated.
    gamma_a, gamma_b : float
        D / C_out of each network's weight.
    c_out_a, c_out_b : int
    alignment : Alignment
    """

    layer: str
    layer_b: str
    C_a: np.ndarray
    C_b: np.ndarray
    shrunk_a: np.ndarray
    shrunk_b: np.ndarray
    gamma_a: float
    gamma_b: float
    c_out_a: int
    c_out_b: int
    alignment: Alignment

    def __repr__(self) -> str:
        return (
            f"AlignedCovariances(layer={self.layer!r}, D={self.C_a.shape[0]}, "
            f"gamma=({self.gamma_a:.3g}, {self.gamma_b:.3g}))"
        )


def _layer_modules(model: Any) -> dict[str, Any]:
    from torch import nn

    return {
        n: m
        for n, m in model.named_modules()
        if (isinstance(m, nn.Conv2d) and m.groups == 1) or isinstance(m, nn.Linear)
    }


def weight_layers(model_a: Any, model_b: Any) -> list[str]:
    """The Conv2d (ungrouped) and Linear layers of two models: their names must agree."""
    from torch import nn

    for side, m in (("a", model_a), ("b", model_b)):
        if not isinstance(m, nn.Module):
            raise TypeError(
                f"Expected model_{side} to be a torch.nn.Module, got {type(m).__name__}."
            )
    la, lb = list(_layer_modules(model_a)), list(_layer_modules(model_b))
    if not la:
        raise ValueError(
            f"model_a ({type(model_a).__name__}) has no Conv2d or Linear layer to compare."
        )
    if la != lb:
        only_a = [n for n in la if n not in lb]
        only_b = [n for n in lb if n not in la]
        raise ValueError(
            "the two models' weight layers differ: expected the same Conv2d/Linear names in "
            f"both; got {len(la)} in model_a and {len(lb)} in model_b (only in a: "
            f"{only_a[:6]}, only in b: {only_b[:6]}). Pass layers=[(name_a, name_b), ...] to "
            "pair them explicitly."
        )
    return la


def _weight(model: Any, name: str, side: str) -> Any:
    from torch import nn

    modules = dict(model.named_modules())
    if name not in modules:
        raise ValueError(
            f"layer {name!r} is not a module of model_{side}; expected one of its Conv2d/Linear "
            f"layers: {list(_layer_modules(model))[:12]}."
        )
    m = modules[name]
    if isinstance(m, nn.Conv2d) and m.groups != 1:
        raise ValueError(
            f"{name!r} of model_{side} is a grouped (depthwise) convolution (groups="
            f"{m.groups}): its filters are per channel and have no channel covariance. Compare "
            "the pointwise conv that follows it and align at the depthwise conv's input "
            f"(align_at={{'<pointwise>': {name!r}}})."
        )
    if not isinstance(m, nn.Conv2d | nn.Linear):
        raise TypeError(
            f"the weight lens needs a Conv2d or Linear layer; {name!r} of model_{side} is a "
            f"{type(m).__name__}. Pick one of: {list(_layer_modules(model))[:12]}."
        )
    return m.weight.detach()


def aligned_covariances(
    model_a: Any,
    model_b: Any,
    data: Any,
    layers: Any = None,
    *,
    align_at: Mapping[str, str] | None = None,
    init_variance: float | tuple[float, float] | None = None,
    center: bool = False,
    batch_size: int = 256,
    max_samples: int | None = None,
    device: Any = None,
) -> dict[str, AlignedCovariances]:
    """Per layer, A's and B's (aligned) channel covariances, from one streamed pass.

    Parameters are those of :func:`compare_weights`.
    """
    pairs = as_pairs(weight_layers(model_a, model_b) if layers is None else layers)
    if not pairs:
        raise ValueError("layers is empty; pass layer names, (name_a, name_b) pairs, or None.")
    align_at = dict(align_at or {})
    unknown = [k for k in align_at if k not in {a for a, _ in pairs}]
    if unknown:
        raise ValueError(
            f"align_at names {unknown}, which are not among the compared layers "
            f"{[a for a, _ in pairs][:12]}; its keys are weight layers of model_a."
        )
    weights = {}
    for la, lb in pairs:
        weights[(la, lb)] = (_weight(model_a, la, "a"), _weight(model_b, lb, "b"))
    rep = {
        (la, lb): (align_at.get(la, la), align_at.get(la, lb) if la in align_at else lb)
        for la, lb in pairs
    }
    moments = stream_inputs(
        model_a,
        model_b,
        data,
        list(dict.fromkeys(rep.values())),
        batch_size=batch_size,
        max_samples=max_samples,
        device=device,
    )
    if isinstance(init_variance, tuple | list):
        var_a, var_b = init_variance
    else:
        var_a = var_b = init_variance
    out: dict[str, AlignedCovariances] = {}
    for (la, lb), (wa, wb) in weights.items():
        ra, rb = rep[(la, lb)]
        al = alignment_from_moments(moments[(ra, rb)], center=center, layer=ra, layer_b=rb)
        cb, ca = al.matrix.shape
        if wa.shape[1] % ca or wb.shape[1] % cb:
            raise ValueError(
                f"{la!r}: the weights have {wa.shape[1]} (a) and {wb.shape[1]} (b) input "
                f"channels, not multiples of the aligned widths {ca} and {cb} at the input of "
                f"{ra!r}. Align at the module that feeds this layer (align_at)."
            )
        ka, kb = wa.shape[1] // ca, wb.shape[1] // cb
        if ka != kb or tuple(wa.shape[2:]) != tuple(wb.shape[2:]):
            raise ValueError(
                f"{la!r}: the two weights' shapes {tuple(wa.shape)} and {tuple(wb.shape)} do not "
                "correspond (different kernel sizes or filter copies K); only widths may "
                "differ between the compared layers."
            )
        repeat = ka * int(np.prod(wa.shape[2:]))
        wa64, wb64 = wa.double(), wb.double()
        Ca = to_numpy(channel_covariance(wa64, var_a or default_init_variance(tuple(wa.shape))))
        Cb = to_numpy(channel_covariance(wb64, var_b or default_init_variance(tuple(wb.shape))))
        ga, gb = weight_gamma(wa), weight_gamma(wb)
        Sa = shrunk_covariance(Ca, ga)
        Sb = shrunk_covariance(Cb, gb)
        K = kron_alignment(al.matrix, repeat)
        out[la] = AlignedCovariances(
            layer=la,
            layer_b=lb,
            C_a=Ca,
            C_b=K.T @ Cb @ K,
            shrunk_a=Sa,
            shrunk_b=K.T @ Sb @ K,
            gamma_a=ga,
            gamma_b=gb,
            c_out_a=int(wa.shape[0]),
            c_out_b=int(wb.shape[0]),
            alignment=al,
        )
    return out


def compare_weights(
    model_a: Any,
    model_b: Any,
    data: Any,
    layers: str | Iterable[str] | Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
    *,
    align_at: Mapping[str, str] | None = None,
    init_variance: float | tuple[float, float] | None = None,
    n_rotations: int = 8,
    seed: int = 0,
    center: bool = False,
    batch_size: int = 256,
    max_samples: int | None = None,
    device: Any = None,
) -> Any:
    """Compare two networks' weights layer by layer (Guth & Ménard §3): one tidy frame.

    For each weight layer: align the two networks' inputs of that layer (eq. 1, streamed
    moments), map B's weights into A's basis (eq. 2), form both channel covariances
    (normalised by the init variance), shrink them (eq. 3) and compare: effective ranks
    (eq. 4), Bures–Wasserstein distance and cosine (eq. 5), and S with its zero point and
    upper bound (eq. 6).

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
    data : tensor, ndarray, (x, y), Dataset, DataLoader or iterable of batches
        Inputs for the alignment; streamed once through each model.
    layers : names, (name_a, name_b) pairs, mapping or None, default None
        Weight layers (Conv2d with groups=1, Linear). None: all of them, whose names must
        agree between the models.
    align_at : mapping of str to str, optional
        For a weight layer, the module whose *input* is aligned instead of its own (a
        factorized block's pointwise conv -> its depthwise conv: the alignment of the
        depthwise input acts on each of the K filter copies).
    init_variance : float, (float, float) or None
        σ² of the initialisation of A's (and B's) weights; None: PyTorch's default
        1 / (3 fan_in) (see :func:`channel_covariance`).
    n_rotations, seed
        Draws for the zero point and upper bound of S (:func:`covariance_similarity`).
    center, batch_size, max_samples, device
        Alignment options (:func:`alignment`).

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``layer, layer_b, r_eff_a, r_eff_b, bw, cosine, S, zero_point,
        upper_bound`` plus ``c_in_a, c_in_b, c_out_a, c_out_b, gamma_a, gamma_b,
        alignment_residual, n_samples, note``. A layer whose weights show no learned
        component (every eigenvalue inside the noise bulk) has NaN in the similarity
        columns, a ``note`` saying why, and raises an ``NNCompareWarning``.
    """
    covs = aligned_covariances(
        model_a,
        model_b,
        data,
        layers,
        align_at=align_at,
        init_variance=init_variance,
        center=center,
        batch_size=batch_size,
        max_samples=max_samples,
        device=device,
    )
    return weights_frame(covs, init_variance=init_variance, n_rotations=n_rotations, seed=seed)


def weights_frame(
    covs: Mapping[str, Any],
    *,
    init_variance: float | tuple[float, float] | None = None,
    n_rotations: int = 8,
    seed: int = 0,
) -> Any:
    """The frame of :func:`compare_weights` from the result of :func:`aligned_covariances`
    (for callers that need the covariances themselves too, without a second data pass)."""
    import pandas as pd

    rows = []
    for la, c in covs.items():
        ea = np.linalg.eigvalsh(c.shrunk_a).clip(0, None)
        eb = np.linalg.eigvalsh(c.shrunk_b).clip(0, None)
        row: dict[str, Any] = {
            "layer": la,
            "layer_b": c.layer_b,
            "r_eff_a": effective_rank(ea),
            "r_eff_b": effective_rank(eb),
            "c_in_a": c.alignment.matrix.shape[1],
            "c_in_b": c.alignment.matrix.shape[0],
            "c_out_a": c.c_out_a,
            "c_out_b": c.c_out_b,
            "gamma_a": c.gamma_a,
            "gamma_b": c.gamma_b,
            "alignment_residual": c.alignment.residual,
            "n_samples": c.alignment.n_samples,
            "note": "",
        }
        empty = [s for s, e in (("a", ea), ("b", eb)) if float(e.sum()) <= 0]
        if empty:
            g = c.gamma_a if empty[0] == "a" else c.gamma_b
            note = (
                f"no learned component in model_{'/'.join(empty)}: every eigenvalue lies "
                f"inside the noise bulk (edge {noise_edge(g):.3g}); S undefined"
            )
            warnings.warn(f"{la}: {note}.", NNCompareWarning, stacklevel=2)
            row.update(
                bw=np.nan, cosine=np.nan, S=np.nan, zero_point=np.nan, upper_bound=np.nan, note=note
            )
        else:
            try:
                sim = covariance_similarity(
                    c.shrunk_a,
                    c.shrunk_b,
                    shrink=False,
                    gamma=(c.gamma_a, c.gamma_b),
                    n_rotations=n_rotations,
                    seed=seed,
                )
            except ValueError as err:
                warnings.warn(f"{la}: {err}", NNCompareWarning, stacklevel=2)
                row.update(
                    bw=np.nan,
                    cosine=np.nan,
                    S=np.nan,
                    zero_point=np.nan,
                    upper_bound=np.nan,
                    note=str(err),
                )
            else:
                row.update(
                    bw=sim.bures_wasserstein,
                    cosine=sim.cosine,
                    S=sim.S,
                    zero_point=sim.zero_point,
                    upper_bound=sim.upper_bound,
                )
        rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs["lens"] = "weights"
    df.attrs["init_variance"] = (
        "pytorch default 1/(3 fan_in)"
        if init_variance is None
        else (init_variance if not isinstance(init_variance, tuple) else list(init_variance))
    )
    df.attrs["n_rotations"] = int(n_rotations)
    df.attrs["seed"] = int(seed)
    return df
