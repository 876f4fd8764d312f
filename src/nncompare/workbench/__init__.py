"""The workbench: tools to make networks and data, not to compare them.

* :mod:`~nncompare.workbench.models` - reference architectures with readable layer names
  (MLP, small CNNs, CIFAR ResNets with the pretrained checkpoints' loading, simplified VGG).
* :mod:`~nncompare.workbench.data` - small data sets that ship with Python packages, user
  array files, and image batches prepared for a model.
* :mod:`~nncompare.workbench.training` - a small deterministic trainer with checkpoints.

The demo, the command line, the tests, the benchmarks and the lenses' experiments use
these; the core (capture, stats, measures, analyses) never imports them. The three are
also reachable by their short names ``nncompare.models``, ``nncompare.data`` and
``nncompare.training`` (the same module objects). Submodules load on first use, so
``import nncompare.workbench`` imports neither torch nor numpy.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

_SUBMODULES = ("data", "models", "training")

__all__ = list(_SUBMODULES)


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES})


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nncompare.workbench import data, models, training  # noqa: F401
