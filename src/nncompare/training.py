"""``nncompare.training`` is :mod:`nncompare.workbench.training`, the small trainer.

This file makes the short public name the very same module object (its submodules
included), so ``import nncompare.training`` and ``from nncompare.training import ...`` keep
working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nncompare.workbench._alias import install_alias

install_alias(__name__, "nncompare.workbench.training")

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nncompare.workbench.training import *  # noqa: F403
