"""``nncompare demo``: the whole job on the embedded digits, stitching section included."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nncompare.cli.main import cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_demo_writes_the_report_with_a_stitching_section(runner, tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "demo"
    res = runner.invoke(cli, ["demo", "--out", str(out), "--epochs", "8"])
    assert res.exit_code == 0, res.output
    assert "stitched net A into net B at 4 cuts: lowest relative accuracy" in res.output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="heatmaps"' in html and 'id="stitching"' in html
    sweep = pd.read_csv(out / "stitching.csv")
    assert list(dict.fromkeys(sweep["layer_a"])) == ["relu1", "maxpool1", "relu2", "pool"]
    assert sorted(set(sweep["method"])) == ["identity", "ls", "task"]
    assert sweep["relative_accuracy"].between(0, 1.2).all()
    # task-loss matching starts from the LS matrix and lowers the cross-entropy to B
    by = sweep.pivot(index="layer_a", columns="method", values="cross_entropy")
    assert (by["task"] <= by["ls"] + 1e-3).all(), by
    # the stitched front of A does B's job far better than A's raw activations
    rel = sweep.pivot(index="layer_a", columns="method", values="relative_accuracy")
    assert (rel["ls"] > rel["identity"]).all(), rel
    # the task-alignment section: net A's layers before and after training (issue #11)
    assert "task alignment of net A at 4 layers on the test images" in res.output
    assert 'id="alignment"' in html
    curves = pd.read_csv(out / "alignment.csv")
    assert set(curves["checkpoint"]) == {"init", "trained"}
    doc = json.loads((out / "alignment.json").read_text(encoding="utf-8"))
    summary = pd.DataFrame(doc["summary"]).set_index(["representation", "layer"])
    # training concentrates the (centred one-hot) labels on pool's top singular directions
    assert (
        summary.loc[("trained", "pool"), "mean_sigma_rel"]
        > 2 * summary.loc[("init", "pool"), "mean_sigma_rel"]
    )
