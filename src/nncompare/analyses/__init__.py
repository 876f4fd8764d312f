"""Analyses built on the measures: layer × layer and layer × checkpoint grids, model comparison.

All of them run through one engine (:mod:`nncompare.analyses.engine`): named activation
sources -> streaming moments -> pair tasks mapped by an executor -> one tidy schema.
The executors live in :mod:`nncompare.parallel`; ``nc.analyses.SerialExecutor`` and
``nc.analyses.ThreadExecutor`` are kept as their former names (imported on first use).
"""

from typing import Any

from nncompare.analyses import recurrent, toys
from nncompare.analyses.cluster import (
    Clustering,
    ModelMatrix,
    cluster,
    group_summary,
    model_matrices,
    model_matrix,
)
from nncompare.analyses.compare import compare_checkpoints, compare_models, default_layers
from nncompare.analyses.compression import CompressionResult, compression_sweep, svcca_compress
from nncompare.analyses.dynamics import convergence_steps, learning_dynamics
from nncompare.analyses.grid import GridResult, grid_from_moments, pairwise
from nncompare.analyses.inference import (
    Inference,
    NullDistribution,
    bootstrap,
    bootstrap_blocks,
    permutation_test,
    random_copy,
    rotation_baseline,
)
from nncompare.analyses.many import compare_many
from nncompare.analyses.sensitivity import class_sensitivity
from nncompare.results import ComparisonResult

__all__ = [
    "Clustering",
    "ComparisonResult",
    "CompressionResult",
    "GridResult",
    "Inference",
    "ModelMatrix",
    "NullDistribution",
    "SerialExecutor",
    "ThreadExecutor",
    "bootstrap",
    "bootstrap_blocks",
    "class_sensitivity",
    "cluster",
    "compare_checkpoints",
    "compare_many",
    "compare_models",
    "compression_sweep",
    "convergence_steps",
    "default_layers",
    "grid_from_moments",
    "group_summary",
    "learning_dynamics",
    "model_matrices",
    "model_matrix",
    "pairwise",
    "permutation_test",
    "random_copy",
    "recurrent",
    "rotation_baseline",
    "svcca_compress",
    "toys",
]

_MOVED = ("SerialExecutor", "ThreadExecutor", "ProcessExecutor")


def __getattr__(name: str) -> Any:
    # the executors sit above the engine (nncompare.parallel); imported only when asked for
    if name in _MOVED:
        import nncompare.parallel

        return getattr(nncompare.parallel, name)
    raise AttributeError(f"module 'nncompare.analyses' has no attribute {name!r}")
