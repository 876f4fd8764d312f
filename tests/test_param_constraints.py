"""Declarative option constraints (issue #8, item 1): one declaration per option, next to the
measure, from which the checks, the error messages and these invalid-option tests derive.

The invalid values are generated from the constraints themselves (outside an interval, a
wrong type, a string not among the options, a bool where an integer is expected, NaN and
infinity for numbers), for every registered measure and every declared option, and checked
through the Python function, ``nc.pairwise`` and the command line.
"""

from __future__ import annotations

import importlib
import inspect
import math
import pickle
import re
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nncompare as nc
from cli_util import error_line
from nncompare._validation import (
    Alternatives,
    ArrayLike,
    Boolean,
    Interval,
    InvalidParameterError,
    Options,
    Pair,
    Satisfies,
    check_parameters,
    constrain,
    constraints_of,
)
from nncompare.cli._options import parse_measures
from nncompare.cli.main import cli
from nncompare.measures import MeasureInfo, available, get, registered
from nncompare.results import Result

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 5))
Y = X @ RNG.normal(size=(5, 4)) + 0.3 * RNG.normal(size=(40, 4))
C = np.cov(X.T)

OPTIONS_OF = {name: info.parameters for name, info in available().items()}
CASES = [
    pytest.param(name, key, bad, id=f"{name}-{key}-{i}")
    for name, params in OPTIONS_OF.items()
    for key, spec in params.items()
    for i, bad in enumerate(spec.invalid())
]
INTERVALS = [
    pytest.param(name, key, c, id=f"{name}-{key}")
    for name, params in OPTIONS_OF.items()
    for key, spec in params.items()
    for c in spec.alternatives
    if isinstance(c, Interval)
]


def _inputs(name: str) -> tuple[Any, Any]:
    return (C, C) if get(name).input == "covariances" else (X, Y)


def _expected(name: str, key: str) -> str:
    """The message's start: the measure, the option and the allowed set, from the declaration."""
    return rf"^{name}: {key} must {re.escape(OPTIONS_OF[name][key].phrase)}; got "


# ------------------------------------------------------------------ the declarations


def test_every_option_of_every_builtin_measure_is_declared():
    for name, info in available().items():
        params = inspect.signature(info.function).parameters
        options = [p for p in params if p not in ("X", "Y", "C1", "C2")]
        assert sorted(info.parameters) == sorted(options), name
        if info.input == "activations":
            assert {"conv", "layout"} <= set(info.parameters), name


def test_generated_cases_cover_every_kind_of_bad_value():
    assert len(CASES) > 100
    bads = [c.values[2] for c in CASES]
    assert any(isinstance(b, bool) for b in bads)  # bool where a number is expected
    assert any(isinstance(b, float) and math.isnan(b) for b in bads)
    assert any(isinstance(b, float) and math.isinf(b) for b in bads)
    assert any(isinstance(b, str) for b in bads)  # wrong type or not an option


@pytest.mark.parametrize(("name", "key", "bad"), CASES)
def test_invalid_option_is_refused_naming_measure_option_and_allowed_set(name, key, bad):
    info = get(name)
    assert not info.parameters[key].accepts(bad)
    A, B = _inputs(name)
    with pytest.raises(InvalidParameterError, match=_expected(name, key)) as e:
        info.function(A, B, **{key: bad})
    assert (e.value.function, e.value.parameter) == (name, key)
    assert isinstance(e.value, ValueError) and isinstance(e.value, TypeError)
    assert isinstance(e.value, nc.errors.NNCompareError)
    assert str(e.value) == f"{name}: {e.value.reason}"
    assert re.search(rf"\. Pass e\.g\. {key}=", str(e.value))  # how to fix it
    # the registry's check without running the measure says the same
    with pytest.raises(InvalidParameterError) as e2:
        info.check_options({key: bad})
    assert str(e2.value) == str(e.value)


@pytest.mark.parametrize("name", sorted(OPTIONS_OF))
def test_defaults_and_examples_are_accepted(name):
    info = get(name)
    params = inspect.signature(info.function).parameters
    for key, spec in info.parameters.items():
        assert spec.accepts(params[key].default), (name, key)
        for c in spec.alternatives:
            assert spec.accepts(c.example()), (name, key, c)
        info.check_options({key: spec.example()})


@pytest.mark.parametrize(("name", "key", "interval"), INTERVALS)
@settings(max_examples=25, deadline=None)
@given(u=st.floats(0, 1))
def test_values_drawn_inside_an_interval_are_accepted(name, key, interval, u):
    lo = interval.low if interval.low is not None else -1e6
    hi = interval.high if interval.high is not None else 1e6
    v = lo + u * (hi - lo)
    if interval.kind is int:
        v = round(v)
    inside = (v > lo or (v == lo and interval._low_in and interval.low is not None)) and (
        v < hi or (v == hi and interval._high_in and interval.high is not None)
    )
    if interval.low is None or interval.high is None:
        inside = inside or (interval.low is None and v < hi) or (interval.high is None and v > lo)
    if inside:
        get(name).check_options({key: v})  # never raises


# ------------------------------------------------------------------ the front doors


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("svcca", "variance"),
        ("svcca", "dims"),
        ("cca", "rtol"),
        ("pwcca", "convention"),
        ("cka_rbf", "threshold"),
        ("mutual_knn", "k"),
        ("rsa", "compare"),
        ("shape", "alpha"),
    ],
)
def test_pairwise_refuses_the_declared_error_before_any_pair(name, key):
    """A bad option value is the caller's error: refused up front with the function's
    message, not recorded as NaN for every pair."""
    bad = OPTIONS_OF[name][key].invalid()[-2]
    acts = {"a": X, "b": Y}
    with pytest.raises(InvalidParameterError, match=_expected(name, key)):
        nc.pairwise(acts, measures={name: {key: bad}})


def test_cli_measure_option_is_checked_by_the_declaration():
    with pytest.raises(Exception, match=r"svcca:dims=0: dims must be a positive integer, a pair"):
        parse_measures(["svcca:dims=0"], conv="mean")
    with pytest.raises(Exception, match=r"mutual_knn:k=True: k must be a positive integer; got Tr"):
        parse_measures(["mutual_knn:k=True"], conv="mean")
    with pytest.raises(Exception, match=r"shape:alpha=2: alpha must lie in \[0, 1\]; got 2\."):
        parse_measures(["shape:alpha=2"], conv="mean")
    assert parse_measures(["svcca:dims=(3,4)"], conv="mean") == {"svcca": {"dims": (3, 4)}}


@pytest.fixture
def tiny_models(tmp_path):
    from nncompare.workbench.models import SmallCNN

    path = tmp_path / "x.npz"
    np.savez(path, x=RNG.random((40, 1, 8, 8)).astype(np.float32))
    torch.manual_seed(0)
    a = tmp_path / "a.pt"
    torch.save(SmallCNN().state_dict(), a)
    return ["--data", str(path), "--weights-a", str(a), "--weights-b", str(a)]


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("svcca:variance=1.5", "variance must lie in (0, 1] or be None; got 1.5."),
        ("cka_rbf:threshold=-2", "threshold must be a finite positive number; got -2."),
        ("rsa:rdm='cosine'", "rdm must be one of 'correlation', 'euclidean'; got 'cosine'."),
    ],
)
def test_cli_prints_one_line_naming_the_option(runner, tiny_models, spec, said):
    model = "nncompare.models:SmallCNN()"
    res = runner.invoke(
        cli, ["compare", model, model, *tiny_models, "--measure", spec, "--out", "unused"]
    )
    line = error_line(res)
    assert line.startswith(f"Error: Invalid value for --measure: {spec}: {said} Pass e.g. ")


# ------------------------------------------------------------------ the registry


def _toy(X, Y, *, conv=None, layout=None, power=2):
    """A toy measure with one declared option."""
    return Result(measure="toy_power", value=float(power), n_samples=len(X))


def _declaration(module_name: str) -> MeasureInfo:
    return MeasureInfo(
        name="toy_power",
        module=module_name,
        label="Toy power",
        family="Toy",
        description="a declared option",
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances=frozenset(),
        value_range=(0.0, 10.0),
        reference="this test",
    )


def test_registry_parameters_are_read_from_the_function(monkeypatch):
    import types

    info = get("svcca")
    assert info.parameters == constraints_of(nc.svcca)
    assert info.parameters["variance"] is nc.svcca.__nncompare_constraints__["variance"]
    mod = types.ModuleType("toy_power_mod")
    mod.toy_power = constrain(power=Interval(int, 1, 4))(_toy)
    monkeypatch.setitem(__import__("sys").modules, "toy_power_mod", mod)
    with registered(_declaration("toy_power_mod")) as toy:
        assert list(toy.parameters) == ["power"]
        with pytest.raises(Exception, match=r"toy_power:power=7: power must be an integer in"):
            parse_measures(["toy_power:power=7"], conv="mean")
        mod.toy_power = _toy  # undeclared: nothing to read, the probe still runs
        assert toy.parameters == {}
        assert parse_measures(["toy_power:power=7"], conv="mean") == {"toy_power": {"power": 7}}


# ------------------------------------------------------------------ the constraint classes


@pytest.mark.parametrize(
    ("closed", "low_in", "high_in", "phrase"),
    [
        ("both", True, True, "lie in [0, 1]"),
        ("left", True, False, "lie in [0, 1)"),
        ("right", False, True, "lie in (0, 1]"),
        ("neither", False, False, "lie in (0, 1)"),
    ],
)
def test_interval_ends(closed, low_in, high_in, phrase):
    c = Interval(float, 0, 1, closed=closed)
    assert c.phrase == phrase
    assert c.accepts(0) is low_in and c.accepts(0.0) is low_in
    assert c.accepts(1.0) is high_in
    assert c.accepts(0.5) and c.accepts(np.float32(0.5)) and c.accepts(np.float64(0.5))
    assert not c.accepts(-1e-300) and not c.accepts(1 + 1e-15)
    for bad in (math.nan, True, False, "0.5", None, [0.5], np.array([0.5])):
        assert not c.accepts(bad), bad


def test_integer_interval():
    c = Interval(int, 1, None, closed="left")
    assert c.phrase == "be a positive integer"
    assert c.accepts(1) and c.accepts(np.int64(3)) and c.accepts(10**12)
    for bad in (0, -1, 2.0, 2.5, True, "3", None, math.inf):
        assert not c.accepts(bad), bad
    assert Interval(int, 0, 5, closed="right").phrase == "be an integer in (0, 5]"
    assert Interval(int, 2, None).phrase == "be an integer >= 2"
    assert not Interval(int, 0, 5, closed="right").accepts(0)


def test_unbounded_float_intervals_refuse_infinity():
    pos = Interval(float, 0, None, closed="neither")
    assert pos.phrase == "be a finite positive number"
    assert pos.accepts(1e300) and not pos.accepts(math.inf) and not pos.accepts(0.0)
    nonneg = Interval(float, 0, None, closed="left")
    assert nonneg.phrase == "be a finite number >= 0" and nonneg.accepts(0.0)
    assert not Interval(float, None, None).accepts(-math.inf)


def test_bad_interval_declarations_are_refused():
    with pytest.raises(ValueError, match=r"Interval kind must be int or float; got <class 'str'>"):
        Interval(str, 0, 1)
    with pytest.raises(ValueError, match=r"closed must be one of 'both'.*got 'open'"):
        Interval(float, 0, 1, closed="open")
    with pytest.raises(ValueError, match=r"needs low < high; got low=1, high=0"):
        Interval(float, 1, 0)


def test_options_boolean_pair_satisfies_arraylike():
    o = Options("paper", "google")
    assert o.accepts("paper") and o.accepts(np.str_("google"))
    assert not o.accepts("Paper") and not o.accepts(["paper"]) and not o.accepts(None)
    flags = Options(True, False)
    assert flags.accepts(True) and not flags.accepts(1) and not flags.accepts(0)
    b = Boolean()
    assert b.accepts(True) and b.accepts(np.bool_(False))
    assert not b.accepts(1) and not b.accepts(0) and not b.accepts("True")
    p = Pair(Interval(int, 1, None), ("dims_x", "dims_y"))
    assert p.phrase == "be a pair (dims_x, dims_y) of positive integers"
    assert p.accepts((2, 3)) and p.accepts([2, 3])
    for bad in ((2,), (2, 3, 4), (0, 3), (2, 3.0), 2, "23"):
        assert not p.accepts(bad), bad
    s = Satisfies(lambda v: v.startswith("a"), "start with 'a'", example="ab")
    assert s.accepts("abc") and not s.accepts("b") and not s.accepts(3)  # raising = refused
    arr = ArrayLike()
    assert arr.accepts(np.zeros(2)) and arr.accepts(torch.zeros(2)) and arr.accepts([1.0])
    assert not arr.accepts("text")


def test_alternatives_phrase_and_none():
    assert Alternatives([Options("a", "b"), None]).phrase == "be one of 'a', 'b' or None"
    assert Alternatives([Interval(float, 0, 1), None]).phrase == "lie in [0, 1] or be None"
    three = Alternatives([Interval(int, 1, None), Pair(Interval(int, 1, None)), None])
    assert three.phrase == "be a positive integer, a pair (x, y) of positive integers, or None"
    assert not three.accepts(0) and three.accepts(None) and three.accepts((1, 2))
    with pytest.raises(TypeError, match=r"constraints must be Interval, .* got 'float'"):
        Alternatives(["float"])


# ------------------------------------------------------------------ the decorator


@constrain(alpha=Interval(float, 0, 1), mode=Options("x", "y"), n=[Interval(int, 1, None), None])
def _decorated(data, alpha=0.5, *, mode="x", n=None):
    """A decorated function."""
    return (alpha, mode, n)


def test_decorator_keeps_the_function_and_checks_positional_options():
    assert _decorated.__name__ == "_decorated" and _decorated.__doc__ == "A decorated function."
    assert str(inspect.signature(_decorated)) == "(data, alpha=0.5, *, mode='x', n=None)"
    assert _decorated.__wrapped__(0, 7) == (7, "x", None)  # the undecorated function
    assert _decorated(0, 1, mode="y", n=3) == (1, "y", 3)
    with pytest.raises(InvalidParameterError, match=r"^_decorated: alpha must lie in \[0, 1\]; "):
        _decorated(0, 2)  # positional
    with pytest.raises(ValueError, match=r"n must be a positive integer or None; got 0\. "):
        _decorated(0, n=0)
    with pytest.raises(TypeError, match=r"mode must be one of 'x', 'y'; got 3 \(of type int\)\."):
        _decorated(0, mode=3)
    assert pickle.loads(pickle.dumps(nc.svcca)) is nc.svcca
    family = importlib.import_module("nncompare.measures.cca")
    assert family.svcca is nc.svcca and family.svcca.__module__ == "nncompare.measures.cca"


def test_declaration_errors_are_caught_at_decoration():
    with pytest.raises(TypeError, match=r"constrain\(beta=\.\.\.\) on f: expected parameters"):

        @constrain(beta=Interval(float, 0, 1))
        def f(x, *, alpha=0.5):
            return x

    with pytest.raises(TypeError, match=r"the default alpha=2\.0 does not satisfy its own"):

        @constrain(alpha=Interval(float, 0, 1))
        def g(x, *, alpha=2.0):
            return x


def test_check_parameters_matches_the_call():
    with pytest.raises(InvalidParameterError) as by_call:
        nc.svcca(X, Y, variance=2)
    with pytest.raises(InvalidParameterError) as by_check:
        check_parameters(nc.svcca, {"variance": 2, "unknown": "left to the caller"})
    assert str(by_call.value) == str(by_check.value)
    check_parameters(len, {"anything": 1})  # undeclared function: nothing to check


def test_rules_between_options_stay_in_the_function():
    with pytest.raises(ValueError, match=r"svcca: variance=None needs dims"):
        nc.svcca(X, Y, variance=None)
    assert nc.svcca(X, Y, variance=None, dims=2).kept_dims_x == 2
    with pytest.raises(ValueError, match=r"dims=50 exceeds"):
        nc.svcca(X, Y, dims=50)
    with pytest.raises(ValueError, match=r"epsilon applies to convention='google' only"):
        nc.pwcca(X, Y, epsilon=1e-3)


@pytest.mark.parametrize(
    ("key", "bad"),
    [(k, b) for k, spec in constraints_of(nc.rdm).items() for b in spec.invalid()],
)
def test_rdm_options_are_declared_too(key, bad):
    spec = constraints_of(nc.rdm)[key]
    with pytest.raises(InvalidParameterError, match=rf"^rdm: {key} must {re.escape(spec.phrase)}"):
        nc.rdm(X, **{key: bad})
