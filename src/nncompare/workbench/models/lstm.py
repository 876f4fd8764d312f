"""A stacked LSTM classifier with one named module per recurrent layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nncompare.workbench.models._layers import check_positive_int, check_widths

__all__ = ["StackedLSTM"]


class StackedLSTM(nn.Module):
    """Stacked LSTM ``lstm1 → lstm2 → … → fc`` reading its input as a sequence.

    Every recurrent layer is its own single-layer :class:`torch.nn.LSTM` (``lstm1``,
    ``lstm2``, ...), so activations can be captured layer by layer — with every sequence
    step's hidden and cell state through :func:`nncompare.capture.capture_recurrent`. The
    classifier ``fc`` reads the last layer's hidden state at the last step.

    Parameters
    ----------
    in_features : int, default 1
        Features per sequence step (1 for MNIST-1D, whose 40 samples are the steps).
    hidden : sequence of int, default (32, 32, 32)
        Width of each LSTM layer.
    out_features : int, default 10
        Number of classes.

    Shapes
    ------
    input ``(N, in_features, T)`` (channels first, like :class:`torch.nn.Conv1d`; MNIST-1D's
    ``(N, 1, 40)``) or ``(N, T)`` when ``in_features == 1``; output ``(N, out_features)``.

    Examples
    --------
    >>> net = StackedLSTM(1, hidden=(8, 8))
    >>> [name for name, _ in net.named_children()]
    ['lstm1', 'lstm2', 'fc']
    >>> net(torch.zeros(5, 1, 40)).shape
    torch.Size([5, 10])
    """

    def __init__(
        self,
        in_features: int = 1,
        hidden: Sequence[int] = (32, 32, 32),
        out_features: int = 10,
    ) -> None:
        check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        widths = check_widths("hidden", hidden, min_len=1)
        super().__init__()
        self.in_features = int(in_features)
        self.hidden = widths
        prev = self.in_features
        for i, w in enumerate(widths, start=1):
            self.add_module(f"lstm{i}", nn.LSTM(prev, w, batch_first=True))
            prev = w
        self.fc = nn.Linear(prev, out_features)

    def _sequence(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2 and self.in_features == 1:
            return x.unsqueeze(-1)
        if x.ndim == 3 and x.shape[1] == self.in_features:
            return x.transpose(1, 2)
        raise ValueError(
            f"StackedLSTM expects input of shape (N, {self.in_features}, T)"
            + (" or (N, T)" if self.in_features == 1 else "")
            + f"; got {tuple(x.shape)}. Put the features on dimension 1 and the steps last."
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._sequence(x)
        for i in range(1, len(self.hidden) + 1):
            h, _ = getattr(self, f"lstm{i}")(h)
        return self.fc(h[:, -1])
