"""Bad input: every measure refuses with a clear message, or returns a finite value in range.

The existing tools (shared/reference/bad_input_behaviour.json) propagate NaN/inf silently,
return NaN or arbitrary numbers for all-constant input, and fail on mismatched sample counts
with assertion or tensor-size errors. Here every measure of ``nc.measures.available()`` must:

* NaN / inf anywhere: ``ValueError`` naming "non-finite" values and where the first one is;
* different sample counts: ``ValueError`` naming both row counts;
* an all-constant input: ``ValueError`` (never NaN, never a number);
* one constant column: a finite value in the measure's range, equal to the value without
  that column wherever the measure ignores constant features (CCA family, CKA, Procrustes,
  shape, regression), the CCA family warning with ``ConstantFeatureWarning``;
* wrong shapes, too few samples, n <= d for CCA, bad options, bad covariance matrices and
  misuse of ``Moments``: ``ValueError``/``TypeError`` saying what was expected and what came.

No ``RuntimeWarning`` may escape (turned into errors for this module).
The inputs are shared/reference/inputs/bad_*.npz when present, else the same recipes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import nncompare as nc
import reference_map as rm
from nncompare._validation import ConstantFeatureWarning

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

MEASURES = sorted(nc.measures.available("activations"))
CCA_FAMILY = ("cca", "cca_r2", "svcca", "pwcca")
# measures that ignore a constant feature exactly (it is zero after centring / removed)
IGNORE_CONSTANT = (*CCA_FAMILY, "cka", "cka_debiased", "cka_rbf", "lr_r2", "procrustes", "shape")
WARN_CONSTANT = (*CCA_FAMILY, "lr_r2")  # the rank-based measures say what they dropped
STREAMING = sorted(k for k, v in nc.measures.available("activations").items() if v.streaming)
NOT_STREAMING = sorted(set(MEASURES) - set(STREAMING))
VARIANTS = ("nan_in_X", "inf_in_X", "constant_column_X", "all_constant_X", "mismatched_n")


def _synthesise() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The recipes of shared/reference/bad_input_behaviour.json (X0 100x10, Y0 100x8)."""
    rng = np.random.default_rng(2024)
    X0 = rng.normal(size=(100, 10))
    Y0 = X0[:, :8] @ rng.normal(size=(8, 8)) / 3 + rng.normal(size=(100, 8))
    out = {}
    X = X0.copy()
    X[3, 2] = np.nan
    out["nan_in_X"] = (X, Y0)
    X = X0.copy()
    X[5, 1] = np.inf
    out["inf_in_X"] = (X, Y0)
    X = X0.copy()
    X[:, 0] = 1.0
    out["constant_column_X"] = (X, Y0)
    out["all_constant_X"] = (np.full_like(X0, 2.0), Y0)
    out["mismatched_n"] = (X0, Y0[:90])
    return out


@pytest.fixture(scope="module")
def bad() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ref = rm.reference_dir()
    if ref is None:
        return _synthesise()
    out = {}
    for v in VARIANTS:
        with np.load(ref / "inputs" / f"bad_{v}.npz") as z:
            out[v] = (np.asarray(z["X"]), np.asarray(z["Y"]))
    return out


@pytest.fixture(scope="module")
def good() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(100, 10))
    return X, X[:, :8] @ rng.normal(size=(8, 8)) + rng.normal(size=(100, 8))


def _in_range(name: str, value: float) -> None:
    lo, hi = nc.measures.available()[name].value_range
    assert math.isfinite(value), f"{name} returned {value}"
    assert lo - 1e-12 <= value <= hi + 1e-12, f"{name} = {value} outside [{lo}, {hi}]"


# ------------------------------------------------------------------ the five variants
@pytest.mark.parametrize("name", MEASURES)
@pytest.mark.parametrize(
    ("variant", "where"), [("nan_in_X", r"\(3, 2\)"), ("inf_in_X", r"\(5, 1\)")]
)
def test_non_finite_is_refused(bad: Any, name: str, variant: str, where: str) -> None:
    X, Y = bad[variant]
    with pytest.raises(ValueError, match=rf"X contains non-finite values.*{where}"):
        nc.similarity(X, Y, name)
    with pytest.raises(ValueError, match=rf"Y contains non-finite values.*{where}"):
        nc.similarity(Y, X, name)


@pytest.mark.parametrize(
    ("shape", "hint"),
    [
        ((30, 4), "keep = np.isfinite(X).all(axis=1); X, Y = X[keep], Y[keep]"),
        ((30, 4, 4, 2), "keep = np.isfinite(X).reshape(len(X), -1).all(axis=1)"),
    ],
)
def test_non_finite_hint_is_code_that_works_at_that_shape(shape: tuple[int, ...], hint: str):
    """The suggested fix drops exactly the bad samples, also for conv activations."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=shape)
    X[(4,) + (1,) * (len(shape) - 1)] = np.nan
    Y = rng.normal(size=shape) + X
    with pytest.raises(ValueError, match="non-finite") as info:
        nc.cca(X, Y, conv="dft" if len(shape) > 2 else None)
    message = str(info.value)
    assert hint in message
    code = message.split("(e.g. ", 1)[1].rsplit(").", 1)[0]
    scope = {"np": np, "X": X, "Y": Y}
    exec(code, scope)  # the message's own suggestion, run as written
    assert scope["X"].shape == (29, *shape[1:]) and scope["Y"].shape == (29, *shape[1:])
    assert np.isfinite(
        float(nc.cca(scope["X"], scope["Y"], conv="dft" if len(shape) > 2 else None))
    )


@pytest.mark.parametrize("name", MEASURES)
def test_mismatched_samples_name_both_counts(bad: Any, name: str) -> None:
    X, Y = bad["mismatched_n"]
    with pytest.raises(ValueError, match=r"(?s)same samples.*100.*90"):
        nc.similarity(X, Y, name)


# What each measure says about an all-constant input; {side} is the argument it names.
ALL_CONSTANT_MESSAGE = {
    **{m: r"every feature of {side} is constant over the 100 samples" for m in CCA_FAMILY},
    # (svcca overrides the CCA family's entry)
    "svcca": r"svcca is undefined: {side} has zero variance \(every feature constant\)",
    "cka": r"CKA is undefined: {side} has zero variance in every feature",
    "cka_debiased": r"CKA is undefined: {side} has zero variance in every feature",
    "cka_rbf": r"cka_rbf is undefined: every feature of {side} is constant over the 100 samples",
    "lr_r2": r"lr_r2 is undefined: every feature of {side} is constant",
    "mutual_knn": r"mutual_knn is undefined: every feature of {side} is constant over the 100 "
    r"samples",
    "procrustes": r"every feature of {side} is constant, so its centred data is zero",
    "shape": r"every feature of {side} is constant, so its centred data is zero",
    "rsa": r"rsa is undefined: every feature of {side} is constant over the 100 samples",
}


def test_all_constant_messages_cover_every_measure() -> None:
    assert set(ALL_CONSTANT_MESSAGE) == set(MEASURES)


@pytest.mark.parametrize("name", MEASURES)
def test_all_constant_input_is_refused(bad: Any, name: str) -> None:
    X, Y = bad["all_constant_X"]
    with pytest.raises(ValueError, match=ALL_CONSTANT_MESSAGE[name].format(side="X")):
        nc.similarity(X, Y, name)
    with pytest.raises(ValueError, match=ALL_CONSTANT_MESSAGE[name].format(side="Y")):
        nc.similarity(Y, X, name)


@pytest.mark.parametrize("name", MEASURES)
def test_one_constant_column_is_harmless(bad: Any, name: str) -> None:
    X, Y = bad["constant_column_X"]
    if name in WARN_CONSTANT:
        with pytest.warns(ConstantFeatureWarning, match="constant"):
            value = nc.similarity(X, Y, name)
    else:
        value = nc.similarity(X, Y, name)
    _in_range(name, value)
    if name in IGNORE_CONSTANT:
        assert value == pytest.approx(nc.similarity(X[:, 1:], Y, name), rel=1e-9, abs=1e-12)


def test_bad_input_variants_are_the_documented_ones(shared_dir: Any) -> None:
    """Our variants are the shared ones, and on each some existing tool fails or lies."""
    path = shared_dir / "reference" / "bad_input_behaviour.json"
    if not path.is_file():
        pytest.skip("bad_input_behaviour.json not found")
    cases = json.loads(path.read_text())["cases"]
    assert set(cases) == set(VARIANTS)
    for v in ("nan_in_X", "inf_in_X", "all_constant_X"):
        summary = " | ".join(cases[v]["summary"].values())
        assert "returns non-finite values" in summary or "returns finite values" in summary


# ------------------------------------------------------------------ shapes and sample counts
@pytest.mark.parametrize("name", MEASURES)
def test_one_dimensional_input(good: Any, name: str) -> None:
    X, Y = good
    with pytest.raises(
        ValueError, match=r"(?s)2-D array.*1 dimension.*shape \(100,\).*X\[:, None\]"
    ):
        nc.similarity(X[:, 0], Y, name)


@pytest.mark.parametrize("name", MEASURES)
def test_conv_input_without_conv_option(good: Any, name: str) -> None:
    X, Y = good
    with pytest.raises(ValueError, match=r"(?s)3 dimension.*\(100, 5, 2\).*conv="):
        nc.similarity(X.reshape(100, 5, 2), Y, name)


@pytest.mark.parametrize("name", MEASURES)
def test_no_features(good: Any, name: str) -> None:
    X, Y = good
    with pytest.raises(ValueError, match=r"no features"):
        nc.similarity(X[:, :0], Y, name)


@pytest.mark.parametrize("name", MEASURES)
def test_too_few_samples(good: Any, name: str) -> None:
    X, Y = good
    with pytest.raises(ValueError, match=r"1 sample.*at least"):
        nc.similarity(X[:1], Y[:1], name)


@pytest.mark.filterwarnings("ignore::nncompare._validation.RankDeficiencyWarning")
@pytest.mark.parametrize("name", MEASURES)
def test_two_samples_are_always_perfectly_similar(good: Any, name: str) -> None:
    """With n = 2 the centred data of any layer is ±(a, -a): every measure would report
    perfect similarity whatever the data, so each must refuse (the CCA family does)."""
    X, Y = good
    if name in CCA_FAMILY:
        message = r"(?s)trivially perfect here: with n=2 samples.*ranks 1 and 1"
    elif name == "lr_r2":
        message = r"lr_r2 is trivially 1 here: X has rank 1 with only n=2 samples"
    else:
        least = 4 if name == "cka_debiased" else 3
        message = rf"X has 2 sample\(s\); this measure needs at least {least}\."
    with pytest.raises(ValueError, match=message):
        nc.similarity(X[:2], Y[:2], name)


@pytest.mark.filterwarnings("ignore::nncompare._validation.RankDeficiencyWarning")
@pytest.mark.parametrize("name", MEASURES)
def test_fewer_samples_than_features(name: str) -> None:
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(20, 30)), rng.normal(size=(20, 25))
    if name in (*CCA_FAMILY, "lr_r2"):
        with pytest.raises(ValueError, match=r"(?s)trivially.*n=20"):
            nc.similarity(X, Y, name)
    else:  # CKA, Procrustes, shape metrics and RSA stay meaningful for n < d
        _in_range(name, nc.similarity(X, Y, name))


@pytest.mark.parametrize("convention", ["paper", "google"])
def test_pwcca_fewer_samples_than_features_both_conventions(convention: str) -> None:
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(20, 30)), rng.normal(size=(20, 25))
    with pytest.raises(ValueError, match=r"trivially perfect"):
        nc.pwcca(X, Y, convention=convention)


# ------------------------------------------------------------------ options
@pytest.mark.parametrize("name", MEASURES)
def test_unknown_conv_policy(good: Any, name: str) -> None:
    X, Y = good
    with pytest.raises(ValueError, match=r"conv must be one of .*'mean'.*got 'bogus'"):
        nc.similarity(X, Y, name, conv="bogus")


BAD_OPTIONS: list[tuple[str, Callable[..., Any], str]] = [
    ("variance=1.5", lambda X, Y: nc.svcca(X, Y, variance=1.5), r"variance must lie in.*got 1\.5"),
    ("variance=0", lambda X, Y: nc.svcca(X, Y, variance=0), r"variance must lie in.*got 0"),
    ("dims=0", lambda X, Y: nc.svcca(X, Y, dims=0), r"dims must be a positive int.*; got 0\."),
    ("dims>d", lambda X, Y: nc.svcca(X, Y, dims=50), r"dims=50 exceeds.*10"),
    ("threshold=-1", lambda X, Y: nc.cka_rbf(X, Y, threshold=-1), r"threshold.*positive.*-1"),
    ("threshold=nan", lambda X, Y: nc.cka_rbf(X, Y, threshold=math.nan), r"threshold.*nan"),
    ("alpha=2", lambda X, Y: nc.shape(X, Y, alpha=2), r"alpha must lie in \[0, 1\]; got 2"),
    ("alpha<0", lambda X, Y: nc.shape(X, Y, alpha=-0.1), r"alpha must lie in.*-0\.1"),
    ("convention=x", lambda X, Y: nc.pwcca(X, Y, convention="x"), r"'paper', 'google'; got 'x'"),
    ("epsilon+paper", lambda X, Y: nc.pwcca(X, Y, epsilon=1e-3), r"epsilon.*google"),
    ("rtol=0", lambda X, Y: nc.cca(X, Y, rtol=0), r"rtol must lie in \(0, 1\); got 0"),
    ("k=0", lambda X, Y: nc.mutual_knn(X, Y, k=0), r"k must be a positive integer; got 0"),
    ("k>=n", lambda X, Y: nc.mutual_knn(X, Y, k=100), r"smaller than the number of samples"),
    ("rdm", lambda X, Y: nc.rsa(X, Y, rdm="cosine"), r"rdm must be one of.*got 'cosine'"),
    ("compare", lambda X, Y: nc.rsa(X, Y, compare="kendall"), r"compare must be.*'kendall'"),
    ("debiased=2", lambda X, Y: nc.cka_rbf(X, Y, debiased=2), r"debiased must be one of"),
    ("cka dft", lambda X, Y: nc.cka(X, Y, conv="dft"), r"conv='dft'"),
    ("pwcca dft", lambda X, Y: nc.pwcca(X, Y, conv="dft"), r"conv='dft'"),
]


@pytest.mark.parametrize(
    ("call", "match"), [(c, m) for _, c, m in BAD_OPTIONS], ids=[i for i, *_ in BAD_OPTIONS]
)
def test_bad_option_values(good: Any, call: Callable[..., Any], match: str) -> None:
    X, Y = good
    with pytest.raises(ValueError, match=match):
        call(X, Y)


def test_non_integer_dims_is_a_type_error(good: Any) -> None:
    with pytest.raises(TypeError, match=r"dims must be a positive int.*; got 2\.5 \(of type float"):
        nc.svcca(*good, dims=2.5)


@pytest.mark.parametrize(
    ("wrong", "suggestion"),
    [("ckaa", "'cka'"), ("procrustez", "'procrustes'"), ("svca", "'svcca'")],
)
def test_unknown_measure_name_lists_close_matches(good: Any, wrong: str, suggestion: str) -> None:
    with pytest.raises(
        ValueError, match=rf"(?s)unknown measure '{wrong}'.*Did you mean.*{suggestion}.*Available"
    ):
        nc.similarity(*good, wrong)


# ------------------------------------------------------------------ convolutional input
def test_non_finite_conv_input_every_policy() -> None:
    rng = np.random.default_rng(8)
    X, Y = rng.normal(size=(16, 4, 4, 3)), rng.normal(size=(16, 4, 4, 5))
    X[2, 1, 3, 0] = np.nan
    for conv in ("samples", "flatten", "mean", "dft"):
        with pytest.raises(ValueError, match=r"non-finite"):
            nc.cca(X, Y, conv=conv)


def test_conv_samples_needs_same_spatial_size() -> None:
    rng = np.random.default_rng(9)
    X, Y = rng.normal(size=(16, 4, 4, 3)), rng.normal(size=(16, 2, 2, 5))
    with pytest.raises(ValueError, match=r"same spatial size.*\(4, 4\).*\(2, 2\)"):
        nc.cca(X, Y, conv="samples")


# ------------------------------------------------------------------ covariance measures
def _covs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10)
    return (
        np.cov(rng.normal(size=(100, 6)), rowvar=False),
        np.cov(rng.normal(size=(100, 6)), rowvar=False),
    )


def _non_psd() -> np.ndarray:
    C, _ = _covs()
    w, v = np.linalg.eigh(C)
    w[0] = -0.5
    return (v * w) @ v.T


SINGLE_COV_CASES: list[tuple[str, Callable[[], np.ndarray], str]] = [
    ("non-square", lambda: _covs()[0][:, :4], r"a square \(d, d\).*got shape \(6, 4\)"),
    ("3-D", lambda: np.ones((2, 3, 3)), r"a square \(d, d\).*\(2, 3, 3\)"),
    ("asymmetric", lambda: _covs()[0] + np.triu(np.ones((6, 6)), 1), r"symmetric; max .* = 1"),
    ("non-PSD", _non_psd, r"positive semi-definite; its smallest eigenvalue is -0\.5"),
    ("NaN", lambda: np.full((6, 6), np.nan), r"non-finite"),
]


@pytest.mark.parametrize("name", ["bures_wasserstein", "covariance_cosine"])
@pytest.mark.parametrize(
    ("make", "match"),
    [(m, r) for _, m, r in SINGLE_COV_CASES],
    ids=[i for i, *_ in SINGLE_COV_CASES],
)
def test_bad_covariance_matrix(name: str, make: Callable[[], np.ndarray], match: str) -> None:
    bad, ok = make(), _covs()[1]
    with pytest.raises(ValueError, match=f"C1 must be {match}|C1 contains {match}"):
        getattr(nc, name)(bad, ok)
    with pytest.raises(ValueError, match=f"C2 must be {match}|C2 contains {match}"):
        getattr(nc, name)(ok, bad)


@pytest.mark.parametrize("name", ["bures_wasserstein", "covariance_cosine"])
def test_covariances_of_different_sizes(name: str) -> None:
    C1, C2 = _covs()
    with pytest.raises(ValueError, match=r"same shape; got \(6, 6\) and \(4, 4\)"):
        getattr(nc, name)(C1, C2[:4, :4])


def test_covariance_cosine_of_zero_matrix() -> None:
    with pytest.raises(ValueError, match=r"zero covariance"):
        nc.covariance_cosine(np.zeros((6, 6)), _covs()[1])


def test_good_covariances_give_finite_values() -> None:
    C1, C2 = _covs()
    assert float(nc.bures_wasserstein(C1, C1)) == pytest.approx(0.0, abs=1e-7)
    assert 0 <= float(nc.covariance_cosine(C1, C2)) <= 1


# ------------------------------------------------------------------ Moments misuse
@pytest.mark.parametrize("name", STREAMING)
def test_empty_moments(name: str) -> None:
    with pytest.raises(ValueError, match=r"empty.*update"):
        getattr(nc, name)(nc.Moments())


@pytest.mark.parametrize("name", STREAMING)
def test_moments_plus_second_argument(good: Any, name: str) -> None:
    m = nc.Moments().update(*good)
    with pytest.raises(TypeError, match=r"Moments alone.*ndarray"):
        getattr(nc, name)(m, good[1])


@pytest.mark.parametrize("name", NOT_STREAMING)
def test_moments_given_to_sample_based_measure(good: Any, name: str) -> None:
    """Kernel/RDM/kNN measures need the samples; the message must say so and offer a way."""
    m = nc.Moments().update(*good)
    with pytest.raises(TypeError, match=r"(?i)moments"):
        getattr(nc, name)(m, None)


@pytest.mark.parametrize("name", MEASURES)
def test_missing_second_input(good: Any, name: str) -> None:
    with pytest.raises(TypeError, match=r"(?i)missing"):
        getattr(nc, name)(good[0])


def test_non_finite_batch_in_moments_update(bad: Any) -> None:
    X, Y = bad["nan_in_X"]
    m = nc.Moments()
    with pytest.raises(ValueError, match=r"batch 'X' contains non-finite.*\(3, 2\)"):
        m.update(X, Y)
    assert m.n == 0, "a refused batch must leave the accumulator untouched"
    with pytest.raises(ValueError, match=r"non-finite"):
        nc.MinibatchCKA().update(X, Y)


def test_moments_batch_shape_errors(good: Any) -> None:
    X, Y = good
    with pytest.raises(ValueError, match=r"same samples.*100 and 90"):
        nc.Moments().update(X, Y[:90])
    with pytest.raises(ValueError, match=r"2-D.*\(100,\)"):
        nc.Moments().update(X[:, 0], Y)
    m = nc.Moments().update(X, Y)
    with pytest.raises(ValueError, match=r"layout differs.*'X': 10.*'X': 5"):
        m.update(X[:, :5], Y)


def test_empty_minibatch_cka() -> None:
    with pytest.raises(ValueError, match=r"empty"):
        nc.MinibatchCKA().compute()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pairwise_names_the_bad_layer_as_the_caller_did(dtype: str) -> None:
    """A non-finite value in one layer of ``nc.pairwise`` names that layer: "b" (not the
    internal "a:b", which reads as a pair of layers), and "acts_b:x" where two mappings
    are compared."""
    rng = np.random.default_rng(10)
    X = rng.normal(size=(60, 6)).astype(dtype)
    Y = X.copy()
    Y[7, 5] = np.nan
    with pytest.raises(ValueError, match=r"^batch 'b' contains non-finite values.*\(7, 5\)"):
        nc.pairwise({"a": X, "b": Y}, measures=["cka"])
    with pytest.raises(ValueError, match=r"^batch 'acts_b:x' contains non-finite values"):
        nc.pairwise({"x": X}, {"x": Y}, measures=["cka"])


def test_warnings_point_at_the_users_call_whatever_the_front_door():
    # one mechanism (_validation.warn) for every nncompare warning: the line reported is the
    # caller's, not a frame inside the package, through the function and through the grid
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    X[:, 2] = 1.0
    Y = rng.normal(size=(200, 4))
    with pytest.warns(ConstantFeatureWarning) as direct:
        nc.cca(X, Y)
    with pytest.warns(ConstantFeatureWarning) as grid:
        nc.pairwise({"x": X, "y": Y}, measures="cca")
    for record in (direct, grid):
        assert {w.filename for w in record if w.category is ConstantFeatureWarning} == {__file__}
