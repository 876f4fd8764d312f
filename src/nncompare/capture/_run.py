"""``capture``: run data through a model once and collect, stream or cache activations."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nncompare.capture._cache import (
    CapturedActivations,
    _CacheWriter,
    load_cache,
    model_fingerprint,
    new_manifest,
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


def _data_fingerprint(data: Any, max_samples: int | None) -> str | None:
    """Cheap fingerprint of in-memory inputs: dtype, shape and up to 64 spread rows."""
    if _is_array(data):
        x = data
    elif isinstance(data, tuple | list) and data and _is_array(data[0]):
        x = data[0]
    else:
        return None  # datasets and loaders cannot be fingerprinted without a full pass
    n = len(x) if max_samples is None else min(len(x), max_samples)
    h = hashlib.sha256(f"{x.dtype}{(n, *tuple(x.shape[1:]))}".encode())
    for i in sorted({round(v) for v in np.linspace(0, n - 1, num=min(n, 64))}):
        row = x[int(i)]
        if isinstance(row, torch.Tensor):
            row = row.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        else:
            row = np.ascontiguousarray(row).reshape(-1).view(np.uint8)
        h.update(row)
    return "sha256:" + h.hexdigest()


def _stale_reasons(
    manifest: dict[str, Any],
    fingerprint: str,
    options: dict[str, Any],
    data_fp: str | None,
    n_expected: int | None,
) -> list[str]:
    reasons = []
    found_fp = manifest.get("model", {}).get("fingerprint")
    if found_fp != fingerprint:
        reasons.append(f"model weights differ (cache {found_fp}, model {fingerprint})")
    found_opts = manifest.get("options", {})
    for key, value in options.items():
        if found_opts.get(key) != value:
            reasons.append(f"{key} differs (cache {found_opts.get(key)!r}, now {value!r})")
    cached_data_fp = manifest.get("data", {}).get("fingerprint")
    if data_fp is not None and cached_data_fp is not None and data_fp != cached_data_fp:
        reasons.append("the input data differ")
    if n_expected is not None and manifest.get("n_samples") != n_expected:
        reasons.append(f"n_samples differs (cache {manifest.get('n_samples')}, now {n_expected})")
    return reasons


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
        Directory to store this capture in (created atomically; format in
        :mod:`nncompare.capture._cache`). If it already holds a cache for the same
        model weights, layers, options and (for in-memory data) inputs, that cache is
        loaded instead of running the model, and fed to ``consumer`` if given. The
        result is memory-mapped, so memory stays flat also without a consumer.
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
        If ``cache_dir`` holds a cache for another model/layers/options and
        ``overwrite`` is False.
    InvalidCacheError
        If ``cache_dir`` exists but is not an nncompare cache.
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
    if cache_dir is not None:
        cache_path = Path(cache_dir)
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
        data_fp = _data_fingerprint(data, max_samples)
        empty_dir = cache_path.is_dir() and next(cache_path.iterdir(), None) is None
        if cache_path.exists() and not empty_dir and not overwrite:
            cached = load_cache(cache_path)
            reasons = _stale_reasons(
                cached.manifest or {}, fingerprint, options, data_fp, n_expected
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
        manifest = new_manifest(
            model,
            fingerprint,
            options=options,
            data={"type": type(data).__name__, "fingerprint": data_fp},
        )
        writer = _CacheWriter(cache_path, overwrite=overwrite)

    keep: dict[str, list[np.ndarray]] | None = {} if consumer is None and writer is None else None
    bar = _progress_bar(progress, n_expected, "capture")
    n_seen = 0
    ref_shapes: dict[str, tuple[int, ...]] | None = None
    try:
        with recorder:
            for index, x in enumerate(batches):
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
            path = writer.commit(manifest)
            writer = None
            return load_cache(path)
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
