"""Simplified VGG-11 of Guth & Ménard (Appendix B.1)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from nncompare.workbench.models._layers import GlobalAvgPool, check_positive_int

__all__ = ["VGG11_PLAN", "SimplifiedVGG", "vgg11_simplified"]

#: VGG-11 ("configuration A" of Simonyan & Zisserman 2015) as channel multipliers of
#: the base width; "M" is a 2×2 max-pool.
VGG11_PLAN: tuple[int | str, ...] = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M")


class SimplifiedVGG(nn.Sequential):
    """VGG-type network built from a plan of conv widths and max-pools.

    Each convolution block is ``conv{i} → relu{i} → bn{i}``: convolutions have no bias,
    and the BatchNorm comes *after* the ReLU and has no learned parameters
    (``affine=False``). Max-pools are named ``pool1``, ``pool2``, …. The head is a
    global average pool ``avgpool`` (output ``(N, C_last)``) and one bias-free linear
    layer ``fc``.

    Parameters
    ----------
    plan : sequence of int or "M"
        Channel multipliers of ``width`` for each conv layer, ``"M"`` for a max-pool.
    in_channels : int
        Input channels.
    num_classes : int
        Number of logits.
    width : int
        Base width (channels of the first conv layer).
    kernel_size : int
        Odd kernel size of every convolution (padding ``kernel_size // 2``).
    """

    def __init__(
        self,
        plan: tuple[int | str, ...],
        in_channels: int,
        num_classes: int,
        width: int,
        kernel_size: int,
    ) -> None:
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_classes", num_classes)
        check_positive_int("width", width)
        check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd so that padding keeps the size, got {kernel_size}; "
                f"use {kernel_size + 1}."
            )
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        previous, n_conv, n_pool = in_channels, 0, 0
        for item in plan:
            if item == "M":
                n_pool += 1
                layers[f"pool{n_pool}"] = nn.MaxPool2d(2)
                continue
            n_conv += 1
            channels = int(item) * width
            layers[f"conv{n_conv}"] = nn.Conv2d(
                previous, channels, kernel_size, padding=kernel_size // 2, bias=False
            )
            layers[f"relu{n_conv}"] = nn.ReLU()
            layers[f"bn{n_conv}"] = nn.BatchNorm2d(channels, affine=False)
            previous = channels
        layers["avgpool"] = GlobalAvgPool()
        layers["fc"] = nn.Linear(previous, num_classes, bias=False)
        super().__init__(layers)
        self.num_classes = num_classes
        self.width = width
        self.kernel_size = kernel_size


def vgg11_simplified(
    in_channels: int = 3,
    num_classes: int = 10,
    width: int = 64,
    kernel_size: int = 3,
) -> SimplifiedVGG:
    """Simplified VGG-11 used by Guth & Ménard for weight-covariance analyses.

    The three simplifications of Guth & Ménard, "On the universality of neural
    encodings in CNNs", Appendix B.1 ("Simplified VGG architecture"), applied to
    VGG-11 with batch normalisation (Simonyan & Zisserman 2015, configuration A):

    1. no learned biases in convolutional and linear layers;
    2. BatchNorm placed *after* the ReLU, without learned parameters (``affine=False``);
    3. the MLP classifier replaced by a single fully connected linear layer.

    Layout (8 conv layers, 5 max-pools)::

        conv1 (w)   relu1 bn1 pool1
        conv2 (2w)  relu2 bn2 pool2
        conv3 (4w)  relu3 bn3   conv4 (4w) relu4 bn4 pool3
        conv5 (8w)  relu5 bn5   conv6 (8w) relu6 bn6 pool4
        conv7 (8w)  relu7 bn7   conv8 (8w) relu8 bn8 pool5
        avgpool → fc (8w → num_classes, no bias)

    Parameters
    ----------
    in_channels : int, default 3
        Input channels.
    num_classes : int, default 10
        Number of logits.
    width : int, default 64
        Channels of the first layer; layers have ``w, 2w, 4w, 4w, 8w, 8w, 8w, 8w``
        channels (64 gives the standard 64…512).
    kernel_size : int, default 3
        Convolution kernel size (the paper also uses 7 for visualising filters, Sec. 2).

    Returns
    -------
    SimplifiedVGG

    Notes
    -----
    Five 2×2 max-pools need inputs of at least 32×32 (the 32×32 CIFAR / downsampled
    ImageNet setting of the paper ends at 1×1, where global average pooling equals
    flattening). For larger inputs the global average pool keeps the classifier at
    ``8 * width`` inputs.

    Shapes
    ------
    input ``(N, in_channels, H, W)`` with ``H, W >= 32``; output ``(N, num_classes)``.
    """
    return SimplifiedVGG(VGG11_PLAN, in_channels, num_classes, width, kernel_size)
