"""The experiments of Imani, Hu & White (Sections 4, 5 and 7) at CPU scale, as library functions.

Each function runs one of the paper's experiments on the data it is given (it never
downloads anything) and returns a tidy :class:`pandas.DataFrame` of alignment-curve points,
one row per (representation, label vector, threshold τ), with the options as columns.
``df.attrs`` holds plain, JSON-ready data only: ``experiment`` (the function's name),
``title``, ``provenance`` (versions, time, the options), ``spectra`` (one entry per curve:
its key columns, the singular values σᵢ and the squared projections (uᵢᵀy)² summed over
the label vectors) and, where an experiment keeps more, its extras (training accuracy,
warnings as ``notes``). :func:`summarize` turns any of these frames into one row per curve
with scalar summaries.

=============================  =========  ==============================================
function                       paper      what it measures
=============================  =========  ==============================================
:func:`circle_example`         Fig. 4     two clusters on the unit circle, labelled along
                                          v₁ or along v₂: σ₁, σ₂ and both curves
:func:`shuffled_labels`        Fig. 2     MNIST-style images: raw inputs with true and
                                          shuffled labels, an MLP's last hidden layer
                                          before/after training on the shuffled labels
:func:`training_and_depth`     Figs. 6-7  every hidden layer of an MLP before and after
                                          training (``nncompare.training``), over seeds
:func:`pretrained_vs_random`   Fig. 13    the last hidden layer of a pretrained CIFAR
                                          ResNet against a randomly initialised one
:func:`peaks_benchmark`        Fig. 10    the peaks transfer experiment over seeds, with
                                          the positive/negative transfer summary
=============================  =========  ==============================================

Common columns: ``representation`` (``"input"`` for the original features, else the
checkpoint: ``"init"``, ``"trained"``, ``"random"``, ``"pretrained"``), ``layer``, ``labels``
(which labeling), ``label`` (the label vector, ``"sum"`` over several), ``tau``,
``alignment``, ``rank``, ``n_features``, ``n_samples``, ``sigma_max`` and, for experiments
over seeds, ``seed``. Every representation's rows are scaled to unit length (the paper's
normalisation; :func:`nncompare.alignment.prepare`), so Σᵢ σᵢ² = n for every layer and the
singular values of different layers are on one scale.

Examples
--------
>>> from nncompare.alignment import experiments
>>> df = experiments.circle_example()
>>> s = experiments.summarize(df)
>>> bool(s.set_index("labels").loc["along v1", "top1"] > 0.99)
True

References
----------
Imani, E., Hu, W. & White, M. (2022). Representation alignment in neural networks.
Transactions on Machine Learning Research.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nncompare.alignment import peaks
from nncompare.alignment._core import curve
from nncompare.alignment._layers import layer_alignment

__all__ = [
    "EXPERIMENTS",
    "before_after",
    "circle_example",
    "peaks_benchmark",
    "pretrained_vs_random",
    "shuffled_labels",
    "summarize",
    "training_and_depth",
]

EXPERIMENTS = (
    "circle_example",
    "shuffled_labels",
    "training_and_depth",
    "pretrained_vs_random",
    "peaks_benchmark",
)
#: the columns that identify one curve of a frame (those present are used)
KEY_COLUMNS = ("seed", "labels", "representation", "layer", "label")


# --------------------------------------------------------------------------- helpers
def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _frame(
    frames: list[Any],
    experiment: str,
    title: str,
    options: Mapping[str, Any],
    spectra: list[dict[str, Any]],
    notes: Iterable[str] = (),
    **extra: Any,
) -> Any:
    import pandas as pd

    from nncompare.analyses.engine import provenance

    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df.attrs = {
        "experiment": experiment,
        "title": title,
        "provenance": provenance({"experiment": experiment, **_plain(dict(options))}),
        "spectra": _plain(spectra),
        "notes": sorted(set(notes)),
        **{k: _plain(v) for k, v in extra.items()},
    }
    return df


def _notes(caught: list[Any]) -> list[str]:
    return [" ".join(str(w.message).split()) for w in caught]


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _seeds(seeds: Any) -> list[int]:
    out = [seeds] if isinstance(seeds, int | np.integer) else list(seeds)
    if not out:
        raise ValueError("seeds must name at least one seed, e.g. seeds=(0, 1, 2).")
    return [_int("each seed", s, 0) for s in out]


def _curve_frame(c: Any, **key: Any) -> Any:
    """One :class:`~nncompare.alignment.AlignmentCurve` as rows with the common columns."""
    df = c.to_frame("curve")
    s = np.asarray(c.singular_values)
    for k, v in key.items():
        df[k] = v
    df["rank"] = c.rank
    df["n_features"] = c.n_features
    df["n_samples"] = c.n_samples
    df["sigma_max"] = float(s[0]) if len(s) else 0.0
    return df


def _spectrum(c: Any, **key: Any) -> dict[str, Any]:
    return {
        **key,
        "n_samples": int(c.n_samples),
        "singular_values": np.asarray(c.singular_values).tolist(),
        "projections": np.asarray(c.projections).sum(axis=1).tolist(),
    }


def _layer_frames(df: Any, **key: Any) -> tuple[Any, list[dict[str, Any]]]:
    """A :func:`layer_alignment` frame in the common columns, and its flat spectra."""
    out = df.rename(columns={"checkpoint": "representation"}).copy()
    out.attrs = {}
    out.loc[out["layer"] == "input", "representation"] = "input"
    out = out.drop_duplicates(subset=["representation", "layer", "label", "tau"])
    for k, v in key.items():
        out[k] = v
    spectra = []
    first = True
    for ck, layers in df.attrs["spectra"].items():
        for layer, sp in layers.items():
            if layer == "input" and not first:
                continue
            spectra.append(
                {
                    **key,
                    "representation": "input" if layer == "input" else ck,
                    "layer": layer,
                    "n_samples": int(df.attrs["n_samples"]),
                    "singular_values": list(sp["singular_values"]),
                    "projections": np.asarray(sp["projections"]).sum(axis=1).tolist()
                    if len(sp["projections"])
                    else [],
                }
            )
        first = False
    return out, spectra


def _as_xy(data: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) from a pair, an object with ``.x``/``.y``, or an ``.npz`` path."""
    import os

    if isinstance(data, str | os.PathLike):
        with np.load(data, allow_pickle=False) as f:
            keys = list(f.files)
            xk = next((k for k in ("x_train", "x") if k in keys), None)
            yk = next((k for k in ("y_train", "y") if k in keys), None)
            if xk is None or yk is None:
                raise ValueError(
                    f"{name}: expected arrays 'x' and 'y' (or 'x_train' and 'y_train') in "
                    f"{os.fspath(data)!r}; it holds {keys}."
                )
            return np.asarray(f[xk]), np.asarray(f[yk])
    if hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    elif isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
    else:
        raise TypeError(
            f"{name} must be (inputs, labels), an object with .x and .y (e.g. "
            f"nc.data.load_digits()) or the path of an .npz file; got {type(data).__name__}."
        )
    to = getattr(x, "numpy", None)
    x = np.asarray(x.detach().cpu().numpy() if to is not None else x)
    y = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    if len(x) != len(y):
        raise ValueError(
            f"{name}: expected one label per input; got {len(x)} inputs and {len(y)} labels."
        )
    return x, y


def _pick_classes(
    x: np.ndarray, y: np.ndarray, classes: Sequence[Any], n_per_class: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The samples of two classes (``n_per_class`` of each, drawn without replacement)."""
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"classes must name two different classes; got {tuple(classes)!r}.")
    rng = np.random.default_rng(seed)
    idx = []
    for c in classes:
        where = np.flatnonzero(y == c)
        if len(where) == 0:
            present = ", ".join(str(v) for v in np.unique(y)[:20])
            raise ValueError(f"class {c!r} has no samples; the labels hold {present}.")
        if n_per_class is not None:
            if len(where) < n_per_class:
                raise ValueError(
                    f"class {c!r} has {len(where)} samples, fewer than n_per_class="
                    f"{n_per_class}; lower n_per_class."
                )
            where = np.sort(rng.choice(where, n_per_class, replace=False))
        idx.append(where)
    order = np.concatenate(idx)
    return x[order], (y[order] == classes[1]).astype(np.int64)


def _float_inputs(x: np.ndarray) -> Any:
    import torch

    t = torch.as_tensor(np.ascontiguousarray(x))
    return t.to(torch.float32) / 255.0 if t.dtype == torch.uint8 else t.to(torch.float32)


# --------------------------------------------------------------------------- summaries
def summarize(df: Any, top: int = 10) -> Any:
    """One row per curve of an experiment's frame, with scalar summaries of its spectrum.

    Parameters
    ----------
    df : pandas.DataFrame
        A frame of this module (its ``attrs["spectra"]``), or one of
        :func:`nncompare.alignment.layer_alignment` (then ``representation`` is the
        checkpoint, ``"input"`` for the inputs).
    top : int, default 10
        Number of leading singular directions for ``top``.

    Returns
    -------
    pandas.DataFrame
        The key columns of each curve and ``rank``, ``sigma_max``, ``total`` (the alignment at
        τ = 0, ‖P_Φ y‖² summed over the label vectors), ``top1`` and ``top`` (the share of
        ``total`` on the first and the first ``top`` singular directions) and
        ``mean_sigma`` (Σᵢ σᵢ (uᵢᵀy)² / Σᵢ (uᵢᵀy)², the label-weighted mean singular value,
        which is the area under the alignment curve divided by its value at τ = 0). Larger
        ``mean_sigma`` and ``top`` mean labels concentrated on the top singular directions:
        better alignment. ``mean_sigma_rel`` is ``mean_sigma / sqrt(n_samples)`` (unit rows
        give Σσᵢ² = n, so it lies in [0, 1]).
    """
    import pandas as pd

    spectra = getattr(df, "attrs", {}).get("spectra")
    if isinstance(spectra, Mapping) and df.attrs.get("experiment") == "layer_alignment":
        spectra = _layer_frames(df)[1]
    if not isinstance(spectra, list):
        raise TypeError(
            "summarize expects a frame of nncompare.alignment.experiments (with "
            f"attrs['spectra']); got {type(df).__name__} without them."
        )
    top = _int("top", top, 1)
    rows = []
    for sp in spectra:
        s = np.asarray(sp["singular_values"], dtype=float)
        p = np.asarray(sp["projections"], dtype=float)
        total = float(p.sum())
        key = {k: v for k, v in sp.items() if k not in ("singular_values", "projections")}
        ms = float((s * p).sum() / total) if total > 0 else math.nan
        rows.append(
            {
                **key,
                "rank": len(s),
                "sigma_max": float(s[0]) if len(s) else 0.0,
                "total": total,
                "top1": float(p[:1].sum() / total) if total > 0 else math.nan,
                "top": float(p[:top].sum() / total) if total > 0 else math.nan,
                "mean_sigma": ms,
                "mean_sigma_rel": ms / math.sqrt(sp["n_samples"]) if sp.get("n_samples") else None,
            }
        )
    out = pd.DataFrame(rows)
    out.attrs = {"experiment": df.attrs.get("experiment"), "top": top}
    return out


# --------------------------------------------------------------------------- Fig. 4
def circle_example(n: int = 1000, *, spread: float = 0.29, seed: int = 0, taus: Any = None) -> Any:
    """The illustrative example of Fig. 4: unit vectors in two clusters, two labelings.

    Half of ``n`` points have angles drawn around π/4, the other half around −3π/4 (normal,
    standard deviation ``spread`` radians), on the unit circle. The clusters lie along the
    first right singular vector v₁ (σ₁ large) and spread along v₂ (σ₂ small). Labeling
    ``"along v1"`` separates the two clusters (the label vector lies along u₁);
    ``"along v2"`` separates the points by the side of the line through the clusters (the
    label vector lies along u₂). Both are linearly separable, but only the first is aligned.

    Parameters
    ----------
    n : int, default 1000
        Number of points (even).
    spread : float, default 0.29
        Angular standard deviation; 0.29 gives σ₂/σ₁ ≈ 0.297, the ratio of the paper's
        σ₁ = 9.58 and σ₂ = 2.84. (With n unit rows σ₁² + σ₂² = n, so 1000 points give
        σ ≈ 30.3 and 9.0; the paper's values are these divided by √10.)
    seed : int, default 0
    taus : thresholds, optional (default: 0 and each singular value)

    Returns
    -------
    pandas.DataFrame
        The common columns with ``labels`` in {"along v1", "along v2"}; ``attrs["sigma"]``
        is [σ₁, σ₂].
    """
    n = _int("n", n, 4)
    if n % 2:
        raise ValueError(f"n must be even (two clusters of n/2 points); got {n}.")
    if not (isinstance(spread, int | float) and 0 < spread < math.pi / 2):
        raise ValueError(f"spread must be an angle in (0, pi/2) radians; got {spread!r}.")
    rng = np.random.default_rng(seed)
    h = n // 2
    angle = np.concatenate(
        [rng.normal(math.pi / 4, spread, h), rng.normal(-3 * math.pi / 4, spread, h)]
    )
    X = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    across = X @ np.array([math.cos(3 * math.pi / 4), math.sin(3 * math.pi / 4)])
    labelings = {
        "along v1": np.r_[np.ones(h), np.zeros(h)].astype(np.int64),
        "along v2": (across > 0).astype(np.int64),
    }
    frames, spectra = [], []
    sigma: list[float] = []
    for name, y in labelings.items():
        c = curve(X, y, taus, normalize="rows", kind="classes")
        key = {"labels": name, "representation": "input", "layer": "circle"}
        frames.append(_curve_frame(c, **key))
        spectra.append(_spectrum(c, **key))
        sigma = np.asarray(c.singular_values).tolist()
    return _frame(
        frames,
        "circle_example",
        "Two clusters on the unit circle, labelled along v1 or along v2 (Fig. 4)",
        {"n": n, "spread": spread, "seed": seed},
        spectra,
        sigma=sigma,
    )


# --------------------------------------------------------------------------- Fig. 2
def shuffled_labels(
    data: Any,
    *,
    classes: Sequence[Any] = (0, 1),
    n_per_class: int = 500,
    hidden: Sequence[int] = (256, 256, 256),
    epochs: int = 60,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    taus: Any = None,
) -> Any:
    """Fig. 2: true vs shuffled labels on raw inputs; alignment emerging with training.

    ``n_per_class`` images of each of two ``classes`` are drawn from ``data``; their labels
    are shuffled once. An MLP with three ReLU hidden layers (``hidden``) is trained on the
    *shuffled* labels with Adam (``batch_size``, ``lr``) by :func:`nncompare.training.train`.
    Curves: the raw inputs (flattened, uint8 scaled to [0, 1]) and the last hidden layer at
    initialisation and after training, each with the true and with the shuffled labels.

    Parameters
    ----------
    data : (x, y), object with .x and .y, or the path of an .npz
        Images and integer labels (``x_train``/``y_train`` or ``x``/``y`` in an .npz, such as
        the MNIST file of the shared data).
    classes : two class labels, default (0, 1)
    n_per_class : int, default 500
    hidden : widths of the three hidden layers, default (256, 256, 256)
        The paper uses the input width (784) and 10000 images trained for 1000 epochs; this
        CPU-scale default memorises 1000 shuffled labels in 60 epochs.
    epochs, lr, batch_size, seed : training options

    Returns
    -------
    pandas.DataFrame
        The common columns with ``labels`` in {"true", "shuffled"} and ``representation`` in
        {"input", "init", "trained"}; ``attrs["train_accuracy"]`` on the shuffled labels.
    """
    import torch

    from nncompare.workbench.models import MLP
    from nncompare.workbench.training import train

    x, y = _as_xy(data, "data")
    x, y01 = _pick_classes(x, y, classes, _int("n_per_class", n_per_class, 2), seed)
    xt = _float_inputs(x)
    shuffled = np.random.default_rng([seed, 7]).permutation(y01)
    widths = tuple(_int("each hidden width", w, 1) for w in hidden)
    if len(widths) < 1:
        raise ValueError("hidden must list at least one width, e.g. (256, 256, 256).")
    torch.manual_seed(seed)
    net = MLP(int(np.prod(xt.shape[1:])), widths, 2)
    init = copy.deepcopy(net.state_dict())
    res = train(
        net,
        (xt, torch.as_tensor(shuffled)),
        epochs=_int("epochs", epochs, 1),
        lr=lr,
        seed=seed,
        batch_size=batch_size,
        optimizer="adam",
    )
    last = f"{net.activation}{len(widths)}"
    frames, spectra, notes = [], [], []
    for name, labels in (("true", y01), ("shuffled", shuffled)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = layer_alignment(
                net, xt, labels, [last], {"init": init, "trained": net.state_dict()},
                taus=taus, kind="classes",
            )  # fmt: skip
        notes += _notes(caught)
        f, s = _layer_frames(df, labels=name)
        frames.append(f)
        spectra += s
    return _frame(
        frames,
        "shuffled_labels",
        f"Classes {classes[0]} and {classes[1]}: raw inputs and an MLP trained on shuffled labels",
        {
            "classes": list(classes),
            "n_per_class": n_per_class,
            "hidden": list(widths),
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "optimizer": "adam",
            "seed": seed,
        },
        spectra,
        notes,
        train_accuracy=float(res.final_accuracy),
        layer=last,
    )


# --------------------------------------------------------------------------- Figs. 6-7
def training_and_depth(
    data: Any = None,
    *,
    classes: Sequence[Any] | None = (3, 8),
    hidden: Sequence[int] = (128, 128, 128),
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 64,
    seeds: Iterable[int] | int = (0, 1, 2),
    taus: Any = None,
) -> Any:
    """Figs. 6 and 7: every hidden layer of an MLP before and after training, over seeds.

    Each seed initialises an MLP (``hidden`` ReLU layers), trains it with Adam on ``data``
    (:func:`nncompare.training.train`) and measures every hidden layer (and the inputs) at
    initialisation and after training on the training data, as the paper does.

    Parameters
    ----------
    data : (x, y), object with .x and .y, or the path of an .npz, optional
        Default: the scikit-learn digits training split (:func:`nncompare.data.load_digits`).
    classes : two class labels or None, default (3, 8)
        A two-class task (±1 labels, as in the paper); None keeps every class (one-vs-rest
        label vectors, summed; their constant part lies along the mean direction of the
        non-negative ReLU features, which blurs the comparison).
    hidden : widths, default (128, 128, 128) (the paper's three hidden layers of 128)
    epochs, lr, batch_size : Adam training options (the paper: batch 64, until convergence)
    seeds : seeds of the runs, default (0, 1, 2) (the paper averages 5)

    Returns
    -------
    pandas.DataFrame
        The common columns with ``seed``; ``representation`` in {"input", "init",
        "trained"}; ``layer`` "input", "relu1", ...; ``attrs["train_accuracy"]`` per seed.
    """
    import torch

    from nncompare.workbench.models import MLP
    from nncompare.workbench.training import train

    if data is None:
        from nncompare.workbench.data import load_digits

        data = load_digits("train")
    x, y = _as_xy(data, "data")
    if classes is not None:
        x, y = _pick_classes(x, y, classes, None, 0)
    xt = _float_inputs(x)
    yt = torch.as_tensor(y.astype(np.int64))
    k = int(yt.max()) + 1
    widths = tuple(_int("each hidden width", w, 1) for w in hidden)
    frames, spectra, notes, acc = [], [], [], {}
    for seed in _seeds(seeds):
        torch.manual_seed(seed)
        net = MLP(int(np.prod(xt.shape[1:])), widths, k)
        init = copy.deepcopy(net.state_dict())
        res = train(net, (xt, yt), epochs=_int("epochs", epochs, 1), lr=lr, seed=seed,
                    batch_size=batch_size, optimizer="adam")  # fmt: skip
        acc[str(seed)] = float(res.final_accuracy)
        layers = [f"{net.activation}{i + 1}" for i in range(len(widths))]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = layer_alignment(net, xt, y, layers, {"init": init, "trained": net.state_dict()},
                                 taus=taus, kind="classes")  # fmt: skip
        notes += _notes(caught)
        f, s = _layer_frames(df, seed=seed)
        frames.append(f)
        spectra += s
    what = "all classes" if classes is None else f"classes {classes[0]} vs {classes[1]}"
    return _frame(
        frames,
        "training_and_depth",
        f"Hidden layers of an MLP before and after training ({what})",
        {
            "classes": None if classes is None else list(classes),
            "hidden": list(widths),
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "optimizer": "adam",
            "seeds": _seeds(seeds),
            "n_samples": len(x),
        },
        spectra,
        notes,
        train_accuracy=acc,
    )


def before_after(
    model: Any,
    initial: Mapping[str, Any],
    data: Any,
    layers: Sequence[str] | None = None,
    *,
    onehot: bool = True,
    batch_size: int = 256,
) -> Any:
    """Every chosen layer of a trained classifier before and after training (Figs. 6-7).

    The curves of :func:`nncompare.alignment.layer_alignment` with the checkpoints
    ``{"init": initial, "trained": <the model's current weights>}`` on labelled ``data``
    (the demo's section). With ``onehot`` (default) the label vectors are the k one-hot
    vectors centred to mean zero (``kind="regression"``): for k ≥ 3 classes the one-vs-rest
    ±1 vectors have a constant part of mean −(k − 2)/k, which lies along the mean direction
    of non-negative (ReLU) features and dominates their curves; a bias learns it anyway.
    ``onehot=False`` uses the ±1 vectors (``kind="classes"``).

    Parameters
    ----------
    model : torch.nn.Module
        The trained network (not changed).
    initial : state dict
        Its weights before training.
    data : (x, y) or an object with .x and .y
    layers : layer names, optional (default: the block outputs)

    Returns
    -------
    pandas.DataFrame
        The frame of :func:`~nncompare.alignment.layer_alignment` (checkpoints ``init`` and
        ``trained``); ``attrs["label_vectors"]`` says how the labels were encoded.
    """
    x, y = _as_xy(data, "data")
    trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if onehot:
        classes = np.unique(y)
        labels: Any = (y[:, None] == classes[None, :]).astype(np.float64)
        kind, what = "regression", f"{len(classes)} centred one-hot vectors"
    else:
        labels, kind, what = y, "classes", "±1 vectors (one-vs-rest for k >= 3 classes)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = layer_alignment(
            model, _float_inputs(x), labels, layers, {"init": dict(initial), "trained": trained},
            kind=kind, batch_size=batch_size,
        )  # fmt: skip
    df.attrs["label_vectors"] = what
    df.attrs["notes"] = sorted(set(_notes(caught)))
    return df


# --------------------------------------------------------------------------- Fig. 13
def pretrained_vs_random(
    weights: Any,
    data: Any,
    *,
    depth: int = 20,
    classes: Sequence[Any] = (0, 1),
    n_per_class: int = 500,
    layer: str = "avgpool",
    seed: int = 0,
    taus: Any = None,
    include_input: bool = True,
) -> Any:
    """Fig. 13 in spirit: a pretrained CIFAR ResNet's last hidden layer vs a random one.

    Parameters
    ----------
    weights : path or state dict
        The pretrained network (e.g. an akamaster CIFAR-10 checkpoint), loaded by
        :func:`nncompare.models.cifar_resnet`.
    data : (x, y) or the path of an .npz with ``x`` (uint8, NHWC RGB) and ``y``
        CIFAR-10 images; preprocessed by :func:`nncompare.models.cifar_preprocess`.
    depth : int, default 20
    classes : two CIFAR-10 classes, default (0, 1) (airplane, automobile)
    n_per_class : int, default 500 (the paper: 1000 points of two classes)
    layer : str, default "avgpool" (the 64-d global pool before the classifier)
    seed : initialisation of the random network and the sample draw
    include_input : bool, default True
        Also measure the raw inputs (3072 features: a 3072 × 3072 eigendecomposition).

    Returns
    -------
    pandas.DataFrame
        The common columns; ``representation`` in {"input", "random", "pretrained"}. The raw
        inputs (3072 features) have more features than samples, so their curve starts at
        ‖y‖² (noted in ``attrs["notes"]``).
    """
    import torch

    from nncompare.workbench.models import cifar_preprocess, cifar_resnet

    x, y = _as_xy(data, "data")
    x, y01 = _pick_classes(x, y, classes, _int("n_per_class", n_per_class, 2), seed)
    if x.dtype != np.uint8:
        raise TypeError(
            f"data must hold uint8 RGB images (N, 32, 32, 3), as CIFAR-10 ships; got dtype "
            f"{x.dtype}."
        )
    xt = cifar_preprocess(x)
    net = cifar_resnet(depth, weights)
    torch.manual_seed(seed)
    random_net = cifar_resnet(depth).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = layer_alignment(
            net, xt, y01, [layer],
            {"random": random_net.state_dict(), "pretrained": net.state_dict()},
            taus=taus, kind="classes", include_input=include_input,
        )  # fmt: skip
    frame, spectra = _layer_frames(df)
    return _frame(
        [frame],
        "pretrained_vs_random",
        f"CIFAR ResNet-{depth}, layer {layer}: pretrained vs random initialisation, "
        f"classes {classes[0]} vs {classes[1]}",
        {
            "depth": depth,
            "weights": str(weights) if not isinstance(weights, Mapping) else "a state dict",
            "classes": list(classes),
            "n_per_class": n_per_class,
            "layer": layer,
            "seed": seed,
        },
        spectra,
        _notes(caught),
    )


# --------------------------------------------------------------------------- Fig. 10
def peaks_benchmark(
    seeds: Iterable[int] | int = range(10),
    *,
    n: int = 10000,
    epochs: int = 30,
    hidden_layers: int = 1,
    width: int = 60,
    taus: Any = None,
) -> Any:
    """The peaks transfer experiment over seeds, with the transfer summary (Fig. 10).

    Runs :func:`nncompare.alignment.peaks.transfer_experiment` and summarises, per task role
    (source, related, unrelated), how the alignment of the representation learned on the
    source task (``"transfer"``) compares with the original features (``"original"``) and
    with the network at initialisation (``"init"``).

    Returns
    -------
    pandas.DataFrame
        The frame of :func:`~nncompare.alignment.peaks.transfer_experiment` (columns
        ``seed``, ``role``, ``task``, ``source``, ``representation``, ``layer``, ``tau``,
        ``alignment``). ``attrs["transfer"]``: one record per role and representation:
        ``area`` (mean over seeds of the area under the curve, Σ over the τ grid times its
        step, ± ``area_sem``, the standard error over seeds), ``diff_vs_original`` (mean
        over seeds of the area minus the original features' area, ± ``diff_sem``) and
        ``share_above_original`` (the share of thresholds τ > 0 at which the mean curve lies
        above the original features'). ``attrs["claims"]``: ``related_above_original``
        and ``unrelated_below_original`` (by area, the mean difference beyond one
        standard error).
    """
    seeds = _seeds(seeds)
    df = peaks.transfer_experiment(
        seeds, n=n, epochs=epochs, hidden_layers=hidden_layers, width=width, taus=taus
    )
    last = sorted({v for v in df["layer"] if v != "input"})[-1]
    sub = df[(df["layer"] == last) | (df["representation"] == "original")]
    grid = np.unique(sub["tau"].to_numpy())
    step = float(np.diff(grid).mean()) if len(grid) > 1 else 1.0
    area = (
        sub.groupby(["seed", "role", "representation"], sort=False)["alignment"].sum() * step
    ).unstack("representation")
    records = []
    means = sub.groupby(["role", "representation", "tau"])["alignment"].mean()
    k = len(seeds)
    for role in peaks.ROLES:
        a = area.xs(role, level="role")
        for rep in peaks.REPRESENTATIONS:
            diff = a[rep] - a["original"]
            above = means.loc[(role, rep)] > means.loc[(role, "original")]
            above = above[above.index > 0]
            records.append(
                {
                    "role": role,
                    "representation": rep,
                    "area": float(a[rep].mean()),
                    "area_sem": float(a[rep].std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan,
                    "diff_vs_original": float(diff.mean()),
                    "diff_sem": float(diff.std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan,
                    "share_above_original": float(above.mean()),
                    "n_seeds": k,
                }
            )
    by = {(r["role"], r["representation"]): r for r in records}
    rel, unr = by[("related", "transfer")], by[("unrelated", "transfer")]
    sem = lambda r: 0.0 if math.isnan(r["diff_sem"]) else r["diff_sem"]  # noqa: E731
    claims = {
        "related_above_original": bool(rel["diff_vs_original"] > sem(rel)),
        "unrelated_below_original": bool(unr["diff_vs_original"] < -sem(unr)),
    }
    out = df.copy()
    out.attrs = {}
    result = _frame(
        [out],
        "peaks_benchmark",
        "Peaks functions: alignment with source, related and unrelated tasks (Fig. 10)",
        {
            "seeds": seeds,
            "n": n,
            "epochs": epochs,
            "hidden_layers": hidden_layers,
            "width": width,
            "layer": last,
        },
        [],
        transfer=records,
        claims=claims,
        train_loss=df.attrs.get("train_loss", {}),
        tau_step=step,
    )
    result.attrs["spectra"] = []
    return result
