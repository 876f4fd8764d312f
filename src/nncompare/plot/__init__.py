"""Figures of layer-by-layer comparisons (matplotlib, pyplot-free, never shown).

All functions take the tidy frame returned by :func:`nncompare.compare_models` and return a
:class:`matplotlib.figure.Figure`::

    import nncompare as nc

    df = nc.compare_models(net_a, net_b, x)
    fig = nc.plot.heatmap(df, "cka")
    fig.savefig("cka.png")                      # or nc.plot.figure_to_png_bytes(fig)

* :func:`heatmap` — layer × layer grid of one measure (NaN cells hatched).
* :func:`spectrum` — canonical correlation spectra ρ_i of selected layer pairs.
* :func:`kept_dims` — SVCCA kept dimensions per layer.
* :func:`layer_profile` — for each layer of A, the best-matching layer of B.
* :func:`plot_rdm` — a representational dissimilarity matrix (``nc.rdm(X)``), samples × samples.
* ``stitch_*`` — the stitching experiments of :mod:`nncompare.stitching.experiments`
  (Csiszárik et al. 2021, Figs. 2-8), one function per experiment (:mod:`.stitching`).
* ``alignment_*`` — the task-alignment lens (:mod:`nncompare.alignment`; Imani et al.):
  curves, spectra, curves per layer, before/after training, the peaks transfer results
  (:mod:`.alignment`).
* :func:`dynamics_grid`, :func:`convergence_curves`, :func:`class_sensitivity_curves` — the
  SVCCA paper's learning dynamics (Raghu et al. 2017, Fig. 4) and class sensitivity (Fig. 6)
  (:mod:`.dynamics`).
* :func:`compression_curves`, :func:`freeze_curves` — compression by SVCCA projection
  (accuracy against kept fraction, Fig. App.5) and Freeze Training against normal training
  (Fig. 5) (:mod:`.compression`).
* :func:`many_heatmap`, :func:`many_mds` — a model set's distance matrix in dendrogram order
  with metadata bars, and its MDS embedding; :func:`pwcca_toy_curves`, :func:`rnn_convergence`,
  :func:`rnn_timesteps` — Morcos et al. 2018, Figs. 2, 6d, A2-A4 (:mod:`.many`).
* ``weights_*`` — the weight lens of :mod:`nncompare.weights` (Guth & Ménard, Figs. 1, 3, 4):
  eigenfilter grid, eigen-subspace overlaps, spectra with r_eff, eigenvector similarity, S by
  depth (:mod:`.weights`).

Requires matplotlib (``pip install "nncompare[plot]"``); it is imported only when a figure
is drawn.
"""

from nncompare.plot._export import figure_to_png_bytes, figure_to_svg
from nncompare.plot._style import paper_style, shorten
from nncompare.plot.alignment import (
    alignment_before_after,
    alignment_curve,
    alignment_layers,
    alignment_linear_transfer,
    alignment_spectrum,
    alignment_transfer,
)
from nncompare.plot.compression import compression_curves, freeze_curves
from nncompare.plot.dynamics import class_sensitivity_curves, convergence_curves, dynamics_grid
from nncompare.plot.figures import heatmap, kept_dims, layer_profile, spectrum
from nncompare.plot.many import (
    many_heatmap,
    many_mds,
    pwcca_toy_curves,
    rnn_convergence,
    rnn_timesteps,
)
from nncompare.plot.rdm import plot_rdm
from nncompare.plot.stitching import (
    stitch_cka_penalty,
    stitch_initialisation,
    stitch_layer_sweep,
    stitch_low_rank,
    stitch_mode_connectivity,
    stitch_similarity_training,
    stitch_sparsity,
    stitch_width_sweep,
)
from nncompare.plot.weights import (
    weights_eigenfilters,
    weights_eigenvector_similarity,
    weights_overlap,
    weights_similarity_by_depth,
    weights_spectra,
)

__all__ = [
    "alignment_before_after",
    "alignment_curve",
    "alignment_layers",
    "alignment_linear_transfer",
    "alignment_spectrum",
    "alignment_transfer",
    "class_sensitivity_curves",
    "compression_curves",
    "convergence_curves",
    "dynamics_grid",
    "figure_to_png_bytes",
    "figure_to_svg",
    "freeze_curves",
    "heatmap",
    "kept_dims",
    "layer_profile",
    "many_heatmap",
    "many_mds",
    "paper_style",
    "plot_rdm",
    "pwcca_toy_curves",
    "rnn_convergence",
    "rnn_timesteps",
    "shorten",
    "spectrum",
    "stitch_cka_penalty",
    "stitch_initialisation",
    "stitch_layer_sweep",
    "stitch_low_rank",
    "stitch_mode_connectivity",
    "stitch_similarity_training",
    "stitch_sparsity",
    "stitch_width_sweep",
    "weights_eigenfilters",
    "weights_eigenvector_similarity",
    "weights_overlap",
    "weights_similarity_by_depth",
    "weights_spectra",
]
