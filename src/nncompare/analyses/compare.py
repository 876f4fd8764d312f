"""Compare real models: every layer of one network against every layer of another.

One pass over the data drives all models batch by batch; forward hooks record the
chosen layers, convolutional outputs are reshaped by the chosen policy, and every batch
flows straight into joint streaming moments (:class:`nncompare.JointMoments`), so memory
does not grow with the number of samples for the linear measures (CCA family, linear
CKA, R², Procrustes, shape). Kernel and neighbourhood measures (``cka_debiased``,
``cka_rbf``, ``rsa``, ``mutual_knn``) need the samples themselves: their activations are
kept in memory (and the result says so).

Both front doors are thin: they name the sources (model labels × layers, one label per
checkpoint) and the pairs, and :mod:`nncompare.analyses.engine` does the rest.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from nncompare._io import read_state_dict, state_dict_from
from nncompare.analyses.engine import (
    POLICIES,
    Pair,
    Progress,
    capture_sources,
    evaluate,
    measure_metadata,
    models_result,
    tidy_frame,
    tidy_rows,
    validate_executor,
)
from nncompare.analyses.engine import provenance as run_provenance
from nncompare.analyses.grid import parse_measures
from nncompare.analyses.inference import (
    annotate,
    check_conv,
    check_settings,
    random_copy,
    random_network_outcomes,
)
from nncompare.measures._registry import get as get_measure
from nncompare.results import ComparisonResult

__all__ = ["POLICIES", "compare_checkpoints", "compare_models", "default_layers"]

# the engine's names under their former private names (tests and scripts use them)
_run_stream = capture_sources
_Progress = Progress


def default_layers(model: Any, granularity: str = "blocks") -> list[str]:
    """The layers compared when none are given: :func:`nncompare.capture.default_layers`.

    ``"blocks"`` (the default) gives block outputs where the model is built of blocks
    (stem, every residual block ``layer1.0``, ``layer1.1``, ..., head) and every leaf
    otherwise; ``"leaves"`` every leaf except dropout, identity and flatten layers.
    """
    from nncompare.capture import default_layers as _default_layers

    return _default_layers(model, granularity)


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
    executor: Any = None,
    resume: Any = None,
    ci: float | None = None,
    n_boot: int = 1000,
    n_perm: int = 0,
    baseline: str | Sequence[str] | None = None,
    bootstrap: str | tuple[str, int] = "samples",
    interval: str = "basic",
    seed: int = 0,
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
    executor : None, "threads", "processes", "dask", str or object with ``map(fn, items)``
        Evaluates the (measure, layer pair) tasks: None (the default) runs them in this
        process; ``"threads"``, ``"processes"`` and ``"dask"`` (a 2-worker LocalCluster)
        name an executor made and closed for this call, as does a Dask scheduler address
        (``"tcp://host:8786"``) or a ``distributed.Client``; or
        :class:`nncompare.parallel.ThreadExecutor`,
        :class:`nncompare.parallel.ProcessExecutor`,
        :class:`nncompare.parallel.DaskExecutor`, a
        :class:`concurrent.futures.ProcessPoolExecutor`, or any object whose
        ``map(fn, items)`` returns the results in order (see :mod:`nncompare.parallel`).
        The results equal the serial ones.
    resume : path, optional
        A directory for the result store (``results.sqlite``, see
        :func:`nncompare.compare_many`): rows stored there by an earlier run with the same
        models (content fingerprints), layers, measures, options and data (hash) are read,
        not computed; the missing ones are computed and committed in one transaction. Not
        with the statistics (``ci``, ``n_perm``, ``baseline``), which are not stored.
    ci : float, optional
        Confidence level (e.g. 0.95) of a bootstrap interval over samples for every value:
        columns ``ci_low``, ``ci_high`` (see ``interval``) and ``boot_se``. Any of
        ``ci``, ``n_perm`` or a permutation/rotation ``baseline`` keeps the activations in
        memory (O(n·D), as the kernel measures do); not with ``conv="dft"``. See
        :mod:`nncompare.analyses.inference` for what each statistic is.
    n_boot : int, default 1000
        Bootstrap replicates.
    n_perm : int, default 0
        Permutations of the samples of B (the pairing broken) for a one-sided
        permutation-test p-value: columns ``p_value``, ``null_mean``, ``null_sd``.
    baseline : {"permutation", "rotation", "random_network"} or a list of them, optional
        Null baselines, one column each (``baseline_<name>``): the mean value with the
        samples shuffled, with both layers rotated by Haar-random orthogonal matrices (NaN
        with a note for measures the registry declares rotation invariant, where it would
        equal the value), ``n_perm`` draws (100 when ``n_perm=0``) each; and the value
        against a re-initialised deep copy of model B (``reset_parameters()`` of every
        module, seeded from ``seed``; the models passed in are never modified), from one
        more pass over the data.
    bootstrap : {"samples", "blocks"} or ("blocks", n_blocks)
        ``"samples"``: the i.i.d. bootstrap (exact). ``"blocks"``: for streaming measures,
        the bootstrap of 50 (or ``n_blocks``) contiguous blocks of samples from per-block
        moments (cheaper; assumes shuffled data); the other measures use ``"samples"``.
    interval : {"basic", "percentile", "bc"}, default "basic"
        How ``ci_low``/``ci_high`` are read off the replicates
        (:func:`nncompare.analyses.inference.interval`): the basic (reflected) interval
        corrects for the bias the replicates show and covers best for the biased
        estimators (linear CKA, the CCA family; benchmarks/calibration.py); it may reach
        outside the measure's range.
    seed : int, default 0
        Seed of every draw (each (measure, pair) gets its own stream, so the numbers do
        not depend on the executor).

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
        ``layer_aliases``; :meth:`nncompare.ComparisonResult.from_frame` gives the same
        metadata typed (pairs keyed by ``(layer_a, layer_b)`` tuples).

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
    spec = parse_measures(measures)
    run = validate_executor(executor)
    stats = check_settings(
        ci, n_boot, n_perm, baseline, bootstrap=bootstrap, seed=seed, interval=interval
    )
    _check_stats_conv(stats, conv)
    same = model_b is model_a
    la = default_layers(model_a) if layers_a is None else layers_a
    if layers_b is None:
        lb = la if same else default_layers(model_b)
    else:
        lb = layers_b
    keep_arrays = any(not get_measure(m).streaming for m in spec) or bool(
        stats and stats.needs_arrays
    )
    models = {names[0]: (model_a, _as_list(la))}
    if not (same and _as_list(lb) == _as_list(la)):
        models[names[1] if names[1] != names[0] else names[1] + "'"] = (model_b, _as_list(lb))
    label_b = list(models)[-1]
    defaulted = [names[0]] if layers_a is None else []
    if layers_b is None and (layers_a is None or not same):
        defaulted.append(label_b)

    def make_pairs(layers: dict[str, list[str]]) -> list[Pair]:
        return [((names[0], a), (label_b, b)) for a in layers[names[0]] for b in layers[label_b]]

    if resume is not None:  # rows read from, and written to, the result store
        if stats is not None:
            raise ValueError(
                "resume stores the values only, not ci, n_perm or baseline columns; run the "
                "statistics without resume (or resume without them)."
            )
        from nncompare.analyses.many import compare_models_resumed

        return compare_models_resumed(
            model_a,
            model_b,
            data,
            models=models,
            defaulted=defaulted,
            make_pairs=make_pairs,
            spec=spec,
            names=(names[0], names[1]),
            conv=conv,
            batch_size=batch_size,
            device=device,
            max_samples=max_samples,
            progress=progress,
            keep_spectra=keep_spectra,
            provenance=provenance or {},
            executor=run,
            resume=resume,
        )
    bar = Progress(progress)
    acc = capture_sources(
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
    pairs = acc.pairs
    outcomes = evaluate(acc, pairs, spec, executor=run, keep_spectra=keep_spectra, progress=bar)
    prov = run_provenance(
        {
            "model_a": _describe(model_a),
            "model_b": _describe(model_b),
            "n_samples": acc.n_samples,
            "conv_policy": conv,
            "batch_size": batch_size,
            "memory": "streaming moments (independent of n)"
            if not keep_arrays
            else "kernel/neighbourhood measures kept activations in memory",
            **dict(provenance or {}),
        }
    )
    aliases = {(names[1] if lab == label_b else lab): al for lab, al in acc.aliases.items()}
    result = models_result(acc, pairs, outcomes, spec, names[:2], prov, aliases)
    if stats is not None:
        rnd = None
        if "random_network" in stats.baselines:
            label_r = f"{label_b} (random init)"
            rnd = random_network_outcomes(
                {names[0]: (model_a, acc.layers[names[0]]),
                 label_r: (random_copy(model_b, stats.seed), acc.layers[label_b])},
                [(a, (label_r, b[1])) for a, b in pairs], spec, data, executor=run,
                conv=conv, batch_size=batch_size, device=device, max_samples=max_samples,
            )  # fmt: skip
        result.provenance["inference"] = stats.as_dict()
        annotate(result.frame, acc, pairs, spec, outcomes, stats, executor=run, random_outcomes=rnd)
    return result.to_frame()


_check_stats_conv = check_conv


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
    executor: Any = None,
    ci: float | None = None,
    n_boot: int = 1000,
    n_perm: int = 0,
    baseline: str | Sequence[str] | None = None,
    bootstrap: str | tuple[str, int] = "samples",
    interval: str = "basic",
    seed: int = 0,
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
    executor : None, "threads", "processes", "dask", str or object with ``map(fn, items)``
        Evaluates the (measure, pair) tasks, as in :func:`compare_models`.
    ci : float, optional
        Confidence level (e.g. 0.95) of a bootstrap interval over samples for every value:
        columns ``ci_low``, ``ci_high`` (see ``interval``) and ``boot_se``. Any of
        ``ci``, ``n_perm`` or a permutation/rotation ``baseline`` keeps the activations in
        memory (O(n·D), as the kernel measures do); not with ``conv="dft"``. See
        :mod:`nncompare.analyses.inference` for what each statistic is.
    n_boot : int, default 1000
        Bootstrap replicates.
    n_perm : int, default 0
        Permutations of the samples of B (the pairing broken) for a one-sided
        permutation-test p-value: columns ``p_value``, ``null_mean``, ``null_sd``.
    baseline : {"permutation", "rotation", "random_network"} or a list of them, optional
        Null baselines, one column each (``baseline_<name>``): the mean value with the
        samples shuffled, with both layers rotated by Haar-random orthogonal matrices (NaN
        with a note for measures the registry declares rotation invariant, where it would
        equal the value), ``n_perm`` draws (100 when ``n_perm=0``) each; and the value
        of a re-initialised deep copy of ``model`` against the reference checkpoint, from
        one more pass over the data.
    bootstrap : {"samples", "blocks"} or ("blocks", n_blocks)
        ``"samples"``: the i.i.d. bootstrap (exact). ``"blocks"``: for streaming measures,
        the bootstrap of 50 (or ``n_blocks``) contiguous blocks of samples from per-block
        moments (cheaper; assumes shuffled data); the other measures use ``"samples"``.
    interval : {"basic", "percentile", "bc"}, default "basic"
        How ``ci_low``/``ci_high`` are read off the replicates
        (:func:`nncompare.analyses.inference.interval`): the basic (reflected) interval
        corrects for the bias the replicates show and covers best for the biased
        estimators (linear CKA, the CCA family; benchmarks/calibration.py); it may reach
        outside the measure's range.
    seed : int, default 0
        Seed of every draw (each (measure, pair) gets its own stream, so the numbers do
        not depend on the executor).

    Returns
    -------
    pandas.DataFrame
        Columns ``checkpoint``, ``reference``, ``layer``, ``measure``, ``value``,
        ``distance`` (as in :func:`compare_models`), ``policy``, ``n_samples``, ``error``;
        attrs as :func:`compare_models`.
    """
    if len(checkpoints) < 1:
        raise ValueError("checkpoints must hold at least one state dict or path.")
    spec = parse_measures(measures)
    run = validate_executor(executor)
    stats = check_settings(
        ci,
        n_boot,
        n_perm,
        baseline,
        bootstrap=bootstrap,
        seed=seed,
        interval=interval,
        where="compare_checkpoints",
    )
    _check_stats_conv(stats, conv)
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
    keep_arrays = any(not get_measure(x).streaming for x in spec) or bool(
        stats and stats.needs_arrays
    )
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

    def make_pairs(layers: dict[str, list[str]]) -> list[Pair]:
        return [
            ((lab, layer), (ref, layer))
            for layer in layers[labels[0]]
            for lab in labels
            for ref in refs
        ]

    bar = Progress(progress)
    acc = capture_sources(
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
    outcomes = evaluate(acc, acc.pairs, spec, executor=run, progress=bar)
    rows = tidy_rows(
        acc,
        acc.pairs,
        outcomes,
        lambda p: {"checkpoint": p[0][0], "reference": p[1][0], "layer": p[0][1]},
        details=False,
    )
    result = ComparisonResult(
        frame=tidy_frame(rows),
        kind="checkpoints",
        names=tuple(labels),
        layers_a=list(acc.layers[labels[0]]),
        layers_b=list(acc.layers[labels[0]]),
        measures=measure_metadata(spec, outcomes),
        provenance=run_provenance(
            {
                "model": _describe(model),
                "checkpoints": labels,
                "n_samples": acc.n_samples,
                "conv_policy": conv,
            }
        ),
        n_samples=acc.n_samples,
    )
    if stats is not None:
        rnd = None
        if "random_network" in stats.baselines:
            label_r = "random init"
            while label_r in labels:
                label_r += "'"
            sources = {
                ref: (models[ref][0], list(acc.layers[ref]))
                for ref in dict.fromkeys(p[1][0] for p in acc.pairs)
            }
            sources[label_r] = (random_copy(model, stats.seed), list(acc.layers[labels[0]]))
            rnd = random_network_outcomes(
                sources, [((label_r, a[1]), b) for a, b in acc.pairs], spec, data,
                executor=run, conv=conv, batch_size=batch_size, device=device,
                max_samples=max_samples,
            )  # fmt: skip
        result.provenance["inference"] = stats.as_dict()
        annotate(
            result.frame, acc, acc.pairs, spec, outcomes, stats, executor=run, random_outcomes=rnd
        )
    return result.to_frame()


def _ckpt_label(ck: Any, i: int) -> str:
    if isinstance(ck, str | bytes) or hasattr(ck, "__fspath__"):
        from pathlib import Path

        return Path(ck).stem
    return str(i)
