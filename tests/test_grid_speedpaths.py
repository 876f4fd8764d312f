"""The grid fast paths give the per-pair values, errors and option checks.

* Issue 7 item 8 (second half): ``nc.pairwise`` and ``compare_models`` computed each layer's
  RDM (and its ranks) again for every pair with ``rsa``; now once per layer, with the values
  of ``nc.rsa`` per pair (ties included) to the last bit.
* Issue 8 §2 "Layer grids": linear CKA of every pair of a grid comes from the one joint
  product of all layers (``cka_grid``), equal to ``nc.cka`` per pair to ~1e-12; constant
  layers keep their per-cell errors; float32 layers are multiplied in float32 by default.
* ``compare_models(conv="dft")`` ignored its measures' options other than rtol/variance/dims
  and never checked their values: svcca ``variance=1.5`` gave 1.0 and ``bogus=1`` ran.

Speed is measured in benchmarks/bench_pairwise.py (``--grid``), never asserted here.
"""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest
import torch

import nncompare as nc
from nncompare.analyses.grid import RDMCache, cka_grid, grid_from_moments

# the modules (nncompare.measures re-exports functions of the same names)
cka_module = importlib.import_module("nncompare.measures.cka")
rsa_module = importlib.import_module("nncompare.measures.rsa")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tied_layers(n: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """Layers whose RDMs are full of ties: integer features, duplicated samples, two
    features (every correlation distance is 0 or 2), and a rescaled copy."""
    rng = np.random.default_rng(seed)
    ints = rng.integers(0, 3, size=(n, 4)).astype(np.float64)
    ints[:, 0] = np.arange(n) % 3  # no sample with all features equal (correlation RDM)
    ints[:, 1] = (np.arange(n) + 1) % 3
    dup = rng.normal(size=(n // 2, 5))
    dup = np.concatenate([dup, dup[::-1]], axis=0)
    two = rng.normal(size=(n, 2))
    smooth = rng.normal(size=(n, 6))
    return {"ints": ints, "dup": dup, "two": two, "smooth": smooth, "ints_big": 1e8 * ints}


def _count_rdms(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every RDM computed by nncompare.measures.rsa (one entry per layer RDM)."""
    calls: list[str] = []
    real = rsa_module._dissimilarity

    def counting(xp, X, metric, *, label, measure):
        calls.append(label)
        return real(xp, X, metric, label=label, measure=measure)

    monkeypatch.setattr(rsa_module, "_dissimilarity", counting)
    return calls


# --------------------------------------------------------------------------- RSA
@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize(
    ("rdm", "compare"),
    [("correlation", "spearman"), ("euclidean", "spearman"), ("euclidean", "pearson")],
)
def test_pairwise_rsa_equals_per_pair_rsa_with_ties(monkeypatch, lib, rdm, compare):
    acts = _tied_layers()
    if lib == "torch":
        acts = {k: torch.from_numpy(v) for k, v in acts.items()}
    per_pair = {
        (a, b): float(nc.rsa(acts[a], acts[b], rdm=rdm, compare=compare))
        for a in acts
        for b in acts
    }
    calls = _count_rdms(monkeypatch)
    g = nc.pairwise(acts, measures={"rsa": {"rdm": rdm, "compare": compare}})
    names = list(acts)
    assert not g.errors
    for (a, b), v in per_pair.items():
        assert g["rsa"][names.index(a), names.index(b)] == v, (a, b)  # the same computation
    assert len(calls) == len(names)  # each layer's RDM once (was: twice per pair)


def test_pairwise_rsa_two_lists_and_undefined_layers_keep_their_errors(monkeypatch):
    acts = _tied_layers(30, seed=1)
    other = {"flat": np.full((30, 3), 2.5), "ints": acts["ints"], "smooth2": acts["smooth"] ** 2}
    calls = _count_rdms(monkeypatch)
    g = nc.pairwise(acts, other, measures=["rsa"])
    # acts' five layers and other's three (the flat one fails once, before any n × n work)
    assert len(calls) == len(acts) + len(other)
    for i, a in enumerate(acts):
        for j, b in enumerate(other):
            if b == "flat":
                with pytest.raises(ValueError, match="every feature of Y is constant") as e:
                    nc.rsa(acts[a], other[b])
                assert np.isnan(g["rsa"][i, j])
                assert g.errors[("rsa", a, b)] == str(e.value)
            else:
                assert g["rsa"][i, j] == float(nc.rsa(acts[a], other[b])), (a, b)


def test_pairwise_rsa_orientation_of_a_constant_rdm_error():
    """A layer whose RDM is constant up to rounding: the message names X or Y by the
    orientation of each cell, as nc.rsa does, though the layer is examined once."""
    rng = np.random.default_rng(2)
    good = rng.normal(size=(20, 3))
    same_dist = np.eye(20)  # every pair of samples at the same distance
    g = nc.pairwise({"good": good, "eye": same_dist}, measures={"rsa": {"rdm": "euclidean"}})
    assert g.errors[("rsa", "good", "eye")].startswith("rsa is undefined: the RDM of Y ")
    assert g.errors[("rsa", "eye", "good")].startswith("rsa is undefined: the RDM of X ")
    with pytest.raises(ValueError, match="the RDM of Y is constant"):
        nc.rsa(good, same_dist, rdm="euclidean")


def test_rdm_cache_evicts_least_recently_used_within_its_budget():
    cache = RDMCache(budget=8 * 25)
    for k in "abc":
        cache[k] = np.zeros(10)
    assert "a" not in cache and "b" in cache and "c" in cache and cache.nbytes == 160
    cache.get("b")
    cache["d"] = np.zeros(10)  # evicts c, the least recently used
    assert "c" not in cache and "b" in cache and "d" in cache
    cache["e"] = np.zeros(30)  # larger than the whole budget: not kept, nothing evicted
    assert "e" not in cache and len(cache) == 2
    cache["err"] = ("X", "message")  # errors cost nothing
    assert cache.get("err") == ("X", "message")


def test_rsa_with_an_rdm_cache_too_small_still_gives_the_values():
    acts = _tied_layers(24, seed=3)
    names = list(acts)
    cache = RDMCache(budget=0)
    for a in names:
        for b in names:
            r = rsa_module.rsa_cached(acts[a], acts[b], keys=(a, b), cache=cache)
            assert float(r) == float(nc.rsa(acts[a], acts[b]))
            assert r.conventions == nc.rsa(acts[a], acts[b]).conventions
    assert len(cache) == 0


@pytest.fixture(scope="module")
def digits():
    from nncompare.workbench.data import load_digits

    return load_digits("test")


@pytest.fixture(scope="module")
def nets():
    from nncompare.workbench.models import SmallCNN

    torch.manual_seed(0)
    a = SmallCNN()
    torch.manual_seed(1)
    b = SmallCNN()
    return a, b


def test_compare_models_rsa_computes_each_rdm_once(monkeypatch, nets, digits):
    a, b = nets
    kw = dict(layers_a=["relu1", "relu2", "fc"], layers_b=["relu2", "fc"], batch_size=64)
    x = digits.x[:150]
    calls = _count_rdms(monkeypatch)
    df = nc.compare_models(a, b, x, measures=["rsa"], **kw)
    assert len(calls) == 3 + 2  # once per layer; was twice per pair (12)
    # the per-pair path of before (nc.rsa on the same captured arrays): the very same values
    monkeypatch.setattr(
        rsa_module, "rsa_cached", lambda X, Y, *, keys, cache, **opts: nc.rsa(X, Y, **opts)
    )
    calls.clear()
    before = nc.compare_models(a, b, x, measures=["rsa"], **kw)
    assert len(calls) == 12
    assert df["error"].isna().all()
    np.testing.assert_array_equal(df["value"], before["value"])


# --------------------------------------------------------------------------- CKA grid
def _cka_layers(n: int = 300, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 8))
    acts = {
        f"l{i}": np.maximum(base @ rng.normal(size=(8, 6 + 3 * i)), 0)
        + 0.2 * rng.normal(size=(n, 6 + 3 * i))
        for i in range(4)
    }
    acts["tiny"] = 1e-9 * acts["l1"] + 5.0  # scale and offset: CKA is invariant to both
    acts["huge"] = 1e7 * acts["l2"]
    part = acts["l3"].copy()
    part[:, :3] = 0.25  # some constant features
    acts["part"] = part
    return acts


def test_pairwise_cka_equals_per_pair_cka():
    acts = _cka_layers()
    g = nc.pairwise(acts, measures=["cka"])
    names = list(acts)
    assert not g.errors
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            assert g["cka"][i, j] == pytest.approx(float(nc.cka(acts[a], acts[b])), abs=1e-12)


def test_pairwise_cka_is_read_off_the_joint_product(monkeypatch):
    """No per-pair CKA evaluation: the measure function runs only for undefined cells."""
    acts = _cka_layers(120, seed=4)
    acts["dead"] = np.full((120, 2), 3.0)
    calls = []
    real = cka_module.cka

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cka_module, "cka", counting)
    g = nc.pairwise(acts, measures=["cka"])
    assert len(calls) == 2 * len(acts) - 1  # the dead row and column, each in its orientation
    names = list(acts)
    d = names.index("dead")
    assert np.isnan(g["cka"][d]).all() and np.isnan(g["cka"][:, d]).all()
    assert g.errors[("cka", "l0", "dead")].startswith("CKA is undefined: Y ")
    assert g.errors[("cka", "dead", "l0")].startswith("CKA is undefined: X ")
    assert g.errors[("cka", "dead", "dead")].startswith("CKA is undefined: X ")
    assert len(g.errors) == 2 * len(acts) - 1
    with pytest.raises(ValueError, match="CKA is undefined: Y has zero variance"):
        nc.pairwise(acts, measures=["cka"], errors="raise")


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_cka_grid_of_two_lists_and_from_moments(lib):
    acts = _cka_layers(200, seed=5)
    A = {k: acts[k] for k in ("l0", "tiny", "part")}
    B = {k: acts[k] for k in ("l3", "huge")}
    B["flat"] = np.full((200, 4), -1.0)
    if lib == "torch":
        A = {k: torch.from_numpy(v) for k, v in A.items()}
        B = {k: torch.from_numpy(v) for k, v in B.items()}
    g = nc.pairwise(A, B, measures=["cka"])
    for i, a in enumerate(A):
        for j, b in enumerate(B):
            if b == "flat":
                assert np.isnan(g["cka"][i, j])
                assert g.errors[("cka", a, b)].startswith("CKA is undefined: Y ")
                continue
            assert g["cka"][i, j] == pytest.approx(float(nc.cka(A[a], B[b])), abs=1e-12)
    # blocks in any order (not contiguous in the accumulator): gathered columns
    jm = nc.JointMoments().update({**A, **B})
    rows, cols = ["part", "l0"], ["huge", "tiny", "l3", "part"]
    vals = cka_grid(jm, rows, cols)
    gm = grid_from_moments(jm, rows, cols, measures=["cka"])
    for i, a in enumerate(rows):
        for j, b in enumerate(cols):
            expected = float(nc.cka(jm.pair(a, b)))
            assert vals[i, j] == pytest.approx(expected, abs=1e-12)
            assert gm["cka"][i, j] == pytest.approx(expected, abs=1e-12)


def test_pairwise_cka_keep_results_and_mirror():
    acts = _cka_layers(150, seed=6)
    g = nc.pairwise(acts, measures=["cka"])
    np.testing.assert_array_equal(g["cka"], g["cka"].T)
    kept = nc.pairwise(acts, measures=["cka"], keep_results=True)
    assert len(kept.results) == len(acts) ** 2
    np.testing.assert_allclose(kept["cka"], g["cka"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.diag(g["cka"]), 1.0, rtol=0, atol=1e-12)


def test_float32_layers_use_float32_products_by_default():
    acts = {k: v.astype(np.float32) for k, v in _cka_layers(400, seed=7).items()}
    del acts["tiny"], acts["part"]  # 1e-9 x + 5 is constant in float32; part warns
    fast = nc.pairwise(acts, measures=["cka", "svcca", "procrustes"])
    exact = nc.pairwise(acts, measures=["cka", "svcca", "procrustes"], precision="float64")
    names = list(acts)
    for m in ("cka", "svcca", "procrustes"):
        np.testing.assert_allclose(fast[m], exact[m], rtol=0, atol=1e-5)
        assert not np.array_equal(fast[m], exact[m])  # the products were float32
    acts64 = {k: v.astype(np.float64) for k, v in acts.items()}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            v = float(nc.cka(acts64[a], acts64[b]))
            assert exact["cka"][i, j] == pytest.approx(v, abs=1e-12)
    with pytest.raises(
        ValueError, match=r"precision must be one of 'auto', 'float32', 'float64'; got 'float16'"
    ):
        nc.pairwise(acts, measures=["cka"], precision="float16")


# --------------------------------------------------------------------------- options
def test_pairwise_refuses_unknown_measure_options_naming_the_valid_ones():
    acts = _cka_layers(60)
    with pytest.raises(
        TypeError, match=r"svcca has no option 'bogus'; its options are 'variance', 'dims'"
    ):
        nc.pairwise(acts, measures={"svcca": {"bogus": 1}})
    with pytest.raises(TypeError, match=r"no option 'varaince' \(did you mean 'variance'\?\)"):
        nc.pairwise(acts, measures={"svcca": {"varaince": 0.9}})
    with pytest.raises(TypeError, match=r"cka has no option 'k'; it takes no options"):
        nc.pairwise(acts, measures={"cka": {"k": 3}})
    with pytest.raises(TypeError, match=r"'conv' is not an option of rsa: set it for the whole"):
        nc.pairwise(acts, measures={"rsa": {"conv": "mean"}})
    with pytest.raises(TypeError, match=r"the options of 'svcca' must be a mapping"):
        nc.pairwise(acts, measures={"svcca": 0.99})


def test_pairwise_bad_option_value_is_refused_with_the_measures_error():
    """A bad value used to fill the grid with NaN (each pair recording the error); it is the
    caller's error, so it is refused before any pair, as compare_models refuses it."""
    acts = _cka_layers(60)
    with pytest.raises(
        ValueError,
        match=r"^svcca: variance must lie in \(0, 1\] or be None; got 1\.5\. Pass e\.g\. "
        r"variance=0\.99 \(the default\)\.$",
    ):
        nc.pairwise(acts, measures={"svcca": {"variance": 1.5}})


@pytest.mark.parametrize("conv", ["dft", "mean"])
def test_compare_models_checks_measure_options_with_every_policy(nets, digits, conv):
    """conv='dft' ignored unknown options and never checked values: variance=1.5 gave 1.0."""
    a, b = nets
    kw = dict(layers_a=["relu1", "relu2"], layers_b=["relu2"], conv=conv, batch_size=100)
    x = digits.x[:200]
    with pytest.raises(TypeError, match=r"svcca has no option 'bogus'; its options are"):
        nc.compare_models(a, b, x, measures={"svcca": {"bogus": 1}}, **kw)
    X = np.random.default_rng(0).normal(size=(50, 4, 4, 3))
    for opts, message in (
        ({"variance": 1.5}, r"variance must lie in \(0, 1\] or be None; got 1\.5\."),
        ({"variance": 0.0}, r"variance must lie in \(0, 1\] or be None; got 0\.0\."),
        ({"dims": 0}, r"dims must be a positive integer, .*; got 0\."),
        ({"dims": (2, 3, 4)}, r"dims must be .*a pair \(dims_x, dims_y\)"),
        ({"rtol": 2.0}, r"rtol must lie in \(0, 1\); got 2\.0\."),
    ):
        with pytest.raises(ValueError, match=message) as e:  # the library's own error
            nc.svcca(X, X, conv="dft", **opts)
        # the same message, before any model runs (not NaN in every row)
        with pytest.raises(ValueError, match="^" + re.escape(str(e.value)) + "$"):
            nc.compare_models(a, b, x, measures={"svcca": opts}, **kw)
    with pytest.raises(ValueError, match=r"rtol must lie in \(0, 1\); got 0\.0\."):
        nc.cca(X, X, conv="dft", rtol=0.0)
    expected = "cca: rtol must lie in (0, 1); got 0.0. Pass e.g. rtol=1e-10 (the default)."
    with pytest.raises(ValueError, match="^" + re.escape(expected) + "$"):
        nc.compare_models(a, b, x, measures={"cca": {"rtol": 0.0}}, **kw)


def test_compare_models_dft_honours_valid_options(nets, digits):
    from nncompare.capture import to_channels_last

    a, b = nets
    x = digits.x[:200]
    df = nc.compare_models(
        a,
        b,
        x,
        layers_a=["relu2"],
        layers_b=["relu2"],
        measures={"svcca": {"dims": (3, 2)}},
        conv="dft",
        batch_size=64,
    )
    X = to_channels_last(nc.capture(a, x, ["relu2"])["relu2"]).astype(np.float64)
    Y = to_channels_last(nc.capture(b, x, ["relu2"])["relu2"]).astype(np.float64)
    ref = nc.svcca(X, Y, conv="dft", dims=(3, 2))
    row = df.iloc[0]
    assert (row["kept_dims_x"], row["kept_dims_y"]) == (ref.kept_dims_x, ref.kept_dims_y)
    assert row["value"] == pytest.approx(float(ref), rel=1e-9)
