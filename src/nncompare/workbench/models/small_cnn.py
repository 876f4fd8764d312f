"""Small convolutional networks for tiny images (8×8 digits) and 1-D signals (MNIST-1D)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from nncompare.workbench.models._layers import GlobalAvgPool, check_positive_int, check_widths

__all__ = ["SmallCNN", "SmallCNN1d"]


def _conv_stack(
    ndim: int,
    in_channels: int,
    widths: tuple[int, ...],
    kernel_size: int,
    batch_norm: bool,
    size: int,
) -> OrderedDict[str, nn.Module]:
    """Build ``conv{i} → bn{i} → relu{i} [→ maxpool{i}]`` blocks.

    A 2× max-pool follows every block except the last one as long as the current
    spatial size is at least 8, so the last block still sees a map of size >= 4.
    """
    conv = {1: nn.Conv1d, 2: nn.Conv2d}[ndim]
    norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[ndim]
    pool = {1: nn.MaxPool1d, 2: nn.MaxPool2d}[ndim]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    previous = in_channels
    for i, width in enumerate(widths, start=1):
        layers[f"conv{i}"] = conv(
            previous, width, kernel_size, padding=kernel_size // 2, bias=not batch_norm
        )
        if batch_norm:
            layers[f"bn{i}"] = norm(width)
        layers[f"relu{i}"] = nn.ReLU()
        if i < len(widths) and size >= 8:
            layers[f"maxpool{i}"] = pool(2)
            size //= 2
        previous = width
    return layers


class SmallCNN(nn.Sequential):
    """A small 2-D convolutional classifier for 8×8 digits and other small images.

    Layout (default arguments, 8×8 input)::

        conv1 (1→16, 3×3) → bn1 → relu1 → maxpool1 (8×8 → 4×4)
        conv2 (16→32, 3×3) → bn2 → relu2
        pool (global average, → (N, 32)) → fc (32 → 10 logits)

    One block ``conv{i} → bn{i} → relu{i}`` per entry of ``widths``. A 2×2 max-pool
    (``maxpool{i}``) follows every block but the last while the feature map is at
    least 8 pixels wide, so ``image_size`` decides how often the map is halved
    (8 → once, 28 → twice with three blocks, …). Convolutions keep the size
    (padding ``kernel_size // 2``). The head is global average pooling (module
    ``pool``, output ``(N, widths[-1])``) and a linear layer ``fc``.

    With the trainer in :mod:`nncompare.training` (SGD, lr 0.1, momentum 0.9,
    cosine schedule, 10 epochs, batch 64) it reaches about 98% test accuracy on the
    scikit-learn digits split of :func:`nncompare.data.load_digits` in about a second
    on two CPU cores.

    Parameters
    ----------
    in_channels : int, default 1
        Channels of the input images.
    num_classes : int, default 10
        Number of output logits.
    widths : sequence of int, default (16, 32)
        Output channels of each conv block.
    image_size : int, default 8
        Height/width of the (square) input images the network is built for. It only
        decides where max-pooling is inserted; thanks to global pooling the network
        accepts other sizes too.
    kernel_size : int, default 3
        Odd convolution kernel size.
    batch_norm : bool, default True
        Put a BatchNorm after each convolution (the convolutions then have no bias).

    Shapes
    ------
    input ``(N, in_channels, H, W)``; output ``(N, num_classes)``.

    Examples
    --------
    >>> net = SmallCNN()
    >>> [name for name, _ in net.named_children()]
    ['conv1', 'bn1', 'relu1', 'maxpool1', 'conv2', 'bn2', 'relu2', 'pool', 'fc']
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32),
        image_size: int = 8,
        kernel_size: int = 3,
        batch_norm: bool = True,
    ) -> None:
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_classes", num_classes)
        check_positive_int("image_size", image_size)
        _check_kernel_size(kernel_size)
        channels = check_widths("widths", widths)
        layers = _conv_stack(2, in_channels, channels, kernel_size, batch_norm, image_size)
        layers["pool"] = GlobalAvgPool()
        layers["fc"] = nn.Linear(channels[-1], num_classes)
        super().__init__(layers)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.widths = channels
        self.image_size = image_size


class SmallCNN1d(nn.Sequential):
    """A small 1-D convolutional classifier for signals such as MNIST-1D ``(N, 1, 40)``.

    Same layout as :class:`SmallCNN` with 1-D layers::

        conv1 (1→32, k=5) → bn1 → relu1 → maxpool1 (40 → 20)
        conv2 (32→32)     → bn2 → relu2 → maxpool2 (20 → 10)
        conv3 (32→32)     → bn3 → relu3
        pool (global average, → (N, 32)) → fc (32 → 10 logits)

    Parameters
    ----------
    in_channels : int, default 1
        Channels of the input signals.
    num_classes : int, default 10
        Number of output logits.
    widths : sequence of int, default (32, 32, 32)
        Output channels of each conv block.
    length : int, default 40
        Length of the input signals the network is built for; decides where
        max-pooling is inserted (as ``image_size`` does for :class:`SmallCNN`).
    kernel_size : int, default 5
        Odd convolution kernel size.
    batch_norm : bool, default True
        Put a BatchNorm after each convolution.

    Shapes
    ------
    input ``(N, in_channels, L)``; output ``(N, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 32, 32),
        length: int = 40,
        kernel_size: int = 5,
        batch_norm: bool = True,
    ) -> None:
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_classes", num_classes)
        check_positive_int("length", length)
        _check_kernel_size(kernel_size)
        channels = check_widths("widths", widths)
        layers = _conv_stack(1, in_channels, channels, kernel_size, batch_norm, length)
        layers["pool"] = GlobalAvgPool()
        layers["fc"] = nn.Linear(channels[-1], num_classes)
        super().__init__(layers)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.widths = channels
        self.length = length


def _check_kernel_size(kernel_size: int) -> None:
    check_positive_int("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be odd so that padding keeps the size, got {kernel_size}; "
            f"use {kernel_size + 1} or {kernel_size - 1}."
        )
