"""nncompare: how alike are two neural networks, and in what way.

Submodules and public names are imported lazily so that ``nncompare --version``
and ``import nncompare`` stay fast; the heavy dependencies (scipy, torch, pandas,
matplotlib) load only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nncompare._names import LAZY as _LAZY
from nncompare._names import SUBMODULES as _SUBMODULES
from nncompare._version import __version__ as __version__


def _measures() -> dict[str, Any]:
    """The measure registry, ``name -> MeasureInfo`` (imports nncompare.measures)."""
    from nncompare.measures._registry import available

    return available()


def _public_names() -> list[str]:
    return sorted({*_LAZY, *_measures(), *_SUBMODULES, "__version__"})


def __getattr__(name: str) -> Any:
    # ``__all__`` and the measure names come from the registry, on first use, so that
    # ``import nncompare`` does not import the measures (numpy) until they are needed
    if name == "__all__":
        return _public_names()
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"nncompare.{name}")
        globals()[name] = module
        return module
    if not name.startswith("__"):
        from nncompare.measures._registry import _BUILTIN_NAMES

        info = _measures().get(name)
        if info is not None:
            value = info.function
            if name in _BUILTIN_NAMES:  # measures added with register() can be removed again
                globals()[name] = value
            return value
    raise AttributeError(f"module 'nncompare' has no attribute {name!r}")


def __dir__() -> list[str]:
    return _public_names()


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nncompare import analyses, capture, data, measures, models, stats  # noqa: F401
    from nncompare.measures.cca import cca, cca_r2, pwcca, svcca  # noqa: F401
    from nncompare.measures.cka import MinibatchCKA, cka, cka_debiased, cka_rbf  # noqa: F401
    from nncompare.stats import JointMoments, Moments  # noqa: F401
