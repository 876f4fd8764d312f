"""Alignment curves of every layer of a model, per checkpoint, in one pass over the data."""

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nncompare._array import to_numpy
from nncompare._io import read_state_dict, state_dict_from
from nncompare._validation import check_option, warn
from nncompare.alignment._core import AlignmentCurve, StreamingAlignment, _check_taus
from nncompare.errors import RankDeficiencyWarning

__all__ = ["CONV_POLICIES", "layer_alignment"]

CONV_POLICIES = ("mean", "flatten")
INPUT = "input"


def _ckpt_label(ck: Any, i: int) -> str:
    if isinstance(ck, str | bytes) or hasattr(ck, "__fspath__"):
        from pathlib import Path

        return Path(ck).stem
    return str(i)


def _models(model: Any, checkpoints: Any) -> dict[str, Any]:
    if checkpoints is None:
        return {"model": model}
    if isinstance(checkpoints, Mapping) and not _is_state_dict(checkpoints):
        items = [(str(k), v) for k, v in checkpoints.items()]
    else:
        if isinstance(checkpoints, Mapping) or isinstance(checkpoints, str | bytes):
            checkpoints = [checkpoints]
        items = [(_ckpt_label(c, i), c) for i, c in enumerate(checkpoints)]
    if not items:
        raise ValueError(
            "checkpoints must hold at least one state dict or path; pass None to use the "
            "model's current weights."
        )
    names = [k for k, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(
            f"checkpoint labels must be unique; got {names}. Pass a dict {{label: checkpoint}}."
        )
    out = {}
    for lab, ck in items:
        m = copy.deepcopy(model)
        if isinstance(ck, Mapping):
            state = state_dict_from(ck, source=f"checkpoint {lab!r}")
        else:
            state = read_state_dict(ck, what=f"checkpoint {lab!r}")
        m.load_state_dict(state)
        out[lab] = m
    return out


def _is_state_dict(m: Mapping[Any, Any]) -> bool:
    import torch

    if any(k in ("state_dict", "model_state_dict") for k in m):
        return True
    return any(isinstance(v, torch.Tensor) for v in m.values())


def _to_matrix(t: Any, conv: str) -> Any:
    import torch

    t = t.to(torch.float64)
    if t.ndim == 1:
        return t[:, None]
    if t.ndim == 2:
        return t
    if conv == "mean":
        return t.mean(dim=tuple(range(2, t.ndim)))
    return t.reshape(t.shape[0], -1)


def layer_alignment(
    model: Any,
    data: Any,
    labels: Any = None,
    layers: Sequence[str] | str | None = None,
    checkpoints: Any = None,
    *,
    taus: Any = None,
    normalize: str | None = "rows",
    kind: str = "auto",
    conv: str = "mean",
    include_input: bool = True,
    batch_size: int = 256,
    device: Any = None,
    max_samples: int | None = None,
) -> Any:
    """Alignment curves of the chosen layers of ``model`` (at each checkpoint), one data pass.

    Every batch runs through every checkpoint's copy of the model once; the activations of
    each layer stream into a :class:`~nncompare.alignment.StreamingAlignment` with the
    batch's labels, so memory does not grow with the number of samples (Imani et al.,
    Figs. 6 and 7: before/after training, layers nearer the output).

    Parameters
    ----------
    model : torch.nn.Module
        The network (used as it is without ``checkpoints``; copied otherwise, never changed).
    data : tensor, ndarray, (x, y), Dataset or DataLoader
        Inputs, batched by :func:`nncompare.capture.iter_batches`.
    labels : array (n_samples,) or (n_samples, n_targets), optional
        One label per sample in data order. Default: the targets ``y`` the data yields
        (``(x, y)`` tuples, datasets and loaders of pairs).
    layers : list of names or glob patterns, optional
        Default: :func:`nncompare.capture.default_layers` (block outputs or leaves).
    checkpoints : sequence of state dicts or paths, or {label: state dict or path}, optional
        Weights to load into copies of ``model`` (paths with ``weights_only=True``), e.g.
        ``{"init": ..., "trained": ...}``. Default: the model's current weights, labelled
        ``"model"``.
    taus : sequence of float >= 0, optional
        Thresholds (default: 0 and each curve's own singular values).
    normalize, kind : as in :func:`nncompare.alignment.curve`
    conv : {"mean", "flatten"}, default "mean"
        Convolutional outputs (N, C, ...): spatial mean (N, C) or one feature per entry.
    include_input : bool, default True
        Add the flattened inputs as layer ``"input"`` (the original features).
    batch_size, device, max_samples
        Data loading, as in :func:`nncompare.compare_models`.

    Returns
    -------
    pandas.DataFrame
        Columns ``checkpoint``, ``layer``, ``label``, ``tau``, ``alignment``, ``rank``,
        ``n_features``, ``sigma_max``, ``n_samples`` (one row per threshold and label
        vector, plus ``label="sum"`` rows for several label vectors). ``attrs``:
        ``experiment`` ("layer_alignment"), ``layers`` and ``checkpoints`` (in order),
        ``labels``, ``kind``, ``normalize``, ``n_samples`` and ``spectra``
        (``{checkpoint: {layer: {"singular_values": [...], "projections": [[...]]}}}``).

    Warns
    -----
    RankDeficiencyWarning
        Once, naming the layers whose representation is rank deficient (the ``rank``
        column; their curves sum over the positive singular values).
    """
    import pandas as pd
    import torch

    from nncompare.capture import ActivationRecorder, default_layers, iter_batches
    from nncompare.capture import resolve_layers as _resolve

    check_option("conv", conv, CONV_POLICIES)
    grid = None if taus is None else np.atleast_1d(_check_taus(taus))
    models = _models(model, checkpoints)
    first_model = next(iter(models.values()))
    if device is None:
        try:
            device = next(first_model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    layer_spec = default_layers(model) if layers is None else layers
    given = None
    if labels is not None:
        given, _ = _labels_array(labels)
    dtype = next((p.dtype for p in first_model.parameters() if p.is_floating_point()), None)
    batches = iter_batches(
        data,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        max_samples=max_samples,
        with_targets=True,
    )
    first = next(batches, None)
    if first is None:
        raise ValueError("the data yielded no samples; pass at least a few hundred inputs.")
    probe = first[0][: min(2, len(first[0]))]
    names = _resolve(first_model, layer_spec, sample_input=probe)
    accs: dict[tuple[str, str], StreamingAlignment] = {}
    input_acc = StreamingAlignment(normalize=normalize, kind=kind) if include_input else None
    n = 0
    recorders = {lab: ActivationRecorder(m, names, reuse="first") for lab, m in models.items()}
    try:
        for rec in recorders.values():
            rec.__enter__()
        for x, yb in itertools.chain([first], batches):
            nb = int(x.shape[0])
            if given is not None:
                if n + nb > len(given):
                    raise ValueError(
                        f"labels has {len(given)} entries but the data has more samples "
                        f"(at least {n + nb}); pass one label per sample, in data order."
                    )
                ybatch = given[n : n + nb]
            elif yb is None:
                raise ValueError(
                    "layer_alignment needs labels: pass labels=... (one per sample, in data "
                    "order) or data that yields (x, y) pairs."
                )
            else:
                ybatch = yb.detach().cpu().numpy() if isinstance(yb, torch.Tensor) else yb
            if input_acc is not None:
                input_acc.update(x.reshape(nb, -1).to(torch.float64), ybatch)
            for lab, rec in recorders.items():
                out = rec.run(x)
                for layer in names:
                    key = (lab, layer)
                    if key not in accs:
                        accs[key] = StreamingAlignment(normalize=normalize, kind=kind)
                    accs[key].update(_to_matrix(out[layer], conv), ybatch)
            n += nb
    finally:
        for rec in recorders.values():
            rec.__exit__(None, None, None)
    if given is not None and n != len(given):
        raise ValueError(
            f"labels has {len(given)} entries but the data yielded {n} samples; pass one label "
            "per sample, in data order."
        )
    layer_order = ([INPUT] if input_acc is not None else []) + list(names)
    curves: dict[tuple[str, str], AlignmentCurve] = {}
    deficient: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        input_curve = input_acc.curve(grid) if input_acc is not None else None
        for key, acc in accs.items():
            curves[key] = acc.curve(grid)
    rows: list[dict[str, Any]] = []
    spectra: dict[str, dict[str, Any]] = {}
    for lab in models:
        spectra[lab] = {}
        for layer in layer_order:
            c = input_curve if layer == INPUT else curves[(lab, layer)]
            assert c is not None
            if c.rank < c.n_features and (layer != INPUT or lab == next(iter(models))):
                deficient.append(f"{layer} ({lab}): rank {c.rank} of {c.n_features}")
            rows.extend(_rows(c, lab, layer))
            spectra[lab][layer] = {
                "singular_values": to_numpy(c.singular_values).tolist(),
                "projections": to_numpy(c.projections).tolist(),
            }
    if deficient:
        warn(
            "rank-deficient representations (constant or dependent features, e.g. dead "
            "ReLUs); their curves sum over the positive singular values: "
            + "; ".join(deficient[:12])
            + ("; ..." if len(deficient) > 12 else ""),
            RankDeficiencyWarning,
        )
    cols = ["checkpoint", "layer", "label", "tau", "alignment", "rank", "n_features",
            "sigma_max", "n_samples"]  # fmt: skip
    df = pd.DataFrame(rows, columns=cols)
    any_curve = input_curve if input_curve is not None else next(iter(curves.values()))
    df.attrs.update(
        {
            "experiment": "layer_alignment",
            "layers": layer_order,
            "checkpoints": list(models),
            "labels": list(any_curve.labels),
            "kind": any_curve.kind,
            "normalize": normalize,
            "conv": conv,
            "n_samples": n,
            "spectra": spectra,
        }
    )
    return df


def _labels_array(labels: Any) -> tuple[Any, bool]:
    import torch

    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim not in (1, 2):
        raise ValueError(
            "labels must be a vector (n_samples,) or a matrix of regression targets "
            f"(n_samples, n_targets); got shape {arr.shape}."
        )
    return arr, arr.dtype.kind in "biuUSO"


def _rows(c: AlignmentCurve, checkpoint: str, layer: str) -> list[dict[str, Any]]:
    taus = to_numpy(c.taus)
    a = to_numpy(c.alignment)
    s = to_numpy(c.singular_values)
    base = {
        "checkpoint": checkpoint,
        "layer": layer,
        "rank": c.rank,
        "n_features": c.n_features,
        "sigma_max": float(s[0]) if len(s) else 0.0,
        "n_samples": c.n_samples,
    }
    out = [
        {**base, "label": lab, "tau": float(t), "alignment": float(a[j, k])}
        for k, lab in enumerate(c.labels)
        for j, t in enumerate(taus)
    ]
    if len(c.labels) > 1:
        tot = to_numpy(c.total)
        out += [
            {**base, "label": "sum", "tau": float(t), "alignment": float(tot[j])}
            for j, t in enumerate(taus)
        ]
    return out
