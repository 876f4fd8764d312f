"""Short public names for the workbench modules (``nncompare.models`` and friends)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from types import ModuleType


def install_alias(alias: str, target: str) -> ModuleType:
    """Make the module ``alias`` the very same object as the module ``target``.

    ``target`` and, for a package, every submodule below it are imported and entered in
    :data:`sys.modules` under the alias as well (``nncompare.models.resnet_cifar`` is
    ``nncompare.workbench.models.resnet_cifar``), so no module is ever imported twice under
    two names: each class exists once, ``isinstance`` checks agree and pickles written with
    either path load.

    Parameters
    ----------
    alias : str
        The short name, e.g. ``"nncompare.models"``; called from that module's own file,
        which the import system then replaces with ``target``.
    target : str
        The module's real home, e.g. ``"nncompare.workbench.models"``.

    Returns
    -------
    module : ModuleType
        The target module.
    """
    module = importlib.import_module(target)
    path = getattr(module, "__path__", None)
    if path is not None:  # a package: load its submodules before aliasing them
        for info in pkgutil.walk_packages(path, prefix=f"{target}."):
            importlib.import_module(info.name)
    prefix = f"{target}."
    for name, sub in list(sys.modules.items()):
        if name.startswith(prefix):
            sys.modules[alias + name[len(target) :]] = sub
    sys.modules[alias] = module
    return module
