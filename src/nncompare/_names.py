"""The public names of ``nncompare`` and where they live: one table, on the ground floor.

The package's front door (``nncompare/__init__.py``) resolves these names lazily; the measure
registry reads them so that no measure shadows another public name. Both import this module,
so neither reaches up to the other.
"""

from __future__ import annotations

# public name -> module that defines it
LAZY: dict[str, str] = {
    # representation measures: every entry of the measure registry is also a name here
    # (nncompare.measures._registry, resolved in __getattr__); the names below are not measures
    "ShapeMetric": "nncompare.measures.shape_cv",
    "shape_cv": "nncompare.measures.shape_cv",
    "rdm": "nncompare.measures.rsa",
    "similarity": "nncompare.measures._registry",
    "reshape_conv": "nncompare.measures.conv",
    "LayoutArray": "nncompare._layout",
    "LayoutWarning": "nncompare._layout",
    # streaming statistics
    "Moments": "nncompare.stats",
    "JointMoments": "nncompare.stats",
    "SpectralMoments": "nncompare.measures._spectral",
    "MinibatchCKA": "nncompare.measures.cka",
    # grids
    "pairwise": "nncompare.analyses.grid",
    # capture and models
    "list_layers": "nncompare.capture",
    "compare_models": "nncompare.analyses.compare",
    "compare_checkpoints": "nncompare.analyses.compare",
    "compare_many": "nncompare.analyses.many",
    "ComparisonResult": "nncompare.results",
    # stitching (the function lens)
    "stitch": "nncompare.stitching",
}

SUBMODULES = {
    "measures",
    "stats",
    "capture",
    "models",
    "data",
    "analyses",
    "parallel",
    "plot",
    "report",
    "training",
    "workbench",
    "stitching",
    "alignment",
    "weights",
    "demo",
    "errors",
}
