"""A small, realistic comparison frame built from synthetic activations (demos and tests)."""

from __future__ import annotations

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
    pairs. It is made by the same engine as :func:`nncompare.compare_models` (arrays instead
    of captured models), so columns, ``attrs["provenance"]``, ``attrs["measures"]``,
    ``attrs["spectra"]`` (every pair of every CCA-type measure) and ``attrs["kept_dims"]``
    are those of a real comparison.
    """
    from nncompare.analyses.engine import array_sources, evaluate, models_result, provenance
    from nncompare.analyses.grid import _as_matrix, parse_measures

    layers_a = [str(x) for x in layers_a]
    layers_b = list(layers_a) if layers_b is None else [str(x) for x in layers_b]
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n_samples, 16))
    acts = {
        ("a", k): v
        for k, v in _network(factors, layers_a, np.random.default_rng(seed + 1), 0.1).items()
    }
    acts.update(
        (("b", k), v)
        for k, v in _network(factors, layers_b, np.random.default_rng(seed + 2), 0.15).items()
    )
    spec = parse_measures(list(measures))
    acc = array_sources(
        {key: _as_matrix(key[1], v, "mean") for key, v in acts.items()},
        streaming=True,
        policies={key: "mean" if v.ndim > 2 else "none" for key, v in acts.items()},
    )
    pairs = [(("a", a), ("b", b)) for a in layers_a for b in layers_b]
    outcomes = evaluate(acc, pairs, spec, keep_spectra=True)
    prov = provenance(
        {
            "seeds": {"data": seed, names[0]: seed + 1, names[1]: seed + 2},
            "data": "synthetic latent factors (nncompare.report.example_frame)",
            "n_samples": n_samples,
            "conv_policy": "mean",
            "command": "nncompare.report.example_frame()",
        }
    )
    return models_result(acc, pairs, outcomes, spec, names, prov, all_details=True).to_frame()
