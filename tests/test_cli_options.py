"""``nncompare compare`` options (issue 7, items 2 and 5): data in as it comes (layout,
scale, normalisation), measure options, --conv dft, names, title and figure formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import nncompare as nc
from cli_util import error_line as _error
from nncompare.cli._options import parse_measure_spec
from nncompare.cli.main import cli
from nncompare.workbench.models import (
    CIFAR_MEAN,
    CIFAR_STD,
    SmallCNN,
    cifar_preprocess,
    cifar_resnet,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = "nncompare.models:SmallCNN()"
SMALL3 = "nncompare.models:SmallCNN(in_channels=3)"


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = (rng.random((120, 8, 8, 3)) * 255).astype(np.uint8)
    files = {"nhwc_u8": tmp_path / "nhwc_u8.npz", "nchw_f": tmp_path / "nchw_f.npz"}
    np.savez(files["nhwc_u8"], x=nhwc)
    np.savez(files["nchw_f"], x=nhwc.transpose(0, 3, 1, 2).astype(np.float32))
    gray = rng.random((120, 1, 8, 8)).astype(np.float32)
    files["gray"] = tmp_path / "gray.npz"
    np.savez(files["gray"], x=gray)
    files["ambiguous"] = tmp_path / "ambiguous.npz"
    np.savez(files["ambiguous"], x=rng.random((10, 3, 8, 3)).astype(np.float32))
    return {"dir": tmp_path, "nhwc": nhwc, "gray": gray, **files}


def _compare(runner, out: Path, *args: str, models=(SMALL3, SMALL3)) -> tuple[str, pd.DataFrame]:
    res = runner.invoke(cli, ["compare", *models, *args, "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return res.output, pd.read_csv(out / "results.csv")


# --------------------------------------------------------------------------- item 2: data


def test_uint8_channels_last_images_are_detected_scaled_and_said(runner, data):
    torch.manual_seed(0)
    out, df = _compare(
        runner,
        data["dir"] / "r",
        "--data",
        str(data["nhwc_u8"]),
        "--measure",
        "cka",
        "--layers-a",
        "relu1,fc",
        "--layers-b",
        "relu1,fc",
        models=(SMALL3, "nncompare.models:SmallCNN(in_channels=3, widths=(8, 8))"),
    )
    assert (
        "data: nhwc_u8.npz holds (120, 8, 8, 3) uint8; the model's first layer conv1 is a "
        "Conv2d taking 3 channels" in out
    )
    assert "layout: read (120, 8, 8, 3) as NHWC (inferred), moved channels first" in out
    assert "scale: uint8 input divided by 255" in out
    # the same comparison in Python on images transposed and scaled by hand
    torch.manual_seed(0)
    a, b = SmallCNN(in_channels=3), SmallCNN(in_channels=3, widths=(8, 8))
    x = torch.from_numpy(data["nhwc"].transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    ref = nc.compare_models(
        a, b, x, layers_a=["relu1", "fc"], layers_b=["relu1", "fc"], measures=["cka"]
    )
    np.testing.assert_allclose(df["value"], ref["value"], rtol=1e-5)


def test_channel_flags_override_detection_and_are_checked(runner, data):
    base = ["compare", SMALL3, SMALL3, "--no-progress", "--out", str(data["dir"] / "r")]
    line = _error(runner.invoke(cli, [*base, "--data", str(data["nhwc_u8"]), "--channels-first"]))
    assert line == (
        "Error: cannot use the inputs in --data nhwc_u8.npz: images of shape (120, 8, 8, 3) "
        "read as NCHW have 8 channels, but the model expects 3. If they are NHWC, say so "
        "(--channels-last)."
    )
    line = _error(runner.invoke(cli, [*base, "--data", str(data["nchw_f"]), "--channels-last"]))
    assert "read as NHWC have 8 channels, but the model expects 3. If they are NCHW, say so " in (
        line
    )
    assert line.endswith("(--channels-first).")
    # given explicitly, the layout is said to be as given
    res = runner.invoke(
        cli, [*base, "--data", str(data["nchw_f"]), "--channels-first", "--measure", "cka"]
    )
    assert res.exit_code == 0, res.output
    assert "layout: read (120, 3, 8, 8) as NCHW (as given)" in res.output


def test_ambiguous_layout_asks_for_a_flag(runner, data):
    res = runner.invoke(
        cli,
        ["compare", SMALL3, SMALL3, "--data", str(data["ambiguous"]), "--out", str(data["dir"])],
    )
    assert _error(res) == (
        "Error: cannot use the inputs in --data ambiguous.npz: cannot tell whether images of "
        "shape (10, 3, 8, 3) are (N, H, W, C) or (N, C, H, W) (the model expects 3 channels). "
        "Say which: --channels-last or --channels-first."
    )


def test_scale_fraction_mean_and_std(runner, data):
    """``--scale 1/255`` (the help's own example) on float images in [0, 255], then
    per-channel normalisation: the result equals the hand-made inputs'."""
    mean, std = "0.4,0.5,0.6", "0.2,0.25,0.3"
    torch.manual_seed(0)
    out, df = _compare(
        runner,
        data["dir"] / "r",
        "--data",
        str(data["nchw_f"]),
        "--scale",
        "1/255",
        "--mean",
        mean,
        "--std",
        std,
        "--measure",
        "cka",
        "--layers-a",
        "conv1,fc",
        models=(SMALL3, "nncompare.models:SmallCNN(in_channels=3, widths=(8, 8))"),
    )
    assert "scale: multiplied by 0.00392157" in out
    assert "normalised: (x - mean) / std with mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3]" in out
    torch.manual_seed(0)
    a, b = SmallCNN(in_channels=3), SmallCNN(in_channels=3, widths=(8, 8))
    x = data["nhwc"].transpose(0, 3, 1, 2).astype(np.float64) / 255.0
    x = (x - np.array([0.4, 0.5, 0.6])[:, None, None]) / np.array([0.2, 0.25, 0.3])[:, None, None]
    ref = nc.compare_models(
        a, b, torch.from_numpy(x.astype(np.float32)), layers_a=["conv1", "fc"], measures=["cka"]
    )
    np.testing.assert_allclose(df["value"], ref["value"], rtol=1e-5)
    assert json.loads((data["dir"] / "r" / "results.json").read_text())["attrs"]["provenance"][
        "preprocessing"
    ].startswith("layout: read (120, 3, 8, 8) as NCHW (inferred); scale: multiplied by")


def test_bad_scale_mean_and_std(runner, data):
    base = ["compare", SMALL3, SMALL3, "--data", str(data["nhwc_u8"]), "--out", str(data["dir"])]
    assert _error(runner.invoke(cli, [*base, "--scale", "1/0"])) == (
        "Error: Invalid value for '--scale': expected a scale such as 1/255 or 0.5; got '1/0'. "
        "Write a number or a fraction a/b."
    )
    assert _error(runner.invoke(cli, [*base, "--scale", "-2"])) == (
        "Error: Invalid value for '--scale': expected a finite positive scale such as 1/255; "
        "got '-2'."
    )
    assert _error(runner.invoke(cli, [*base, "--mean", "0.5,0.5"])) == (
        "Error: cannot use the inputs in --data nhwc_u8.npz: expected 1 or 3 mean values "
        "(one per channel); got 2."
    )
    assert _error(runner.invoke(cli, [*base, "--std", "0.2,0,0.2"])) == (
        "Error: cannot use the inputs in --data nhwc_u8.npz: expected positive std values; "
        "got [0.2, 0.0, 0.2]."
    )
    assert _error(runner.invoke(cli, [*base, "--mean", "a,b,c"])) == (
        "Error: cannot use the inputs in --data nhwc_u8.npz: expected mean as comma-separated "
        "numbers such as 0.485,0.456,0.406; got 'a,b,c'."
    )


def test_models_with_different_input_channels(runner, data):
    res = runner.invoke(
        cli, ["compare", SMALL, SMALL3, "--data", str(data["gray"]), "--out", str(data["dir"])]
    )
    assert _error(res) == (
        "Error: the models take different numbers of input channels (MODEL_A "
        "nncompare.models:SmallCNN() starts with conv1 (1 channel); MODEL_B "
        "nncompare.models:SmallCNN(in_channels=3) starts with conv1 (3 channels)), so they "
        "cannot run on the same inputs from --data gray.npz."
    )


def test_non_convolutional_models_keep_four_dimensional_data(runner, tmp_path):
    x = np.random.default_rng(1).random((50, 2, 3, 4)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    spec = "nncompare.models:MLP(in_features=24)"
    res = runner.invoke(
        cli,
        [
            "compare",
            spec,
            spec,
            "--data",
            str(tmp_path / "x.npz"),
            "--no-progress",
            "--out",
            str(tmp_path / "r"),
            "--measure",
            "cka",
        ],
    )
    # the MLP cannot take 4-D inputs; what matters is that they were not transposed
    assert "layout: kept (50, 2, 3, 4) as it is (the model does not start with a 2-D " in (
        res.output
    )


# --------------------------------------------------------------------------- shared CIFAR


def _shared_cifar(shared_dir: Path) -> tuple[Path, Path, Path]:
    data = shared_dir / "data" / "cifar10" / "cifar10_test_exact1017.npz"
    folder = shared_dir / "data" / "akamaster_resnet_cifar10"
    c20, c32 = sorted(folder.glob("resnet20-*.th")), sorted(folder.glob("resnet32-*.th"))
    if not data.is_file() or not c20 or not c32:
        pytest.skip("shared CIFAR-10 images or pretrained ResNets not found")
    return data, c20[0], c32[0]


@pytest.mark.shared
def test_shared_cifar_resnets_from_the_command_line(runner, shared_dir, tmp_path):
    """The issue's reproducer: ResNet-20 vs ResNet-32 on the shared uint8 NHWC CIFAR-10
    file, straight from the CLI. layer2.0's CKA equals the Python comparison on
    ``cifar_preprocess`` inputs (about 0.935, the value the issue names, not 0.154), and
    ``--preset cifar`` is the same as the explicit --mean/--std."""
    data, c20, c32 = _shared_cifar(shared_dir)
    args = [
        "nncompare.models:cifar_resnet(depth=20)",
        "nncompare.models:cifar_resnet(depth=32)",
        "--weights-a",
        str(c20),
        "--weights-b",
        str(c32),
        "--data",
        str(data),
        "--layers-a",
        "layer2.0",
        "--layers-b",
        "layer2.0",
        "--measure",
        "cka",
        "--max-samples",
        "512",
    ]
    mean = ",".join(map(str, CIFAR_MEAN))
    std = ",".join(map(str, CIFAR_STD))
    out, df = _compare(runner, tmp_path / "a", *args, "--mean", mean, "--std", std, models=())
    assert "layout: read (1017, 32, 32, 3) as NHWC (inferred), moved channels first" in out
    out_p, df_p = _compare(runner, tmp_path / "b", *args, "--preset", "cifar", models=())
    assert "preset cifar: --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225" in out_p
    with np.load(data) as f:
        x = cifar_preprocess(f["x"][:512])
    net20 = cifar_resnet(20, weights=c20).eval()
    net32 = cifar_resnet(32, weights=c32).eval()
    ref = nc.compare_models(
        net20, net32, x, layers_a=["layer2.0"], layers_b=["layer2.0"], measures=["cka"]
    )
    assert df["value"].iloc[0] == pytest.approx(ref["value"].iloc[0], rel=1e-5)
    assert df_p["value"].iloc[0] == pytest.approx(df["value"].iloc[0], rel=1e-9)
    assert df["value"].iloc[0] > 0.9
    assert list(df["model_a"]) == [c20.stem] and list(df["model_b"]) == [c32.stem]


# --------------------------------------------------------------------------- item 5: measures


def test_measure_spec_parsing():
    assert parse_measure_spec("CKA") == ("cka", {})
    assert parse_measure_spec("svcca:variance=0.95") == ("svcca", {"variance": 0.95})
    assert parse_measure_spec("pwcca:convention=google,epsilon=1e-6") == (
        "pwcca",
        {"convention": "google", "epsilon": 1e-06},
    )
    assert parse_measure_spec("svcca:dims=(10, 20), rtol=1e-8") == (
        "svcca",
        {"dims": (10, 20), "rtol": 1e-08},
    )
    assert parse_measure_spec("rsa:rdm='euclidean',compare=pearson") == (
        "rsa",
        {"rdm": "euclidean", "compare": "pearson"},
    )
    assert parse_measure_spec("cka_rbf:debiased=True,threshold=0.5") == (
        "cka_rbf",
        {"debiased": True, "threshold": 0.5},
    )
    # text that is not a literal stays text, never evaluated
    assert parse_measure_spec("rsa:rdm=__import__('os')") == ("rsa", {"rdm": "__import__('os')"})


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "x.npz"
    np.savez(path, x=rng.random((200, 1, 8, 8)).astype(np.float32))
    torch.manual_seed(0)
    a = tmp_path / "a.pt"
    torch.save(SmallCNN().state_dict(), a)
    torch.manual_seed(1)
    b = tmp_path / "b.pt"
    torch.save(SmallCNN().state_dict(), b)
    args = ["--data", str(path), "--weights-a", str(a), "--weights-b", str(b)]
    args += ["--layers-a", "relu1,relu2", "--layers-b", "relu1,relu2"]
    return {"dir": tmp_path, "args": args, "x": path, "a": a, "b": b}


def _nets(small) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    a, b = SmallCNN(), SmallCNN()
    a.load_state_dict(torch.load(small["a"]))
    b.load_state_dict(torch.load(small["b"]))
    with np.load(small["x"]) as f:
        x = torch.from_numpy(f["x"])
    return a.eval(), b.eval(), x


def test_measure_options_reach_the_library(runner, small):
    _, df = _compare(
        runner,
        small["dir"] / "r",
        *small["args"],
        "--measure",
        "svcca:variance=0.5",
        "--measure",
        "pwcca:convention=google,epsilon=1e-6",
        models=(SMALL, SMALL),
    )
    a, b, x = _nets(small)
    spec = {"svcca": {"variance": 0.5}, "pwcca": {"convention": "google", "epsilon": 1e-6}}
    ref = nc.compare_models(
        a, b, x, layers_a=["relu1", "relu2"], layers_b=["relu1", "relu2"], measures=spec
    )
    np.testing.assert_allclose(df["value"], ref["value"], rtol=1e-6)
    default = nc.compare_models(a, b, x, layers_a=["relu1"], layers_b=["relu1"], measures=["svcca"])
    sv = df[(df.measure == "svcca") & (df.layer_a == "relu1") & (df.layer_b == "relu1")]
    assert abs(float(sv["value"].iloc[0]) - float(default["value"].iloc[0])) > 1e-3
    attrs = json.loads((small["dir"] / "r" / "results.json").read_text())["attrs"]["measures"]
    assert attrs["svcca"]["options"] == {"variance": 0.5}
    assert attrs["pwcca"]["options"] == {"convention": "google", "epsilon": 1e-06}


def test_measure_names_are_case_insensitive(runner, small):
    _, df = _compare(
        runner, small["dir"] / "r", *small["args"], "--measure", "CKA", models=(SMALL, SMALL)
    )
    assert set(df["measure"]) == {"cka"} and len(df) == 4


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "svcca:varience=0.9",
            "Error: Invalid value for --measure: svcca has no option 'varience': did you mean "
            "'variance'? Its options: variance, dims, rtol (see help(nncompare.svcca))",
        ),
        (
            "svcca:variance=1.5",
            "Error: Invalid value for --measure: svcca:variance=1.5: variance must lie in "
            "(0, 1] or be None; got 1.5. Pass e.g. variance=0.99 (the default).",
        ),
        (
            "pwcca:convention=goo",
            "Error: Invalid value for --measure: pwcca:convention=goo: convention must be one "
            "of 'paper', 'google'; got 'goo'. Pass e.g. convention='paper' (the default).",
        ),
        (
            "pwcca:epsilon=1e-6",
            "Error: Invalid value for --measure: pwcca:epsilon=1e-6: epsilon applies to "
            "convention='google' only; got epsilon with 'paper'.",
        ),
        (
            "svcca:conv=flatten",
            "Error: Invalid value for --measure: set the reshape policy with --conv, not as an "
            "option of svcca (got 'svcca:conv=flatten')",
        ),
        (
            "svcca:",
            "Error: Invalid value for --measure: expected options after ':' in 'svcca:', e.g. "
            "'svcca:variance=0.95' (or no ':')",
        ),
        (
            "svcca:variance",
            "Error: Invalid value for --measure: expected options as key=value pairs separated "
            "by commas, e.g. 'pwcca:convention=google,epsilon=1e-6'; got 'variance' in "
            "'svcca:variance'",
        ),
        (
            "svcca:variance=0.9,variance=0.8",
            "Error: Invalid value for --measure: option 'variance' is given twice in "
            "'svcca:variance=0.9,variance=0.8'",
        ),
        (
            "cka:variance=0.9",
            "Error: Invalid value for --measure: cka has no option 'variance': Its options: "
            "none (see help(nncompare.cka))",
        ),
    ],
)
def test_bad_measure_options(runner, small, spec, message):
    res = runner.invoke(
        cli, ["compare", SMALL, SMALL, *small["args"], "--measure", spec, "--out", "unused"]
    )
    assert _error(res) == message


def test_bad_measure_names(runner, small):
    base = ["compare", SMALL, SMALL, *small["args"], "--out", "unused"]
    line = _error(runner.invoke(cli, [*base, "--measure", "SVCA"]))
    assert line.startswith("Error: Invalid value for --measure: unknown measure 'svca'. Did you ")
    assert "'svcca'" in line
    line = _error(runner.invoke(cli, [*base, "--measure", "bures_wasserstein"]))
    assert line.startswith(
        "Error: Invalid value for --measure: 'bures_wasserstein' compares covariance "
        "matrices, not activations, so compare cannot run it; measures of activations: cca, "
    )
    line = _error(runner.invoke(cli, [*base, "--measure", "cka", "--measure", "Cka"]))
    assert line == (
        "Error: Invalid value for --measure: 'cka' is given twice; each measure runs once per "
        "comparison (run compare again for other options)"
    )


def test_measure_option_probe_does_not_refuse_sizes_that_fit_real_data(runner, small):
    """dims/k larger than the probe's default size are sized for, not refused."""
    _, df = _compare(
        runner,
        small["dir"] / "r",
        *small["args"],
        "--measure",
        "svcca:dims=12",
        "--measure",
        "mutual_knn:k=90",
        models=(SMALL, SMALL),
    )
    assert set(df["measure"]) == {"svcca", "mutual_knn"}
    assert df["error"].isna().all(), df["error"].tolist()


def test_conv_dft(runner, small):
    out, df = _compare(
        runner, small["dir"] / "r", *small["args"], "--conv", "dft", models=(SMALL, SMALL)
    )
    assert "measures: cca, svcca (the default; choose with --measure)" in out
    assert set(df["policy"]) == {"dft"}
    a, b, x = _nets(small)
    ref = nc.compare_models(
        a,
        b,
        x,
        layers_a=["relu1", "relu2"],
        layers_b=["relu1", "relu2"],
        measures=["cca", "svcca"],
        conv="dft",
    )
    np.testing.assert_allclose(df["value"], ref["value"], rtol=1e-6)
    res = runner.invoke(
        cli,
        ["compare", SMALL, SMALL, *small["args"], "--conv", "dft", "--measure", "cka"],
    )
    assert _error(res) == (
        "Error: Invalid value for --measure: cka is not defined with --conv dft (it takes "
        "--conv samples, flatten, mean); with --conv dft use cca, cca_r2, svcca"
    )


def test_names_and_title(runner, small):
    out_dir = small["dir"] / "r"
    _compare(
        runner,
        out_dir,
        *small["args"],
        "--measure",
        "cka",
        "--name-a",
        "seed 0",
        "--name-b",
        "seed 1",
        "--title",
        "Two seeds of SmallCNN <digits>",
        models=(SMALL, SMALL),
    )
    saved = json.loads((out_dir / "results.json").read_text())
    assert saved["title"] == "Two seeds of SmallCNN <digits>"
    assert {r["model_a"] for r in saved["records"]} == {"seed 0"}
    assert {r["model_b"] for r in saved["records"]} == {"seed 1"}
    html = (out_dir / "report.html").read_text()
    assert "<h1>Two seeds of SmallCNN &lt;digits&gt;</h1>" in html
    # without them: the checkpoint stems, as before
    _, df = _compare(runner, small["dir"] / "r2", *small["args"], "--measure", "cka",
                     models=(SMALL, SMALL))  # fmt: skip
    assert set(df["model_a"]) == {"a"} and set(df["model_b"]) == {"b"}
    res = runner.invoke(cli, ["compare", SMALL, SMALL, *small["args"], "--name-a", " "])
    assert _error(res) == "Error: Invalid value for --name-a: expected a non-empty label"


def test_figure_formats(runner, small):
    out_dir = small["dir"] / "r"
    out, _ = _compare(
        runner,
        out_dir,
        *small["args"],
        "--measure",
        "cka",
        "--formats",
        "png,PDF,svg",
        models=(SMALL, SMALL),
    )
    figures = out_dir / "figures"
    for fmt in ("png", "pdf", "svg"):
        files = sorted(figures.glob(f"*.{fmt}"))
        assert files, fmt
        assert re.search(rf"figures: {len(files)} {fmt.upper()} files in ", out)
    assert (figures / "heatmap_cka.pdf").read_bytes().startswith(b"%PDF")
    res = runner.invoke(cli, ["compare", SMALL, SMALL, *small["args"], "--formats", "png,jpg"])
    assert _error(res) == (
        "Error: Invalid value for --formats: expected a comma-separated subset of png, pdf, "
        "svg such as png,pdf; got 'png,jpg' (unknown: jpg)"
    )


def test_real_process_data_error_is_one_line_and_debug_shows_the_cause(data):
    import os
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    env.pop("NNCOMPARE_DEBUG", None)
    args = [sys.executable, "-m", "nncompare.cli.main"]
    command = ["compare", SMALL3, SMALL3, "--data", str(data["nhwc_u8"]), "--channels-first"]
    proc = subprocess.run(
        [*args, *command], cwd=data["dir"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (
        "Error: cannot use the inputs in --data nhwc_u8.npz: images of shape (120, 8, 8, 3) "
        "read as NCHW have 8 channels, but the model expects 3. If they are NHWC, say so "
        "(--channels-last).\n"
    )
    proc = subprocess.run(
        [*args, "--debug", *command],
        cwd=data["dir"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr
    assert "in prepare_images" in proc.stderr
