"""Property tests driven by the registry metadata (``nc.measures.available()``).

Every claim a :class:`~nncompare.measures.MeasureInfo` makes — invariances, symmetry,
value range, metric axioms — is checked on random, well-conditioned inputs drawn with
hypothesis, in the spirit of netrep's invariance tests over seeds. Claims that are *not*
made are checked too (negative checks), so that the metadata cannot be vacuous.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nncompare as nc
import oracles

ACTIVATION = nc.measures.available("activations")
COVARIANCE = nc.measures.available("covariances")
ALL_INVARIANCES = (
    "orthogonal",
    "isotropic_scaling",
    "translation",
    "invertible_linear",
    "permutation",
)

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Relative tolerance of invariance checks. The CCA family, regression and the shape
# metric work on whitened/normalised moments: the value is well conditioned for the
# inputs we draw (condition numbers <= ~10), so 1e-8 leaves ample room over roundoff.
RTOL = 1e-8
ATOL = 1e-10


# ---------------------------------------------------------------------- data
def well_conditioned(rng: np.random.Generator, d: int, spread: float = 0.7) -> np.ndarray:
    """Random d x d matrix with singular values in [exp(-spread), exp(spread)]."""
    q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q1 * np.exp(rng.uniform(-spread, spread, size=d))) @ q2


def random_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))  # Haar-distributed


def make_pair(seed: int, n: int, d1: int, d2: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Correlated pair Y = X A + noise, with non-zero means and mixed feature scales."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d1)) @ well_conditioned(rng, d1) + rng.normal(scale=3.0, size=d1)
    A = rng.normal(size=(d1, d2)) / math.sqrt(d1)
    Y = X @ A + noise * rng.normal(size=(n, d2)) + rng.normal(scale=3.0, size=d2)
    return X, Y


@st.composite
def pairs(draw: st.DrawFn, min_d: int = 2) -> tuple[np.ndarray, np.ndarray, int]:
    seed = draw(st.integers(0, 2**32 - 1))
    d1 = draw(st.integers(min_d, 12))
    d2 = draw(st.integers(min_d, 12))
    # n comfortably above 2 (d1 + d2) so that CCA is far from trivial
    n = draw(st.integers(max(60, 3 * (d1 + d2)), 200))
    noise = draw(st.floats(0.3, 1.5))
    X, Y = make_pair(seed, n, d1, d2, noise)
    return X, Y, seed


def transform(kind: str, Z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply one (random) member of an invariance class to the features of Z."""
    d = Z.shape[1]
    if kind == "orthogonal":
        return Z @ random_orthogonal(rng, d)
    if kind == "isotropic_scaling":
        return Z * 10.0 ** rng.uniform(-1.0, 1.0)  # c in [0.1, 10]
    if kind == "translation":
        return Z + rng.normal(scale=5.0, size=d)
    if kind == "invertible_linear":
        return Z @ well_conditioned(rng, d, spread=1.0)
    if kind == "permutation":
        perm = rng.permutation(d)
        while d > 1 and np.all(perm == np.arange(d)):
            perm = rng.permutation(d)
        return Z[:, perm]
    raise AssertionError(kind)


def pairs_for(name: str) -> st.SearchStrategy:
    # rsa's default correlation RDM is degenerate for 2 features: the correlation of two
    # centred 2-vectors is exactly +-1, so every dissimilarity is 0 or 2 and Spearman ranks
    # roundoff noise. Draw at least 3 features for it.
    return pairs(min_d=3) if name == "rsa" else pairs()


def value(name: str, X, Y, **options) -> float:
    return float(nc.measures.compute(X, Y, name, **options))


CLAIMED = [(name, inv) for name, info in ACTIVATION.items() for inv in sorted(info.invariances)]
NOT_CLAIMED = [
    (name, inv)
    for name, info in ACTIVATION.items()
    for inv in ALL_INVARIANCES
    if inv not in info.invariances
]


def test_registry_is_consistent():
    assert set(ACTIVATION) >= {
        "cca",
        "cca_r2",
        "svcca",
        "pwcca",
        "cka",
        "cka_debiased",
        "cka_rbf",
        "lr_r2",
        "procrustes",
        "shape",
        "rsa",
        "mutual_knn",
    }
    assert set(COVARIANCE) == {"bures_wasserstein", "covariance_cosine"}
    for name, info in nc.measures.available().items():
        assert info.invariances <= set(ALL_INVARIANCES), name
        lo, hi = info.value_range
        assert lo < hi, name
        assert callable(info.function)
        assert getattr(nc, name) is info.function
        # metrics are reported as distances through result.distance
        if info.is_metric:
            assert info.symmetric, name
        assert info.as_dict()["name"] == name


# ---------------------------------------------------------------------- invariances
@pytest.mark.parametrize(("name", "invariance"), CLAIMED)
@SETTINGS
@given(draw=st.data())
def test_claimed_invariance(name, invariance, draw):
    X, Y, seed = draw.draw(pairs_for(name))
    rng = np.random.default_rng(seed + 1)
    base = value(name, X, Y)
    Xt = transform(invariance, X, rng)
    Yt = transform(invariance, Y, rng)
    assert value(name, Xt, Yt) == pytest.approx(base, rel=RTOL, abs=ATOL)
    # and one side at a time
    assert value(name, Xt, Y) == pytest.approx(base, rel=RTOL, abs=ATOL)


@pytest.mark.parametrize(("name", "invariance"), CLAIMED)
@settings(SETTINGS, max_examples=8)
@given(draw=st.data())
def test_identity_up_to_invariance(name, invariance, draw):
    """value(X, T(X)) is the identity value for every transformation T the measure ignores."""
    X, _, seed = draw.draw(pairs_for(name))
    info = ACTIVATION[name]
    if info.value_range[1] != 1.0:
        pytest.skip("no identity value")
    Xt = transform(invariance, X, np.random.default_rng(seed + 2))
    assert value(name, X, Xt) == pytest.approx(1.0, abs=1e-9)


def _strong_transform(kind: str, Z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A transformation of the class that clearly changes a measure not claiming it."""
    d = Z.shape[1]
    if kind == "invertible_linear":
        # strongly anisotropic: singular values 1 .. 10^-1.5 (SVCCA then drops directions)
        q1 = random_orthogonal(rng, d)
        q2 = random_orthogonal(rng, d)
        return Z @ ((q1 * np.logspace(0, -1.5, d)) @ q2)
    if kind == "orthogonal":
        return Z @ random_orthogonal(rng, d)
    if kind == "translation":
        return Z + rng.normal(scale=10.0 * Z.std(), size=d)
    raise AssertionError(f"every measure claims {kind}")


@pytest.mark.parametrize(("name", "invariance"), NOT_CLAIMED)
def test_unclaimed_invariance_is_really_absent(name, invariance):
    """Negative check: the metadata is not vacuous — an unclaimed transform changes the value."""
    changes = []
    for seed in range(3):
        X, Y = make_pair(seed, 150, 8, 6, 0.8)
        rng = np.random.default_rng(100 + seed)
        base = value(name, X, Y)
        # both sides: lr_r2 is invariant to invertible maps of its predictor X, not of Y
        Xt = _strong_transform(invariance, X, rng)
        Yt = _strong_transform(invariance, Y, rng)
        changes.append(abs(value(name, Xt, Yt) - base))
    assert max(changes) > 1e-3, (name, invariance, changes)


def test_cka_not_invariant_to_anisotropic_scaling():
    X, Y = make_pair(0, 200, 6, 5, 0.5)
    scale = np.array([10.0, 1.0, 1.0, 0.1, 1.0, 3.0])
    assert abs(float(nc.cka(X * scale, Y)) - float(nc.cka(X, Y))) > 1e-2
    # while CCA does not move
    assert float(nc.cca(X * scale, Y)) == pytest.approx(float(nc.cca(X, Y)), rel=1e-10)


@SETTINGS
@given(data=pairs(), alpha=st.sampled_from([0.0, 0.5, 1.0]))
def test_shape_invariances_per_alpha(data, alpha):
    """shape(alpha=0) is invariant to invertible linear maps; every alpha to isotropic scaling."""
    X, Y, seed = data
    rng = np.random.default_rng(seed + 3)
    base = float(nc.shape(X, Y, alpha=alpha))
    for kind in ("orthogonal", "isotropic_scaling", "translation", "permutation"):
        Xt = transform(kind, X, rng)
        assert float(nc.shape(Xt, Y, alpha=alpha)) == pytest.approx(base, rel=RTOL, abs=ATOL)
    if alpha == 0.0:
        Xt = transform("invertible_linear", X, rng)
        assert float(nc.shape(Xt, Y, alpha=0.0)) == pytest.approx(base, rel=RTOL, abs=ATOL)


def test_shape_alpha_limits():
    X, Y = make_pair(3, 150, 7, 5, 0.7)
    # alpha = 1 is Procrustes
    assert float(nc.shape(X, Y, alpha=1.0)) == pytest.approx(float(nc.procrustes(X, Y)), rel=1e-12)
    # alpha = 0: cos theta = sum(rho) / sqrt(rank_x rank_y)
    r = nc.cca(X, Y)
    expect = float(np.sum(r.rho)) / math.sqrt(7 * 5)
    assert float(nc.shape(X, Y, alpha=0.0)) == pytest.approx(expect, rel=1e-10)
    # and it changes under anisotropic scaling for 0 < alpha
    scale = np.logspace(0, -1.5, 7)
    assert abs(float(nc.shape(X * scale, Y, alpha=0.5)) - float(nc.shape(X, Y, alpha=0.5))) > 1e-3


# ---------------------------------------------------------------------- symmetry, range
@pytest.mark.parametrize("name", sorted(ACTIVATION))
@SETTINGS
@given(draw=st.data())
def test_symmetry_range_identity(name, draw):
    X, Y, _ = draw.draw(pairs_for(name))
    info = ACTIVATION[name]
    r = nc.measures.compute(X, Y, name)
    v = float(r)
    lo, hi = info.value_range
    assert lo - 1e-12 <= v <= hi + 1e-12, (name, v)
    if info.symmetric:
        assert value(name, Y, X) == pytest.approx(v, rel=1e-10, abs=1e-12)
    if info.higher_is_better and hi == 1.0:
        assert value(name, X, X) == pytest.approx(1.0, abs=1e-10)
        assert value(name, Y, Y) == pytest.approx(1.0, abs=1e-10)
    if info.is_metric:
        dxx = nc.measures.compute(X, X, name).distance
        assert dxx == pytest.approx(0.0, abs=1e-6)
        assert r.distance == pytest.approx(nc.measures.compute(Y, X, name).distance, abs=1e-9)


@pytest.mark.parametrize("name", sorted(n for n, i in ACTIVATION.items() if not i.symmetric))
def test_asymmetric_measures_have_an_asymmetric_example(name):
    X, Y = make_pair(0, 150, 8, 3, 1.0)
    assert abs(value(name, X, Y) - value(name, Y, X)) > 1e-3


def test_pwcca_symmetric_option_is_symmetric():
    X, Y = make_pair(5, 150, 8, 3, 1.0)
    a = nc.pwcca(X, Y, symmetric=True)
    b = nc.pwcca(Y, X, symmetric=True)
    assert float(a) == pytest.approx(float(b), rel=1e-10)
    expect = 0.5 * (float(nc.pwcca(X, Y)) + float(nc.pwcca(Y, X)))
    assert float(a) == pytest.approx(expect, rel=1e-10)


# Options chosen so that each oracle's non-default branch changes the value (svcca keeps
# fewer directions than the features, shape whitens, ...).
ORACLE_CASES = [(name, {}) for name in sorted(ACTIVATION)] + [
    ("svcca", {"variance": 0.6}),
    ("shape", {"alpha": 0.0}),
    ("cka_rbf", {"threshold": 0.4}),
    ("mutual_knn", {"k": 4}),
]


def test_oracles_cover_every_activation_measure():
    assert set(oracles.ORACLES) == set(ACTIVATION)


@pytest.mark.parametrize(
    ("name", "options"), ORACLE_CASES, ids=[f"{n}-{o}" for n, o in ORACLE_CASES]
)
def test_similarity_matches_independent_oracle(name, options):
    """nc.similarity and the measure functions against formulas written from the papers
    (tests/oracles.py: QR/SVD of the data, explicit centring matrices, loops)."""
    X, Y = make_pair(2, 120, 5, 4, 0.5)
    want = oracles.oracle(name, X, Y, **options)
    assert nc.similarity(X, Y, name, **options) == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert float(getattr(nc, name)(X, Y, **options)) == pytest.approx(want, rel=1e-9, abs=1e-12)
    if name == "svcca" and options:
        # the option really truncated: the value differs from CCA of all directions
        assert abs(want - oracles.oracle("cca", X, Y)) > 1e-3


# ---------------------------------------------------------------------- metrics
METRIC_CASES = [("procrustes", {})] + [("shape", {"alpha": a}) for a in (0.0, 0.5, 1.0)]


@st.composite
def triples(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X, Z random and Y "between" them, so the triangle inequality is nearly tight."""
    seed = draw(st.integers(0, 2**32 - 1))
    same = draw(st.booleans())
    dims = [draw(st.integers(2, 8)) for _ in range(3)]
    if same:
        dims = [dims[0]] * 3
    n = draw(st.integers(max(60, 3 * sum(dims)), 200))
    t = draw(st.floats(0.1, 0.9))
    rng = np.random.default_rng(seed)
    d = max(dims)
    X = rng.normal(size=(n, d)) @ well_conditioned(rng, d)
    Z = rng.normal(size=(n, d)) @ well_conditioned(rng, d)
    Y = t * X + (1 - t) * Z + 0.05 * rng.normal(size=(n, d))
    return X[:, : dims[0]], Y[:, : dims[1]], Z[:, : dims[2]]


@pytest.mark.parametrize(("name", "options"), METRIC_CASES)
@SETTINGS
@given(data=triples())
def test_metric_axioms(name, options, data):
    assert ACTIVATION[name].is_metric
    X, Y, Z = data
    f = getattr(nc, name)

    def d(A, B):
        return f(A, B, **options).distance

    dxy, dyz, dxz = d(X, Y), d(Y, Z), d(X, Z)
    assert min(dxy, dyz, dxz) >= 0
    assert dxz <= dxy + dyz + 1e-7
    assert dxy <= dxz + dyz + 1e-7
    assert dyz <= dxy + dxz + 1e-7
    assert d(Y, X) == pytest.approx(dxy, abs=1e-9)
    assert d(X, X) == pytest.approx(0.0, abs=1e-6)
    # a metric on equivalence classes: zero distance to a transformed copy
    rng = np.random.default_rng(0)
    Xt = transform("orthogonal", transform("isotropic_scaling", X, rng), rng) + 1.0
    assert d(X, Xt) == pytest.approx(0.0, abs=1e-6)
    assert d(Xt, Z) == pytest.approx(dxz, abs=1e-7)


def test_procrustes_distances_consistent():
    X, Y = make_pair(4, 100, 5, 5, 1.0)
    r = nc.procrustes(X, Y)
    v = float(r)
    assert r.angular == pytest.approx(math.acos(v))
    assert r.euclidean == pytest.approx(math.sqrt(2 - 2 * v))
    # euclidean distance is attained by the returned rotation
    Xc = X - X.mean(0)
    Yc = Y - Y.mean(0)
    Xc /= np.linalg.norm(Xc)
    Yc /= np.linalg.norm(Yc)
    assert np.linalg.norm(Xc @ r.rotation - Yc) == pytest.approx(r.euclidean, rel=1e-10)


# ---------------------------------------------------------------------- debiased HSIC
def test_debiased_cka_near_zero_on_independent_data():
    rng = np.random.default_rng(0)
    # biased CKA is clearly positive for independent data when d is not << n
    A, B = rng.normal(size=(200, 50)), rng.normal(size=(200, 50))
    assert float(nc.cka(A, B)) > 0.15
    assert abs(float(nc.cka_debiased(A, B))) < 0.05
    A, B = rng.normal(size=(2000, 50)), rng.normal(size=(2000, 50))
    assert abs(float(nc.cka_debiased(A, B))) < 0.02
    assert float(nc.cka(A, B)) > 0.01
    mb = nc.MinibatchCKA()
    for s in range(0, 2000, 200):
        mb.update(A[s : s + 200], B[s : s + 200])
    assert abs(float(mb.compute())) < 0.02
    # while every batch's biased CKA is large
    assert float(nc.cka(A[:200], B[:200])) > 0.15


def test_debiased_hsic_matches_song_eq5_oracle():
    """cka_debiased's HSIC equals Song et al. 2012 eq. 5, evaluated by the loops of
    tests/oracles.py on uncentred Gram matrices, and the O(n⁴) U-statistic it stands for."""
    X, Y = make_pair(7, 9, 4, 3, 1.0)
    K, L = X @ X.T, Y @ Y.T
    hxy = oracles.hsic1_eq5(K, L)
    # eq. 5 is the U-statistic over distinct quadruples (an independent check of the oracle)
    assert hxy == pytest.approx(oracles.hsic1_ustatistic(K, L), rel=1e-9)
    hxx, hyy = oracles.hsic1_eq5(K, K), oracles.hsic1_eq5(L, L)
    r = nc.cka_debiased(X, Y)
    assert float(r.hsic_xy) == pytest.approx(hxy, rel=1e-9)
    assert float(r.hsic_xx) == pytest.approx(hxx, rel=1e-9)
    assert float(r.hsic_yy) == pytest.approx(hyy, rel=1e-9)
    assert float(r) == pytest.approx(hxy / math.sqrt(hxx * hyy), rel=1e-9)
    # the Gram-space path (n < d) too
    X, Y = make_pair(8, 7, 12, 9, 1.0)
    K, L = X @ X.T, Y @ Y.T
    want = oracles.hsic1_eq5(K, L) / math.sqrt(oracles.hsic1_eq5(K, K) * oracles.hsic1_eq5(L, L))
    assert float(nc.cka_debiased(X, Y)) == pytest.approx(want, rel=1e-9)


# ---------------------------------------------------------------------- covariances
@st.composite
def covariances(draw: st.DrawFn) -> list[np.ndarray]:
    seed = draw(st.integers(0, 2**32 - 1))
    d = draw(st.integers(2, 10))
    rank = draw(st.integers(1, d))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(3):
        A = rng.normal(size=(d, rank)) * 10.0 ** rng.uniform(-1, 1)
        out.append(A @ A.T)
    t = draw(st.floats(0.1, 0.9))
    out[1] = t * out[0] + (1 - t) * out[2]  # near the geodesic: a tight triangle
    return out


@SETTINGS
@given(cs=covariances(), c=st.floats(0.01, 100.0))
def test_covariance_measures(cs, c):
    A, B, C = cs
    info_bw = COVARIANCE["bures_wasserstein"]
    info_cos = COVARIANCE["covariance_cosine"]
    assert info_bw.is_metric and not info_bw.higher_is_better
    # Rank-deficient covariances are roundoff-limited to ~sqrt(eps) relative: the matrix
    # square root turns eigenvalue roundoff eps*max into sqrt(eps*max). Tolerances say so.
    cos = nc.covariance_cosine(A, c * A)
    assert float(cos) == pytest.approx(1.0, abs=1e-7)
    v = float(nc.covariance_cosine(A, B))
    assert info_cos.value_range[0] - 1e-7 <= v <= info_cos.value_range[1] + 1e-7
    assert float(nc.covariance_cosine(B, A)) == pytest.approx(v, rel=1e-7)
    scale = math.sqrt(np.trace(A) + np.trace(B) + np.trace(C))

    def d(P, Q):
        r = nc.bures_wasserstein(P, Q)
        assert r.distance == float(r)
        return float(r)

    assert d(A, A) == pytest.approx(0.0, abs=1e-6 * scale)
    dab, dbc, dac = d(A, B), d(B, C), d(A, C)
    assert min(dab, dbc, dac) >= 0
    assert d(B, A) == pytest.approx(dab, rel=1e-6, abs=1e-6 * scale)
    tol = 1e-6 * scale
    assert dac <= dab + dbc + tol
    assert dab <= dac + dbc + tol
    assert dbc <= dab + dac + tol
    lo, hi = info_bw.value_range
    assert lo <= dab <= hi


def test_bures_wasserstein_closed_form_for_commuting():
    rng = np.random.default_rng(0)
    q = random_orthogonal(rng, 5)
    a = rng.uniform(0.1, 3, size=5)
    b = rng.uniform(0.1, 3, size=5)
    A = (q * a) @ q.T
    B = (q * b) @ q.T
    expect = math.sqrt(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert float(nc.bures_wasserstein(A, B)) == pytest.approx(expect, rel=1e-10)
    cos = np.sum(np.sqrt(a * b)) / math.sqrt(a.sum() * b.sum())
    assert float(nc.covariance_cosine(A, B)) == pytest.approx(cos, rel=1e-10)


def test_covariance_inputs_validated():
    with pytest.raises(ValueError, match="square"):
        nc.bures_wasserstein(np.ones((3, 2)), np.eye(3))
    with pytest.raises(ValueError, match="symmetric"):
        nc.bures_wasserstein(np.triu(np.ones((3, 3))), np.eye(3))
    with pytest.raises(ValueError, match="semi-definite"):
        nc.covariance_cosine(np.diag([1.0, -1.0]), np.eye(2))


# ---------------------------------------------------------------------- CCA details
@SETTINGS
@given(data=pairs())
def test_cca_details(data):
    X, Y, _ = data
    r = nc.cca(X, Y)
    rho = np.asarray(r.rho)
    k = min(X.shape[1], Y.shape[1])
    assert rho.shape == (k,)
    assert r.rank_x == X.shape[1] and r.rank_y == Y.shape[1]
    assert np.all(np.diff(rho) <= 1e-12)
    assert np.all((rho >= 0) & (rho <= 1))
    assert float(r) == pytest.approx(rho.mean(), rel=1e-12)
    assert float(nc.cca_r2(X, Y)) == pytest.approx(np.mean(rho**2), rel=1e-10)
    assert r.r2 == pytest.approx(np.mean(rho**2), rel=1e-10)
    U = (X - X.mean(0)) @ r.directions_x
    V = (Y - Y.mean(0)) @ r.directions_y
    cov = np.cov(np.hstack([U, V]), rowvar=False, ddof=1)
    np.testing.assert_allclose(cov[:k, :k], np.eye(k), atol=1e-8)
    np.testing.assert_allclose(cov[k:, k:], np.eye(k), atol=1e-8)
    np.testing.assert_allclose(cov[:k, k:], np.diag(rho), atol=1e-8)
    # first canonical correlation is the best any pair of directions achieves
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=X.shape[1]), rng.normal(size=Y.shape[1])
    assert abs(np.corrcoef(X @ a, Y @ b)[0, 1]) <= rho[0] + 1e-12


@SETTINGS
@given(data=pairs())
def test_svcca_pwcca_lr_details(data):
    X, Y, _ = data
    s = nc.svcca(X, Y)
    rho = np.asarray(s.rho)
    assert np.all(np.diff(rho) <= 1e-12) and np.all((rho >= 0) & (rho <= 1))
    assert 1 <= s.kept_dims_x <= X.shape[1] and 1 <= s.kept_dims_y <= Y.shape[1]
    assert s.variance_explained_x > 0.99 and s.variance_explained_y > 0.99
    assert rho.shape == (min(s.kept_dims_x, s.kept_dims_y),)
    # SVCCA keeping every direction is CCA
    full = nc.svcca(X, Y, dims=(X.shape[1], Y.shape[1]))
    assert float(full) == pytest.approx(float(nc.cca(X, Y)), rel=1e-10)
    p = nc.pwcca(X, Y)
    w = np.asarray(p.weights)
    assert w.sum() == pytest.approx(1.0, rel=1e-12)
    assert np.all(w >= 0)
    assert float(p) == pytest.approx(np.sum(w * np.asarray(p.rho)), rel=1e-12)
    np.testing.assert_allclose(np.asarray(p.rho), np.asarray(nc.cca(X, Y).rho), rtol=1e-10)
    # regression: R² from the returned coefficients
    lr = nc.lr_r2(X, Y)
    pred = X @ lr.coef + lr.intercept
    resid = np.sum((Y - pred) ** 2)
    total = np.sum((Y - Y.mean(0)) ** 2)
    assert float(lr) == pytest.approx(1 - resid / total, rel=1e-9)
