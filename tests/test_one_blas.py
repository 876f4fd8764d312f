"""The products and factorisations that run on numpy's BLAS (one BLAS library for the
whole computation: see ``stats._upper_gram``), against the formulas written out."""

from __future__ import annotations

import numpy as np
import pytest
from tests import oracles

import nncompare as nc
from nncompare import stats
from nncompare.stats import JointMoments, _centred_row_norms, _upper_gram


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(400, 30), (40, 30)])  # numpy's product; scipy's syrk
def test_upper_gram_upper_triangle_is_the_product(shape, dtype):
    rng = np.random.default_rng(0)
    Z = rng.standard_normal(shape).astype(dtype)
    want = Z.astype(np.float64).T @ Z.astype(np.float64)
    got = _upper_gram(Z)
    assert got.dtype == dtype
    iu = np.triu_indices(shape[1])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[iu], want[iu], rtol=tol, atol=tol * shape[0])


def test_upper_gram_takes_numpy_product_only_with_many_rows_per_feature(monkeypatch):
    from scipy.linalg import blas

    calls = []
    real = blas.dsyrk

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(blas, "dsyrk", spy)
    rng = np.random.default_rng(1)
    _upper_gram(rng.standard_normal((stats._NUMPY_GRAM_ROWS * 20, 20)))
    assert calls == []
    _upper_gram(rng.standard_normal((stats._NUMPY_GRAM_ROWS * 20 - 1, 20)))
    assert len(calls) == 1


def test_centred_row_norms_are_the_norms_of_centred_rows():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((1300, 7)) * 3.0 + 100.0  # several row blocks, a large mean
    mu = a.mean(axis=0)
    w = 2.0 ** rng.integers(-3, 3, 7).astype(float)
    want = (((a - mu) * w) ** 2).sum(axis=1)
    np.testing.assert_allclose(_centred_row_norms(a, mu, w), want, rtol=1e-13)


@pytest.mark.parametrize("offset", [0.0, 1e6])  # raw products; centred (cancellation) path
def test_cka_debiased_float64_matches_song_et_al_eq5(offset, monkeypatch):
    """Song et al. (2012) eq. 5 with explicit loops (tests/oracles.py); the raw-product
    fast path must serve the first case and the centring fallback the second."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 6)) + offset
    Y = X[:, :4] @ rng.standard_normal((4, 5)) + 0.5 * rng.standard_normal((40, 5))
    taken = []
    real = stats._raw_product_moments

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(stats, "_raw_product_moments", spy)
    got = float(nc.cka_debiased(X, Y))
    assert taken == [offset == 0.0]
    want = oracles.cka_debiased(X - X.mean(0), Y - Y.mean(0))
    assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("rows_per_feature", [2, 6])  # scipy's one triangle; numpy's whole
def test_centred_float64_comoment_is_whole_and_symmetric_either_way(rows_per_feature):
    """The float64 centring path (a mean of 1e6 against unit spread sends data there)
    mirrors the Gram only where the product filled one triangle; either way the joint
    co-moment is the centred product written out, exactly symmetric."""
    rng = np.random.default_rng(4)
    d = 12
    X = rng.standard_normal((rows_per_feature * 2 * d, d)) + 1e6
    Y = X[:, :5] @ rng.standard_normal((5, d)) + rng.standard_normal((len(X), d)) - 3e6
    jm = JointMoments().update({"a": X, "b": Y})
    C = jm.comoment
    Z = np.concatenate([X - X.mean(axis=0), Y - Y.mean(axis=0)], axis=1)
    np.testing.assert_allclose(C, Z.T @ Z, rtol=1e-9, atol=1e-9 * np.abs(Z.T @ Z).max())
    np.testing.assert_array_equal(C, C.T)
