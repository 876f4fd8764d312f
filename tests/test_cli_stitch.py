"""``nncompare stitch``: model stitching on the command line (issue #9).

Tiny SmallCNNs saved with ``torch.save(state_dict)`` and loaded through a factory, as a
user would; labels are model B's own predictions, so B's accuracy is 1 and the relative
accuracy is defined whatever the random weights.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from cli_util import error_line
from nncompare.cli.main import cli
from nncompare.workbench.models import SmallCNN

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FACTORY = "nncompare.models:SmallCNN(widths=(6, 8))"
N = 48


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stitch")
    torch.manual_seed(0)
    a = SmallCNN(widths=(6, 8)).eval()
    torch.manual_seed(1)
    b = SmallCNN(widths=(6, 8)).eval()
    torch.save(a.state_dict(), d / "a.pt")
    torch.save(b.state_dict(), d / "b.pt")
    rng = np.random.default_rng(0)
    x = rng.random((N, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        y = b(torch.from_numpy(x)).argmax(1).numpy()
    np.savez(d / "train.npz", x=x, y=y, labels2=y[:10])
    np.savez(d / "test.npz", x=x[:24], y=y[:24])
    np.savez(d / "nolabels.npz", x=x)
    np.savez(d / "floaty.npz", x=x, y=y.astype(np.float32) + 0.5)
    return {"dir": d, "a": d / "a.pt", "b": d / "b.pt", "x": x, "net_a": a, "net_b": b}


def _args(files, *extra, data="train.npz", out="out"):
    return [
        "stitch",
        FACTORY,
        FACTORY,
        "--weights-a",
        str(files["a"]),
        "--weights-b",
        str(files["b"]),
        "--data",
        str(files["dir"] / data),
        "--out",
        str(files["dir"] / out),
        "--no-progress",
        *extra,
    ]


def test_stitch_writes_the_report_with_every_pair_and_method(runner, files):
    res = runner.invoke(
        cli,
        _args(
            files,
            "--eval-data",
            str(files["dir"] / "test.npz"),
            "--layer-a",
            "relu1,pool",
            "--layer-b",
            "relu1,pool",
            "--method",
            "ls",
            "--method",
            "task:epochs=1,eval_every=1",
            "--method",
            "identity",
            "--monitor",
            "cka",
            "--monitor",
            "lr_r2",
            "--formats",
            "png",
        ),
    )
    assert res.exit_code == 0, res.output
    out = files["dir"] / "out"
    for name in ("report.html", "results.csv", "results.json", "matrices.npz"):
        assert (out / name).is_file(), name
    df = pd.read_csv(out / "results.csv")
    assert list(zip(df["layer_a"], df["method"], strict=True)) == [
        ("relu1", "ls"),
        ("relu1", "task"),
        ("relu1", "identity"),
        ("pool", "ls"),
        ("pool", "task"),
        ("pool", "identity"),
    ]
    # labels are B's own predictions, so B is always right and the ratio is the accuracy
    assert (df["accuracy_b"] == 1.0).all()
    np.testing.assert_allclose(df["relative_accuracy"], df["accuracy"])
    assert ((df["relative_accuracy"] >= 0) & (df["relative_accuracy"] <= 1)).all()
    assert (df["n_samples"].dropna() == N).all()  # fitted on --data
    doc = json.loads((out / "results.json").read_text())
    assert doc["format"] == "nncompare.stitching"
    assert doc["attrs"]["provenance"]["n_eval_samples"] == 24
    assert doc["attrs"]["provenance"]["eval_data"] == "test.npz"
    task = [r for r in doc["results"] if r["method"] == "task"]
    assert len(task) == 2 and {"loss", "cka", "lr_r2"} <= set(task[0]["history"][-1])
    with np.load(out / "matrices.npz") as z:
        assert z["matrix_000"].shape == (6, 6) and z["matrix_003"].shape == (8, 8)
    html = (out / "report.html").read_text()
    assert 'id="stitching"' in html and "Task-loss training" in html
    assert html.count("data:image/png;base64,") == 3
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert names == ["stitching_layers.png", "stitching_matrices.png", "stitching_training.png"]


def test_ls_matrix_is_least_squares_on_the_preprocessed_positions(runner, files):
    """The command's LS matrix is the lstsq solution on B's and A's activations at every
    position of the inputs it was given (--max-samples included)."""
    res = runner.invoke(
        cli,
        _args(
            files,
            "--layer-a",
            "relu1",
            "--layer-b",
            "relu1",
            "--method",
            "ls",
            "--max-samples",
            "20",
            out="ls",
        ),
    )
    assert res.exit_code == 0, res.output
    x = torch.from_numpy(files["x"][:20])
    with torch.no_grad():
        a, b = (
            net.relu1(net.bn1(net.conv1(x))).double() for net in (files["net_a"], files["net_b"])
        )
    rows_a = a.movedim(1, -1).reshape(-1, a.shape[1])
    rows_b = b.movedim(1, -1).reshape(-1, b.shape[1])
    design = torch.cat([rows_a, torch.ones(len(rows_a), 1, dtype=torch.float64)], dim=1)
    sol = torch.linalg.lstsq(design, rows_b, driver="gelsd").solution
    with np.load(files["dir"] / "ls" / "matrices.npz") as z:
        np.testing.assert_allclose(z["matrix_000"], sol[:-1].numpy(), atol=1e-6)
        np.testing.assert_allclose(z["bias_000"], sol[-1].numpy(), atol=1e-6)


def test_repeated_options_pair_like_lists_and_one_layer_broadcasts(runner, files):
    res = runner.invoke(
        cli,
        _args(
            files,
            "--layer-a",
            "relu1",
            "--layer-b",
            "relu1",
            "--layer-a",
            "relu2",
            "--layer-b",
            "relu2",
            "--method",
            "ls",
            out="pairs",
        ),
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(files["dir"] / "pairs" / "results.csv")
    assert list(zip(df["layer_a"], df["layer_b"], strict=True)) == [
        ("relu1", "relu1"),
        ("relu2", "relu2"),
    ]
    assert "evaluation: on --data itself" in res.output
    res = runner.invoke(
        cli,
        _args(
            files, "--layer-a", "pool", "--layer-b", "pool,fc", "--method", "ls", out="broadcast"
        ),
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(files["dir"] / "broadcast" / "results.csv")
    assert list(zip(df["layer_a"], df["layer_b"], df["width_b"], strict=True)) == [
        ("pool", "pool", 8),
        ("pool", "fc", 10),
    ]


def test_self_stitch_at_identity_is_model_b_itself(runner, files):
    res = runner.invoke(
        cli,
        [
            "stitch",
            FACTORY,
            FACTORY,
            "--weights-a",
            str(files["b"]),
            "--weights-b",
            str(files["b"]),
            "--data",
            str(files["dir"] / "train.npz"),
            "--layer-a",
            "relu1,relu2,pool",
            "--layer-b",
            "relu1,relu2,pool",
            "--method",
            "identity",
            "--out",
            str(files["dir"] / "self"),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(files["dir"] / "self" / "results.csv")
    assert (df["relative_accuracy"] == 1.0).all() and (df["agreement"] == 1.0).all()


def test_unequal_widths_have_no_identity_baseline_and_say_why(runner, files):
    res = runner.invoke(
        cli,
        _args(
            files,
            "--layer-a",
            "relu1",
            "--layer-b",
            "relu2",
            "--resize",
            "pool",
            "--method",
            "identity",
            "--method",
            "ls",
            out="widths",
        ),
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(files["dir"] / "widths" / "results.csv")
    ident = df[df["method"] == "identity"].iloc[0]
    assert np.isnan(ident["relative_accuracy"])
    assert ident["skipped"] == "no identity baseline between unequal widths (6 and 8 channels)"
    assert df[df["method"] == "ls"]["relative_accuracy"].notna().all()


def test_without_labels_the_report_shows_agreement(runner, files):
    res = runner.invoke(
        cli,
        _args(
            files,
            "--layer-a",
            "relu1",
            "--layer-b",
            "relu1",
            "--method",
            "ls",
            data="nolabels.npz",
            out="nolabels",
        ),
    )
    assert res.exit_code == 0, res.output
    assert "labels: none in --data, so no accuracies" in res.output
    df = pd.read_csv(files["dir"] / "nolabels" / "results.csv")
    assert df["relative_accuracy"].isna().all() and df["agreement"].between(0, 1).all()
    html = (files["dir"] / "nolabels" / "report.html").read_text()
    assert "agreement with B (top-1; no labels)" in html


# --------------------------------------------------------------------------- errors

ERRORS = [
    (
        ["--layer-a", "relu9", "--layer-b", "relu1"],
        r"Invalid value for --layer-a: No layer named 'relu9' in MODEL_A\. Did you mean "
        r".*'relu1'",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "rleu2"],
        r"Invalid value for --layer-b: No layer named 'rleu2' in MODEL_B\. Did you mean "
        r".*'relu2'",
    ),
    (
        ["--layer-a", "relu1,relu2,pool", "--layer-b", "relu1,relu2"],
        r"Invalid value for --layer-b: expected as many layers of B as of A .*got 3 "
        r"\(relu1, relu2, pool\) and 2 \(relu1, relu2\)",
    ),
    (
        ["--layer-a", "relu1,", "--layer-b", "relu1"],
        r"Invalid value for --layer-a: expected layer names separated by commas",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--method", "lss"],
        r"Invalid value for --method: unknown method 'lss' in 'lss': did you mean 'ls'\? "
        r"Expected one of ls, procrustes, rrr, lasso, task, identity",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--method", "task:epoch=2"],
        r"Invalid value for --method: method task has no option 'epoch': did you mean "
        r"'epochs'\?",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--method", "task:epochs"],
        r"Invalid value for --method: expected options as key=value pairs",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--method", "ls", "--method", "ls"],
        r"Invalid value for --method: method 'ls' is given twice",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--method", "lasso"],
        r"method lasso needs its L1 penalty, e\.g\. --method lasso:alpha=0\.01",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--method", "rrr"],
        r"method rrr needs the rank of the matrix, e\.g\. --method rrr:rank=8",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--method", "lasso:alpha=-1"],
        r"Error: stitching relu1 \(lasso:alpha=-1\): method='lasso' needs a finite alpha > 0",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--method", "rrr:rank=7"],
        r"stitching relu1 \(rrr:rank=7\): Expected rank <= min\(C_a, C_b\) = 6 \(C_a = 6, "
        r"C_b = 6\), got rank=7",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--kind", "lowrank"],
        r"Invalid value for --rank: --kind lowrank needs --rank, the bottleneck width",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--rank", "3"],
        r"Invalid value for --rank: --rank sets the bottleneck of --kind lowrank",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--kind", "lowrank", "--rank", "3"],
        r"--kind lowrank makes a rank-limited stitching layer, which cannot hold the full-rank "
        r"matrix of --method ls; use --method rrr",
    ),
    (
        [
            "--layer-a",
            "relu1",
            "--layer-b",
            "relu1",
            "--kind",
            "lowrank",
            "--rank",
            "9",
            "--method",
            "rrr",
        ],
        r"Expected rank <= min\(C_a, C_b\) = 6 \(the widths at the cuts: C_a = 6, C_b = 6\), "
        r"got rank=9",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu2", "--method", "ls"],
        r"stitching relu1 -> relu2 \(ls\): Expected equal spatial sizes at the two cuts, or "
        r"resize=; .* Pass --resize interpolate \(bilinear/linear resampling\) or --resize "
        r"pool",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu2", "--resize", "pool", "--method", "procrustes"],
        r"method='procrustes' fits an orthogonal matrix, which needs equal widths at the two "
        r"cuts; got C_a = 6 and C_b = 8\. Use --method ls",
    ),
    (
        ["--layer-a", "relu2", "--layer-b", "pool", "--method", "ls"],
        r"stitching relu2 -> pool \(ls\): Expected activations of the same kind on both "
        r"sides, \(N, D\) vectors or \(N, C, L\) / \(N, C, H, W\) feature maps",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--monitor", "ckaa"],
        r"Invalid value for --monitor: .*'ckaa'.*cka",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--labels", "label"],
        r"Invalid value for --labels: --data train\.npz has no array 'label'; it holds x, "
        r"y, labels2",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--labels", "labels2"],
        r"Invalid value for --labels: expected one class label per input of --data "
        r"train\.npz, shape \(48,\); 'labels2' has shape \(10,\)",
    ),
    (
        ["--layer-a", "relu1", "--layer-b", "relu1", "--labels", "x"],
        r"--labels and --x-key both name 'x'",
    ),
]


@pytest.mark.parametrize(("extra", "message"), ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_bad_input_is_one_line_naming_the_option(runner, files, extra, message):
    res = runner.invoke(cli, _args(files, *extra, out="err"))
    line = error_line(res)
    assert re.search(message, line), line


def test_hard_target_without_labels_says_how_to_fix(runner, files):
    res = runner.invoke(
        cli,
        _args(
            files,
            "--layer-a",
            "relu1",
            "--layer-b",
            "relu1",
            "--method",
            "task",
            "--target",
            "hard",
            data="nolabels.npz",
            out="err",
        ),
    )
    assert re.search(
        r"Invalid value for --target: task-loss training with target hard trains on the "
        r"labels, but --data has none: pass --labels KEY",
        error_line(res),
    )


def test_float_labels_are_refused(runner, files):
    res = runner.invoke(
        cli, _args(files, "--layer-a", "relu1", "--layer-b", "relu1", data="floaty.npz")
    )
    assert re.search(
        r"Invalid value for --labels: expected integer class labels in 'y' of floaty\.npz; "
        r"got dtype float32",
        error_line(res),
    )


def test_labels_in_only_one_of_data_and_eval_data(runner, files):
    res = runner.invoke(
        cli,
        _args(
            files,
            "--layer-a",
            "relu1",
            "--layer-b",
            "relu1",
            "--eval-data",
            str(files["dir"] / "nolabels.npz"),
        ),
    )
    assert re.search(
        r"labels were found in only one of --data and --eval-data \(--eval-data has none\)",
        error_line(res),
    )


def test_a_cut_inside_a_residual_block_is_refused_with_the_valid_cuts(runner, tmp_path):
    net = "nncompare.models:cifar_resnet(depth=8)"
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 3, 32, 32), np.float32))
    res = runner.invoke(
        cli,
        [
            "stitch",
            net,
            net,
            "--data",
            str(tmp_path / "x.npz"),
            "--layer-a",
            "layer1.0.bn1",
            "--layer-b",
            "layer1.0.bn1",
            "--no-progress",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    line = error_line(res)
    assert re.search(
        r"Invalid value for --layer-b: Cannot cut MODEL_B at 'layer1\.0\.bn1': it is not a "
        r"true cut, because the computation after it also reads values computed before it",
        line,
    ), line
    assert "Valid cuts: " in line and "'layer1'" in line


def test_models_load_as_compare_loads_them(runner, files, tmp_path):
    res = runner.invoke(
        cli,
        [
            "stitch",
            "os:system(command='true')",
            FACTORY,
            "--data",
            str(files["dir"] / "train.npz"),
            "--layer-a",
            "relu1",
            "--layer-b",
            "relu1",
        ],
    )
    assert re.search(r"refusing to call os:system \(defined in '(posix|nt)'\)", error_line(res))
    pickled = tmp_path / "model.pt"
    torch.save(files["net_a"], pickled)
    args = [
        "stitch",
        str(pickled),
        FACTORY,
        "--weights-b",
        str(files["b"]),
        "--data",
        str(files["dir"] / "train.npz"),
        "--layer-a",
        "relu1",
        "--layer-b",
        "relu1",
        "--method",
        "ls",
        "--no-progress",
        "--out",
        str(tmp_path / "out"),
    ]
    assert "--allow-pickle" in error_line(runner.invoke(cli, args))
    res = runner.invoke(cli, [*args, "--allow-pickle"])
    assert res.exit_code == 0, res.output


def test_debug_shows_the_traceback(runner, files):
    args = _args(files, "--layer-a", "relu1", "--layer-b", "relu2", "--method", "ls", out="err")
    res = runner.invoke(cli, args)
    assert "Traceback" not in res.output and "Expected equal spatial sizes" in error_line(res)
    res = runner.invoke(cli, ["--debug", *args])
    assert res.exit_code == 1
    assert "Traceback (most recent call last)" in res.output and "in _build" in res.output


def test_help_lists_the_methods(runner):
    res = runner.invoke(cli, ["stitch", "--help"])
    assert res.exit_code == 0
    for word in ("--layer-a", "--method", "rrr:rank=K", "lasso:alpha=A", "--eval-data"):
        assert word in res.output


def test_library_warnings_become_notes_in_the_output_and_the_table(runner, files):
    net = "nncompare.models:SmallCNN(widths=(12, 8))"  # conv1: 12 channels from 3x3 pixels
    res = runner.invoke(
        cli,
        [
            "stitch", net, net, "--data", str(files["dir"] / "nolabels.npz"),
            "--layer-a", "conv1", "--layer-b", "conv1", "--method", "ls", "--no-progress",
            "--out", str(files["dir"] / "notes"),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    note = "The activations of model_a at 'conv1' span 9 of their 12 non-constant channels"
    assert f"conv1: ls: note: {note}" in res.output
    df = pd.read_csv(files["dir"] / "notes" / "results.csv")
    assert df["note"].iloc[0].startswith(note)
