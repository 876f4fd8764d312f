"""Precision of the products: ``precision="auto"`` (float32 products for float32 inputs) against
``precision="float64"`` (the exact path).

What is checked:

* the default forms float32 products for float32 inputs (numpy and torch) and float64 products
  otherwise; ``precision="float64"`` keeps the exact path for any input;
* agreement of the two paths to about 1e-6 on well-conditioned data, on data offset far from
  zero (the centring happens before the float32 product), at extreme scales (power-of-two
  rescaling) and on streamed batches;
* measures that invert a covariance (the CCA family, shape with alpha < 1, lr_r2) refuse
  float32 products when the inversion amplifies their rounding too much: arrays are then
  recomputed in float64 (the result equals the exact path), accumulated Moments raise
  ``ProductPrecisionError`` naming the fix;
* Procrustes computes its rotation only when asked for it.

The exact values compared against are nncompare's own ``precision="float64"`` path, whose
accuracy is established against independent oracles and reference implementations in
tests/test_backends.py, tests/test_reference.py and tests/test_streaming.py.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import nncompare as nc
from nncompare._validation import ConstantFeatureWarning
from nncompare.measures._linalg import FLOAT32_AMPLIFICATION_LIMIT, ProductPrecisionError

PRECISION_MEASURES = ["cka", "cka_debiased", "cca", "cca_r2", "svcca", "pwcca", "procrustes"]
WHITENING = ["cca", "cca_r2", "svcca", "pwcca"]


def related(seed: int, n: int = 3000, d1: int = 40, d2: int = 30) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d1)) * (1.0 / np.sqrt(1.0 + np.arange(d1)))
    Y = X[:, : min(d1, d2)] @ rng.normal(size=(min(d1, d2), d2)) + 0.5 * rng.normal(size=(n, d2))
    return X, Y


def value(name: str, X, Y=None, **kw) -> float:
    return float(getattr(nc, name)(X, Y, **kw))


def ill_conditioned(seed: int, n: int = 4000, d: int = 30, eps: float = 1e-3):
    """X whose last feature is the sum of two others plus 1e-3 noise (condition ~1e7)."""
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(n, d))
    X = B.copy()
    X[:, -1] = B[:, 0] + B[:, 1] + eps * rng.normal(size=n)
    Y = B[:, :10] @ rng.normal(size=(10, 12)) + rng.normal(size=(n, 12))
    Y[:, -1] = 3.0 * X[:, -1] + 1e-3 * rng.normal(size=n)
    return X.astype(np.float32), Y.astype(np.float32)


# ---------------------------------------------------------------------- which precision
def test_auto_uses_the_inputs_precision():
    X, Y = related(0)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    assert nc.Moments().update(X32, Y32).product_precision == "float32"
    assert nc.Moments().update(X, Y).product_precision == "float64"
    assert nc.Moments().update(X32, Y).product_precision == "float64"  # the wider input wins
    assert nc.Moments().update(X32.astype(np.float16), Y32).product_precision == "float32"
    assert nc.Moments().update(X32 > 0, Y32 > 0).product_precision == "float64"
    t = torch.from_numpy(X32), torch.from_numpy(Y32)
    assert nc.Moments().update(*t).product_precision == "float32"
    assert nc.Moments().update(*(a.to(torch.bfloat16) for a in t)).product_precision == "float32"
    assert nc.Moments(precision="float64").update(X32, Y32).product_precision == "float64"
    assert nc.Moments(precision="float32").update(X, Y).product_precision == "float32"
    assert nc.Moments.from_arrays(X32, Y32, precision="float64").product_precision == "float64"
    # the former keyword still works
    assert nc.Moments(dtype="float32").precision == "float32"
    assert nc.JointMoments(dtype="float64").precision == "float64"


def test_precision_errors():
    X, Y = related(1, n=200)
    with pytest.raises(ValueError, match=r"precision must be one of .*'auto'.*got 'half'"):
        nc.Moments(precision="half")
    with pytest.raises(ValueError, match=r"precision must be one of .*got 'float16'"):
        nc.cca(X, Y, precision="float16")
    with pytest.raises(ValueError, match=r"dtype='float64' and precision='float32' disagree"):
        nc.Moments(precision="float32", dtype="float64")
    m = nc.Moments().update(X, Y)
    with pytest.raises(ValueError, match=r"precision='float64' applies to arrays; these Moments"):
        nc.cca(m, precision="float64")
    with pytest.raises(ValueError, match=r"precision='float32' applies to arrays; these Moments"):
        nc.cka(m, precision="float32")


def test_merged_moments_remember_float32_products():
    X, Y = related(2, n=400)
    a = nc.Moments(precision="float64").update(X[:200], Y[:200])
    b = nc.Moments(precision="float32").update(X[200:], Y[200:])
    assert a.merge(b).product_precision == "float32"
    jm = nc.JointMoments().update({"x": X.astype(np.float32), "y": Y.astype(np.float32)})
    assert jm.product_precision == "float32"
    assert jm.pair("x", "y").product_precision == "float32"


# ---------------------------------------------------------------------- agreement
@pytest.mark.parametrize("name", PRECISION_MEASURES)
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_float32_products_agree_with_the_exact_path(name, lib):
    X, Y = related(3)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    if lib == "torch":
        X32, Y32 = torch.from_numpy(X32), torch.from_numpy(Y32)
    exact = value(name, X32, Y32, precision="float64")
    auto = value(name, X32, Y32)
    assert auto == pytest.approx(exact, abs=1e-6)
    assert auto != exact  # the float32 products were really used (they round differently)
    # explicit float32 products of float64 data (centred in float64 first)
    assert value(name, X, Y, precision="float32") == pytest.approx(value(name, X, Y), abs=1e-6)


@pytest.mark.parametrize("name", PRECISION_MEASURES)
@pytest.mark.parametrize("offset", [1e3, 3e4])
def test_offset_float32_data_are_centred_before_the_product(name, offset):
    """Raw float32 products of data offset by 1e3..3e4 would cancel 7..10 digits (relative
    errors of n μ² / C · 6e-8 ≈ 1 .. 1e3 here): the centring comes first. The remaining
    error is the float32 summation of the products: offset float32 data are coarsely
    quantised (steps of 2^-9 at 3e4), and their sums of 3000 products carry about
    sqrt(n) · 6e-8 ≈ 3e-6 relative rounding."""
    X, Y = related(4)
    X32 = (X + offset).astype(np.float32)
    Y32 = (Y - 2.0 * offset).astype(np.float32)
    exact = value(name, X32, Y32, precision="float64")
    assert value(name, X32, Y32) == pytest.approx(exact, abs=1e-5)
    # the same float32 numbers shifted back to zero (exactly: the steps are kept) give the
    # same value: nothing of the offset leaks into the result
    Xc = (X32.astype(np.float64) - offset).astype(np.float32)
    Yc = (Y32.astype(np.float64) + 2.0 * offset).astype(np.float32)
    assert np.array_equal(Xc.astype(np.float64) + offset, X32.astype(np.float64))
    assert value(name, Xc, Yc, precision="float64") == pytest.approx(exact, rel=1e-12)
    assert value(name, Xc, Yc) == pytest.approx(exact, abs=1e-5)


@pytest.mark.parametrize("name", PRECISION_MEASURES)
@pytest.mark.parametrize("scale", [2.0**-120, 2.0**-60, 2.0**60, 2.0**120])
def test_float32_products_at_extreme_scales(name, scale):
    """Per-feature power-of-two rescaling keeps float32 products in range (their squares
    would under/overflow float32 at 2^±64): the value is the unit-scale one."""
    X, Y = related(5)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    want = value(name, X32, Y32)
    Xs = (X32.astype(np.float64) * scale).astype(np.float32)
    # mixed: one side tiny or huge, the other at unit scale; per-feature scales mixed too
    Ys = (Y32.astype(np.float64) * np.geomspace(1.0, scale, Y.shape[1])).astype(np.float32)
    assert np.isfinite(Xs).all() and np.all(Xs[Xs != 0] != 0)
    assert value(name, Xs, Y32) == pytest.approx(want, abs=1e-6)
    if name in ("cca", "cca_r2", "pwcca"):  # invariant to per-feature scales
        assert value(name, X32, Ys) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("name", PRECISION_MEASURES[:1] + PRECISION_MEASURES[2:])
def test_streamed_float32_batches(name):
    X, Y = related(6)
    X32, Y32 = (X + 50.0).astype(np.float32), Y.astype(np.float32)
    m = nc.Moments()
    for s in range(0, len(X), 700):
        m.update(X32[s : s + 700], Y32[s : s + 700])
    assert m.product_precision == "float32"
    exact = value(name, X32, Y32, precision="float64")
    assert value(name, m) == pytest.approx(exact, abs=1e-6)


def test_constant_features_stay_exactly_constant_in_float32():
    X, Y = related(7)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    X32[:, 3] = 1234.5  # exactly constant, far from zero
    m = nc.Moments().update(X32, Y32)
    assert bool(m.constant_x()[3])
    assert np.all(m.zxx[3] == 0) and np.all(m.zxy[3] == 0)
    with pytest.warns(ConstantFeatureWarning, match="1 constant feature"):
        auto = value("cca", X32, Y32)
    with pytest.warns(ConstantFeatureWarning, match="1 constant feature"):
        assert auto == pytest.approx(value("cca", X32, Y32, precision="float64"), abs=1e-6)


# ---------------------------------------------------------------------- ill-conditioning
@pytest.mark.parametrize("name", WHITENING)
def test_ill_conditioned_arrays_fall_back_to_float64(name):
    """With a nearly collinear feature (condition ~1e7) float32 products would move CCA by
    ~3e-4 and PWCCA by ~1e-3; the measure recomputes in float64 instead."""
    X32, Y32 = ill_conditioned(8)
    exact = value(name, X32, Y32, precision="float64")
    rough = getattr(nc, name)
    m = nc.Moments(precision="float32").update(X32, Y32)
    if name == "svcca":
        # SVCCA keeps 99% of the variance and drops the near-null direction: nothing is
        # amplified, float32 products are kept
        assert float(rough(m)) == pytest.approx(exact, abs=1e-6)
        assert float(rough(X32, Y32)) == pytest.approx(exact, abs=1e-6)
        return
    assert value(name, X32, Y32) == pytest.approx(exact, rel=1e-12, abs=1e-14)
    with pytest.raises(ProductPrecisionError, match=r"inverting the covariance of X amplifies"):
        rough(m)
    with pytest.raises(ValueError, match=r"Accumulate with precision='float64'"):
        rough(m)
    m64 = nc.Moments(precision="float64").update(X32, Y32)
    assert float(rough(m64)) == pytest.approx(exact, rel=1e-12)


def test_ill_conditioned_moments_refused_by_lr_r2_and_shape():
    X32, Y32 = ill_conditioned(9)
    m = nc.Moments().update(X32, Y32)
    with pytest.raises(
        ProductPrecisionError, match=r"lr_r2: the co-moments were formed in float32"
    ):
        nc.lr_r2(m)
    with pytest.raises(ProductPrecisionError, match=r"shape: the co-moments were formed"):
        nc.shape(m, alpha=0.0)
    with pytest.raises(ProductPrecisionError, match=r"shape: the co-moments were formed"):
        nc.shape(m, alpha=0.5)
    # alpha = 1 (Procrustes) inverts nothing; arrays fall back
    assert float(nc.shape(m, alpha=1.0)) == pytest.approx(
        float(nc.shape(X32, Y32, alpha=1.0, precision="float64")), abs=1e-6
    )
    assert float(nc.shape(X32, Y32, alpha=0.5)) == pytest.approx(
        float(nc.shape(X32, Y32, alpha=0.5, precision="float64")), rel=1e-12
    )


def test_well_conditioned_data_keep_float32_products():
    """The benchmark-like data (amplification ~d) pass the check with a wide margin."""
    X, Y = related(10, n=4000, d1=200, d2=200)
    m = nc.Moments().update(X.astype(np.float32), Y.astype(np.float32))
    r = nc.cca(m)
    from nncompare.measures._linalg import whitening_side

    amp = whitening_side(m, "x", 1e-10).amplification
    assert 200 <= amp < FLOAT32_AMPLIFICATION_LIMIT / 10
    assert float(r) == pytest.approx(value("cca", X, Y), abs=1e-6)


# ---------------------------------------------------------------------- lazy rotation
def test_procrustes_rotation_is_computed_on_first_access(monkeypatch):
    X, Y = related(11, n=500, d1=9, d2=12)
    calls = []
    P = importlib.import_module("nncompare.measures.procrustes")

    real = P._polar
    monkeypatch.setattr(P, "_polar", lambda xp, A: calls.append(1) or real(xp, A))
    r = nc.procrustes(X, Y)
    assert "rotation=<computed on first access>" in repr(r)
    assert "rotation" not in r.summary()
    assert calls == []
    Q = r.rotation
    assert calls == [1] and Q.shape == (9, 12)
    assert r.rotation is Q and calls == [1]
    np.testing.assert_allclose(Q @ Q.T, np.eye(9), atol=1e-12)
    # the rotation attains the Euclidean distance (Ding et al. 2021; orthonormal rows)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Xc, Yc = Xc / np.linalg.norm(Xc), Yc / np.linalg.norm(Yc)
    assert np.linalg.norm(Xc @ Q - Yc) == pytest.approx(r.euclidean, rel=1e-10)
    with pytest.raises(AttributeError, match="cannot assign to field 'rotation'"):
        r.rotation = None


@pytest.mark.parametrize(
    "case", ["plain", "offset", "huge offset", "extreme scales", "constant feature", "torch"]
)
def test_procrustes_from_the_cross_covariance_alone(case):
    """The in-memory Procrustes forms only Xᵀ Y and the two total variances; each of its paths
    (raw float64 products, centred float64, float32, torch) equals the full moments."""
    X, Y = related(12, n=1500, d1=20, d2=15)
    if case == "offset":
        X = X + 3.0
    elif case == "huge offset":
        X = X + 1e9  # raw products would cancel: the centred path runs
    elif case == "extreme scales":
        X, Y = X * 2.0**-700, Y * np.geomspace(1.0, 2.0**600, Y.shape[1])
    elif case == "constant feature":
        X[:, 2] = -4.25
    want = float(nc.procrustes(nc.Moments(precision="float64").update(X, Y)))
    if case == "torch":
        X, Y = torch.from_numpy(X), torch.from_numpy(Y)
    assert float(nc.procrustes(X, Y)) == pytest.approx(want, rel=1e-12)
    if case in ("plain", "offset", "constant feature"):  # the others do not fit float32
        X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
        want32 = float(nc.procrustes(nc.Moments(precision="float64").update(X32, Y32)))
        assert float(nc.procrustes(X32, Y32)) == pytest.approx(want32, abs=1e-6)
