"""The small result object returned by every loader in :mod:`nncompare.data`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs, labels and a few facts about where they came from.

    Attributes
    ----------
    x : torch.Tensor or numpy.ndarray
        Inputs, first axis is the sample axis (e.g. ``(N, 1, 8, 8)`` float32).
    y : torch.Tensor, numpy.ndarray or None
        Integer class labels of shape ``(N,)`` (int64), or ``None`` when the source
        has no labels (e.g. an ``.npy`` file of inputs only).
    name : str
        Short name of the source, e.g. ``"digits"``, ``"mnist1d"`` or a file name.
    split : str
        ``"train"``, ``"test"``, ``"all"`` or ``"file"``.
    num_classes : int or None
        Number of classes, when known.
    info : dict
        Anything else worth keeping (seed, test fraction, source path, ...).

    Notes
    -----
    ``len(ds)`` is the number of samples. Compare two datasets by their arrays, not
    with ``==`` (equality is identity, because array equality is element-wise).
    """

    x: Any
    y: Any
    name: str
    split: str
    num_classes: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        def describe(a: Any) -> str:
            if a is None:
                return "None"
            kind = "tensor" if type(a).__module__.startswith("torch") else "array"
            dtype = str(a.dtype).removeprefix("torch.")
            return f"{kind}{tuple(a.shape)} {dtype}"

        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, x={describe(self.x)}, "
            f"y={describe(self.y)}, num_classes={self.num_classes})"
        )
