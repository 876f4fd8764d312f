"""Figures a paper could use (issue 7, items 10 and 11).

* spectra: the title never overprints the legend, the plot keeps most of the figure, and
  "k of n pairs" is said when pairs are left out;
* heatmaps of one measure family (linear and debiased CKA; CCA, SVCCA, PWCCA) share one
  colour scale, the union of the ranges in the measure registry, and say so;
* SVCCA kept dimensions in depth order (the order of the results frame), not alphabetical;
* ``write_report(..., formats=("png", "pdf", "svg"))`` writes each figure as a file;
* between networks of different depth (9 vs 15 layers) the reference ("diagonal") pairs are
  matched by relative depth, or by relative depth within stages for ResNet-style names.

The frames are built by hand (values fall off with the distance in relative depth), so the
expected pairs and values are known exactly.
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pd = pytest.importorskip("pandas")

from matplotlib.figure import Figure  # noqa: E402

from nncompare import plot  # noqa: E402
from nncompare.measures import _registry  # noqa: E402
from nncompare.plot._data import (  # noqa: E402
    best_matches,
    color_scale,
    measure_matrix,
    reference_matches,
    reference_pairs,
)
from nncompare.report import render_html, write_report  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# ResNet-20 and ResNet-32 on CIFAR-10: 3 stages of 3 and of 5 residual blocks
RESNET20 = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
RESNET32 = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(5)]
# one stage only ("features"): matched by relative depth over the whole list
PLAIN9 = [f"features.{k}" for k in range(9)]
PLAIN15 = [f"features.{k}" for k in range(15)]


def depth_frame(
    layers_a: list[str],
    layers_b: list[str],
    measures: tuple[str, ...] = ("cka", "cka_debiased", "svcca", "cca"),
    names: tuple[str, str] = ("resnet20", "resnet32"),
) -> pd.DataFrame:
    """A tidy frame whose similarity falls off with the gap in relative depth, with CCA
    spectra for every pair and SVCCA kept dimensions per layer."""
    na, nb = len(layers_a), len(layers_b)
    rows = []
    spectra: dict[str, dict[str, list[float]]] = {}
    for i, a in enumerate(layers_a):
        for j, b in enumerate(layers_b):
            gap = i / max(na - 1, 1) - j / max(nb - 1, 1)
            sim = math.exp(-(gap**2) / 0.05)
            for m in measures:
                value = {"cka_debiased": 2 * sim - 1, "svcca": 0.9 * sim, "cca": 0.8 * sim}
                rows.append(
                    {
                        "model_a": names[0],
                        "model_b": names[1],
                        "layer_a": a,
                        "layer_b": b,
                        "measure": m,
                        "value": value.get(m, sim),
                        "kept_dims_x": 10 + i if m == "svcca" else None,
                        "kept_dims_y": 20 + j if m == "svcca" else None,
                    }
                )
                if m in ("svcca", "cca"):
                    rho = np.linspace(1.0, 0.2 * sim, 6 + (i % 3))
                    spectra.setdefault(m, {})[f"{a}|{b}"] = rho.tolist()
    df = pd.DataFrame(rows)
    df["kept_dims_x"] = df["kept_dims_x"].astype("Int64")
    df["kept_dims_y"] = df["kept_dims_y"].astype("Int64")
    df.attrs["spectra"] = spectra
    return df


@pytest.fixture(scope="module")
def resnets() -> pd.DataFrame:
    return depth_frame(RESNET20, RESNET32)


def extent(artist, renderer):
    return artist.get_window_extent(renderer)


def overlap_area(b1, b2) -> float:
    w = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
    h = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
    return max(w, 0.0) * max(h, 0.0)


def drawn(fig: Figure):
    fig.canvas.draw()  # constrained layout runs at draw time
    return fig.canvas.get_renderer()


# --------------------------------------------------------------------------- spectra


@pytest.mark.parametrize(
    ("layers_a", "layers_b"),
    [(RESNET20, RESNET32), (RESNET20, RESNET20), (PLAIN9, PLAIN15), (["x"], ["y"])],
)
def test_spectrum_title_and_legend_do_not_overlap_and_axes_dominate(layers_a, layers_b):
    fig = plot.spectrum(depth_frame(layers_a, layers_b), "cca")
    renderer = drawn(fig)
    title = fig._suptitle
    legend = fig.legends[0]
    ax = fig.axes[0]
    t_box, l_box = extent(title, renderer), extent(legend, renderer)
    assert title.get_text() == "Mean CCA spectra: resnet20 vs resnet32"
    assert overlap_area(t_box, l_box) == 0.0
    # neither overlaps the axes (tick labels and axis labels included)
    a_box = ax.get_tightbbox(renderer)
    assert overlap_area(t_box, a_box) == 0.0 and overlap_area(l_box, a_box) == 0.0
    # everything inside the figure
    f_box = fig.bbox
    for box in (t_box, l_box, a_box):
        assert box.x0 >= f_box.x0 - 1 and box.x1 <= f_box.x1 + 1
        assert box.y0 >= f_box.y0 - 1 and box.y1 <= f_box.y1 + 1
    # the plot area keeps a good share of the figure (it was about a quarter before)
    p_box = ax.get_window_extent(renderer)
    share = (p_box.width * p_box.height) / (f_box.width * f_box.height)
    assert share > 0.45, share  # 0.41 before: legend and title on the right
    assert p_box.width / f_box.width > 0.75


def test_spectrum_says_how_many_pairs_are_shown(resnets):
    fig = plot.spectrum(resnets, "cca")  # 9 depth-matched pairs, all drawn
    legend_title = fig.legends[0].get_title().get_text()
    assert "all 9 depth-matched pairs" in legend_title
    assert len(fig.axes[0].lines) == 9
    fig = plot.spectrum(resnets, "cca", max_pairs=4)
    legend_title = fig.legends[0].get_title().get_text()
    assert "showing 4 of 9 depth-matched pairs, evenly spaced in depth" in legend_title
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    # evenly spaced over the 9 layers of A: 0, 3, 5, 8 (rounded linspace), in depth order
    assert [lab.split(" ↔ ")[0] for lab in labels] == [
        "layer1.0",
        "layer2.0",
        "layer2.2",
        "layer3.2",
    ]
    # the legend names the pair as A ↔ B even when the two names coincide
    assert labels[0].startswith("layer1.0 ↔ layer1.0 (")
    fig = plot.spectrum(resnets, "cca", pairs=[("layer1.0", "layer1.4")])
    assert "1 chosen pair" in fig.legends[0].get_title().get_text()


def test_spectrum_default_pairs_follow_stage_depth(resnets):
    fig = plot.spectrum(resnets, "svcca")
    spectra = resnets.attrs["spectra"]["svcca"]
    ref = reference_pairs(RESNET20, RESNET32)
    expected = [f"{a}|{ref.match[a]}" for a in RESNET20]
    for line, key in zip(fig.axes[0].lines, expected, strict=True):
        np.testing.assert_allclose(line.get_ydata(), sorted(spectra[key], reverse=True))


def test_spectrum_into_axes_keeps_legend_inside(resnets):
    fig = Figure()
    ax = fig.add_subplot()
    plot.spectrum(resnets, "cca", ax=ax, max_pairs=3)
    assert "showing 3 of 9" in ax.get_legend().get_title().get_text()


# --------------------------------------------------------------------------- heatmaps


def test_cka_family_shares_one_colour_scale_from_the_registry(resnets):
    reg = _registry.available()
    # the union of the registry's ranges of the CKA measures in the frame
    lo = min(reg["cka"].value_range[0], reg["cka_debiased"].value_range[0])
    hi = max(reg["cka"].value_range[1], reg["cka_debiased"].value_range[1])
    assert (lo, hi) == (-1.0, 1.0)  # linear CKA on [0, 1], debiased on [-1, 1]
    for m in ("cka", "cka_debiased"):
        fig = plot.heatmap(resnets, m)
        assert fig.axes[0].images[0].get_clim() == (lo, hi), m
    label = plot.heatmap(resnets, "cka").axes[1].get_ylabel()
    assert label == "Linear CKA (higher = more similar)\nscale shared with Debiased CKA"
    # the CCA family is a different family: its own shared [0, 1]
    assert plot.heatmap(resnets, "svcca").axes[0].images[0].get_clim() == (0.0, 1.0)
    assert "shared with Mean CCA" in plot.heatmap(resnets, "svcca").axes[1].get_ylabel()
    # opting out, or explicit limits, give the measure's own scale
    own = plot.heatmap(resnets, "cka", share_scale=False)
    assert own.axes[0].images[0].get_clim() == (0.0, 1.0)
    assert "shared" not in own.axes[1].get_ylabel()
    explicit = plot.heatmap(resnets, "cka", vmin=0.2, vmax=0.9)
    assert explicit.axes[0].images[0].get_clim() == (0.2, 0.9)


def test_only_one_cka_measure_keeps_its_range():
    frame = depth_frame(RESNET20, RESNET32, measures=("cka", "cca"))
    fig = plot.heatmap(frame, "cka")
    assert fig.axes[0].images[0].get_clim() == (0.0, 1.0)
    assert "shared" not in fig.axes[1].get_ylabel()


def test_family_comes_from_the_registry_not_from_names(monkeypatch):
    # a new measure registered in the CKA module, on [-3, 2], joins the CKA family scale
    fake = dataclasses.replace(
        _registry.get("cka"), name="cka_new", label="New CKA", value_range=(-3.0, 2.0)
    )
    monkeypatch.setitem(_registry._REGISTRY, "cka_new", fake)
    frame = depth_frame(RESNET20, RESNET32, measures=("cka", "cka_new"))
    _, _, mat = measure_matrix(frame, "cka")
    scale = color_scale(frame, "cka", mat)
    assert (scale.vmin, scale.vmax) == (-3.0, 2.0)
    assert scale.family == "CKA" and scale.shared_with == ("cka_new",)
    assert scale.note == "colour scale [−3, 2] shared with New CKA (CKA family)"
    # a lower-is-better measure of the same module is not on the same scale
    dist = dataclasses.replace(fake, name="cka_dist", higher_is_better=False)
    monkeypatch.setitem(_registry._REGISTRY, "cka_dist", dist)
    frame = depth_frame(RESNET20, RESNET32, measures=("cka", "cka_dist"))
    assert color_scale(frame, "cka", mat).shared_with == ()


def test_report_caption_says_the_scale_is_shared(resnets):
    page = render_html(resnets[resnets.measure.isin(["cka", "cka_debiased"])])
    assert (
        "Colour scale [−1, 1] shared with Debiased CKA (CKA family), so equal values have "
        "equal colours." in page
    )


# --------------------------------------------------------------------------- kept dims


def test_kept_dims_in_depth_order_not_alphabetical():
    # depth order differs from the alphabetical one (block10 < block2 < head < stem)
    depth = ["stem", "block2", "block10", "head"]
    frame = depth_frame(depth, depth, measures=("svcca",))
    ax = plot.kept_dims(frame).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == depth
    assert [p.get_height() for p in ax.patches] == [10, 11, 12, 13, 20, 21, 22, 23]
    # from attrs only, keys in scrambled order: still depth order of the frame
    no_cols = frame.drop(columns=["kept_dims_x", "kept_dims_y"])
    no_cols.attrs["kept_dims"] = {
        f"{a}|{a}": [10 + depth.index(a), 20 + depth.index(a)] for a in sorted(depth)
    }
    ax = plot.kept_dims(no_cols).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == depth
    assert [p.get_height() for p in ax.patches] == [10, 11, 12, 13, 20, 21, 22, 23]


def test_kept_dims_of_different_networks_one_panel_each(resnets):
    fig = plot.kept_dims(resnets)
    top, bottom = fig.axes
    assert [t.get_text() for t in top.get_xticklabels()] == RESNET20
    assert [t.get_text() for t in bottom.get_xticklabels()] == RESNET32
    assert [p.get_height() for p in top.patches] == [10 + i for i in range(9)]
    assert [p.get_height() for p in bottom.patches] == [20 + j for j in range(15)]
    assert top.get_shared_y_axes().joined(top, bottom)
    # into one axes: the layers of A, then those of B
    fig = Figure()
    ax = fig.add_subplot()
    plot.kept_dims(resnets, ax=ax)
    assert [t.get_text() for t in ax.get_xticklabels()] == [*RESNET20, *RESNET32]


# --------------------------------------------------------------------------- item 11


def test_reference_pairs_by_relative_depth_9_vs_15():
    ref = reference_pairs(PLAIN9, PLAIN15)
    assert ref.kind == "depth" and ref.label == "depth-matched"
    # layer i of A at depth i/8 -> layer j of B with j/14 closest (ties to the shallower):
    # i * 14/8 = 0, 1.75, 3.5, 5.25, 7, 8.75, 10.5, 12.25, 14
    expected = [0, 2, 3, 5, 7, 9, 10, 12, 14]
    assert [ref.match[a] for a in PLAIN9] == [PLAIN15[j] for j in expected]
    # not the same-named pairs: features.8 is the last layer of A, features.14 that of B
    assert ref.match["features.8"] == "features.14"
    # the other way round: 15 layers of A onto 9 of B
    back = reference_pairs(PLAIN15, PLAIN9)
    # k * 8/14 = 0, 0.57, 1.14, 1.71 -> 0, 1, 1, 2
    assert [back.match[b] for b in PLAIN15[:4]] == [PLAIN9[0], PLAIN9[1], PLAIN9[1], PLAIN9[2]]


def test_reference_pairs_by_stage_for_resnets():
    ref = reference_pairs(["conv1", *RESNET20, "fc"], ["conv1", *RESNET32, "fc"])
    assert ref.kind == "stage"
    # 3 blocks at relative depth 0, 1/2, 1 within a stage -> blocks 0, 2, 4 of 5
    for s in (1, 2, 3):
        assert [ref.match[f"layer{s}.{b}"] for b in range(3)] == [
            f"layer{s}.0",
            f"layer{s}.2",
            f"layer{s}.4",
        ]
    assert ref.match["conv1"] == "conv1" and ref.match["fc"] == "fc"
    assert "within the same stage" in ref.explain("resnet20", "resnet32")


def test_reference_pairs_same_names_and_options():
    same = reference_pairs(RESNET20, list(reversed(RESNET20)))
    assert same.kind == "name" and same.label == "same-named"
    assert all(same.match[a] == a for a in RESNET20)
    # different stages (layer4 only in B): relative depth over the whole list
    assert reference_pairs(RESNET20, [*RESNET20, "layer4.0"]).kind == "depth"
    assert reference_pairs(RESNET20, RESNET32, how="depth").kind == "depth"
    only_names = reference_pairs(RESNET20, RESNET32, how="name")
    assert only_names.match == {a: a for a in RESNET20}  # all 9 names exist in B
    with pytest.raises(ValueError, match=r"reference='stage' needs both layer lists"):
        reference_pairs(PLAIN9, RESNET32, how="stage")
    with pytest.raises(ValueError, match=r"reference must be 'auto', 'name', 'stage'"):
        reference_pairs(PLAIN9, PLAIN15, how="diagonal")
    assert reference_pairs([], PLAIN15).kind == "none"


def test_best_match_reference_between_9_and_15_layers():
    frame = depth_frame(PLAIN9, PLAIN15, names=("vgg-a", "vgg-b"))
    rows, cols, mat = measure_matrix(frame, "cka")
    expected_j = [0, 2, 3, 5, 7, 9, 10, 12, 14]
    _, names, vals, _ = reference_matches(frame, "cka")
    assert names == [PLAIN15[j] for j in expected_j]
    np.testing.assert_allclose(vals, [mat[i, j] for i, j in enumerate(expected_j)])
    _, best, _, same = best_matches(frame, "cka")
    np.testing.assert_allclose(same, vals)
    # the values fall off with the depth gap, so the best match is the depth-matched layer
    assert best == names
    ax = plot.layer_profile(frame, "cka").axes[0]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), vals)
    assert ax.get_legend().get_texts()[1].get_text() == "depth-matched layer of vgg-b"
    # the same-named pairs would give a different, meaningless "diagonal"
    same_named = [mat[i, cols.index(a)] for i, a in enumerate(rows)]
    assert not np.allclose(same_named, vals)


def test_report_summary_uses_depth_matched_pairs(resnets):
    page = render_html(resnets[resnets.measure == "cka"])
    assert "Mean,<br>depth-matched pairs" in page and "same-named pairs" not in page
    assert "Best match<br>= depth-matched" in page
    vals = reference_matches(resnets, "cka")[2]
    assert f"{np.mean(vals):.4f}" in page
    assert "matched with the layer of resnet32 at the closest relative depth" in page


# --------------------------------------------------------------------------- figure files


def test_write_report_writes_vector_figures(tmp_path, resnets):
    frame = resnets[resnets.measure.isin(["cka", "svcca"])].reset_index(drop=True)
    frame.attrs = {"spectra": {"svcca": resnets.attrs["spectra"]["svcca"]}}
    files = write_report(frame, tmp_path / "rep", formats=("png", "pdf", "svg"))
    stems = ["heatmap_cka", "profile_cka", "heatmap_svcca", "profile_svcca"]
    stems += ["spectrum_svcca", "kept_dims"]
    assert set(files.figures) == {"png", "pdf", "svg"}
    for fmt, paths in files.figures.items():
        assert [p.name for p in paths] == [f"{s}.{fmt}" for s in stems]
        assert all(p.parent == tmp_path / "rep" / "figures" for p in paths)
    for p in files.figures["pdf"]:
        data = p.read_bytes()
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    for p in files.figures["svg"]:
        root = ET.parse(p).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.findall(".//{http://www.w3.org/2000/svg}path")  # vector content
    for p in files.figures["png"]:
        assert p.read_bytes().startswith(PNG_SIGNATURE)
    # one file per figure embedded in the page
    page = files.html.read_text(encoding="utf-8")
    assert page.count("<img ") == len(stems)


def test_write_report_default_writes_no_figure_files(tmp_path):
    frame = depth_frame(RESNET20, RESNET32, measures=("cka",))
    files = write_report(frame, tmp_path)
    assert files.figures == {}
    assert not (tmp_path / "figures").exists()
    files = write_report(frame, tmp_path / "one", formats="pdf")
    assert [p.name for p in files.figures["pdf"]] == ["heatmap_cka.pdf", "profile_cka.pdf"]


def test_write_report_rejects_unknown_formats(tmp_path):
    frame = depth_frame(["a"], ["b"], measures=("cka",))
    with pytest.raises(ValueError, match=r"formats must be a subset of .*unknown: 'eps'"):
        write_report(frame, tmp_path, formats=("pdf", "eps"))


def test_figure_file_names_are_safe(tmp_path):
    frame = depth_frame(["a"], ["b"], measures=("cka",))
    frame["measure"] = "../../evil name"
    files = write_report(frame, tmp_path, formats=("svg",))
    (path,) = [p for p in files.figures["svg"] if p.name.startswith("heatmap")]
    assert path.parent == tmp_path / "figures" and path.name == "heatmap_.._.._evil_name.svg"
