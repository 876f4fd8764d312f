"""``nncompare.models`` is :mod:`nncompare.workbench.models`, the reference architectures.

This file makes the short public name the very same module object (its submodules
included), so ``import nncompare.models``, ``from nncompare.models import ...`` and the
command line's ``nncompare.models:factory`` keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nncompare.workbench._alias import install_alias

install_alias(__name__, "nncompare.workbench.models")

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nncompare.workbench.models import *  # noqa: F403
