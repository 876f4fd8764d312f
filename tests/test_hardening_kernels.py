"""Hardening of the kernel, RSA, k-NN and covariance measures (issue 6 items 4, 8, 10, 11, 17;
issue 7 item 8).

* constant layers relative to their scale raise the documented error (``cka_rbf``, ``rsa``,
  ``mutual_knn``), where before the rounding of their column means gave a number;
* RSA ties decided by rounding no longer change with the scale of the inputs, and the ranks
  are scipy's average ranks (vectorised);
* Spearman RSA and mutual k-NN refuse ``backward()`` with a clear error; Pearson RSA keeps
  its gradient;
* float32 rank-deficient covariances are accepted (PSD tolerance relative to the dtype);
* the O(n²) measures estimate their memory first and refuse what will not fit.

Oracles are independent of nncompare: scipy's ``rankdata``, ``spearmanr``, ``pearsonr`` and
``pdist``, and exact integer arithmetic.
"""

from __future__ import annotations

import importlib
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nncompare as nc
from nncompare.measures import _kernels as kern

# the module, not the function nncompare.measures.rsa that shadows it
rsa_mod = importlib.import_module("nncompare.measures.rsa")

scipy_stats = pytest.importorskip("scipy.stats")
distance = pytest.importorskip("scipy.spatial.distance")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _normal(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


# ------------------------------------------------------------------ item 4: constant layers
CONSTANT_CASES = [
    ("cka_rbf", r"cka_rbf is undefined: every feature of {side} is constant over the 30 samples"),
    ("rsa", r"rsa is undefined: every feature of {side} is constant over the 30 samples"),
    (
        "mutual_knn",
        r"mutual_knn is undefined: every feature of {side} is constant over the 30 samples",
    ),
]


@pytest.mark.parametrize(("name", "match"), CONSTANT_CASES, ids=[c[0] for c in CONSTANT_CASES])
@pytest.mark.parametrize("value", [0.3, 0.1, 1e8 + 0.1, -7.7e-200])
def test_constant_layer_whose_mean_does_not_round_is_refused(name, match, value):
    """Issue 6 item 4: cka_rbf(normal(30, 5), full((30, 4), 0.3)) gave 0.49."""
    X = _normal(0, 30, 5)
    C = np.full((30, 4), value)
    fn = getattr(nc, name)
    with pytest.raises(ValueError, match=match.format(side="Y")):
        fn(X, C)
    with pytest.raises(ValueError, match=match.format(side="X")):
        fn(C, X)
    # columns with different constants, and the rdm='euclidean' path of rsa
    C2 = C + np.array([0.1, 0.2, 0.3, 0.4]) * abs(value)
    with pytest.raises(ValueError, match=match.format(side="Y")):
        fn(X, C2, **({"rdm": "euclidean"} if name == "rsa" else {}))
    # torch, float32
    with pytest.raises(ValueError, match=match.format(side="Y")):
        fn(torch.from_numpy(X), torch.from_numpy(C).float())


@pytest.mark.parametrize(("name", "match"), CONSTANT_CASES, ids=[c[0] for c in CONSTANT_CASES])
def test_layer_constant_up_to_rounding_is_refused(name, match):
    """Variation of a couple of ulps (e.g. a float32 sum in another order) is constancy."""
    X = _normal(1, 30, 5)
    C = np.full((30, 3), np.float32(0.3), dtype=np.float32)
    C[::3, 1] = np.nextafter(np.float32(0.3), np.float32(1.0))
    with pytest.raises(ValueError, match=match.format(side="Y")):
        getattr(nc, name)(X, C)


def test_small_but_real_variation_is_not_constant():
    X = _normal(2, 40, 4)
    Y = 1.0 + 1e-9 * _normal(3, 40, 3)  # variation 1e-9, far above rounding of 1.0
    for name in ("cka_rbf", "rsa", "mutual_knn"):
        assert math.isfinite(float(getattr(nc, name)(X, Y)))


def test_rbf_ignores_a_constant_column_exactly():
    """0.3 repeated does not centre to exactly 0; the column must not leak into distances."""
    X = _normal(4, 40, 5)
    Y = _normal(5, 40, 3)
    Yc = np.column_stack([Y, np.full(40, 0.3)])
    Ybig = Y * 1e-9  # tiny features next to a constant one of size 0.3
    Ybig_c = np.column_stack([Ybig, np.full(40, 0.3)])
    for debiased in (False, True):
        want = float(nc.cka_rbf(X, Y, debiased=debiased))
        assert float(nc.cka_rbf(X, Yc, debiased=debiased)) == pytest.approx(want, rel=1e-12)
        assert float(nc.cka_rbf(X, Ybig_c, debiased=debiased)) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("scale", [1e-150, 1e-40, 3.7, 1e40, 1e150])
def test_rbf_and_knn_are_scale_and_translation_invariant(scale):
    X = _normal(6, 50, 5)
    Y = X[:, :3] @ _normal(7, 3, 4) + _normal(8, 50, 4)
    for debiased in (False, True):
        want = float(nc.cka_rbf(X, Y, debiased=debiased))
        got = float(nc.cka_rbf(scale * X, Y / scale + 5.0 / scale, debiased=debiased))
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12)
    for metric in ("cosine", "euclidean"):
        want = float(nc.mutual_knn(X, Y, k=5, metric=metric))
        assert float(nc.mutual_knn(scale * X, Y / scale, k=5, metric=metric)) == want


# ------------------------------------------------------------------ item 8: ties and scaling
def _spearman_oracle(dx: np.ndarray, dy: np.ndarray) -> float:
    return float(scipy_stats.spearmanr(dx, dy).statistic)


def test_two_feature_rdm_ties_do_not_depend_on_scale():
    """Issue 6 item 8: with two features every correlation distance is 0 or 2 in exact
    arithmetic; the ranks of the rounded values used to change with the scale of X."""
    X = _normal(10, 40, 2)
    Y = _normal(11, 40, 6)
    # exact RDM: the centred 2-vectors are ±(a, -a), so distance 0 iff same sign of x1 - x2
    s = np.sign(X[:, 0] - X[:, 1])
    exact = np.where(s[:, None] == s[None, :], 0.0, 2.0)[np.triu_indices(40, 1)]
    want = _spearman_oracle(exact, distance.pdist(Y, "correlation"))
    for a in (1.0, 1e-3, 7.3, 0.1, 1e100, 1e-150, 3.0e150):
        assert float(nc.rsa(a * X, Y)) == pytest.approx(want, abs=1e-12)
        assert float(nc.rsa(X, a * Y)) == pytest.approx(want, abs=1e-12)


@st.composite
def tie_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with ties: integer-valued features, duplicated samples, or two features."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(6, 30))
    kind = draw(st.sampled_from(["integers", "duplicates", "two_features", "offset"]))
    d1, d2 = draw(st.integers(2, 6)), draw(st.integers(3, 6))
    if kind == "integers":
        X = rng.integers(-3, 4, size=(n, d1)).astype(float)
        Y = rng.integers(-2, 3, size=(n, d2)).astype(float)
    elif kind == "duplicates":
        X = rng.normal(size=(n // 2, d1))[rng.integers(0, n // 2, size=n)]
        Y = rng.normal(size=(n, d2))
    elif kind == "two_features":
        X = rng.normal(size=(n, 2))
        Y = rng.normal(size=(n, d2))
    else:  # data far from the origin, integer grid: exact distance ties
        X = 1e3 + rng.integers(0, 3, size=(n, d1)).astype(float)
        Y = rng.normal(size=(n, d2))
    return X, Y


def _defined(X: np.ndarray, Y: np.ndarray, **options) -> float | None:
    try:
        return float(nc.rsa(X, Y, **options))
    except ValueError:
        return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=tie_pairs(),
    ea=st.integers(-150, 150),
    eb=st.integers(-150, 150),
    ma=st.floats(1.0, 9.99),
    mb=st.floats(1.0, 9.99),
    rdm=st.sampled_from(["correlation", "euclidean"]),
    compare=st.sampled_from(["spearman", "pearson"]),
)
def test_rsa_is_scale_invariant_with_ties(pair, ea, eb, ma, mb, rdm, compare):
    """rsa(a X, b Y) == rsa(X, Y) for a, b in 1e-150 .. 1e150, ties included."""
    X, Y = pair
    want = _defined(X, Y, rdm=rdm, compare=compare)
    assume(want is not None)  # e.g. a sample constant across features (correlation RDM)
    a, b = ma * 10.0**ea, mb * 10.0**eb
    got = float(nc.rsa(a * X, b * Y, rdm=rdm, compare=compare))
    if compare == "spearman":
        assert got == want  # the same tie groups give the same ranks, bit for bit
    else:
        assert got == pytest.approx(want, abs=1e-12)


def test_integer_ties_equal_scipy_on_exact_distances():
    """Euclidean RDMs of integer data have exact ties; Spearman must average them."""
    rng = np.random.default_rng(12)
    X = rng.integers(0, 3, size=(25, 3))
    Y = rng.integers(-2, 2, size=(25, 4))
    want = _spearman_oracle(distance.pdist(X, "sqeuclidean"), distance.pdist(Y, "sqeuclidean"))
    assert float(nc.rsa(X, Y, rdm="euclidean")) == pytest.approx(want, abs=1e-12)
    assert float(nc.rsa(X * 0.1 + 1e5, Y * 3.3e-7, rdm="euclidean")) == pytest.approx(
        want, abs=1e-12
    )


def test_rsa_equals_scipy_without_ties():
    X, Y = _normal(13, 30, 6), _normal(14, 30, 4)
    for metric in ("correlation", "euclidean"):
        dx, dy = distance.pdist(X, metric), distance.pdist(Y, metric)
        assert float(nc.rsa(X, Y, rdm=metric)) == pytest.approx(_spearman_oracle(dx, dy), abs=1e-12)
        assert float(nc.rsa(X, Y, rdm=metric, compare="pearson")) == pytest.approx(
            float(scipy_stats.pearsonr(dx, dy).statistic), abs=1e-12
        )


def test_constant_rdm_is_refused_with_the_layer_named():
    # every sample at the same distance from every other (a regular simplex)
    X = np.eye(6)
    with pytest.raises(ValueError, match=r"the RDM of X is constant .*up to rounding"):
        nc.rsa(X * 0.1, _normal(15, 6, 3), rdm="euclidean")


# ------------------------------------------------------------------ issue 7 item 8: ranks
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("levels", [3, 50, 10_000])
def test_rank_equals_scipy_rankdata(backend, levels):
    rng = np.random.default_rng(levels)
    v = rng.integers(0, levels, size=5000).astype(np.float64)
    want = scipy_stats.rankdata(v, method="average")
    import array_api_compat

    a = torch.from_numpy(v) if backend == "torch" else v
    xp = array_api_compat.array_namespace(a)
    got = rsa_mod._rank(xp, a)
    assert type(got) is type(a)
    np.testing.assert_array_equal(np.asarray(got), want)


def test_rank_tolerance_ties_near_equal_values():
    import array_api_compat

    v = np.array([1.0, 1.0 + 1e-15, 2.0, 1.0 - 1e-15, 3.0, 2.0 + 5e-16])
    got = rsa_mod._rank(array_api_compat.array_namespace(v), v, 1e-14)
    np.testing.assert_array_equal(got, [2.0, 2.0, 4.5, 2.0, 6.0, 4.5])


# ------------------------------------------------------------------ item 10: gradients
def test_spearman_rsa_backward_raises_a_clear_error():
    X = torch.from_numpy(_normal(20, 30, 5)).requires_grad_(True)
    Y = torch.from_numpy(_normal(21, 30, 4))
    r = nc.rsa(X, Y)
    assert float(r) == pytest.approx(float(nc.rsa(X.detach().numpy(), Y.numpy())), abs=1e-14)
    with pytest.raises(RuntimeError, match=r"compare='spearman' has no gradient.*'pearson'"):
        r.value.backward()
    with pytest.raises(RuntimeError, match=r"compare='spearman' has no gradient"):
        torch.autograd.grad(nc.rsa(X, Y, rdm="euclidean").value, X)
    # without requires_grad nothing changes
    assert not nc.rsa(X.detach(), Y).value.requires_grad


def test_mutual_knn_backward_raises_a_clear_error():
    X = torch.from_numpy(_normal(22, 30, 5)).requires_grad_(True)
    r = nc.mutual_knn(X, torch.from_numpy(_normal(23, 30, 4)), k=4)
    with pytest.raises(RuntimeError, match=r"mutual_knn has no gradient: neighbour sets"):
        r.value.backward()


@pytest.mark.parametrize("rdm", ["correlation", "euclidean"])
def test_pearson_rsa_keeps_its_gradient(rdm):
    X = torch.from_numpy(_normal(24, 12, 4)).requires_grad_(True)
    Y = torch.from_numpy(_normal(25, 12, 3)).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: nc.rsa(a, b, rdm=rdm, compare="pearson").value, (X, Y), eps=1e-6, atol=1e-6
    )


# ------------------------------------------------------------------ item 11: covariances
def _rank_deficient_cov(dtype, n=1000, d=50, r=10, seed=30):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, r)) @ rng.normal(size=(r, d))
    return np.cov(Z.astype(dtype), rowvar=False).astype(dtype), np.cov(Z, rowvar=False)


def test_float32_rank_deficient_covariances_are_accepted():
    """Issue 6 item 11: refused as 'not PSD (-6.7e-08)' before."""
    C32, C64 = _rank_deficient_cov(np.float32)
    assert np.linalg.eigvalsh(C32.astype(np.float64)).min() < 0  # the reproducer's premise
    _, B64 = _rank_deficient_cov(np.float64, seed=31)
    B32 = B64.astype(np.float32)
    for name in ("covariance_cosine", "bures_wasserstein"):
        fn = getattr(nc, name)
        want = float(fn(C64, B64))
        assert float(fn(C32, B32)) == pytest.approx(want, rel=1e-4)
        assert float(fn(torch.from_numpy(C32), torch.from_numpy(B32))) == pytest.approx(
            want, rel=1e-4
        )
    assert float(nc.covariance_cosine(C32, C32)) == pytest.approx(1.0, abs=1e-12)
    assert float(nc.covariance_cosine(C32, C32)) <= 1.0
    assert float(nc.bures_wasserstein(C32, C32)) <= 1e-10 * math.sqrt(np.trace(C64))


def test_clearly_negative_float32_covariance_is_refused():
    C32, _ = _rank_deficient_cov(np.float32)
    w, v = np.linalg.eigh(C32.astype(np.float64))
    w[0] = -1e-3 * w.max()  # far beyond float32 rounding (10 d eps ≈ 6e-5 relative)
    bad = ((v * w) @ v.T).astype(np.float32)
    with pytest.raises(ValueError, match=r"C1 must be positive semi-definite.*-[0-9.e+-]+ count"):
        nc.covariance_cosine(bad, C32)


def test_float64_tolerance_is_not_looser_than_float32():
    C32, C64 = _rank_deficient_cov(np.float32)
    w, v = np.linalg.eigh(C64)
    w[0] = -1e-6 * w.max()  # inside float32's tolerance, far outside float64's
    bad = (v * w) @ v.T
    nc.covariance_cosine(bad.astype(np.float32), C32)
    with pytest.raises(ValueError, match=r"positive semi-definite"):
        nc.covariance_cosine(bad, C64)


@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1e150, 1e300])
def test_covariance_measures_at_extreme_scales(scale):
    A, B = _normal(32, 5, 5), _normal(33, 5, 3)
    C1, C2 = A @ A.T, B @ B.T
    cos = float(nc.covariance_cosine(C1, C2))
    assert float(nc.covariance_cosine(scale * C1, scale * C2)) == pytest.approx(cos, rel=1e-12)
    bw = float(nc.bures_wasserstein(C1, C2))
    got = float(nc.bures_wasserstein(scale * C1, scale * C2))
    assert got == pytest.approx(bw * math.sqrt(scale), rel=1e-12)


def test_bures_distance_of_equal_covariances_is_rounding_small():
    A = _normal(34, 6, 6)
    C = A @ A.T
    # the trace formula cancels to sqrt(eps ‖C‖) ≈ 1e-7 here; the direct form does not
    assert float(nc.bures_wasserstein(C, C)) <= 1e-12 * math.sqrt(np.trace(C))


# ------------------------------------------------------------------ item 17: memory guard
N_BIG = 20_000


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda X, Y: nc.cka_rbf(X, Y),
            r"cka_rbf on n=20000 samples needs about 16\.4 GiB .*more than the 1\.0 GiB of the "
            r"limit set by NNCOMPARE_MAX_MEMORY\. Stream it over batches with "
            r"nc\.MinibatchCKA\(kernel='rbf'\)",
        ),
        (
            lambda X, Y: nc.cka_rbf(X, Y, debiased=True),
            r"cka_rbf on n=20000 samples needs about 22\.4 GiB .*MinibatchCKA\(kernel='rbf'\)",
        ),
        (
            lambda X, Y: nc.rsa(X, Y),
            r"rsa on n=20000 samples needs about 16\.4 GiB .*random subset.*choice\(20000, 5000",
        ),
        (lambda X, Y: nc.rdm(X), r"rdm on n=20000 samples needs about 13\.4 GiB .*subset"),
    ],
    ids=["cka_rbf", "cka_rbf-debiased", "rsa", "rdm"],
)
def test_quadratic_memory_is_refused_before_allocating(monkeypatch, call, match):
    """Issue 6 item 17: n = 20 000 used to die with MemoryError after allocating GiBs."""
    monkeypatch.setenv("NNCOMPARE_MAX_MEMORY", "1GiB")
    X, Y = _normal(40, N_BIG, 2), _normal(41, N_BIG, 2)
    tracemalloc.start()
    try:
        with pytest.raises(kern.InsufficientMemoryError, match=match):
            call(X, Y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20  # refused before any n × n array existed
    assert issubclass(kern.InsufficientMemoryError, MemoryError)


def test_memory_limit_defaults_to_available_memory(monkeypatch):
    monkeypatch.delenv("NNCOMPARE_MAX_MEMORY", raising=False)
    monkeypatch.setattr(kern, "_host_available", lambda: 2 * 2**30)
    X = _normal(42, N_BIG, 2)
    with pytest.raises(kern.InsufficientMemoryError, match=r"2\.0 GiB of available memory"):
        nc.cka_rbf(X, X)
    monkeypatch.setattr(kern, "_host_available", lambda: None)
    with pytest.raises(kern.InsufficientMemoryError, match=r"an assumed limit"):
        nc.rsa(X, X)
    # small problems pass under the same limit
    assert math.isfinite(float(nc.rsa(X[:50], X[:50])))


def test_memory_limit_setting_is_validated(monkeypatch):
    monkeypatch.setenv("NNCOMPARE_MAX_MEMORY", "lots")
    with pytest.raises(ValueError, match=r"NNCOMPARE_MAX_MEMORY must be a number of bytes.*'lots'"):
        nc.rsa(_normal(43, 10, 3), _normal(44, 10, 3))
    assert kern.parse_bytes("64GiB") == 64 * 2**30
    assert kern.parse_bytes("500 MB") == 500 * 10**6
    assert kern.parse_bytes("2e9") == 2 * 10**9


@pytest.mark.parametrize(
    ("factor", "call"),
    [
        (kern.RBF_CKA_N2_ARRAYS, lambda X, Y: nc.cka_rbf(X, Y)),
        (kern.RBF_CKA_DEBIASED_N2_ARRAYS, lambda X, Y: nc.cka_rbf(X, Y, debiased=True)),
        (kern.RSA_N2_ARRAYS, lambda X, Y: nc.rsa(X, Y)),
        (kern.RSA_N2_ARRAYS, lambda X, Y: nc.rsa(X, Y, rdm="euclidean")),
        (kern.RSA_N2_ARRAYS, lambda X, Y: nc.rsa(X, Y, compare="pearson", rdm="euclidean")),
        (kern.RDM_N2_ARRAYS, lambda X, Y: nc.rdm(X, metric="euclidean")),
        (kern.RDM_N2_ARRAYS, lambda X, Y: nc.rdm(X)),
    ],
)
def test_memory_estimates_cover_the_measured_peak(factor, call):
    n = 700
    X, Y = _normal(45, n, 8), _normal(46, n, 6)
    tracemalloc.start()
    try:
        call(X, Y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= factor * 8 * n * n
    assert peak >= 0.5 * factor * 8 * n * n  # and is not wildly pessimistic


def test_mutual_knn_never_forms_the_n_by_n_matrix(monkeypatch):
    """Similarities are formed in row blocks: the peak is far below one n × n array."""
    n = 3000
    X, Y = _normal(47, n, 6), _normal(48, n, 5)
    want = {m: float(nc.mutual_knn(X, Y, k=7, metric=m)) for m in ("cosine", "euclidean")}
    monkeypatch.setattr(rsa_mod, "KNN_CHUNK_ELEMENTS", 2**17)
    for metric in ("cosine", "euclidean"):
        tracemalloc.start()
        try:
            got = float(nc.mutual_knn(X, Y, k=7, metric=metric))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert got == want[metric]
        assert peak < 0.25 * 8 * n * n


# ------------------------------------------------------------------ k-NN ties
def _knn_oracle(X: np.ndarray, Y: np.ndarray, k: int) -> float:
    """Exact integer squared distances; neighbours ordered by (distance, index)."""
    n = X.shape[0]
    sets = []
    for A in (X, Y):
        D = ((A[:, None, :] - A[None, :, :]) ** 2).sum(-1)
        rows = []
        for i in range(n):
            cand = [j for j in range(n) if j != i]
            cand.sort(key=lambda j: (D[i, j], j))
            rows.append(set(cand[:k]))
        sets.append(rows)
    return sum(len(a & b) for a, b in zip(*sets, strict=True)) / (n * k)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mutual_knn_ties_are_broken_by_index(seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, size=(30, 3))
    Y = rng.integers(0, 2, size=(30, 4))
    want = _knn_oracle(X, Y, 5)
    for a, b, t in ((1.0, 1.0, 0.0), (1e-7, 3.3e5, 1e3), (7.1e120, 1e-130, 0.0)):
        got = float(nc.mutual_knn(a * X + t, b * Y, k=5, metric="euclidean"))
        assert got == pytest.approx(want, abs=1e-15)
