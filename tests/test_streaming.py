"""Streaming statistics: every streaming measure fed batch by batch equals the in-memory one.

``nc.Moments`` / ``nc.JointMoments`` hold means and centred co-moments (memory independent
of the number of samples); feeding them in any batch split, or merging accumulators of
disjoint parts, must give the in-memory value and details to rounding.
"""

from __future__ import annotations

import gc
import inspect
import itertools
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nncompare as nc

STREAMING = sorted(n for n, i in nc.measures.available("activations").items() if i.streaming)
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RTOL = 1e-10
ATOL = 1e-11


def test_streaming_set():
    assert STREAMING == sorted(
        ["cca", "cca_r2", "svcca", "pwcca", "cka", "lr_r2", "procrustes", "shape"]
    )
    for name, info in nc.measures.available("activations").items():
        if info.streaming:
            continue
        X, Y = make_pair(0, 40, 3, 3)
        with pytest.raises(TypeError):
            nc.measures.compute(nc.Moments().update(X, Y), None, name)


# ---------------------------------------------------------------------- data
def make_pair(seed: int, n: int, d1: int, d2: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d1)) * rng.uniform(0.5, 3.0, size=d1) + rng.normal(size=d1)
    Y = X @ rng.normal(size=(d1, d2)) / math.sqrt(d1) + rng.normal(size=(n, d2)) + 2.0
    return X, Y


@st.composite
def split_data(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """A correlated pair, batch sizes covering all rows (1-sample batches included), a cut."""
    seed = draw(st.integers(0, 2**32 - 1))
    d1 = draw(st.integers(2, 7))
    d2 = draw(st.integers(2, 7))
    n = draw(st.integers(4 * (d1 + d2), 120))
    sizes = draw(st.lists(st.sampled_from([1, 1, 2, 3, 5, 8, 13, 30]), min_size=1, max_size=40))
    bounds = [0]
    for s in sizes:
        if bounds[-1] + s >= n:
            break
        bounds.append(bounds[-1] + s)
    bounds.append(n)
    cut = draw(st.integers(1, n - 1))
    X, Y = make_pair(seed, n, d1, d2)
    return X, Y, bounds, cut


def feed(X: np.ndarray, Y: np.ndarray, bounds: list[int], **kw) -> nc.Moments:
    m = nc.Moments(**kw)
    for a, b in itertools.pairwise(bounds):
        assert m.update(X[a:b], Y[a:b]) is m
    return m


# ---------------------------------------------------------------------- comparisons
def close(a, b, rtol: float = RTOL, atol: float = ATOL) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol, atol)


def close_up_to_sign(A, B, rtol: float = 1e-8) -> None:
    """Columns equal up to a per-column sign (canonical directions are defined up to sign)."""
    A, B = np.asarray(A), np.asarray(B)
    signs = np.sign(np.sum(A * B, axis=0))
    np.testing.assert_allclose(A * signs, B, rtol=rtol, atol=rtol * np.abs(B).max())


CASES = [(name, {}) for name in STREAMING] + [
    ("shape", {"alpha": 0.0}),
    ("shape", {"alpha": 0.5}),
    ("svcca", {"dims": 2}),
    ("svcca", {"variance": 0.9}),
    ("pwcca", {"symmetric": True}),
]


def compare(name: str, options: dict, streamed, X, Y, rtol: float = RTOL) -> None:
    f = getattr(nc, name)
    got = f(streamed, **options)
    want = f(X, Y, **options)
    assert type(got) is type(want)
    assert got.n_samples == want.n_samples == X.shape[0]
    close(float(got), float(want), rtol)
    if name in ("cca", "cca_r2", "svcca"):
        close(got.rho, want.rho, rtol)
        assert (got.rank_x, got.rank_y) == (want.rank_x, want.rank_y)
        # directions are unique up to sign when the correlations are distinct
        rho = np.asarray(want.rho)
        if rho.size < 2 or np.min(-np.diff(rho)) > 1e-3:
            close_up_to_sign(got.directions_x, want.directions_x)
            close_up_to_sign(got.directions_y, want.directions_y)
    if name == "svcca":
        assert (got.kept_dims_x, got.kept_dims_y) == (want.kept_dims_x, want.kept_dims_y)
        close(got.variance_explained_x, want.variance_explained_x, rtol)
        close(got.variance_explained_y, want.variance_explained_y, rtol)
    if name == "pwcca":
        close(got.rho, want.rho, rtol)
        close(got.weights, want.weights, rtol)
        if options.get("symmetric"):
            close(got.weights_y, want.weights_y, rtol)
    if name == "cka":
        for attr in ("hsic_xy", "hsic_xx", "hsic_yy"):
            close(getattr(got, attr), getattr(want, attr), rtol)
    if name == "lr_r2":
        close(got.coef, want.coef, 1e-8, 1e-9)
        close(got.intercept, want.intercept, 1e-8, 1e-9)
        close(got.r2_per_feature, want.r2_per_feature, rtol)
        assert got.rank_x == want.rank_x
    if name in ("procrustes", "shape"):
        close(got.angular, want.angular, 1e-8)
        close(got.rotation, want.rotation, 1e-7, 1e-8)
    if name == "procrustes":
        close(got.euclidean, want.euclidean, 1e-8)


# ---------------------------------------------------------------------- Moments
@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}-{o}" for n, o in CASES])
@SETTINGS
@given(data=split_data())
def test_streaming_equals_in_memory(name, options, data):
    X, Y, bounds, cut = data
    m = feed(X, Y, bounds)
    assert m.n == X.shape[0]
    compare(name, options, m, X, Y)
    # two accumulators of disjoint parts, merged
    a = feed(X[:cut], Y[:cut], [0, *[b for b in bounds if 0 < b < cut], cut])
    b = nc.Moments().update(X[cut:], Y[cut:])
    assert a.merge(b) is a
    assert a.n == X.shape[0]
    compare(name, options, a, X, Y)


def test_one_sample_batches():
    X, Y = make_pair(1, 40, 3, 4)
    m = nc.Moments()
    for i in range(40):
        m.update(X[i : i + 1], Y[i : i + 1])
    for name in STREAMING:
        compare(name, {}, m, X, Y)
    # merging single-sample accumulators pairwise (a tree of merges)
    parts = [nc.Moments().update(X[i : i + 1], Y[i : i + 1]) for i in range(40)]
    while len(parts) > 1:
        parts = [
            parts[i].merge(parts[i + 1]) if i + 1 < len(parts) else parts[i]
            for i in range(0, len(parts), 2)
        ]
    for name in STREAMING:
        compare(name, {}, parts[0], X, Y)


def test_moments_match_numpy_and_hold_d_by_d_arrays():
    shapes = []
    for n in (50, 500):
        X, Y = make_pair(2, n, 5, 3)
        m = feed(X, Y, [0, *range(7, n, 7), n])
        close(m.mean_x, X.mean(0))
        close(m.mean_y, Y.mean(0))
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        close(m.cxx, Xc.T @ Xc, 1e-12, 1e-10)
        close(m.cyy, Yc.T @ Yc, 1e-12, 1e-10)
        close(m.cxy, Xc.T @ Yc, 1e-12, 1e-10)
        close(m.min_x, X.min(0), 0, 0)
        close(m.max_y, Y.max(0), 0, 0)
        assert (m.d1, m.d2) == (5, 3)
        attrs = ("mean_x", "mean_y", "cxx", "cyy", "cxy", "min_x", "max_x", "min_y", "max_y")
        shapes.append({a: getattr(m, a).shape for a in attrs})
        assert m._joint.comoment.shape == (8, 8)
    assert shapes[0] == shapes[1]
    assert shapes[0]["cxx"] == (5, 5) and shapes[0]["cxy"] == (5, 3)
    assert shapes[0]["mean_x"] == (5,)


class _KeepsEverything:
    """A deliberately wrong accumulator that stores its batches (the control below)."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    def update(self, X: np.ndarray, Y: np.ndarray) -> _KeepsEverything:
        self.parts.append(np.hstack([X, Y]))
        return self

    def compute(self) -> None:
        pass


class _Joint(nc.JointMoments):
    """JointMoments fed two blocks through the (X, Y) interface of the others."""

    def update(self, X: np.ndarray, Y: np.ndarray) -> _Joint:  # type: ignore[override]
        return super().update({"x": X, "y": Y})

    def compute(self) -> list[float]:
        return [float(getattr(nc, name)(self.pair("x", "y"))) for name in STREAMING]


class _Moments(nc.Moments):
    def compute(self) -> list[float]:
        return [float(getattr(nc, name)(self)) for name in STREAMING]


ACCUMULATORS = {
    "Moments": _Moments,
    "JointMoments": _Joint,
    "MinibatchCKA": nc.MinibatchCKA,
    "MinibatchCKA-rbf": lambda: nc.MinibatchCKA("rbf"),
}


def _peak_bytes(make, n: int, batch: int = 250) -> int:
    """Peak traced allocation while streaming n rows in fixed batches and computing the
    measures; the data are made before tracing starts."""
    X, Y = make_pair(12, n, 8, 6)
    gc.collect()
    tracemalloc.start()
    try:
        acc = make()
        for lo in range(0, n, batch):
            acc.update(X[lo : lo + batch], Y[lo : lo + batch])
        acc.compute()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", list(ACCUMULATORS))
def test_streaming_memory_does_not_grow_with_n(kind):
    """Peak memory (numpy allocations, tracemalloc) of streaming 40k rows is that of 10k rows
    with the batch size fixed: nothing proportional to n is kept. The control shows that the
    measurement does see an accumulator that keeps its batches."""
    make = ACCUMULATORS[kind]
    _peak_bytes(make, 1_000)  # first calls import and cache; not part of the comparison
    small = _peak_bytes(make, 10_000)
    big = _peak_bytes(make, 40_000)
    assert big < 1.5 * small + 64 * 1024, (small, big)
    leak_small = _peak_bytes(_KeepsEverything, 10_000)
    leak_big = _peak_bytes(_KeepsEverything, 40_000)
    assert leak_big - leak_small > 0.9 * 30_000 * 14 * 8  # 14 float64 columns per row
    assert leak_big > 1.5 * leak_small + 64 * 1024


def test_large_offsets_stay_accurate():
    """Centred (Chan et al.) merging: +1e6 offsets do not cost precision."""
    rng = np.random.default_rng(3)
    X, Y = make_pair(3, 400, 6, 4)
    sizes = rng.integers(1, 20, size=400)
    bounds = sorted({0, 400, *np.cumsum(sizes)[np.cumsum(sizes) < 400].tolist()})
    m = feed(X + 1e6, Y - 1e6, bounds)
    close(m.mean_x, X.mean(0) + 1e6, 1e-14)
    Xc = X - X.mean(0)
    close(m.cxx, Xc.T @ Xc, 1e-9, 1e-8)
    for name in STREAMING:
        # against the unshifted in-memory value: translation invariance + accuracy
        assert float(getattr(nc, name)(m)) == pytest.approx(float(getattr(nc, name)(X, Y)), 1e-9)


def test_float32_inputs_accumulated_in_float64():
    """precision="float64" is the exact path for float32 inputs (the default "auto" forms
    float32 products: tests/test_precision.py)."""
    X, Y = make_pair(4, 200, 5, 4)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    m = feed(X32, Y32, [0, 17, 18, 100, 200], precision="float64")
    assert m.product_precision == "float64"
    for attr in ("mean_x", "cxx", "cyy", "cxy"):
        assert getattr(m, attr).dtype == np.float64
    X64, Y64 = X32.astype(np.float64), Y32.astype(np.float64)
    for name in STREAMING:
        r = getattr(nc, name)(m)
        assert np.asarray(r.value).dtype == np.float64
        assert float(r) == pytest.approx(float(getattr(nc, name)(X64, Y64)), rel=1e-10)
        # and in memory, float32 arrays are computed in float64 too
        fn = getattr(nc, name)
        exact = {"precision": "float64"} if "precision" in inspect.signature(fn).parameters else {}
        assert float(fn(X32, Y32, **exact)) == pytest.approx(float(r), rel=1e-10)


def test_update_errors():
    X, Y = make_pair(5, 30, 4, 3)
    m = nc.Moments().update(X[:10], Y[:10])
    with pytest.raises(ValueError, match="layout"):
        m.update(X[10:20, :3], Y[10:20])
    with pytest.raises(ValueError, match="layout"):
        m.update(X[10:20], np.hstack([Y[10:20], Y[10:20]]))
    with pytest.raises(ValueError, match="same samples"):
        m.update(X[10:20], Y[10:19])
    with pytest.raises(ValueError, match="2-D"):
        m.update(X[10], Y[10])
    with pytest.raises(ValueError, match="non-finite"):
        m.update(np.full((2, 4), np.nan), Y[:2])
    # the failed updates left the accumulator untouched
    assert m.n == 10
    compare("cca", {}, m.update(X[10:], Y[10:]), X, Y)
    with pytest.raises(ValueError, match="empty"):
        nc.cca(nc.Moments())
    with pytest.raises(TypeError):
        nc.cca(m, Y)


def test_merge_errors():
    X, Y = make_pair(6, 30, 4, 3)
    a = nc.Moments().update(X, Y)
    with pytest.raises(ValueError):
        a.merge(nc.Moments().update(X[:, :3], Y))
    with pytest.raises(ValueError):
        a.merge(nc.Moments().update(X, Y[:, :2]))
    with pytest.raises(TypeError):
        a.merge(nc.JointMoments())
    j1 = nc.JointMoments().update({"a": X, "b": Y})
    with pytest.raises(ValueError):
        j1.merge(nc.JointMoments().update({"a": X, "c": Y}))
    with pytest.raises(ValueError):
        j1.merge(nc.JointMoments().update({"b": Y, "a": X}))
    with pytest.raises(ValueError):
        j1.merge(nc.JointMoments().update({"a": X[:, :2], "b": Y}))
    # merging an empty accumulator is a no-op, into an empty one a copy
    assert a.merge(nc.Moments()).n == 30
    e = nc.Moments().merge(a)
    assert e.n == 30
    compare("cca", {}, e, X, Y)


# ---------------------------------------------------------------------- JointMoments
LAYERS = {"a": 3, "b": 5, "c": 2, "d": 4}
JOINT_MEASURES = [
    ("cca", {}),
    ("cca_r2", {}),
    ("svcca", {}),
    ("pwcca", {}),
    ("cka", {}),
    ("lr_r2", {}),
    ("procrustes", {}),
    ("shape", {"alpha": 0.5}),
]


def make_layers(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    return {
        k: z @ rng.normal(size=(4, d)) + rng.normal(size=(n, d)) + rng.normal(size=d)
        for k, d in LAYERS.items()
    }


def feed_joint(acts: dict[str, np.ndarray], bounds: list[int]) -> nc.JointMoments:
    jm = nc.JointMoments()
    for lo, hi in itertools.pairwise(bounds):
        assert jm.update({k: v[lo:hi] for k, v in acts.items()}) is jm
    return jm


def test_joint_moments_pairs_match_in_memory():
    acts = make_layers(0, 150)
    jm = feed_joint(acts, [0, 1, 9, 40, 41, 100, 150])
    assert jm.names == list(LAYERS)
    assert jm.dims == LAYERS
    assert jm.comoment.shape == (14, 14)
    np.testing.assert_allclose(jm.covariance("b"), np.cov(acts["b"], rowvar=False), rtol=1e-12)
    for a in LAYERS:
        for b in LAYERS:
            if a == b:
                continue
            view = jm.pair(a, b)
            assert view.names == (a, b)
            for name, options in JOINT_MEASURES:
                compare(name, options, view, acts[a], acts[b])
    with pytest.raises(KeyError, match="no layer"):
        jm.pair("a", "zz")
    with pytest.raises(TypeError, match="pair"):
        nc.cca(jm)


def test_joint_moments_merge():
    acts = make_layers(1, 120)
    first = feed_joint({k: v[:70] for k, v in acts.items()}, [0, 5, 6, 70])
    second = feed_joint({k: v[70:] for k, v in acts.items()}, [0, 1, 50])
    assert first.merge(second) is first
    assert first.n == 120
    whole = feed_joint(acts, [0, 120])
    close(first.mean, whole.mean, 1e-13)
    close(first.comoment, whole.comoment, 1e-11, 1e-10)
    for a, b in (("a", "b"), ("d", "c"), ("b", "d")):
        for name, options in JOINT_MEASURES:
            compare(name, options, first.pair(a, b), acts[a], acts[b])
    # into an empty accumulator
    empty = nc.JointMoments().merge(whole)
    assert empty.names == list(LAYERS)
    compare("cca", {}, empty.pair("a", "c"), acts["a"], acts["c"])


def test_pair_view_cache_is_invalidated_by_updates():
    acts = make_layers(2, 100)
    jm = feed_joint({k: v[:50] for k, v in acts.items()}, [0, 50])
    half = float(nc.cca(jm.pair("a", "b")))  # fills the per-layer whitening cache
    jm.update({k: v[50:] for k, v in acts.items()})
    full = nc.cca(jm.pair("a", "b"))
    assert float(full) != pytest.approx(half, rel=1e-6)
    compare("cca", {}, jm.pair("a", "b"), acts["a"], acts["b"])


def test_moments_merge_with_pair_view():
    acts = make_layers(3, 100)
    X, Y = acts["b"], acts["d"]
    jm = feed_joint({k: v[:60] for k, v in acts.items()}, [0, 30, 60])
    rest = nc.Moments().update(X[60:], Y[60:])
    # a Moments absorbing a view
    m = nc.Moments().update(X[60:], Y[60:])
    m.merge(jm.pair("b", "d"))
    assert m.n == 100
    for name, options in JOINT_MEASURES:
        compare(name, options, m, np.vstack([X[60:], X[:60]]), np.vstack([Y[60:], Y[:60]]))
    # an empty Moments absorbing a view is a copy of it
    e = nc.Moments().merge(jm.pair("b", "d"))
    compare("cca", {}, e, X[:60], Y[:60])
    # a view absorbing a Moments: must hold all 100 samples, not just the absorbed ones
    view = jm.pair("b", "d")
    view.merge(rest)
    assert view.n == 100
    compare("cca", {}, view, X, Y)


def test_swapped_moments():
    X, Y = make_pair(7, 80, 5, 3)
    m = nc.Moments().update(X, Y)
    s = m.swapped()
    assert float(nc.lr_r2(s)) == pytest.approx(float(nc.lr_r2(Y, X)), rel=1e-10)
    assert float(nc.pwcca(s)) == pytest.approx(float(nc.pwcca(Y, X)), rel=1e-10)


def test_torch_batches_accumulate():
    torch = pytest.importorskip("torch")
    X, Y = make_pair(8, 90, 4, 3)
    m = nc.Moments()
    for lo in range(0, 90, 13):
        m.update(torch.from_numpy(X[lo : lo + 13]), torch.from_numpy(Y[lo : lo + 13]))
    assert isinstance(m.cxx, torch.Tensor) and m.cxx.dtype == torch.float64
    for name in STREAMING:
        r = getattr(nc, name)(m)
        assert isinstance(r.value, torch.Tensor)
        assert float(r) == pytest.approx(float(getattr(nc, name)(X, Y)), rel=1e-10)
    with pytest.raises(TypeError, match="one array library"):
        m.update(X[:5], Y[:5])


# ---------------------------------------------------------------------- MinibatchCKA
def test_minibatch_cka_single_batch_is_debiased_cka():
    X, Y = make_pair(9, 120, 6, 5)
    mb = nc.MinibatchCKA().update(X, Y)
    r = mb.compute()
    assert float(r) == pytest.approx(float(nc.cka_debiased(X, Y)), rel=1e-10)
    assert float(r.hsic_xy) == pytest.approx(float(nc.cka_debiased(X, Y).hsic_xy), rel=1e-10)
    assert r.n_samples == 120
    rbf = nc.MinibatchCKA("rbf", threshold=0.7).update(X, Y).compute()
    assert float(rbf) == pytest.approx(
        float(nc.cka_rbf(X, Y, threshold=0.7, debiased=True)), rel=1e-10
    )


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_minibatch_cka_merge_equals_sequential(kernel):
    X, Y = make_pair(10, 300, 6, 5)
    seq = nc.MinibatchCKA(kernel)
    parts = [nc.MinibatchCKA(kernel), nc.MinibatchCKA(kernel)]
    for i, lo in enumerate(range(0, 300, 50)):
        seq.update(X[lo : lo + 50], Y[lo : lo + 50])
        parts[i % 2].update(X[lo : lo + 50], Y[lo : lo + 50])
    merged = nc.MinibatchCKA(kernel).merge(parts[0]).merge(parts[1])
    assert merged.n == seq.n == 300
    assert merged.n_batches == seq.n_batches == 6
    assert float(merged.compute()) == pytest.approx(float(seq.compute()), rel=1e-12)
    # batch-averaged unbiased HSIC: close to the full-data debiased value, not identical
    if kernel == "linear":
        assert float(seq.compute()) == pytest.approx(float(nc.cka_debiased(X, Y)), abs=0.05)


def test_minibatch_cka_errors():
    with pytest.raises(ValueError, match="empty"):
        nc.MinibatchCKA().compute()
    with pytest.raises(ValueError):
        nc.MinibatchCKA().merge(nc.MinibatchCKA("rbf"))
    with pytest.raises(ValueError):
        nc.MinibatchCKA("polynomial")
    X, Y = make_pair(11, 10, 2, 2)
    with pytest.raises(ValueError):
        nc.MinibatchCKA().update(X[:3], Y[:3])  # the unbiased estimator needs n >= 4
