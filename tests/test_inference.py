"""Statistics on every result (issue #12 §2): bootstrap intervals, permutation p-values,
rotation and random-network baselines, their columns in the front doors, bad input.

Population values of the planted Gaussian model (x ~ N(0, I), y = diag(rho) x + noise with
unit variances, so Sigma_xy = diag(rho)): canonical correlations rho, linear CKA
sum(rho^2) / p (see benchmarks/calibration.py, which measures the coverage at length).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import nncompare as nc
from nncompare.analyses import inference as inf

RHO = np.array([0.9, 0.6, 0.3, 0.0, 0.0])


def planted(n: int, seed: int, rho: np.ndarray = RHO) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, rho.size))
    return X, X * rho + rng.standard_normal((n, rho.size)) * np.sqrt(1 - rho**2)


def independent(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.standard_normal((n, 3))


def small_net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))


# ---------------------------------------------------------------------- bootstrap
@pytest.mark.parametrize("measure", ["cka", "cca", "cka_debiased"])
def test_interval_holds_the_estimate_and_shrinks_with_n(measure: str) -> None:
    widths = []
    for n in (100, 1600):
        X, Y = planted(n, seed=n)
        r = nc.analyses.bootstrap(measure, X, Y, n_boot=150, seed=1)
        assert r.ci_low <= r.value <= r.ci_high
        assert r.value == pytest.approx(float(getattr(nc, measure)(X, Y)), abs=1e-12)
        assert r.n_failed == 0 and r.replicates.shape == (150,)
        widths.append(r.ci_high - r.ci_low)
    # the width of an interval of a sqrt(n)-consistent estimate falls like 1/sqrt(n): /4 here
    assert widths[1] < 0.45 * widths[0]


def test_bootstrap_standard_error_matches_the_sampling_spread() -> None:
    """The bootstrap SE of linear CKA is near the SD of the estimate over fresh draws."""
    n = 300
    spread = np.std([float(nc.cka(*planted(n, seed=100 + s))) for s in range(60)], ddof=1)
    ses = [
        nc.analyses.bootstrap("cka", *planted(n, seed=s), n_boot=100, seed=s).boot_se
        for s in range(5)
    ]
    assert 0.6 * spread < float(np.mean(ses)) < 1.6 * spread


def test_block_bootstrap_from_moments_agrees_with_the_block_path_and_the_sample_one() -> None:
    X, Y = planted(2000, seed=3)
    by_blocks = nc.analyses.bootstrap("cka", X, Y, n_boot=80, method="blocks", n_blocks=40, seed=5)
    edges = np.linspace(0, 2000, 41).round().astype(int)
    shards = [nc.Moments.from_arrays(X[s:e], Y[s:e]) for s, e in itertools.pairwise(edges)]
    from_shards = nc.analyses.bootstrap_blocks("cka", shards, n_boot=80, seed=5)
    assert from_shards.value == pytest.approx(float(nc.cka(X, Y)), abs=1e-10)
    np.testing.assert_allclose(from_shards.replicates, by_blocks.replicates, atol=1e-10)
    iid = nc.analyses.bootstrap("cka", X, Y, n_boot=80, seed=5)
    assert 0.5 < by_blocks.boot_se / iid.boot_se < 2.0
    assert by_blocks.method == "blocks" and iid.method == "samples"


def test_torch_inputs_give_the_numpy_numbers() -> None:
    X, Y = planted(150, seed=4)
    a = nc.analyses.bootstrap("cca", X, Y, n_boot=30, seed=2)
    b = nc.analyses.bootstrap("cca", torch.from_numpy(X), torch.from_numpy(Y), n_boot=30, seed=2)
    np.testing.assert_allclose(a.replicates, b.replicates, atol=1e-9)


def test_grouped_rows_are_resampled_together() -> None:
    """conv='samples': the H*W rows of one input move as one sample; pairwise runs it."""
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((60, 3, 3, 4))  # channels last
    other = acts @ rng.standard_normal((4, 5)) + rng.standard_normal((60, 3, 3, 5))
    g = nc.pairwise({"a": acts}, {"b": other}, measures=["cka"], conv="samples", ci=0.9, n_boot=40)
    cols = g.inference[("cka", "a", "b")]
    assert cols["ci_low"] <= g["cka"][0, 0] <= cols["ci_high"]
    with pytest.raises(ValueError, match="group_size must divide the number of rows"):
        nc.analyses.bootstrap("cka", acts.reshape(-1, 4), other.reshape(-1, 5), group_size=7)


def test_interval_kinds() -> None:
    reps = np.linspace(0.0, 1.0, 1001)
    assert inf.interval(reps, 0.5, 0.9, "percentile") == pytest.approx((0.05, 0.95))
    assert inf.interval(reps, 0.6, 0.9, "basic") == pytest.approx((0.25, 1.15))
    lo, hi = inf.interval(reps, 0.5, 0.9, "bc")  # no bias: the percentile interval
    assert (lo, hi) == pytest.approx((0.05, 0.95), abs=2e-3)


# ---------------------------------------------------------------------- permutation
def test_permutation_p_values_are_uniform_under_the_null() -> None:
    ps = np.array(
        [
            nc.analyses.permutation_test("cka", *independent(60, seed=s), n_perm=39, seed=s).p_value
            for s in range(60)
        ]
    )
    assert ps.min() >= 1 / 40 and ps.max() <= 1.0
    assert 0.35 < ps.mean() < 0.65  # uniform: 0.5
    assert np.mean(ps <= 0.2) < 0.4  # uniform: 0.2 (+- 0.05)


def test_permutation_p_value_is_tiny_under_a_strong_signal() -> None:
    r = nc.analyses.permutation_test("cca", *planted(200, seed=1), n_perm=99, seed=0)
    assert r.p_value == pytest.approx(1 / 100)
    assert r.null_mean < 0.5 * r.value and r.kind == "permutation"


def test_p_value_counts_draws_at_least_as_similar() -> None:
    null = np.array([0.1, 0.2, 0.3, 0.4])
    assert inf._p_value(0.25, null, higher_is_better=True) == pytest.approx(3 / 5)
    assert inf._p_value(0.25, null, higher_is_better=False) == pytest.approx(3 / 5)
    assert inf._p_value(0.05, null, higher_is_better=False) == pytest.approx(1 / 5)
    assert inf._p_value(0.3, null, higher_is_better=True) == pytest.approx(3 / 5)  # a tie


# ---------------------------------------------------------------------- rotations
@pytest.mark.parametrize("measure", ["cka", "cca", "procrustes", "svcca"])
def test_rotation_baseline_equals_the_value_for_rotation_invariant_measures(measure: str) -> None:
    assert "orthogonal" in nc.measures.get(measure).invariances
    X, Y = planted(200, seed=6)
    r = nc.analyses.rotation_baseline(measure, X, Y, n_rot=10, seed=0)
    np.testing.assert_allclose(r.null, r.value, atol=1e-9)
    assert "invariant to orthogonal transformations" in r.note


@pytest.mark.parametrize("measure", ["pwcca", "rsa"])
def test_rotation_baseline_moves_measures_that_are_not_rotation_invariant(measure: str) -> None:
    assert "orthogonal" not in nc.measures.get(measure).invariances
    rng = np.random.default_rng(7)
    X = rng.standard_normal((120, 6)) * np.array([5.0, 3, 1, 1, 0.5, 0.2])  # axis-aligned
    Y = X[:, :4] + 0.3 * rng.standard_normal((120, 4))
    r = nc.analyses.rotation_baseline(measure, X, Y, n_rot=10, seed=0)
    assert r.note is None and r.null_sd > 1e-4


def test_front_door_rotation_column_skips_invariant_measures_with_a_reason() -> None:
    X, Y = planted(150, seed=8)
    g = nc.pairwise({"x": X}, {"y": Y}, measures=["cka", "pwcca"], baseline="rotation")
    df = g.to_frame()
    cka, pw = df.set_index("measure").loc["cka"], df.set_index("measure").loc["pwcca"]
    assert np.isnan(cka["baseline_rotation"]) and np.isfinite(pw["baseline_rotation"])
    assert "rotation baseline skipped: cka is invariant" in g.notes[("cka", "x", "y")]


# ---------------------------------------------------------------------- front doors
def test_default_path_adds_no_columns() -> None:
    torch.manual_seed(0)
    a, b = small_net(), small_net()
    df = nc.compare_models(a, b, torch.randn(80, 6), layers_a=["0"], layers_b=["0"])
    assert not set(df.columns) & {"ci_low", "ci_high", "p_value", "null_mean"}
    assert "inference" not in df.attrs["provenance"]


def test_compare_models_columns_and_random_network_baseline_leaves_the_model_untouched() -> None:
    torch.manual_seed(0)
    a, b = small_net(), small_net()
    before = {k: v.clone() for k, v in b.state_dict().items()}
    x = torch.randn(200, 6)
    rng_state = torch.random.get_rng_state()
    df = nc.compare_models(
        a, b, x, layers_a=["0", "2"], layers_b=["0", "2"], measures=["cka", "pwcca"],
        ci=0.9, n_boot=40, n_perm=19, baseline=["random_network", "permutation"],
    )  # fmt: skip
    assert all(torch.equal(before[k], v) for k, v in b.state_dict().items())
    assert torch.equal(rng_state, torch.random.get_rng_state())
    for col in ("ci_low", "ci_high", "boot_se", "p_value", "null_mean", "null_sd"):
        assert df[col].notna().all(), col
    assert (df["ci_low"] <= df["value"] + 1e-9).all()  # rounding where the value is 1
    assert (df["value"] <= df["ci_high"] + 1e-9).all()
    assert (df["p_value"] >= 1 / 20).all()
    np.testing.assert_allclose(df["baseline_permutation"], df["null_mean"])
    assert df["baseline_random_network"].notna().all()
    assert not np.allclose(df["baseline_random_network"], df["value"])
    assert df.attrs["provenance"]["inference"]["ci"] == 0.9
    assert list(df.columns).index("ci_low") < list(df.columns).index("error")


def test_random_copy_is_seeded_and_reinitialised() -> None:
    torch.manual_seed(0)
    m = small_net()
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(0.5)  # "trained" weights
    r1, r2, r3 = inf.random_copy(m, 1), inf.random_copy(m, 1), inf.random_copy(m, 2)
    w = lambda mod: torch.cat([p.flatten() for p in mod.parameters()])  # noqa: E731
    assert torch.equal(w(r1), w(r2)) and not torch.equal(w(r1), w(r3))
    assert not torch.equal(w(r1), w(m)) and torch.all(w(m) == 0.5)


def test_random_copy_warns_about_parameters_it_cannot_reset() -> None:
    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)
            self.gain = torch.nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) * self.gain

    with pytest.warns(nc.errors.NNCompareWarning, match="have parameters but no reset_parameters"):
        inf.random_copy(Scaled())


def test_compare_checkpoints_takes_the_statistics() -> None:
    torch.manual_seed(0)
    m = small_net()
    ck = [small_net().state_dict(), m.state_dict()]
    df = nc.compare_checkpoints(
        m, ck, torch.randn(150, 6), layers=["0"], measures=["cka"], ci=0.9, n_boot=30,
        baseline="random_network",
    )  # fmt: skip
    assert df["ci_low"].notna().all() and df["baseline_random_network"].notna().all()
    assert df["baseline_random_network"].nunique() == 1  # one random net against the reference


def test_statistics_do_not_depend_on_the_executor() -> None:
    from nncompare.parallel import ThreadExecutor

    X, Y = planted(120, seed=9)
    acts = {"x": X, "y": Y}
    kw = {"measures": ["cka", "cca"], "ci": 0.9, "n_boot": 30, "n_perm": 9}
    serial = nc.pairwise(acts, **kw).to_frame()
    threads = nc.pairwise(acts, executor=ThreadExecutor(2), **kw).to_frame()
    cols = ["ci_low", "ci_high", "p_value", "null_mean"]
    np.testing.assert_allclose(serial[cols].to_numpy(float), threads[cols].to_numpy(float))


def test_layer_profile_draws_error_bars() -> None:
    torch.manual_seed(0)
    a, b = small_net(), small_net()
    layers = ["0", "1", "2"]
    x = torch.randn(150, 6)
    plain = nc.compare_models(a, b, x, layers_a=layers, layers_b=layers, measures=["cka"])
    with_ci = nc.compare_models(
        a, b, x, layers_a=layers, layers_b=layers, measures=["cka"], ci=0.9, n_boot=20
    )
    n_plain = len(nc.plot.layer_profile(plain, "cka").axes[0].collections)
    n_ci = len(nc.plot.layer_profile(with_ci, "cka").axes[0].collections)
    assert n_ci >= n_plain + 1


# ---------------------------------------------------------------------- calibration
def test_coverage_of_debiased_cka_intervals_over_repeated_draws() -> None:
    """Cheap version of benchmarks/calibration.py: 100 seeded draws, population value
    sum(rho^2)/p = 0.252 of the planted model; the nominal 90% percentile interval of
    debiased CKA (the interval that suits it: its bootstrap's own bias is spurious, see
    the calibration) covers it in a generous band."""
    truth = float(np.sum(RHO**2) / RHO.size)
    hits = 0
    for s in range(100):
        X, Y = planted(100, seed=1000 + s)
        r = nc.analyses.bootstrap(
            "cka_debiased", X, Y, ci=0.9, n_boot=60, seed=s, interval="percentile"
        )
        hits += r.ci_low <= truth <= r.ci_high
    assert 0.75 <= hits / 100 <= 0.99


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ci": 1.5}, ValueError, r"ci must be a confidence level strictly between 0 and 1"),
        ({"ci": 95}, ValueError, r"a percentage\? pass ci=0.95"),
        ({"ci": 0.0}, ValueError, r"strictly between 0 and 1, e.g. 0.95; got 0.0"),
        ({"ci": "95%"}, TypeError, r"ci must be a confidence level .* got '95%'"),
        ({"ci": 0.9, "n_boot": 0}, ValueError, r"n_boot must be >= 1 \(the number of draws\)"),
        ({"ci": 0.9, "n_boot": 2.5}, TypeError, r"n_boot must be an integer >= 1"),
        ({"n_perm": -1}, ValueError, r"n_perm must be >= 0 .* or 0 to skip it"),
        ({"baseline": "shuffle"}, ValueError, r"baseline must be one of 'permutation'"),
        ({"ci": 0.9, "bootstrap": "jackknife"}, ValueError, r"bootstrap must be 'samples'"),
        ({"ci": 0.9, "seed": -3}, TypeError, r"seed must be a non-negative integer"),
        ({"ci": 0.9, "interval": "bca"}, ValueError, r"interval must be one of 'percentile'"),
    ],
)
def test_bad_settings_are_refused_before_any_pair_runs(kwargs, error, match) -> None:
    X, Y = planted(50, seed=0)
    with pytest.raises(error, match=match):
        nc.pairwise({"x": X}, {"y": Y}, measures=["cka"], **kwargs)


def test_random_network_baseline_needs_a_model() -> None:
    X, Y = planted(50, seed=0)
    with pytest.raises(ValueError, match="baseline='random_network' needs a model to re-init"):
        nc.pairwise({"x": X}, {"y": Y}, baseline="random_network")


def test_statistics_refuse_conv_dft() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU())
    with pytest.raises(ValueError, match="conv='dft' does not keep"):
        nc.compare_models(net, net, torch.randn(20, 2, 6, 6), layers_a=["0"], measures=["cca"],
                          conv="dft", ci=0.9)  # fmt: skip


def test_library_bad_input() -> None:
    X, Y = planted(50, seed=0)
    with pytest.raises(ValueError, match=r"X and Y must hold the same samples .* 50 and 49 rows"):
        nc.analyses.bootstrap("cka", X, Y[:49])
    with pytest.raises(ValueError, match="method='blocks' resamples moments, and cka_debiased"):
        nc.analyses.bootstrap("cka_debiased", X, Y, method="blocks")
    with pytest.raises(ValueError, match=r"n_blocks must lie in \[2, 50\]"):
        nc.analyses.bootstrap("cka", X, Y, method="blocks", n_blocks=80)
    with pytest.raises(ValueError, match="resampling needs at least 3 samples; got 2"):
        nc.analyses.permutation_test("cka", X[:2], Y[:2])
    with pytest.raises(ValueError, match="blocks must be a sequence of at least 2 nncompare"):
        nc.analyses.bootstrap_blocks("cka", [nc.Moments.from_arrays(X, Y)])
    with pytest.raises(ValueError, match="bootstrap cannot come from moments"):
        nc.analyses.bootstrap_blocks("rsa", [])
    with pytest.raises(ValueError, match="interval must be one of 'percentile'"):
        nc.analyses.bootstrap("cka", X, Y, interval="bca")
    with pytest.raises(ValueError, match="compares \\(d, d\\) covariance matrices, not samples"):
        nc.analyses.permutation_test("bures_wasserstein", X, Y)
    with pytest.raises(ValueError, match="rotation_baseline needs 2-D activations"):
        nc.analyses.rotation_baseline("pwcca", X, Y.reshape(50, 5, 1))


def test_compare_many_takes_the_statistics_and_refuses_them_with_resume(tmp_path) -> None:
    torch.manual_seed(0)
    nets = {k: small_net() for k in "abc"}
    x = torch.randn(120, 6)
    df = nc.compare_many(nets, x, layers=["0", "2"], measures=["cka"], ci=0.9, n_boot=20, n_perm=9)
    assert len(df) == 6 and df["ci_low"].notna().all() and df["p_value"].notna().all()
    assert (df["ci_low"] <= df["value"]).all() and (df["value"] <= df["ci_high"]).all()
    with pytest.raises(ValueError, match="cannot be combined with resume="):
        nc.compare_many(nets, x, layers=["0"], measures=["cka"], ci=0.9, resume=tmp_path)
    with pytest.raises(ValueError, match="baseline='random_network' needs a model to re-init"):
        nc.compare_many(nets, x, layers=["0"], measures=["cka"], baseline="random_network")
