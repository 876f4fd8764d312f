"""StitchResult: what a fit, a training run or an evaluation of a stitched model returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["StitchResult"]


@dataclass
class StitchResult:
    """The stitching matrix of one stitched model, how it was found and how well it does.

    Attributes
    ----------
    method : str
        ``"ls"``, ``"procrustes"``, ``"rrr"``, ``"lasso"`` (direct matching), ``"task"``
        (task-loss matching), ``"identity"``/``"random"`` (an untrained layer), as set by
        the last fit or training of the stitched model.
    matrix : numpy.ndarray, shape (C_a, C_b)
        The stitching matrix M in the convention ``A M + b ≈ B`` (copy).
    bias : numpy.ndarray, shape (C_b,)
    layer_a, layer_b, kind : str
    rank : int or None
        Bottleneck width (``kind="lowrank"``) or the rank of a ``"rrr"`` fit.
    resize : str or None
    options : dict
        The options of the fit or training (``alpha``, ``lr``, ``epochs``, ``seed``, ...).
    n_samples : int
        Inputs (images) used; ``n_positions`` the rows of the least-squares problem (N·H·W).
    history : list of dict
        Task-loss training only: one entry per evaluation step with ``step``, ``epoch``,
        ``loss`` (mean training loss since the previous entry, None at step 0), ``accuracy``
        and the monitored measures.
    accuracy, accuracy_b, relative_accuracy, cross_entropy, agreement : float or None
        From :func:`~nncompare.stitching.evaluate` (or ``train(..., eval_data=...)``):
        top-1 accuracy of the stitched model and of model B on the labels,
        their ratio, the mean cross-entropy of the stitched model's softmax to B's (the
        soft target), and how often their top-1 classes agree. None when not evaluated;
        the accuracies are None for data without labels.
    fit_r2 : float or None
        Direct matching: 1 - ||A M + b - B||² / ||B - mean B||² on the fitted positions.
    """

    method: str
    matrix: np.ndarray
    bias: np.ndarray
    layer_a: str
    layer_b: str
    kind: str
    rank: int | None = None
    resize: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    n_samples: int | None = None
    n_positions: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    accuracy: float | None = None
    accuracy_b: float | None = None
    relative_accuracy: float | None = None
    cross_entropy: float | None = None
    agreement: float | None = None
    fit_r2: float | None = None

    def to_row(self) -> dict[str, Any]:
        """One tidy row: every scalar field, the options as ``option_<name>``, no arrays."""
        row: dict[str, Any] = {
            "layer_a": self.layer_a,
            "layer_b": self.layer_b,
            "kind": self.kind,
            "rank": self.rank,
            "resize": self.resize,
            "method": self.method,
            "width_a": int(self.matrix.shape[0]),
            "width_b": int(self.matrix.shape[1]),
            "n_samples": self.n_samples,
            "n_positions": self.n_positions,
            "accuracy": self.accuracy,
            "accuracy_b": self.accuracy_b,
            "relative_accuracy": self.relative_accuracy,
            "cross_entropy": self.cross_entropy,
            "agreement": self.agreement,
            "fit_r2": self.fit_r2,
            "sparsity": float(np.mean(np.abs(self.matrix) < 1e-4)),
        }
        for key, value in self.options.items():
            if value is None or isinstance(value, str | bool | int | float):
                row[f"option_{key}"] = value
            else:
                row[f"option_{key}"] = repr(value)
        return row

    def to_frame(self) -> Any:
        """A one-row :class:`pandas.DataFrame` of :meth:`to_row`."""
        import pandas as pd

        return pd.DataFrame([self.to_row()])

    def history_frame(self) -> Any:
        """The training history as a :class:`pandas.DataFrame`, one row per evaluation step."""
        import pandas as pd

        return pd.DataFrame(self.history)

    def __repr__(self) -> str:
        parts = [f"method={self.method!r}", f"{self.layer_a!r} -> {self.layer_b!r}"]
        parts.append(f"matrix={self.matrix.shape}")
        if self.relative_accuracy is not None:
            parts.append(f"relative_accuracy={self.relative_accuracy:.4f}")
        if self.cross_entropy is not None:
            parts.append(f"cross_entropy={self.cross_entropy:.4f}")
        if self.fit_r2 is not None:
            parts.append(f"fit_r2={self.fit_r2:.4f}")
        return f"StitchResult({', '.join(parts)})"
