"""Turn the data a user has (tensor, array, (x, y), Dataset, DataLoader) into batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset

from nncompare.capture._layers import _as_input_tensor

__all__ = ["iter_batches"]

_SUPPORTED = (
    "a torch.Tensor or numpy array of inputs (n, ...), a tuple/list (x, y) of them, "
    "a torch.utils.data.Dataset, a torch.utils.data.DataLoader, or another iterable "
    "of batches"
)


def _positive_int(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(
            f"Expected {name} to be a positive integer{' or None' if allow_none else ''}, "
            f"got {value!r}."
        )
    return int(value)


def _is_array(x: Any) -> bool:
    return isinstance(x, torch.Tensor | np.ndarray)


def _as_targets(y: Any, device: torch.device | None) -> Any:
    if isinstance(y, np.ndarray) and y.dtype != object:
        y = torch.from_numpy(np.array(y) if not y.flags.writeable else np.ascontiguousarray(y))
    if isinstance(y, torch.Tensor) and device is not None:
        return y.to(device)
    return y


def _slice(a: Any, start: int, stop: int) -> Any:
    return a[start:stop]


def _unpack_array_pair(data: tuple | list) -> tuple[Any, Any]:
    """(x, y) or (x,) -> (x, y-or-None), validating types and lengths."""
    if len(data) not in (1, 2):
        raise ValueError(
            f"Expected a tuple/list of data to be (x, y) or (x,), got {len(data)} items. "
            "To pass several samples, stack them into one array/tensor of shape (n, ...); "
            "models with several inputs need ActivationRecorder directly."
        )
    x = data[0]
    y = data[1] if len(data) == 2 else None
    if not _is_array(x):
        raise TypeError(
            f"Expected x in (x, y) to be a torch.Tensor or numpy array, got "
            f"{type(x).__name__}. Stack samples with torch.stack or np.stack first."
        )
    if y is not None:
        if isinstance(y, list | tuple):
            y = np.asarray(y)
        if not _is_array(y):
            raise TypeError(
                f"Expected y in (x, y) to be a torch.Tensor, numpy array or list, got "
                f"{type(y).__name__}."
            )
        if len(y) != len(x):
            raise ValueError(
                f"Expected x and y to have the same number of samples, got {len(x)} inputs "
                f"and {len(y)} targets."
            )
    return x, y


def _split_batch(batch: Any, index: int) -> tuple[Any, Any]:
    """A DataLoader/iterable item -> (x, y-or-None)."""
    if _is_array(batch):
        return batch, None
    if isinstance(batch, tuple | list) and batch and _is_array(batch[0]):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    if isinstance(batch, Mapping):
        raise TypeError(
            f"Batch {index} is a dict with keys {list(batch.keys())}; expected a tensor x "
            "or a tuple (x, y). Wrap the dataset so its items are (x, y), or drive the "
            "model yourself inside an ActivationRecorder."
        )
    raise TypeError(
        f"Batch {index} is a {type(batch).__name__}; expected a tensor/array x or a "
        "tuple/list (x, y, ...) whose first item is a tensor/array."
    )


def _n_samples_exact(data: Any) -> int | None:
    """Number of samples ``data`` yields, when it can be known without iterating."""
    try:
        if _is_array(data):
            return len(data)
        if isinstance(data, tuple | list) and data and _is_array(data[0]):
            return len(data[0])
        if isinstance(data, DataLoader):
            if isinstance(data.dataset, IterableDataset):
                return None
            bs = data.batch_sampler
            if type(bs) is BatchSampler:
                n = len(bs.sampler)
                return (n // bs.batch_size) * bs.batch_size if bs.drop_last else n
            return None
        if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
            return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None
    return None


def iter_batches(
    data: Any,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    *,
    dtype: torch.dtype | None = None,
    max_samples: int | None = None,
    with_targets: bool = False,
) -> Iterator[Any]:
    """Iterate over model inputs in batches, whatever form the data comes in.

    Parameters
    ----------
    data : tensor, ndarray, (x, y), Dataset, DataLoader or iterable of batches
        * ``torch.Tensor`` / ``numpy.ndarray`` of inputs, shape ``(n, ...)``: cut
          into consecutive batches along the first axis.
        * tuple/list ``(x, y)`` (or ``(x,)``) of tensors/arrays with the same first
          dimension: ``x`` is batched, ``y`` (labels) is ignored unless
          ``with_targets=True``.
        * ``torch.utils.data.Dataset``: wrapped in a ``DataLoader`` with
          ``batch_size`` and no shuffling. Items may be ``x`` or ``(x, y, ...)``.
        * ``torch.utils.data.DataLoader``, or any other iterable of batches (e.g. a
          generator): used as is (``batch_size`` is ignored); each batch may be
          ``x`` or ``(x, y, ...)``, of which ``x`` is taken.
    batch_size : int, default 256
        Samples per batch for tensors, arrays and datasets.
    device : torch.device, str or None, default None
        Where to put the batches (the model's device). None leaves tensors on their
        device and puts numpy data on the CPU.
    dtype : torch.dtype or None, default None
        Cast floating-point inputs to this dtype (normally the model's). Integer
        and boolean inputs (token ids, masks) are never cast.
    max_samples : int or None, default None
        Stop after this many samples; the last batch is cut short if needed.
    with_targets : bool, default False
        Yield ``(x, y)`` pairs instead of ``x``; ``y`` is None when the data has no
        labels.

    Yields
    ------
    torch.Tensor of shape (batch, ...), or tuple (x, y) when ``with_targets``
        The batches, in data order, each on ``device``.

    Raises
    ------
    TypeError
        If ``data`` is of an unsupported type, or a batch is neither ``x`` nor
        ``(x, y, ...)``. Raised when called, before any batch is produced, for the
        container types.
    ValueError
        If ``batch_size``/``max_samples`` are not positive integers, or ``x`` and
        ``y`` differ in length.
    """
    batch_size = _positive_int(batch_size, "batch_size")
    max_samples = _positive_int(max_samples, "max_samples", allow_none=True)
    dev = torch.device(device) if device is not None else None
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"Expected dtype to be a torch.dtype or None, got {dtype!r}.")

    if _is_array(data):
        if data.ndim == 0:
            raise ValueError("Expected data with a sample dimension, shape (n, ...), got a scalar.")
        batches = _array_batches(data, None, batch_size)
    elif isinstance(data, tuple | list):
        x, y = _unpack_array_pair(data)
        batches = _array_batches(x, y, batch_size)
    elif isinstance(data, DataLoader):
        batches = _iterable_batches(data)
    elif isinstance(data, Dataset):
        loader = DataLoader(data, batch_size=batch_size, shuffle=False)
        batches = _iterable_batches(loader)
    elif isinstance(data, str | bytes | Mapping) or not isinstance(data, Iterable):
        raise TypeError(f"Expected data to be {_SUPPORTED}; got {type(data).__name__}.")
    else:
        batches = _iterable_batches(data)
    return _convert(batches, dev, dtype, max_samples, with_targets)


def _array_batches(x: Any, y: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    n = len(x)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield _slice(x, start, stop), (None if y is None else _slice(y, start, stop))


def _iterable_batches(data: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    for i, batch in enumerate(data):
        yield _split_batch(batch, i)


def _convert(
    batches: Iterator[tuple[Any, Any]],
    device: torch.device | None,
    dtype: torch.dtype | None,
    max_samples: int | None,
    with_targets: bool,
) -> Iterator[Any]:
    seen = 0
    for i, (x, y) in enumerate(batches):
        if max_samples is not None:
            room = max_samples - seen
            if room <= 0:
                return
            if len(x) > room:
                x = x[:room]
                y = None if y is None else y[:room]
        xt = _as_input_tensor(x, device, dtype, f"the inputs of batch {i}")
        if xt.ndim == 0:
            raise ValueError(
                f"Batch {i} is a scalar; expected a batch of inputs (batch, ...). A "
                "DataLoader with batch_size=None yields single samples, which is not "
                "supported: give it a batch size."
            )
        if len(xt) == 0:
            continue
        seen += len(xt)
        if with_targets:
            yield xt, _as_targets(y, device)
        else:
            yield xt
        if max_samples is not None and seen >= max_samples:
            return
