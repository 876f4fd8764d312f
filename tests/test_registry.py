"""The measure registry is the one declaration of a measure: everything else derives from it."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import nncompare as nc
from nncompare.cli._options import parse_measures
from nncompare.cli.main import cli
from nncompare.measures import MeasureInfo, available, get, register, registered, unregister
from nncompare.plot._data import color_scale, measure_meta, pretty_measure
from nncompare.results import Result


def toy_norms(X, Y, *, conv="samples", layout="auto"):
    """Toy measure for the registry tests: |Pearson r| between the row norms of X and Y."""
    a = np.linalg.norm(np.asarray(X, dtype=float), axis=1)
    b = np.linalg.norm(np.asarray(Y, dtype=float), axis=1)
    a, b = a - a.mean(), b - b.mean()
    value = float(abs(a @ b) / math.sqrt((a @ a) * (b @ b)))
    return Result(measure="toy_norms", value=value, n_samples=len(a))


def toy_wrong_signature(A, B, conv="samples"):
    """Not a measure: the wrong argument names and a positional option."""
    return 0.0


def declaration(**changes):
    """A complete, valid declaration of the toy measure, with ``changes``."""
    fields = dict(
        name="toy_norms",
        module=__name__,
        label="Toy row-norm correlation",
        family="Toy",
        description="absolute correlation of the row norms",
        higher_is_better=True,
        is_metric=False,
        symmetric=True,
        invariances={"orthogonal", "permutation"},
        value_range=(0.0, 1.0),
        reference="this test module (a toy, not a published measure)",
    )
    fields.update(changes)
    return MeasureInfo(**fields)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6))
    Y = X @ rng.standard_normal((6, 5)) + 0.5 * rng.standard_normal((40, 5))
    return X, Y


def test_declaration_is_keyword_only():
    with pytest.raises(TypeError, match="positional"):
        MeasureInfo("toy", __name__, "Toy", "Toy", "d", True, False, True, set(), (0, 1), "r")
    info = declaration()
    assert info.invariances == frozenset({"orthogonal", "permutation"})  # any iterable, frozen
    assert info.value_range == (0.0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.label = "other"  # type: ignore[misc]


def test_one_declaration_reaches_every_consumer(data):
    X, Y = data
    a = np.linalg.norm(X, axis=1)
    b = np.linalg.norm(Y, axis=1)
    expected = abs(np.corrcoef(a, b)[0, 1])  # numpy's Pearson r, not the toy's own formula
    info = declaration(has_spectrum=False)
    assert "toy_norms" not in available()
    with registered(info):
        # the registry and the library's entry points
        assert available()["toy_norms"] is info and get("toy_norms") is info
        assert nc.similarity(X, Y, "toy_norms") == pytest.approx(expected, rel=1e-12)
        assert float(nc.measures.compute(X, Y, "toy_norms")) == pytest.approx(expected, rel=1e-12)
        grid = nc.pairwise({"x": X}, {"y": Y}, measures=["toy_norms", "cka"])
        assert grid["toy_norms"][0, 0] == pytest.approx(expected, rel=1e-12)
        # the lazy top-level and measures names
        assert nc.toy_norms is toy_norms and nc.measures.toy_norms is toy_norms
        assert "toy_norms" in nc.__all__ and "toy_norms" in dir(nc)
        # the command line: listing, JSON and --measure
        runner = CliRunner()
        res = runner.invoke(cli, ["measures"])
        assert res.exit_code == 0, res.output
        assert "toy_norms" in res.output and "Toy row-norm correlation" in res.output
        doc = json.loads(runner.invoke(cli, ["measures", "--json"]).output)
        assert doc["toy_norms"]["label"] == "Toy row-norm correlation"
        assert doc["toy_norms"]["family"] == "Toy"
        assert parse_measures(["TOY_NORMS"], conv="samples") == {"toy_norms": {}}
        # figures and the report
        assert pretty_measure("toy_norms") == "Toy row-norm correlation"
        frame = grid.to_frame()
        assert measure_meta(frame, "toy_norms").label == "Toy row-norm correlation"
        assert measure_meta(frame, "toy_norms").reference == info.reference
        assert color_scale(frame, "toy_norms", np.array([0.3])).family == ""  # own scale
    # and gone again everywhere
    assert "toy_norms" not in available()
    with pytest.raises(ValueError, match="unknown measure 'toy_norms'"):
        nc.similarity(X, Y, "toy_norms")
    with pytest.raises(AttributeError, match="no attribute 'toy_norms'"):
        nc.toy_norms  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'toy_norms'"):
        nc.measures.toy_norms  # noqa: B018
    assert "toy_norms" not in nc.__all__
    assert pretty_measure("toy_norms") == "toy_norms"


def test_capabilities_are_read_from_the_declaration():
    info = declaration(has_spectrum=True, streaming=True, conv_policies=("samples", "dft"))
    assert info.supports_dft and info.supports("spectrum") and info.supports("streaming")
    with registered(info):
        assert "toy_norms" in nc.measures.with_spectrum()
        assert "toy_norms" in nc.measures.supporting("dft")
        assert "toy_norms" in nc.measures.supporting("streaming")
        assert "toy_norms" not in nc.measures.supporting("flatten")
    assert "toy_norms" not in nc.measures.with_spectrum()


def test_family_shares_the_colour_scale():
    """Two measures of one family and direction share one scale, named by the family."""
    frame = pd.DataFrame(
        {
            "layer_a": ["a", "a"],
            "layer_b": ["b", "b"],
            "measure": ["toy_norms", "toy_signed"],
            "value": [0.5, -0.2],
        }
    )
    toy_signed = declaration(name="toy_signed", label="Toy signed", value_range=(-1.0, 1.0))
    globals()["toy_signed"] = toy_norms  # the function is looked up as <module>.toy_signed
    try:
        with registered(declaration()), registered(toy_signed):
            scale = color_scale(frame, "toy_norms", np.array([0.5]))
            assert (scale.vmin, scale.vmax) == (-1.0, 1.0)
            assert scale.family == "Toy" and scale.shared_with == ("toy_signed",)
            assert "Toy signed" in scale.note and "(Toy family)" in scale.note
    finally:
        del globals()["toy_signed"]


def test_spectrum_flag_matches_the_results():
    """has_spectrum is True exactly for the measures whose results carry rho."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 5))
    Y = X @ rng.standard_normal((5, 4)) + rng.standard_normal((60, 4))
    Z = X @ np.diag([1, 2, 3, 4, 5.0])
    C1, C2 = X.T @ X / 60, Z.T @ Z / 60
    for name, info in available().items():
        args = (X, Y) if info.input == "activations" else (C1, C2)
        res = nc.measures.compute(*args, name)
        has_rho = getattr(res, "rho", None) is not None
        assert has_rho is info.has_spectrum, name


def test_derived_lists_pinned():
    """The lists the engine, report and CLI used to spell out now come from the registry."""
    assert nc.measures.with_spectrum() == ("cca", "cca_r2", "svcca", "pwcca")
    assert nc.measures.supporting("dft") == ("cca", "cca_r2", "svcca")
    assert set(nc.measures.supporting("streaming")) == {
        "cca", "cca_r2", "svcca", "pwcca", "cka", "lr_r2", "procrustes", "shape",
    }  # fmt: skip
    labels = [info.label for info in available().values()]
    assert len(set(labels)) == len(labels)
    assert pretty_measure("cka") == "Linear CKA" and pretty_measure("svcca") == "SVCCA"
    assert {info.family for n, info in available().items() if n.startswith("cka")} == {"CKA"}
    with pytest.raises(ValueError, match="unknown measure feature 'fft'; expected one of"):
        nc.measures.supporting("fft")


def test_every_measure_is_exported_from_its_declaration():
    for name, info in available().items():
        assert name in nc.__all__ and name in nc.measures.__all__
        assert getattr(nc.measures, name) is info.function
        assert inspect.getmodule(info.function).__name__ == info.module


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"invariances": {"orthogonal", "rotation"}},
            r"'toy_norms' invariances: expected names among orthogonal, .*; got 'rotation'",
        ),
        ({"invariances": "orthogonal"}, r"invariances: .*not a single string"),
        ({"value_range": (1.0, 0.0)}, r"value_range: expected \(low, high\) with low < high"),
        ({"value_range": (0.0, math.nan)}, r"value_range: expected \(low, high\) with low < high"),
        ({"value_range": (0.0,)}, r"value_range: expected two numbers \(low, high\)"),
        ({"distance": "1-value"}, r"distance: expected one of '1 - value', 'arccos\(value\)'"),
        ({"distance": "value"}, r"distance: expected '1 - value' or 'arccos\(value\)' for a sim"),
        (
            {"distance": "arccos(value)", "value_range": (0.0, 2.0)},
            r"distance: expected a value_range inside \[-1, 1\] for 'arccos\(value\)'",
        ),
        ({"input": "images"}, r"input: expected one of activations, covariances; got 'images'"),
        ({"conv_policies": ("samples", "fft")}, r"conv_policies: expected names among .*'fft'"),
        ({"conv_policies": ("flatten",)}, r"conv_policies: expected a tuple that includes 'sam"),
        (
            {"input": "covariances"},
            r"conv_policies: expected \(\) for a measure of covariances",
        ),
        ({"name": "2toy"}, r"MeasureInfo name: expected a Python identifier"),
        ({"name": "_toy"}, r"MeasureInfo name: expected a public name"),
        ({"module": "not a module"}, r"module: expected a dotted module path"),
        ({"label": " "}, r"'toy_norms' label: expected a non-empty string; got ' '"),
        ({"streaming": 1}, r"'toy_norms' streaming: expected True or False; got 1"),
    ],
)
def test_bad_declarations_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        declaration(**changes)


def test_register_refuses_clashes_and_broken_functions():
    with pytest.raises(TypeError, match="register expects a MeasureInfo"):
        register({"name": "toy_norms"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="measure 'cka' is already registered"):
        register(declaration(name="cka"))
    for taken in ("pairwise", "supporting", "covariance"):  # nc.*, nc.measures.*, a module
        with pytest.raises(ValueError, match=f"{taken!r} is taken by another public name"):
            register(declaration(name=taken))
    with pytest.raises(ValueError, match="label 'Linear CKA' is already the label of 'cka'"):
        register(declaration(label="Linear CKA"))
    with pytest.raises(ValueError, match=r"expected a function toy_missing\(\) in"):
        register(declaration(name="toy_missing"))
    with pytest.raises(ValueError, match="module 'no_such_module_xyz' does not import"):
        register(declaration(module="no_such_module_xyz"))
    with pytest.raises(ValueError, match=r"expected the signature \(X, Y, \*, options...\)"):
        register(declaration(name="toy_wrong_signature"))
    with pytest.raises(ValueError, match="'cka' is one of nncompare's own measures"):
        unregister("cka")
    assert "toy_norms" not in available() and "cka" in available()


def test_register_and_unregister_by_hand(data):
    X, Y = data
    expected = abs(np.corrcoef(np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1))[0, 1])
    info = register(declaration())
    try:
        assert nc.similarity(X, Y, "toy_norms") == pytest.approx(expected, rel=1e-12)
    finally:
        assert unregister("toy_norms") is info
    with pytest.raises(ValueError, match="unknown measure 'toy_norms'"):
        unregister("toy_norms")
