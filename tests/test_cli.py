"""The command line: thin, safe, and helpful on bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import nncompare as nc
from nncompare._version import __version__
from nncompare.cli.main import cli
from nncompare.workbench.models import SmallCNN


def test_version_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, nncompare.cli.main as m\n"
        "heavy = [k for k in ('torch', 'scipy', 'pandas', 'matplotlib') if k in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version(runner):
    res = runner.invoke(cli, ["--version"])
    assert res.exit_code == 0 and __version__ in res.output


def test_measures_table_and_json(runner):
    res = runner.invoke(cli, ["measures"])
    assert res.exit_code == 0
    for name in ("cca", "svcca", "pwcca", "cka", "procrustes"):
        assert name in res.output
    res = runner.invoke(cli, ["measures", "--json"])
    data = json.loads(res.output)
    assert data["pwcca"]["symmetric"] is False and data["cka"]["streaming"] is True


def test_layers_of_factory_model(runner):
    res = runner.invoke(
        cli, ["layers", "nncompare.models:SmallCNN(in_channels=1)", "--input-shape", "2,1,8,8"]
    )
    assert res.exit_code == 0, res.output
    assert "conv1" in res.output and "fc" in res.output and "(2, 10)" in res.output


def test_factory_arguments_must_be_literals(runner):
    res = runner.invoke(cli, ["layers", "nncompare.models:SmallCNN(in_channels=__import__('os'))"])
    assert res.exit_code != 0
    assert "argument 'in_channels' of " in res.output
    assert "is not a literal (numbers, strings, tuples" in res.output


def test_unknown_module_and_attribute(runner):
    res = runner.invoke(cli, ["layers", "no_such_module_xyz:f"])
    assert res.exit_code != 0
    assert "Error: cannot import 'no_such_module_xyz': No module named" in res.output
    res = runner.invoke(cli, ["layers", "nncompare.models:nope"])
    assert res.exit_code != 0
    assert "Error: 'nncompare.models' has no attribute 'nope'" in res.output


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    a = SmallCNN()
    torch.manual_seed(1)
    b = SmallCNN()
    pa, pb = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(a.state_dict(), pa)
    torch.save({"state_dict": {"module." + k: v for k, v in b.state_dict().items()}}, pb)
    rng = np.random.default_rng(0)
    data = tmp_path / "x.npz"
    np.savez(data, x=rng.random((300, 1, 8, 8)).astype(np.float32), y=np.zeros(300, np.int64))
    ts = tmp_path / "a_script.pt"
    torch.jit.trace(a.eval(), torch.zeros(2, 1, 8, 8)).save(str(ts))
    return {"a": pa, "b": pb, "data": data, "ts": ts, "dir": tmp_path, "model": a}


def test_compare_factory_with_weights(runner, files):
    out = files["dir"] / "report"
    res = runner.invoke(
        cli,
        [
            "compare",
            "nncompare.models:SmallCNN()",
            "nncompare.models:SmallCNN()",
            "--weights-a",
            str(files["a"]),
            "--weights-b",
            str(files["b"]),
            "--data",
            str(files["data"]),
            "--measure",
            "cka",
            "--measure",
            "svcca",
            "--layers-a",
            "relu1,fc",
            "--layers-b",
            "relu2,fc",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "report.html").exists() and (out / "results.csv").exists()
    import pandas as pd

    df = pd.read_csv(out / "results.csv")
    assert len(df) == 2 * 2 * 2


def test_compare_torchscript_archive(runner, files):
    out = files["dir"] / "r2"
    args = [
        "compare",
        str(files["ts"]),
        str(files["ts"]),
        "--data",
        str(files["data"]),
        "--measure",
        "cka",
        "--out",
        str(out),
        "--no-progress",
    ]
    # TorchScript archives are programs: refused unless trusted
    res = runner.invoke(cli, [*args, "--layers-a", "output", "--layers-b", "output"])
    assert res.exit_code != 0
    assert re.search(r"refusing to load .*a_script\.pt: it is a TorchScript archive", res.output)
    assert "--allow-pickle" in res.output
    trusted = [*args, "--allow-pickle"]
    res = runner.invoke(cli, [*trusted, "--layers-a", "output", "--layers-b", "output"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, [*trusted, "--layers-a", "scripted.fc"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert re.search(r"TorchScript.*torch\.export", res.output), res.output


def test_torch_export_archive_loads(files):
    from nncompare.cli.loading import load_model

    batch = torch.export.Dim("batch", min=1)
    ep = torch.export.export(
        files["model"].eval(), (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: batch},)
    )
    path = files["dir"] / "a.pt2"
    torch.export.save(ep, str(path))
    net = load_model(str(path))
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(net(x), files["model"](x))
    # the unflattened program keeps layer names, so layers can be recorded
    df = nc.compare_models(
        net, files["model"], x, layers_a=["relu2"], layers_b=["relu2"], measures=["cka"]
    )
    np.testing.assert_allclose(df["value"], 1.0, atol=1e-9)


def test_arbitrary_pickle_refused_unless_allowed(runner, files, tmp_path):
    from fractions import Fraction  # any object outside torch's weights-only allow-list

    bad = tmp_path / "evil.pt"
    torch.save({"state_dict": files["model"].state_dict(), "extra": Fraction(1, 3)}, bad)
    res = runner.invoke(cli, ["layers", "nncompare.models:SmallCNN()", "--weights", str(bad)])
    assert res.exit_code != 0
    assert f"--weights {bad} is not plain tensors: it needs the Python object " in res.output
    assert "fractions.Fraction" in res.output and "pass --allow-pickle" in res.output
    res = runner.invoke(
        cli, ["layers", "nncompare.models:SmallCNN()", "--weights", str(bad), "--allow-pickle"]
    )
    assert res.exit_code == 0, res.output


def test_unknown_measure_lists_close_matches(runner, files):
    res = runner.invoke(
        cli,
        [
            "compare",
            "nncompare.models:SmallCNN()",
            "nncompare.models:SmallCNN()",
            "--data",
            str(files["data"]),
            "--measure",
            "svca",
        ],
    )
    assert res.exit_code != 0
    assert "Invalid value for --measure" in res.output and "'svcca'" in res.output


def test_mismatched_checkpoint_explains(runner, files):
    res = runner.invoke(
        cli, ["layers", "nncompare.models:SmallCNN(widths=(8, 8))", "--weights", str(files["a"])]
    )
    assert res.exit_code != 0
    assert f"the checkpoint {files['a']} does not fit " in res.output
    assert (
        "shape mismatches (" in res.output
        and "conv1.weight (16, 1, 3, 3) in the checkpoint" in res.output
    )
