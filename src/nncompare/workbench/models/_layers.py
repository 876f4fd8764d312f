"""Small building blocks shared by the reference architectures."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GlobalAvgPool", "check_positive_int", "check_widths", "make_activation"]


class GlobalAvgPool(nn.Module):
    """Average over every spatial axis and return a flat ``(N, C)`` tensor.

    Works for 1-D ``(N, C, L)``, 2-D ``(N, C, H, W)`` and 3-D feature maps. Having the
    pooling as its own module (rather than a call inside ``forward``) makes the pooled
    feature vector reachable with a forward hook, e.g. as layer ``"avgpool"``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 3:
            raise ValueError(
                f"GlobalAvgPool expects a feature map of shape (N, C, *spatial) with at least "
                f"one spatial axis, got shape {tuple(x.shape)}; apply it to convolutional "
                "features, not to already flattened vectors."
            )
        return x.mean(dim=tuple(range(2, x.ndim)))


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module for ``name`` (one of :data:`_ACTIVATIONS`)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in _ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}. "
            "Pass one of these names (e.g. activation='relu')."
        )
    return _ACTIVATIONS[key]()


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive ``int``; raise a helpful error otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{name} must be a positive integer, got {value!r} ({type(value).__name__}); "
            f"pass e.g. {name}=16."
        )
    return value


def check_widths(name: str, widths: object, *, min_len: int = 1) -> tuple[int, ...]:
    """Return ``widths`` as a tuple of positive ints, with at least ``min_len`` entries."""
    if isinstance(widths, int) and not isinstance(widths, bool):
        widths = (widths,)
    try:
        values = tuple(widths)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"{name} must be a sequence of positive integers such as (16, 32), got {widths!r}."
        ) from None
    if len(values) < min_len:
        raise ValueError(
            f"{name} needs at least {min_len} entr{'y' if min_len == 1 else 'ies'}, got "
            f"{values!r}; pass e.g. {name}=(16, 32)."
        )
    for i, v in enumerate(values):
        check_positive_int(f"{name}[{i}]", v)
    return values
