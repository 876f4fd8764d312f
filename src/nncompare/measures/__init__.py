"""Representation-similarity measures on (n_samples, n_features) activation matrices.

Pure functions; each module holds one family. The measure registry
(``nncompare.measures._registry``) declares every measure once; the measure functions
below are bound from it, and ``available()`` lists them with their metadata.
"""

from typing import TYPE_CHECKING, Any

from nncompare.measures._registry import (
    MeasureInfo,
    available,
    compute,
    get,
    register,
    registered,
    similarity,
    supporting,
    unregister,
    with_spectrum,
)
from nncompare.measures.conv import dft_cca, reshape_conv

# every measure of the registry by name (nncompare.measures.cka is the function, as before)
_MEASURES = {name: info.function for name, info in available().items()}
globals().update(_MEASURES)

__all__ = [
    "MeasureInfo",
    "MinibatchCKA",
    "available",
    "compute",
    "dft_cca",
    "get",
    "register",
    "registered",
    "reshape_conv",
    "similarity",
    "supporting",
    "unregister",
    "with_spectrum",
]
__all__ += sorted(_MEASURES)


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names come from the registry
    from nncompare.measures.cca import cca, cca_r2, pwcca, svcca  # noqa: F401
    from nncompare.measures.cka import cka, cka_debiased, cka_rbf  # noqa: F401
    from nncompare.measures.covariance import bures_wasserstein, covariance_cosine  # noqa: F401
    from nncompare.measures.procrustes import procrustes, shape  # noqa: F401
    from nncompare.measures.regression import lr_r2  # noqa: F401
    from nncompare.measures.rsa import mutual_knn, rsa  # noqa: F401


def __getattr__(name: str) -> Any:
    if name == "MinibatchCKA":  # the streaming accumulator of kernel CKA, beside its family
        from nncompare.measures.cka import MinibatchCKA

        return MinibatchCKA
    # measures added with nncompare.measures.register() after this module was imported
    info = available().get(name) if not name.startswith("__") else None
    if info is None:
        raise AttributeError(f"module 'nncompare.measures' has no attribute {name!r}")
    return info.function
