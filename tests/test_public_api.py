"""The public API is pinned: adding or removing a name must be a deliberate change here."""

from __future__ import annotations

import subprocess
import sys

import nncompare as nc

PUBLIC = [
    "JointMoments",
    "MinibatchCKA",
    "Moments",
    "SpectralMoments",
    "__version__",
    "analyses",
    "bures_wasserstein",
    "capture",
    "cca",
    "cca_r2",
    "cka",
    "cka_debiased",
    "cka_rbf",
    "compare_checkpoints",
    "compare_models",
    "covariance_cosine",
    "data",
    "demo",
    "list_layers",
    "lr_r2",
    "measures",
    "models",
    "mutual_knn",
    "pairwise",
    "plot",
    "procrustes",
    "pwcca",
    "report",
    "reshape_conv",
    "rsa",
    "shape",
    "similarity",
    "stats",
    "svcca",
    "training",
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


def test_every_public_name_resolves():
    for name in PUBLIC:
        assert getattr(nc, name) is not None


def test_registry_pinned_and_functions_exported():
    assert sorted(nc.measures.available()) == MEASURES
    for name, info in nc.measures.available().items():
        assert getattr(nc, name) is info.function
        assert info.reference and info.description


def test_import_is_lazy():
    code = (
        "import sys, nncompare\n"
        "print([k for k in ('torch', 'scipy', 'pandas', 'matplotlib') if k in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
