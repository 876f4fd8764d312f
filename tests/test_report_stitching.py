"""The stitching report (nncompare.report._stitching) and the stitching section of the
comparison report, from hand-made StitchResults (no model runs)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nncompare.report import (
    StitchingData,
    example_frame,
    load_results,
    load_stitching_results,
    stitching_figures,
    write_report,
    write_stitching_report,
)
from nncompare.report._stitching import as_stitching
from nncompare.stitching import StitchResult

pytest.importorskip("matplotlib")


def _result(layer: str, method: str, *, rel: float | None, width: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    history = []
    if method == "task":
        history = [
            {
                "step": s,
                "epoch": s,
                "loss": None if s == 0 else 1.0 / s,
                "accuracy": 0.5,
                "relative_accuracy": 0.9 + 0.01 * s,
                "cka": 0.8 - 0.01 * s,
            }
            for s in range(4)
        ]
    return StitchResult(
        method=method,
        matrix=rng.standard_normal((width, width)),
        bias=rng.standard_normal(width),
        layer_a=layer,
        layer_b=layer,
        kind="linear",
        options={"epochs": 3} if method == "task" else {},
        n_samples=100,
        history=history,
        accuracy=None if rel is None else 0.9 * rel,
        accuracy_b=None if rel is None else 0.9,
        relative_accuracy=rel,
        cross_entropy=0.5,
        agreement=0.8,
    )


@pytest.fixture
def results():
    return [
        _result("=cmd|'/c calc'!A0", "ls", rel=0.7, seed=1),
        _result("=cmd|'/c calc'!A0", "task", rel=0.9, seed=2),
        _result("<script>alert(1)</script>", "ls", rel=0.95, seed=3),
        _result("<script>alert(1)</script>", "task", rel=1.0, seed=4),
    ]


def test_stitching_report_files_and_round_trip(results, tmp_path):
    frame = pd.DataFrame([r.to_row() for r in results])
    frame.attrs["names"] = ["net A", "net B"]
    frame.attrs["provenance"] = {"data": "digits", "n_samples": 100, "command": "test"}
    rep = write_stitching_report(
        StitchingData(frame=frame, results=results), tmp_path, formats=("svg",)
    )
    html = rep.html.read_text(encoding="utf-8")
    assert "<title>Stitching net A into net B</title>" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'id="stitching"' in html and "Task-loss training" in html
    csv = rep.csv.read_text(encoding="utf-8")
    assert "'=cmd|" in csv and "\n=cmd" not in csv  # a spreadsheet shows it, never runs it
    doc = json.loads(rep.json.read_text(encoding="utf-8"))
    assert doc["format"] == "nncompare.stitching"
    assert [r["history"][-1]["cka"] for r in doc["results"] if r["method"] == "task"] == [
        pytest.approx(0.77),
        pytest.approx(0.77),
    ]
    back = load_stitching_results(tmp_path)
    assert list(back["layer_a"]) == [r.layer_a for r in results]  # exact strings
    assert back.attrs["provenance"]["data"] == "digits"
    with np.load(tmp_path / "matrices.npz") as z:
        np.testing.assert_array_equal(z["matrix_002"], results[2].matrix)
        np.testing.assert_array_equal(z["bias_003"], results[3].bias)
    assert sorted(p.name for p in rep.figures["svg"]) == [
        "stitching_cross_entropy.svg",
        "stitching_matrices.svg",
        "stitching_relative_accuracy.svg",
        "stitching_training.svg",
    ]


def test_a_layer_sweep_frame_is_drawn_by_plot_stitch_layer_sweep(results):
    frame = pd.DataFrame([{"position": i // 2, **r.to_row()} for i, r in enumerate(results)])
    assert sorted(stitching_figures(frame)) == ["stitching_layers"]
    assert sorted(stitching_figures(StitchingData(frame, results))) == [
        "stitching_layers",
        "stitching_matrices",
        "stitching_training",
    ]


def test_without_labels_the_score_is_the_agreement_with_b():
    rows = [_result("l1", "ls", rel=None).to_row(), _result("l2", "ls", rel=None).to_row()]
    figures = stitching_figures(pd.DataFrame(rows))
    assert sorted(figures) == ["stitching_agreement", "stitching_cross_entropy"]
    ax = figures["stitching_agreement"].axes[0]
    assert ax.get_ylabel() == "agreement with B (top-1; no labels)"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.8, 0.8])


def test_comparison_report_gains_a_stitching_section(results, tmp_path):
    comparison = example_frame(layers_a=("conv1", "fc1"), measures=("cka",))
    rep = write_report(comparison, tmp_path, stitching=results)
    html = rep.html.read_text(encoding="utf-8")
    assert html.index('id="stitching"') < html.index('id="results"')
    assert "Model stitching: can a layer of net-seed0 do the job of one of net-seed1?" in html
    stitching = pd.read_csv(tmp_path / "stitching.csv")
    assert list(stitching["method"]) == ["ls", "task", "ls", "task"]
    assert json.loads((tmp_path / "stitching.json").read_text())["format"] == (
        "nncompare.stitching"
    )
    assert len(load_results(tmp_path)) == len(comparison) == 4  # the comparison is unchanged


def test_bad_input_says_what_was_expected(tmp_path):
    with pytest.raises(
        TypeError,
        match=r"Expected stitching results: a list of "
        r"nncompare\.stitching\.StitchResult .*got dict",
    ):
        as_stitching({"ls": 1})
    with pytest.raises(
        ValueError,
        match=r"Expected stitching rows with columns layer_a, "
        r"layer_b and method .*lacks \['method'\]",
    ):
        as_stitching(pd.DataFrame({"layer_a": ["x"], "layer_b": ["y"]}))
    (tmp_path / "results.json").write_text('{"format": "nncompare.results"}')
    with pytest.raises(
        ValueError,
        match=r"Expected a stitching results file \(format "
        r"'nncompare\.stitching'.*got format 'nncompare\.results'",
    ):
        load_stitching_results(tmp_path)
