"""``capture``: run data through a model once and collect, stream or cache activations."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nncompare.capture._cache import (
    PROBE_ROWS,
    CapturedActivations,
    _CacheWriter,
    _DataHasher,
    array_fingerprint,
    check_replaceable,
    load_cache,
    model_fingerprint,
    new_manifest,
    probe_difference,
    probe_summary,
    remove_stale_partials,
)
from nncompare.capture._data import _is_array, _n_samples_exact, iter_batches
from nncompare.capture._errors import StaleCacheError
from nncompare.capture._layers import _check_model, _model_device, _model_float_dtype
from nncompare.capture._recorder import (
    ActivationRecorder,
    Reduce,
    Reuse,
    Selector,
    _describe_selector,
)

__all__ = ["capture"]

Consumer = Callable[[int, dict[str, torch.Tensor]], Any]


def _as_torch_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
            return getattr(torch, dtype)
        return torch.from_numpy(np.empty(0, dtype=np.dtype(dtype))).dtype
    except (TypeError, ValueError):
        pass
    raise TypeError(
        f"Expected dtype to be a torch.dtype (e.g. torch.float32), a numpy dtype or None, "
        f"got {dtype!r}."
    )


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype in (torch.bfloat16,) or (t.dtype.itemsize == 1 and t.is_floating_point()):
        t = t.float()  # numpy has no bfloat16 / float8
    return t.cpu().numpy()


def _progress_bar(enabled: bool, total: int | None, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is an optional dependency
        return None
    return tqdm(total=total, unit="sample", desc=desc)


def _array_inputs(data: Any) -> Any:
    """The input array/tensor of in-memory data (``x`` or ``(x, y)``), else None."""
    if _is_array(data):
        return data
    if isinstance(data, tuple | list) and data and _is_array(data[0]):
        return data[0]
    return None


def _data_fingerprint(data: Any, max_samples: int | None) -> str | None:
    """Hash of every input sample of in-memory data (None for datasets, loaders, iterables).

    Reads the whole array in blocks (labels are ignored); a change of any element,
    of the dtype or of the number of samples changes it.
    """
    x = _array_inputs(data)
    if x is None or (isinstance(x, np.ndarray) and x.dtype.hasobject):
        return None  # object arrays: hashed as batches, after conversion says what is wrong
    n = len(x) if max_samples is None else min(len(x), max_samples)
    return array_fingerprint(x, n)


def _probe_or_error(model: nn.Module, x: torch.Tensor | None) -> dict[str, Any]:
    """``{"probe": summary}``, or ``{"probe": None, "probe_error": why}`` if it fails."""
    if x is None:
        return {"probe": None, "probe_error": "no inputs"}
    try:
        return {"probe": probe_summary(model, x[:PROBE_ROWS])}
    except Exception as err:  # the capture itself reports real model errors
        return {"probe": None, "probe_error": f"{type(err).__name__}: {err}"}


def _stale_reasons(
    manifest: dict[str, Any],
    fingerprint: str,
    options: dict[str, Any],
    n_expected: int | None,
) -> list[str]:
    """Reasons a cache does not fit, from what is known without reading the data."""
    reasons = []
    model_entry = manifest.get("model", {})
    found_fp = model_entry.get("fingerprint")
    if found_fp != fingerprint:
        reasons.append(
            f"model weights differ (or its buffers or configuration; cache {found_fp}, "
            f"model {fingerprint})"
        )
    found_opts = manifest.get("options", {})
    for key, value in options.items():
        if found_opts.get(key) != value:
            reasons.append(f"{key} differs (cache {found_opts.get(key)!r}, now {value!r})")
    if n_expected is not None and manifest.get("n_samples") != n_expected:
        reasons.append(f"n_samples differs (cache {manifest.get('n_samples')}, now {n_expected})")
    return reasons


def _data_reasons(
    manifest: dict[str, Any],
    model: nn.Module,
    data: Any,
    *,
    batch_size: int,
    device: torch.device,
    max_samples: int | None,
) -> list[str]:
    """Reasons a cache does not fit the data or the model's outputs (reads the data once).

    In-memory arrays are hashed directly. Datasets, loaders and iterables are run
    through once without the model, hashing the batches as they come; the cache fits
    only if exactly the same samples come again in the same order.
    """
    float_dtype = _model_float_dtype(model)
    cached_data = manifest.get("data", {})
    cached_fp = cached_data.get("fingerprint")
    if _array_inputs(data) is not None:
        data_fp = _data_fingerprint(data, max_samples)
        first = next(iter_batches(data, 1, device, dtype=float_dtype, max_samples=PROBE_ROWS), None)
        streamed = False
    else:
        hasher = _DataHasher()
        first = None
        for x in iter_batches(data, batch_size, None, dtype=float_dtype, max_samples=max_samples):
            if first is None:
                first = x[:PROBE_ROWS].to(device)
            hasher.update(x)
        data_fp = hasher.hexdigest()
        streamed = True
        if manifest.get("n_samples") != hasher.n:
            return [
                f"the data yielded {hasher.n} samples, the cache holds {manifest.get('n_samples')}"
            ]
    if cached_fp is None or data_fp != cached_fp:
        how = (
            " (the data source yielded other samples, or the same in another order: a "
            "shuffling DataLoader or random augmentation never matches a cache)"
            if streamed
            else ""
        )
        return [f"the input data differ{how}"]
    cached_probe = manifest.get("model", {}).get("probe")
    if cached_probe is None:
        return []
    now = _probe_or_error(model, first)
    if now["probe"] is None:
        return [f"the model fails on the first inputs now ({now['probe_error']})"]
    diff = probe_difference(cached_probe, now["probe"])
    if diff is not None:
        return [
            "the model's output on the first inputs differs although its weights are the "
            f"same: {diff} (an attribute or other state read by forward() changed)"
        ]
    return []


def _replay(
    cached: CapturedActivations,
    consumer: Consumer,
    batch_size: int,
    device: torch.device,
    bar: Any,
) -> None:
    """Feed cached activations to ``consumer`` batch by batch, as a live capture would."""
    for index, start in enumerate(range(0, cached.n_samples, batch_size)):
        stop = min(start + batch_size, cached.n_samples)
        batch = {
            name: torch.from_numpy(np.array(cached[name][start:stop])).to(device)
            for name in cached.names
        }
        consumer(index, batch)
        if bar is not None:
            bar.update(stop - start)


def capture(
    model: nn.Module,
    data: Any,
    layers: str | Iterable[str],
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: bool = False,
    consumer: Consumer | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    max_samples: int | None = None,
    dtype: torch.dtype | None = torch.float32,
    select: Selector | Mapping[str, Selector] | None = None,
    reduce: Reduce | None = None,
    reuse: Reuse = "all",
    detach: bool = True,
    train_mode: bool | None = False,
    overwrite: bool = False,
) -> CapturedActivations | None:
    """Run ``data`` through ``model`` once and collect the activations of ``layers``.

    Parameters
    ----------
    model : torch.nn.Module
        The network. It is not moved; hooks are removed and every submodule's
        train/eval mode restored afterwards, also on errors.
    data : tensor, ndarray, (x, y), Dataset, DataLoader or iterable of batches
        The inputs; see :func:`~nncompare.capture.iter_batches`. Labels are ignored.
        Floating-point inputs are cast to the model's dtype.
    layers : str or iterable of str
        Module names or glob patterns (see :func:`~nncompare.capture.resolve_layers`
        and :func:`~nncompare.capture.list_layers`).
    batch_size : int, default 256
        Samples per forward pass (ignored for DataLoaders and iterables).
    device : torch.device, str or None, default None
        Where inputs are sent; None means the device of the model's parameters.
    progress : bool, default False
        Show a tqdm progress bar (silently none if tqdm is not installed).
    consumer : callable ``(batch_index, {name: tensor (batch, ...)}) -> Any`` or None
        Called once per batch, in data order, with the batch's activations on
        ``device``. With a consumer and no ``cache_dir`` nothing is kept, so memory
        does not grow with the number of samples, and None is returned. This is how
        activations stream into :mod:`nncompare.stats`.
    cache_dir : path-like or None, default None
        Directory to store this capture in (created atomically, every layer file
        checksummed; format in :mod:`nncompare.capture._cache`). If it already holds
        a cache, it is reused instead of running the model (and fed to ``consumer``
        if given) only when all of these match: its checksums (a corrupt cache
        raises :class:`InvalidCacheError`; it is never replaced silently), the
        model's fingerprint (class, submodule configuration, weights and buffers),
        layers and options, the data (a hash of every input sample: arrays and
        tensors are hashed up front, datasets, loaders and iterables are read once
        without the model and must yield the same samples in the same order), and
        the model's output on the first sample (a probe that catches attributes
        such as ``self.scale`` read in ``forward``). Otherwise
        :class:`StaleCacheError` says what differs. Build directories left by
        interrupted captures in the same folder are removed once their process has
        ended. The result is memory-mapped, so memory stays flat also without a
        consumer.
    max_samples : int or None, default None
        Use only the first ``max_samples`` inputs.
    dtype : torch.dtype or None, default torch.float32
        Dtype of the delivered activations; None keeps the model's (bfloat16 and
        float8 become float32 when stored as numpy).
    select, reduce, reuse, train_mode :
        As for :class:`~nncompare.capture.ActivationRecorder`: which tensor to take
        from tuple/dict outputs, an optional per-tensor reduction (``"avgpool"``,
        ``"flatten"``, callable), what to do with modules called several times
        (default ``"all"``: keys ``name``, ``name#1``, ...), and the mode to run in
        (default eval).
    detach : bool, default True
        With True the forward passes run under :func:`torch.no_grad`. With False
        activations keep their autograd graph (useful with a consumer only).
    overwrite : bool, default False
        Replace an existing cache at ``cache_dir`` instead of reusing it or raising.

    Returns
    -------
    CapturedActivations or None
        Arrays of shape ``(n_samples, ...)`` per recorded layer (conv outputs as
        ``(n, c, h, w)``). None when a ``consumer`` is given without ``cache_dir``.

    Raises
    ------
    LayerNotFoundError
        If a layer name or pattern matches nothing.
    StaleCacheError
        If ``cache_dir`` holds a cache for another model/layers/options/data and
        ``overwrite`` is False.
    InvalidCacheError
        If ``cache_dir`` exists but is not an nncompare cache, or its data fail the
        checksums (corrupt: delete it or pass ``overwrite=True``).
    RuntimeError
        If a layer does not run, or the recorded layers/shapes change between
        batches.
    ValueError
        If ``data`` yields no samples.

    Examples
    --------
    >>> acts = capture(model, x, ["layer1", "layer2"], batch_size=128)  # doctest: +SKIP
    >>> acts["layer1"].shape  # doctest: +SKIP
    (10000, 64, 56, 56)
    """
    model = _check_model(model)
    if consumer is not None and not callable(consumer):
        raise TypeError(
            f"Expected consumer to be a callable (batch_index, activations) or None, got "
            f"{type(consumer).__name__}."
        )
    out_dtype = _as_torch_dtype(dtype)
    dev = torch.device(device) if device is not None else _model_device(model)
    recorder = ActivationRecorder(
        model,
        layers,
        detach=detach,
        clone=True,
        reduce=reduce,
        select=select,
        reuse=reuse,
        train_mode=train_mode,
        dtype=out_dtype,
    )
    batches = iter_batches(
        data, batch_size, dev, dtype=_model_float_dtype(model), max_samples=max_samples
    )
    n_expected = _n_samples_exact(data)
    if n_expected is not None and max_samples is not None:
        n_expected = min(n_expected, max_samples)

    writer: _CacheWriter | None = None
    manifest: dict[str, Any] | None = None
    stream_hasher: _DataHasher | None = None
    if cache_dir is not None:
        cache_path = Path(cache_dir)
        remove_stale_partials(cache_path.parent)
        fingerprint = model_fingerprint(model)
        options = {
            "layers": recorder.layers,
            "select": None if select is None else _describe_selector_map(select),
            "reduce": None if reduce is None else _describe_selector(reduce),
            "reuse": reuse,
            "dtype": None if out_dtype is None else str(out_dtype),
            "train_mode": train_mode,
            "max_samples": max_samples,
        }
        empty_dir = cache_path.is_dir() and next(cache_path.iterdir(), None) is None
        if overwrite:
            check_replaceable(cache_path)  # before any work: never delete what is not ours
        if cache_path.exists() and not empty_dir and not overwrite:
            cached = load_cache(cache_path)  # verifies the checksums
            cached_manifest = cached.manifest or {}
            reasons = _stale_reasons(cached_manifest, fingerprint, options, n_expected)
            if not reasons:  # only then read the data (and run the probe)
                reasons = _data_reasons(
                    cached_manifest,
                    model,
                    data,
                    batch_size=batch_size,
                    device=dev,
                    max_samples=max_samples,
                )
            if reasons:
                raise StaleCacheError(
                    f"The activation cache at {str(cache_path)!r} does not match this "
                    f"capture: {'; '.join(reasons)}. Delete it, choose another cache_dir, or "
                    "pass overwrite=True to replace it."
                )
            if consumer is not None:
                bar = _progress_bar(progress, cached.n_samples, "capture (cached)")
                try:
                    _replay(cached, consumer, batch_size, dev, bar)
                finally:
                    if bar is not None:
                        bar.close()
            return cached
        data_fp = _data_fingerprint(data, max_samples)
        manifest = new_manifest(
            model,
            fingerprint,
            options=options,
            data={
                "type": type(data).__name__,
                "fingerprint": data_fp,
                "hashed": "arrays" if data_fp is not None else "batches",
            },
        )
        if data_fp is None:
            stream_hasher = _DataHasher()
        writer = _CacheWriter(cache_path, overwrite=overwrite)

    keep: dict[str, list[np.ndarray]] | None = {} if consumer is None and writer is None else None
    bar = _progress_bar(progress, n_expected, "capture")
    n_seen = 0
    ref_shapes: dict[str, tuple[int, ...]] | None = None
    try:
        if manifest is not None:  # probe the model on the first sample, outside the hooks
            first = next(batches, None)
            manifest["model"].update(_probe_or_error(model, first))
            if first is not None:
                batches = itertools.chain([first], batches)
        with recorder:
            for index, x in enumerate(batches):
                if stream_hasher is not None:
                    stream_hasher.update(x)
                acts = recorder.run(x)
                ref_shapes = _check_consistent(index, acts, ref_shapes)
                if writer is not None or keep is not None:
                    host = {name: _to_numpy(t) for name, t in acts.items()}
                    if writer is not None:
                        writer.append(host)
                    if keep is not None:
                        for name, arr in host.items():
                            keep.setdefault(name, []).append(arr)
                if consumer is not None:
                    consumer(index, acts)
                del acts
                n_seen += len(x)
                if bar is not None:
                    bar.update(len(x))
        if n_seen == 0:
            raise ValueError(
                "Expected data with at least one sample, got none. Check that the dataset "
                "is not empty and max_samples is positive."
            )
        if writer is not None:
            assert manifest is not None
            manifest["n_samples"] = n_seen
            if stream_hasher is not None:
                manifest["data"]["fingerprint"] = stream_hasher.hexdigest()
            path = writer.commit(manifest)
            writer = None
            return load_cache(path, verify=False)  # just written from memory
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    if keep is None:
        return None
    return CapturedActivations(
        {
            name: (parts[0] if len(parts) == 1 else np.concatenate(parts))
            for name, parts in keep.items()
        }
    )


def _describe_selector_map(select: Any) -> Any:
    if isinstance(select, Mapping):
        return {str(k): _describe_selector(v) for k, v in select.items()}
    return _describe_selector(select)


def _check_consistent(
    index: int,
    acts: dict[str, torch.Tensor],
    ref: dict[str, tuple[int, ...]] | None,
) -> dict[str, tuple[int, ...]]:
    shapes = {name: tuple(t.shape[1:]) for name, t in acts.items()}
    for name, t in acts.items():
        if t.ndim == 0:
            raise RuntimeError(
                f"Layer {name!r} produced a scalar in batch {index}; expected (batch, ...). "
                "Pick another layer or a select/reduce that keeps the batch dimension."
            )
    if ref is None:
        return shapes
    if list(shapes) != list(ref):
        raise RuntimeError(
            f"Batch {index} recorded {list(shapes)} but batch 0 recorded {list(ref)}: the "
            "model's control flow depends on the input. Use reuse='first' or 'last' for "
            "modules called a varying number of times."
        )
    for name, shape in shapes.items():
        if shape != ref[name]:
            raise RuntimeError(
                f"Layer {name!r} gave per-sample shape {shape} in batch {index} but "
                f"{ref[name]} in batch 0. Captured activations need one shape for all "
                "samples: pad or crop the inputs to one size, or pass reduce='avgpool'."
            )
    return ref
