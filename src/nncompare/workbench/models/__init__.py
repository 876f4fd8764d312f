"""Reference architectures with readable layer names (plain ``torch.nn``).

* :class:`MLP` - fully connected network (``fc1``, ``relu1``, …).
* :class:`SmallCNN` - small conv net for 8×8 digits and other small images.
* :class:`SmallCNN1d` - small 1-D conv net for MNIST-1D signals.
* :class:`StackedLSTM` - stacked LSTM (``lstm1``, ``lstm2``, …) reading a signal as a sequence.
* :func:`cifar_resnet` - CIFAR-10 ResNet-20/32/44/56 (option-A shortcuts), with
  loading of the akamaster pretrained checkpoints; :func:`cifar_preprocess`,
  :data:`CIFAR_MEAN`, :data:`CIFAR_STD` for their input normalisation.
* :func:`vgg11_simplified` - simplified VGG-11 of Guth & Ménard (Appendix B.1).
* :func:`factorized_vgg` - its factorized version with frozen spatial eigenfilters
  (depthwise → ReLU → BN → learned 1×1 conv; Appendix B.2).
"""

from nncompare.workbench.models._layers import GlobalAvgPool
from nncompare.workbench.models.factorized_vgg import (
    FactorizedVGG,
    FrozenDepthwise,
    factorized_vgg,
)
from nncompare.workbench.models.lstm import StackedLSTM
from nncompare.workbench.models.mlp import MLP
from nncompare.workbench.models.resnet_cifar import (
    CIFAR_MEAN,
    CIFAR_STD,
    BasicBlock,
    CifarResNet,
    OptionAShortcut,
    cifar_preprocess,
    cifar_resnet,
    read_state_dict,
)
from nncompare.workbench.models.small_cnn import SmallCNN, SmallCNN1d
from nncompare.workbench.models.vgg import SimplifiedVGG, vgg11_simplified

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "MLP",
    "BasicBlock",
    "CifarResNet",
    "FactorizedVGG",
    "FrozenDepthwise",
    "GlobalAvgPool",
    "OptionAShortcut",
    "SimplifiedVGG",
    "SmallCNN",
    "SmallCNN1d",
    "StackedLSTM",
    "cifar_preprocess",
    "cifar_resnet",
    "factorized_vgg",
    "read_state_dict",
    "vgg11_simplified",
]
