"""The experiments of Guth & Ménard (§2.2 and §3.3) as library functions.

Each function runs on the models and data it is given (nothing is downloaded) and returns
a tidy :class:`pandas.DataFrame` or a small result; ``df.attrs`` holds JSON-ready data only.

==================================  =========  ===========================================
function                            paper      what it measures
==================================  =========  ===========================================
:func:`eigenfilter_universality`    Fig. 1     overlap of the leading spatial
                                               eigen-subspaces between every pair of conv
                                               layers, within and across networks
:func:`summarize_universality`      Fig. 1     the mean overlaps of that frame by group:
                                               layers ≥ 2 within / across networks, the
                                               first layer against the others
:func:`universal_eigenfilters`      §2.3       eigenfilters of the mean spatial covariance
                                               of layers ≥ 2 (for :func:`factorized_vgg`)
:func:`weight_similarity_study`     Figs. 3-4  compare_weights for named pairs of networks,
                                               with the eigenvector-similarity matrices
:func:`eigenvector_panels`          Fig. 3     the study's matrices back as results, for
                                               ``nc.plot.weights_eigenvector_similarity``
:func:`factorized_align_at`         §3.1       where to align each pointwise conv of a
                                               factorized network (its depthwise input)
:func:`channel_spectra`             eq. 3-4    every weight layer's channel-covariance
                                               spectrum, shrunk, with its effective rank
:func:`weights_summary`             all        what the report's weights section shows,
                                               for one network or two
==================================  =========  ===========================================

References
----------
Guth, F. & Ménard, B. (2024). On the universality of neural encodings in CNNs. ICLR 2024
Workshop on Representational Alignment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from typing import Any

import numpy as np

from nncompare.weights._compare import (
    _layer_modules,
    aligned_covariances,
    compare_weights,
    weight_layers,
    weights_frame,
)
from nncompare.weights._similarity import EigenvectorSimilarity, eigenvector_similarity
from nncompare.weights._spatial import (
    SpatialEigenfilters,
    sign_fix,
    spatial_eigenfilters,
    subspace_overlap,
)
from nncompare.weights._spectra import (
    channel_covariance,
    effective_rank,
    noise_edge,
    shrink,
    weight_gamma,
)

__all__ = [
    "WeightsSummary",
    "channel_spectra",
    "eigenfilter_universality",
    "eigenvector_panels",
    "factorized_align_at",
    "summarize_universality",
    "universal_eigenfilters",
    "weight_similarity_study",
    "weights_summary",
]


def _eigenfilters_of_models(models: Mapping[str, Any]) -> dict[str, dict[str, SpatialEigenfilters]]:
    if not isinstance(models, Mapping) or not models:
        raise TypeError(
            "models must be a non-empty mapping {name: torch model or spatial_eigenfilters "
            f"mapping}}, got {type(models).__name__}; pass e.g. {{'resnet20': net20}}."
        )
    out = {}
    for name, m in models.items():
        if isinstance(m, Mapping) and all(isinstance(v, SpatialEigenfilters) for v in m.values()):
            out[str(name)] = dict(m)
        else:
            out[str(name)] = spatial_eigenfilters(m)
    return out


def eigenfilter_universality(models: Mapping[str, Any], rank: int = 3) -> Any:
    """Overlap of the top-``rank`` spatial eigen-subspaces between all conv layers (Fig. 1).

    For every pair of conv layers (within one network and across networks, each unordered
    pair once, a layer with itself included) with the same kernel size:
    :func:`~nncompare.weights.subspace_overlap`, the mean squared cosine of the principal
    angles between the two leading ``rank``-dimensional eigen-subspaces (1: the same
    subspace; chance ``rank / k²``).

    Parameters
    ----------
    models : mapping of str to torch.nn.Module (or to a spatial_eigenfilters mapping)
        The networks, by name.
    rank : int, default 3
        Dimension of the compared subspaces.

    Returns
    -------
    pandas.DataFrame
        Columns ``net_a, layer_a, depth_a, net_b, layer_b, depth_b, kernel_size, rank,
        overlap, chance``; ``depth`` is the 1-based position among the network's k × k
        convolutions (1 = the first layer, which sees pixels).
    """
    import pandas as pd

    filters = _eigenfilters_of_models(models)
    entries = [
        (net, layer, depth, res)
        for net, layers in filters.items()
        for depth, (layer, res) in enumerate(layers.items(), start=1)
    ]
    rows = []
    for (na, la, da, ra), (nb, lb, db, rb) in combinations_with_replacement(entries, 2):
        if ra.kernel_size != rb.kernel_size:
            continue
        k2 = ra.kernel_size**2
        rows.append(
            {
                "net_a": na,
                "layer_a": la,
                "depth_a": da,
                "net_b": nb,
                "layer_b": lb,
                "depth_b": db,
                "kernel_size": ra.kernel_size,
                "rank": rank,
                "overlap": subspace_overlap(ra, rb, rank),
                "chance": rank / k2,
            }
        )
    df = pd.DataFrame(rows)
    df.attrs["experiment"] = "eigenfilter_universality"
    df.attrs["networks"] = {n: len(v) for n, v in filters.items()}
    return df


def summarize_universality(frame: Any) -> dict[str, Any]:
    """Mean overlaps of an :func:`eigenfilter_universality` frame, by group.

    Groups (pairs of *different* layers only): ``deep_within`` — two layers ≥ 2 of the
    same network; ``deep_across`` — layers ≥ 2 of two different networks;
    ``first_vs_deep`` — a first layer against a layer ≥ 2 (any networks); ``first_across``
    — the first layers of two different networks.

    Returns
    -------
    dict
        ``{group: {"mean": float, "min": float, "n_pairs": int}}`` plus ``"chance"``.
    """
    df = frame
    same = (df["net_a"] == df["net_b"]) & (df["layer_a"] == df["layer_b"])
    df = df[~same]
    deep = (df["depth_a"] >= 2) & (df["depth_b"] >= 2)
    first_a, first_b = df["depth_a"] == 1, df["depth_b"] == 1
    within = df["net_a"] == df["net_b"]
    groups = {
        "deep_within": deep & within,
        "deep_across": deep & ~within,
        "first_vs_deep": (first_a & ~first_b) | (first_b & ~first_a),
        "first_across": first_a & first_b & ~within,
    }
    out: dict[str, Any] = {}
    for name, mask in groups.items():
        values = df.loc[mask, "overlap"].to_numpy(dtype=float)
        out[name] = {
            "mean": float(values.mean()) if values.size else float("nan"),
            "min": float(values.min()) if values.size else float("nan"),
            "n_pairs": int(values.size),
        }
    out["chance"] = float(frame["chance"].iloc[0]) if len(frame) else float("nan")
    return out


def universal_eigenfilters(
    models: Mapping[str, Any] | Any, *, skip_first: bool = True
) -> SpatialEigenfilters:
    """Eigenfilters of the spatial covariance averaged over conv layers (§2.3).

    Each layer's spatial covariance is divided by its trace (so that every layer counts
    the same), the mean is taken over the layers ≥ 2 of every network (all layers with
    ``skip_first=False``) and eigen-decomposed; signs are fixed as in
    :func:`~nncompare.weights.spatial_eigenfilters`. Pass the result to
    :func:`nncompare.models.factorized_vgg`.

    Parameters
    ----------
    models : torch.nn.Module or mapping of str to torch.nn.Module
        One or more trained networks with k × k convolutions of one kernel size.
    skip_first : bool, default True
        Leave out each network's first conv layer (it sees pixels and learns other filters).

    Returns
    -------
    SpatialEigenfilters
        ``layer`` names the average, ``n_filters`` the filters averaged.
    """
    if not isinstance(models, Mapping):
        models = {"model": models}
    filters = _eigenfilters_of_models(models)
    picked = [
        res
        for layers in filters.values()
        for depth, res in enumerate(layers.values(), start=1)
        if depth >= 2 or not skip_first
    ]
    if not picked:
        raise ValueError(
            "no conv layer left to average: every network has a single k x k convolution and "
            "skip_first=True leaves it out; pass skip_first=False or deeper networks."
        )
    sizes = sorted({r.kernel_size for r in picked})
    if len(sizes) > 1:
        raise ValueError(
            f"the layers have different kernel sizes {sizes}; expected one k to average "
            "spatial covariances. Pass networks (or layers) with a single kernel size."
        )
    k = sizes[0]
    covs = [r.covariance / max(float(np.trace(r.covariance)), 1e-300) for r in picked]
    C = np.mean(covs, axis=0)
    lam, V = np.linalg.eigh(0.5 * (C + C.T))
    lam, V = lam[::-1].copy(), V[:, ::-1].copy()
    lam = np.where(lam > 0, lam, 0.0)
    V = V * sign_fix(V, k)[None, :]
    rtol = picked[0].degenerate_rtol
    near = np.zeros(lam.size, dtype=bool)
    for r in range(lam.size - 1):
        top = max(abs(lam[r]), abs(lam[r + 1]))
        if top > 0 and abs(lam[r] - lam[r + 1]) <= rtol * top:
            near[r] = near[r + 1] = True
    return SpatialEigenfilters(
        layer=f"mean of {len(picked)} layers" + (" >= 2" if skip_first else ""),
        eigenvalues=lam,
        eigenvectors=V.T.reshape(-1, k, k),
        near_degenerate=near,
        kernel_size=k,
        n_filters=int(sum(r.n_filters for r in picked)),
        covariance=C,
        degenerate_rtol=rtol,
    )


def factorized_align_at(model: Any) -> dict[str, str]:
    """``{pointwise conv: depthwise module}`` for every factorized block of ``model``.

    The pointwise conv of a factorized block reads ``K`` filtered copies of each input
    channel; its weights are aligned with the alignment of the depthwise module's *input*
    (the block input, ``C_in`` channels), applied to each copy (eq. 2 with the
    K-expansion). A block is a module with a ``copies`` attribute (e.g.
    :class:`nncompare.models.FrozenDepthwise`) followed, later in ``named_modules()``
    order, by a 1 × 1 ``Conv2d`` with ``copies * in_channels`` inputs. Pass the result as
    ``align_at=`` to :func:`~nncompare.weights.compare_weights`; ``{}`` for a model
    without factorized blocks.
    """
    from torch import nn

    out: dict[str, str] = {}
    pending: tuple[str, int] | None = None
    for name, m in model.named_modules():
        copies = getattr(m, "copies", None)
        if isinstance(copies, int) and hasattr(m, "in_channels"):
            pending = (name, copies * int(m.in_channels))
        elif isinstance(m, nn.Conv2d) and pending is not None:
            if m.kernel_size == (1, 1) and m.in_channels == pending[1] and m.groups == 1:
                out[name] = pending[0]
            pending = None
    return out


def _panel_dict(ev: EigenvectorSimilarity) -> dict[str, Any]:
    k = int(ev.k)
    return {
        "matrix": np.asarray(ev.matrix, dtype=float).round(5).tolist(),
        "chance": float(ev.chance),
        "r_eff_a": float(ev.r_eff_1),
        "r_eff_b": float(ev.r_eff_2),
        "eigenvalues_a": np.asarray(ev.eigenvalues_1[:k], dtype=float).round(6).tolist(),
        "eigenvalues_b": np.asarray(ev.eigenvalues_2[:k], dtype=float).round(6).tolist(),
        "d": int(ev.d),
        "k": k,
    }


def eigenvector_panels(study: Any, pair: str | None = None) -> dict[str, EigenvectorSimilarity]:
    """The eigenvector-similarity results of a :func:`weight_similarity_study` frame (or
    of a :meth:`WeightsSummary.to_dict` / ``weights.json`` mapping), by layer, for
    :func:`nncompare.plot.weights_eigenvector_similarity`.

    Parameters
    ----------
    study : DataFrame of weight_similarity_study, or mapping layer -> panel dict
    pair : str, optional
        The pair to take (required when the study holds several).
    """
    stored = study.attrs["eigenvector_similarity"] if hasattr(study, "attrs") else study
    if pair is None:
        if hasattr(study, "attrs"):
            if len(stored) != 1:
                raise ValueError(
                    f"the study holds {len(stored)} pairs ({', '.join(map(str, stored))}); "
                    "pass pair= one of them."
                )
            stored = next(iter(stored.values()))
    else:
        if pair not in stored:
            raise ValueError(
                f"pair {pair!r} is not in the study; it holds {', '.join(map(str, stored))}."
            )
        stored = stored[pair]
    out = {}
    for layer, p in stored.items():
        M = np.asarray(p["matrix"], dtype=float)
        out[str(layer)] = EigenvectorSimilarity(
            matrix=M,
            chance=float(p["chance"]),
            r_eff_1=float(p["r_eff_a"]),
            r_eff_2=float(p["r_eff_b"]),
            eigenvalues_1=np.asarray(p.get("eigenvalues_a", []), dtype=float),
            eigenvalues_2=np.asarray(p.get("eigenvalues_b", []), dtype=float),
            d=int(p["d"]),
            k=int(p.get("k", M.shape[0])),
        )
    return out


def weight_similarity_study(
    pairs: Mapping[str, tuple[Any, Any]],
    data: Any,
    *,
    layers: Iterable[str] | None = None,
    k: int = 32,
    max_samples: int | None = None,
    batch_size: int = 256,
    n_rotations: int = 8,
    seed: int = 0,
) -> Any:
    """:func:`compare_weights` for named pairs of networks, with Fig. 3's matrices.

    For each pair: the per-layer frame of :func:`~nncompare.weights.compare_weights`
    (factorized blocks aligned at their depthwise input, :func:`factorized_align_at`)
    and, per layer, the |cos| matrix between the leading ``k`` eigenvectors of the two
    aligned covariances (:func:`~nncompare.weights.eigenvector_similarity`, effective
    ranks of the shrunk spectra).

    Parameters
    ----------
    pairs : mapping of str to (model_a, model_b)
        Named pairs of networks with the same layer names.
    data : inputs for the alignment
        As for :func:`compare_weights`; the same for every pair.
    layers : iterable of str, optional
        Weight layers to compare; None: all of them.
    k : int, default 32
        Leading eigenvectors in each similarity matrix (capped at the covariance size).
    max_samples, batch_size, n_rotations, seed
        Passed to :func:`compare_weights`.

    Returns
    -------
    pandas.DataFrame
        The concatenated frames with a ``pair`` column and a ``depth`` column (1-based
        position of the layer). ``attrs["eigenvector_similarity"]`` is
        ``{pair: {layer: {"matrix": list, "chance": float, "r_eff_a": float,
        "r_eff_b": float, "d": int}}}``.
    """
    import pandas as pd

    if not isinstance(pairs, Mapping) or not pairs:
        raise TypeError(
            "pairs must be a non-empty mapping {name: (model_a, model_b)}, got "
            f"{type(pairs).__name__}; pass e.g. {{'seeds': (net0, net1)}}."
        )
    frames, matrices = [], {}
    for name, pair in pairs.items():
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise TypeError(
                f"pairs[{name!r}] must be a (model_a, model_b) pair, got {type(pair).__name__}."
            )
        a, b = pair
        align_at = factorized_align_at(a)
        chosen = None if layers is None else list(layers)
        if chosen is not None:
            align_at = {key: v for key, v in align_at.items() if key in chosen}
        df = compare_weights(
            a,
            b,
            data,
            chosen,
            align_at=align_at or None,
            n_rotations=n_rotations,
            seed=seed,
            max_samples=max_samples,
            batch_size=batch_size,
        )
        covs = aligned_covariances(
            a,
            b,
            data,
            chosen,
            align_at=align_at or None,
            max_samples=max_samples,
            batch_size=batch_size,
        )
        per_layer = {}
        for layer, c in covs.items():
            d = int(c.C_a.shape[0])
            ev = eigenvector_similarity(c.C_a, c.C_b, min(k, d), gamma=(c.gamma_a, c.gamma_b))
            per_layer[layer] = _panel_dict(ev)
        matrices[str(name)] = per_layer
        df.insert(0, "pair", str(name))
        df.insert(2, "depth", np.arange(1, len(df) + 1))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {
        "experiment": "weight_similarity_study",
        "eigenvector_similarity": matrices,
        "n_rotations": int(n_rotations),
        "seed": int(seed),
    }
    return out


def channel_spectra(model: Any, layers: Iterable[str] | None = None) -> Any:
    """Channel-covariance spectra of a network's weight layers, raw and shrunk (eq. 3-4).

    For each Conv2d (ungrouped) and Linear layer: the eigenvalues of
    :func:`~nncompare.weights.channel_covariance` (normalised by PyTorch's default init
    variance), their shrinkage with γ = D / C_out (:func:`~nncompare.weights.shrink`), and
    the effective rank of the shrunk spectrum (:func:`~nncompare.weights.effective_rank`).

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``layer, depth, d, c_out, gamma, noise_edge, r_eff,
        n_learned`` (eigenvalues above the noise edge), ``top`` (largest raw eigenvalue)
        and the lists ``eigenvalues`` and ``shrunk`` (descending).
    """
    import pandas as pd

    modules = _layer_modules(model)
    names = list(modules) if layers is None else list(layers)
    rows = []
    for depth, name in enumerate(names, start=1):
        if name not in modules:
            raise ValueError(
                f"layer {name!r} is not an ungrouped Conv2d or Linear layer of the model; "
                f"expected one of {list(modules)[:12]}."
            )
        w = modules[name].weight.detach().double()
        if w.shape[0] < 2:
            continue  # a single neuron has no covariance (e.g. a one-logit head)
        lam = np.linalg.eigvalsh(np.asarray(channel_covariance(w).cpu().numpy()))[::-1]
        lam = np.clip(lam, 0, None)
        g = weight_gamma(w)
        shrunk = np.asarray(shrink(lam, g), dtype=float)
        rows.append(
            {
                "layer": name,
                "depth": depth,
                "d": int(lam.size),
                "c_out": int(w.shape[0]),
                "gamma": g,
                "noise_edge": noise_edge(g),
                "r_eff": effective_rank(shrunk) if shrunk.sum() > 0 else 0.0,
                "n_learned": int((shrunk > 0).sum()),
                "top": float(lam[0]),
                "eigenvalues": lam.round(6).tolist(),
                "shrunk": shrunk.round(6).tolist(),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class WeightsSummary:
    """What the weights section of a report shows (results only; JSON-ready via
    :meth:`to_dict`).

    Attributes
    ----------
    names : tuple of str
        Labels of the network(s): one, or two when they were compared.
    eigenfilters : dict of str to dict of str to SpatialEigenfilters
        Per network, its conv layers' spatial eigenfilters (Fig. 1).
    spectra : dict of str to pandas.DataFrame
        Per network, :func:`channel_spectra`.
    comparison : pandas.DataFrame or None
        :func:`~nncompare.weights.compare_weights` of the two networks (with ``depth``),
        None for one network.
    eigenvector_similarity : dict of str to EigenvectorSimilarity
        Per compared layer, the |cos| matrix of the leading aligned eigenvectors (Fig. 3).
    overlaps : pandas.DataFrame or None
        :func:`eigenfilter_universality` of the network(s) (top-3 spatial subspaces).
    options : dict
        How it was computed (k, max_samples, align_at, ...).
    """

    names: tuple[str, ...]
    eigenfilters: dict[str, dict[str, SpatialEigenfilters]]
    spectra: dict[str, Any]
    comparison: Any = None
    eigenvector_similarity: dict[str, EigenvectorSimilarity] = field(default_factory=dict)
    overlaps: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready data (lists and numbers)."""
        return {
            "names": list(self.names),
            "eigenfilters": {
                net: {
                    layer: {
                        "eigenvalues": np.asarray(r.eigenvalues).round(8).tolist(),
                        "eigenvectors": np.asarray(r.eigenvectors).round(6).tolist(),
                        "near_degenerate": np.asarray(r.near_degenerate).tolist(),
                        "kernel_size": int(r.kernel_size),
                        "n_filters": int(r.n_filters),
                    }
                    for layer, r in layers.items()
                }
                for net, layers in self.eigenfilters.items()
            },
            "spectra": {net: df.to_dict(orient="records") for net, df in self.spectra.items()},
            "comparison": None
            if self.comparison is None
            else self.comparison.to_dict(orient="records"),
            "eigenvector_similarity": {
                layer: _panel_dict(ev) for layer, ev in self.eigenvector_similarity.items()
            },
            "overlaps": None if self.overlaps is None else self.overlaps.to_dict(orient="records"),
            "options": dict(self.options),
        }


def weights_summary(
    model_a: Any,
    model_b: Any = None,
    data: Any = None,
    *,
    names: tuple[str, str] = ("A", "B"),
    layers: Iterable[str] | None = None,
    k: int = 32,
    max_samples: int | None = None,
    batch_size: int = 256,
    n_rotations: int = 8,
    seed: int = 0,
) -> WeightsSummary:
    """Everything the weights section of a report shows, for one network or two.

    One network: its spatial eigenfilters (conv layers with k ≥ 2), the overlaps of their
    top-3 eigen-subspaces, and its channel-covariance spectra with effective ranks. Two
    networks (and ``data`` to align them): the same for both, plus
    :func:`~nncompare.weights.compare_weights` (S by depth, Fig. 4; factorized blocks
    aligned at their depthwise input) and the eigenvector-similarity matrices (Fig. 3).

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        ``model_b`` optional.
    data : inputs for the alignment
        Required with ``model_b`` (as for :func:`compare_weights`).
    names : (str, str)
        Labels of the networks.
    layers : iterable of str, optional
        Weight layers to compare (default: all, whose names must agree).
    k : int, default 32
        Leading eigenvectors in each similarity matrix.
    max_samples, batch_size, n_rotations, seed
        Passed to :func:`compare_weights`.

    Returns
    -------
    WeightsSummary

    Raises
    ------
    ValueError
        With ``model_b`` but no ``data``, or layers that do not match.
    """
    from torch import nn

    if not isinstance(model_a, nn.Module):
        raise TypeError(f"model_a must be a torch.nn.Module, got {type(model_a).__name__}.")
    nets = {str(names[0]): model_a}
    if model_b is not None:
        if data is None:
            raise ValueError(
                "comparing two networks' channel weights needs data: inputs whose "
                "activations align the networks' channel bases (eq. 1). Pass data=... (the "
                "command line's --data), or compare one network alone."
            )
        if str(names[1]) == str(names[0]):
            names = (str(names[0]), f"{names[1]} (B)")
        nets[str(names[1])] = model_b
    eigenfilters: dict[str, dict[str, SpatialEigenfilters]] = {}
    for label, net in nets.items():
        try:
            eigenfilters[label] = spatial_eigenfilters(net)
        except ValueError:  # no k x k convolution (e.g. an MLP, or a factorized network)
            eigenfilters[label] = {}
    spectra = {label: channel_spectra(net, layers) for label, net in nets.items()}
    with_filters = {n: f for n, f in eigenfilters.items() if f}
    overlaps = eigenfilter_universality(with_filters, rank=3) if with_filters else None
    comparison, evsim = None, {}
    options: dict[str, Any] = {"k": int(k), "max_samples": max_samples, "seed": int(seed)}
    if model_b is not None:
        chosen = list(layers) if layers is not None else weight_layers(model_a, model_b)
        align_at = {key: v for key, v in factorized_align_at(model_a).items() if key in chosen}
        options["align_at"] = align_at
        # one pass over the data: the covariances serve the frame and the panels
        covs = aligned_covariances(
            model_a,
            model_b,
            data,
            chosen,
            align_at=align_at or None,
            max_samples=max_samples,
            batch_size=batch_size,
        )
        comparison = weights_frame(covs, n_rotations=n_rotations, seed=seed)
        comparison.insert(1, "depth", np.arange(1, len(comparison) + 1))
        for layer, c in covs.items():
            d = int(c.C_a.shape[0])
            if min(c.c_out_a, c.c_out_b) < 2:
                continue
            evsim[layer] = eigenvector_similarity(
                c.C_a, c.C_b, min(k, d), gamma=(c.gamma_a, c.gamma_b)
            )
    return WeightsSummary(
        names=tuple(nets),
        eigenfilters=eigenfilters,
        spectra=spectra,
        comparison=comparison,
        eigenvector_similarity=evsim,
        overlaps=overlaps,
        options=options,
    )
