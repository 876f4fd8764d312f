"""No import runs up the layering (issue #8 item 1; ../shared/design/layout.md).

Every module of ``src/nncompare`` is parsed (nothing is imported) and each of its imports of
an nncompare module is checked against the layer order below, imports inside functions
included: a lazy import is still a dependency. Only imports under ``if TYPE_CHECKING:`` are
exempt (they never run). Imports by strings (``importlib.import_module``) are not seen; the
top-level lazy table of ``nncompare/__init__.py`` is the one place that uses them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import nncompare

SRC = Path(nncompare.__file__).parent

#: layer of each part of nncompare (the first name below ``nncompare``) -> rank, bottom = 0.
#: A module may import modules of its own rank or lower; arrows point down.
LAYERS: dict[str, int] = {
    # ground floor: small shared helpers and the result types
    "_array": 0,
    "_validation": 0,
    "_io": 0,
    "_layout": 0,
    "_version": 0,
    "_threads": 0,
    "_scratch": 0,
    "_names": 0,  # the table of public names (the front door and the registry read it)
    "errors": 0,
    "results": 0,
    # the core
    "stats": 1,
    "measures": 2,
    "capture": 3,
    "analyses": 4,  # the engine and the front doors
    "parallel": 5,  # executors, plugged into the engine (see LAZY_ONLY)
    # the tool shelf: may use everything below the lenses; the core never imports it. The
    # old top-level names stay as aliases of nncompare.workbench.{models,data,training}.
    "workbench": 6,
    "models": 6,
    "data": 6,
    "training": 6,
    # the lenses: each enters at capture/stats and leaves through plot/report
    "stitching": 7,
    "weights": 7,
    "alignment": 7,
    "plot": 8,
    "report": 9,
    "demo": 10,
    "cli": 11,
    # the package's front door: its lazy table names everything
    "": 12,
}

#: parts of one rank that must not import each other (a lens never reaches into another)
ISOLATED_PEERS = {"stitching", "weights", "alignment"}

#: (importer layer, imported layer) allowed upward only inside a function: the engine takes
#: an executor and imports its default from nncompare.parallel when it runs, never at import
LAZY_ONLY = {("analyses", "parallel")}

#: names the front door binds at import from the ground floor: importing them is no upward step
FRONT_DOOR_NAMES = {"__version__": "nncompare._version"}

#: Current violations owned by other work, one line each: (importing module, imported module).
#: The test passes with them and fails once one is fixed, so that its line gets deleted here.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()

#: private names of a measure family imported from outside that family: (importer, "module.name")
KNOWN_PRIVATE_EXCEPTIONS: set[tuple[str, str]] = set()

#: modules that belong to a family without being its module: an accumulator that needs the
#: family's internals lives beside it (layout.md), e.g. SpectralMoments beside the DFT code
FAMILY_MEMBERS = {"nncompare.measures._spectral": "nncompare.measures.conv"}

#: attributes of the statistics that only nncompare.stats itself touches (measures use
#: Moments.cached for their per-side preparations)
STATS_PRIVATE_ATTRIBUTES = {"_cache_x", "_cache_y", "_cache_pair", "_side_cache"}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name, e.g. "nncompare.measures.cca"
    target: str  # dotted module imported, e.g. "nncompare.stats"
    line: int
    lazy: bool  # inside a function body


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` (``nncompare.x.y``) names a module or package of the source tree."""
    path = SRC.joinpath(*dotted.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[Import] = []
        self._depth = 0

    def _add(self, target: str, node: ast.stmt) -> None:
        if target == "nncompare" or target.startswith("nncompare."):
            self.found.append(Import(self.module, target, node.lineno, self._depth > 0))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):  # never runs: only the else branch counts
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module or ""
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if base == "nncompare" and alias.name in FRONT_DOOR_NAMES:
                sub = FRONT_DOOR_NAMES[alias.name]
            self._add(sub if sub in FRONT_DOOR_NAMES.values() or _is_module(sub) else base, node)


def imports_of(source: str, module: str, *, is_package: bool = False) -> list[Import]:
    """The nncompare imports that run when ``module`` (of the given source) is used."""
    visitor = _Imports(module, is_package)
    visitor.visit(ast.parse(source))
    return visitor.found


def layer_of(module: str) -> str:
    """The part of nncompare a dotted module name belongs to ("" for nncompare itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violation(imp: Import) -> str | None:
    """Why ``imp`` runs up the layering, or None when it points down (or sideways)."""
    src, dst = layer_of(imp.importer), layer_of(imp.target)
    for part, name in ((src, imp.importer), (dst, imp.target)):
        if part not in LAYERS:
            return f"{name} is in no layer: add {part!r} to LAYERS in tests/test_layering.py"
    if src == dst:
        return None
    where = f"{imp.importer} (line {imp.line}) imports {imp.target}"
    if LAYERS[dst] > LAYERS[src]:
        if imp.lazy and (src, dst) in LAZY_ONLY:
            return None
        how = "inside a function, " if imp.lazy else ""
        return (
            f"{where}: {how}{src or 'nncompare'} (layer {LAYERS[src]}) must not depend on "
            f"{dst or 'the nncompare front door'} (layer {LAYERS[dst]}). Move the shared code "
            "down (to the lower module or the ground floor) or pass it in."
        )
    if LAYERS[dst] == LAYERS[src] and {src, dst} <= ISOLATED_PEERS:
        return f"{where}: one lens never reaches into another ({src} -> {dst})."
    return None


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out.append((".".join(parts), path))
    return out


def _all_imports() -> list[Import]:
    found = []
    for module, path in _modules():
        source = path.read_text(encoding="utf-8")
        found += imports_of(source, module, is_package=path.name == "__init__.py")
    return found


def test_no_import_runs_up_the_layering():
    imports = _all_imports()
    assert len({i.importer for i in imports}) > 40  # the scan saw the package
    problems = sorted(
        {
            msg
            for imp in imports
            if (imp.importer, imp.target) not in KNOWN_EXCEPTIONS
            and (msg := violation(imp)) is not None
        }
    )
    assert problems == [], "\n".join(problems)


def test_known_exceptions_are_still_needed():
    """Each KNOWN_EXCEPTIONS line is a violation that still exists; delete the fixed ones."""
    live = {(i.importer, i.target) for i in _all_imports() if violation(i) is not None}
    fixed = sorted(KNOWN_EXCEPTIONS - live)
    assert fixed == [], f"fixed, delete from KNOWN_EXCEPTIONS: {fixed}"


def test_every_part_of_the_package_is_placed():
    parts = {layer_of(module) for module, _ in _modules()}
    assert parts - set(LAYERS) == set(), "place the new parts of nncompare in LAYERS"


# ---------------------------------------------------------------------- the scan itself
def test_the_scan_catches_upward_imports_at_module_level_and_inside_functions():
    source = (
        "import numpy as np\n"
        "from nncompare._array import as_array\n"
        "from nncompare.measures.cka import cka\n"
        "def f():\n"
        "    from nncompare import plot\n"
        "    import nncompare.analyses.engine\n"
        "class C:\n"
        "    async def g(self):\n"
        "        from .capture import list_layers\n"
    )
    found = imports_of(source, "nncompare.stats")
    assert [(i.target, i.lazy) for i in found] == [
        ("nncompare._array", False),
        ("nncompare.measures.cka", False),
        ("nncompare.plot", True),
        ("nncompare.analyses.engine", True),
        ("nncompare.capture", True),
    ]
    bad = [violation(i) for i in found]
    assert bad[0] is None
    assert bad[1] is not None and "stats (layer 1) must not depend on measures (layer 2)" in bad[1]
    assert bad[2] is not None and "inside a function, stats (layer 1)" in bad[2]
    assert all(b is not None for b in bad[1:])


def test_type_checking_only_imports_are_exempt():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import typing\n"
        "if TYPE_CHECKING:\n"
        "    from nncompare.analyses.engine import Engine\n"
        "if typing.TYPE_CHECKING:\n"
        "    import nncompare.plot\n"
        "else:\n"
        "    from nncompare.report import write\n"
        "def f():\n"
        "    if TYPE_CHECKING:\n"
        "        from nncompare.cli import main\n"
    )
    found = imports_of(source, "nncompare.measures.cca")
    assert [i.target for i in found] == ["nncompare.report"]  # the else branch runs


def test_the_version_from_the_front_door_counts_as_the_ground_floor():
    found = imports_of("from nncompare import __version__, cca\n", "nncompare.report._html")
    assert [i.target for i in found] == ["nncompare._version", "nncompare"]
    assert violation(found[0]) is None
    assert "front door" in str(violation(found[1]))


def test_relative_imports_resolve_from_modules_and_packages():
    source = "from . import _kernels\nfrom .._array import to_numpy\nfrom .cca import cca\n"
    in_module = imports_of(source, "nncompare.measures.cka")
    in_package = imports_of(source, "nncompare.measures", is_package=True)
    expected = ["nncompare.measures._kernels", "nncompare._array", "nncompare.measures.cca"]
    assert [i.target for i in in_module] == expected
    assert [i.target for i in in_package] == expected


@pytest.mark.parametrize(
    ("importer", "target", "lazy", "expected"),
    [
        ("nncompare.analyses.engine", "nncompare.parallel", True, None),
        ("nncompare.analyses.engine", "nncompare.parallel", False, "must not depend on parallel"),
        ("nncompare.capture._run", "nncompare.workbench.models", True, "must not depend on"),
        ("nncompare.workbench.training", "nncompare.analyses", False, None),
        ("nncompare.stitching.core", "nncompare.weights", False, "one lens never reaches"),
        ("nncompare.measures.cca", "nncompare", True, "the nncompare front door"),
        ("nncompare.cli.main", "nncompare.report", False, None),
        ("nncompare.stats", "nncompare.plugins", False, "add 'plugins' to LAYERS"),
    ],
)
def test_layer_rules(importer, target, lazy, expected):
    msg = violation(Import(importer, target, 1, lazy))
    if expected is None:
        assert msg is None
    else:
        assert msg is not None and expected in msg


# ---------------------------------------------------------------------- private names
def _families() -> set[str]:
    """The measure family modules (nncompare.measures.cca, ...), not the shared _helpers."""
    return {
        f"nncompare.measures.{p.stem}"
        for p in (SRC / "measures").glob("*.py")
        if not p.stem.startswith("_")
    }


def private_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """``"module.name"`` for each private name ``module`` imports from a measure family
    module other than its own."""
    visitor = _Imports(module, is_package)
    families = _families()
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            parts = visitor.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module or ""
        if base in families and base != FAMILY_MEMBERS.get(module, module):
            out += [f"{base}.{a.name}" for a in node.names if a.name.startswith("_")]
    return out


def test_no_module_uses_a_private_name_of_a_measure_family():
    """A family's helpers that others need live below it (measures/_linalg.py, _kernels.py)."""
    found = {
        (module, name)
        for module, path in _modules()
        for name in private_imports(
            path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py"
        )
    }
    assert found - KNOWN_PRIVATE_EXCEPTIONS == set()
    assert KNOWN_PRIVATE_EXCEPTIONS - found == set(), "fixed: delete from KNOWN_PRIVATE_EXCEPTIONS"


def test_the_private_name_scan_sees_both_spellings():
    source = (
        "from nncompare.measures.cca import _side, cca\n"
        "def f():\n"
        "    from .rsa import _knn_side\n"
        "    from ._linalg import _cholesky_side\n"
        "    from .procrustes import _polar\n"
    )
    assert private_imports(source, "nncompare.measures.procrustes") == [
        "nncompare.measures.cca._side",
        "nncompare.measures.rsa._knn_side",
    ]
    # a family's own accumulator module may use its internals
    assert private_imports("from .conv import _scan\n", "nncompare.measures._spectral") == []
    assert private_imports("from .cca import _side\n", "nncompare.measures._spectral") == [
        "nncompare.measures.cca._side"
    ]


def test_only_stats_touches_the_private_caches_of_the_moments():
    offenders = sorted(
        f"{module} line {node.lineno}: .{node.attr}"
        for module, path in _modules()
        if module != "nncompare.stats"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr in STATS_PRIVATE_ATTRIBUTES
    )
    assert offenders == [], "use Moments.cached(which, key, compute):\n" + "\n".join(offenders)


#: private names of nncompare.stats imported by a measure module: (importer, name)
KNOWN_STATS_PRIVATE: set[tuple[str, str]] = {
    # SpectralMoments shares the layer-block record and the pickling of the array namespace
    # with JointMoments: public names in stats.py (or _xp_name/_xp_from_name in _array.py)
    ("nncompare.measures._spectral", "_Block"),
    ("nncompare.measures._spectral", "_xp_from_name"),
    ("nncompare.measures._spectral", "_xp_name"),
}


def test_the_measures_use_only_public_names_of_the_statistics():
    """stats.py offers the measures what they need by public name (check_precision,
    batch_stats, centred_normalised, Moments.cached, ...)."""
    found = {
        (module, alias.name)
        for module, path in _modules()
        if layer_of(module) == "measures"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.module == "nncompare.stats"
        for alias in node.names
        if alias.name.startswith("_")
    }
    assert sorted(found - KNOWN_STATS_PRIVATE) == []
    assert sorted(KNOWN_STATS_PRIVATE - found) == [], "fixed: delete from KNOWN_STATS_PRIVATE"
