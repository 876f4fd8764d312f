"""The public API is pinned: adding or removing a name must be a deliberate change here."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import subprocess
import sys
import types

import nncompare as nc

PUBLIC = [
    "ComparisonResult",
    "JointMoments",
    "LayoutArray",
    "LayoutWarning",
    "MinibatchCKA",
    "Moments",
    "ShapeMetric",
    "SpectralMoments",
    "__version__",
    "alignment",
    "analyses",
    "bures_wasserstein",
    "capture",
    "cca",
    "cca_r2",
    "cka",
    "cka_debiased",
    "cka_rbf",
    "compare_checkpoints",
    "compare_many",
    "compare_models",
    "covariance_cosine",
    "data",
    "demo",
    "errors",
    "list_layers",
    "lr_r2",
    "measures",
    "models",
    "mutual_knn",
    "pairwise",
    "parallel",
    "plot",
    "procrustes",
    "pwcca",
    "rdm",
    "report",
    "reshape_conv",
    "rsa",
    "shape",
    "shape_cv",
    "similarity",
    "stats",
    "stitch",
    "stitching",
    "svcca",
    "training",
    "weights",
    "workbench",
]

MEASURES = [
    "bures_wasserstein",
    "cca",
    "cca_r2",
    "cka",
    "cka_debiased",
    "cka_rbf",
    "covariance_cosine",
    "lr_r2",
    "mutual_knn",
    "procrustes",
    "pwcca",
    "rsa",
    "shape",
    "svcca",
]


def test_public_names_pinned():
    assert sorted(nc.__all__) == sorted(PUBLIC)


MODULES = {
    "alignment", "analyses", "capture", "data", "demo", "errors", "measures", "models",
    "parallel", "plot", "report", "stats", "stitching", "training", "weights", "workbench",
}  # fmt: skip
#: short names of the workbench modules: the same module objects, at home in nncompare.workbench
WORKBENCH = {"data", "models", "training"}
CLASSES = {
    "ComparisonResult", "JointMoments", "LayoutArray", "LayoutWarning", "MinibatchCKA",
    "Moments", "ShapeMetric", "SpectralMoments",
}  # fmt: skip


def test_every_public_name_is_the_documented_object():
    """Each name is the real thing: a submodule of that name, or a documented class or
    function defined in nncompare under that name (not an alias, placeholder or re-export)."""
    for name in PUBLIC:
        obj = getattr(nc, name)
        if name == "__version__":
            assert isinstance(obj, str) and re.fullmatch(r"\d+\.\d+\.\d+\S*", obj), obj
            assert obj == importlib.metadata.version("nncompare")
            continue
        if name in MODULES:
            assert isinstance(obj, types.ModuleType), (name, type(obj))
            home = f"nncompare.workbench.{name}" if name in WORKBENCH else f"nncompare.{name}"
            assert obj.__name__ == home
            assert obj is sys.modules[f"nncompare.{name}"] is sys.modules[home]
        else:
            if name in CLASSES:
                assert inspect.isclass(obj), (name, type(obj))
            assert inspect.isclass(obj) or inspect.isfunction(obj), (name, type(obj))
            assert obj.__name__ == name, (name, obj.__name__)
            assert obj.__module__.startswith("nncompare."), (name, obj.__module__)
            assert getattr(importlib.import_module(obj.__module__), name) is obj
        assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"


def test_measure_signatures():
    """Activation measures take (X, Y, *, options); covariance measures (C1, C2)."""
    for name, info in nc.measures.available().items():
        params = list(inspect.signature(info.function).parameters.values())
        first = ["X", "Y"] if info.input == "activations" else ["C1", "C2"]
        assert [p.name for p in params[:2]] == first, name
        assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params[:2]), name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:]), name
        assert all(p.default is not inspect.Parameter.empty for p in params[2:]), name
        if info.input == "activations":  # every conv= comes with layout= (channels first/last)
            names = [p.name for p in params]
            assert "conv" in names and "layout" in names, name


def test_registry_pinned_and_functions_exported():
    assert sorted(nc.measures.available()) == MEASURES
    for name, info in nc.measures.available().items():
        assert getattr(nc, name) is info.function
        assert getattr(nc.measures, name) is info.function
        assert info.reference and info.description and info.label and info.family


def test_measure_names_derive_from_the_registry():
    """Every registry entry is a public name of nncompare and nncompare.measures, without a
    hand-written line for it; dir() agrees with __all__."""
    names = set(nc.measures.available())
    assert names <= set(nc.__all__) and names <= set(nc.measures.__all__)
    assert dir(nc) == nc.__all__ == sorted(nc.__all__)
    assert set(nc.__all__) - names == set(PUBLIC) - set(MEASURES)


def test_import_is_lazy():
    code = (
        "import sys, nncompare\n"
        "print([k for k in ('torch', 'scipy', 'pandas', 'matplotlib') if k in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_does_not_load_the_measures():
    """The measure names come from the registry on first use, not at ``import nncompare``."""
    code = (
        "import sys, nncompare\n"
        "nncompare.__version__\n"
        "print([k for k in ('nncompare.measures', 'numpy') if k in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_workbench_short_names_are_the_same_modules():
    """``nncompare.models``/``data``/``training`` and their submodules are the workbench's
    modules themselves (never a second copy), in a fresh process whichever path comes first."""
    code = (
        "import sys\n"
        "from nncompare.models.resnet_cifar import CifarResNet\n"
        "import nncompare.data.images, nncompare.training, nncompare.workbench as wb\n"
        "from nncompare.models import cifar_resnet\n"
        "import nncompare as nc\n"
        "short = ('nncompare.models', 'nncompare.data', 'nncompare.training')\n"
        "copies = [m for m, v in sys.modules.items()\n"
        "          if getattr(v, '__name__', '').startswith(short)]\n"
        "assert not copies, f'imported a second time under the short name: {copies}'\n"
        "assert CifarResNet is wb.models.CifarResNet is nc.models.resnet_cifar.CifarResNet\n"
        "assert cifar_resnet.__module__ == 'nncompare.workbench.models.resnet_cifar'\n"
        "assert nc.data is wb.data and nc.training is wb.training\n"
        "assert nc.data.images is sys.modules['nncompare.workbench.data.images']\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_workbench_import_is_lazy():
    """``import nncompare.workbench`` (and ``nncompare.data``) loads no torch."""
    code = (
        "import sys, nncompare.workbench, nncompare.data\n"
        "print([k for k in ('torch', 'nncompare.workbench.models') if k in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
