"""Representational dynamics of recurrent networks (Morcos, Raghu & Bengio 2018, §4, App. A.3).

Two notions of time: the *training* step (weights change) and the *sequence* step (the
states change). :func:`convergence_to_final` compares each recurrent layer at every training
checkpoint with the same layer of the final network (Fig. 6d: bottom-up convergence, seen
with PWCCA and with the unweighted mean CCA); :func:`timestep_similarity` compares the hidden
state of one network across sequence steps (Figs. A2-A4), with CCA measures and with a
plain cosine similarity of the raw states for contrast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["convergence_summary", "convergence_to_final", "timestep_similarity"]


def _pick(states: Any, key: str, step: int | str) -> np.ndarray:
    if key not in states:
        have = sorted(states)
        raise KeyError(f"no recurrent state {key!r} was captured; the states are {have}.")
    a = states.flat(key) if step == "all" else states.step(key, int(step))
    return a.double().numpy()


def _measure(x: np.ndarray, y: np.ndarray, measure: str) -> tuple[float, str | None]:
    """(value, error): a measure that fails on degenerate states reports why."""
    if measure == "cosine":
        nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
        ok = (nx > 0) & (ny > 0)
        if not ok.any():
            return float("nan"), "every state is zero"
        return float(np.mean(np.sum(x[ok] * y[ok], axis=1) / (nx[ok] * ny[ok]))), None
    from nncompare.measures._registry import similarity

    try:
        return similarity(x, y, measure), None
    except (ValueError, np.linalg.LinAlgError) as err:
        return float("nan"), str(err).splitlines()[0]


def _distance(measure: str, value: float) -> float:
    if measure == "cosine":
        return 1.0 - value
    from nncompare.measures._registry import distance

    return distance(measure, value)


def _models(checkpoints: Any) -> list[tuple[Any, Any]]:
    if isinstance(checkpoints, Mapping):
        items = list(checkpoints.items())
    elif isinstance(checkpoints, Sequence) and not isinstance(checkpoints, str | bytes):
        items = list(enumerate(checkpoints))
    else:
        raise TypeError(
            "checkpoints must be a mapping training step -> model, or a sequence of models "
            f"in training order; got {type(checkpoints).__name__}."
        )
    if len(items) < 2:
        raise ValueError(
            f"convergence_to_final needs at least 2 checkpoints (the last is the final "
            f"network); got {len(items)}."
        )
    return items


def convergence_to_final(
    checkpoints: Mapping[Any, Any] | Sequence[Any],
    data: Any,
    *,
    layers: Sequence[str] | None = None,
    state: str = "hidden",
    step: int | str = -1,
    measures: Sequence[str] = ("pwcca", "cca"),
    batch_size: int = 256,
) -> Any:
    """Each recurrent layer at every checkpoint against the same layer of the final network.

    Parameters
    ----------
    checkpoints : mapping training step -> model, or sequence of models
        In training order; the last one is the final network.
    data : tensor, ndarray, (x, y), Dataset or DataLoader
        The inputs (sequences), the same for every checkpoint.
    layers : list of str, optional
        Recurrent layers (default: every ``nn.LSTM``/``nn.GRU``/``nn.RNN``).
    state : {"hidden", "cell", "output"}, default "hidden"
    step : int or "all", default -1
        The sequence step whose state is compared (-1: the last), or ``"all"``: every
        (sample, step) as one row.
    measures : sequence of str, default ("pwcca", "cca")
        Similarity measures of :mod:`nncompare.measures` (``"cca"`` is the unweighted
        mean of the canonical correlations) or ``"cosine"``.

    Returns
    -------
    pandas.DataFrame
        One row per (checkpoint, layer, measure): ``checkpoint`` (the key), ``index``
        (position in training order), ``layer``, ``depth`` (1-based), ``state``,
        ``measure``, ``value``, ``distance``, ``error`` (why a value is NaN, else None).
    """
    import pandas as pd

    from nncompare.capture._recurrent import capture_recurrent

    items = _models(checkpoints)
    kw = dict(layers=layers, batch_size=batch_size)
    final = capture_recurrent(items[-1][1], data, **kw)
    names = final.layers if layers is None else list(layers)
    rows = []
    for idx, (key, model) in enumerate(items):
        states = final if idx == len(items) - 1 else capture_recurrent(model, data, **kw)
        for depth, layer in enumerate(names, start=1):
            k = f"{layer}:{state}"
            a, b = _pick(states, k, step), _pick(final, k, step)
            for m in measures:
                v, err = _measure(a, b, m)
                rows.append(
                    {
                        "checkpoint": key,
                        "index": idx,
                        "layer": layer,
                        "depth": depth,
                        "state": state,
                        "measure": m,
                        "value": v,
                        "distance": _distance(m, v),
                        "error": err,
                    }
                )
    return pd.DataFrame(rows)


def convergence_summary(frame: Any, threshold: float = 0.2) -> Any:
    """Per (layer, measure): the mean distance to the final network over the checkpoints
    before it, and the first checkpoint index from which the distance stays below
    ``threshold`` (bottom-up convergence: both grow with depth).

    Returns
    -------
    pandas.DataFrame
        ``layer``, ``depth``, ``measure``, ``mean_distance``, ``converged_at`` (index of
        the checkpoint; the final one's index when it never stays below before) and
        ``converged_checkpoint`` (its key, e.g. the training step).
    """
    import pandas as pd

    rows = []
    for (layer, measure), g in frame.groupby(["layer", "measure"], sort=False):
        g = g.sort_values("index")
        d = g["distance"].to_numpy()
        idx = g["index"].to_numpy()
        below = d <= threshold
        # first position from which every later distance is below the threshold
        at = len(d) - 1
        for i in range(len(d) - 1, -1, -1):
            if not below[i]:
                break
            at = i
        rows.append(
            {
                "layer": layer,
                "depth": int(g["depth"].iloc[0]),
                "measure": measure,
                "mean_distance": float(np.nanmean(d[:-1])),
                "converged_at": int(idx[at]),
                "converged_checkpoint": g["checkpoint"].iloc[at],
            }
        )
    return pd.DataFrame(rows).sort_values(["measure", "depth"]).reset_index(drop=True)


def timestep_similarity(
    states: Any,
    layer: str,
    *,
    state: str = "hidden",
    steps: Sequence[int] | None = None,
    measures: Sequence[str] = ("pwcca", "cca", "cosine"),
) -> Any:
    """The state of one layer compared across sequence steps (Morcos et al., Figs. A2-A4).

    Parameters
    ----------
    states : RecurrentStates
        From :func:`nncompare.capture.capture_recurrent`.
    layer : str
    state : {"hidden", "cell", "output"}, default "hidden"
    steps : sequence of int, optional
        Steps to compare (default: every step).
    measures : sequence of str, default ("pwcca", "cca", "cosine")
        CCA-type measures (invariant to linear transforms) and ``"cosine"``, the mean
        cosine similarity of the raw state vectors of each sample (not invariant).

    Returns
    -------
    pandas.DataFrame
        One row per (step_a, step_b, measure), both orders (a square matrix per measure
        by ``pivot``): ``step_a``, ``step_b``, ``measure``, ``value``, ``error``.
    """
    import pandas as pd

    key = f"{layer}:{state}"
    if key not in states:
        raise KeyError(f"no recurrent state {key!r} was captured; the states are {sorted(states)}.")
    n_steps = states[key].shape[1]
    chosen = list(range(n_steps)) if steps is None else [int(s) for s in steps]
    bad = [s for s in chosen if not 0 <= s < n_steps]
    if bad:
        raise ValueError(f"steps {bad} are out of range for {n_steps} sequence steps.")
    arrays = {s: _pick(states, key, s) for s in chosen}
    rows = []
    for i, a in enumerate(chosen):
        for b in chosen[i:]:
            for m in measures:
                v, err = _measure(arrays[a], arrays[b], m)
                for sa, sb in {(a, b), (b, a)}:
                    rows.append(
                        {"step_a": sa, "step_b": sb, "measure": m, "value": v, "error": err}
                    )
    return pd.DataFrame(rows)
