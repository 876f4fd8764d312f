"""The measure registry: the one declaration of every measure and its metadata.

Each measure is declared once, below, as a keyword-only :class:`MeasureInfo`: its name
(also the function's name in its family module and under ``nncompare``), display label,
family, properties and reference. Everything else derives from these entries: the lazy
names of ``nncompare`` and ``nncompare.measures``, the command line's choices and its
``nncompare measures`` table, the figure labels and colour-scale families, the report's
measure table, which measures have canonical-correlation spectra (:func:`with_spectrum`)
and which take the exact DFT path (``supporting("dft")``). Adding a measure is one
declaration here (or one :func:`register` call for a measure outside nncompare) plus its
function in a family module.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import keyword
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONV_POLICIES",
    "DISTANCE_RULES",
    "FEATURES",
    "INPUTS",
    "INVARIANCES",
    "MeasureInfo",
    "available",
    "compute",
    "distance",
    "get",
    "register",
    "registered",
    "similarity",
    "supporting",
    "unregister",
    "with_spectrum",
]

ORTHOGONAL = "orthogonal"
ISOTROPIC = "isotropic_scaling"
TRANSLATION = "translation"
LINEAR = "invertible_linear"
PERMUTATION = "permutation"

#: The transformations a measure may declare itself invariant to.
INVARIANCES: tuple[str, ...] = (ORTHOGONAL, ISOTROPIC, TRANSLATION, LINEAR, PERMUTATION)
#: The ``conv=`` reshape policies of 4-D activations a measure may accept.
CONV_POLICIES: tuple[str, ...] = ("samples", "flatten", "mean", "dft")
#: How the ``distance`` column is derived from ``value`` (see :func:`distance`).
DISTANCE_RULES: tuple[str, ...] = ("1 - value", "arccos(value)", "value")
#: What a measure compares: (n, d) activation pairs or (d, d) covariance pairs.
INPUTS: tuple[str, ...] = ("activations", "covariances")
#: What :func:`supporting` can filter by: the conv policies and two capabilities.
FEATURES: tuple[str, ...] = (*CONV_POLICIES, "spectrum", "streaming")


def _bad(what: str, expected: str, got: Any, fix: str = "") -> ValueError:
    return ValueError(
        f"MeasureInfo {what}: expected {expected}; got {got!r}." + (f" {fix}" if fix else "")
    )


@dataclass(frozen=True, kw_only=True)
class MeasureInfo:
    """What a measure is and which properties it has: its one declaration.

    All fields are keyword-only; the entry is checked when it is built (unknown
    invariances, conv policies or distance rules, an empty or reversed value range, a
    distance rule that does not fit the direction or range all raise ``ValueError``).

    Attributes
    ----------
    name : str
        Registry name: also the function's name in ``module`` and under ``nncompare``.
    module : str
        The module that defines the function (its family module).
    label : str
        Display name in figures, the report and the command line ("Linear CKA").
    family : str
        Display name of the measure family ("CKA", "CCA", ...); figures draw the measures
        of one family and direction on one shared colour scale.
    description : str
        One-line definition.
    higher_is_better : bool
        True for similarities (larger = more alike); False for distances.
    is_metric : bool
        ``result.distance`` satisfies the metric axioms (on shapes / equivalence classes
        under the listed invariances).
    symmetric : bool
        value(X, Y) == value(Y, X) with default options.
    invariances : frozenset of str
        Transformations of either input (independently) that leave the value unchanged,
        among :data:`INVARIANCES`: "orthogonal", "isotropic_scaling", "translation",
        "invertible_linear", "permutation". Any iterable is accepted and stored as a
        frozenset.
    value_range : tuple of float
        ``(low, high)`` with ``low < high``; ``high`` may be ``inf``.
    reference : str
        Paper and equation of the definition.
    input : {"activations", "covariances"}
        (n, d) activation pairs or (d, d) covariance pairs.
    streaming : bool
        Accepts :class:`nncompare.Moments` (computable batch by batch, exactly).
    has_spectrum : bool
        The result has canonical correlations ``rho`` that the tidy frames keep as
        spectra (``keep_spectra=True``) and the report plots.
    conv_policies : tuple of str
        The ``conv=`` policies (:data:`CONV_POLICIES`) the measure accepts for 4-D
        activations; ``"dft"`` is the exact per-frequency path (:attr:`supports_dft`).
        Empty for covariance measures.
    options : dict
        Default options that differ from the function's defaults (none today).
    distance : {"1 - value", "arccos(value)", "value"}
        How the ``distance`` column of the tidy frames is derived from ``value``
        (see :func:`distance`): the angular shape metric for Procrustes and shape
        metrics, the value itself for measures that are distances, else ``1 - value``.
    """

    name: str
    module: str
    label: str
    family: str
    description: str
    higher_is_better: bool
    is_metric: bool
    symmetric: bool
    invariances: frozenset[str]
    value_range: tuple[float, float]
    reference: str
    input: str = "activations"
    streaming: bool = False
    has_spectrum: bool = False
    conv_policies: tuple[str, ...] = ("samples", "flatten", "mean")
    options: dict[str, Any] = field(default_factory=dict)
    distance: str = "1 - value"

    def __post_init__(self) -> None:
        name = self.name
        if not (isinstance(name, str) and name.isidentifier()) or keyword.iskeyword(name):
            raise _bad(
                "name", "a Python identifier (the function's name)", name,
                "Use lower_case_with_underscores, e.g. 'cka_rbf'.",
            )  # fmt: skip
        if name.startswith("_"):
            raise _bad("name", "a public name (no leading underscore)", name)
        if not (
            isinstance(self.module, str) and all(p.isidentifier() for p in self.module.split("."))
        ):
            raise _bad(
                f"{name!r} module",
                "a dotted module path such as 'nncompare.measures.cka'",
                self.module,
            )
        for attr in ("label", "family", "description", "reference"):
            value = getattr(self, attr)
            if not (isinstance(value, str) and value.strip()):
                raise _bad(f"{name!r} {attr}", "a non-empty string", value)
        for attr in ("higher_is_better", "is_metric", "symmetric", "streaming", "has_spectrum"):
            value = getattr(self, attr)
            if not isinstance(value, bool):
                raise _bad(f"{name!r} {attr}", "True or False", value)
        inv = self.invariances
        if isinstance(inv, str) or not isinstance(inv, Iterable):
            raise _bad(
                f"{name!r} invariances", f"a set of names among {', '.join(INVARIANCES)}", inv,
                "Pass a set, e.g. {'orthogonal', 'translation'}, not a single string.",
            )  # fmt: skip
        inv = frozenset(inv)
        unknown = sorted(str(i) for i in inv - set(INVARIANCES))
        if unknown:
            raise _bad(
                f"{name!r} invariances", f"names among {', '.join(INVARIANCES)}",
                ", ".join(unknown), "Unknown invariance(s); check the spelling.",
            )  # fmt: skip
        object.__setattr__(self, "invariances", inv)
        rng = self.value_range
        try:
            lo, hi = (float(v) for v in rng)
        except (TypeError, ValueError):
            raise _bad(f"{name!r} value_range", "two numbers (low, high)", rng) from None
        if math.isnan(lo) or math.isnan(hi) or not lo < hi or lo == math.inf:
            raise _bad(
                f"{name!r} value_range", "(low, high) with low < high (high may be inf)", rng,
                "Give the bounds in increasing order.",
            )  # fmt: skip
        object.__setattr__(self, "value_range", (lo, hi))
        if self.input not in INPUTS:
            raise _bad(f"{name!r} input", f"one of {', '.join(INPUTS)}", self.input)
        pol = self.conv_policies
        if isinstance(pol, str) or not isinstance(pol, Iterable):
            raise _bad(
                f"{name!r} conv_policies", f"a tuple of names among {', '.join(CONV_POLICIES)}", pol
            )
        pol = tuple(pol)
        bad = [p for p in pol if p not in CONV_POLICIES]
        if bad:
            raise _bad(
                f"{name!r} conv_policies",
                f"names among {', '.join(CONV_POLICIES)}",
                ", ".join(map(str, bad)),
            )
        if self.input == "covariances" and pol:
            raise _bad(
                f"{name!r} conv_policies",
                "() for a measure of covariances (no conv= argument)",
                pol,
            )
        if self.input == "activations" and "samples" not in pol:
            raise _bad(
                f"{name!r} conv_policies", "a tuple that includes 'samples' (every activation "
                "measure takes conv='samples', the default)", pol,
            )  # fmt: skip
        object.__setattr__(self, "conv_policies", pol)
        rule = self.distance
        if rule not in DISTANCE_RULES:
            raise _bad(f"{name!r} distance", f"one of {', '.join(map(repr, DISTANCE_RULES))}", rule)
        if rule == "value" and self.higher_is_better:
            raise _bad(
                f"{name!r} distance", "'1 - value' or 'arccos(value)' for a similarity "
                "(higher_is_better=True)", rule,
                "distance='value' is for measures whose value is already a distance.",
            )  # fmt: skip
        if rule == "arccos(value)" and not (-1.0 <= lo and hi <= 1.0):
            raise _bad(
                f"{name!r} distance", "a value_range inside [-1, 1] for 'arccos(value)'", (lo, hi)
            )

    @property
    def supports_dft(self) -> bool:
        """Whether the measure takes ``conv="dft"`` (the exact per-frequency path)."""
        return "dft" in self.conv_policies

    @property
    def function(self) -> Callable[..., Any]:
        """The measure function, ``module.name`` (imported on first use)."""
        return getattr(importlib.import_module(self.module), self.name)

    @property
    def parameters(self) -> dict[str, Any]:
        """The declared constraints of the function's options, ``{option: constraints}``.

        Read from the function (its ``@constrain(...)`` declaration, see
        :func:`nncompare._validation.constrain`), not declared a second time here; each value
        has ``accepts(value)``, ``phrase`` ("lie in (0, 1] or be None") and ``example()``.
        Empty for a function without declared constraints (e.g. a measure registered from
        outside nncompare). Check options with :meth:`check_options`.
        """
        from nncompare._validation import constraints_of

        return constraints_of(self.function)

    def check_options(self, options: dict[str, Any]) -> None:
        """Check option values against :attr:`parameters` without running the measure.

        Raises
        ------
        nncompare._validation.InvalidParameterError
            A ``ValueError`` and ``TypeError``, with the message a call would give.
            Options without a declared constraint are not checked here.
        """
        from nncompare._validation import check_parameters

        check_parameters(self.function, options, name=self.name)

    def supports(self, feature: str) -> bool:
        """Whether the measure has ``feature``: a conv policy, "spectrum" or "streaming"."""
        if feature == "spectrum":
            return self.has_spectrum
        if feature == "streaming":
            return self.streaming
        if feature in CONV_POLICIES:
            return feature in self.conv_policies
        raise ValueError(
            f"unknown measure feature {feature!r}; expected one of {', '.join(FEATURES)}."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "family": self.family,
            "description": self.description,
            "higher_is_better": self.higher_is_better,
            "is_metric": self.is_metric,
            "symmetric": self.symmetric,
            "invariances": sorted(self.invariances),
            "range": list(self.value_range),
            "input": self.input,
            "streaming": self.streaming,
            "spectrum": self.has_spectrum,
            "conv": list(self.conv_policies),
            "reference": self.reference,
            "distance": self.distance,
        }


_CCA = "nncompare.measures.cca"
_CKA = "nncompare.measures.cka"
_SHAPE = "nncompare.measures.procrustes"
_RSA = "nncompare.measures.rsa"
_COV = "nncompare.measures.covariance"
_WITH_DFT = ("samples", "flatten", "mean", "dft")
_ALL_LIN = frozenset({ORTHOGONAL, ISOTROPIC, TRANSLATION, LINEAR, PERMUTATION})
_ORTH = frozenset({ORTHOGONAL, ISOTROPIC, TRANSLATION, PERMUTATION})

_BUILTIN: tuple[MeasureInfo, ...] = (
    MeasureInfo(
        name="cca",
        module=_CCA,
        label="Mean CCA",
        family="CCA",
        description="mean canonical correlation",
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances=_ALL_LIN,
        value_range=(0.0, 1.0),
        reference="Hotelling (1936); Raghu et al. (2017) §2",
        streaming=True,
        has_spectrum=True,
        conv_policies=_WITH_DFT,
    ),
    MeasureInfo(
        name="cca_r2",
        module=_CCA,
        label="R²_CCA",
        family="CCA",
        description="mean squared canonical correlation (R²_CCA)",
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances=_ALL_LIN,
        value_range=(0.0, 1.0),
        reference="Kornblith et al. (2019) §4",
        streaming=True,
        has_spectrum=True,
        conv_policies=_WITH_DFT,
    ),
    MeasureInfo(
        name="svcca",
        module=_CCA,
        label="SVCCA",
        family="CCA",
        description=(
            "CCA on the top principal directions (default: those explaining 99% of the variance)"
        ),
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances=_ORTH,
        value_range=(0.0, 1.0),
        reference="Raghu et al. (2017) §2, §3.1 (DFT)",
        streaming=True,
        has_spectrum=True,
        conv_policies=_WITH_DFT,
    ),
    MeasureInfo(
        name="pwcca",
        module=_CCA,
        label="PWCCA",
        family="CCA",
        description="projection-weighted mean canonical correlation",
        higher_is_better=True,
        is_metric=False,
        symmetric=False,
        invariances={ISOTROPIC, TRANSLATION, PERMUTATION},
        value_range=(0.0, 1.0),
        reference="Morcos et al. (2018) §2.2",
        streaming=True,
        has_spectrum=True,
    ),
    MeasureInfo(
        name="cka",
        module=_CKA,
        label="Linear CKA",
        family="CKA",
        description="linear centred kernel alignment",
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances=_ORTH,
        value_range=(0.0, 1.0),
        reference="Kornblith et al. (2019) eq. 4 (linear kernel)",
        streaming=True,
    ),
    MeasureInfo(
        name="cka_debiased",
        module=_CKA,
        label="Debiased CKA",
        family="CKA",
        description="linear CKA with the unbiased HSIC estimator",
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances=_ORTH,
        value_range=(-1.0, 1.0),
        reference="Kornblith et al. (2019); Song et al. (2012) eq. 5",
    ),
    MeasureInfo(
        name="cka_rbf",
        module=_CKA,
        label="RBF CKA",
        family="CKA",
        description="RBF-kernel CKA, bandwidth = threshold × median distance",
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances=_ORTH,
        value_range=(0.0, 1.0),
        reference="Kornblith et al. (2019) §6.1",
    ),
    MeasureInfo(
        name="lr_r2",
        module="nncompare.measures.regression",
        label="Linear regression R²",
        family="Regression",
        description="R² of the least-squares fit of Y from X",
        higher_is_better=True,
        is_metric=False,
        symmetric=False,
        invariances=_ORTH,
        value_range=(0.0, 1.0),
        reference="Kornblith et al. (2019); Csiszárik et al. (2021) Def. 6.1",
        streaming=True,
    ),
    MeasureInfo(
        name="procrustes",
        module=_SHAPE,
        label="Procrustes similarity",
        family="Procrustes",
        description="orthogonal Procrustes similarity (cos of the angular shape metric)",
        higher_is_better=True,
        is_metric=True,
        symmetric=True,
        invariances=_ORTH,
        value_range=(0.0, 1.0),
        reference="Williams et al. (2021) eq. 3; Ding et al. (2021)",
        streaming=True,
        distance="arccos(value)",
    ),
    MeasureInfo(
        name="shape",
        module=_SHAPE,
        label="Shape similarity",
        family="Procrustes",
        description="generalised shape metric with partial whitening alpha",
        higher_is_better=True,
        is_metric=True,
        symmetric=True,
        invariances=_ORTH,
        value_range=(0.0, 1.0),
        reference="Williams et al. (2021) §3",
        streaming=True,
        distance="arccos(value)",
    ),
    MeasureInfo(
        name="rsa",
        module=_RSA,
        label="RSA",
        family="RSA",
        description="Spearman correlation of RDMs",
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances={ISOTROPIC, PERMUTATION},
        value_range=(-1.0, 1.0),
        reference="Kriegeskorte et al. (2008)",
    ),
    MeasureInfo(
        name="mutual_knn",
        module=_RSA,
        label="Mutual k-NN",
        family="RSA",
        description="mutual k-nearest-neighbour alignment",
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances={ORTHOGONAL, ISOTROPIC, PERMUTATION},
        value_range=(0.0, 1.0),
        reference="Huh et al. (2024)",
    ),
    MeasureInfo(
        name="bures_wasserstein",
        module=_COV,
        label="Bures–Wasserstein",
        family="Covariance",
        description="Bures–Wasserstein distance between covariances",
        higher_is_better=False,
        is_metric=True,
        symmetric=True,
        invariances=frozenset(),
        value_range=(0.0, math.inf),
        reference="Bhatia et al. (2019); Guth & Ménard",
        input="covariances",
        conv_policies=(),
        distance="value",
    ),
    MeasureInfo(
        name="covariance_cosine",
        module=_COV,
        label="Covariance cosine",
        family="Covariance",
        description="||C1^1/2 C2^1/2||_* / sqrt(tr C1 tr C2)",
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances=frozenset(),
        value_range=(0.0, 1.0),
        reference="Guth & Ménard eq. 5",
        input="covariances",
        conv_policies=(),
    ),
)

_REGISTRY: dict[str, MeasureInfo] = {m.name: m for m in _BUILTIN}
_BUILTIN_NAMES = frozenset(_REGISTRY)


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


def supporting(feature: str) -> tuple[str, ...]:
    """Names of the measures with ``feature``, in registry order.

    Parameters
    ----------
    feature : {"samples", "flatten", "mean", "dft", "spectrum", "streaming"}
        A ``conv=`` policy (``"dft"``: the exact per-frequency path), ``"spectrum"``
        (results carry canonical correlations ``rho``) or ``"streaming"`` (accepts
        :class:`nncompare.Moments`).

    Examples
    --------
    >>> supporting("dft")
    ('cca', 'cca_r2', 'svcca')
    """
    if feature not in FEATURES:
        raise ValueError(
            f"unknown measure feature {feature!r}; expected one of {', '.join(FEATURES)}."
        )
    return tuple(k for k, v in _REGISTRY.items() if v.supports(feature))


def with_spectrum() -> tuple[str, ...]:
    """Names of the measures whose results carry a canonical-correlation spectrum.

    >>> with_spectrum()
    ('cca', 'cca_r2', 'svcca', 'pwcca')
    """
    return supporting("spectrum")


def _reserved_names() -> set[str]:
    """Names of ``nncompare`` and ``nncompare.measures`` that are not measures (their other
    public names and the family modules): a measure may not shadow them."""
    import pkgutil

    import nncompare.measures as measures
    from nncompare._names import LAZY, SUBMODULES

    return {
        *LAZY,
        *SUBMODULES,
        "__version__",
        *(n for n in measures.__all__ if n not in _BUILTIN_NAMES),
        *(m.name for m in pkgutil.iter_modules(measures.__path__)),
    }


def _check_function(info: MeasureInfo) -> None:
    try:
        module = importlib.import_module(info.module)
    except ImportError as exc:
        raise ValueError(
            f"measure {info.name!r}: module {info.module!r} does not import ({exc}); "
            "expected the module that defines the measure function."
        ) from None
    fn = getattr(module, info.name, None)
    if not callable(fn):
        raise ValueError(
            f"measure {info.name!r}: expected a function {info.name}() in {info.module}; "
            f"got {type(fn).__name__}. The registry name is the function's name."
        )
    params = list(inspect.signature(fn).parameters.values())
    first = ["X", "Y"] if info.input == "activations" else ["C1", "C2"]
    if [p.name for p in params[:2]] != first or any(
        p.kind is not inspect.Parameter.KEYWORD_ONLY for p in params[2:]
    ):
        shown = ", ".join(first)
        raise ValueError(
            f"measure {info.name!r}: expected the signature ({shown}, *, options...) of a "
            f"measure of {info.input}; got {info.name}{inspect.signature(fn)}."
        )
    if info.input == "activations" and not {"conv", "layout"} <= {p.name for p in params}:
        raise ValueError(
            f"measure {info.name!r}: expected keyword arguments conv= and layout= (the reshape "
            f"policy of 4-D activations and their channel position); got "
            f"{info.name}{inspect.signature(fn)}."
        )


def register(info: MeasureInfo) -> MeasureInfo:
    """Add a measure to the registry; it becomes available everywhere at once.

    After ``register(info)``, ``info.name`` is listed by :func:`available`, runs through
    :func:`nncompare.similarity`, ``nncompare.pairwise`` and ``nncompare.compare_models``,
    appears in ``nncompare measures`` and is accepted by ``--measure``, has its label in
    figures and the report, and is the attribute ``nncompare.<name>``.

    Parameters
    ----------
    info : MeasureInfo
        The declaration; ``info.module`` must define the function ``info.name`` with the
        signature ``(X, Y, *, conv=..., layout=..., ...)`` (``(C1, C2, *, ...)`` for
        covariances) that returns a :class:`nncompare.results.Result` (its ``value``,
        ``n_samples`` and ``conventions``), as the measures of nncompare do.

    Returns
    -------
    MeasureInfo
        ``info``, so that the call can wrap a declaration.

    Raises
    ------
    ValueError
        The name is taken (by a measure or another public name of nncompare), the label
        is another measure's, or the function is missing or has the wrong signature.
    """
    if not isinstance(info, MeasureInfo):
        raise TypeError(
            f"register expects a MeasureInfo(name=..., module=..., ...); got {type(info).__name__}."
        )
    if info.name in _REGISTRY:
        raise ValueError(
            f"measure {info.name!r} is already registered (from {_REGISTRY[info.name].module}); "
            "choose another name, or unregister() it first."
        )
    if info.name in _reserved_names():
        raise ValueError(
            f"measure name {info.name!r} is taken by another public name of nncompare or "
            "nncompare.measures (a function, class or module of the same name); choose "
            "another name."
        )
    same_label = [k for k, v in _REGISTRY.items() if v.label == info.label]
    if same_label:
        raise ValueError(
            f"measure {info.name!r}: label {info.label!r} is already the label of "
            f"{same_label[0]!r}; expected a label that tells the measures apart in figures."
        )
    _check_function(info)
    _REGISTRY[info.name] = info
    return info


def unregister(name: str) -> MeasureInfo:
    """Remove a measure added with :func:`register` and return its entry.

    The measures nncompare ships cannot be removed.
    """
    if name in _BUILTIN_NAMES:
        raise ValueError(
            f"{name!r} is one of nncompare's own measures and cannot be unregistered; "
            "only measures added with register() can."
        )
    info = get(name)
    del _REGISTRY[name]
    return info


@contextlib.contextmanager
def registered(info: MeasureInfo) -> Iterator[MeasureInfo]:
    """Context manager: :func:`register` ``info`` for the duration of the block.

    >>> with registered(MeasureInfo(name="my_measure", ...)):  # doctest: +SKIP
    ...     nc.similarity(X, Y, "my_measure")
    """
    register(info)
    try:
        yield info
    finally:
        _REGISTRY.pop(info.name, None)


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
