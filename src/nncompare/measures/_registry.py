"""The measure registry: every measure by name, with the metadata tests and users rely on."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MeasureInfo", "available", "distance", "get", "similarity"]

ORTHOGONAL = "orthogonal"
ISOTROPIC = "isotropic_scaling"
TRANSLATION = "translation"
LINEAR = "invertible_linear"
PERMUTATION = "permutation"


@dataclass(frozen=True)
class MeasureInfo:
    """What a measure is and which properties it has.

    Attributes
    ----------
    name : str
        Registry name, also the function name under ``nncompare``.
    higher_is_better : bool
        True for similarities (larger = more alike); False for distances.
    is_metric : bool
        ``result.distance`` satisfies the metric axioms (on shapes / equivalence classes
        under the listed invariances).
    symmetric : bool
        value(X, Y) == value(Y, X) with default options.
    invariances : frozenset of str
        Transformations of either input (independently) that leave the value unchanged:
        "orthogonal", "isotropic_scaling", "translation", "invertible_linear", "permutation".
    value_range : tuple of float
    input : str
        "activations" ((n, d) pairs) or "covariances" ((d, d) pairs).
    streaming : bool
        Accepts :class:`nncompare.Moments` (computable batch by batch, exactly).
    reference : str
        Paper and equation of the definition.
    distance : {"1 - value", "arccos(value)", "value"}
        How the ``distance`` column of the tidy frames is derived from ``value``
        (see :func:`distance`): the angular shape metric for Procrustes and shape
        metrics, the value itself for measures that are distances, else ``1 - value``.
    """

    name: str
    module: str
    description: str
    higher_is_better: bool
    is_metric: bool
    symmetric: bool
    invariances: frozenset[str]
    value_range: tuple[float, float]
    reference: str
    input: str = "activations"
    streaming: bool = False
    conv_policies: tuple[str, ...] = ("samples", "flatten", "mean")
    options: dict[str, Any] = field(default_factory=dict)
    distance: str = "1 - value"

    @property
    def function(self) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), self.name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "higher_is_better": self.higher_is_better,
            "is_metric": self.is_metric,
            "symmetric": self.symmetric,
            "invariances": sorted(self.invariances),
            "range": list(self.value_range),
            "input": self.input,
            "streaming": self.streaming,
            "conv": list(self.conv_policies),
            "reference": self.reference,
            "distance": self.distance,
        }


_CCA = "nncompare.measures.cca"
_ALL_LIN = frozenset({ORTHOGONAL, ISOTROPIC, TRANSLATION, LINEAR, PERMUTATION})
_ORTH = frozenset({ORTHOGONAL, ISOTROPIC, TRANSLATION, PERMUTATION})

_REGISTRY: dict[str, MeasureInfo] = {
    m.name: m
    for m in [
        MeasureInfo(
            "cca",
            _CCA,
            "mean canonical correlation",
            True,
            False,
            True,
            _ALL_LIN,
            (0.0, 1.0),
            "Hotelling (1936); Raghu et al. (2017) §2",
            streaming=True,
            conv_policies=("samples", "flatten", "mean", "dft"),
        ),
        MeasureInfo(
            "cca_r2",
            _CCA,
            "mean squared canonical correlation (R²_CCA)",
            True,
            False,
            True,
            _ALL_LIN,
            (0.0, 1.0),
            "Kornblith et al. (2019) §4",
            streaming=True,
            conv_policies=("samples", "flatten", "mean", "dft"),
        ),
        MeasureInfo(
            "svcca",
            _CCA,
            "CCA on the top principal directions (default: those explaining 99% of the variance)",
            True,
            False,
            True,
            _ORTH,
            (0.0, 1.0),
            "Raghu et al. (2017) §2, §3.1 (DFT)",
            streaming=True,
            conv_policies=("samples", "flatten", "mean", "dft"),
        ),
        MeasureInfo(
            "pwcca",
            _CCA,
            "projection-weighted mean canonical correlation",
            True,
            False,
            False,
            frozenset({ISOTROPIC, TRANSLATION, PERMUTATION}),
            (0.0, 1.0),
            "Morcos et al. (2018) §2.2",
            streaming=True,
        ),
        MeasureInfo(
            "cka",
            "nncompare.measures.cka",
            "linear centred kernel alignment",
            True,
            False,
            True,
            _ORTH,
            (0.0, 1.0),
            "Kornblith et al. (2019) eq. 4 (linear kernel)",
            streaming=True,
        ),
        MeasureInfo(
            "cka_debiased",
            "nncompare.measures.cka",
            "linear CKA with the unbiased HSIC estimator",
            True,
            False,
            True,
            _ORTH,
            (-1.0, 1.0),
            "Kornblith et al. (2019); Song et al. (2012) eq. 5",
        ),
        MeasureInfo(
            "cka_rbf",
            "nncompare.measures.cka",
            "RBF-kernel CKA, bandwidth = threshold × median distance",
            True,
            False,
            True,
            _ORTH,
            (0.0, 1.0),
            "Kornblith et al. (2019) §6.1",
        ),
        MeasureInfo(
            "lr_r2",
            "nncompare.measures.regression",
            "R² of the least-squares fit of Y from X",
            True,
            False,
            False,
            _ORTH,
            (0.0, 1.0),
            "Kornblith et al. (2019); Csiszárik et al. (2021) Def. 6.1",
            streaming=True,
        ),
        MeasureInfo(
            "procrustes",
            "nncompare.measures.procrustes",
            "orthogonal Procrustes similarity (cos of the angular shape metric)",
            True,
            True,
            True,
            _ORTH,
            (0.0, 1.0),
            "Williams et al. (2021) eq. 3; Ding et al. (2021)",
            streaming=True,
            distance="arccos(value)",
        ),
        MeasureInfo(
            "shape",
            "nncompare.measures.procrustes",
            "generalised shape metric with partial whitening alpha",
            True,
            True,
            True,
            _ORTH,
            (0.0, 1.0),
            "Williams et al. (2021) §3",
            streaming=True,
            distance="arccos(value)",
        ),
        MeasureInfo(
            "rsa",
            "nncompare.measures.rsa",
            "Spearman correlation of RDMs",
            True,
            False,
            True,
            frozenset({ISOTROPIC, PERMUTATION}),
            (-1.0, 1.0),
            "Kriegeskorte et al. (2008)",
        ),
        MeasureInfo(
            "mutual_knn",
            "nncompare.measures.rsa",
            "mutual k-nearest-neighbour alignment",
            True,
            False,
            True,
            frozenset({ORTHOGONAL, ISOTROPIC, PERMUTATION}),
            (0.0, 1.0),
            "Huh et al. (2024)",
        ),
        MeasureInfo(
            "bures_wasserstein",
            "nncompare.measures.covariance",
            "Bures–Wasserstein distance between covariances",
            False,
            True,
            True,
            frozenset(),
            (0.0, float("inf")),
            "Bhatia et al. (2019); Guth & Ménard",
            input="covariances",
            conv_policies=(),
            distance="value",
        ),
        MeasureInfo(
            "covariance_cosine",
            "nncompare.measures.covariance",
            "||C1^1/2 C2^1/2||_* / sqrt(tr C1 tr C2)",
            True,
            False,
            True,
            frozenset(),
            (0.0, 1.0),
            "Guth & Ménard eq. 5",
            input="covariances",
            conv_policies=(),
        ),
    ]
}


def available(kind: str | None = None) -> dict[str, MeasureInfo]:
    """All registered measures, ``name -> MeasureInfo``.

    Parameters
    ----------
    kind : {None, "activations", "covariances"}
        Filter by input type.
    """
    if kind is None:
        return dict(_REGISTRY)
    return {k: v for k, v in _REGISTRY.items() if v.input == kind}


def get(name: str) -> MeasureInfo:
    """The registry entry of one measure; unknown names list the close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown measure {name!r}.{hint} Available: {', '.join(sorted(_REGISTRY))} "
            "(nc.measures.available() lists them with their properties)."
        ) from None


def distance(name: str, value: float) -> float:
    """The distance that goes with a value of measure ``name`` (its ``distance`` rule).

    ``arccos(value)`` (the angle θ, a metric on shapes; Williams et al. 2021) for
    ``procrustes`` and ``shape``, ``value`` itself for ``bures_wasserstein`` (already
    a distance), ``1 - value`` for every other measure; equal to ``result.distance``
    of the measure's result object. NaN stays NaN; a value past ±1 by round-off is
    taken as ±1 before the arccos.
    """
    rule = get(name).distance
    v = float(value)
    if math.isnan(v) or rule == "value":
        return v
    if rule == "arccos(value)":
        return math.acos(min(1.0, max(-1.0, v)))
    return 1.0 - v


def compute(X: Any, Y: Any, name: str, **options: Any) -> Any:
    """Run measure ``name`` and return its full result object."""
    return get(name).function(X, Y, **options)


def similarity(X: Any, Y: Any, name: str, **options: Any) -> float:
    """Value of measure ``name`` on (X, Y) as a Python float.

    ``nc.similarity(X, Y, "pwcca", symmetric=True)`` is ``float(nc.pwcca(X, Y, symmetric=True))``.
    Use the measure function itself for the details and to keep torch autograd.
    """
    return float(compute(X, Y, name, **options))
