"""A small, realistic comparison frame built from synthetic activations (demos and tests)."""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["example_frame"]

DEFAULT_LAYERS = ("conv1", "conv2", "conv3", "fc1", "fc2", "logits")
_WIDTHS = {0: 12, 1: 16, 2: 24, 3: 128, 4: 24, 5: 10}


def _network(
    factors: np.ndarray, names: Sequence[str], rng: np.random.Generator, noise: float
) -> dict[str, np.ndarray]:
    """Layers whose signal drifts along the latent factors with depth; the first half are
    convolutional (n, 4, 4, c), the rest dense (n, d)."""
    n, f = factors.shape
    depth = len(names)
    acts: dict[str, np.ndarray] = {}
    for layer_idx, name in enumerate(names):
        centre = (f - 1) * layer_idx / max(depth - 1, 1)
        # a window of 8 factors slides from the first to the last with depth
        weight = (np.abs(np.arange(f) - centre) <= 4).astype(float)
        width = _WIDTHS.get(layer_idx, 32) if depth == len(DEFAULT_LAYERS) else 16
        mix = rng.standard_normal((f, width)) / np.sqrt(weight.sum())
        signal = np.tanh((factors * weight) @ mix)
        if layer_idx < depth // 2:
            spatial = rng.standard_normal((n, 4, 4, width)) * noise * 2
            acts[name] = signal[:, None, None, :] + spatial
        else:
            acts[name] = signal + noise * rng.standard_normal((n, width))
    return acts


def example_frame(
    *,
    layers_a: Sequence[str] = DEFAULT_LAYERS,
    layers_b: Sequence[str] | None = None,
    measures: Sequence[str] = ("cka", "svcca", "cca", "pwcca"),
    n_samples: int = 120,
    names: tuple[str, str] = ("net-seed0", "net-seed1"),
    seed: int = 0,
) -> Any:
    """A tidy comparison frame shaped like :func:`nncompare.compare_models`' output.

    Two synthetic "networks" see the same latent factors; layer i of each emphasises factors
    that drift with depth, so same-depth layers match best. The first half of the layers are
    convolutional (reduced with the spatial mean, ``policy="mean"``); the default ``fc1`` is
    wider than ``n_samples``, so CCA and PWCCA are undefined (NaN with an ``error``) for its
    pairs. Columns, ``attrs["provenance"]``, ``attrs["measures"]``, ``attrs["spectra"]`` (every
    pair of every CCA-type measure) and ``attrs["kept_dims"]`` are filled in.
    """
    import pandas as pd

    import nncompare
    from nncompare.analyses.grid import pairwise
    from nncompare.measures._registry import get as get_measure

    layers_a = [str(x) for x in layers_a]
    layers_b = list(layers_a) if layers_b is None else [str(x) for x in layers_b]
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n_samples, 16))
    acts_a = _network(factors, layers_a, np.random.default_rng(seed + 1), noise=0.1)
    acts_b = _network(factors, layers_b, np.random.default_rng(seed + 2), noise=0.15)
    grid = pairwise(acts_a, acts_b, measures=list(measures), conv="mean", keep_results=True)
    base = grid.to_frame()
    policy_a = {k: ("mean" if v.ndim > 2 else "none") for k, v in acts_a.items()}
    policy_b = {k: ("mean" if v.ndim > 2 else "none") for k, v in acts_b.items()}
    records = []
    spectra: dict[str, dict[str, list[float]]] = {}
    kept: dict[str, list[int]] = {}
    conventions: dict[str, Any] = {}
    for row in base.to_dict(orient="records"):
        a, b, m = row["layer_a"], row["layer_b"], row["measure"]
        pa, pb = policy_a[a], policy_b[b]
        rec = {
            "model_a": names[0],
            "model_b": names[1],
            "layer_a": a,
            "layer_b": b,
            "measure": m,
            "value": row["value"],
            "policy": pa if pa == pb else f"{pa}/{pb}",
            "n_samples": n_samples,
        }
        res = grid.results.get((m, a, b))
        for col in ("kept_dims_x", "kept_dims_y", "rank_x", "rank_y"):
            v = getattr(res, col, None) if res is not None else None
            rec[col] = int(v) if isinstance(v, int | np.integer) else None
        err = row.get("error")
        rec["error"] = err if isinstance(err, str) else None
        records.append(rec)
        if res is None:
            continue
        conventions.setdefault(m, dict(res.conventions))
        rho = getattr(res, "rho", None)
        if rho is not None and m in ("cca", "svcca", "pwcca", "cca_r2"):
            spectra.setdefault(m, {})[f"{a}|{b}"] = [float(r) for r in np.asarray(rho)]
        if m == "svcca":
            kept[f"{a}|{b}"] = [int(res.kept_dims_x), int(res.kept_dims_y)]
    df = pd.DataFrame.from_records(records)
    for col in ("kept_dims_x", "kept_dims_y", "rank_x", "rank_y"):
        df[col] = df[col].astype("Int64")
    df.attrs["provenance"] = {
        "nncompare": nncompare.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seeds": {"data": seed, names[0]: seed + 1, names[1]: seed + 2},
        "data": "synthetic latent factors (nncompare.report.example_frame)",
        "n_samples": n_samples,
        "conv_policy": "mean",
        "command": "nncompare.report.example_frame()",
    }
    df.attrs["measures"] = {
        m: {
            "options": dict(grid.options.get(m, {})),
            "conventions": conventions.get(m, {}),
            "higher_is_better": get_measure(m).higher_is_better,
            "reference": get_measure(m).reference,
            "description": get_measure(m).description,
        }
        for m in measures
    }
    df.attrs["spectra"] = spectra
    df.attrs["kept_dims"] = kept
    df.attrs["title"] = f"{names[0]} vs {names[1]}"
    return df
