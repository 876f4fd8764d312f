"""``nncompare.data`` is :mod:`nncompare.workbench.data`, the small data sets and input preparation.

This file makes the short public name the very same module object (its submodules
included), so ``import nncompare.data`` and ``from nncompare.data import ...`` keep
working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nncompare.workbench._alias import install_alias

install_alias(__name__, "nncompare.workbench.data")

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nncompare.workbench.data import *  # noqa: F403
