"""Multi-layer perceptron with readable layer names."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from nncompare.workbench.models._layers import check_positive_int, check_widths, make_activation

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """Fully connected network ``flatten → fc1 → act1 → … → fcK``.

    The input is flattened first, so images of shape ``(N, 1, 8, 8)`` can be fed
    directly with ``in_features=64``. Every layer is a named child, which gives
    stable, readable names for activation capture and layer × layer heatmaps::

        flatten, fc1, relu1, fc2, relu2, fc3        # MLP(64, (128, 64), 10)

    The activation modules are named after the activation (``tanh1``, ``gelu2``, …).
    The last linear layer (the logits) has no activation.

    Parameters
    ----------
    in_features : int
        Number of input features after flattening (``prod(x.shape[1:])``).
    hidden : sequence of int, default (128, 128)
        Widths of the hidden layers; ``()`` gives a linear (softmax-regression) model.
    out_features : int, default 10
        Number of outputs (classes).
    activation : str, default "relu"
        One of ``"relu"``, ``"gelu"``, ``"tanh"``, ``"sigmoid"``, ``"elu"``,
        ``"leaky_relu"``, ``"silu"``, ``"softplus"``.

    Shapes
    ------
    input ``(N, *)`` with ``prod(*) == in_features``; output ``(N, out_features)``.

    Examples
    --------
    >>> import torch
    >>> net = MLP(64, hidden=(32,), out_features=10)
    >>> [name for name, _ in net.named_children()]
    ['flatten', 'fc1', 'relu1', 'fc2']
    >>> net(torch.zeros(5, 1, 8, 8)).shape
    torch.Size([5, 10])
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (128, 128),
        out_features: int = 10,
        activation: str = "relu",
    ) -> None:
        check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        widths = check_widths("hidden", hidden, min_len=0)
        act_name = activation.lower() if isinstance(activation, str) else activation
        make_activation(act_name)  # validate before building anything

        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        previous = in_features
        for i, width in enumerate(widths, start=1):
            layers[f"fc{i}"] = nn.Linear(previous, width)
            layers[f"{act_name}{i}"] = make_activation(act_name)
            previous = width
        layers[f"fc{len(widths) + 1}"] = nn.Linear(previous, out_features)
        super().__init__(layers)
        self.in_features = in_features
        self.hidden = widths
        self.out_features = out_features
        self.activation = act_name
