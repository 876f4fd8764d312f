"""The experiments of Csiszárik et al. (2021, Sections 5-8) as library functions.

Each function runs one of the paper's experiments on the models and data it is given (it
never downloads anything) and returns a tidy :class:`pandas.DataFrame`, one row per
measured point, with the options as columns. ``df.attrs`` holds plain, JSON-ready data
only (so frames can be concatenated and saved): ``experiment`` (the function's name),
``title``, ``provenance`` (versions, time, the models, the options) and, where an
experiment keeps more than numbers, its extras (``matrices`` of :func:`sparsity_study`,
``solutions`` of :func:`mode_connectivity`, ``measures`` of the training monitors).

============================  =========  ==============================================
function                      paper      what it measures
============================  =========  ==============================================
:func:`layer_sweep`           Fig. 2     relative accuracy and cross-entropy per layer,
                                         direct vs task-loss matching, with the
                                         no-transformation baseline
:func:`width_sweep`           Fig. 3     relative accuracy per layer against width
:func:`similarity_during_training`
                              Fig. 4     CKA, R²_LR, CCA, SVCCA over task-loss training
:func:`cka_penalised_self_stitch`
                              Fig. 5     a model stitched with itself, CE + λ·CKA
:func:`initialisation_study`  Fig. 6     relative accuracy, random vs LS initialisations
:func:`low_rank_study`        Fig. 7     reduced-rank LS vs bottleneck task loss
:func:`mode_connectivity`     Exp. 6     relative accuracy along λM₁ + (1-λ)M₂
:func:`sparsity_study`        Fig. 8     relative accuracy against sparsity, lasso vs
                                         L1 task loss
============================  =========  ==============================================

Common columns (from :meth:`StitchResult.to_row`): ``layer_a``, ``layer_b``, ``kind``,
``rank``, ``resize``, ``method`` (``"identity"``, ``"ls"``, ``"procrustes"``, ``"rrr"``,
``"lasso"``, ``"task"``), ``width_a``, ``width_b``, ``accuracy`` (the stitched model's on
``eval_data``), ``accuracy_b`` (model B's own), ``relative_accuracy`` (their ratio),
``cross_entropy`` (to B's softmax, nats), ``agreement``, ``fit_r2`` (direct matching),
``sparsity`` and the ``option_*`` of each fit or training, plus ``skipped``: None for a
measured row, else the reason why a point could not be measured (then its numbers are NaN,
e.g. the identity baseline between layers of different widths).

Every function needs labelled ``eval_data`` (relative accuracy is accuracy over model B's
accuracy). ``data`` and ``eval_data`` are what :func:`~nncompare.stitching.fit` takes:
(inputs, labels), a torch Dataset or DataLoader, or an object with ``.x`` and ``.y`` (the
workbench's data sets). The models are never changed (the stitched models hold frozen
copies of their parts).

Examples
--------
>>> import nncompare as nc  # doctest: +SKIP
>>> from nncompare.stitching import experiments
>>> train, test = nc.data.load_digits("train"), nc.data.load_digits("test")  # doctest: +SKIP
>>> df = experiments.layer_sweep(net_a, net_b, ["relu1", "relu2"], train, test)  # doctest: +SKIP
>>> nc.plot.stitch_layer_sweep(df).savefig("layer_sweep.png")  # doctest: +SKIP

References
----------
Csiszárik, A., Kőrösi-Szabó, P., Matszangosz, Á. K., Papp, G. & Varga, D. (2021). Similarity
and matching of neural network representations. NeurIPS.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from nncompare.capture._data import _is_array, iter_batches
from nncompare.errors import NNCompareWarning
from nncompare.stitching._cut import InvalidCutError
from nncompare.stitching._fit import fit
from nncompare.stitching._result import StitchResult
from nncompare.stitching._stitched import Stitched, stitch
from nncompare.stitching._train import evaluate, train

__all__ = [
    "EXPERIMENTS",
    "StitchingExperimentWarning",
    "cka_penalised_self_stitch",
    "fit_r2",
    "initialisation_study",
    "layer_sweep",
    "low_rank_study",
    "mode_connectivity",
    "similarity_during_training",
    "sparsity_study",
    "width_sweep",
]

EXPERIMENTS = (
    "layer_sweep",
    "width_sweep",
    "similarity_during_training",
    "cka_penalised_self_stitch",
    "initialisation_study",
    "low_rank_study",
    "mode_connectivity",
    "sparsity_study",
)
SWEEP_METHODS = ("ls", "procrustes", "task")
DEFAULT_MEASURES = ("cka", "fit_r2", "lr_r2", "cca", "svcca")
_METRICS = (
    "accuracy",
    "accuracy_b",
    "relative_accuracy",
    "cross_entropy",
    "agreement",
    "fit_r2",
    "sparsity",
)


class StitchingExperimentWarning(NNCompareWarning):
    """An experiment ran, but part of what it was asked to measure could not be measured
    (e.g. fewer than two mode-connectivity solutions reached the accuracy threshold)."""


# --------------------------------------------------------------------------- helpers


@dataclasses.dataclass(frozen=True)
class _Training:
    """The task-loss training options shared by the experiments."""

    epochs: int
    lr: float
    target: str
    batch_size: int
    progress: bool
    extra: Mapping[str, Any]

    def run(self, stitched: Stitched, data: Any, eval_data: Any, **kw: Any) -> StitchResult:
        options = dict(self.extra)
        options.update(kw)
        return train(
            stitched,
            data,
            target=self.target,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            progress=self.progress,
            eval_data=eval_data,
            **options,
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "epochs": self.epochs,
            "lr": self.lr,
            "target": self.target,
            "batch_size": self.batch_size,
        }
        out.update({k: _plain(v) for k, v in self.extra.items()})
        return out


_RESERVED_TRAIN = {
    "data",
    "stitched",
    "eval_data",
    "init",
    "seed",
    "epochs",
    "lr",
    "target",
    "batch_size",
    "progress",
}


def _training(
    epochs: int,
    lr: float,
    target: str,
    batch_size: int,
    progress: bool,
    train_options: Mapping[str, Any] | None,
    owned: Iterable[str] = (),
) -> _Training:
    extra = dict(train_options or {})
    clash = sorted(set(extra) & (_RESERVED_TRAIN | set(owned)))
    if clash:
        raise ValueError(
            f"train_options must not set {', '.join(map(repr, clash))}: the experiment sets "
            "those itself (pass epochs=, lr=, target=, batch_size= and progress= as the "
            "experiment's own arguments). train_options is for the other options of "
            "nc.stitching.train, e.g. {'temperature': 2.0, 'eval_every': 10}."
        )
    return _Training(
        epochs=epochs,
        lr=lr,
        target=target,
        batch_size=batch_size,
        progress=progress,
        extra=extra,
    )


def _plain(value: Any) -> Any:
    """A JSON-ready version of an option value (for ``attrs``)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return getattr(value, "__name__", repr(value))


def _as_data(data: Any, name: str) -> Any:
    """(x, y) for an object with ``.x``/``.y`` (the workbench's data sets); else as given."""
    if data is None:
        raise ValueError(
            f"Expected {name} to be data for the two models ((inputs, labels), a Dataset or "
            "a DataLoader), got None."
        )
    if (
        not _is_array(data)
        and not isinstance(data, tuple | list | TorchDataset | DataLoader)
        and hasattr(data, "x")
    ):
        y = getattr(data, "y", None)
        return (data.x, y) if y is not None else (data.x,)
    return data


def _require_labels(eval_data: Any) -> None:
    first = next(iter(iter_batches(eval_data, 2, with_targets=True, max_samples=2)), None)
    if first is None:
        raise ValueError("Expected eval_data with at least one sample, got none.")
    if first[1] is None:
        raise ValueError(
            "Expected eval_data with class labels: the experiments report relative accuracy "
            "(the stitched model's accuracy over model B's), which needs them; got inputs "
            "only. Pass eval_data=(inputs, labels), or a Dataset/DataLoader yielding (x, y)."
        )


def _describe(model: Any) -> dict[str, Any]:
    n = sum(int(p.numel()) for p in model.parameters()) if isinstance(model, nn.Module) else None
    return {"class": type(model).__name__, "parameters": n}


def _check_model(model: Any, name: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"Expected {name} to be a torch.nn.Module, got {type(model).__name__}.")


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"Expected {name} to be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _numbers(name: str, values: Any, *, positive: bool, allow_empty: bool = False) -> list[float]:
    if isinstance(values, int | float | np.integer | np.floating) and not isinstance(values, bool):
        values = [values]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise TypeError(f"Expected {name} to hold numbers, got {v!r}.")
        f = float(v)
        if not math.isfinite(f) or f < 0 or (positive and f == 0):
            need = "> 0" if positive else ">= 0"
            raise ValueError(f"Expected every value of {name} to be finite and {need}, got {v!r}.")
        out.append(f)
    if not out and not allow_empty:
        raise ValueError(f"Expected at least one value in {name}, got none.")
    return out


def _seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        seeds = [seeds]
    out = [_int("every seed", s, 0) for s in seeds]
    if not out:
        raise ValueError("Expected at least one seed, got none (e.g. seeds=(0, 1, 2)).")
    return out


def _layer_pairs(layers: Any, layers_b: Any = None) -> list[tuple[str, str]]:
    """``layers`` (names, or (layer_a, layer_b) pairs) as a list of pairs."""
    items = [layers] if isinstance(layers, str) else layers
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise TypeError(
            f"Expected layers to be a layer name, a list of names or of (layer_a, layer_b) "
            f"pairs, got {type(layers).__name__}."
        )
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            pairs.append((item, item))
        elif (
            isinstance(item, tuple | list)
            and len(item) == 2
            and all(isinstance(s, str) for s in item)
        ):
            pairs.append((item[0], item[1]))
        else:
            raise TypeError(
                f"Expected every entry of layers to be a layer name or a (layer_a, layer_b) "
                f"pair of names, got {item!r}."
            )
    if layers_b is not None:
        names_b = [layers_b] if isinstance(layers_b, str) else list(layers_b)
        if len(names_b) != len(pairs) or not all(isinstance(s, str) for s in names_b):
            raise ValueError(
                f"Expected layers_b to name one layer of model_b per layer of model_a "
                f"({len(pairs)}), got {layers_b!r}."
            )
        pairs = [(a, b) for (a, _), b in zip(pairs, names_b, strict=True)]
    if not pairs:
        raise ValueError("Expected at least one layer to stitch at, got none.")
    return pairs


def _check_layers(model_a: nn.Module, model_b: nn.Module, pairs: list[tuple[str, str]]) -> None:
    """Fail before any work on a layer name that is not a module (the core's message)."""
    names_a, names_b = dict(model_a.named_modules()), dict(model_b.named_modules())
    for layer_a, layer_b in pairs:
        if layer_a not in names_a or layer_b not in names_b:
            stitch(model_a, layer_a, model_b, layer_b)  # raises LayerNotFoundError
            raise AssertionError("unreachable")  # pragma: no cover


def _build(stitched: Stitched, data: Any) -> Stitched:
    x = next(
        iter(iter_batches(data, 2, stitched.device, dtype=stitched.float_dtype, max_samples=2)),
        None,
    )
    if x is None:
        raise ValueError("Expected data with at least one sample, got none.")
    return stitched.build(x)


def _with_eval(result: StitchResult, ev: StitchResult) -> StitchResult:
    return dataclasses.replace(
        result,
        accuracy=ev.accuracy,
        accuracy_b=ev.accuracy_b,
        relative_accuracy=ev.relative_accuracy,
        cross_entropy=ev.cross_entropy,
        agreement=ev.agreement,
    )


def _row(result: StitchResult, head: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(head)
    row.update(result.to_row())
    row["skipped"] = None
    return row


def _skipped(
    head: Mapping[str, Any], layer_a: str, layer_b: str, method: str, reason: str, **extra: Any
) -> dict[str, Any]:
    row = dict(head)
    row.update(layer_a=layer_a, layer_b=layer_b, method=method, **extra)
    for key in _METRICS:
        row[key] = float("nan")
    row["skipped"] = reason
    return row


def _identity(stitched: Stitched, eval_data: Any, batch_size: int) -> StitchResult | str:
    """The no-transformation baseline, or the reason there is none."""
    c_a, c_b = stitched.widths
    if c_a != c_b:
        return (
            f"no identity map between different widths (C_a = {c_a}, C_b = {c_b}); the "
            "no-transformation baseline needs equal widths"
        )
    if stitched.shape_a[1:] != stitched.shape_b[1:] and stitched.resize is None:
        return "different spatial sizes"  # pragma: no cover - stitch refuses these first
    stitched.set_matrix(torch.eye(c_a), torch.zeros(c_b))
    stitched.method = "identity"
    return evaluate(stitched, eval_data, batch_size=batch_size)


def _frame(
    rows: list[dict[str, Any]],
    experiment: str,
    title: str,
    provenance: Mapping[str, Any],
    **attrs: Any,
) -> Any:
    import pandas as pd

    from nncompare.analyses.engine import provenance as run_provenance

    df = pd.DataFrame(rows)
    if "skipped" in df.columns:
        df["skipped"] = df["skipped"].astype(object).where(df["skipped"].notna(), None)
    df.attrs["experiment"] = experiment
    df.attrs["title"] = title
    df.attrs["provenance"] = run_provenance(
        {"experiment": experiment, **{k: _plain(v) for k, v in provenance.items()}}
    )
    for key, value in attrs.items():
        df.attrs[key] = _plain(value)
    return df


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"stitching.experiments: {message}", file=sys.stderr)


def _direct(
    stitched: Stitched, data: Any, eval_data: Any, method: str, batch_size: int, **kw: Any
) -> StitchResult:
    result = fit(stitched, data, method, **kw)
    return _with_eval(result, evaluate(stitched, eval_data, batch_size=max(batch_size, 256)))


# --------------------------------------------------------------------------- Fig. 2 / 3


def _sweep_rows(
    model_a: nn.Module,
    model_b: nn.Module,
    pairs: list[tuple[str, str]],
    data: Any,
    eval_data: Any,
    methods: Sequence[str],
    seeds: list[int],
    training: _Training,
    *,
    baseline: bool,
    resize: str | None,
    init: str,
    head: Mapping[str, Any],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    eval_bs = max(training.batch_size, 256)
    for position, (layer_a, layer_b) in enumerate(pairs):
        h = {**head, "position": position}
        names = [m for m in methods if m != "task"] + (["task"] if "task" in methods else [])
        try:
            stitched = _build(stitch(model_a, layer_a, model_b, layer_b, resize=resize), data)
        except InvalidCutError as err:
            reason = f"not a valid cut: {str(err).splitlines()[0]}"
            for method in (["identity"] if baseline else []) + names:
                for seed in seeds if method == "task" else [None]:
                    rows.append(_skipped({**h, "seed": seed}, layer_a, layer_b, method, reason))
            continue
        if baseline:
            ident = _identity(stitched, eval_data, eval_bs)
            if isinstance(ident, str):
                rows.append(_skipped({**h, "seed": None}, layer_a, layer_b, "identity", ident))
            else:
                rows.append(_row(ident, {**h, "seed": None}))
        c_a, c_b = stitched.widths
        for method in names:
            if method == "task":
                for seed in seeds:
                    _log(training.progress, f"task loss {layer_a} -> {layer_b}, seed {seed}")
                    result = training.run(stitched, data, eval_data, init=init, seed=seed)
                    rows.append(_row(result, {**h, "seed": seed}))
            elif method == "procrustes" and c_a != c_b:
                reason = f"procrustes needs equal widths (C_a = {c_a}, C_b = {c_b})"
                rows.append(_skipped({**h, "seed": None}, layer_a, layer_b, method, reason))
            else:
                _log(training.progress, f"{method} {layer_a} -> {layer_b}")
                result = _direct(stitched, data, eval_data, method, training.batch_size)
                rows.append(_row(result, {**h, "seed": None}))
    return rows


def _check_methods(methods: Any) -> list[str]:
    methods = [methods] if isinstance(methods, str) else list(methods)
    bad = [m for m in methods if m not in SWEEP_METHODS]
    if bad or not methods:
        raise ValueError(
            f"Expected methods to be a non-empty list of {SWEEP_METHODS} (direct matching by "
            f"least squares or Procrustes, and task-loss matching), got {methods!r}."
        )
    return list(dict.fromkeys(methods))


def layer_sweep(
    model_a: nn.Module,
    model_b: nn.Module,
    layers: Any,
    data: Any,
    eval_data: Any,
    *,
    methods: Sequence[str] = ("ls", "task"),
    layers_b: Sequence[str] | None = None,
    baseline: bool = True,
    seeds: Sequence[int] | int = (0,),
    init: str = "ls",
    resize: str | None = None,
    epochs: int = 1,
    lr: float = 1e-3,
    target: str = "soft",
    batch_size: int = 128,
    train_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """Stitch A to B at each layer: direct vs task-loss matching (paper Sec. 5.1, Fig. 2).

    For every layer pair the stitched network is scored on ``eval_data`` after direct
    matching (``"ls"``: least squares, eq. 2; ``"procrustes"``) fitted on ``data``, after
    task-loss matching (``"task"``: cross-entropy to B's outputs, trained from ``init``), and
    without a transformation (``baseline``: the identity, where the widths agree).

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        The front comes from A, the back from B (e.g. two networks of one architecture
        trained from different seeds).
    layers : str, list of str or list of (str, str)
        Cut points, in depth order: a name used in both models, or (layer_a, layer_b)
        pairs. A name that is not a true cut (a skip connection crosses it) is kept as
        skipped rows with the reason; an unknown name raises.
    data : (inputs, labels), Dataset, DataLoader or object with ``.x``/``.y``
        Fitting and training data.
    eval_data : same kinds, with labels
        Held-out data the relative accuracies are measured on.
    methods : sequence of {"ls", "procrustes", "task"}, default ("ls", "task")
    layers_b : list of str, optional
        B's layer for each of ``layers`` (default: the same names).
    baseline : bool, default True
        Add the no-transformation rows (``method="identity"``); between different widths
        they are skipped with the reason.
    seeds : int or sequence of int, default (0,)
        One task-loss run per seed (shuffling; and the initialisation for
        ``init="random"``), to show the spread the paper draws as bands.
    init : {"ls", "identity", "random", "procrustes"}, default "ls"
        Start of task-loss training (the paper's most stable choice is LS).
    resize : {None, "interpolate", "pool"}
        Passed to :func:`~nncompare.stitch` for cuts of different spatial sizes.
    epochs, lr, target, batch_size : int, float, str, int
        Task-loss training (:func:`~nncompare.stitching.train`; Adam).
    train_options : mapping, optional
        Further keyword arguments of :func:`~nncompare.stitching.train` (``temperature``,
        ``eval_every``, ...).
    progress : bool, default False
        One line per run on standard error (and the training's own lines).

    Returns
    -------
    pandas.DataFrame
        One row per (layer, method[, seed]): ``position`` (index in ``layers``), ``seed``
        (task rows), the common columns of the module notes (``relative_accuracy``,
        ``cross_entropy``, ``fit_r2``, ``skipped``, ...).

    Raises
    ------
    ValueError
        For an unknown method, ``eval_data`` without labels, or the errors of
        :func:`~nncompare.stitch`, :func:`~nncompare.stitching.fit` and
        :func:`~nncompare.stitching.train` (e.g. different spatial sizes without
        ``resize``).
    """
    _check_model(model_a, "model_a")
    _check_model(model_b, "model_b")
    methods = _check_methods(methods)
    pairs = _layer_pairs(layers, layers_b)
    seeds_ = _seeds(seeds)
    training = _training(epochs, lr, target, batch_size, progress, train_options)
    data, eval_data = _as_data(data, "data"), _as_data(eval_data, "eval_data")
    _require_labels(eval_data)
    _check_layers(model_a, model_b, pairs)
    rows = _sweep_rows(
        model_a,
        model_b,
        pairs,
        data,
        eval_data,
        methods,
        seeds_,
        training,
        baseline=baseline,
        resize=resize,
        init=init,
        head={},
    )
    return _frame(
        rows,
        "layer_sweep",
        "Stitching per layer: direct vs task-loss matching",
        {
            "model_a": _describe(model_a),
            "model_b": _describe(model_b),
            "layers": [list(p) for p in pairs],
            "methods": methods,
            "seeds": seeds_,
            "init": init,
            "resize": resize,
            "training": training.as_dict(),
            "reference": "Csiszárik et al. 2021, Sec. 5.1, Fig. 2",
        },
    )


def width_sweep(
    models_by_width_a: Mapping[float, nn.Module],
    models_by_width_b: Mapping[float, nn.Module],
    layers: Any,
    data: Any,
    eval_data: Any,
    *,
    methods: Sequence[str] = ("task",),
    layers_b: Sequence[str] | None = None,
    seeds: Sequence[int] | int = (0,),
    init: str = "ls",
    resize: str | None = None,
    epochs: int = 1,
    lr: float = 1e-3,
    target: str = "soft",
    batch_size: int = 128,
    train_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """Relative accuracy per layer against network width (paper Sec. 5.2, Fig. 3).

    For each width multiplier, model A of that width is stitched to model B of the same
    width at every layer (as :func:`layer_sweep`, without the baseline); the paper trains
    with the task loss from the least-squares initialisation.

    Parameters
    ----------
    models_by_width_a, models_by_width_b : mapping of width -> torch.nn.Module
        The same architecture at several widths (e.g. ``{0.5: net, 1: net, 2: net}``),
        trained from different seeds on the two sides; both must hold the same widths.
    layers, data, eval_data, methods, layers_b, seeds, init, resize, epochs, lr, target,
    batch_size, train_options, progress
        As in :func:`layer_sweep` (default ``methods=("task",)``). The layer names must
        exist in every model.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`layer_sweep` plus ``width`` (the mapping's key).

    Raises
    ------
    ValueError
        If the two mappings are empty or hold different widths, and the errors of
        :func:`layer_sweep`.
    """
    for name, mapping in (
        ("models_by_width_a", models_by_width_a),
        ("models_by_width_b", models_by_width_b),
    ):
        if not isinstance(mapping, Mapping) or not mapping:
            raise ValueError(
                f"Expected {name} to be a non-empty mapping width -> model, e.g. "
                f"{{0.5: net_half, 1: net, 2: net_double}}; got {mapping!r}."
            )
        for width, model in mapping.items():
            _check_model(model, f"{name}[{width!r}]")
    keys_a, keys_b = set(models_by_width_a), set(models_by_width_b)
    if keys_a != keys_b:
        raise ValueError(
            f"Expected the same widths on both sides, got {sorted(keys_a)} for model A and "
            f"{sorted(keys_b)} for model B. Pass one model of each width on each side."
        )
    methods = _check_methods(methods)
    pairs = _layer_pairs(layers, layers_b)
    seeds_ = _seeds(seeds)
    training = _training(epochs, lr, target, batch_size, progress, train_options)
    data, eval_data = _as_data(data, "data"), _as_data(eval_data, "eval_data")
    _require_labels(eval_data)
    rows: list[dict[str, Any]] = []
    widths = sorted(keys_a)
    for width in widths:
        _check_layers(models_by_width_a[width], models_by_width_b[width], pairs)
    for width in widths:
        _log(progress, f"width {width}")
        rows += _sweep_rows(
            models_by_width_a[width],
            models_by_width_b[width],
            pairs,
            data,
            eval_data,
            methods,
            seeds_,
            training,
            baseline=False,
            resize=resize,
            init=init,
            head={"width": width},
        )
    return _frame(
        rows,
        "width_sweep",
        "Stitching per layer against network width",
        {
            "models_a": {str(w): _describe(m) for w, m in models_by_width_a.items()},
            "models_b": {str(w): _describe(m) for w, m in models_by_width_b.items()},
            "widths": widths,
            "layers": [list(p) for p in pairs],
            "methods": methods,
            "seeds": seeds_,
            "init": init,
            "training": training.as_dict(),
            "reference": "Csiszárik et al. 2021, Sec. 5.2, Fig. 3",
        },
    )


# --------------------------------------------------------------------------- Fig. 4 / 5


def fit_r2(x: Any, y: Any) -> float:
    """R² of the transformed activations as they are: 1 - ||S(A) - B||² / ||B - mean B||².

    The paper's R²_LR of Fig. 4 (Definition 6.1 evaluated at the current stitching matrix
    instead of the least-squares one), so it falls as task-loss training leaves the LS start;
    the registry's ``lr_r2`` refits a regression and is unchanged by any invertible
    stitching layer. Rows are positions, columns channels (numpy or torch). NaN when B's
    activations are constant (the ratio is undefined).
    """
    resid = float(((x - y) ** 2).sum())
    total = float(((y - y.mean(0)) ** 2).sum())
    return 1.0 - resid / total if total > 0 else float("nan")


_LOCAL_MEASURES = {"fit_r2": fit_r2}


def _measure_names(measures: Any) -> list[Any]:
    if isinstance(measures, str) or callable(measures):
        measures = [measures]
    out = [_LOCAL_MEASURES.get(m, m) if isinstance(m, str) else m for m in measures]
    if not out:
        raise ValueError(
            "Expected at least one measure to monitor, e.g. measures=('cka', 'lr_r2'); got none."
        )
    return out


def _history_rows(result: StitchResult, head: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for entry in result.history:
        row = dict(head)
        row.update(
            layer_a=result.layer_a,
            layer_b=result.layer_b,
            width_a=int(result.matrix.shape[0]),
            width_b=int(result.matrix.shape[1]),
        )
        row.update(entry)
        row["final_relative_accuracy"] = result.relative_accuracy
        rows.append(row)
    return rows


def _label(m: Any) -> str:
    return m if isinstance(m, str) else getattr(m, "__name__", repr(m))


def similarity_during_training(
    stitched: Stitched,
    data: Any,
    eval_data: Any,
    measures: Sequence[Any] = DEFAULT_MEASURES,
    *,
    init: str = "ls",
    seeds: Sequence[int] | int = (0,),
    eval_every: int | None = None,
    monitor_samples: int = 256,
    epochs: int = 1,
    lr: float = 1e-3,
    target: str = "soft",
    batch_size: int = 128,
    train_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """Similarity indices of the stitched activations during task-loss training (Fig. 4).

    The stitching layer is trained with the task loss from the least-squares matching
    (``init="ls"``); at every evaluation step the listed measures between the transformed
    activations of A and B's activations (on a fixed batch of ``monitor_samples`` inputs,
    every position a sample) are recorded with the cross-entropy and relative accuracy on
    ``eval_data``. The paper's point: CKA and R²_LR can fall while the task performance
    rises, and CCA ignores the (invertible) stitching layer altogether.

    Parameters
    ----------
    stitched : Stitched
        From :func:`~nncompare.stitch`; trained in place (re-initialised for every seed).
    data, eval_data
        Training and labelled held-out data (see :func:`layer_sweep`).
    measures : sequence of str or callable, default ("cka", "fit_r2", "lr_r2", "cca", "svcca")
        Registry names or functions f(X, Y) (as ``monitor=`` of
        :func:`~nncompare.stitching.train`), and ``"fit_r2"`` (:func:`fit_r2`, the paper's
        R²_LR of Fig. 4: the fit of the current stitching, no refit). The registry's
        ``"lr_r2"`` refits a regression, so like ``"cca"`` it stays constant under any
        invertible stitching layer.
    init : {"ls", "identity", "random", "procrustes"}, default "ls"
    seeds : int or sequence of int, default (0,)
        One training run per seed.
    eval_every : int, optional
        Steps between evaluations (default: once per epoch, plus step 0).
    monitor_samples : int, default 256
    epochs, lr, target, batch_size, train_options, progress
        As in :func:`layer_sweep`.

    Returns
    -------
    pandas.DataFrame
        One row per (seed, evaluation step): ``seed``, ``step``, ``epoch``, ``loss``,
        ``accuracy``, ``relative_accuracy``, ``cross_entropy``, ``agreement``, one column
        per measure (named as in ``attrs["measures"]``), ``final_relative_accuracy``.
    """
    if not isinstance(stitched, Stitched):
        raise TypeError(
            f"Expected a Stitched model (from nc.stitch) as the first argument, got "
            f"{type(stitched).__name__}."
        )
    names = _measure_names(measures)
    seeds_ = _seeds(seeds)
    training = _training(
        epochs, lr, target, batch_size, progress, train_options, owned=("monitor", "eval_every")
    )
    data, eval_data = _as_data(data, "data"), _as_data(eval_data, "eval_data")
    _require_labels(eval_data)
    rows: list[dict[str, Any]] = []
    for seed in seeds_:
        _log(progress, f"training from {init}, seed {seed}")
        result = training.run(
            stitched,
            data,
            eval_data,
            init=init,
            seed=seed,
            monitor=names,
            eval_every=eval_every,
            monitor_samples=monitor_samples,
        )
        rows += _history_rows(result, {"seed": seed, "init": init})
    return _frame(
        rows,
        "similarity_during_training",
        "Similarity indices during task-loss training of the stitching layer",
        {
            "layer_a": stitched.layer_a,
            "layer_b": stitched.layer_b,
            "init": init,
            "seeds": seeds_,
            "eval_every": eval_every,
            "monitor_samples": monitor_samples,
            "training": training.as_dict(),
            "reference": "Csiszárik et al. 2021, Sec. 6.2, Fig. 4",
        },
        measures=[_label(m) for m in names],
    )


def cka_penalised_self_stitch(
    model: nn.Module,
    layer: str,
    data: Any,
    eval_data: Any,
    *,
    penalty: float | Sequence[float] = 1.0,
    measures: Sequence[Any] = ("cka",),
    eval_every: int | None = None,
    monitor_samples: int = 256,
    seed: int = 0,
    epochs: int = 1,
    lr: float = 1e-3,
    target: str = "soft",
    batch_size: int = 128,
    train_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """A model stitched with itself, trained to lower CKA while keeping its accuracy (Fig. 5).

    The stitching layer starts at the identity (the original model, relative accuracy 1)
    and is trained with cross-entropy + ``penalty`` · CKA(S(A), A) (linear CKA over the
    positions; paper Sec. 6.3): CKA falls while the accuracy holds, so a low CKA value
    does not mean the representations do different jobs.

    Parameters
    ----------
    model : torch.nn.Module
    layer : str
        The cut point (at a layer whose output feeds the rest of the model alone).
    data, eval_data
        Training and labelled held-out data (see :func:`layer_sweep`).
    penalty : float or sequence of float, default 1.0
        λ; one run per value (0 gives the unpenalised control).
    measures : sequence, default ("cka",)
        Monitored at every evaluation step (``"cka"`` is always included).
    eval_every, monitor_samples, seed, epochs, lr, target, batch_size, train_options,
    progress
        As in :func:`similarity_during_training`.

    Returns
    -------
    pandas.DataFrame
        One row per (penalty, evaluation step): ``penalty``, ``step``, ``epoch``,
        ``loss``, ``accuracy``, ``relative_accuracy``, ``cross_entropy``, ``agreement``,
        the measures, ``final_relative_accuracy``. Step 0 is the identity.
    """
    _check_model(model, "model")
    if not isinstance(layer, str):
        raise TypeError(f"Expected layer to be a layer name (str), got {layer!r}.")
    penalties = _numbers("penalty", penalty, positive=False)
    names = _measure_names(measures)
    if "cka" not in names:
        names = ["cka", *names]
    seed = _int("seed", seed, 0)
    training = _training(
        epochs,
        lr,
        target,
        batch_size,
        progress,
        train_options,
        owned=("monitor", "eval_every", "cka_penalty"),
    )
    data, eval_data = _as_data(data, "data"), _as_data(eval_data, "eval_data")
    _require_labels(eval_data)
    rows: list[dict[str, Any]] = []
    for lam in penalties:
        stitched = stitch(model, layer, model, layer)
        _log(progress, f"self-stitch at {layer}, CKA penalty {lam:g}")
        result = training.run(
            stitched,
            data,
            eval_data,
            init="identity",
            seed=seed,
            cka_penalty=lam,
            monitor=names,
            eval_every=eval_every,
            monitor_samples=monitor_samples,
        )
        rows += _history_rows(result, {"penalty": lam})
    return _frame(
        rows,
        "cka_penalised_self_stitch",
        f"Self-stitching at {layer}: cross-entropy + λ·CKA",
        {
            "model": _describe(model),
            "layer": layer,
            "penalties": penalties,
            "seed": seed,
            "eval_every": eval_every,
            "monitor_samples": monitor_samples,
            "training": training.as_dict(),
            "reference": "Csiszárik et al. 2021, Sec. 6.3, Fig. 5",
        },
        measures=[_label(m) for m in names],
    )


# --------------------------------------------------------------------------- Fig. 6 / 7


def initialisation_study(
    model_a: nn.Module,
    model_b: nn.Module,
    layer: str,
    data: Any,
    eval_data: Any,
    *,
    n_random: int = 10,
    n_ls: int = 10,
    layer_b: str | None = None,
    resize: str | None = None,
    epochs: int = 1,
    lr: float = 1e-3,
    target: str = "soft",
    batch_size: int = 128,
    train_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """Task-loss matching from many random vs least-squares initialisations (Fig. 6).

    ``n_random`` runs start from torch's default random initialisation (seeds
    0..n_random-1), ``n_ls`` from the least-squares matching (the seeds then differ only in
    the order of the training batches). The paper finds that random starts sometimes get
    stuck in poor minima while LS starts do consistently well.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
    layer : str
        The cut point in A (and in B unless ``layer_b`` is given).
    data, eval_data
        Training and labelled held-out data (see :func:`layer_sweep`).
    n_random, n_ls : int, default 10
        Runs per initialisation type (at least one run in all).
    layer_b, resize, epochs, lr, target, batch_size, train_options, progress
        As in :func:`layer_sweep`.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``init`` ("random" or "ls"), ``seed`` and the common columns.
    """
    _check_model(model_a, "model_a")
    _check_model(model_b, "model_b")
    n_random = _int("n_random", n_random, 0)
    n_ls = _int("n_ls", n_ls, 0)
    if n_random + n_ls == 0:
        raise ValueError("Expected n_random + n_ls >= 1 runs, got n_random = n_ls = 0.")
    ((layer_a, layer_b_),) = _layer_pairs([layer], None if layer_b is None else [layer_b])
    training = _training(epochs, lr, target, batch_size, progress, train_options)
    data, eval_data = _as_data(data, "data"), _as_data(eval_data, "eval_data")
    _require_labels(eval_data)
    stitched = stitch(model_a, layer_a, model_b, layer_b_, resize=resize)
    rows: list[dict[str, Any]] = []
    for init, n in (("random", n_random), ("ls", n_ls)):
        for seed in range(n):
            _log(progress, f"init {init}, seed {seed}")
            result = training.run(stitched, data, eval_data, init=init, seed=seed)
            rows.append(_row(result, {"init": init, "seed": seed}))
    return _frame(
        rows,
        "initialisation_study",
        f"Task-loss matching at {layer_a}: random vs least-squares initialisation",
        {
            "model_a": _describe(model_a),
            "model_b": _describe(model_b),
            "layer_a": layer_a,
            "layer_b": layer_b_,
            "n_random": n_random,
            "n_ls": n_ls,
            "training": training.as_dict(),
            "reference": "Csiszárik et al. 2021, Sec. 8 (Exp. 5), Fig. 6",
        },
    )


def low_rank_study(
    model_a: nn.Module,
    model_b: nn.Module,
    layers: Any,
    data: Any,
    eval_data: Any,
    *,
    ranks: Sequence[int] = (4, 8, 16),
    layers_b: Sequence[str] | None = None,
    baseline: bool = True,
    seed: int = 0,
    resize: str | None = None,
    epochs: int = 1,
    lr: float = 1e-3,
    target: str = "soft",
    batch_size: int = 128,
    train_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """Reduced-rank least squares vs bottleneck task-loss matching (paper Sec. 7, Fig. 7).

    For every layer and rank k: the reduced-rank regression M_LS V_k V_kᵀ
    (``method="rrr"``, ``matching="direct"``) and a rank-k bottleneck stitching layer
    (``kind="lowrank"``) trained with the task loss from its reduced-rank LS start
    (``method="task"``, ``matching="task"``). The paper finds the task loss clearly ahead at
    a fixed rank: the directions of most variance are not those the task needs.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
    layers : str, list of str or list of (str, str)
        As in :func:`layer_sweep`.
    data, eval_data
        Training and labelled held-out data.
    ranks : sequence of int, default (4, 8, 16)
        A rank above the smaller width of a layer pair is skipped with the reason.
    layers_b : list of str, optional
    baseline : bool, default True
        Add the full-rank references per layer: least squares (``method="ls"``) and
        task-loss matching with a full linear layer, with ``full_rank=True`` and
        ``rank`` the smaller width.
    seed : int, default 0
        Seed of the task-loss runs.
    resize, epochs, lr, target, batch_size, train_options, progress
        As in :func:`layer_sweep`.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, rank, matching): ``position``, ``matching`` ("direct" or
        "task"), ``rank``, ``full_rank`` and the common columns.
    """
    _check_model(model_a, "model_a")
    _check_model(model_b, "model_b")
    if isinstance(ranks, int | np.integer):
        ranks = [int(ranks)]
    ranks_ = sorted(dict.fromkeys(_int("every rank", k, 1) for k in ranks))
    if not ranks_:
        raise ValueError("Expected at least one rank, e.g. ranks=(4, 8, 16); got none.")
    pairs = _layer_pairs(layers, layers_b)
    seed = _int("seed", seed, 0)
    training = _training(epochs, lr, target, batch_size, progress, train_options)
    data, eval_data = _as_data(data, "data"), _as_data(eval_data, "eval_data")
    _require_labels(eval_data)
    _check_layers(model_a, model_b, pairs)
    rows: list[dict[str, Any]] = []
    for position, (layer_a, layer_b) in enumerate(pairs):
        full = _build(stitch(model_a, layer_a, model_b, layer_b, resize=resize), data)
        c_a, c_b = full.widths
        top = min(c_a, c_b)
        for k in ranks_:
            head = {"position": position, "full_rank": k == top}
            if k > top:
                reason = f"rank {k} exceeds the smaller width min(C_a, C_b) = {top}"
                for matching, method in (("direct", "rrr"), ("task", "task")):
                    rows.append(
                        _skipped(
                            {**head, "matching": matching},
                            layer_a,
                            layer_b,
                            method,
                            reason,
                            rank=k,
                            kind="linear" if method == "rrr" else "lowrank",
                        )
                    )
                continue
            _log(progress, f"rank {k} at {layer_a} -> {layer_b}")
            result = _direct(full, data, eval_data, "rrr", training.batch_size, rank=k)
            rows.append(_row(result, {**head, "matching": "direct"}))
            bottleneck = stitch(
                model_a, layer_a, model_b, layer_b, kind="lowrank", rank=k, resize=resize
            )
            result = training.run(bottleneck, data, eval_data, init="ls", seed=seed)
            rows.append(_row(result, {**head, "matching": "task"}))
        if baseline:
            head = {"position": position, "full_rank": True}
            result = _direct(full, data, eval_data, "ls", training.batch_size)
            rows.append(_row(result, {**head, "matching": "direct"}) | {"rank": top})
            result = training.run(full, data, eval_data, init="ls", seed=seed)
            rows.append(_row(result, {**head, "matching": "task"}) | {"rank": top})
    return _frame(
        rows,
        "low_rank_study",
        "Low-rank stitching: reduced-rank least squares vs bottleneck task loss",
        {
            "model_a": _describe(model_a),
            "model_b": _describe(model_b),
            "layers": [list(p) for p in pairs],
            "ranks": ranks_,
            "seed": seed,
            "training": training.as_dict(),
            "reference": "Csiszárik et al. 2021, Sec. 7, Fig. 7",
        },
    )


# --------------------------------------------------------------------------- Exp. 6 / Fig. 8


def mode_connectivity(
    model_a: nn.Module,
    model_b: nn.Module,
    layer: str,
    data: Any,
    eval_data: Any,
    *,
    n_solutions: int = 4,
    lambdas: Sequence[float] | int = 11,
    min_relative_accuracy: float = 0.8,
    init: str = "random",
    layer_b: str | None = None,
    resize: str | None = None,
    epochs: int = 1,
    lr: float = 1e-3,
    target: str = "soft",
    batch_size: int = 128,
    train_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """Linear mode connectivity of task-loss stitching solutions (paper Sec. 8, Exp. 6).

    ``n_solutions`` stitching layers are trained with the task loss from seeds
    0..n_solutions-1 (``init="random"``, the paper's setting); those reaching
    ``min_relative_accuracy`` are kept, and for every pair (M₁, b₁), (M₂, b₂) of kept
    solutions the stitched network with M_λ = λM₁ + (1-λ)M₂ (and b_λ likewise) is evaluated
    for each λ. λ = 1 is solution 1 itself, λ = 0 solution 2; a dip in between is a barrier
    between the two solutions.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
    layer : str
    data, eval_data
        Training and labelled held-out data (see :func:`layer_sweep`).
    n_solutions : int, default 4
        At least 2.
    lambdas : sequence of float in [0, 1], or int, default 11
        The λ values, or how many evenly spaced ones from 0 to 1.
    min_relative_accuracy : float, default 0.8
        Solutions below it are left out (listed in ``attrs["solutions"]`` with
        ``kept=False``). With fewer than two kept, a
        :class:`StitchingExperimentWarning` is issued and the frame has no rows.
    init : {"random", "ls", "identity", "procrustes"}, default "random"
    layer_b, resize, epochs, lr, target, batch_size, train_options, progress
        As in :func:`layer_sweep`.

    Returns
    -------
    pandas.DataFrame
        One row per (pair, λ): ``pair`` (index), ``seed_1``, ``seed_2``, ``lambda``,
        ``relative_accuracy_1``/``relative_accuracy_2`` (the two solutions' own), and the
        common columns of the interpolated layer (``method="interpolated"``).
        ``attrs["solutions"]``: seed, relative accuracy and ``kept`` of every solution.
    """
    _check_model(model_a, "model_a")
    _check_model(model_b, "model_b")
    n_solutions = _int("n_solutions", n_solutions, 2)
    if isinstance(lambdas, int | np.integer) and not isinstance(lambdas, bool):
        lambdas_ = [float(v) for v in np.linspace(0.0, 1.0, _int("lambdas", lambdas, 2))]
    else:
        lambdas_ = _numbers("lambdas", lambdas, positive=False)
        if any(v > 1 for v in lambdas_):
            raise ValueError(
                f"Expected every lambda in [0, 1] (M_λ = λM₁ + (1-λ)M₂ is a convex "
                f"combination), got {lambdas!r}."
            )
    threshold = _numbers("min_relative_accuracy", min_relative_accuracy, positive=False)[0]
    ((layer_a, layer_b_),) = _layer_pairs([layer], None if layer_b is None else [layer_b])
    training = _training(epochs, lr, target, batch_size, progress, train_options)
    data, eval_data = _as_data(data, "data"), _as_data(eval_data, "eval_data")
    _require_labels(eval_data)
    stitched = stitch(model_a, layer_a, model_b, layer_b_, resize=resize)
    solutions: list[dict[str, Any]] = []
    kept: list[tuple[int, np.ndarray, np.ndarray, float]] = []
    for seed in range(n_solutions):
        _log(progress, f"solution {seed} (init {init})")
        result = training.run(stitched, data, eval_data, init=init, seed=seed)
        ok = result.relative_accuracy is not None and result.relative_accuracy >= threshold
        solutions.append(
            {"seed": seed, "relative_accuracy": result.relative_accuracy, "kept": bool(ok)}
        )
        if ok:
            kept.append((seed, result.matrix, result.bias, float(result.relative_accuracy)))
    if len(kept) < 2:
        warnings.warn(
            f"Only {len(kept)} of the {n_solutions} task-loss solutions at {layer_a!r} reached "
            f"relative accuracy {threshold:g} (got "
            f"{', '.join(_fmt(s['relative_accuracy']) for s in solutions)}), so there is "
            "no pair to interpolate. Train longer (epochs=, lr=), start from init='ls', or "
            "lower min_relative_accuracy.",
            StitchingExperimentWarning,
            stacklevel=2,
        )
    rows: list[dict[str, Any]] = []
    eval_bs = max(batch_size, 256)
    for pair, ((s1, m1, b1, r1), (s2, m2, b2, r2)) in enumerate(itertools.combinations(kept, 2)):
        for lam in lambdas_:
            stitched.set_matrix(lam * m1 + (1 - lam) * m2, lam * b1 + (1 - lam) * b2)
            stitched.method = "interpolated"
            ev = evaluate(stitched, eval_data, batch_size=eval_bs)
            head = {
                "pair": pair,
                "seed_1": s1,
                "seed_2": s2,
                "lambda": lam,
                "relative_accuracy_1": r1,
                "relative_accuracy_2": r2,
            }
            rows.append(_row(ev, head))
    columns = ["pair", "seed_1", "seed_2", "lambda", "relative_accuracy_1", "relative_accuracy_2"]
    df = _frame(
        rows,
        "mode_connectivity",
        f"Linear mode connectivity of stitching matrices at {layer_a}",
        {
            "model_a": _describe(model_a),
            "model_b": _describe(model_b),
            "layer_a": layer_a,
            "layer_b": layer_b_,
            "n_solutions": n_solutions,
            "lambdas": lambdas_,
            "min_relative_accuracy": threshold,
            "init": init,
            "training": training.as_dict(),
            "reference": "Csiszárik et al. 2021, Sec. 8 (Exp. 6)",
        },
        solutions=solutions,
    )
    if not rows:
        for col in [*columns, "layer_a", "layer_b", "method", *_METRICS, "skipped"]:
            df[col] = []
    return df


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _thresholded(stitched: Stitched, threshold: float) -> float:
    """Set the entries of |M| below ``threshold`` to zero; return the share of zeros."""
    M = stitched.matrix.copy()
    M[np.abs(M) < threshold] = 0.0
    stitched.set_matrix(M, stitched.bias)
    return float(np.mean(M == 0.0))


def sparsity_study(
    model_a: nn.Module,
    model_b: nn.Module,
    layer: str,
    data: Any,
    eval_data: Any,
    *,
    alphas_lasso: Sequence[float] = (1e-3, 1e-2, 3e-2, 1e-1),
    l1_task: Sequence[float] = (1.0, 10.0, 30.0),
    threshold: float = 1e-4,
    anneal: Sequence[float] = (0.1, 0.01, 0.001),
    baseline: bool = True,
    seed: int = 0,
    layer_b: str | None = None,
    resize: str | None = None,
    epochs: int = 1,
    lr: float = 1e-3,
    target: str = "soft",
    batch_size: int = 128,
    train_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """Relative accuracy against sparsity: lasso vs L1 task-loss matching (Sec. 8, Fig. 8).

    Direct matching with the lasso (eq. 3, one fit per ``alphas_lasso`` value, on
    scikit-learn's scale) and task-loss matching with the penalty ``l1 · mean|M|`` (one run
    per ``l1_task`` value, from the LS start) give stitching matrices whose entries below
    ``threshold`` are then set to zero; the stitched network is evaluated with the
    thresholded matrix. Sparsity is the share of zero entries. The paper finds direct
    matching collapsing at 80-90% sparsity while the task loss still finds good matchings.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
    layer : str
    data, eval_data
        Training and labelled held-out data (see :func:`layer_sweep`).
    alphas_lasso : sequence of float > 0
        Lasso penalties (may be empty).
    l1_task : sequence of float > 0
        Weights λ of the task loss's L1 term λ·mean|M| (may be empty). The mean runs over
        all C_a·C_b entries, so useful values are about 1 to 100.
    threshold : float, default 1e-4
        Entries with ``|m| < threshold`` are set to zero (the paper's 1e-4).
    anneal : sequence of float in (0, 1), default (0.1, 0.01, 0.001)
        After each task-loss run, one more epoch per factor at ``lr`` times the factor
        (same loss, from the trained layer). Adam's steps are about ``lr`` in size, so the
        entries the L1 term drives to zero keep jumping around it by about ``lr`` and never
        fall below a 1e-4 threshold; the smaller steps let them settle. ``()``: none.
    baseline : bool, default True
        Add the unregularised references with ``penalty=0``: least squares (direct) and
        task-loss matching without L1 (thresholded the same way).
    seed : int, default 0
        Seed of the task-loss runs.
    layer_b, resize, epochs, lr, target, batch_size, train_options, progress
        As in :func:`layer_sweep`.

    Returns
    -------
    pandas.DataFrame
        One row per matrix: ``matching`` ("direct" or "task"), ``penalty`` (alpha or l1),
        ``threshold``, ``sparsity`` (after thresholding) and the common columns.
        ``attrs["matrices"]``: for each row (same order), a dict with ``matching``,
        ``penalty``, ``sparsity``, ``relative_accuracy`` and ``matrix`` (the thresholded
        (C_a, C_b) matrix as nested lists; ``numpy.asarray`` gives it back).
    """
    _check_model(model_a, "model_a")
    _check_model(model_b, "model_b")
    alphas = _numbers("alphas_lasso", alphas_lasso, positive=True, allow_empty=True)
    l1s = _numbers("l1_task", l1_task, positive=True, allow_empty=True)
    if not alphas and not l1s and not baseline:
        raise ValueError(
            "Expected something to measure: alphas_lasso and l1_task are both empty and "
            "baseline=False."
        )
    thr = _numbers("threshold", threshold, positive=False)[0]
    factors = _numbers("anneal", anneal, positive=True, allow_empty=True)
    if any(f >= 1 for f in factors):
        raise ValueError(
            f"Expected every anneal factor in (0, 1) (each stage trains at lr times the "
            f"factor), got {anneal!r}. Pass anneal=() for no annealing."
        )
    seed = _int("seed", seed, 0)
    ((layer_a, layer_b_),) = _layer_pairs([layer], None if layer_b is None else [layer_b])
    training = _training(epochs, lr, target, batch_size, progress, train_options, owned=("l1",))
    data, eval_data = _as_data(data, "data"), _as_data(eval_data, "eval_data")
    _require_labels(eval_data)
    stitched = _build(stitch(model_a, layer_a, model_b, layer_b_, resize=resize), data)
    eval_bs = max(batch_size, 256)
    rows: list[dict[str, Any]] = []
    matrices: list[dict[str, Any]] = []

    def measure(result: StitchResult, matching: str, penalty: float) -> None:
        sparsity = _thresholded(stitched, thr)
        result = _with_eval(result, evaluate(stitched, eval_data, batch_size=eval_bs))
        result = dataclasses.replace(result, matrix=stitched.matrix, bias=stitched.bias)
        row = _row(result, {"matching": matching, "penalty": penalty, "threshold": thr})
        row["sparsity"] = sparsity
        rows.append(row)
        matrices.append(
            {
                "matching": matching,
                "penalty": penalty,
                "sparsity": sparsity,
                "relative_accuracy": result.relative_accuracy,
                "matrix": stitched.matrix.tolist(),
            }
        )

    if baseline:
        _log(progress, "least squares (no penalty)")
        measure(fit(stitched, data, "ls"), "direct", 0.0)
    for alpha in alphas:
        _log(progress, f"lasso alpha={alpha:g}")
        measure(fit(stitched, data, "lasso", alpha=alpha), "direct", alpha)

    def task(l1: float) -> StitchResult:
        result = training.run(stitched, data, None, init="ls", seed=seed, l1=l1)
        for factor in factors:  # continue from the layer as it is, at a smaller step
            stage = dataclasses.replace(training, lr=training.lr * factor, epochs=1)
            stage.run(stitched, data, None, init=None, seed=seed, l1=l1)
        options = {**result.options, "anneal": factors}
        return dataclasses.replace(result, options=options)

    for l1 in ([0.0] if baseline else []) + l1s:
        _log(progress, f"task loss l1={l1:g}")
        measure(task(l1), "task", l1)
    return _frame(
        rows,
        "sparsity_study",
        f"Sparse stitching at {layer_a}: lasso vs L1 task loss",
        {
            "model_a": _describe(model_a),
            "model_b": _describe(model_b),
            "layer_a": layer_a,
            "layer_b": layer_b_,
            "alphas_lasso": alphas,
            "l1_task": l1s,
            "anneal": factors,
            "threshold": thr,
            "seed": seed,
            "training": training.as_dict(),
            "reference": "Csiszárik et al. 2021, Sec. 8 (Exp. 7), Fig. 8",
        },
        matrices=matrices,
    )
