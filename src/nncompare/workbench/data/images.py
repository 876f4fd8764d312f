"""Image batches in as they come: layout detection, scaling and normalisation.

Image files hold arrays in whatever layout their author chose: ``(N, H, W, C)``
(channels last: numpy, PIL, TensorFlow, the shared CIFAR-10 files) or ``(N, C, H, W)``
(channels first: PyTorch). Models built with ``torch.nn.Conv2d`` need channels first.
:func:`prepare_images` turns either into the float tensor a model expects and says
what it did, so that a wrong guess never passes silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["PreparedImages", "parse_scale", "prepare_images"]

LAYOUTS = ("auto", "NHWC", "NCHW")
_LIKELY_CHANNELS = (1, 2, 3, 4)


@dataclass(frozen=True)
class PreparedImages:
    """The result of :func:`prepare_images`.

    Attributes
    ----------
    x : torch.Tensor, shape (N, C, H, W) (or the input's shape when it is not 4-D)
        float32, channels first.
    layout : str
        The layout the input was read as: ``"NHWC"``, ``"NCHW"`` or ``"none"`` (not 4-D).
    detected : bool
        True when the layout was inferred rather than given.
    scale : float or None
        The factor the input was multiplied by.
    notes : list of str
        One line per thing done to the data (for logs and the command line).
    """

    x: Any
    layout: str
    detected: bool
    scale: float | None
    notes: list[str] = field(default_factory=list)


def parse_scale(text: str | float | None) -> float | None:
    """Parse a scale such as ``"1/255"``, ``"0.0039"`` or ``255`` into a float.

    Raises
    ------
    ValueError
        When the text is not a number or a fraction ``a/b`` with ``b != 0``, or is not a
        finite positive number.
    """
    if text is None:
        return None
    if isinstance(text, int | float):
        value = float(text)
    else:
        raw = str(text).strip()
        try:
            value = float(Fraction(raw)) if "/" in raw else float(raw)
        except (ValueError, ZeroDivisionError):
            raise ValueError(
                f"expected a scale such as 1/255 or 0.5; got {text!r}. Write a number or a "
                "fraction a/b."
            ) from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"expected a finite positive scale such as 1/255; got {text!r}.")
    return value


def _parse_stats(name: str, values: Sequence[float] | str | None) -> np.ndarray | None:
    if values is None:
        return None
    if isinstance(values, str):
        try:
            values = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(
                f"expected {name} as comma-separated numbers such as 0.485,0.456,0.406; "
                f"got {values!r}."
            ) from None
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"expected finite {name} values; got {values!r}.")
    if name == "std" and np.any(arr <= 0):
        raise ValueError(f"expected positive std values; got {values!r}.")
    return arr


def _detect(shape: tuple[int, ...], channels: int | None) -> str | None:
    """The layout of a 4-D batch when only one reading is plausible, else None."""
    first, last = shape[1], shape[3]
    if channels is not None:
        if last == channels and first != channels:
            return "NHWC"
        if first == channels and last != channels:
            return "NCHW"
        return None
    first_ok = first in _LIKELY_CHANNELS and shape[2] == shape[3]
    last_ok = last in _LIKELY_CHANNELS and shape[1] == shape[2]
    if last_ok and not first_ok:
        return "NHWC"
    if first_ok and not last_ok:
        return "NCHW"
    return None


def prepare_images(
    x: Any,
    *,
    layout: str = "auto",
    channels: int | None = None,
    scale: float | str | None = None,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | str | None = None,
) -> PreparedImages:
    """Turn an image batch into the float32, channels-first tensor a torch model expects.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor, shape (N, H, W, C), (N, C, H, W) or any other
        Inputs; integer (e.g. uint8) or float. Arrays that are not 4-D are only scaled
        and normalised (``mean``/``std`` then apply to the last axis of 2-D input).
    layout : {"auto", "NHWC", "NCHW"}, default "auto"
        How a 4-D input is laid out. ``"auto"`` infers it when only one reading is
        plausible (the channel axis is the one equal to ``channels``, or when that is
        unknown, the one of size 1–4 next to two equal spatial sizes) and raises
        otherwise; the result says that it was inferred.
    channels : int, optional
        The number of input channels the model expects (e.g. the first convolution's
        ``in_channels``); makes ``"auto"`` reliable and is checked against the data.
    scale : float or str, optional
        Multiply the inputs by this first; strings such as ``"1/255"`` are parsed.
        Default: ``1/255`` for ``uint8`` input (said in ``notes``), else none.
    mean, std : sequence of float or comma-separated str, optional
        Per-channel normalisation ``(x - mean) / std`` after scaling (one value, or one per
        channel).

    Returns
    -------
    PreparedImages

    Raises
    ------
    ValueError
        Ambiguous or impossible layouts, a channel count that does not match ``channels``,
        bad ``scale``/``mean``/``std``, or non-finite values after conversion.

    Examples
    --------
    >>> import numpy as np
    >>> batch = np.zeros((8, 32, 32, 3), np.uint8)
    >>> p = prepare_images(batch, mean="0.5,0.5,0.5", std="0.25,0.25,0.25")
    >>> tuple(p.x.shape), p.layout, p.notes[0]
    ((8, 3, 32, 32), 'NHWC', 'layout: read (8, 32, 32, 3) as NHWC (inferred), moved channels first')
    """
    import torch

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}.")
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(
            f"expected real-valued images (integer or float); got dtype {t.dtype}. Convert "
            "them first."
        )
    notes: list[str] = []
    used_layout, detected = "none", False
    if t.ndim == 4:
        shape = tuple(int(s) for s in t.shape)
        if channels is not None and channels not in (shape[1], shape[3]):
            raise ValueError(
                f"images of shape {shape} have {shape[3]} channels read as (N, H, W, C) and "
                f"{shape[1]} read as (N, C, H, W), but the model expects {channels} in either "
                "layout. Check that the file holds the images this model takes."
            )
        if layout == "auto":
            found = _detect(shape, channels)
            if found is None:
                want = f" (the model expects {channels} channels)" if channels else ""
                raise ValueError(
                    f"cannot tell whether images of shape {shape} are (N, H, W, C) or "
                    f"(N, C, H, W){want}. Say which: layout='NHWC' / 'NCHW' (CLI: "
                    "--channels-last / --channels-first)."
                )
            used_layout, detected = found, True
        else:
            used_layout = layout
        c = shape[3] if used_layout == "NHWC" else shape[1]
        if channels is not None and c != channels:
            other = "NCHW" if used_layout == "NHWC" else "NHWC"
            raise ValueError(
                f"images of shape {shape} read as {used_layout} have {c} channels, but the "
                f"model expects {channels}. If they are {other}, say so (layout='{other}')."
            )
        how = "inferred" if detected else "as given"
        if used_layout == "NHWC":
            t = t.permute(0, 3, 1, 2)
            notes.append(f"layout: read {shape} as NHWC ({how}), moved channels first")
        else:
            notes.append(f"layout: read {shape} as NCHW ({how})")
    elif layout != "auto":
        raise ValueError(
            f"layout={layout!r} applies to 4-D image batches; got shape {tuple(t.shape)}."
        )
    factor = parse_scale(scale)
    if factor is None and t.dtype == torch.uint8:
        factor = 1.0 / 255.0
        notes.append("scale: uint8 input divided by 255 (pass a scale to override)")
    elif factor is not None:
        notes.append(f"scale: multiplied by {factor:g}")
    t = t.to(torch.float32)
    if factor is not None:
        t = t * factor
    m, s = _parse_stats("mean", mean), _parse_stats("std", std)
    if m is not None or s is not None:
        caxis = 1 if t.ndim == 4 else t.ndim - 1
        n_ch = int(t.shape[caxis]) if t.ndim >= 2 else 1
        view = [1] * t.ndim
        if t.ndim >= 2:
            view[caxis] = -1
        for name, v in (("mean", m), ("std", s)):
            if v is not None and v.size not in (1, n_ch):
                want = f"1 {name} value" if n_ch == 1 else f"1 or {n_ch} {name} values"
                raise ValueError(f"expected {want} (one per channel); got {v.size}.")
        if m is not None:
            t = t - torch.as_tensor(m, dtype=torch.float32).reshape(view if m.size > 1 else [])
        if s is not None:
            t = t / torch.as_tensor(s, dtype=torch.float32).reshape(view if s.size > 1 else [])
        notes.append(
            "normalised: (x - mean) / std with mean="
            f"{None if m is None else m.tolist()}, std={None if s is None else s.tolist()}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(
            "the images contain NaN or infinite values after conversion; check the file and "
            "the scale."
        )
    return PreparedImages(
        x=t.contiguous(), layout=used_layout, detected=detected, scale=factor, notes=notes
    )
