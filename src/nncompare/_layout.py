"""Where the channels of convolutional activations are: one explicit answer.

PyTorch produces convolutional activations channels first, ``(N, C, H, W)`` (``(N, C, L)``
for 1-D convolutions); numpy, PIL and TensorFlow habits are channels last, ``(N, H, W, C)``.
Reading one as the other gives a number, just the wrong one (ResNet-20 vs ResNet-32,
``layer2.0``: linear CKA 0.154 read the wrong way, 0.935 the right way). So:

* :class:`LayoutArray` is a numpy array that knows its layout. ``nncompare.capture``
  returns its convolutional activations as ``LayoutArray(..., "NCHW")``; the measures read
  the tag, so capture output passed straight into ``nc.cka(acts_a[l], acts_b[l],
  conv="mean")`` is read correctly. The tag survives selecting samples (``acts[:100]``,
  ``acts[mask]``) and element-wise arithmetic; anything that may move axes (reshape,
  transpose, ``np.moveaxis``, reductions) gives an untagged array, never a wrongly tagged one.
* Every measure taking ``conv=`` also takes ``layout=``: ``"NHWC"`` (channels last, the
  default for untagged arrays) or ``"NCHW"`` (channels first); ``"NLC"``/``"NCL"``,
  ``"channels_last"``/``"channels_first"`` are accepted spellings.
* An untagged 4-D array read with the default whose shape looks channels first
  (``(N, a, b, b)`` with ``a != b``: square images with the channels in front) gets a
  :class:`LayoutWarning` naming both readings.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from nncompare._validation import NNCompareWarning

__all__ = ["LayoutArray", "LayoutWarning", "layout_of", "normalize_layout", "resolve_layout"]

CHANNELS_LAST = "NHWC"
CHANNELS_FIRST = "NCHW"
_SPELLINGS = {
    "nhwc": CHANNELS_LAST,
    "nlc": CHANNELS_LAST,
    "ndhwc": CHANNELS_LAST,
    "channels_last": CHANNELS_LAST,
    "nchw": CHANNELS_FIRST,
    "ncl": CHANNELS_FIRST,
    "ncdhw": CHANNELS_FIRST,
    "channels_first": CHANNELS_FIRST,
}


class LayoutWarning(NNCompareWarning):
    """An untagged convolutional array whose shape suggests the other layout."""


def normalize_layout(layout: str | None) -> str | None:
    """``"NHWC"``, ``"NCHW"`` or None from any accepted spelling; ValueError otherwise."""
    if layout is None:
        return None
    key = str(layout).strip().lower() if isinstance(layout, str) else None
    if key not in _SPELLINGS:
        raise ValueError(
            f"layout must be 'NHWC' (channels last) or 'NCHW' (channels first), or None to use "
            f"the array's own tag; got {layout!r}."
        )
    return _SPELLINGS[key]


def _keeps_axes(index: Any, ndim: int) -> bool:
    """True when ``a[index]`` only selects samples (axis 0) and keeps every other axis whole."""
    if not isinstance(index, tuple):
        index = (index,)
    if not index:
        return True
    first, rest = index[0], index[1:]
    if first is None or first is Ellipsis:
        return False
    if isinstance(first, int | np.integer):
        return False  # drops the sample axis
    if not isinstance(first, slice):
        arr = np.asarray(first)
        if arr.ndim != 1:
            return False
    if len(rest) > ndim - 1:
        return False
    return all((isinstance(r, slice) and r == slice(None)) or r is Ellipsis for r in rest)


class LayoutArray(np.ndarray):
    """A numpy array of convolutional activations that knows its layout.

    Parameters
    ----------
    data : array_like, shape (N, C, H, W) / (N, C, L) or (N, H, W, C) / (N, L, C)
        Not copied when it already is a numpy array (a view is taken).
    layout : {"NCHW", "NHWC"}
        Channels first or last (any spelling accepted by the measures' ``layout=``).

    Attributes
    ----------
    layout : str or None
        ``"NCHW"``, ``"NHWC"``, or None for arrays derived in ways that may have moved axes.

    Examples
    --------
    >>> import numpy as np
    >>> a = LayoutArray(np.zeros((10, 3, 8, 8)), "NCHW")
    >>> a[:5].layout, a.reshape(10, -1).layout
    ('NCHW', None)
    """

    layout: str | None

    def __new__(cls, data: Any, layout: str) -> LayoutArray:
        norm = normalize_layout(layout)
        if norm is None:
            raise ValueError("LayoutArray needs a layout: 'NCHW' or 'NHWC'.")
        obj = (data if isinstance(data, np.ndarray) else np.asarray(data)).view(cls)
        if obj.ndim < 3:
            raise ValueError(
                "LayoutArray holds convolutional activations with at least one spatial axis, "
                f"shape (N, C, L), (N, C, H, W) or channels-last; got shape {obj.shape}."
            )
        obj.layout = norm
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        # Views and results of any operation start untagged; the cases known to keep the
        # axes (sample selection, same-shape element-wise ufuncs) re-tag explicitly.
        self.layout = None

    def __getitem__(self, index: Any) -> Any:
        out = super().__getitem__(index)
        if isinstance(out, LayoutArray) and out.ndim == self.ndim and _keeps_axes(index, self.ndim):
            out.layout = self.layout
        return out

    def __array_wrap__(self, obj: Any, context: Any = None, return_scalar: bool = False) -> Any:
        out = super().__array_wrap__(obj, context, return_scalar)
        if (
            isinstance(out, LayoutArray)
            and context is not None
            and out.shape == self.shape
            and getattr(context[0], "signature", None) is None
        ):
            out.layout = self.layout  # element-wise: the axes are unchanged
        return out

    def __reduce__(self) -> Any:
        return (LayoutArray, (np.asarray(self), self.layout or CHANNELS_LAST))

    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self), threshold=20, edgeitems=2)
        return f"LayoutArray({body}, layout={self.layout!r})"


def layout_of(x: Any) -> str | None:
    """The layout an array is tagged with (``LayoutArray``), else None."""
    return getattr(x, "layout", None) if isinstance(x, LayoutArray) else None


def resolve_layout(x: Any, layout: str | None, *, name: str = "X") -> str:
    """The layout to read ``x`` with: the explicit ``layout``, else its tag, else channels last.

    Raises ValueError when an explicit ``layout`` contradicts the array's tag; warns
    (:class:`LayoutWarning`) when an untagged 4-D array read channels-last looks channels-first.
    """
    explicit = normalize_layout(layout)
    tag = layout_of(x)
    if explicit is not None and tag is not None and explicit != tag:
        raise ValueError(
            f"{name} is tagged {tag} (it came from nncompare.capture), but layout="
            f"{layout!r} was passed. Drop layout= to use the tag, or pass numpy.asarray({name}) "
            "if you know better."
        )
    if explicit is not None:
        return explicit
    if tag is not None:
        return tag
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) == 4 and shape[2] == shape[3] and shape[1] != shape[2]:
        warnings.warn(
            f"{name} has shape {shape}: read channels-last (N, H, W, C) it has "
            f"{shape[3]} channels on a {shape[1]}×{shape[2]} grid, but it looks channels-first "
            f"(N, C, H, W) as PyTorch produces: {shape[1]} channels on {shape[2]}×{shape[3]}. "
            "Pass layout='NCHW' if it is channels-first, or layout='NHWC' to confirm.",
            LayoutWarning,
            stacklevel=4,
        )
    return CHANNELS_LAST


def to_channels_last_if(x: Any, layout: str) -> Any:
    """Move the channel axis of channels-first ``x`` (numpy or torch) to the end."""
    if layout != CHANNELS_FIRST or getattr(x, "ndim", 0) < 3:
        return x
    if isinstance(x, np.ndarray):
        return np.moveaxis(np.asarray(x), 1, -1)
    import torch

    return torch.movedim(x, 1, -1)
