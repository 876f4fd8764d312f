"""Command-line errors: one line, the fix in it ("did you mean" first), tracebacks on --debug."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import nncompare.capture
from cli_util import error_line as _error
from nncompare.cli.main import cli
from nncompare.workbench.models import SmallCNN, cifar_resnet

SRC = Path(__file__).resolve().parents[1] / "src"


def _one_line_error(res) -> str:
    """Like :func:`_error`, and nothing else was printed (no usage preamble)."""
    line = _error(res)
    assert res.output.strip() == line, res.output
    return line


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN().eval()
    state = tmp_path / "state.pt"
    torch.save(model.state_dict(), state)
    ts = tmp_path / "model_ts.pt"
    torch.jit.trace(model, torch.zeros(2, 1, 8, 8)).save(str(ts))
    pt2 = tmp_path / "model.pt2"
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(pt2))
    rng = np.random.default_rng(0)
    nchw = tmp_path / "nchw.npz"
    np.savez(nchw, x=rng.random((20, 1, 8, 8)).astype(np.float32))
    nhwc = tmp_path / "nhwc.npz"
    np.savez(nhwc, x=(rng.random((20, 8, 8, 1)) * 255).astype(np.uint8))
    return {"state": state, "ts": ts, "pt2": pt2, "nchw": nchw, "nhwc": nhwc, "dir": tmp_path}


# --------------------------------------------------------------------------- issue 6, item 3


def test_weights_that_are_whole_models(runner, files):
    for key, kind in (("ts", "a TorchScript archive"), ("pt2", "a torch.export archive")):
        res = runner.invoke(
            cli, ["layers", "nncompare.models:SmallCNN()", "--weights", str(files[key])]
        )
        line = _one_line_error(res)
        assert f"--weights {files[key]} is {kind}" in line
        assert "a whole model rather than a state dict: pass it as MODEL instead" in line


def test_weights_for_a_model_file(runner, files):
    res = runner.invoke(cli, ["layers", str(files["pt2"]), "--weights", str(files["state"])])
    line = _error(res)
    assert "--weights applies to module:factory models only" in line


def test_factory_argument_errors(runner):
    res = runner.invoke(cli, ["layers", "nncompare.models:SmallCNN(widht=3)"])
    line = _one_line_error(res)
    assert line.startswith(
        "Error: wrong arguments for nncompare.models:SmallCNN(widht=3): "
        "did you mean 'widths' instead of 'widht'?"
    )
    assert "It takes SmallCNN(in_channels=1, num_classes=10, widths=(16, 32)" in line
    res = runner.invoke(cli, ["layers", "nncompare.models:cifar_resnet()"])
    line = _one_line_error(res)
    assert "missing a required argument: 'depth'. It takes cifar_resnet(depth, " in line


def test_exceptions_raised_inside_a_factory(runner):
    res = runner.invoke(cli, ["layers", "nncompare.models:SmallCNN(in_channels=-1)"])
    line = _one_line_error(res)
    assert line.startswith(
        "Error: building nncompare.models:SmallCNN(in_channels=-1) failed: ValueError: "
        "in_channels must be a positive integer, got -1"
    )
    res = runner.invoke(cli, ["layers", "nncompare.models:cifar_resnet(depth=21)"])
    line = _one_line_error(res)
    assert "building nncompare.models:cifar_resnet(depth=21) failed: ValueError:" in line
    res = runner.invoke(cli, ["layers", "nncompare.models:SmallCN"])
    line = _one_line_error(res)
    assert "'nncompare.models' has no attribute 'SmallCN': did you mean 'SmallCNN'" in line


def test_model_file_kinds(runner, files):
    res = runner.invoke(cli, ["layers", str(files["state"])])
    line = _one_line_error(res)
    assert f"MODEL {files['state']} is a state-dict checkpoint" in line
    assert "pass the architecture as module:factory and this file with --weights" in line
    res = runner.invoke(cli, ["layers", str(files["dir"] / "missing.pt")])
    line = _error(res)
    assert "is neither an existing model file nor 'module:factory' (no such file:" in line
    junk = files["dir"] / "junk.pt2"
    junk.write_bytes(b"not a model")
    line = _one_line_error(runner.invoke(cli, ["layers", str(junk)]))
    assert f"MODEL {junk} is not a file torch can load: expected a torch.export archive" in line


# --------------------------------------------------------------------------- issue 7, item 4


def test_unexpected_exceptions_become_one_line(runner, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("inner failure\n  second line")

    monkeypatch.setattr(nncompare.capture, "list_layers", boom)
    res = runner.invoke(cli, ["layers", "nncompare.models:SmallCNN()"])
    assert res.exit_code == 1
    assert res.output == (
        "Error: RuntimeError: inner failure second line (rerun with --debug for the traceback)\n"
    )
    res = runner.invoke(cli, ["--debug", "layers", "nncompare.models:SmallCNN()"])
    assert isinstance(res.exception, RuntimeError)  # re-raised: Python prints the traceback
    res = runner.invoke(
        cli, ["layers", "nncompare.models:SmallCNN()"], env={"NNCOMPARE_DEBUG": "1"}
    )
    assert isinstance(res.exception, RuntimeError)


def test_layer_typos_say_did_you_mean_first(runner, files):
    base = ["compare", "nncompare.models:SmallCNN()", "nncompare.models:SmallCNN()"]
    base += ["--data", str(files["nchw"]), "--no-progress", "--out", str(files["dir"] / "r")]
    res = runner.invoke(cli, [*base, "--layers-a", "relu3"])
    line = _error(res)
    assert line.startswith(
        "Error: Invalid value for --layers-a: No layer named 'relu3' in SmallCNN. "
        "Did you mean 'relu2', 'relu1'?"
    )
    res = runner.invoke(cli, [*base, "--layers-a", "fc", "--layers-b", "fcc"])
    assert _error(res).startswith(
        "Error: Invalid value for --layers-b: No layer named 'fcc' in SmallCNN. Did you mean 'fc'?"
    )


def test_wrong_input_shape(runner):
    res = runner.invoke(cli, ["layers", "nncompare.models:SmallCNN()", "--input-shape", "1,3,8,8"])
    line = _one_line_error(res)
    assert line.startswith(
        "Error: MODEL nncompare.models:SmallCNN() cannot run on inputs of shape (1, 3, 8, 8) "
        "(--input-shape): did you mean --input-shape 1,1,8,8? (the first layer conv1 (Conv2d) "
        "expects (N, 1, H, W))."
    )
    res = runner.invoke(cli, ["layers", "nncompare.models:SmallCNN()", "--input-shape", "1,8,8"])
    assert "did you mean --input-shape 1,1,8,8?" in _one_line_error(res)
    res = runner.invoke(
        cli, ["layers", "nncompare.models:MLP(in_features=5)", "--input-shape", "2,6"]
    )
    assert "did you mean --input-shape 2,5?" in _one_line_error(res)
    res = runner.invoke(cli, ["layers", "nncompare.models:SmallCNN()", "--input-shape", "1x3"])
    assert _error(res) == (
        "Error: Invalid value for --input-shape: expected comma-separated positive integers "
        "such as 1,3,32,32 (batch first); got '1x3'"
    )


def test_data_layout_mismatch(runner, files):
    """Channels-last uint8 images are now read as such (issue 7 item 2) and said so; a
    layout given against the data is refused in one line naming the right flag."""
    base = ["compare", "nncompare.models:SmallCNN()", "nncompare.models:SmallCNN()"]
    base += ["--data", str(files["nhwc"]), "--no-progress", "--out", str(files["dir"] / "r")]
    res = runner.invoke(cli, [*base, "--measure", "cka"])
    assert res.exit_code == 0, res.output
    assert "layout: read (20, 8, 8, 1) as NHWC (inferred), moved channels first" in res.output
    line = _one_line_error(runner.invoke(cli, [*base, "--channels-first"]))
    assert line == (
        "Error: cannot use the inputs in --data nhwc.npz: images of shape (20, 8, 8, 1) read "
        "as NCHW have 8 channels, but the model expects 1. If they are NHWC, say so "
        "(--channels-last)."
    )


def test_checkpoint_that_does_not_fit_lists_keys(runner, tmp_path):
    state = SmallCNN().state_dict()
    state["head.bias"] = state.pop("fc.bias")
    path = tmp_path / "renamed.pt"
    torch.save(state, path)
    line = _one_line_error(
        runner.invoke(cli, ["layers", "nncompare.models:SmallCNN()", "--weights", str(path)])
    )
    assert f"the checkpoint {path} does not fit nncompare.models:SmallCNN()" in line
    assert "missing keys (1): fc.bias; unexpected keys (1): head.bias." in line
    # a ResNet-32 checkpoint for a ResNet-20: the depth is named first
    path32 = tmp_path / "r32.pt"
    torch.save(cifar_resnet(32).state_dict(), path32)
    spec = "nncompare.models:cifar_resnet(depth=20)"
    line = _one_line_error(runner.invoke(cli, ["layers", spec, "--weights", str(path32)]))
    assert re.search(
        r"does not fit .*: did you mean depth=32\? The checkpoint is a ResNet-32\. "
        r"unexpected keys \(72\): layer1\.3\.conv1\.weight, ",
        line,
    ), line
    # a different number of classes
    path20 = tmp_path / "r20.pt"
    torch.save(cifar_resnet(20).state_dict(), path20)
    spec = "nncompare.models:cifar_resnet(depth=20, num_classes=100)"
    line = _one_line_error(runner.invoke(cli, ["layers", spec, "--weights", str(path20)]))
    assert "did you mean num_classes=10? The checkpoint's classifier has 10 outputs" in line
    assert "linear.weight (10, 64) in the checkpoint vs (100, 64) in the model" in line
    # every name carries a prefix
    prefixed = tmp_path / "prefixed.pt"
    torch.save({"net." + k: v for k, v in SmallCNN().state_dict().items()}, prefixed)
    line = _one_line_error(
        runner.invoke(cli, ["layers", "nncompare.models:SmallCNN()", "--weights", str(prefixed)])
    )
    assert "did you mean a checkpoint without the prefix 'net.'?" in line


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    env.pop("NNCOMPARE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "nncompare.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_real_process_prints_one_line_and_debug_shows_the_traceback(tmp_path):
    args = ["layers", "nncompare.models:SmallCNN()", "--input-shape", "1,3,8,8"]
    proc = _run(args, tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: MODEL ")
    assert "did you mean --input-shape 1,1,8,8?" in proc.stderr
    proc = _run(["--debug", *args], tmp_path)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "expected input[1, 3, 8, 8] to have 1 channels" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: MODEL ")
    # an exception from library code: one line naming its type, traceback with --debug
    bad = tmp_path / "x.npy"
    np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    args = ["compare", "nncompare.models:SmallCNN()", "nncompare.models:SmallCNN()"]
    args += ["--data", str(bad)]
    proc = _run(args, tmp_path)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert re.fullmatch(
        r"Error: ValueError: .*x\.npy.* pickled Python objects.* "
        r"\(rerun with --debug for the traceback\)\n",
        proc.stderr,
    ), proc.stderr
    proc = _run(["--debug", *args], tmp_path)
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr
    assert "load_array_file" in proc.stderr


def test_usage_errors_are_one_line_without_the_usage_preamble():
    """click prints 'Usage: ...' and 'Try ... for help.' above a usage error; nncompare prints
    the error alone, on one line, with click's usage exit code 2."""
    from nncompare.cli.main import cli

    for args, expected in [
        (["bogus"], "Error: No such command 'bogus'."),
        (["compare", "a", "b", "--data", "missing.npz"], "Error: Invalid value for '--data'"),
        (["measures", "--jsn"], "Error: No such option '--jsn'. Did you mean '--json'?"),
    ]:
        res = CliRunner().invoke(cli, args)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code == 2, res.output
        assert len(lines) == 1 and lines[0].startswith(expected), res.output
