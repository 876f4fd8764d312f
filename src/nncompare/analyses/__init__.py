"""Analyses built on the measures: layer × layer and layer × checkpoint grids, model comparison."""

from nncompare.analyses.compare import compare_checkpoints, compare_models, default_layers
from nncompare.analyses.grid import GridResult, grid_from_moments, pairwise

__all__ = [
    "GridResult",
    "compare_checkpoints",
    "compare_models",
    "default_layers",
    "grid_from_moments",
    "pairwise",
]
