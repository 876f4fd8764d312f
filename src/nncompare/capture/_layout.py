"""Layout helpers for captured activations."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from nncompare._layout import LayoutArray, layout_of

__all__ = ["to_channels_last"]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def to_channels_last(a: ArrayT) -> ArrayT:
    """Move the channel axis of conv activations from position 1 to the end.

    Parameters
    ----------
    a : numpy.ndarray or torch.Tensor
        Activations in torch's layout: ``(n, c, l)`` (1-d conv), ``(n, c, h, w)``
        (2-d conv) or ``(n, c, d, h, w)`` (3-d conv). A 2-d array ``(n, c)`` has no
        spatial axes and is returned unchanged.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Same type as ``a``, shape ``(n, l, c)`` / ``(n, h, w, c)`` /
        ``(n, d, h, w, c)``; numpy results are :class:`nncompare.LayoutArray` tagged
        ``"NHWC"`` (an array already tagged ``"NHWC"`` is returned as it is). This is a
        view, not a copy; call
        ``np.ascontiguousarray`` or ``.contiguous()`` if contiguous memory is needed.

    Raises
    ------
    TypeError
        If ``a`` is neither a numpy array nor a torch tensor.
    ValueError
        If ``a`` has fewer than two dimensions.
    """
    if isinstance(a, np.ndarray):
        if a.ndim < 2:
            raise ValueError(
                f"Expected activations of shape (n, c, ...) with at least 2 dimensions, "
                f"got shape {a.shape}."
            )
        if a.ndim == 2:
            return a
        tag = layout_of(a)
        if tag == "NHWC":
            return a  # already channels last
        return LayoutArray(np.moveaxis(np.asarray(a), 1, -1), "NHWC")
    if isinstance(a, torch.Tensor):
        if a.ndim < 2:
            raise ValueError(
                f"Expected activations of shape (n, c, ...) with at least 2 dimensions, "
                f"got shape {tuple(a.shape)}."
            )
        return a if a.ndim == 2 else torch.movedim(a, 1, -1)
    raise TypeError(
        f"Expected a numpy array or torch tensor, got {type(a).__name__}. "
        "Convert it with np.asarray first."
    )
