"""Factorized VGG of Guth & Ménard (Appendix B.2): frozen spatial filters, learned channels."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nncompare.workbench.models._layers import GlobalAvgPool, check_positive_int
from nncompare.workbench.models.vgg import VGG11_PLAN

__all__ = ["FactorizedVGG", "FrozenDepthwise", "factorized_vgg"]


def _as_filter_stack(value: Any, what: str) -> torch.Tensor:
    """Return ``value`` (an array, a tensor or a result with ``.eigenvectors``) as (r, k, k)."""
    if hasattr(value, "eigenvectors") and not isinstance(value, (np.ndarray, torch.Tensor)):
        value = value.eigenvectors
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu", torch.float64)
    else:
        try:
            t = torch.from_numpy(np.array(value, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(
                f"{what} must be an array of spatial filters of shape (rank, k, k) or a "
                f"spatial_eigenfilters result with .eigenvectors, got {type(value).__name__}; "
                "pass nc.weights.spatial_eigenfilters(model)[layer] or a (rank, k, k) array."
            ) from None
    if t.ndim != 3 or t.shape[1] != t.shape[2]:
        raise ValueError(
            f"{what} must have shape (rank, k, k) (square k x k filter images), got shape "
            f"{tuple(t.shape)}; pass the .eigenvectors of a spatial_eigenfilters result."
        )
    if t.shape[1] % 2 == 0:
        raise ValueError(
            f"{what} must have an odd filter size k so that padding k // 2 keeps the image "
            f"size, got k={t.shape[1]}; use eigenfilters of a network with odd kernels "
            "(3, 5, 7)."
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(
            f"{what} contains NaN or infinite values; recompute the eigenfilters from finite "
            "weights."
        )
    return t


class FrozenDepthwise(nn.Conv2d):
    """Depthwise convolution of every input channel with a fixed set of filters.

    Each of the ``C_in`` input channels is convolved with the ``n`` given filters and
    with their negatives, giving ``K = 2 n`` output channels per input channel and
    ``K * C_in`` in all. Output channel ``c * K + j`` is input channel ``c`` convolved
    with filter ``j`` for ``j < n`` and with ``-filter[j - n]`` for ``j >= n``. It is a
    grouped ``nn.Conv2d`` (``groups = C_in``, no bias) whose weight is a buffer, not a
    parameter: saved in the state dict, never trained (Guth & Ménard, Appendix B.2).

    Parameters
    ----------
    in_channels : int
        Input channels ``C_in``.
    filters : torch.Tensor, shape (n, k, k)
        The spatial filters (``k`` odd; padding ``k // 2`` keeps the image size).

    Attributes
    ----------
    filters : torch.Tensor, shape (n, k, k)
        The given filters (without the negatives), a buffer.
    weight : torch.Tensor, shape (K * in_channels, 1, k, k)
        The grouped-convolution weight actually applied, a buffer.
    copies : int
        ``K = 2 n``, output channels per input channel.
    """

    def __init__(self, in_channels: int, filters: torch.Tensor) -> None:
        check_positive_int("in_channels", in_channels)
        filters = torch.as_tensor(filters, dtype=torch.get_default_dtype())
        bank = torch.cat([filters, -filters], dim=0)  # (K, k, k)
        copies, k = int(bank.shape[0]), int(bank.shape[-1])
        super().__init__(
            in_channels, copies * in_channels, k, padding=k // 2, groups=in_channels, bias=False
        )
        del self.weight  # the parameter nn.Conv2d made: the filters are frozen
        self.copies = copies
        self.register_buffer("filters", filters.clone())
        self.register_buffer("weight", bank.unsqueeze(1).repeat(in_channels, 1, 1, 1))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, copies={self.copies}, frozen"


class FactorizedVGG(nn.Sequential):
    """VGG-type network whose convolutions are factorized into space and channels.

    Block ``i`` is ``depthwise{i} → relu{i} → bn{i} → pointwise{i}``:
    :class:`FrozenDepthwise` (frozen filters and their negatives, ``K`` copies of each
    input channel), a ReLU, a BatchNorm without learned parameters (``affine=False``)
    and a learned bias-free 1×1 convolution from ``K * C_in`` to ``C_out`` channels.
    Max-pools ``pool1``, ``pool2``, … follow the pointwise convolutions where the plan
    has an ``"M"``; the head is ``avgpool`` and a bias-free linear layer ``fc``.

    Parameters
    ----------
    plan : sequence of int or "M"
        Channel multipliers of ``width`` per block, ``"M"`` for a 2×2 max-pool.
    in_channels, num_classes, width : int
        Input channels, logits and base width.
    filters : sequence of torch.Tensor
        One ``(n, k, k)`` filter stack per block.

    Attributes
    ----------
    copies : int
        ``K``, the depthwise copies of each input channel (twice the filters per block).
    """

    def __init__(
        self,
        plan: Sequence[int | str],
        in_channels: int,
        num_classes: int,
        width: int,
        filters: Sequence[torch.Tensor],
    ) -> None:
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_classes", num_classes)
        check_positive_int("width", width)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        previous, n_conv, n_pool = in_channels, 0, 0
        for item in plan:
            if item == "M":
                n_pool += 1
                layers[f"pool{n_pool}"] = nn.MaxPool2d(2)
                continue
            channels = int(item) * width
            depthwise = FrozenDepthwise(previous, filters[n_conv])
            n_conv += 1
            layers[f"depthwise{n_conv}"] = depthwise
            layers[f"relu{n_conv}"] = nn.ReLU()
            layers[f"bn{n_conv}"] = nn.BatchNorm2d(depthwise.out_channels, affine=False)
            layers[f"pointwise{n_conv}"] = nn.Conv2d(
                depthwise.out_channels, channels, kernel_size=1, bias=False
            )
            previous = channels
        layers["avgpool"] = GlobalAvgPool()
        layers["fc"] = nn.Linear(previous, num_classes, bias=False)
        super().__init__(layers)
        self.num_classes = num_classes
        self.width = width
        self.copies = 2 * int(filters[0].shape[0])


def _filters_per_block(filters: Any, n_blocks: int, n_filters: int) -> list[torch.Tensor]:
    if isinstance(filters, Mapping):
        items = list(filters.items())
        if len(items) != n_blocks:
            raise ValueError(
                f"filters is a mapping of {len(items)} layers ({', '.join(map(str, filters))}) "
                f"but the plan has {n_blocks} convolution blocks; pass a mapping with one "
                "entry per block (in order), or a single layer's eigenfilters, e.g. "
                "filters=eigenfilters['conv3'], to use the same filters in every block."
            )
        stacks = [_as_filter_stack(v, f"filters[{k!r}]") for k, v in items]
    elif isinstance(filters, (list, tuple)) and not (
        len(filters) > 0 and isinstance(filters[0], (int, float))
    ):
        try:
            single = _as_filter_stack(filters, "filters")
        except (TypeError, ValueError):
            single = None
        if single is not None:
            stacks = [single] * n_blocks
        else:
            if len(filters) != n_blocks:
                raise ValueError(
                    f"filters is a sequence of {len(filters)} filter stacks but the plan has "
                    f"{n_blocks} convolution blocks; pass one (rank, k, k) stack per block or "
                    "a single stack for every block."
                )
            stacks = [_as_filter_stack(v, f"filters[{i}]") for i, v in enumerate(filters)]
    else:
        stacks = [_as_filter_stack(filters, "filters")] * n_blocks
    sizes = {int(s.shape[-1]) for s in stacks}
    if len(sizes) > 1:
        raise ValueError(
            f"all blocks' filters must have the same size k, got sizes {sorted(sizes)}; "
            "take every block's filters from networks with the same kernel size."
        )
    out = []
    for i, s in enumerate(stacks):
        if s.shape[0] < n_filters:
            raise ValueError(
                f"block {i + 1} needs the top {n_filters} filters but got only {s.shape[0]} "
                f"(filters of shape {tuple(s.shape)}); pass at least {n_filters} filters or "
                f"lower n_filters to {int(s.shape[0])}."
            )
        out.append(s[:n_filters].to(torch.get_default_dtype()))
    return out


def factorized_vgg(
    filters: Any = None,
    in_channels: int = 3,
    num_classes: int = 10,
    width: int = 64,
    n_filters: int = 5,
    plan: Sequence[int | str] = VGG11_PLAN,
    kernel_size: int = 3,
) -> FactorizedVGG:
    """Factorized simplified VGG-11 with frozen spatial eigenfilters (Guth & Ménard, B.2).

    Every ``conv → relu → bn`` block of :func:`vgg11_simplified` becomes
    ``depthwise → relu → bn → pointwise``: a depthwise convolution with ``K = 2 *
    n_filters`` frozen filters (the top ``n_filters`` given eigenfilters
    ``f_1 … f_n`` and their negatives ``-f_1 … -f_n``), a ReLU, a BatchNorm without
    learned parameters and a learned 1×1 convolution ``C_out × K·C_in`` without bias;
    the classifier is one bias-free linear layer. Only the pointwise convolutions and
    the classifier are trained. Using ``f`` and ``-f`` before the ReLU is the same as an
    absolute value next to an identity path, so no sign information is lost.

    Layer names (block ``i``, 8 blocks for the VGG-11 plan): ``depthwise{i}``
    (:class:`FrozenDepthwise`), ``relu{i}``, ``bn{i}``, ``pointwise{i}``
    (``nn.Conv2d`` with kernel 1), then ``pool{j}``, ``avgpool`` and ``fc``. The
    pointwise weight ``(C_out, K * C_in, 1, 1)`` reshaped to ``(C_out, C_in, K)`` holds,
    for each output and input channel, the weights of the ``K`` filtered copies.

    Parameters
    ----------
    filters : array, spatial_eigenfilters result, sequence or mapping
        The spatial filters, descending in importance: a ``(rank, k, k)`` array or
        tensor, or an eigenfilter result with ``.eigenvectors`` (e.g.
        ``nc.weights.spatial_eigenfilters(trained)["conv3"]``), used in every block;
        or one of these per block (a sequence, or the whole mapping returned by
        ``spatial_eigenfilters`` when it has one entry per block). ``k`` must be odd.
        None: zero placeholders of size ``kernel_size``, to be replaced by loading a saved
        state dict (it holds the frozen filters), e.g. on the command line
        ``'nncompare.models:factorized_vgg(width=8)' --weights-a trained.pt``; a network
        built so computes nothing until then.
    in_channels : int, default 3
        Input channels.
    num_classes : int, default 10
        Number of logits.
    width : int, default 64
        Base width; block outputs have ``w, 2w, 4w, 4w, 8w, 8w, 8w, 8w`` channels.
    n_filters : int, default 5
        Filters taken from each stack (the paper's 5, so ``K = 10``).
    plan : sequence of int or "M", default VGG-11
        Channel multipliers and max-pools, as for :class:`SimplifiedVGG`.
    kernel_size : int, default 3
        Filter size of the placeholders when ``filters`` is None (ignored otherwise).

    Returns
    -------
    FactorizedVGG

    Raises
    ------
    ValueError
        If the filters are not ``(rank, k, k)`` with odd ``k``, are not finite, have
        fewer than ``n_filters`` ranks, or their count does not match the blocks.

    Examples
    --------
    >>> import torch
    >>> from nncompare.models import factorized_vgg
    >>> filters = torch.linalg.qr(torch.randn(9, 9)).Q.T.reshape(9, 3, 3)
    >>> net = factorized_vgg(filters, width=8)
    >>> net(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> tuple(net.pointwise2.weight.shape)
    (16, 80, 1, 1)
    """
    check_positive_int("n_filters", n_filters)
    n_blocks = sum(1 for item in plan if item != "M")
    if n_blocks == 0:
        raise ValueError(
            f"plan must contain at least one convolution block (an int), got {tuple(plan)!r}; "
            "use e.g. the default VGG11_PLAN."
        )
    if filters is None:
        check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd so that padding keeps the size, got {kernel_size}; "
                f"use {kernel_size + 1}."
            )
        filters = torch.zeros(n_filters, kernel_size, kernel_size)
    stacks = _filters_per_block(filters, n_blocks, n_filters)
    return FactorizedVGG(tuple(plan), in_channels, num_classes, width, stacks)
