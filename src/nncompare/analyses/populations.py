"""Population analyses of Morcos, Raghu & Bengio (2018, PWCCA), on top of the measures.

* :func:`converging_coefficients` - sorted canonical correlations of a layer at each
  checkpoint against its final representation (Fig. 1a-c).
* :func:`direction_stability` - the §2.2 test: the most and the least converged CCA
  directions between an early and a middle checkpoint, followed through training
  (Fig. 1d-f).
* :func:`group_summary` - pairwise distances of a :func:`nncompare.compare_many` frame
  within each group of models and between groups, per layer and measure, mean ± std
  (generalising vs memorising, Fig. 3; width groups, Fig. 4a).
* :func:`direct_distances` - cosine and Euclidean distances between the raw
  representations, for contrast (Figs. A5, A9).
* :func:`subset_distances` - pairwise distances on a fixed random subset of units, so that
  groups of different widths are compared on representations of one size (footnote 8).
* :func:`distance_accuracy` - the correlation between pairwise distance and test accuracy
  (Fig. 4b).

Every function returns a tidy :class:`pandas.DataFrame` (or a small result holding them);
the figures are in :mod:`nncompare.plot.populations`. Convolutional activations are
averaged over the spatial positions (``conv="mean"``), as in the paper. The clusters of
Fig. 5 come from :func:`nncompare.analyses.model_matrix` and :func:`nncompare.analyses.cluster`
(``Clustering.agreement("lr")`` is the adjusted Rand index with the learning rate).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "converging_coefficients",
    "direct_distances",
    "direction_stability",
    "distance_accuracy",
    "group_summary",
    "subset_distances",
]

CONV_MODES = ("mean", "flatten")


# ---------------------------------------------------------------------- helpers
def _check_models(models: Any, what: str, minimum: int) -> dict[str, Any]:
    if not isinstance(models, Mapping):
        if isinstance(models, Sequence) and not isinstance(models, str | bytes):
            models = {str(i): m for i, m in enumerate(models)}
        else:
            raise TypeError(
                f"{what} must be a mapping name -> torch.nn.Module (in order); got "
                f"{type(models).__name__}."
            )
    out = {str(k): v for k, v in models.items()}
    if len(out) < minimum:
        raise ValueError(f"{what} needs at least {minimum} models; got {len(out)}.")
    for name, m in out.items():
        if not callable(getattr(m, "named_modules", None)):
            raise TypeError(
                f"{what}[{name!r}] must be a torch.nn.Module; got {type(m).__name__}. Load "
                "checkpoints into an instance of the architecture first."
            )
    return out


def _check_conv(conv: str) -> None:
    if conv not in CONV_MODES:
        raise ValueError(
            f"conv must be one of {list(CONV_MODES)} (how conv maps (N, C, H, W) become "
            f"matrices: the spatial mean per channel, as in the paper, or all positions "
            f"flattened); got {conv!r}."
        )


def _matrix(a: np.ndarray, conv: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return a[:, None]
    if a.ndim == 2:
        return a
    if conv == "mean":  # captured conv maps are channels first (N, C, ...)
        return a.reshape(a.shape[0], a.shape[1], -1).mean(axis=2)
    return a.reshape(a.shape[0], -1)


def _activations(
    models: Mapping[str, Any], data: Any, layers: Sequence[str], conv: str, batch_size: int
) -> dict[str, dict[str, np.ndarray]]:
    from nncompare.capture import capture

    out: dict[str, dict[str, np.ndarray]] = {}
    for name, model in models.items():
        acts = capture(model, data, list(layers), batch_size=batch_size)
        out[name] = {layer: _matrix(acts[layer], conv) for layer in layers}
    return out


def _as_layers(layers: str | Sequence[str]) -> list[str]:
    out = [layers] if isinstance(layers, str) else list(layers)
    if not out or not all(isinstance(x, str) for x in out):
        raise ValueError(
            f"layers must be a layer name or a non-empty list of names; got {layers!r}."
        )
    return out


def _quiet_measure(X: Any, Y: Any, measure: str) -> float:
    import warnings

    from nncompare.measures._registry import compute

    with warnings.catch_warnings():  # dead ReLUs: constant features are dropped, by design
        warnings.filterwarnings("ignore", message=".*constant feature")
        return float(compute(X, Y, measure))


def _quiet_cca(X: np.ndarray, Y: np.ndarray) -> Any:
    import warnings

    from nncompare.measures.cca import cca

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*constant feature")
        return cca(X, Y)


# ---------------------------------------------------------------------- §2.2, Fig. 1
def converging_coefficients(
    checkpoints: Mapping[str, Any],
    data: Any,
    layer: str,
    *,
    final: str | None = None,
    conv: str = "mean",
    batch_size: int = 256,
) -> Any:
    """Sorted canonical correlations of ``layer`` at each checkpoint against the final one.

    Parameters
    ----------
    checkpoints : mapping label -> torch.nn.Module
        The same network at successive points of training, in training order.
    data : tensor, ndarray, (x, y) or Dataset
        Inputs the representations are computed on.
    layer : str
        Module name of the layer.
    final : str, optional
        The label of the reference checkpoint; default the last one.
    conv : {"mean", "flatten"}, default "mean"
        Convolutional maps: the spatial mean of every channel (the paper), or flattened.
    batch_size : int, default 256

    Returns
    -------
    pandas.DataFrame
        One row per (checkpoint, coefficient): ``checkpoint``, ``order`` (its position),
        ``index`` (1 = the largest correlation), ``rho``, and ``mean_rho`` (the checkpoint's
        mean CCA similarity). The reference itself is left out.

    Examples
    --------
    >>> ckpts = {"e1": net1, "e5": net5, "e10": net10}  # doctest: +SKIP
    >>> df = converging_coefficients(ckpts, x, "relu2")  # doctest: +SKIP
    >>> df.pivot(index="index", columns="checkpoint", values="rho")  # doctest: +SKIP
    """
    import pandas as pd

    nets = _check_models(checkpoints, "checkpoints", 2)
    _check_conv(conv)
    names = list(nets)
    ref = names[-1] if final is None else str(final)
    if ref not in nets:
        raise ValueError(f"final must be one of the checkpoints {names}; got {final!r}.")
    acts = _activations(nets, data, [layer], conv, batch_size)
    Y = acts[ref][layer]
    rows = []
    for order, name in enumerate(names):
        if name == ref:
            continue
        rho = np.asarray(_quiet_cca(acts[name][layer], Y).rho, dtype=float)
        rho = np.sort(rho)[::-1]
        mean = float(rho.mean())
        rows += [
            {"checkpoint": name, "order": order, "index": i + 1, "rho": float(r), "mean_rho": mean}
            for i, r in enumerate(rho)
        ]
    df = pd.DataFrame(rows, columns=["checkpoint", "order", "index", "rho", "mean_rho"])
    df.attrs.update(layer=layer, final=ref, conv=conv)
    return df


def direction_stability(
    checkpoints: Mapping[str, Any],
    data: Any,
    layer: str,
    *,
    early: str,
    middle: str,
    k: int | None = None,
    conv: str = "mean",
    batch_size: int = 256,
) -> Any:
    """The §2.2 test: do the most converged CCA directions stay, and the least converged go?

    CCA between ``layer`` at checkpoint ``early`` and at ``middle`` gives canonical
    variates of the ``middle`` representation sorted by their correlation. The ``k`` most
    correlated form S ("stable", signal), the ``k`` least correlated form B ("unstable",
    noise). The mean CCA similarity of S and of B with the layer at every checkpoint after
    ``early`` is reported: S stays high, B drops (Fig. 1d-f; B spikes at ``middle`` itself,
    where it was chosen).

    Parameters
    ----------
    checkpoints : mapping label -> torch.nn.Module
        The network through training, in order.
    data, layer, conv, batch_size
        As in :func:`converging_coefficients`.
    early, middle : str
        Labels of the checkpoints that define the directions (``t_early`` and ``T/2``).
    k : int, optional
        Directions per part; default a quarter of the number of canonical correlations.
        Needs ``2 k`` at most that number.

    Returns
    -------
    pandas.DataFrame
        ``checkpoint``, ``order``, ``part`` ("stable" / "unstable"), ``k``, ``value``
        (mean canonical correlation of the part with the layer at that checkpoint).
    """
    import pandas as pd

    nets = _check_models(checkpoints, "checkpoints", 3)
    _check_conv(conv)
    names = list(nets)
    for what, label in (("early", early), ("middle", middle)):
        if label not in nets:
            raise ValueError(f"{what} must be one of the checkpoints {names}; got {label!r}.")
    if names.index(early) >= names.index(middle):
        raise ValueError(
            f"early must come before middle in training order; got early={early!r} "
            f"(position {names.index(early)}) and middle={middle!r} (position "
            f"{names.index(middle)})."
        )
    acts = _activations(nets, data, [layer], conv, batch_size)
    M = acts[middle][layer]
    res = _quiet_cca(acts[early][layer], M)
    n_dir = len(np.asarray(res.rho))
    if k is None:
        k = max(1, n_dir // 4)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 or 2 * k > n_dir:
        raise ValueError(
            f"k must be an int between 1 and {n_dir // 2} (half the {n_dir} canonical "
            f"correlations between {early!r} and {middle!r}, so S and B do not overlap); "
            f"got {k!r}."
        )
    W = np.asarray(res.directions_y, dtype=float)  # sorted by correlation, largest first
    variates = (M - M.mean(axis=0)) @ W
    parts = {"stable": variates[:, :k], "unstable": variates[:, n_dir - k :]}
    rows = []
    for order, name in enumerate(names):
        if order <= names.index(early):
            continue
        for part, V in parts.items():
            value = float(np.mean(np.asarray(_quiet_cca(V, acts[name][layer]).rho)))
            rows.append(
                {"checkpoint": name, "order": order, "part": part, "k": int(k), "value": value}
            )
    df = pd.DataFrame(rows, columns=["checkpoint", "order", "part", "k", "value"])
    df.attrs.update(layer=layer, early=early, middle=middle, conv=conv)
    return df


# ---------------------------------------------------------------------- groups, Figs. 3-4
def _groups(groups: Mapping[str, Any], models: Sequence[str]) -> dict[str, str]:
    if not isinstance(groups, Mapping):
        raise TypeError(
            f"groups must be a mapping model name -> group label; got {type(groups).__name__}."
        )
    g = {str(k): str(v) for k, v in groups.items()}
    missing = sorted(set(models) - set(g))
    if missing:
        raise ValueError(
            f"groups has no group for the models {missing}; give every model of the frame a "
            f"group (it has {sorted(g)})."
        )
    return g


def group_summary(frame: Any, groups: Mapping[str, Any], *, value: str = "distance") -> Any:
    """Pairwise distances within each group of models and between groups, mean ± std.

    Parameters
    ----------
    frame : pandas.DataFrame
        A :func:`nncompare.compare_many` frame (or one of :func:`direct_distances` /
        :func:`subset_distances`): columns ``model_a``, ``model_b``, ``layer_a``,
        ``measure`` and ``value``.
    groups : mapping model name -> group label
        E.g. ``{"g0": "generalising", "m0": "memorising", ...}`` or the width of each model.
    value : {"distance", "value"}, default "distance"
        Summarise the distances (``1 - similarity`` for CCA measures) or the values.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, measure, comparison): ``layer``, ``measure``, ``comparison``
        (the group's label for pairs within a group, ``"A vs B"`` between groups, in the
        order the groups first appear), ``kind`` ("within" / "between"), ``mean``,
        ``std`` (ddof=0; 0 for one pair) and ``n_pairs``. Rows with an error are left out.

    Notes
    -----
    Works on any set of pairs (e.g. only the pairs within groups) and on measures outside
    the registry (cosine, Euclidean). For one complete (layer, measure) matrix,
    :func:`nncompare.analyses.cluster.group_summary` gives the same numbers.
    """
    import pandas as pd

    need = {"model_a", "model_b", "layer_a", "measure", value}
    if not hasattr(frame, "columns") or not need <= set(frame.columns):
        have = sorted(frame.columns) if hasattr(frame, "columns") else type(frame).__name__
        raise ValueError(
            f"frame must be a compare_many-style frame with columns {sorted(need)}; got {have}."
        )
    df = frame
    if "error" in df.columns:
        df = df[df["error"].isna()]
    g = _groups(groups, sorted(set(df["model_a"]) | set(df["model_b"])))
    rank = {label: i for i, label in enumerate(dict.fromkeys(g.values()))}
    ga = df["model_a"].astype(str).map(g)
    gb = df["model_b"].astype(str).map(g)
    swap = ga.map(rank) > gb.map(rank)
    first = ga.where(~swap, gb)
    second = gb.where(~swap, ga)
    within = first == second
    comparison = first.where(within, first + " vs " + second)
    work = pd.DataFrame(
        {
            "layer": df["layer_a"].to_numpy(),
            "measure": df["measure"].to_numpy(),
            "comparison": comparison.to_numpy(),
            "kind": np.where(within.to_numpy(), "within", "between"),
            "_first": first.map(rank).to_numpy(),
            "_second": second.map(rank).to_numpy(),
            "v": df[value].astype(float).to_numpy(),
        }
    )
    layer_order = {layer: i for i, layer in enumerate(dict.fromkeys(df["layer_a"]))}
    out = (
        work.groupby(["layer", "measure", "comparison", "kind", "_first", "_second"], sort=False)[
            "v"
        ]
        .agg(mean="mean", std=lambda s: float(np.std(s.to_numpy())), n_pairs="size")
        .reset_index()
    )
    out["_layer"] = out["layer"].map(layer_order)
    out["_kind"] = (out["kind"] == "between").astype(int)
    out = out.sort_values(["_layer", "measure", "_kind", "_first", "_second"], kind="stable")
    out = out.drop(columns=["_layer", "_kind", "_first", "_second"]).reset_index(drop=True)
    out.attrs.update(value=value)
    return out


def direct_distances(
    models: Mapping[str, Any] | Sequence[Any],
    data: Any,
    *,
    layers: str | Sequence[str],
    conv: str = "mean",
    batch_size: int = 256,
) -> Any:
    """Cosine and Euclidean distances between the raw representations of every model pair.

    Neither distance allows for a linear transform (or even a permutation of the units),
    which is why the paper shows them only for contrast with CCA (Figs. A5, A8, A9).

    * ``cosine``: ``1 - <A, B> / (‖A‖ ‖B‖)`` of the flattened activation matrices.
    * ``euclidean``: ``‖A - B‖_F / sqrt(n)``, the root-mean-square over samples of the
      per-sample Euclidean distance.

    Parameters
    ----------
    models : mapping name -> torch.nn.Module, or sequence of modules
        At least two models whose compared layers have the same number of units.
    data : tensor, ndarray, (x, y) or Dataset
    layers : str or list of str
        Module names, the same in every model.
    conv : {"mean", "flatten"}, default "mean"
    batch_size : int, default 256

    Returns
    -------
    pandas.DataFrame
        ``model_a``, ``model_b``, ``layer_a``, ``layer_b``, ``measure`` ("cosine" /
        ``"euclidean"``), ``value`` and ``distance`` (both equal: these are distances),
        ``n_samples``, ``error`` (None) - the columns :func:`group_summary` reads.
    """
    import pandas as pd

    nets = _check_models(models, "models", 2)
    _check_conv(conv)
    names = _as_layers(layers)
    acts = _activations(nets, data, names, conv, batch_size)
    rows = []
    for a, b in itertools.combinations(nets, 2):
        for layer in names:
            A, B = acts[a][layer], acts[b][layer]
            if A.shape != B.shape:
                raise ValueError(
                    f"direct_distances compares units one to one, so layer {layer!r} needs "
                    f"the same shape in every model; got {A.shape} for {a!r} and {B.shape} "
                    f"for {b!r}. Use a CCA measure (compare_many) for layers of different "
                    "widths."
                )
            na, nb = float(np.linalg.norm(A)), float(np.linalg.norm(B))
            if na == 0.0 or nb == 0.0:
                cos = float("nan")
                err = "cosine is undefined for an all-zero representation"
            else:
                cos = 1.0 - float(np.vdot(A, B)) / (na * nb)
                err = None
            euc = float(np.linalg.norm(A - B)) / math.sqrt(A.shape[0])
            for measure, v, e in (("cosine", cos, err), ("euclidean", euc, None)):
                rows.append(
                    {
                        "model_a": a,
                        "model_b": b,
                        "layer_a": layer,
                        "layer_b": layer,
                        "measure": measure,
                        "value": v,
                        "distance": v,
                        "n_samples": int(A.shape[0]),
                        "error": e,
                    }
                )
    return pd.DataFrame(rows)


def subset_distances(
    models: Mapping[str, Any] | Sequence[Any],
    data: Any,
    layer: str,
    *,
    n_units: int,
    groups: Mapping[str, Any] | None = None,
    measure: str = "pwcca",
    seed: int = 0,
    conv: str = "mean",
    batch_size: int = 256,
) -> Any:
    """Pairwise distances on a fixed random subset of ``n_units`` units of ``layer``.

    Footnote 8 of the paper: to compare groups of networks of different widths on
    representations of one size, the same random subset of units is used for all
    comparisons. Here the subset of a layer with ``d`` units is drawn once per ``d`` from
    ``numpy.random.default_rng([seed, d])``, so every network of one width uses the same
    unit indices.

    Parameters
    ----------
    models : mapping name -> torch.nn.Module, or sequence of modules
    data : tensor, ndarray, (x, y) or Dataset
    layer : str
        Module name, the same in every model.
    n_units : int
        Units kept; at most the narrowest layer's width.
    groups : mapping model name -> group label, optional
        Compare only pairs within the same group (all pairs when None).
    measure : str, default "pwcca"
        Any registered measure (``nc.measures.available()``).
    seed : int, default 0
    conv, batch_size
        As in :func:`direct_distances`.

    Returns
    -------
    pandas.DataFrame
        ``model_a``, ``model_b``, ``layer_a``, ``layer_b``, ``measure``, ``value``,
        ``distance``, ``n_units``, ``n_samples``, ``error``.
    """
    import pandas as pd

    from nncompare.measures._registry import distance, get

    nets = _check_models(models, "models", 2)
    _check_conv(conv)
    get(measure)  # unknown names fail here with the registry's message
    if isinstance(n_units, bool) or not isinstance(n_units, int | np.integer) or n_units < 1:
        raise ValueError(f"n_units must be a positive int; got {n_units!r}.")
    g = _groups(groups, list(nets)) if groups is not None else None
    acts = _activations(nets, data, [layer], conv, batch_size)
    subsets: dict[int, np.ndarray] = {}
    for name, a in acts.items():
        d = a[layer].shape[1]
        if n_units > d:
            raise ValueError(
                f"n_units={n_units} is more than the {d} units of layer {layer!r} in model "
                f"{name!r}; choose n_units at most the narrowest width."
            )
        if d not in subsets:
            rng = np.random.default_rng([int(seed), int(d)])
            subsets[d] = np.sort(rng.choice(d, size=n_units, replace=False))
    rows = []
    for a, b in itertools.combinations(nets, 2):
        if g is not None and g[a] != g[b]:
            continue
        A = acts[a][layer][:, subsets[acts[a][layer].shape[1]]]
        B = acts[b][layer][:, subsets[acts[b][layer].shape[1]]]
        v = _quiet_measure(A, B, measure)
        rows.append(
            {
                "model_a": a,
                "model_b": b,
                "layer_a": layer,
                "layer_b": layer,
                "measure": measure,
                "value": v,
                "distance": float(distance(measure, v)),
                "n_units": int(n_units),
                "n_samples": int(A.shape[0]),
                "error": None,
            }
        )
    df = pd.DataFrame(rows)
    df.attrs.update(subsets={int(d): s.tolist() for d, s in subsets.items()}, seed=seed)
    return df


def distance_accuracy(
    frame: Any,
    accuracy: Mapping[str, float],
    *,
    groups: Mapping[str, Any] | None = None,
) -> Any:
    """Correlation between pairwise distance and test accuracy (Fig. 4b).

    Each pair's accuracy is the mean of its two models' accuracies. With ``groups``, the
    same is done for the groups: the mean within-group distance against the group's mean
    accuracy.

    Parameters
    ----------
    frame : pandas.DataFrame
        Pairwise rows with ``model_a``, ``model_b``, ``measure`` and ``distance`` (for one
        layer), e.g. from :func:`subset_distances`.
    accuracy : mapping model name -> test accuracy
    groups : mapping model name -> group label, optional

    Returns
    -------
    pandas.DataFrame
        One row per (measure, level): ``measure``, ``level`` ("pairs" / "groups"), ``n``,
        ``pearson_r`` and ``spearman_r`` (NaN with fewer than three points or constant
        values, with the reason in ``note``).
    """
    import pandas as pd
    from scipy import stats

    acc = {str(k): float(v) for k, v in accuracy.items()}
    missing = sorted((set(frame["model_a"]) | set(frame["model_b"])) - set(acc))
    if missing:
        raise ValueError(f"accuracy has no value for the models {missing}; give every model one.")
    rows = []

    def corr(measure: str, level: str, x: np.ndarray, y: np.ndarray) -> None:
        ok = len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0
        note = None if ok else "needs at least 3 points with varying distance and accuracy"
        rows.append(
            {
                "measure": measure,
                "level": level,
                "n": len(x),
                "pearson_r": float(stats.pearsonr(x, y)[0]) if ok else float("nan"),
                "spearman_r": float(stats.spearmanr(x, y)[0]) if ok else float("nan"),
                "note": note,
            }
        )

    for measure, sub in frame.groupby("measure", sort=False):
        pair_acc = np.array(
            [(acc[a] + acc[b]) / 2 for a, b in zip(sub["model_a"], sub["model_b"], strict=True)]
        )
        corr(measure, "pairs", sub["distance"].to_numpy(float), pair_acc)
        if groups is not None:
            g = _groups(groups, sorted(acc))
            ga = sub["model_a"].map(g)
            within = sub[ga.to_numpy() == sub["model_b"].map(g).to_numpy()]
            by = within.groupby(within["model_a"].map(g), sort=False)["distance"].mean()
            gacc = pd.Series(acc).groupby(pd.Series(g)).mean()
            corr(measure, "groups", by.to_numpy(float), gacc[by.index].to_numpy(float))
    return pd.DataFrame(rows)
