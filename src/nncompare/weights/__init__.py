"""The weight lens: compare what networks learned in their weights (Guth & Ménard).

Guth, F. & Ménard, B., "On the universality of neural encodings in CNNs" (ICLR 2024
workshop); equation numbers below are the paper's.

Spatial filters (§2.2, Fig. 1)
    :func:`spatial_covariance` — the k² × k² second moment of a conv layer's C_out · C_in
    filters; :func:`spatial_eigenfilters` — its eigenvectors as k × k images for every
    Conv2d of any torch model, sign-fixed consistently across layers and networks, with
    near-degenerate ranks flagged; :func:`subspace_overlap` — overlap of two layers'
    leading eigen-subspaces (chance: rank / k²).

Channel weights (§3)
    :func:`alignment` — orthogonal Procrustes map between two networks' inputs of a layer
    (eq. 1), from streamed moments; :func:`aligned_weights` — B's weights in A's basis
    (eq. 2), also for the K filter copies of factorized layers and unequal widths;
    :func:`channel_covariance` — the weight covariance normalised by the init variance;
    :func:`shrink` (eq. 3), :func:`effective_rank` (eq. 4); :func:`covariance_similarity`
    — Bures–Wasserstein distance, cosine (eq. 5) and normalised similarity S (eq. 6);
    :func:`eigenvector_similarity` — |cos| between leading eigenvectors (Fig. 3);
    :func:`compare_weights` — all of it per layer in one tidy frame (Fig. 4).

Conventions: covariances are uncentred (weights are drawn around 0) and divided by the
per-entry init variance σ², PyTorch's default 1 / (3 fan_in) unless given; γ = D / C_out for a
C_out × D weight matrix (D = C_in · k² for a joint k × k conv, C_in for 1 × 1 and linear layers,
K · C_in for the pointwise conv of a factorized block). Spatial filters of any square k ≥ 2
(odd or even) are accepted; eigenfilters of different k are never compared.
"""

from nncompare.weights import experiments
from nncompare.weights._align import Alignment, aligned_weights, alignment, alignment_from_moments
from nncompare.weights._compare import (
    AlignedCovariances,
    aligned_covariances,
    compare_weights,
    weight_layers,
)
from nncompare.weights._similarity import (
    CovarianceSimilarity,
    EigenvectorSimilarity,
    covariance_similarity,
    eigenvector_similarity,
)
from nncompare.weights._spatial import (
    SpatialEigenfilters,
    spatial_covariance,
    spatial_eigenfilters,
    subspace_overlap,
)
from nncompare.weights._spectra import (
    channel_covariance,
    default_init_variance,
    effective_rank,
    noise_edge,
    shrink,
)

__all__ = [
    "AlignedCovariances",
    "Alignment",
    "CovarianceSimilarity",
    "EigenvectorSimilarity",
    "SpatialEigenfilters",
    "aligned_covariances",
    "aligned_weights",
    "alignment",
    "alignment_from_moments",
    "channel_covariance",
    "compare_weights",
    "covariance_similarity",
    "default_init_variance",
    "effective_rank",
    "eigenvector_similarity",
    "experiments",
    "noise_edge",
    "shrink",
    "spatial_covariance",
    "spatial_eigenfilters",
    "subspace_overlap",
    "weight_layers",
]
