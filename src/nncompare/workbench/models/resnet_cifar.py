"""CIFAR-10 ResNets with option-A shortcuts (He et al. 2016, Section 4.2).

The layout matches the pretrained checkpoints of Y. Idelbayev
(github.com/akamaster/pytorch_resnet_cifar10), so those files load strictly after
the ``module.`` prefix left by ``DataParallel`` is removed.

References
----------
K. He, X. Zhang, S. Ren, J. Sun. "Deep Residual Learning for Image Recognition",
CVPR 2016, Section 4.2 (CIFAR-10 architecture, option-A identity shortcuts).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nncompare._io import read_state_dict as _read
from nncompare._io import state_dict_from
from nncompare.workbench.models._layers import GlobalAvgPool, check_positive_int

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "BasicBlock",
    "CifarResNet",
    "OptionAShortcut",
    "cifar_preprocess",
    "cifar_resnet",
    "read_state_dict",
]

#: Per-channel mean used by the akamaster checkpoints. These are the ImageNet
#: statistics, not CIFAR-10's own: the source's ``trainer.py`` normalises with them
#: for training and test, so the pretrained weights expect exactly these values.
CIFAR_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: Per-channel standard deviation matching :data:`CIFAR_MEAN` (ImageNet values).
CIFAR_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Depths for which pretrained akamaster checkpoints exist.
PRETRAINED_DEPTHS: tuple[int, ...] = (20, 32, 44, 56, 110, 1202)


class OptionAShortcut(nn.Module):
    """Parameter-free "option A" shortcut: subsample space, zero-pad channels.

    The input ``(N, C_in, H, W)`` is subsampled to every ``stride``-th pixel in each
    spatial direction, starting at index 0, and ``(C_out - C_in) / 2`` zero channels
    are added on *each* side of the channel axis, so the original channels land in
    the middle (16 → 32 puts them in channels 8..23).

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts; ``out_channels - in_channels`` must be even and >= 0.
    stride : int, default 2
        Spatial subsampling factor.

    Shapes
    ------
    input ``(N, in_channels, H, W)``; output
    ``(N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("stride", stride)
        extra = out_channels - in_channels
        if extra < 0 or extra % 2:
            raise ValueError(
                "option-A shortcut pads the same number of zero channels on both sides, so "
                f"out_channels - in_channels must be even and >= 0; got in_channels="
                f"{in_channels}, out_channels={out_channels}. Use e.g. 16 -> 32."
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.pad = extra // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        x = x[:, :, ::s, ::s]
        # F.pad pads from the last axis backwards: (W left, W right, H top, H bottom, C, C)
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with an additive shortcut.

    ``conv1 → bn1 → relu1 → conv2 → bn2``, plus ``shortcut(x)``, then ``relu2``.
    ``relu2`` is the ReLU *after the addition*, i.e. the block's output; it is a
    module of its own so that the post-addition activation can be hooked as
    ``layer{s}.{b}.relu2`` (same tensor as the block output ``layer{s}.{b}``).

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    stride : int, default 1
        Stride of ``conv1``. When the shape changes the shortcut is
        :class:`OptionAShortcut`, otherwise :class:`torch.nn.Identity`.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = OptionAShortcut(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32×32 images, widths 16/32/64, option-A shortcuts.

    Module names (for hooks and heatmaps)::

        conv1, bn1, relu                      stem, output (N, 16, 32, 32)
        layer1.{0..n-1}                       stage 1, (N, 16, 32, 32)
        layer2.{0..n-1}                       stage 2, (N, 32, 16, 16)
        layer3.{0..n-1}                       stage 3, (N, 64, 8, 8)
            each block: conv1, bn1, relu1, conv2, bn2, shortcut, relu2 (after the add)
        avgpool                               global average pool, (N, 64)
        linear                                logits, (N, num_classes)

    Parameters
    ----------
    blocks_per_stage : int
        ``n``; depth is ``6n + 2`` (n = 3, 5, 7, 9 give ResNet-20/32/44/56).
    num_classes : int, default 10
        Number of logits.

    Notes
    -----
    Convolution and linear weights are initialised with Kaiming-normal (fan-in)
    initialisation, BatchNorm with PyTorch defaults. Use :func:`cifar_resnet` to
    build one by depth and optionally load pretrained weights.
    """

    def __init__(self, blocks_per_stage: int, num_classes: int = 10) -> None:
        super().__init__()
        check_positive_int("blocks_per_stage", blocks_per_stage)
        check_positive_int("num_classes", num_classes)
        self.blocks_per_stage = blocks_per_stage
        self.depth = 6 * blocks_per_stage + 2
        self.num_classes = num_classes

        self.conv1 = nn.Conv2d(3, 16, 3, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(16, 16, blocks_per_stage, stride=1)
        self.layer2 = self._stage(16, 32, blocks_per_stage, stride=2)
        self.layer3 = self._stage(32, 64, blocks_per_stage, stride=2)
        self.avgpool = GlobalAvgPool()
        self.linear = nn.Linear(64, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
        first = BasicBlock(in_channels, out_channels, stride)
        rest = [BasicBlock(out_channels, out_channels, 1) for _ in range(blocks - 1)]
        return nn.Sequential(first, *rest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(self.avgpool(x))


def _blocks_for_depth(depth: int) -> int:
    valid = "8, 14, 20, 26, 32, 38, 44, 50, 56, ..., 110"
    if isinstance(depth, bool) or not isinstance(depth, int | np.integer):
        raise TypeError(
            f"depth must be an int of the form 6n + 2 ({valid}), got {depth!r} "
            f"({type(depth).__name__}); pass e.g. depth=20."
        )
    depth = int(depth)
    if depth < 8 or (depth - 2) % 6:
        lower = max(8, depth - (depth - 2) % 6)
        upper = lower + 6 if depth >= 8 else 8
        hint = f"the nearest valid depths are {lower} and {upper}" if depth > 8 else "use 8"
        raise ValueError(
            f"CIFAR ResNet depth must be 6n + 2 with n >= 1 blocks per stage ({valid}); "
            f"got depth={depth}. Fix: {hint}. Pretrained akamaster weights exist for "
            f"depths {', '.join(map(str, PRETRAINED_DEPTHS))}."
        )
    return (depth - 2) // 6


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a plain ``{name: tensor}`` state dict.

    The file is opened with ``torch.load(path, map_location="cpu", weights_only=True)``,
    so no arbitrary code runs. Two layouts are accepted: a plain state dict, and a
    dict with a ``"state_dict"`` entry (the akamaster layout, which also stores
    ``best_prec1``). A leading ``"module."`` (left by ``DataParallel``) is removed
    from every key.

    Parameters
    ----------
    path : str or os.PathLike
        Checkpoint file (``.th``, ``.pt``, ``.pth``).

    Returns
    -------
    dict of str to torch.Tensor
    """
    return _read(path, what="checkpoint file")


def _guess_depth(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    blocks = {int(k.split(".")[1]) for k in state_dict if k.startswith("layer1.")}
    return 6 * (max(blocks) + 1) + 2 if blocks else None


def cifar_resnet(
    depth: int,
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
    num_classes: int = 10,
) -> CifarResNet:
    """Build a CIFAR ResNet of the given depth, optionally with pretrained weights.

    Parameters
    ----------
    depth : int
        ``6n + 2`` for ``n >= 1``: 20, 32, 44, 56 (pretrained checkpoints exist for
        these) or any other such depth.
    weights : str, os.PathLike, mapping or None, default None
        A checkpoint file (akamaster layout ``{"state_dict": {"module.…": …}, …}`` or
        a plain state dict; see :func:`read_state_dict`) or an in-memory state dict.
        Loaded strictly, after removing ``module.`` prefixes.
    num_classes : int, default 10
        Number of logits.

    Returns
    -------
    CifarResNet
        In eval mode when ``weights`` is given (ready for inference with running
        BatchNorm statistics); in train mode (fresh initialisation) otherwise.

    Notes
    -----
    Inputs must be preprocessed like the pretrained networks' training data: scale to
    [0, 1] and normalise with :data:`CIFAR_MEAN` / :data:`CIFAR_STD`
    (see :func:`cifar_preprocess`). On the first 1017 CIFAR-10 test images the
    akamaster checkpoints score 91.64% (20), 92.82% (32), 93.41% (44) and 92.72% (56).

    Examples
    --------
    >>> net = cifar_resnet(20)
    >>> sum(p.numel() for p in net.parameters())
    269722
    """
    model = CifarResNet(_blocks_for_depth(depth), num_classes=num_classes)
    if weights is None:
        return model
    if isinstance(weights, Mapping):
        state = state_dict_from(weights, source="the weights mapping")
        source = "the weights mapping"
    else:
        state = read_state_dict(weights)
        source = repr(str(weights))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        guessed = _guess_depth(state)
        hint = ""
        if guessed is not None and guessed != model.depth:
            hint = (
                f" The checkpoint has {(guessed - 2) // 6} blocks per stage, i.e. it is a "
                f"ResNet-{guessed}: call cifar_resnet({guessed}, weights=...)."
            )
        elif "linear" in str(exc):
            hint = " The classifier shape differs: check num_classes."
        raise ValueError(
            f"weights from {source} do not fit a CIFAR ResNet-{model.depth} with "
            f"num_classes={num_classes}.{hint} Details: {exc}"
        ) from exc
    return model.eval()


def cifar_preprocess(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Turn uint8 RGB images (NHWC) into the normalised float tensor the ResNets expect.

    Computes ``(x / 255 - CIFAR_MEAN) / CIFAR_STD`` per channel and moves channels
    first. Only this is done at test time for the akamaster networks (no crop, no resize).

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor, uint8, shape (N, H, W, 3) or (H, W, 3)
        RGB images with values 0..255, channels last (the layout of the CIFAR-10
        pickles after reshaping, and of the ``x`` arrays in common ``.npz`` copies).

    Returns
    -------
    torch.Tensor
        float32, shape ``(N, 3, H, W)`` (a single image gets a batch axis of 1).
    """
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if not isinstance(t, torch.Tensor):
        raise TypeError(
            f"cifar_preprocess expects a numpy array or torch tensor of uint8 images, got "
            f"{type(x).__name__}; convert with numpy.asarray(images, dtype=numpy.uint8)."
        )
    if t.dtype != torch.uint8:
        raise TypeError(
            f"cifar_preprocess expects uint8 pixel values 0..255, got dtype {t.dtype}. If your "
            "images are floats in [0, 1], normalise them directly: "
            "(x - CIFAR_MEAN) / CIFAR_STD per channel; if they are 0..255 integers of "
            "another dtype, cast with .astype(numpy.uint8)."
        )
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[-1] != 3:
        hint = (
            " It looks channels-first; pass x.transpose(0, 2, 3, 1) instead."
            if t.ndim == 4 and t.shape[1] == 3
            else ""
        )
        raise ValueError(
            "cifar_preprocess expects RGB images with channels last, shape (N, H, W, 3) or "
            f"(H, W, 3), got shape {tuple(x.shape)}.{hint}"
        )
    mean = torch.tensor(CIFAR_MEAN, dtype=torch.float32)
    std = torch.tensor(CIFAR_STD, dtype=torch.float32)
    out = (t.to(torch.float32) / 255.0 - mean) / std
    return out.permute(0, 3, 1, 2).contiguous()
