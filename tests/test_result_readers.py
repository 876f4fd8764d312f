"""One ComparisonResult that the report, the plots and the CLI read (issue 8, item 1): a
compare_models frame, a ComparisonResult and the GridResult of nc.pairwise all go in."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import nncompare as nc
from nncompare.report import load_results, results_json, write_report
from nncompare.results import ComparisonResult

pytest.importorskip("matplotlib")

N = 120


@pytest.fixture(scope="module")
def acts():
    rng = np.random.default_rng(11)
    base = rng.standard_normal((N, 6))
    return {
        "conv1": base @ rng.standard_normal((6, 5)),
        "conv2": np.tanh(base @ rng.standard_normal((6, 7))),
        "fc": rng.standard_normal((N, 4)),
    }


@pytest.fixture(scope="module")
def grid(acts):
    return nc.pairwise(acts, measures=["cka", "cca", "svcca"], keep_results=True)


def test_grid_as_comparison_has_the_compare_models_schema(grid, acts):
    res = ComparisonResult.from_frame(grid)
    assert isinstance(res, ComparisonResult) and res.kind == "models"
    df = res.frame
    for col in ("model_a", "model_b", "layer_a", "layer_b", "measure", "value", "distance"):
        assert col in df.columns, col
    assert {"policy", "n_samples", "error", "note", "kept_dims_x", "kept_dims_y"} <= set(df)
    assert res.layers_a == res.layers_b == list(acts)
    assert res.n_samples == N and res.provenance["n_samples"] == N
    assert res.measures["cka"].higher_is_better is True
    # values: linear CKA of the arrays themselves (Kornblith et al. 2019, eq. 4 in numpy)
    for (a, b), v in df[df.measure == "cka"].set_index(["layer_a", "layer_b"])["value"].items():
        X = acts[a] - acts[a].mean(0)
        Y = acts[b] - acts[b].mean(0)
        want = np.linalg.norm(X.T @ Y) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))
        np.testing.assert_allclose(v, want, rtol=1e-9)
    # SVCCA's kept dims per pair (mirrored pairs swap them), spectra from the kept results
    for a in acts:
        for b in acts:
            kx, ky = res.kept_dims[(a, b)]
            assert (ky, kx) == res.kept_dims[(b, a)]
            assert len(res.spectra["cca"][(a, b)]) == min(acts[a].shape[1], acts[b].shape[1])
    assert res.spectra["cca"][("fc", "fc")] == pytest.approx([1.0] * 4)


def test_report_of_a_grid_result(grid, tmp_path):
    files = write_report(grid, tmp_path / "grid")
    page = files.html.read_text(encoding="utf-8")
    assert "<title>A vs B</title>" in page
    assert "Canonical correlation spectra" in page and "SVCCA kept dimensions" in page
    assert "Figure not available" not in page
    doc = json.loads(files.json.read_text(encoding="utf-8"))
    assert len(doc["records"]) == 3 * 3 * 3
    assert doc["attrs"]["kept_dims"]["conv1|conv2"] == list(
        grid.to_comparison().kept_dims[("conv1", "conv2")]
    )
    back = ComparisonResult.from_frame(load_results(files.directory))
    assert back.kept_dims == ComparisonResult.from_frame(grid).kept_dims
    np.testing.assert_array_equal(
        back.frame["value"].to_numpy(), grid.to_comparison().frame["value"].to_numpy()
    )


def test_plots_of_a_grid_result(grid):
    for fig in (
        nc.plot.heatmap(grid, "cka"),
        nc.plot.layer_profile(grid, "svcca"),
        nc.plot.kept_dims(grid),
        nc.plot.spectrum(grid, "cca"),
    ):
        assert fig.axes
    lines = nc.plot.spectrum(grid, "cca").axes[0].get_lines()
    assert len(lines) == 3  # the same-named pairs


def test_readers_read_the_typed_fields_not_the_frame_attrs(grid, tmp_path):
    res = grid.to_comparison(("net1", "net2"), title="typed title")
    res.frame.attrs = {"title": "stale title", "measures": {}}  # ignored: the typed view wins
    res.measures["cka"].higher_is_better = False
    res.extra["run_note"] = "seed 7"
    files = write_report(res, tmp_path / "typed")
    page = files.html.read_text(encoding="utf-8")
    assert "<title>typed title</title>" in page and "stale title" not in page
    assert "lower = more similar" in page  # the typed record of cka
    assert "Other metadata" in page and "seed 7" in page
    doc = json.loads(files.json.read_text(encoding="utf-8"))
    assert doc["title"] == "typed title" and doc["attrs"]["run_note"] == "seed 7"
    assert doc["attrs"]["measures"]["cka"]["higher_is_better"] is False
    assert doc["records"][0]["model_a"] == "net1"


def test_from_frame_keeps_unknown_metadata_and_splits_names_with_bars():
    df = pd.DataFrame(
        {
            "layer_a": ["a|b", "a|b"],
            "layer_b": ["c", "d|e"],
            "measure": ["cca", "cca"],
            "value": [0.5, 0.25],
        }
    )
    df.attrs = {
        "spectra": {"cca": {"a|b|c": [0.9, 0.1], "a|b|d|e": [0.5, 0.0]}},
        "kept_dims": {"a|b|d|e": [2, None]},
        "provenance": "not a mapping",
        "measures": {"cca": "nor this"},
        "seeds": [1, 2],
    }
    res = ComparisonResult.from_frame(df)
    assert set(res.spectra["cca"]) == {("a|b", "c"), ("a|b", "d|e")}
    assert res.kept_dims == {("a|b", "d|e"): (2, None)}
    assert res.provenance == {} and res.measures["cca"].options == {}
    assert res.extra == {"seeds": [1, 2]}
    doc = json.loads(results_json(df))
    assert doc["attrs"]["seeds"] == [1, 2]
    assert doc["attrs"]["spectra"]["cca"]["a|b|d|e"] == [0.5, 0.0]


def test_readers_refuse_what_is_not_a_comparison(grid):
    with pytest.raises(TypeError, match="expects the DataFrame returned by compare_models"):
        ComparisonResult.from_frame(pd.DataFrame({"x": [1]}))
    with pytest.raises(TypeError, match=r"or the GridResult of nc\.pairwise\); got list"):
        nc.plot.heatmap([1, 2], "cka")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['layer_a', 'layer_b'\]"):
        nc.plot.heatmap(pd.DataFrame({"measure": ["cka"], "value": [1.0]}), "cka")
    with pytest.raises(ValueError, match="names must be two labels"):
        grid.to_comparison(("only",))
