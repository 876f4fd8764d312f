"""``nc.rdm`` (a layer's representational dissimilarity matrix) and ``nc.plot.plot_rdm``
(issue 7 item 9, for rsatoolbox users).

Oracle: scipy's ``pdist``/``squareform``, independent of nncompare.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import nncompare as nc

distance = pytest.importorskip("scipy.spatial.distance")
scipy_stats = pytest.importorskip("scipy.stats")


def _data(seed: int = 0, n: int = 20, d: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_rdm_equals_scipy(metric):
    X = _data() * 3.0 + 2.0
    R = nc.rdm(X, metric=metric)
    want = distance.squareform(distance.pdist(X, metric))
    assert isinstance(R, np.ndarray) and R.shape == (20, 20) and R.dtype == np.float64
    np.testing.assert_allclose(R, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(R, R.T)
    np.testing.assert_array_equal(np.diag(R), 0.0)


def test_default_metric_is_correlation_like_rsa():
    X, Y = _data(1), _data(2, d=4)
    iu = np.triu_indices(20, 1)
    want = scipy_stats.spearmanr(nc.rdm(X)[iu], nc.rdm(Y)[iu]).statistic
    assert float(nc.rsa(X, Y)) == pytest.approx(want, abs=1e-12)


def test_duplicate_samples_are_at_distance_exactly_zero():
    X = _data(3, n=10)
    X = np.vstack([X, X[:3]]) + 1e6  # far from the origin: the Gram form loses digits
    R = nc.rdm(X, metric="euclidean")
    assert R[0, 10] == 0.0 and R[2, 12] == 0.0
    assert R[0, 1] > 0


@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1e150, 1e300])
def test_rdm_at_extreme_scales(scale):
    X = _data(4)
    np.testing.assert_allclose(nc.rdm(scale * X), nc.rdm(X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        nc.rdm(scale * X, metric="euclidean") / scale, nc.rdm(X, metric="euclidean"), rtol=1e-12
    )


def test_rdm_conv_option():
    A = np.random.default_rng(5).normal(size=(8, 3, 3, 4))
    np.testing.assert_allclose(nc.rdm(A, conv="mean"), nc.rdm(A.mean(axis=(1, 2))), atol=1e-14)


def test_rdm_torch_stays_torch_with_gradient():
    torch = pytest.importorskip("torch")
    X = torch.from_numpy(_data(6, n=8, d=4)).requires_grad_(True)
    for metric in ("correlation", "euclidean"):
        R = nc.rdm(X, metric=metric)
        assert isinstance(R, torch.Tensor) and R.shape == (8, 8)
        np.testing.assert_allclose(
            R.detach().numpy(), nc.rdm(X.detach().numpy(), metric=metric), atol=1e-14
        )
        assert torch.autograd.gradcheck(lambda a, m=metric: nc.rdm(a, metric=m), (X,))


@pytest.mark.parametrize(
    ("make", "options", "match"),
    [
        (lambda: _data()[:, 0], {}, r"2-D array of shape \(n_samples, n_features\)"),
        (lambda: _data(), {"metric": "cosine"}, r"metric must be one of .*got 'cosine'"),
        (lambda: np.full((5, 3), 0.3), {}, r"rdm is undefined: every feature of X is constant"),
        (
            lambda: np.vstack([_data(n=4, d=3), [0.7, 0.7, 0.7]]),
            {},
            r"rdm with rdm='correlation' is undefined: 1 sample\(s\) of X have the same "
            r"activation in every feature",
        ),
        (
            lambda: np.where(np.eye(5, 3) > 0, np.nan, 1.0) + _data(n=5, d=3),
            {},
            r"non-finite",
        ),
    ],
    ids=["1-D", "metric", "constant", "flat-sample", "nan"],
)
def test_rdm_bad_input(make, options, match):
    with pytest.raises(ValueError, match=match):
        nc.rdm(make(), **options)


def test_rdm_is_public():
    assert "rdm" in nc.__all__
    assert nc.rdm.__module__ == "nncompare.measures.rsa"


# ------------------------------------------------------------------ plot_rdm
@pytest.fixture(scope="module")
def mpl():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    return matplotlib


def test_plot_rdm_returns_a_figure_with_labels(mpl):
    from matplotlib.figure import Figure

    R = nc.rdm(_data(7, n=6))
    labels = [f"img{i}" for i in range(6)]
    fig = nc.plot.plot_rdm(R, labels=labels, title="layer3 RDM")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title(loc="left") == "layer3 RDM"
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    image = ax.get_images()[0]
    np.testing.assert_allclose(np.asarray(image.get_array()), R)
    assert image.norm.vmin == 0.0 and image.norm.vmax == pytest.approx(R.max())
    assert fig.axes[1].get_ylabel() == "dissimilarity"  # the colorbar
    fig.canvas.draw()


def test_plot_rdm_into_given_axes_and_torch_input(mpl):
    torch = pytest.importorskip("torch")
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    R = nc.rdm(torch.from_numpy(_data(8, n=50)))
    out = nc.plot.plot_rdm(R, ax=ax)
    assert out is fig
    assert ax.get_title(loc="left") == "RDM (50 samples)"
    assert ax.get_xlabel() == "sample"


def test_plot_rdm_many_labels_are_thinned_and_nan_is_drawn(mpl):
    R = nc.rdm(_data(9, n=90))
    R[3, 4] = R[4, 3] = math.nan
    fig = nc.plot.plot_rdm(R, labels=[f"s{i}" for i in range(90)])
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert 20 <= len(ticks) <= 40 and ticks[:2] == ["s0", "s3"]
    assert np.ma.is_masked(fig.axes[0].get_images()[0].get_array())
    fig.canvas.draw()


@pytest.mark.parametrize(
    ("rdm", "options", "match"),
    [
        (np.zeros((3, 4)), {}, r"square \(n, n\) dissimilarity matrix .*got shape \(3, 4\)"),
        (np.zeros((3, 3)), {"labels": ["a", "b"]}, r"name each of the 3 samples.*got 2 labels"),
        (np.full((3, 3), np.inf), {}, r"infinite values"),
    ],
    ids=["non-square", "labels", "inf"],
)
def test_plot_rdm_bad_input(mpl, rdm, options, match):
    with pytest.raises(ValueError, match=match):
        nc.plot.plot_rdm(rdm, **options)
