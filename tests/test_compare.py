"""compare_models / compare_checkpoints / pairwise on real models and data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nncompare as nc
from nncompare.workbench.data import load_digits
from nncompare.workbench.models import MLP, SmallCNN


def _shared() -> Path:
    env = os.environ.get("NNCOMPARE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="module")
def digits():
    return load_digits("test")


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    a = SmallCNN()
    torch.manual_seed(1)
    b = SmallCNN()
    return a, b


def test_compare_models_tidy_frame(nets, digits):
    a, b = nets
    df = nc.compare_models(
        a,
        b,
        digits.x,
        layers_a=["conv*", "fc"],
        layers_b=["conv2", "fc"],
        measures=["cka", "svcca", "pwcca"],
        batch_size=100,
    )
    assert set(df.columns) >= {
        "model_a",
        "model_b",
        "layer_a",
        "layer_b",
        "measure",
        "value",
        "policy",
        "n_samples",
        "error",
    }
    assert len(df) == 3 * 2 * 3
    assert (df["n_samples"] == len(digits.x)).all()
    assert set(df["policy"]) <= {"mean", "none", "mean/none", "none/mean"}
    assert df["value"].between(0, 1).all()
    assert set(df.attrs["measures"]) == {"cka", "svcca", "pwcca"}
    assert "torch" in df.attrs["provenance"]
    assert "conv2|fc" in df.attrs["spectra"]["svcca"]
    assert df.attrs["kept_dims"]


def test_compare_models_matches_in_memory_measures(nets, digits):
    """The streamed grid equals the measures computed on the captured arrays."""
    a, b = nets
    layers = ["relu1", "relu2", "fc"]
    df = nc.compare_models(
        a,
        b,
        digits.x,
        layers_a=layers,
        layers_b=layers,
        measures=["cka", "cca", "cka_debiased"],
        batch_size=64,
    )
    acts_a = nc.capture(a, digits.x, layers, reduce="avgpool")
    acts_b = nc.capture(b, digits.x, layers, reduce="avgpool")
    for la in layers:
        for lb in layers:
            X = acts_a[la].astype(np.float64)
            Y = acts_b[lb].astype(np.float64)
            for m in ("cka", "cca", "cka_debiased"):
                got = df.query("layer_a == @la and layer_b == @lb and measure == @m")["value"]
                want = nc.similarity(X, Y, m)
                np.testing.assert_allclose(got.item(), want, rtol=1e-6, atol=1e-9)


def test_compare_same_model_runs_once_and_is_one_on_diagonal(nets, digits):
    a, _ = nets
    df = nc.compare_models(a, a, digits.x, layers_a=["relu1", "fc"], measures=["cka"])
    diag = df[df.layer_a == df.layer_b]["value"].to_numpy()
    np.testing.assert_allclose(diag, 1.0, atol=1e-12)


def test_compare_models_samples_policy_pairs_only_same_resolution(nets, digits):
    a, b = nets
    df = nc.compare_models(
        a,
        b,
        digits.x,
        layers_a=["relu1", "relu2"],
        layers_b=["relu1"],
        measures=["cka"],
        conv="samples",
    )
    same = df.query("layer_a == 'relu1'")
    other = df.query("layer_a == 'relu2'")
    assert same["value"].notna().all() and (same["policy"] == "samples").all()
    assert same["error"].isna().all()
    # relu1 is 8x8, relu2 (after the max-pool) 4x4: their locations cannot be paired
    assert len(other) == 1 and other["value"].isna().all()
    assert (
        other["error"]
        .str.contains(r"need the same spatial size; got \(4, 4\) and \(8, 8\)", regex=True)
        .all()
    )


def test_compare_checkpoints_layer_by_checkpoint(digits, tmp_path):
    torch.manual_seed(0)
    net = MLP(64, (32, 16), 10)
    x = digits.x.reshape(len(digits.x), -1)
    states = []
    for _step in range(3):
        states.append({k: v.clone() for k, v in net.state_dict().items()})
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
    paths = []
    for i, s in enumerate(states):
        path = tmp_path / f"ckpt{i}.pt"
        torch.save(s, path)
        paths.append(path)
    df = nc.compare_checkpoints(net, paths, x, measures=["cka", "cca"])
    assert set(df["checkpoint"]) == {"ckpt0", "ckpt1", "ckpt2"}
    assert (df["reference"] == "ckpt2").all()
    last = df[df.checkpoint == "ckpt2"]["value"].to_numpy()
    np.testing.assert_allclose(last, 1.0, atol=1e-9)
    grid = nc.compare_checkpoints(net, states, x, measures=["cka"], reference="all")
    assert len(grid) == len(set(grid["layer"])) * 9
    with pytest.raises(ValueError, match="reference"):
        nc.compare_checkpoints(net, states, x, reference=7)


def test_pairwise_joint_moments_equal_per_pair():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(400, 6))
    acts = {
        f"l{i}": base @ rng.normal(size=(6, 5 + i)) + 0.3 * rng.normal(size=(400, 5 + i))
        for i in range(4)
    }
    g = nc.pairwise(acts, measures=["cka", "cca", "svcca", "pwcca", "procrustes", "rsa"])
    for i, a in enumerate(acts):
        for j, b in enumerate(acts):
            for m in g.measures:
                np.testing.assert_allclose(
                    g[m][i, j], nc.similarity(acts[a], acts[b], m), rtol=1e-9, atol=1e-12
                )
    frame = g.to_frame()
    assert len(frame) == 16 * len(g.measures)


def test_pairwise_records_undefined_pairs():
    rng = np.random.default_rng(0)
    acts = {"small": rng.normal(size=(30, 5)), "wide": rng.normal(size=(30, 40))}
    g = nc.pairwise(acts, measures=["cca", "cka"])
    assert np.isnan(g["cca"][0, 1]) and ("cca", "small", "wide") in g.errors
    # the mirrored cell of the symmetric grid has its error too, not just the NaN
    assert np.isnan(g["cca"][1, 0]) and ("cca", "wide", "small") in g.errors
    assert np.isfinite(g["cka"]).all()
    with pytest.raises(ValueError, match="trivially"):
        nc.pairwise(acts, measures=["cca"], errors="raise")


def test_pairwise_symmetric_cells_keep_their_own_error_and_results():
    """A symmetric measure's lower triangle mirrors values only: each undefined cell has an
    error naming its own orientation, and kept results are per orientation."""
    rng = np.random.default_rng(1)
    good = rng.normal(size=(60, 4))
    other = good @ rng.normal(size=(4, 3)) + rng.normal(size=(60, 3))
    acts = {"good": good, "dead": np.full((60, 2), 0.5), "other": other}
    g = nc.pairwise(acts, measures=["cka", "cca"])
    names = list(acts)
    for m in ("cka", "cca"):
        for a in names:
            for b in names:
                cell = g[m][names.index(a), names.index(b)]
                undefined = "dead" in (a, b)
                assert np.isnan(cell) == undefined, (m, a, b)
                assert ((m, a, b) in g.errors) == undefined, (m, a, b)
    # the message names the constant argument of that orientation
    assert g.errors[("cka", "good", "dead")].startswith("CKA is undefined: Y ")
    assert g.errors[("cka", "dead", "good")].startswith("CKA is undefined: X ")
    frame = g.to_frame()
    assert frame[frame["value"].isna()]["error"].notna().all()
    assert frame[frame["value"].notna()]["error"].isna().all()
    np.testing.assert_allclose(g["cka"], g["cka"].T)  # NaN == NaN for assert_allclose

    kept = nc.pairwise({"good": good, "other": other}, measures=["cca"], keep_results=True)
    assert set(kept.results) == {
        ("cca", a, b) for a in ("good", "other") for b in ("good", "other")
    }
    go, og = kept.results[("cca", "good", "other")], kept.results[("cca", "other", "good")]
    assert go.directions_x.shape == (4, 3) and go.directions_y.shape == (3, 3)
    assert og.directions_x.shape == (3, 3) and og.directions_y.shape == (4, 3)
    assert (go.rank_x, go.rank_y) == (og.rank_y, og.rank_x) == (4, 3)
    np.testing.assert_allclose(kept["cca"], kept["cca"].T, rtol=1e-12)
    rows = kept.to_frame().set_index(["layer_a", "layer_b"])
    assert (rows.loc[("other", "good"), "rank_x"], rows.loc[("other", "good"), "rank_y"]) == (3, 4)


_MEMORY_PROBE = """
import json, sys
import torch
torch.set_num_threads(1)
import nncompare as nc
from nncompare.workbench.models import MLP

def batches(n, seed):  # a generator: the data themselves never sit in memory
    g = torch.Generator().manual_seed(seed)
    for _ in range(n // 250):
        yield torch.randn(250, 64, generator=g)

def status_kib(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key))

def extra_kib(run):
    # The peak this process reaches during run() above its resident size before it. VmHWM is
    # the process's own high-water mark (ru_maxrss is not: Linux carries a parent's across
    # fork and exec), reset to the current size by writing 5 to clear_refs; measuring within
    # one process also removes the baseline's spread between processes (~20 MiB).
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = status_kib("VmRSS:")
    run()
    return status_kib("VmHWM:") - before

torch.manual_seed(0)
a, b = MLP(64, (256,), 10), MLP(64, (256,), 10)
kw = dict(layers_a=["relu1", "fc2"], layers_b=["relu1", "fc2"], batch_size=250)

def compare(n, measures):
    df = nc.compare_models(a, b, batches(n, 2), measures=measures, **kw)
    assert df["error"].isna().all(), df["error"].tolist()

compare(2000, ["cka", "cca"])  # imports, caches
compare(2000, ["cka_debiased"])
out = {
    "small": extra_kib(lambda: compare(6000, ["cka", "cca"])),
    "large": extra_kib(lambda: compare(30000, ["cka", "cca"])),
    "kept": extra_kib(lambda: compare(30000, ["cka_debiased"])),
}
print(json.dumps(out))
"""


def _extra_kib() -> dict[str, int]:
    """Peak memory above the baseline of three compare_models runs in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_compare_models_memory_does_not_grow_with_n():
    """Peak resident memory (VmHWM, which sees torch's allocator) of a streamed
    compare_models over 30k samples stays at that of a 6k-sample run: the activations,
    266 float64 features x 2 models = 4.3 kB per sample (100 MiB for the extra 24k), are
    not kept. Control: cka_debiased, which keeps them by design, shows the probe sees them."""
    extra = _extra_kib()
    growth = {"streaming": extra["large"] - extra["small"], "kept": extra["kept"] - extra["large"]}
    assert growth["streaming"] < 24 * 1024, growth
    assert growth["kept"] > 64 * 1024, growth


@pytest.mark.shared
@pytest.mark.slow
def test_resnet20_vs_resnet32_streaming_grid_bounded_memory():
    """ResNet-20 vs ResNet-32 stage-by-stage grid, streamed over real CIFAR-10 images."""
    root = _shared() / "data"
    ck = root / "akamaster_resnet_cifar10"
    data = root / "cifar10" / "cifar10_test_jpeg10k.npz"
    if not data.exists() or not ck.exists():
        pytest.skip("shared data not available")
    from nncompare.workbench.models import cifar_preprocess, cifar_resnet

    r20 = cifar_resnet(20, weights=ck / "resnet20-12fca82f.th")
    r32 = cifar_resnet(32, weights=ck / "resnet32-d509ac18.th")
    with np.load(data) as f:
        x = cifar_preprocess(f["x"][:1024])
    layers_a = ["layer1", "layer2", "layer3", "avgpool", "linear"]
    df = nc.compare_models(
        r20,
        r32,
        x,
        layers_a=layers_a,
        layers_b=layers_a,
        measures=["cka", "svcca"],
        batch_size=128,
        names=("R20", "R32"),
    )
    cka = df[df.measure == "cka"].pivot(index="layer_a", columns="layer_b", values="value")
    cka = cka.loc[layers_a, layers_a]
    assert np.isfinite(cka.to_numpy()).all()
    # corresponding stages are more alike than mismatched ones
    for layer in layers_a:
        assert cka.loc[layer, layer] == pytest.approx(cka.loc[layer].max(), abs=0.05)
    assert cka.loc["linear", "linear"] > 0.8  # logits of two good CIFAR classifiers
    # the accumulators hold only (D, D) moments (memory itself is measured in
    # test_compare_models_memory_does_not_grow_with_n)
    from nncompare.analyses.compare import _run_stream

    small = _run_stream(
        {"A": (r20, ["layer3"])},
        x[:256],
        conv="mean",
        batch_size=128,
        device=None,
        progress=False,
        max_samples=None,
        keep_arrays=False,
    )
    big = _run_stream(
        {"A": (r20, ["layer3"])},
        x,
        conv="mean",
        batch_size=128,
        device=None,
        progress=False,
        max_samples=None,
        keep_arrays=False,
    )
    (jm_small,), (jm_big,) = small.groups.values(), big.groups.values()
    assert jm_small.comoment.shape == jm_big.comoment.shape == (64, 64)
    assert big.arrays == {} and big.n_samples == 1024


def test_compare_models_dft_streams_exactly(nets, digits):
    """conv='dft' in compare_models (per-frequency streaming moments) == in-memory dft_cca."""
    from nncompare.capture import to_channels_last

    a, b = nets
    layers = ["relu1", "relu2", "fc"]
    df = nc.compare_models(
        a,
        b,
        digits.x,
        layers_a=layers,
        layers_b=layers,
        measures=["cca", "svcca", "cka"],
        conv="dft",
        batch_size=97,
    )
    assert (df["policy"] == "dft").all()
    assert df[df.measure == "cka"]["value"].isna().all()
    assert "not defined with conv='dft'" in df[df.measure == "cka"]["error"].iloc[0]
    acts_a = nc.capture(a, digits.x, layers)
    acts_b = nc.capture(b, digits.x, layers)

    def conv_view(arr):
        arr = arr.astype(np.float64)
        return to_channels_last(arr) if arr.ndim > 2 else arr[:, None, None, :]

    for la in layers:
        for lb in layers:
            X, Y = conv_view(acts_a[la]), conv_view(acts_b[lb])
            for m, fn in (("cca", nc.cca), ("svcca", nc.svcca)):  # noqa: B007 (used in query)
                got = df.query("layer_a == @la and layer_b == @lb and measure == @m")["value"]
                np.testing.assert_allclose(got.item(), float(fn(X, Y, conv="dft")), rtol=1e-9)


# --------------------------------------------------------------------------- distance column


def test_distance_column_follows_each_measures_rule(nets, digits, tmp_path):
    """Issue 7 item 9: a distance next to every value (anatome/netrep habits)."""
    from nncompare.report import load_results, write_report

    a, b = nets
    layers = ["relu2", "fc"]
    df = nc.compare_models(
        a,
        b,
        digits.x,
        layers_a=layers,
        layers_b=layers,
        measures=["cka", "procrustes", "shape", "rsa"],
        batch_size=128,
    )
    cols = list(df.columns)
    assert cols[cols.index("value") + 1] == "distance"
    for m in ("cka", "rsa"):
        sub = df[df.measure == m]
        np.testing.assert_allclose(sub["distance"], 1.0 - sub["value"], rtol=0, atol=1e-15)
    # procrustes / shape: the angular shape metric of Williams et al. (2021), as the result
    # objects of the in-memory measures report it
    acts_a = nc.capture(a, digits.x, layers, reduce="avgpool")
    acts_b = nc.capture(b, digits.x, layers, reduce="avgpool")
    for la in layers:
        for lb in layers:
            X, Y = acts_a[la].astype(np.float64), acts_b[lb].astype(np.float64)
            for m, fn in (("procrustes", nc.procrustes), ("shape", nc.shape)):  # noqa: B007
                got = df.query("layer_a == @la and layer_b == @lb and measure == @m")
                np.testing.assert_allclose(got["distance"].item(), fn(X, Y).angular, rtol=1e-6)
                assert got["distance"].item() == pytest.approx(np.arccos(got["value"].item()))
    # the column survives the report's results.json
    back = load_results(write_report(df, tmp_path).json)
    np.testing.assert_allclose(back["distance"], df["distance"], rtol=1e-12)


def test_distance_is_nan_where_the_value_is(nets, digits):
    a, _ = nets
    df = nc.compare_models(a, a, digits.x, layers_a=["relu2"], measures=["cka"], conv="dft")
    assert df["value"].isna().all() and df["distance"].isna().all()


def test_registry_distance_rule_matches_the_result_objects():
    """The registry's declared rule and each result class's .distance agree, measure by measure."""
    from nncompare.measures._registry import distance

    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 6))
    Y = X[:, :4] @ rng.standard_normal((4, 5)) + 0.5 * rng.standard_normal((80, 5))
    for name, info in nc.measures.available().items():
        args = (np.cov(X[:, :5].T), np.cov(Y.T)) if info.input == "covariances" else (X, Y)
        res = info.function(*args)
        assert distance(name, float(res)) == pytest.approx(res.distance, abs=1e-12), name
    assert nc.measures.get("procrustes").distance == "arccos(value)"
    assert nc.measures.get("bures_wasserstein").distance == "value"
    assert nc.measures.get("cka").distance == "1 - value"


def test_pairwise_frame_has_distance():
    rng = np.random.default_rng(0)
    acts = {"x": rng.standard_normal((50, 4)), "y": rng.standard_normal((50, 3))}
    frame = nc.pairwise(acts, measures=["cka", "procrustes"]).to_frame()
    cka = frame[frame.measure == "cka"]
    np.testing.assert_allclose(cka["distance"], 1.0 - cka["value"])
    pro = frame[frame.measure == "procrustes"]
    np.testing.assert_allclose(pro["distance"], np.arccos(np.clip(pro["value"], -1, 1)))
