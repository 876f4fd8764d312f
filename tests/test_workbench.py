"""The workbench (nncompare.workbench: models, data, training) is a tool shelf above the core."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

import nncompare

SRC = Path(nncompare.__file__).parent
#: what must never import the workbench (layout.md: the core, and plot/report, read results)
CORE = ["capture", "analyses", "measures", "parallel", "plot", "report"]
CORE_FILES = ["stats.py", "results.py", "errors.py", "_array.py", "_validation.py", "_io.py"]
WORKBENCH = ("nncompare.workbench", "nncompare.models", "nncompare.data", "nncompare.training")


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])


def _imported_modules(source: str, package: str) -> list[str]:
    """Absolute names of what ``source`` (a module of ``package``) imports."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def _is_workbench(name: str) -> bool:
    return any(name == w or name.startswith(f"{w}.") for w in WORKBENCH)


def _core_files() -> list[Path]:
    files = [SRC / name for name in CORE_FILES if (SRC / name).exists()]
    for folder in CORE:
        files += sorted((SRC / folder).rglob("*.py"))
    return files


def test_core_never_imports_the_workbench():
    files = _core_files()
    assert len(files) > 20  # the scan found the core
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in files
        for name in _imported_modules(path.read_text(encoding="utf-8"), _package_of(path))
        if _is_workbench(name)
    ]
    assert offenders == []


def test_the_scan_sees_absolute_and_relative_imports():
    """The layering check above can fail: it finds each spelling of a workbench import."""
    source = (
        "from nncompare.models import MLP\n"
        "from ..workbench import data\n"
        "import nncompare.training\n"
        "from nncompare import data as d\n"
        "from .hooks import x\n"
    )
    names = _imported_modules(source, "nncompare.capture")
    assert [n for n in names if _is_workbench(n)] == [
        "nncompare.models",
        "nncompare.models.MLP",
        "nncompare.workbench",
        "nncompare.workbench.data",
        "nncompare.training",
        "nncompare.data",
    ]
    assert "nncompare.capture.hooks" in names


def test_pickles_naming_the_short_paths_load_the_same_classes():
    """Whole-model pickles written before the move name ``nncompare.models.small_cnn.SmallCNN``;
    they find the one class, now at home in nncompare.workbench.models.small_cnn."""
    from nncompare.workbench.models import SmallCNN
    from nncompare.workbench.models.resnet_cifar import CifarResNet

    for cls, old in (
        (SmallCNN, b"nncompare.models.small_cnn"),
        (CifarResNet, b"nncompare.models.resnet_cifar"),
    ):
        data = pickle.dumps(cls, protocol=0)  # text protocol: the module path is plain bytes
        assert cls.__module__.encode() in data
        assert pickle.loads(data.replace(cls.__module__.encode(), old)) is cls


@pytest.mark.parametrize("name", ["models", "data", "training"])
def test_workbench_attributes_are_lazy_and_unknown_names_fail(name):
    import nncompare.workbench as wb

    assert getattr(wb, name) is getattr(nncompare, name)
    assert name in dir(wb)
    with pytest.raises(AttributeError, match=r"module 'nncompare\.workbench' has no attribute 'x'"):
        wb.x  # noqa: B018
