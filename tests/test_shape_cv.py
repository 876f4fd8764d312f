"""``nc.ShapeMetric`` and ``nc.shape_cv``: the shape metric with the alignment fitted on
training samples and evaluated on held-out ones (issue 7 item 9, for netrep users).

Oracle: the fit/score procedure of Williams et al. (2021) and their netrep package written
out with scipy (``scipy.linalg.sqrtm`` for the partial whitening, zero padding and
``scipy.linalg.orthogonal_procrustes`` for the rotation), in nncompare's convention of
whitening the unit-norm training data; no nncompare internals.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import nncompare as nc
from nncompare.measures.shape_cv import NotFittedError, ShapeCVResult, ShapeScoreResult

scipy_linalg = pytest.importorskip("scipy.linalg")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _related(seed: int = 0, n: int = 120, d1: int = 6, d2: int = 4, noise: float = 0.7):
    """Y a noisy linear read-out of X: alike, not identical."""
    rng = _rng(seed)
    X = rng.normal(size=(n, d1)) * np.linspace(0.5, 2.0, d1) + 3.0
    Y = X @ rng.normal(size=(d1, d2)) + noise * rng.normal(size=(n, d2)) - 1.0
    return X, Y


def _orthogonal(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


# ----------------------------------------------------------------------------- oracle
def _oracle_fit(A: np.ndarray, alpha: float):
    mean = A.mean(axis=0)
    norm = np.linalg.norm(A - mean)
    At = (A - mean) / norm
    C = At.T @ At
    Z = alpha * np.eye(A.shape[1]) + (1 - alpha) * np.real(scipy_linalg.sqrtm(np.linalg.inv(C)))
    return mean, norm, Z


def _oracle_score(Xtr, Ytr, Xte, Yte, alpha: float) -> float:
    """Fit on (Xtr, Ytr), score (Xte, Yte): cos of the aligned held-out data."""
    (mx, sx, Zx), (my, sy, Zy) = _oracle_fit(Xtr, alpha), _oracle_fit(Ytr, alpha)
    width = max(Xtr.shape[1], Ytr.shape[1])

    def pad(A):
        return np.pad(A, ((0, 0), (0, width - A.shape[1])))

    R, _ = scipy_linalg.orthogonal_procrustes(pad((Xtr - mx) / sx @ Zx), pad((Ytr - my) / sy @ Zy))
    a = pad((Xte - mx) / sx @ Zx) @ R
    b = pad((Yte - my) / sy @ Zy)
    return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# ----------------------------------------------------------------------------- correctness
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("n", [120, 7])  # n > d and n < d1 + d2
def test_in_sample_score_equals_shape(alpha, n):
    X, Y = _related(n=n)
    metric = nc.ShapeMetric(alpha).fit(X, Y)
    got = metric.score(X, Y)
    want = nc.shape(X, Y, alpha=alpha)
    assert isinstance(got, ShapeScoreResult)
    assert float(got) == pytest.approx(float(want), abs=1e-12)
    assert got.angular == pytest.approx(want.angular, abs=1e-7)
    assert float(metric.train_value_) == pytest.approx(float(want), abs=1e-12)
    assert got.n_train == got.n_test == n and got.alpha == alpha
    assert got.euclidean == pytest.approx(math.sqrt(2 - 2 * float(want)), abs=1e-7)
    assert got.distance == got.angular


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("widths", [(5, 5), (6, 4), (3, 7)])
def test_held_out_score_equals_scipy_oracle(alpha, widths):
    X, Y = _related(seed=1, n=150, d1=widths[0], d2=widths[1])
    got = nc.ShapeMetric(alpha).fit_score(X[:100], Y[:100], X[100:], Y[100:])
    want = _oracle_score(X[:100], Y[:100], X[100:], Y[100:], alpha)
    assert 0.3 < want < 0.999  # a held-out pair that is alike but not identical
    assert float(got) == pytest.approx(want, abs=1e-10)
    assert got.angular == pytest.approx(math.acos(want), abs=1e-9)
    assert got.n_train == 100 and got.n_test == 50


def test_overfitting_of_the_in_sample_alignment():
    """Independent random X, Y with n_train = 2d: the fitted alignment makes them look
    alike in-sample, and the held-out similarity is near 0 (the reason for the CV variant)."""
    rng = _rng(2)
    d = 30
    X, Y = rng.normal(size=(120, d)), rng.normal(size=(120, d))
    for alpha, floor in ((1.0, 0.4), (0.0, 0.4)):
        fitted = nc.ShapeMetric(alpha).fit(X[:60], Y[:60])
        held = fitted.score(X[60:], Y[60:])
        assert float(fitted.train_value_) > floor, alpha
        assert abs(float(held)) < 0.15, alpha
        assert held.angular > fitted.score(X[:60], Y[:60]).angular + 0.4
    cv = nc.shape_cv(X, Y, alpha=1.0, folds=4)
    assert np.all(cv.test_distances > cv.train_distances)
    assert cv.test_distance > cv.train_distance + 0.4 and cv.gap > 0.4
    assert abs(float(cv)) < 0.15 and cv.train_value > 0.35


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_a_representation_is_at_distance_zero_from_itself(alpha):
    """Also with fewer training samples than features: the maps act on the training span."""
    rng = _rng(3)
    X = rng.normal(size=(40, 25))
    for n_train in (30, 10):
        res = nc.ShapeMetric(alpha).fit_score(X[:n_train], X[:n_train], X[30:], X[30:])
        assert float(res) == pytest.approx(1.0, abs=1e-10)
        assert res.angular < 2e-5


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_held_out_score_invariances(alpha):
    """Orthogonal maps of either side, isotropic scaling and translation (applied to train
    and test alike) leave the held-out score unchanged; so does swapping X and Y."""
    X, Y = _related(seed=4, n=150, d1=6, d2=4)
    tr, te = slice(0, 100), slice(100, None)

    def held(A, B):
        return float(nc.ShapeMetric(alpha).fit(A[tr], B[tr]).score(A[te], B[te]))

    base = held(X, Y)
    assert held(X @ _orthogonal(6, 5), Y) == pytest.approx(base, abs=1e-10)
    assert held(X, Y @ _orthogonal(4, 6)) == pytest.approx(base, abs=1e-10)
    assert held(7.5 * X - 4.0, 0.01 * Y + 100.0) == pytest.approx(base, abs=1e-10)
    assert held(Y, X) == pytest.approx(base, abs=1e-12)
    if alpha == 0.0:  # full whitening: any invertible linear map
        M = _rng(7).normal(size=(6, 6)) + 3 * np.eye(6)
        assert held(X @ M, Y) == pytest.approx(base, abs=1e-9)
    else:  # partial whitening keeps some of the geometry
        M = np.diag([1.0, 1.0, 1.0, 1.0, 1.0, 20.0])
        assert abs(held(X @ M, Y) - base) > 1e-3


def test_transform_maps_x_onto_y_and_reproduces_the_score():
    X, Y = _related(seed=8, n=150, d1=4, d2=6)
    metric = nc.ShapeMetric(0.5).fit(X[:100], Y[:100])
    tX, tY = metric.transform(X[100:], Y[100:])
    assert tX.shape == tY.shape == (50, 6)
    cos = np.sum(tX * tY) / (np.linalg.norm(tX) * np.linalg.norm(tY))
    assert cos == pytest.approx(float(metric.score(X[100:], Y[100:])), abs=1e-12)
    assert metric.rotation_.shape == (4, 6)
    np.testing.assert_allclose(metric.rotation_ @ metric.rotation_.T, np.eye(4), atol=1e-10)
    np.testing.assert_allclose(metric.mean_x_, X[:100].mean(axis=0), rtol=1e-12)
    assert metric.rank_x_ == 4 and metric.rank_y_ == 6 and metric.n_train_ == 100


def test_held_out_data_are_centred_with_the_training_means():
    """A shift of the held-out distribution counts against similarity (as in netrep)."""
    X, Y = _related(seed=9, n=150)
    metric = nc.ShapeMetric(1.0).fit(X[:100], Y[:100])
    base = float(metric.score(X[100:], Y[100:]))
    shifted = float(metric.score(X[100:] + 5.0 * X[:100].std(axis=0), Y[100:]))
    assert shifted < base - 0.1


# ----------------------------------------------------------------------------- shape_cv
def test_shape_cv_folds_partition_the_samples_and_match_the_estimator():
    X, Y = _related(seed=10, n=103)
    cv = nc.shape_cv(X, Y, alpha=0.5, folds=4, seed=3)
    assert isinstance(cv, ShapeCVResult)
    assert cv.folds == 4 and sum(cv.n_test) == 103 and set(cv.n_test) <= {25, 26}
    assert all(a + b == 103 for a, b in zip(cv.n_train, cv.n_test, strict=True))
    # the same folds given explicitly reproduce every per-fold value
    order = np.random.default_rng(3).permutation(103)
    held = [np.sort(p) for p in np.array_split(order, 4)]
    again = nc.shape_cv(X, Y, alpha=0.5, folds=held)
    np.testing.assert_array_equal(again.test_values, cv.test_values)
    for i, idx in enumerate(held):
        keep = np.setdiff1d(np.arange(103), idx)
        want = nc.ShapeMetric(0.5).fit_score(X[keep], Y[keep], X[idx], Y[idx])
        assert cv.test_values[i] == pytest.approx(float(want), abs=1e-12)
        assert cv.train_values[i] == pytest.approx(
            float(nc.shape(X[keep], Y[keep], alpha=0.5)), abs=1e-12
        )
    assert float(cv) == pytest.approx(np.mean(cv.test_values), abs=1e-15)
    assert cv.test_distance == pytest.approx(np.mean(np.arccos(cv.test_values)), abs=1e-12)
    assert cv.train_distance == pytest.approx(np.mean(np.arccos(cv.train_values)), abs=1e-7)
    assert cv.distance == cv.test_distance
    json.dumps(cv.summary())


def test_shape_cv_is_deterministic_given_the_seed():
    X, Y = _related(seed=11, n=60)
    a = nc.shape_cv(X, Y, folds=3, seed=5)
    b = nc.shape_cv(X, Y, folds=3, seed=5)
    c = nc.shape_cv(X, Y, folds=3, seed=6)
    np.testing.assert_array_equal(a.test_values, b.test_values)
    assert not np.array_equal(a.test_values, c.test_values)
    contiguous = nc.shape_cv(X, Y, folds=3, shuffle=False)
    first = nc.ShapeMetric(1.0).fit_score(X[20:], Y[20:], X[:20], Y[:20])
    assert contiguous.test_values[0] == pytest.approx(float(first), abs=1e-12)


# ----------------------------------------------------------------------------- errors
def test_score_before_fit_is_refused():
    X, Y = _related()
    with pytest.raises(NotFittedError, match=r"not fitted yet.*call fit\(X_train, Y_train\)"):
        nc.ShapeMetric().score(X, Y)
    with pytest.raises(NotFittedError, match=r"not fitted yet, so ShapeMetric.transform"):
        nc.ShapeMetric().transform(X, Y)


def test_feature_counts_must_match_the_fit():
    X, Y = _related(d1=6, d2=4)
    metric = nc.ShapeMetric().fit(X[:80], Y[:80])
    with pytest.raises(ValueError, match=r"X_test has 5 features but .* fitted on X with 6"):
        metric.score(X[80:, :5], Y[80:])
    with pytest.raises(ValueError, match=r"Y_test has 6 features but .* fitted on Y with 4"):
        metric.score(X[80:], X[80:])


def test_too_few_held_out_or_training_samples():
    X, Y = _related()
    metric = nc.ShapeMetric().fit(X[:80], Y[:80])
    with pytest.raises(ValueError, match=r"ShapeMetric.score needs at least 2 samples; got 1"):
        metric.score(X[80:81], Y[80:81])
    with pytest.raises(ValueError, match=r"ShapeMetric.fit needs at least 3 samples; got 2"):
        nc.ShapeMetric().fit(X[:2], Y[:2])
    with pytest.raises(ValueError, match=r"same samples .* X_test with 40 rows and Y_test with"):
        metric.score(X[80:], Y[81:])


def test_non_finite_values_are_refused():
    X, Y = _related()
    Xbad = X.copy()
    Xbad[85, 2] = np.nan
    metric = nc.ShapeMetric().fit(X[:80], Y[:80])
    with pytest.raises(ValueError, match=r"X_test contains non-finite values .* index \(5, 2\)"):
        metric.score(Xbad[80:], Y[80:])
    with pytest.raises(ValueError, match=r"X_train contains non-finite values .* index \(85, 2\)"):
        nc.ShapeMetric().fit(Xbad, Y)


def test_constant_representations_are_refused():
    X, Y = _related()
    metric = nc.ShapeMetric().fit(X[:80], Y[:80])
    flat = np.full((40, 4), 0.1)
    with pytest.raises(ValueError, match=r"every feature of Y_test is constant over its 40"):
        metric.score(X[80:], flat)
    with pytest.raises(ValueError, match=r"fit is undefined: every feature of X_train is const"):
        nc.ShapeMetric().fit(np.ones((50, 6)), Y[:50])


def test_constant_feature_in_training_is_ignored_not_fatal():
    X, Y = _related(seed=12, n=150)
    Xc = X.copy()
    Xc[:, 0] = 2.0
    for alpha in (0.0, 0.5, 1.0):
        metric = nc.ShapeMetric(alpha).fit(Xc[:100], Y[:100])
        assert metric.rank_x_ == X.shape[1] - 1
        moved = Xc[100:].copy()
        moved[:, 0] = _rng(0).normal(size=50)  # varies only in the held-out data
        assert float(metric.score(moved, Y[100:])) == pytest.approx(
            float(metric.score(Xc[100:], Y[100:])), abs=1e-12
        )


def test_bad_settings_and_inputs():
    X, Y = _related(n=20)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]; got 1.5"):
        nc.ShapeMetric(1.5)
    with pytest.raises(ValueError, match=r"rtol must lie in \(0, 1\)"):
        nc.ShapeMetric(rtol=0.0)
    with pytest.raises(ValueError, match=r"folds=11 with 20 samples leaves held-out folds of 1"):
        nc.shape_cv(X, Y, folds=11)
    with pytest.raises(ValueError, match=r"folds must be at least 2"):
        nc.shape_cv(X, Y, folds=1)
    with pytest.raises(ValueError, match=r"folds\[1\] holds indices outside \[0, 20\)"):
        nc.shape_cv(X, Y, folds=[[0, 1, 2], [5, 20]])
    with pytest.raises(ValueError, match=r"folds\[0\] holds out 1 distinct sample"):
        nc.shape_cv(X, Y, folds=[[3, 3]])
    with pytest.raises(TypeError, match=r"folds\[0\] must be a 1-D array of integer"):
        nc.shape_cv(X, Y, folds=[[0.5, 1.5]])
    conv = _rng(0).normal(size=(20, 4, 4, 3))
    with pytest.raises(ValueError, match=r"X must be a 2-D array .* nc.reshape_conv\(X, 'mean'\)"):
        nc.shape_cv(conv, Y)
    with pytest.raises(TypeError, match=r"needs the samples themselves, not accumulated moments"):
        nc.ShapeMetric().fit(nc.Moments.from_arrays(X, Y), Y)


def test_shape_cv_names_the_fold_that_fails():
    X, Y = _related(n=30)
    X = X.copy()
    X[:5] = X[0]  # the first five samples are identical in X
    with pytest.raises(
        ValueError,
        match=r"shape_cv, fold 1 of 1 \(25 training and 5 held-out samples\): .*"
        r"every feature of X_test is constant",
    ):
        nc.shape_cv(X, Y, folds=[np.arange(5)])


# ----------------------------------------------------------------------------- torch
def test_torch_in_stays_torch_and_agrees_with_numpy():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    X, Y = _related(seed=13, n=90, d1=5, d2=3)
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    metric = nc.ShapeMetric(0.5).fit(tX[:60], tY[:60])
    res = metric.score(tX[60:], tY[60:])
    want = nc.ShapeMetric(0.5).fit(X[:60], Y[:60]).score(X[60:], Y[60:])
    assert isinstance(res.value, torch.Tensor) and res.value.ndim == 0
    assert float(res) == pytest.approx(float(want), abs=1e-12)
    a, b = metric.transform(tX[60:], tY[60:])
    assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
    # numpy test data follow a torch fit, and torch test data a numpy fit
    assert isinstance(metric.score(X[60:], Y[60:]).value, torch.Tensor)
    numpy_fit = nc.ShapeMetric(0.5).fit(X[:60], Y[:60])
    assert float(numpy_fit.score(tX[60:], tY[60:])) == pytest.approx(float(want), abs=1e-12)
    cv = nc.shape_cv(tX, tY, folds=3)
    assert isinstance(cv.value, torch.Tensor)
    assert float(cv) == pytest.approx(float(nc.shape_cv(X, Y, folds=3)), abs=1e-12)


def test_torch_gradient_through_the_held_out_score():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    X, Y = _related(seed=14, n=40, d1=3, d2=3)
    metric = nc.ShapeMetric(0.5).fit(torch.from_numpy(X[:30]), torch.from_numpy(Y[:30]))
    Xte = torch.from_numpy(X[30:]).clone().requires_grad_(True)
    Yte = torch.from_numpy(Y[30:])
    assert torch.autograd.gradcheck(lambda A: metric.score(A, Yte).value, (Xte,))
