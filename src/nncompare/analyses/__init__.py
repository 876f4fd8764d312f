"""Analyses built on the measures: layer × layer and layer × checkpoint grids, model comparison.

All of them run through one engine (:mod:`nncompare.analyses.engine`): named activation
sources -> streaming moments -> pair tasks mapped by an executor -> one tidy schema.
"""

from nncompare.analyses.compare import compare_checkpoints, compare_models, default_layers
from nncompare.analyses.engine import SerialExecutor, ThreadExecutor
from nncompare.analyses.grid import GridResult, grid_from_moments, pairwise
from nncompare.results import ComparisonResult

__all__ = [
    "ComparisonResult",
    "GridResult",
    "SerialExecutor",
    "ThreadExecutor",
    "compare_checkpoints",
    "compare_models",
    "default_layers",
    "grid_from_moments",
    "pairwise",
]
