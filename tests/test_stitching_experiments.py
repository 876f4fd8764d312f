"""The stitching paper's experiments (nc.stitching.experiments) and their figures (nc.plot).

Two SmallCNNs (and two half-width ones for the width sweep) are trained once per module for
a few epochs on scikit-learn's 8×8 digits, then every experiment runs at tiny scale. The
tests check each frame's schema and value ranges and the paper's claims that hold even at
this scale for mathematical reasons (self-stitching at the identity reproduces the model;
CCA and the refitted R² ignore an invertible stitching layer; full-rank reduced-rank LS is
LS; the endpoints of a mode-connectivity path are the solutions; lasso sparsity grows with
alpha) or by a wide margin (the CKA penalty lowers CKA while the accuracy holds; LS starts
beat random ones after one epoch). Every figure is drawn to PNG.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")

import nncompare as nc  # noqa: E402
from nncompare.plot._export import figure_to_png_bytes  # noqa: E402
from nncompare.stitching import experiments as E  # noqa: E402
from nncompare.stitching import stitch  # noqa: E402
from nncompare.workbench.data import load_digits  # noqa: E402
from nncompare.workbench.models import SmallCNN, cifar_resnet  # noqa: E402
from nncompare.workbench.training import train as train_net  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNG = b"\x89PNG\r\n\x1a\n"
COMMON = [
    "layer_a",
    "layer_b",
    "kind",
    "method",
    "width_a",
    "width_b",
    "accuracy",
    "accuracy_b",
    "relative_accuracy",
    "cross_entropy",
    "skipped",
]
N_TEST = 450  # scikit-learn digits test split (stratified 25 %)


def _net(seed: int, widths: tuple[int, int] = (16, 32)) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = SmallCNN(widths=widths)
    train_net(net, load_digits("train"), epochs=3, lr=0.1, seed=seed, lr_schedule="cosine")
    return net.eval()


@pytest.fixture(scope="module")
def digits():
    tr, te = load_digits("train"), load_digits("test")
    return (tr.x, tr.y), (te.x, te.y)


@pytest.fixture(scope="module")
def nets(one_torch_thread):
    return _net(0), _net(1)


@pytest.fixture(scope="module")
def half_nets(one_torch_thread):
    return _net(2, (8, 16)), _net(3, (8, 16))


def _measured(df):
    return df[df["skipped"].isna()]


def _png(fig) -> bytes:
    data = figure_to_png_bytes(fig, dpi=60)
    assert data[:8] == PNG
    return data


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- layer sweep


@pytest.fixture(scope="module")
def sweep(nets, digits):
    a, b = nets
    before = (_state(a), _state(b))
    df = E.layer_sweep(
        a, b, ["relu1", "relu2", ("relu1", "relu2")], *digits, lr=1e-2, resize="pool"
    )
    return df, before


def test_layer_sweep_schema_and_ranges(sweep):
    df, _ = sweep
    assert {*COMMON, "position", "seed", "fit_r2"} <= set(df.columns)
    assert df.attrs["experiment"] == "layer_sweep"
    assert df.attrs["provenance"]["reference"].startswith("Csiszárik et al. 2021")
    assert df.attrs["provenance"]["training"]["lr"] == 1e-2
    # per layer: identity baseline, ls, task
    assert df.groupby("position")["method"].apply(list).tolist() == [["identity", "ls", "task"]] * 3
    m = _measured(df)
    assert m["relative_accuracy"].between(0, 1.5).all()
    assert (m["accuracy_b"] > 0.5).all()
    assert (m["cross_entropy"] > 0).all()
    ls = m[m["method"] == "ls"]
    assert ls["fit_r2"].between(-1, 1).all() and ls["option_batch_size"].notna().all()
    assert m.loc[m["method"] == "task", "option_init"].eq("ls").all()


def test_layer_sweep_identity_baseline_skipped_between_widths(sweep):
    df, _ = sweep
    cross = df[(df["layer_a"] == "relu1") & (df["layer_b"] == "relu2")]
    ident = cross[cross["method"] == "identity"].iloc[0]
    assert ident["skipped"].startswith("no identity map between different widths (C_a = 16")
    assert math.isnan(ident["relative_accuracy"])
    assert cross.loc[cross["method"] != "identity", "skipped"].isna().all()
    assert cross["resize"].dropna().eq("pool").all()


def test_layer_sweep_direct_matching_beats_no_transformation(sweep):
    # different seeds: the channels are in an arbitrary order, so the identity is near chance
    df, _ = sweep
    m = _measured(df).set_index(["position", "method"])["relative_accuracy"]
    for position in (0, 1):
        assert m[(position, "ls")] > m[(position, "identity")] + 0.3


def test_layer_sweep_leaves_the_models_alone(sweep, nets):
    _, (state_a, state_b) = sweep
    for model, before in zip(nets, (state_a, state_b), strict=True):
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert all(p.requires_grad for p in model.parameters())


def test_self_stitch_at_identity_has_relative_accuracy_one(nets, digits):
    a, _ = nets
    df = E.layer_sweep(a, a, ["relu1", "relu2"], *digits, methods=("ls",))
    ident = df[df["method"] == "identity"]
    assert ident["relative_accuracy"].tolist() == [1.0, 1.0]
    assert ident["agreement"].tolist() == [1.0, 1.0]
    ls = df[df["method"] == "ls"]
    assert (ls["fit_r2"] > 1 - 1e-6).all()
    assert (ls["relative_accuracy"] - 1).abs().max() <= 2 / N_TEST


def test_layer_sweep_records_invalid_cuts_as_skipped(digits):
    torch.manual_seed(0)
    a, b = cifar_resnet(8), cifar_resnet(8)
    x = torch.randn(8, 3, 32, 32)
    df = E.layer_sweep(a, b, ["layer1.0.bn1"], x, (x, torch.zeros(8, dtype=torch.long)))
    assert df["method"].tolist() == ["identity", "ls", "task"]
    assert df["skipped"].str.startswith("not a valid cut").all()
    assert df["skipped"].str.contains("layer1.0").all()


def test_layer_sweep_bad_input(nets, digits):
    a, b = nets
    (x, y), test = digits
    with pytest.raises(ValueError, match=r"Expected methods to be a non-empty list of \('ls'"):
        E.layer_sweep(a, b, ["relu1"], (x, y), test, methods=("lasso",))
    with pytest.raises(ValueError, match=r"Expected eval_data with class labels.*got inputs only"):
        E.layer_sweep(a, b, ["relu1"], (x, y), test[0])
    with pytest.raises(ValueError, match=r"train_options must not set 'epochs'"):
        E.layer_sweep(a, b, ["relu1"], (x, y), test, train_options={"epochs": 3})
    with pytest.raises(TypeError, match=r"Expected every entry of layers to be a layer name"):
        E.layer_sweep(a, b, [3], (x, y), test)
    with pytest.raises(ValueError, match=r"Expected layers_b to name one layer of model_b per"):
        E.layer_sweep(a, b, ["relu1", "relu2"], (x, y), test, layers_b=["relu1"])


def test_layer_sweep_unknown_layer_raises(nets, digits):
    from nncompare.errors import NNCompareError

    with pytest.raises(NNCompareError, match=r"No layer named 'relu9' in model_a\. Did you mean"):
        E.layer_sweep(*nets, ["relu1", "relu9"], *digits, methods=("ls",))


def test_workbench_datasets_are_accepted(nets):
    # objects with .x / .y (nc.data's data sets) stand for (inputs, labels)
    a, b = nets
    tr, te = load_digits("train"), load_digits("test")
    df = E.layer_sweep(a, b, "relu2", tr, te, methods=("ls",), baseline=False)
    assert df["method"].tolist() == ["ls"] and df["n_samples"].tolist() == [len(tr.x)]


# --------------------------------------------------------------------------- width sweep


@pytest.fixture(scope="module")
def widths(nets, half_nets, digits):
    return E.width_sweep(
        {0.5: half_nets[0], 1: nets[0]},
        {0.5: half_nets[1], 1: nets[1]},
        ["relu1", "relu2"],
        *digits,
        methods=("ls", "task"),
        lr=1e-2,
    )


def test_width_sweep_schema(widths):
    assert {*COMMON, "width", "position"} <= set(widths.columns)
    assert sorted(set(widths["width"])) == [0.5, 1]
    assert len(widths) == 2 * 2 * 2  # widths x layers x methods
    half = widths[widths["width"] == 0.5]
    assert set(half.loc[half["layer_a"] == "relu1", "width_a"]) == {8}
    assert _measured(widths)["relative_accuracy"].between(0, 1.5).all()


def test_width_sweep_needs_the_same_widths(nets, half_nets, digits):
    with pytest.raises(ValueError, match=r"Expected the same widths on both sides, got \[0.5, 1\]"):
        E.width_sweep({0.5: half_nets[0], 1: nets[0]}, {1: nets[1]}, ["relu1"], *digits)


# --------------------------------------------------------------------------- Fig. 4 / 5


@pytest.fixture(scope="module")
def similarity(nets, digits):
    a, b = nets
    return E.similarity_during_training(
        stitch(a, "relu2", b, "relu2"), *digits, eval_every=4, lr=1e-2
    )


def test_similarity_during_training_schema(similarity):
    df = similarity
    assert df.attrs["measures"] == ["cka", "fit_r2", "lr_r2", "cca", "svcca"]
    assert df["step"].tolist() == [0, 4, 8, 11]  # 1347 images in batches of 128: 11 steps
    for m in ("cka", "lr_r2", "cca", "svcca"):
        assert df[m].between(0, 1).all()
    assert df["relative_accuracy"].between(0, 1.5).all() and (df["cross_entropy"] > 0).all()
    assert math.isnan(df["loss"].iloc[0]) and (df["loss"].iloc[1:] > 0).all()


def test_similarity_indices_blind_to_invertible_stitching(similarity):
    # CCA and the refitted R² are invariant to an invertible affine map of S(A) (paper 6.2)
    df = similarity
    assert np.ptp(df["cca"]) < 1e-6
    assert np.ptp(df["lr_r2"]) < 1e-6
    # the fit of the current matrix starts at the LS optimum and leaves it while training
    assert df["fit_r2"].iloc[-1] < df["fit_r2"].iloc[0] - 0.01


def test_fit_r2_oracle():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 3))
    x = y + 0.1 * rng.normal(size=(50, 3))
    expected = 1 - np.sum((x - y) ** 2) / np.sum((y - y.mean(0)) ** 2)
    assert E.fit_r2(x, y) == pytest.approx(expected, rel=1e-12)
    assert E.fit_r2(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(expected)
    assert E.fit_r2(y, y) == 1.0


@pytest.fixture(scope="module")
def cka_self(nets, digits):
    a, _ = nets
    return E.cka_penalised_self_stitch(
        a, "relu2", *digits, penalty=(0.0, 2.0), epochs=2, lr=3e-2, eval_every=11
    )


def test_cka_penalty_lowers_cka_while_accuracy_holds(cka_self):
    df = cka_self
    start = df[df["step"] == 0]
    assert start["relative_accuracy"].tolist() == [1.0, 1.0]  # identity: the model itself
    assert start["cka"].tolist() == pytest.approx([1.0, 1.0], abs=1e-9)
    end = df[df["step"] == df["step"].max()].set_index("penalty")
    assert end.loc[2.0, "cka"] < 0.85
    assert end.loc[2.0, "cka"] < end.loc[0.0, "cka"] - 0.1
    assert end.loc[2.0, "relative_accuracy"] > 0.9
    assert df.attrs["provenance"]["penalties"] == [0.0, 2.0]


# --------------------------------------------------------------------------- Fig. 6 / 7


@pytest.fixture(scope="module")
def inits(nets, digits):
    return E.initialisation_study(*nets, "relu2", *digits, n_random=2, n_ls=2, lr=1e-2)


def test_initialisation_study(inits, nets, digits):
    df = inits
    assert df[["init", "seed"]].values.tolist() == [
        ["random", 0],
        ["random", 1],
        ["ls", 0],
        ["ls", 1],
    ]
    assert df["option_init"].tolist() == ["random", "random", "ls", "ls"]
    assert df["relative_accuracy"].between(0, 1.5).all()
    mean = df.groupby("init")["relative_accuracy"].mean()
    assert mean["ls"] > mean["random"]  # after one epoch, the LS start is far ahead
    with pytest.raises(ValueError, match=r"Expected n_random \+ n_ls >= 1 runs"):
        E.initialisation_study(*nets, "relu2", *digits, n_random=0, n_ls=0)


@pytest.fixture(scope="module")
def low_rank(nets, digits):
    return E.low_rank_study(*nets, ["relu1"], *digits, ranks=(4, 8, 16, 64), lr=1e-2)


def test_low_rank_study(low_rank):
    df = low_rank
    m = _measured(df)
    direct = m[m["method"] == "rrr"].set_index("rank")
    assert direct.index.tolist() == [4, 8, 16]
    # reduced-rank regression is the best fit of its rank: the fit grows with the rank
    assert direct["fit_r2"].is_monotonic_increasing
    task = m[(m["method"] == "task") & (m["kind"] == "lowrank")].set_index("rank")
    assert task.index.tolist() == [4, 8, 16] and task["width_a"].eq(16).all()
    # paper Sec. 7: at a fixed low rank the task loss is far ahead of the SVD's directions
    assert task.loc[4, "relative_accuracy"] > direct.loc[4, "relative_accuracy"] + 0.1
    skipped = df[df["skipped"].notna()]
    assert skipped["rank"].tolist() == [64, 64]
    assert skipped["skipped"].str.contains(r"rank 64 exceeds the smaller width").all()


def test_low_rank_at_full_rank_equals_least_squares(low_rank):
    m = _measured(low_rank)
    ls = m[m["method"] == "ls"].iloc[0]
    rrr = m[(m["method"] == "rrr") & (m["rank"] == 16)].iloc[0]
    assert bool(rrr["full_rank"]) and bool(ls["full_rank"])
    assert rrr["fit_r2"] == pytest.approx(ls["fit_r2"], abs=1e-9)
    assert abs(rrr["relative_accuracy"] - ls["relative_accuracy"]) <= 1 / N_TEST


# --------------------------------------------------------------------------- Exp. 6 / Fig. 8


@pytest.fixture(scope="module")
def modes(nets, digits):
    return E.mode_connectivity(
        *nets, "relu2", *digits, n_solutions=3, lambdas=3, init="ls", lr=1e-2
    )


def test_mode_connectivity_endpoints_are_the_solutions(modes):
    df = modes
    assert len(df.attrs["solutions"]) == 3 and all(s["kept"] for s in df.attrs["solutions"])
    assert df.groupby("pair").size().tolist() == [3, 3, 3]  # 3 pairs x 3 lambdas
    assert df["lambda"].tolist()[:3] == [0.0, 0.5, 1.0]
    at_one, at_zero = df[df["lambda"] == 1.0], df[df["lambda"] == 0.0]
    assert (at_one["relative_accuracy"] == at_one["relative_accuracy_1"]).all()
    assert (at_zero["relative_accuracy"] == at_zero["relative_accuracy_2"]).all()
    own = {s["seed"]: s["relative_accuracy"] for s in df.attrs["solutions"]}
    assert [own[s] for s in df["seed_1"]] == df["relative_accuracy_1"].tolist()
    assert df["method"].eq("interpolated").all()


def test_mode_connectivity_warns_without_a_pair(nets, digits):
    with pytest.warns(E.StitchingExperimentWarning, match=r"Only 0 of the 2 task-loss solutions"):
        df = E.mode_connectivity(
            *nets, "relu2", *digits, n_solutions=2, min_relative_accuracy=2.0, init="ls"
        )
    assert df.empty and {"pair", "lambda", "relative_accuracy"} <= set(df.columns)
    assert [s["kept"] for s in df.attrs["solutions"]] == [False, False]
    from nncompare import plot

    _png(plot.stitch_mode_connectivity(df))
    with pytest.raises(ValueError, match=r"Expected every lambda in \[0, 1\]"):
        E.mode_connectivity(*nets, "relu2", *digits, lambdas=[0.0, 1.5])


@pytest.fixture(scope="module")
def sparse(nets, digits):
    return E.sparsity_study(
        *nets, "relu2", *digits, alphas_lasso=(1e-3, 1e-2, 1e-1), l1_task=(10.0,), lr=1e-2
    )


def test_sparsity_study(sparse):
    df = sparse
    assert df[["matching", "penalty"]].values.tolist() == [
        ["direct", 0.0],
        ["direct", 1e-3],
        ["direct", 1e-2],
        ["direct", 1e-1],
        ["task", 0.0],
        ["task", 10.0],
    ]
    lasso = df[df["matching"] == "direct"]
    assert lasso["sparsity"].is_monotonic_increasing
    assert lasso["sparsity"].iloc[0] < 0.01 and lasso["sparsity"].iloc[-1] > 0.5
    assert df["sparsity"].between(0, 1).all() and df["relative_accuracy"].between(0, 1.5).all()
    task = df[df["matching"] == "task"].set_index("penalty")
    assert task.loc[10.0, "sparsity"] > task.loc[0.0, "sparsity"] + 0.05  # annealed L1
    assert task["option_anneal"].eq("[0.1, 0.01, 0.001]").all()
    mats = df.attrs["matrices"]
    assert len(mats) == len(df)
    for row, entry in zip(df.itertuples(), mats, strict=True):
        M = np.asarray(entry["matrix"])
        assert M.shape == (32, 32)
        assert entry["sparsity"] == row.sparsity == np.mean(M == 0)
        assert (np.abs(M[M != 0]) >= 1e-4).all()  # thresholded


def test_frames_concatenate_and_serialise(sparse, sweep):
    # attrs hold plain data: pandas can compare them when concatenating, json can write them
    import json

    both = pd.concat([sparse, sparse])
    assert len(both) == 2 * len(sparse)
    json.dumps(sparse.attrs)
    json.dumps(sweep[0].attrs)


# --------------------------------------------------------------------------- figures


def test_every_figure_renders(sweep, widths, similarity, cka_self, inits, low_rank, modes, sparse):
    from nncompare import plot

    figures = [
        plot.stitch_layer_sweep(sweep[0]),
        plot.stitch_width_sweep(widths),
        plot.stitch_similarity_training(similarity),
        plot.stitch_cka_penalty(cka_self),
        plot.stitch_initialisation(inits),
        plot.stitch_low_rank(low_rank),
        plot.stitch_mode_connectivity(modes),
        plot.stitch_sparsity(sparse),
    ]
    for fig in figures:
        assert fig.axes
        _png(fig)
    # the sparsity figure shows example matrices above the curve
    assert sum(len(ax.images) for ax in figures[-1].axes) == 5  # 3 lasso, 2 task


def test_figures_draw_into_a_given_axes(sweep, inits, modes):
    from matplotlib.figure import Figure

    from nncompare import plot

    fig = Figure()
    axes = fig.subplots(1, 3)
    assert plot.stitch_layer_sweep(sweep[0], ax=axes[0]) is fig
    assert plot.stitch_initialisation(inits, ax=axes[1]) is fig
    assert plot.stitch_mode_connectivity(modes, ax=axes[2], title="modes") is fig
    assert axes[2].get_title(loc="left") == "modes"
    _png(fig)


def test_figures_refuse_the_wrong_frame(sweep, inits):
    from nncompare import plot

    with pytest.raises(
        ValueError,
        match=r"frame of 'layer_sweep'\. Draw it with nc\.plot\.stitch_layer_sweep",
    ):
        plot.stitch_low_rank(sweep[0])
    with pytest.raises(TypeError, match=r"Expected the DataFrame returned by .*initialisation"):
        plot.stitch_initialisation(inits.to_dict())
    skipped = inits.assign(skipped="not measured")
    with pytest.raises(ValueError, match=r"all skipped \(not measured\)"):
        plot.stitch_initialisation(skipped)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _png(plot.stitch_layer_sweep(sweep[0], title="A $-sign title"))


def test_every_experiment_has_its_figure_in_the_report(
    tmp_path, widths, similarity, cka_self, inits, low_rank, modes, sparse
):
    """The report's stitching section draws each experiment's own figure (the issue: every
    experiment has a plot in nc.plot and a section in the report)."""
    from nncompare.report._stitching import stitching_figures

    for df in (widths, similarity, cka_self, inits, low_rank, modes, sparse):
        name = df.attrs["experiment"]
        figures = stitching_figures(df)
        assert f"stitching_{name}" in figures, (name, list(figures))
        _png(figures[f"stitching_{name}"])
        files = nc.report.write_stitching_report(df, tmp_path / name)
        assert "nc.plot.stitch_" in Path(files.html).read_text()
