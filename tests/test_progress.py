"""Progress over a whole comparison run (issue 7, item 7).

Reproducer: after the capture the measure phase ran for minutes without any output. Now
``progress=True`` shows two phases on stderr, each with its total: the capture (samples)
and the pair evaluations (layer pairs × measures).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import nncompare as nc
from nncompare.workbench.models import MLP, SmallCNN


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    a = SmallCNN(in_channels=1)
    torch.manual_seed(1)
    b = SmallCNN(in_channels=1)
    return a, b


def _final(stderr: str, phase: str) -> str:
    """The last state of one phase's bar (tqdm redraws it with carriage returns)."""
    states = [s for s in re.split(r"[\r\n]", stderr) if phase in s]
    assert states, f"no {phase!r} progress in stderr: {stderr!r}"
    return states[-1]


def test_compare_models_reports_capture_then_measures(nets, capsys):
    a, b = nets
    x = torch.rand(90, 1, 8, 8)
    df = nc.compare_models(
        a,
        b,
        x,
        layers_a=["relu1", "relu2", "fc"],
        layers_b=["relu2", "fc"],
        measures=["cka", "procrustes"],
        batch_size=40,
        progress=True,
    )
    err = capsys.readouterr().err
    capture = _final(err, "[1/2] capture")
    measures = _final(err, "[2/2] measures")
    assert "90/90" in capture  # the total is known up front, so tqdm shows an ETA
    assert "12/12" in measures  # 3 × 2 layer pairs × 2 measures
    assert err.index("[1/2] capture") < err.index("[2/2] measures")
    assert len(df) == 12


def test_total_counts_max_samples(nets, capsys):
    a, b = nets
    nc.compare_models(
        a,
        b,
        torch.rand(90, 1, 8, 8),
        layers_a=["fc"],
        layers_b=["fc"],
        measures=["cka"],
        max_samples=50,
        progress=True,
    )
    err = capsys.readouterr().err
    assert "50/50" in _final(err, "[1/2] capture")
    assert "1/1" in _final(err, "[2/2] measures")


def test_no_progress_by_default_or_when_off(nets, capsys):
    a, b = nets
    x = torch.rand(30, 1, 8, 8)
    nc.compare_models(a, b, x, layers_a=["fc"], measures=["cka"])
    nc.compare_models(a, b, x, layers_a=["fc"], measures=["cka"], progress=False)
    captured = capsys.readouterr()
    assert "nncompare [" not in captured.err and "nncompare [" not in captured.out


def test_compare_checkpoints_reports_both_phases(capsys):
    torch.manual_seed(0)
    net = MLP(6, (8,), 3)
    states = []
    for seed in range(3):
        torch.manual_seed(seed)
        states.append(MLP(6, (8,), 3).state_dict())
    df = nc.compare_checkpoints(
        net,
        states,
        torch.randn(40, 6),
        layers=["relu1", "fc2"],
        measures=["cka"],
        progress=True,
    )
    err = capsys.readouterr().err
    assert "40/40" in _final(err, "[1/2] capture")
    assert "6/6" in _final(err, "[2/2] measures")  # 2 layers × 3 checkpoints × 1 measure
    assert len(df) == 6


def test_cli_compare_shows_progress_by_default(tmp_path):
    from nncompare.cli.main import cli

    data = tmp_path / "x.npz"
    np.savez(data, x=np.random.default_rng(0).random((60, 1, 8, 8)).astype(np.float32))
    args = [
        "compare",
        "nncompare.models:SmallCNN(in_channels=1)",
        "nncompare.models:SmallCNN(in_channels=1)",
        "--data",
        str(data),
        "--measure",
        "cka",
        "--layers-a",
        "relu1,fc",
        "--layers-b",
        "fc",
    ]
    res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "r1")])
    assert res.exit_code == 0, res.output
    assert "60/60" in _final(res.stderr, "[1/2] capture")
    assert "2/2" in _final(res.stderr, "[2/2] measures")
    res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "r2"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "nncompare [" not in res.stderr
