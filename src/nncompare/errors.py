"""The exceptions and warnings nncompare raises, in one place.

Every exception nncompare defines derives from :class:`NNCompareError` *and* from the
built-in exception it refines (``ValueError``, ``KeyError``, ``MemoryError``, …), so both
``except nc.errors.NNCompareError`` and the usual ``except ValueError`` work. Bad input to
a measure (NaN, mismatched samples, constant layers, …) raises plain ``ValueError`` /
``TypeError`` with a message saying what was expected, what arrived and how to fix it.
Every warning derives from :class:`NNCompareWarning`, so
``warnings.simplefilter("error", nc.errors.NNCompareWarning)`` makes them all errors.

=========================  ===========================================================
``NNCompareError``         base of nncompare's exceptions
``InvalidParameterError``  an option outside its declared values (``ValueError``, ``TypeError``)
``InsufficientMemoryError`` an O(n²) measure would not fit in memory (``MemoryError``)
``ProductPrecisionError``  float32 co-moments too inexact for an inversion (``ValueError``)
``UnsafeCheckpointError``  a checkpoint holds pickled code (``ValueError``)
``NotFittedError``         a fitted estimator used before ``fit`` (``ValueError``)
``LayerNotFoundError``     no such layer (``KeyError``), with close matches
``InvalidCacheError``      a damaged or foreign activation cache (``ValueError``)
``StaleCacheError``        a cache of a different capture (``InvalidCacheError``)
``NNCompareWarning``       base of nncompare's warnings
``RankDeficiencyWarning``  fewer independent features than columns
``ConstantFeatureWarning`` features that never change
``LayoutWarning``          an untagged conv array that looks channels-first
=========================  ===========================================================
"""

from __future__ import annotations

import importlib
from typing import Any


class NNCompareError(Exception):
    """Base class of every exception nncompare defines."""


class NNCompareWarning(UserWarning):
    """Base class of the warnings nncompare emits."""


class RankDeficiencyWarning(NNCompareWarning):
    """An input has fewer linearly independent features than columns.

    CCA-type measures are then computed in the column space (the numerical rank is
    reported in the result); constant features are ignored.
    """


class ConstantFeatureWarning(NNCompareWarning):
    """Some features never change over the samples and carry no information."""


# Defined beside the code that raises them (some need torch); importable from here.
_ELSEWHERE = {
    "InsufficientMemoryError": "nncompare.measures._kernels",
    "InvalidParameterError": "nncompare._validation",
    "ProductPrecisionError": "nncompare.measures._linalg",
    "UnsafeCheckpointError": "nncompare._io",
    "NotFittedError": "nncompare.measures.shape_cv",
    "LayerNotFoundError": "nncompare.capture._errors",
    "InvalidCacheError": "nncompare.capture._errors",
    "StaleCacheError": "nncompare.capture._errors",
    "LayoutWarning": "nncompare._layout",
}


__all__ = sorted(
    [
        "ConstantFeatureWarning",
        "NNCompareError",
        "NNCompareWarning",
        "RankDeficiencyWarning",
        *_ELSEWHERE,
    ]
)


def __getattr__(name: str) -> Any:
    if name in _ELSEWHERE:
        return getattr(importlib.import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module 'nncompare.errors' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
