"""Compare real models: every layer of one network against every layer of another.

One pass over the data drives all models batch by batch; forward hooks record the
chosen layers, convolutional outputs are reshaped by the chosen policy, and every batch
flows straight into joint streaming moments (:class:`nncompare.JointMoments`), so memory
does not grow with the number of samples for the linear measures (CCA family, linear
CKA, R², Procrustes, shape). Kernel and neighbourhood measures (``cka_debiased``,
``cka_rbf``, ``rsa``, ``mutual_knn``) need the samples themselves: their activations are
kept in memory (and the result says so).
"""

from __future__ import annotations

import copy
import datetime as _dt
import itertools
import platform
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nncompare._io import read_state_dict, state_dict_from
from nncompare._validation import NNCompareWarning, check_option
from nncompare.analyses.grid import RDMCache, parse_measures
from nncompare.measures._registry import distance as measure_distance
from nncompare.measures._registry import get as get_measure
from nncompare.stats import JointMoments

__all__ = ["compare_checkpoints", "compare_models", "default_layers"]

POLICIES = ("mean", "samples", "flatten", "dft")
_DFT_MEASURES = ("cca", "cca_r2", "svcca")
_SPECTRUM_MEASURES = ("cca", "svcca", "pwcca", "cca_r2")


def default_layers(model: Any, granularity: str = "blocks") -> list[str]:
    """The layers compared when none are given: :func:`nncompare.capture.default_layers`.

    ``"blocks"`` (the default) gives block outputs where the model is built of blocks
    (stem, every residual block ``layer1.0``, ``layer1.1``, ..., head) and every leaf
    otherwise; ``"leaves"`` every leaf except dropout, identity and flatten layers.
    """
    from nncompare.capture import default_layers as _default_layers

    return _default_layers(model, granularity)


class _Progress:
    """One progress display over a whole run: a tqdm bar per phase, on stderr.

    Phases are numbered ("[1/2] capture", "[2/2] measures"). Without tqdm one line per
    phase is written to stderr when it ends. Disabled, every method does nothing.
    """

    def __init__(self, enabled: bool, n_phases: int = 2) -> None:
        self.enabled = bool(enabled)
        self.n_phases = n_phases
        self._index = 0
        self._bar: Any = None
        self._plain: list[Any] = []

    def start(self, what: str, total: int | None, unit: str) -> None:
        self.close()
        if not self.enabled:
            return
        self._index += 1
        desc = f"nncompare [{self._index}/{self.n_phases}] {what}"
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm comes with the torch extra
            self._plain = [desc, total, unit, 0]
            return
        self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)
        elif self._plain:
            self._plain[3] += n

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._plain:
            desc, total, unit, done = self._plain
            of = f"/{total}" if total is not None else ""
            print(f"{desc}: {done}{of} {unit}s", file=sys.stderr)
            self._plain = []


def _to_matrix(t: Any, policy: str) -> tuple[Any, tuple[int, ...], str]:
    """Torch activation (N, C, *spatial) or (N, d) -> 2-D matrix, spatial group, policy used."""
    if t.ndim == 2:
        return t, (), "none"
    if t.ndim == 1:
        return t[:, None], (), "none"
    n, c = t.shape[0], t.shape[1]
    spatial = tuple(int(s) for s in t.shape[2:])
    if policy == "mean":
        return t.mean(dim=tuple(range(2, t.ndim))), (), "mean"
    cl = t.movedim(1, -1)  # (N, *spatial, C)
    if policy == "flatten":
        return cl.reshape(n, -1), (), "flatten"
    return cl.reshape(-1, c), spatial, "samples"


def _channels_last(t: Any) -> Any:
    """(N, C, *spatial) -> (N, *spatial, C); vectors (N, d) unchanged."""
    if t.ndim <= 2:
        return t if t.ndim == 2 else t[:, None]
    return t.movedim(1, -1)


def _update_spectral(
    stream: _Stream, acts: Mapping[str, Any], pairs: list[tuple[str, str]]
) -> None:
    """Feed one batch into per-frequency-grid spectral accumulators (exact DFT path)."""
    from nncompare.stats import SpectralMoments

    if not stream.spectral_members:
        nsp = max((a.ndim - 2 for a in acts.values()), default=0)
        if nsp == 0:
            raise ValueError(
                "conv='dft' needs convolutional layers; all chosen layers are vectors."
            )
        sizes: dict[str, tuple[int, ...]] = {}
        for key, a in acts.items():
            if a.ndim == 2:
                sizes[key] = (1,) * nsp
            elif a.ndim - 2 != nsp:
                raise ValueError(
                    "conv='dft' needs layers with the same number of spatial axes; got "
                    f"{a.ndim - 2} for {key!r} and {nsp} elsewhere."
                )
            else:
                sizes[key] = tuple(int(v) for v in a.shape[1:-1])
        for ka, kb in pairs:
            t = tuple(min(p, q) for p, q in zip(sizes[ka], sizes[kb], strict=True))
            stream.dft_target[(ka, kb)] = t
            members = stream.spectral_members.setdefault(t, [])
            for k in (ka, kb):
                if k not in members:
                    members.append(k)
        for t in stream.spectral_members:
            stream.spectral[t] = SpectralMoments(t)
    for t, members in stream.spectral_members.items():
        stream.spectral[t].update({k: acts[k] for k in members})


@dataclass
class _Stream:
    """Everything one pass over the data accumulates."""

    groups: dict[tuple[int, ...], JointMoments] = field(default_factory=dict)
    group_of: dict[str, tuple[int, ...]] = field(default_factory=dict)
    policy_of: dict[str, str] = field(default_factory=dict)
    width_of: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, list[np.ndarray]] = field(default_factory=dict)
    n_samples: int = 0
    spectral: dict[tuple[int, ...], Any] = field(default_factory=dict)
    spectral_members: dict[tuple[int, ...], list[str]] = field(default_factory=dict)
    dft_target: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)
    layers: dict[str, list[str]] = field(default_factory=dict)
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    pairs: list[Any] = field(default_factory=list)


def _run_stream(
    models: Mapping[str, tuple[Any, list[str]]],
    data: Any,
    *,
    conv: str,
    batch_size: int,
    device: Any,
    progress: bool,
    max_samples: int | None,
    keep_arrays: bool,
    pairs: list[tuple[str, str]] | Callable[[dict[str, list[str]]], list[Any]] | None = None,
    defaulted: Sequence[str] = (),
) -> _Stream:
    """One pass over ``data`` through every model, accumulating moments (and arrays).

    Glob patterns are resolved against the first batch, so that matches returning the
    very same tensor (a stage and its last block) are kept once
    (:func:`nncompare.capture.resolve_layers`); labels in ``defaulted`` (layer lists
    chosen by :func:`default_layers`) lose the modules that do not run. ``pairs`` may be
    a function of the final ``{label: layers}`` that returns the pairs to evaluate
    (``(key_a, key_b, ...)`` tuples); they are kept in ``stream.pairs``. ``progress`` is a
    bool or a :class:`_Progress` shared with the later phases.
    """
    import torch

    from nncompare.capture import ActivationRecorder, iter_batches
    from nncompare.capture._data import _n_samples_exact
    from nncompare.capture._layers import _output_groups, _resolve

    check_option("conv", conv, POLICIES)
    first_model = next(iter(models.values()))[0]
    if device is None:
        try:
            device = next(first_model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    for lab, (m, layers) in models.items():
        modules = dict(m.named_modules())
        for layer in _resolve(m, layers)[0]:
            if isinstance(modules.get(layer), torch.jit.ScriptModule):
                raise ValueError(
                    f"layer {layer!r} of {lab} is a TorchScript module, and TorchScript does not "
                    "support forward hooks, so its activations cannot be recorded. Record the "
                    "model's 'output' instead, or export the model with torch.export (dynamic "
                    "batch dimension), whose layers keep their names and can be hooked."
                )
    bar = progress if isinstance(progress, _Progress) else _Progress(progress, n_phases=1)
    batches = iter_batches(data, batch_size=batch_size, device=device, max_samples=max_samples)
    first = next(batches, None)
    if first is None:
        raise ValueError("the data yielded no samples; pass at least a few hundred inputs.")
    batches = itertools.chain([first], batches)
    probe = first[: min(2, len(first))]
    stream = _Stream()
    resolved: dict[str, tuple[Any, list[str]]] = {}
    for lab, (m, layers) in models.items():
        names, aliases = _resolve(m, layers, sample_input=probe)
        if lab in defaulted:
            not_run = set(_output_groups(m, names, probe)[1])
            names = [n for n in names if n not in not_run] or names
        resolved[lab] = (m, names)
        if aliases:
            stream.aliases[lab] = aliases
    stream.layers = {lab: names for lab, (_, names) in resolved.items()}
    if callable(pairs):
        stream.pairs = list(pairs(stream.layers))
        pairs = [(p[0], p[1]) for p in stream.pairs]
    # distinct model objects are run once each, whatever their labels
    by_model: dict[int, tuple[Any, list[str], list[str]]] = {}
    for lab, (m, layers) in resolved.items():
        entry = by_model.setdefault(id(m), (m, [], []))
        entry[1].append(lab)
        for layer in layers:
            if layer not in entry[2]:
                entry[2].append(layer)
    total = _n_samples_exact(data)
    if total is not None and max_samples is not None:
        total = min(total, max_samples)
    bar.start("capture", total, "sample")
    recorders = [
        (m, labels, ActivationRecorder(m, layers, reuse="first"))
        for m, labels, layers in by_model.values()
    ]
    try:
        for rec in (r for _, _, r in recorders):
            rec.__enter__()
        for x in batches:
            per_group: dict[tuple[int, ...], dict[str, Any]] = {}
            nb = int(x.shape[0])
            dft_acts: dict[str, Any] = {}
            for _m, labels, rec in recorders:
                out = rec.run(x)
                for lab in labels:
                    for layer in resolved[lab][1]:
                        key = f"{lab}:{layer}"
                        if conv == "dft":
                            dft_acts[key] = _channels_last(out[layer]).to(torch.float64)
                            stream.policy_of[key] = "dft"
                            stream.group_of[key] = ()
                            continue
                        mat, group, used = _to_matrix(out[layer], conv)
                        mat = mat.to(torch.float64)
                        prev = stream.group_of.setdefault(key, group)
                        if prev != group:
                            raise ValueError(
                                f"layer {layer!r} of {lab} changed its spatial size between "
                                f"batches ({prev} -> {group})."
                            )
                        stream.policy_of[key] = used
                        stream.width_of[key] = int(mat.shape[1])
                        per_group.setdefault(group, {})[key] = mat
                        if keep_arrays:
                            stream.arrays.setdefault(key, []).append(mat.cpu().numpy())
            for group, batch in per_group.items():
                stream.groups.setdefault(group, JointMoments()).update(batch)
            if conv == "dft":
                _update_spectral(stream, dft_acts, pairs or [])
            stream.n_samples += nb
            bar.update(nb)
    finally:
        for _, _, rec in recorders:
            rec.__exit__(None, None, None)
        bar.close()
    if stream.n_samples == 0:
        raise ValueError("the data yielded no samples; pass at least a few hundred inputs.")
    return stream


def _compute_pair(
    stream: _Stream,
    info: Any,
    key_a: str,
    key_b: str,
    ga: tuple[int, ...],
    gb: tuple[int, ...],
    measure: str,
    opts: dict[str, Any],
    arrays: Any,
    rdm_cache: RDMCache | None = None,
) -> Any:
    from nncompare.measures._registry import compute

    if ga != gb:
        raise ValueError(
            "conv='samples' pairs image locations, so both layers need the same spatial size; "
            f"got {ga or 'vector'} and {gb or 'vector'}. Use conv='mean' to compare across "
            "resolutions."
        )
    if stream.dft_target:
        return _dft_measure(stream, key_a, key_b, measure, opts)
    if info.streaming:
        return compute(stream.groups[ga].pair(key_a, key_b), None, measure, **opts)
    if measure == "rsa" and rdm_cache is not None:  # each layer's RDM and ranks once
        from nncompare.measures.rsa import rsa_cached

        return rsa_cached(
            arrays(key_a), arrays(key_b), keys=(key_a, key_b), cache=rdm_cache, **opts
        )
    return compute(arrays(key_a), arrays(key_b), measure, **opts)


def _dft_options(measure: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`dft_cca_from_comoments` for ``measure``'s options,
    each value checked as the measure itself checks it (``nc.svcca(..., conv="dft")``).

    Option names were checked by :func:`parse_measures` (every option of cca, cca_r2 and
    svcca has a meaning on the DFT path).
    """
    from nncompare._validation import check_fraction, check_positive_int
    from nncompare.measures._linalg import DEFAULT_RTOL
    from nncompare.measures.cca import _validate_rtol

    kw: dict[str, Any] = {"rtol": _validate_rtol(opts.get("rtol", DEFAULT_RTOL))}
    if measure != "svcca":
        return kw
    dims = opts.get("dims")
    if dims is None:
        kw["variance"] = check_fraction("variance", opts.get("variance", 0.99))
    elif isinstance(dims, tuple | list):
        if len(dims) != 2:
            raise ValueError(f"dims must be an int or a pair (dims_x, dims_y); got {dims!r}.")
        kw["dims"] = tuple(check_positive_int("dims", d) for d in dims)
    else:
        d = check_positive_int("dims", dims)
        kw["dims"] = (d, d)
    return kw


def _dft_measure(stream: _Stream, ka: str, kb: str, measure: str, opts: dict[str, Any]) -> Any:
    from nncompare.measures.conv import dft_cca_from_comoments

    if measure not in _DFT_MEASURES:
        raise ValueError(
            f"{measure} is not defined with conv='dft' (only {', '.join(_DFT_MEASURES)}); use "
            "conv='mean', 'samples' or 'flatten' for it."
        )
    kw = _dft_options(measure, opts)
    t = stream.dft_target[(ka, kb)]
    cxx, cyy, cxy = stream.spectral[t].pair(ka, kb)
    res = dft_cca_from_comoments(cxx, cyy, cxy, stream.n_samples, target=t, **kw)
    if measure == "cca_r2":
        r = np.asarray(res.rho)
        res = type(res)(**{**res.__dict__, "measure": "cca_r2", "value": float(np.mean(r**2))})
    return res


def _provenance(extra: dict[str, Any]) -> dict[str, Any]:
    import nncompare

    out: dict[str, Any] = {
        "nncompare": nncompare.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    out.update(extra)
    return out


def _evaluate(
    stream: _Stream,
    pairs: list[tuple[str, str, str, str]],
    spec: dict[str, dict[str, Any]],
    *,
    keep_spectra: bool,
    progress: _Progress | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Compute every measure for every (key_a, key_b) pair; tidy rows plus metadata."""
    bar = progress if progress is not None else _Progress(False)
    bar.start("measures", len(pairs) * len(spec), "pair")
    try:
        return _evaluate_all(stream, pairs, spec, keep_spectra=keep_spectra, bar=bar)
    finally:
        bar.close()


def _evaluate_all(
    stream: _Stream,
    pairs: list[tuple[str, str, str, str]],
    spec: dict[str, dict[str, Any]],
    *,
    keep_spectra: bool,
    bar: _Progress,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], dict[str, Any]]:

    rows: list[dict[str, Any]] = []
    spectra: dict[str, dict[str, list[float]]] = {}
    kept: dict[str, list[int]] = {}
    conventions: dict[str, Any] = {}
    mem_cache: dict[str, np.ndarray] = {}
    rdm_cache = RDMCache()

    def arrays(key: str) -> np.ndarray:
        if key not in mem_cache:
            mem_cache[key] = np.concatenate(stream.arrays[key], axis=0)
        return mem_cache[key]

    for measure, opts in spec.items():
        info = get_measure(measure)
        bar.note(measure)
        for key_a, key_b, label_a, label_b in pairs:
            row: dict[str, Any] = {"measure": measure, "error": None}
            ga, gb = stream.group_of[key_a], stream.group_of[key_b]
            pa, pb = stream.policy_of[key_a], stream.policy_of[key_b]
            row["policy"] = pa if pa == pb else f"{pa}/{pb}"
            res = None
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", NNCompareWarning)
                    res = _compute_pair(
                        stream, info, key_a, key_b, ga, gb, measure, opts, arrays, rdm_cache
                    )
                notes = [str(w.message) for w in caught if issubclass(w.category, NNCompareWarning)]
                for w in caught:
                    if not issubclass(w.category, NNCompareWarning):
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                if notes:
                    row["note"] = " ".join(dict.fromkeys(notes))
            except ValueError as exc:
                row["error"] = str(exc)
            row["value"] = float(res) if res is not None else float("nan")
            if res is not None:
                conventions.setdefault(measure, res.conventions)
                for attr in ("kept_dims_x", "kept_dims_y", "rank_x", "rank_y"):
                    v = getattr(res, attr, None)
                    if isinstance(v, int | np.integer):
                        row[attr] = int(v)
                pair_key = f"{label_a}|{label_b}"
                if keep_spectra and measure in _SPECTRUM_MEASURES and hasattr(res, "rho"):
                    from nncompare._array import to_numpy

                    spectra.setdefault(measure, {})[pair_key] = [
                        float(r) for r in to_numpy(res.rho)
                    ]
                if measure == "svcca":
                    kept[pair_key] = [int(res.kept_dims_x), int(res.kept_dims_y)]
            row["distance"] = measure_distance(measure, row["value"])
            row["_a"], row["_b"] = label_a, label_b
            rows.append(row)
            bar.update(1)
    meta = {
        name: {
            "options": spec[name],
            "conventions": conventions.get(name, {}),
            "higher_is_better": get_measure(name).higher_is_better,
            "reference": get_measure(name).reference,
            "description": get_measure(name).description,
            "streaming": get_measure(name).streaming,
        }
        for name in spec
    }
    return rows, spectra, kept, meta


def compare_models(
    model_a: Any,
    model_b: Any,
    data: Any,
    *,
    layers_a: Sequence[str] | str | None = None,
    layers_b: Sequence[str] | str | None = None,
    measures: Sequence[str] | Mapping[str, Mapping[str, Any]] | str = (
        "cka",
        "cca",
        "svcca",
        "pwcca",
    ),
    conv: str = "mean",
    batch_size: int = 256,
    device: Any = None,
    max_samples: int | None = None,
    progress: bool = False,
    names: tuple[str, str] = ("A", "B"),
    keep_spectra: bool = True,
    provenance: Mapping[str, Any] | None = None,
) -> Any:
    """Compare every chosen layer of ``model_a`` with every chosen layer of ``model_b``.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        The networks (the same object twice compares a model with itself; it runs once).
    data : tensor, ndarray, (x, y), Dataset or DataLoader
        Inputs, fed in batches (see :func:`nncompare.capture.iter_batches`).
    layers_a, layers_b : list of names or glob patterns, optional
        Default: :func:`nncompare.capture.default_layers` with ``granularity="blocks"``,
        i.e. the block outputs where a model is built of blocks (for a CIFAR ResNet-20 the
        stem ``relu``, the nine residual blocks ``layer1.0`` ... ``layer3.2``, ``avgpool``
        and ``linear``) and every leaf except dropout/identity/flatten where it is not (a
        flat Sequential such as ``SmallCNN``); default layers that do not run in the
        forward pass are left out. Pass ``nc.capture.default_layers(model, "leaves")`` for
        every leaf. ``layers_b`` defaults to ``layers_a`` when the two models are the same
        object. Glob matches that return the very same tensor as another match (a
        Sequential stage and its last block, a block and its final ReLU) are kept once,
        under the outermost name that is not a plain Sequential (``layer1.2`` for
        ``layer1``, ``layer1.2`` and ``layer1.2.relu2``; see
        :func:`nncompare.capture.resolve_layers`); ``df.attrs["layer_aliases"]`` lists
        what was merged. Exact names are always kept.
    measures : list of registry names, or {name: {option: value}}
        e.g. ``["cka", "svcca"]`` or ``{"svcca": {"variance": 0.99}, "pwcca": {}}``. An
        option the measure does not take raises ``TypeError`` (naming the ones it does)
        before any model runs; a bad option value gives the measure's own error in the
        ``error`` column of its rows, with every ``conv`` policy (``"dft"`` included).
    conv : {"mean", "samples", "flatten", "dft"}
        Reshape policy for convolutional outputs (N, C, H, W): spatial mean (N, C), every
        location a sample (N·H·W, C; only pairs of equal spatial size), one feature per
        (location, channel) (N, H·W·C), or the exact DFT path of Raghu et al. §3.1
        (per-frequency streaming moments, cropping to the smaller size; cca, cca_r2 and
        svcca only; vector layers count as spatial size 1, i.e. their DC term). Named in the
        ``policy`` column.
    batch_size, device, max_samples
        Data loading: batch size, device of the batches (default: model_a's), a cap on the
        samples used.
    progress : bool, default False
        Show progress on stderr (tqdm) over the whole run: "[1/2] capture" (samples, with
        total and ETA where the data size is known), then "[2/2] measures" (total =
        layer pairs × measures). The CLI shows it by default.
    names : (str, str)
        Labels of the two models in the output.
    keep_spectra : bool
        Keep canonical-correlation spectra in ``df.attrs["spectra"]``.
    provenance : mapping, optional
        Extra provenance (seeds, data description) stored in ``df.attrs["provenance"]``.

    Returns
    -------
    pandas.DataFrame
        One row per (layer_a, layer_b, measure): ``model_a``, ``model_b``, ``layer_a``,
        ``layer_b``, ``measure``, ``value``, ``distance``, ``policy``, ``n_samples`` and,
        where they apply,
        ``kept_dims_x``, ``kept_dims_y``, ``rank_x``, ``rank_y``, ``error`` (why a value is
        NaN) and ``note`` (the measure's warnings for that pair, e.g. rank deficiency or
        constant features, recorded instead of printed). ``df.attrs`` holds ``provenance``,
        ``measures`` (options, conventions, references), ``spectra``, ``kept_dims`` and
        ``layer_aliases``.

        ``distance`` goes with ``value`` by the rule the measure registry declares
        (``nc.measures.get(name).distance``; equal to the result object's ``.distance``):
        the angular shape metric θ = arccos(value) for ``procrustes`` and ``shape``
        (Williams et al. 2021; netrep's angular distance), the value itself for
        ``bures_wasserstein`` (already a distance), and 1 − value for every other
        measure (e.g. anatome's CCA/CKA distances; for ``rsa`` and ``cka_debiased``,
        whose values lie in [−1, 1], it lies in [0, 2]). NaN where ``value`` is NaN.

    Notes
    -----
    All layer pairs come from one pass over the data: per batch, one joint product of all
    recorded layers of both models updates the streaming moments.
    """
    import pandas as pd

    spec = parse_measures(measures)
    same = model_b is model_a
    la = default_layers(model_a) if layers_a is None else layers_a
    if layers_b is None:
        lb = la if same else default_layers(model_b)
    else:
        lb = layers_b
    keep_arrays = any(not get_measure(m).streaming for m in spec)
    models = {names[0]: (model_a, _as_list(la))}
    if not (same and _as_list(lb) == _as_list(la)):
        models[names[1] if names[1] != names[0] else names[1] + "'"] = (model_b, _as_list(lb))
    label_b = list(models)[-1]
    defaulted = [names[0]] if layers_a is None else []
    if layers_b is None and (layers_a is None or not same):
        defaulted.append(label_b)

    def make_pairs(layers: dict[str, list[str]]) -> list[tuple[str, str, str, str]]:
        return [
            (f"{names[0]}:{a}", f"{label_b}:{b}", a, b)
            for a in layers[names[0]]
            for b in layers[label_b]
        ]

    bar = _Progress(progress)
    stream = _run_stream(
        models,
        data,
        conv=conv,
        batch_size=batch_size,
        device=device,
        progress=bar,
        max_samples=max_samples,
        keep_arrays=keep_arrays,
        pairs=make_pairs,
        defaulted=defaulted,
    )
    pairs = stream.pairs
    rows, spectra, kept, meta = _evaluate(
        stream, pairs, spec, keep_spectra=keep_spectra, progress=bar
    )
    records = []
    for row in rows:
        rec = {
            "model_a": names[0],
            "model_b": names[1],
            "layer_a": row.pop("_a"),
            "layer_b": row.pop("_b"),
            "measure": row["measure"],
            "value": row["value"],
            "distance": row["distance"],
            "policy": row["policy"],
            "n_samples": stream.n_samples,
        }
        for k in ("kept_dims_x", "kept_dims_y", "rank_x", "rank_y"):
            if k in row:
                rec[k] = row[k]
        rec["error"] = row["error"]
        rec["note"] = row.get("note")
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    for col in ("kept_dims_x", "kept_dims_y", "rank_x", "rank_y"):
        if col in df:
            df[col] = df[col].astype("Int64")
    df.attrs["provenance"] = _provenance(
        {
            "model_a": _describe(model_a),
            "model_b": _describe(model_b),
            "n_samples": stream.n_samples,
            "conv_policy": conv,
            "batch_size": batch_size,
            "memory": "streaming moments (independent of n)"
            if not keep_arrays
            else "kernel/neighbourhood measures kept activations in memory",
            **dict(provenance or {}),
        }
    )
    df.attrs["measures"] = meta
    df.attrs["spectra"] = spectra
    df.attrs["kept_dims"] = kept
    df.attrs["layer_aliases"] = {
        (names[1] if lab == label_b else lab): al for lab, al in stream.aliases.items()
    }
    df.attrs["title"] = f"{names[0]} vs {names[1]}"
    return df


def _as_list(layers: Sequence[str] | str) -> list[str]:
    return [layers] if isinstance(layers, str) else list(layers)


def _describe(model: Any) -> dict[str, Any]:
    n_params = sum(int(p.numel()) for p in model.parameters())
    return {"class": type(model).__name__, "parameters": n_params}


def compare_checkpoints(
    model: Any,
    checkpoints: Sequence[Any],
    data: Any,
    *,
    layers: Sequence[str] | str | None = None,
    measures: Sequence[str] | Mapping[str, Mapping[str, Any]] | str = ("cka", "svcca"),
    reference: int | str = -1,
    labels: Sequence[str] | None = None,
    conv: str = "mean",
    batch_size: int = 256,
    device: Any = None,
    max_samples: int | None = None,
    progress: bool = False,
) -> Any:
    """Layer × checkpoint grid: each layer at each checkpoint against the same layer at
    the reference checkpoint (learning dynamics, Raghu et al. 2017 §4).

    Parameters
    ----------
    model : torch.nn.Module
        An instance of the architecture; it is copied, never modified.
    checkpoints : sequence of state dicts or paths (loaded with ``weights_only=True``)
    reference : int or "all"
        Index of the reference checkpoint (default: the last); "all" compares every
        checkpoint with every other (checkpoint × checkpoint grids per layer).
    labels : names of the checkpoints (default: "0", "1", ... or file stems).

    layers : list of names or glob patterns, optional
        Default and glob handling as ``layers_a`` of :func:`compare_models` (block outputs
        where the model has blocks, else leaves).
    progress : bool, default False
        Progress on stderr for the capture and the measure phase, as in
        :func:`compare_models`.

    Returns
    -------
    pandas.DataFrame
        Columns ``checkpoint``, ``reference``, ``layer``, ``measure``, ``value``,
        ``distance`` (as in :func:`compare_models`), ``policy``, ``n_samples``, ``error``;
        attrs as :func:`compare_models`.
    """
    import pandas as pd

    if len(checkpoints) < 1:
        raise ValueError("checkpoints must hold at least one state dict or path.")
    spec = parse_measures(measures)
    if labels is None:
        labels = [_ckpt_label(c, i) for i, c in enumerate(checkpoints)]
    labels = [str(lab) for lab in labels]
    if len(set(labels)) != len(labels) or len(labels) != len(checkpoints):
        raise ValueError("labels must be unique, one per checkpoint.")
    layer_list = default_layers(model) if layers is None else _as_list(layers)
    models: dict[str, tuple[Any, list[str]]] = {}
    for lab, ck in zip(labels, checkpoints, strict=True):
        m = copy.deepcopy(model)
        if isinstance(ck, Mapping):
            state = state_dict_from(ck, source=f"checkpoint {lab!r}")
        else:
            state = read_state_dict(ck, what=f"checkpoint {lab!r}")
        m.load_state_dict(state)
        models[lab] = (m, layer_list)
    keep_arrays = any(not get_measure(x).streaming for x in spec)
    if reference == "all":
        refs = labels
    else:
        try:
            refs = [labels[int(reference)]]
        except (IndexError, ValueError, TypeError):
            raise ValueError(
                f"reference must be a checkpoint index in [-{len(labels)}, {len(labels) - 1}] "
                f"or 'all'; got {reference!r}."
            ) from None

    def make_pairs(layers: dict[str, list[str]]) -> list[tuple[str, str, str, str]]:
        return [
            (f"{lab}:{layer}", f"{ref}:{layer}", f"{lab}@{layer}", f"{ref}@{layer}")
            for layer in layers[labels[0]]
            for lab in labels
            for ref in refs
        ]

    bar = _Progress(progress)
    stream = _run_stream(
        models,
        data,
        conv=conv,
        batch_size=batch_size,
        device=device,
        progress=bar,
        max_samples=max_samples,
        keep_arrays=keep_arrays,
        pairs=make_pairs,
        defaulted=labels if layers is None else (),
    )
    rows, _, _, meta = _evaluate(stream, stream.pairs, spec, keep_spectra=False, progress=bar)
    records = []
    for row in rows:
        ck, layer = row.pop("_a").split("@", 1)
        ref = row.pop("_b").split("@", 1)[0]
        records.append(
            {
                "checkpoint": ck,
                "reference": ref,
                "layer": layer,
                "measure": row["measure"],
                "value": row["value"],
                "distance": row["distance"],
                "policy": row["policy"],
                "n_samples": stream.n_samples,
                "error": row["error"],
                "note": row.get("note"),
            }
        )
    df = pd.DataFrame.from_records(records)
    df.attrs["provenance"] = _provenance(
        {
            "model": _describe(model),
            "checkpoints": labels,
            "n_samples": stream.n_samples,
            "conv_policy": conv,
        }
    )
    df.attrs["measures"] = meta
    return df


def _ckpt_label(ck: Any, i: int) -> str:
    if isinstance(ck, str | bytes) or hasattr(ck, "__fspath__"):
        from pathlib import Path

        return Path(ck).stem
    return str(i)
