"""Model stitching: the function lens (Csiszárik et al. 2021, "Dr. Frankenstein").

Representational measures say how alike two layers look; stitching asks whether one
network's layer can do the job of the other's. Cut model A after ``layer_a`` and model B
after ``layer_b``, put a trainable stitching layer S between them, and measure how well the
Frankenstein network F(x) = T_B(S(R_A(x))) performs:

* :func:`stitch` builds F (a :class:`Stitched` module) at a true cut of the traced graph;
  :func:`valid_cuts` lists where a model can be cut (a skip connection around a layer makes
  it invalid).
* :func:`fit` sets S by direct matching, in closed form from streamed moments over all
  N·H·W positions: least squares (eq. 2), orthogonal Procrustes, reduced-rank regression,
  lasso (eq. 3).
* :func:`train` sets S by task-loss matching (cross-entropy to B's outputs or the labels),
  with optional L1 and CKA penalties and monitored similarity measures.
* :func:`evaluate` scores F against B: accuracy, relative accuracy, cross-entropy.

Each returns a :class:`StitchResult` (matrix, method, options, history; ``to_frame()``).

:mod:`nncompare.stitching.experiments` runs the paper's experiments (Figs. 2-8: layer and
width sweeps, similarity during training, CKA-penalised self-stitching, initialisation,
low rank, mode connectivity, sparsity) and returns tidy frames; ``nc.plot.stitch_*`` draws
them.

References
----------
Csiszárik, A., Kőrösi-Szabó, P., Matszangosz, Á. K., Papp, G. & Varga, D. (2021). Similarity
and matching of neural network representations. NeurIPS.
Izenman, A. J. (1975). Reduced-rank regression for the multivariate linear model. Journal
of Multivariate Analysis 5, 248-264.
"""

from __future__ import annotations

from nncompare.stitching import experiments
from nncompare.stitching._cut import Cut, InvalidCutError, valid_cuts
from nncompare.stitching._fit import METHODS, fit
from nncompare.stitching._result import StitchResult
from nncompare.stitching._stitched import KINDS, Stitched, stitch
from nncompare.stitching._train import INITS, TARGETS, evaluate, train

__all__ = [
    "INITS",
    "KINDS",
    "METHODS",
    "TARGETS",
    "Cut",
    "InvalidCutError",
    "StitchResult",
    "Stitched",
    "evaluate",
    "experiments",
    "fit",
    "stitch",
    "train",
    "valid_cuts",
]
