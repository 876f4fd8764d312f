"""Task alignment, the fourth lens (Imani, Hu & White, "Representation alignment").

Not "are two networks alike" but "is this layer's representation good for this task, and will
a linear model learn from it quickly". With Φ = UΣVᵀ the SVD of a representation (rows
scaled to ‖xᵢ‖ ≤ 1) and y a label vector,

    Alignment(Φ, y, τ) = Σ_{i: σᵢ ≥ τ} (uᵢᵀy)²        (eq. 2)

is large for high thresholds τ when the labels lie along the top singular directions, which
is when gradient descent on a linear model fits them fast and with small weights
(Propositions 1 and 2).

* :func:`alignment` and :func:`curve` — the value at τ and the whole curve
  (:class:`AlignmentCurve`: singular values, projections (uᵢᵀy)², the curve per label
  vector and summed); :func:`prepare` is the normalisation and label encoding they share.
* :class:`StreamingAlignment` — the same curve from batches (ΦᵀΦ and Φᵀy accumulated;
  memory independent of n).
* :func:`predicted_loss` (Proposition 1) and :func:`iterations_bound` (Proposition 2).
* :func:`layer_alignment` — curves of every layer of a model (and of several checkpoints:
  before/after training) in one pass over the data, as a tidy frame.
* :mod:`nncompare.alignment.peaks` — the peaks-function transfer benchmark (§7.1).
* :mod:`nncompare.alignment.experiments` — the paper's experiments at CPU scale (Figs. 2, 4,
  6-7, 10, 13) as functions returning tidy frames, and :func:`~.experiments.summarize`.

Figures: ``nc.plot.alignment_*``.

References
----------
Imani, E., Hu, W. & White, M. (2022). Representation alignment in neural networks.
Transactions on Machine Learning Research.
"""

from __future__ import annotations

from nncompare.alignment import experiments, peaks
from nncompare.alignment._core import (
    KINDS,
    NORMALIZATIONS,
    AlignmentCurve,
    IterationsBound,
    PredictedLoss,
    SmallSampleWarning,
    StreamingAlignment,
    alignment,
    curve,
    iterations_bound,
    predicted_loss,
    prepare,
)
from nncompare.alignment._layers import CONV_POLICIES, layer_alignment

__all__ = [
    "CONV_POLICIES",
    "KINDS",
    "NORMALIZATIONS",
    "AlignmentCurve",
    "IterationsBound",
    "PredictedLoss",
    "SmallSampleWarning",
    "StreamingAlignment",
    "alignment",
    "curve",
    "experiments",
    "iterations_bound",
    "layer_alignment",
    "peaks",
    "predicted_loss",
    "prepare",
]
