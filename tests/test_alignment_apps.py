"""The task-alignment lens's applications (issue #11): experiments, ``nncompare align``, the
report section.

The experiments run at tiny scale here (digits, a few epochs); the claims tested are those that
hold at that scale for every seed tried (Imani, Hu & White: alignment emerges with training,
layers nearer the output align better after training, the order is reversed at
initialisation). The numbers at CPU scale are in benchmarks/results/alignment/.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cli_util import error_line
from nncompare.alignment import experiments as ex
from nncompare.alignment import layer_alignment
from nncompare.cli.main import cli
from nncompare.workbench.models import SmallCNN

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
COMMON = ["representation", "layer", "label", "tau", "alignment", "rank", "n_features",
          "n_samples", "sigma_max"]  # fmt: skip


def _digits():
    pytest.importorskip("sklearn")
    from nncompare.workbench.data import load_digits

    return load_digits("train")


def _area(sub: pd.DataFrame) -> float:
    """Area under an alignment curve given at 0 and at each singular value: it sums over
    sigma_i >= tau, so on (tau_j, tau_j+1] it takes the value at tau_j+1, and is 0 past the
    last (sigma_1)."""
    sub = sub.sort_values("tau")
    t = sub["tau"].to_numpy()
    a = sub["alignment"].to_numpy()
    return float(np.sum(np.diff(t) * a[1:]))


# --------------------------------------------------------------------------- experiments
def test_circle_example_schema_and_the_two_labelings():
    df = ex.circle_example()
    assert {*COMMON, "labels"} <= set(df.columns)
    json.dumps(df.attrs)  # JSON-ready metadata
    assert df.attrs["experiment"] == "circle_example"
    s1, s2 = df.attrs["sigma"]
    # unit rows: sigma_1^2 + sigma_2^2 = ||Phi||_F^2 = n
    assert s1**2 + s2**2 == pytest.approx(1000, rel=1e-10)
    # spread 0.29 rad gives the paper's ratio sigma_2 / sigma_1 = 2.84 / 9.58 (Fig. 4) roughly
    assert 0.24 < s2 / s1 < 0.34
    s = ex.summarize(df).set_index("labels")
    assert s.loc["along v1", "top1"] > 0.99  # label vector along u_1
    assert s.loc["along v2", "top1"] < 0.05  # ... along u_2
    assert s.loc["along v1", "mean_sigma"] > 3 * s.loc["along v2", "mean_sigma"]
    for _, sub in df.groupby("labels"):
        assert np.all(np.diff(sub.sort_values("tau")["alignment"].to_numpy()) <= 1e-9)


def test_summarize_mean_sigma_is_the_area_under_the_curve_over_its_start():
    df = ex.circle_example(n=200, seed=3)
    s = ex.summarize(df).set_index("labels")
    for labels, sub in df.groupby("labels"):
        start = float(sub.loc[sub["tau"] == 0, "alignment"].iloc[0])
        assert s.loc[labels, "total"] == pytest.approx(start, rel=1e-12)
        assert s.loc[labels, "mean_sigma"] == pytest.approx(_area(sub) / start, rel=1e-9)


def test_training_and_depth_trained_layers_align_better_nearer_the_output():
    df = ex.training_and_depth(_digits(), hidden=(32, 32, 32), epochs=15, seeds=(0, 1))
    assert {*COMMON, "seed"} <= set(df.columns)
    json.dumps(df.attrs)
    s = ex.summarize(df)
    assert set(s["representation"]) == {"input", "init", "trained"}
    for seed, sub in s.groupby("seed"):
        rel = sub.set_index(["representation", "layer"])["mean_sigma_rel"]
        trained = [rel[("trained", f"relu{i}")] for i in (1, 2, 3)]
        init = [rel[("init", f"relu{i}")] for i in (1, 2, 3)]
        assert trained[0] < trained[1] < trained[2], (seed, trained)  # Fig. 7 after training
        assert init[0] > init[2], (seed, init)  # reversed at initialisation
        assert all(t > i for t, i in zip(trained, init, strict=True))  # Fig. 6
        assert trained[2] > rel[("input", "input")]
    assert set(df.attrs["train_accuracy"]) == {"0", "1"}


def test_shuffled_labels_alignment_emerges_with_training():
    df = ex.shuffled_labels(_digits(), n_per_class=80, hidden=(64, 64, 64), epochs=60)
    assert set(df["labels"]) == {"true", "shuffled"}
    top = ex.summarize(df).set_index(["labels", "representation"])["top"]
    assert top[("true", "input")] > 0.9  # raw inputs align with the true labels (Fig. 2a)
    assert top[("shuffled", "input")] < 0.3  # ... not with shuffled ones (Fig. 2b)
    assert top[("shuffled", "init")] < 0.4  # nor does the untrained network (Fig. 2c)
    assert top[("shuffled", "trained")] > 0.8  # training on them aligns the last layer (2d)
    assert df.attrs["layer"] == "relu3"


def test_experiments_refuse_bad_options_with_their_reasons():
    with pytest.raises(ValueError, match=r"n must be even \(two clusters"):
        ex.circle_example(n=11)
    with pytest.raises(ValueError, match=r"spread must be an angle in \(0, pi/2\)"):
        ex.circle_example(spread=2.0)
    x = np.zeros((20, 4))
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    with pytest.raises(ValueError, match=r"class 7 has no samples; the labels hold 0, 1"):
        ex.shuffled_labels((x, y), classes=(0, 7), n_per_class=5)
    with pytest.raises(ValueError, match=r"class 0 has 10 samples, fewer than n_per_class=50"):
        ex.shuffled_labels((x, y), n_per_class=50)
    with pytest.raises(ValueError, match=r"expected one label per input; got 20 inputs and 3"):
        ex.training_and_depth((x, y[:3]))
    with pytest.raises(TypeError, match=r"summarize expects a frame of nncompare.alignment"):
        ex.summarize(pd.DataFrame({"a": [1]}))


def test_peaks_benchmark_schema_and_negative_transfer():
    df = ex.peaks_benchmark((0, 1), n=1000, epochs=10)
    assert {"seed", "role", "representation", "layer", "tau", "alignment"} <= set(df.columns)
    json.dumps(df.attrs)
    table = pd.DataFrame(df.attrs["transfer"]).set_index(["role", "representation"])
    assert len(table) == 9 and (table["n_seeds"] == 2).all()
    assert (table.xs("original", level="representation")["diff_vs_original"] == 0).all()
    assert set(df.attrs["claims"]) == {"related_above_original", "unrelated_below_original"}
    # training on the source lowers the unrelated task's alignment below the inputs'
    assert df.attrs["claims"]["unrelated_below_original"]
    assert table.loc[("source", "transfer"), "diff_vs_original"] > 0


@pytest.mark.skipif(
    not (SHARED / "akamaster_resnet_cifar10").exists() or not (SHARED / "cifar10").exists(),
    reason="the pretrained CIFAR ResNets and CIFAR-10 images of ../shared are absent",
)
def test_pretrained_resnet_aligns_better_than_a_random_one():
    df = ex.pretrained_vs_random(
        SHARED / "akamaster_resnet_cifar10" / "resnet20-12fca82f.th",
        SHARED / "cifar10" / "cifar10_test_exact1017.npz",
        n_per_class=40,
        include_input=False,
    )
    s = ex.summarize(df).set_index("representation")
    assert s.loc["pretrained", "top"] > 0.9 > s.loc["random", "top"]
    assert s.loc["pretrained", "mean_sigma_rel"] > 5 * s.loc["random", "mean_sigma_rel"]
    assert set(s.index) == {"random", "pretrained"}


# --------------------------------------------------------------------------- report
def _comparison() -> pd.DataFrame:
    """A minimal comparison frame (two layers a side, one measure): a quick report."""
    rows = [
        {"layer_a": a, "layer_b": b, "measure": "cka", "value": v}
        for (a, b), v in zip(
            [("l1", "l1"), ("l1", "l2"), ("l2", "l1"), ("l2", "l2")], (0.9, 0.5, 0.4, 0.8),
            strict=True,
        )
    ]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def aligned():
    torch.manual_seed(0)
    net = SmallCNN(widths=(6, 8)).eval()
    torch.manual_seed(1)
    other = SmallCNN(widths=(6, 8)).state_dict()
    x = torch.rand(60, 1, 8, 8)
    y = (x.mean(dim=(1, 2, 3)) > 0.5).long()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank-deficient random layers
        df = layer_alignment(net, x, y, ["relu1", "pool"], {"a": net.state_dict(), "b": other})
    return df


def test_report_section_renders_and_writes_the_alignment_files(tmp_path, aligned):
    from nncompare.report import load_alignment_results, write_report

    files = write_report(_comparison(), tmp_path, alignment=aligned, formats="png")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="alignment"' in html and "Share on top 10" in html
    assert "<code>pool</code>" in html and "one ±1 label vector" in html
    assert {p.name for p in files.figures["png"]} >= {
        "alignment_layers.png",
        "alignment_before_after.png",
    }
    rows = pd.read_csv(tmp_path / "alignment.csv")
    assert len(rows) == len(aligned)
    back = load_alignment_results(tmp_path / "alignment.json")
    assert back.attrs["experiment"] == "layer_alignment"
    np.testing.assert_allclose(back["alignment"], aligned["alignment"], rtol=0, atol=0)
    doc = json.loads((tmp_path / "alignment.json").read_text())
    summary = pd.DataFrame(doc["summary"])
    assert set(summary["layer"]) == {"input", "relu1", "pool"}


def test_report_refuses_frames_that_are_not_layer_alignment(tmp_path):
    from nncompare.report import load_alignment_results, write_alignment_report, write_report

    with pytest.raises(ValueError, match=r"Expected the frame of nncompare.alignment.layer_ali"):
        write_report(_comparison(), tmp_path, alignment=ex.circle_example())
    with pytest.raises(TypeError, match=r"Expected the DataFrame returned by nncompare.alignm"):
        write_alignment_report([1, 2], tmp_path)
    assert not (tmp_path / "report.html").exists()
    write_report(_comparison(), tmp_path)
    with pytest.raises(ValueError, match=r"Expected an alignment results file"):
        load_alignment_results(tmp_path / "results.json")


# --------------------------------------------------------------------------- CLI
FACTORY = "nncompare.models:SmallCNN(widths=(6, 8))"
N = 80


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("align")
    torch.manual_seed(0)
    torch.save(SmallCNN(widths=(6, 8)).state_dict(), d / "init.pt")
    torch.manual_seed(1)
    torch.save(SmallCNN(widths=(6, 8)).state_dict(), d / "other.pt")
    rng = np.random.default_rng(0)
    x = rng.random((N, 1, 8, 8)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    yf = x.mean(axis=(1, 2, 3)).astype(np.float64)
    nan = yf.copy()
    nan[3] = np.nan
    np.savez(d / "d.npz", x=x, y=y, y3=np.arange(N) % 3, one=np.zeros(N, np.int64), yf=yf,
             nan=nan, short=y[:10], text=np.array(["a"] * N))  # fmt: skip
    np.savez(d / "nolabels.npz", x=x)
    np.save(d / "x.npy", x)
    (d / "sub").mkdir()
    torch.save(SmallCNN(widths=(6, 8)).state_dict(), d / "sub" / "init.pt")
    return d


def _args(files, *extra, data="d.npz", out="out"):
    return ["align", FACTORY, "--data", str(files / data), "--out", str(files / out), *extra]


def test_align_writes_the_report_with_curves_per_layer(runner, files):
    res = runner.invoke(
        cli,
        _args(
            files,
            "--checkpoint",
            str(files / "init.pt"),
            "--checkpoint",
            str(files / "other.pt"),
            "--layers",
            "relu1,pool",
            "--formats",
            "png",
        ),
    )
    assert res.exit_code == 0, res.output
    assert "labels: y of --data, as one ±1 vector" in res.output
    out = files / "out"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="alignment"' in html and "<h1>Task alignment of nncompare.models" in html
    assert (out / "figures" / "alignment_before_after.png").exists()
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["checkpoint"]) == {"init", "other"}
    assert set(rows["layer"]) == {"input", "relu1", "pool"}
    doc = json.loads((out / "results.json").read_text())
    assert doc["format"] == "nncompare.alignment"
    assert doc["attrs"]["provenance"]["checkpoints"] == ["init.pt", "other.pt"]
    # the inputs' curve at tau = 0 is ||P_X y||^2 of the flattened inputs, unit rows
    xs = np.load(files / "d.npz")["x"].reshape(N, -1).astype(np.float64)
    xs /= np.linalg.norm(xs, axis=1, keepdims=True)
    ys = np.where(np.load(files / "d.npz")["y"] == 1, 1.0, -1.0)
    proj = xs @ np.linalg.lstsq(xs, ys, rcond=None)[0]
    start = rows[(rows["layer"] == "input") & (rows["tau"] == 0)]["alignment"].iloc[0]
    assert start == pytest.approx(float(proj @ proj), rel=1e-8)


def test_align_onehot_and_regression_labels(runner, files):
    res = runner.invoke(cli, _args(files, "--labels", "y3", "--kind", "onehot", out="o3"))
    assert res.exit_code == 0, res.output
    assert "as 3 centred one-hot vectors" in res.output
    rows = pd.read_csv(files / "o3" / "results.csv")
    assert "sum" in set(rows["label"])
    res = runner.invoke(
        cli, _args(files, "--labels", "yf", "--layers", "pool", "--no-input", out="of")
    )
    assert res.exit_code == 0, res.output
    assert "as centred regression targets" in res.output
    assert set(pd.read_csv(files / "of" / "results.csv")["layer"]) == {"pool"}


@pytest.mark.parametrize(
    ("extra", "data", "message"),
    [
        (("--labels", "short"), "d.npz", r"--labels: expected one label per input of --data "
         r"d.npz, shape \(80,\).*'short' has shape \(10,\)"),
        (("--labels", "one"), "d.npz", r"--labels: the labels hold one class only \(0\)"),
        (("--labels", "nope"), "d.npz", r"--labels: --data d.npz has no array 'nope'; it holds"),
        (("--labels", "nan"), "d.npz", r"--labels: the labels 'nan' of d.npz hold 1 NaN"),
        (("--labels", "text"), "d.npz", r"--labels: expected numeric labels in 'text'"),
        (("--labels", "x"), "d.npz", r"--labels: --labels and the inputs both name 'x'"),
        ((), "nolabels.npz", r"--labels: --data nolabels.npz has no array 'y'; name the labels"),
        ((), "x.npy", r"--labels: x.npy is a .npy file holding one array \(the inputs\)"),
        (("--layers", "relu9"), "d.npz", r"--layers: No layer named 'relu9' in SmallCNN"),
        (("--layers", "relu1,,pool"), "d.npz", r"--layers: expected layer names or patterns"),
        (("--labels", "yf", "--kind", "classes"), "d.npz",
         r"--kind: --kind classes needs one integer class label per input; got dtype float64"),
        (("--checkpoint", "d.npz"), "d.npz", r"Error: --checkpoint: cannot read checkpoint 'd'"),
        (("--checkpoint", "init.pt", "--checkpoint", "sub/init.pt"), "d.npz",
         r"--checkpoint: the checkpoints are labelled by their file names, which repeat"),
    ],
)  # fmt: skip
def test_align_errors_are_one_line(runner, files, extra, data, message):
    extra = tuple(str(files / e) if e.endswith((".pt", ".npz")) else e for e in extra)
    res = runner.invoke(cli, _args(files, *extra, data=data))
    line = error_line(res)
    assert re.search(message, line), line


def test_align_is_registered_and_documented(runner):
    res = runner.invoke(cli, ["align", "--help"])
    assert res.exit_code == 0
    assert "Task alignment of every layer of MODEL" in res.output
