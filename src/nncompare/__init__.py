"""nncompare: how alike are two neural networks, and in what way.

Submodules and public names are imported lazily so that ``nncompare --version``
and ``import nncompare`` stay fast; the heavy dependencies (scipy, torch, pandas,
matplotlib) load only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nncompare._version import __version__ as __version__

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # representation measures
    "cca": "nncompare.measures.cca",
    "cca_r2": "nncompare.measures.cca",
    "svcca": "nncompare.measures.cca",
    "pwcca": "nncompare.measures.cca",
    "cka": "nncompare.measures.cka",
    "cka_debiased": "nncompare.measures.cka",
    "cka_rbf": "nncompare.measures.cka",
    "lr_r2": "nncompare.measures.regression",
    "procrustes": "nncompare.measures.procrustes",
    "shape": "nncompare.measures.procrustes",
    "ShapeMetric": "nncompare.measures.shape_cv",
    "shape_cv": "nncompare.measures.shape_cv",
    "bures_wasserstein": "nncompare.measures.covariance",
    "covariance_cosine": "nncompare.measures.covariance",
    "rsa": "nncompare.measures.rsa",
    "mutual_knn": "nncompare.measures.rsa",
    "rdm": "nncompare.measures.rsa",
    "similarity": "nncompare.measures._registry",
    "reshape_conv": "nncompare.measures.conv",
    "LayoutArray": "nncompare._layout",
    "LayoutWarning": "nncompare._layout",
    # streaming statistics
    "Moments": "nncompare.stats",
    "JointMoments": "nncompare.stats",
    "SpectralMoments": "nncompare.stats",
    "MinibatchCKA": "nncompare.stats",
    # grids
    "pairwise": "nncompare.analyses.grid",
    # capture and models
    "list_layers": "nncompare.capture",
    "compare_models": "nncompare.analyses.compare",
    "compare_checkpoints": "nncompare.analyses.compare",
}

_SUBMODULES = {
    "measures",
    "stats",
    "capture",
    "models",
    "data",
    "analyses",
    "plot",
    "report",
    "training",
    "demo",
}

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"nncompare.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'nncompare' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nncompare import analyses, capture, data, measures, models, stats  # noqa: F401
    from nncompare.measures.cca import cca, cca_r2, pwcca, svcca  # noqa: F401
    from nncompare.measures.cka import cka, cka_debiased, cka_rbf  # noqa: F401
    from nncompare.stats import JointMoments, MinibatchCKA, Moments  # noqa: F401
