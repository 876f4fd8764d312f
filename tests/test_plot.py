"""nncompare.plot: every figure from the tidy comparison frame, robust to NaN and missing parts.

The frames come from ``nncompare.report.example_frame``: two synthetic 6-layer "networks"
compared with ``nc.pairwise`` (cka, svcca, cca, pwcca), shaped like ``nc.compare_models``'
output; its ``fc1`` layer is wider than the sample count, so CCA/PWCCA are NaN for its pairs.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pd = pytest.importorskip("pandas")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from nncompare import plot  # noqa: E402
from nncompare.plot._data import best_matches, measure_matrix  # noqa: E402
from nncompare.plot._export import png_size  # noqa: E402
from nncompare.report import example_frame  # noqa: E402

LAYERS = ["conv1", "conv2", "conv3", "fc1", "fc2", "logits"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def df():
    return example_frame()


def minimal_frame(names_a, names_b, measure="cka", values=None, **columns):
    """Only the required columns (no attrs, no optional columns)."""
    rows = []
    k = 0
    for a in names_a:
        for b in names_b:
            v = values[k] if values is not None else 0.5 + 0.4 * math.cos(k)
            rows.append({"layer_a": a, "layer_b": b, "measure": measure, "value": v, **columns})
            k += 1
    return pd.DataFrame(rows)


def finite_texts(ax):
    return [t for t in ax.texts if t.get_text().strip()]


# --------------------------------------------------------------------------- heatmap


def test_heatmap_grid_colorbar_and_annotations(df):
    fig = plot.heatmap(df, "cka")
    assert isinstance(fig, Figure)
    ax, cax = fig.axes  # main axes + colorbar
    assert ax.images[0].get_array().shape == (6, 6)
    _, _, mat = measure_matrix(df, "cka")
    assert np.isfinite(mat).all()
    texts = finite_texts(ax)
    assert len(texts) == 36  # a 6 × 6 grid is annotated
    assert {t.get_text() for t in texts} == {f"{v:.2f}" for v in mat.ravel()}
    assert [t.get_text() for t in ax.get_xticklabels()] == LAYERS
    assert [t.get_text() for t in ax.get_yticklabels()] == LAYERS
    assert all(t.get_rotation() == 45 for t in ax.get_xticklabels())
    assert "higher = more similar" in cax.get_ylabel()
    assert ax.get_title(loc="left") == "Linear CKA: net-seed0 vs net-seed1"
    assert ax.images[0].get_clim() == (0.0, 1.0)  # the measure's range
    assert ax.images[0].get_cmap().name.startswith("viridis")
    assert not fig.legends  # no NaN, no NaN legend


def test_heatmap_nan_cells_are_hatched_and_explained(df):
    fig = plot.heatmap(df, "cca")
    ax = fig.axes[0]
    _, _, mat = measure_matrix(df, "cca")
    n_nan = int(np.isnan(mat).sum())
    assert n_nan == 11  # row and column of fc1
    nan_patches = [p for p in ax.patches if p.get_gid() == "nan-cell"]
    assert len(nan_patches) == n_nan
    assert all(p.get_hatch() for p in nan_patches)
    assert len(finite_texts(ax)) == 36 - n_nan  # NaN cells are not annotated
    legend_texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert any("undefined (NaN)" in t and f"{n_nan} of 36" in t for t in legend_texts)
    png = plot.figure_to_png_bytes(fig)
    assert png.startswith(PNG_SIGNATURE)


def test_heatmap_all_nan():
    frame = minimal_frame(["a", "b"], ["a", "b"], values=[math.nan] * 4)
    fig = plot.heatmap(frame, "cka")
    ax = fig.axes[0]
    assert len([p for p in ax.patches if p.get_gid() == "nan-cell"]) == 4
    assert not finite_texts(ax)
    plot.figure_to_png_bytes(fig)


def test_heatmap_large_grid_is_not_annotated_and_labels_are_thinned():
    names = [f"block{i}.conv" for i in range(50)]
    frame = minimal_frame(names, names)
    fig = plot.heatmap(frame, "cka")
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (50, 50)
    assert not finite_texts(ax)
    assert len(ax.get_xticklabels()) <= 40
    assert fig.get_size_inches()[0] <= 13.0


def test_heatmap_annotate_override():
    frame = minimal_frame(["a", "b"], ["c"])
    assert not finite_texts(plot.heatmap(frame, "cka", annotate=False).axes[0])
    names = [f"l{i}" for i in range(14)]
    ax = plot.heatmap(minimal_frame(names, names), "cka", annotate=True).axes[0]
    assert len(finite_texts(ax)) == 14 * 14


def test_heatmap_long_names_are_shortened_in_the_middle():
    long = "features.denseblock4.denselayer16.conv2"
    frame = minimal_frame([long, "fc"], [long, "fc"])
    ax = plot.heatmap(frame, "cka").axes[0]
    label = ax.get_xticklabels()[0].get_text()
    assert "…" in label and len(label) <= 20
    assert label.startswith("features") and label.endswith("conv2")


def test_heatmap_unknown_measure_uses_data_range_and_custom_cmap():
    frame = minimal_frame(["a", "b"], ["a", "b"], measure="my_distance", values=[2, 3, 5, 7])
    fig = plot.heatmap(frame, "my_distance", cmap="cividis")
    im = fig.axes[0].images[0]
    assert im.get_clim() == (2.0, 7.0)
    assert im.get_cmap().name.startswith("cividis")
    assert plot.heatmap(frame, "my_distance", vmin=0, vmax=10).axes[0].images[0].get_clim() == (
        0.0,
        10.0,
    )


def test_heatmap_lower_is_better_label():
    frame = minimal_frame(["a"], ["b"], measure="d")
    frame.attrs["measures"] = {"d": {"higher_is_better": False}}
    cax = plot.heatmap(frame, "d").axes[1]
    assert "lower = more similar" in cax.get_ylabel()


def test_heatmap_text_with_dollars_and_markup_renders_literally():
    frame = minimal_frame(["$x$", "a_b^c"], ["<b>&'\"</b>"], model_a="$A$", model_b="B")
    fig = plot.heatmap(frame, "cka")
    assert fig.axes[0].get_yticklabels()[0].get_text() == r"\$x\$"  # no mathtext
    assert plot.figure_to_png_bytes(fig).startswith(PNG_SIGNATURE)


def test_heatmap_into_existing_axes(df):
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    out = plot.heatmap(df, "cka", ax=ax1)
    out2 = plot.heatmap(df, "cca", ax=ax2)  # NaN legend goes onto the axes
    assert out is fig and out2 is fig
    assert ax1.images and ax2.images
    assert ax2.get_legend() is not None


def test_heatmap_errors(df):
    with pytest.raises(ValueError, match="no rows for measure"):
        plot.heatmap(df, "rsa")
    with pytest.raises(ValueError, match="lacks column"):
        plot.heatmap(pd.DataFrame({"x": [1]}), "cka")
    with pytest.raises(TypeError, match="DataFrame"):
        plot.heatmap({"value": 1}, "cka")


# --------------------------------------------------------------------------- spectrum


def test_spectrum_defaults_to_same_named_pairs(df):
    fig = plot.spectrum(df, "cca")
    ax = fig.axes[0]
    spectra = df.attrs["spectra"]["cca"]
    expected = [f"{n}|{n}" for n in LAYERS if f"{n}|{n}" in spectra]
    assert len(expected) == 5  # fc1 has no CCA (undefined)
    assert len(ax.lines) == len(expected)
    for line, key in zip(ax.lines, expected, strict=True):
        y = line.get_ydata()
        np.testing.assert_allclose(y, sorted(spectra[key], reverse=True))
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(y) + 1))
        assert np.all(np.diff(y) <= 1e-12)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == len(expected) and labels[0].startswith("conv1 (")
    assert ax.get_ylim()[1] >= 1.0


def test_spectrum_from_mapping_best_match_per_layer():
    spectra = {
        "x|p": [0.9, 0.2],
        "x|q": [0.95, 0.8, 0.7],
        "y|p": [0.5, 0.4],
        "y|q": [0.3],
    }
    # the names differ: layer i of A is matched with layer i of B (2 vs 2 layers, by depth)
    fig = plot.spectrum(spectra)
    ax = fig.axes[0]
    assert [list(line.get_ydata()) for line in ax.lines] == [[0.9, 0.2], [0.3]]
    assert "all 2 depth-matched pairs" in fig.legends[0].get_title().get_text()
    # no reference pair (none same-named): the best-matching pair of each layer_a
    fig = plot.spectrum(spectra, reference="name")
    lines = fig.axes[0].lines
    assert [list(line.get_ydata()) for line in lines] == [[0.95, 0.8, 0.7], [0.5, 0.4]]
    assert "all 2 best-matching pairs" in fig.legends[0].get_title().get_text()
    fig2 = plot.spectrum({"cca": spectra, "svcca": {}}, "cca", pairs=[("y", "q"), "x|p"])
    assert [len(line.get_xdata()) for line in fig2.axes[0].lines] == [1, 2]


def test_spectrum_explicit_unknown_pair_raises(df):
    with pytest.raises(ValueError, match="no cca spectrum for pair"):
        plot.spectrum(df, "cca", pairs=["conv1|nope"])


def test_spectrum_many_pairs_are_subsampled():
    spectra = {f"l{i}|l{i}": list(np.linspace(1, 0, 10)) for i in range(30)}
    ax = plot.spectrum(spectra, max_pairs=6).axes[0]
    assert len(ax.lines) == 6


def test_spectrum_without_spectra_says_so():
    frame = minimal_frame(["a"], ["a"], measure="cca")
    ax = plot.spectrum(frame, "cca").axes[0]
    assert not ax.lines
    assert any("no cca spectra" in t.get_text() for t in ax.texts)


def test_spectrum_into_existing_axes(df):
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.spectrum(df, "svcca", ax=ax) is fig
    assert len(ax.lines) == 6 and ax.get_legend() is not None


# --------------------------------------------------------------------------- kept dims


def test_kept_dims_bars_per_layer_and_side(df):
    fig = plot.kept_dims(df)
    ax = fig.axes[0]
    assert len(ax.patches) == 12  # 6 layers × 2 models
    sv = df[df["measure"] == "svcca"]
    kx = sv.groupby("layer_a", sort=False)["kept_dims_x"].first()
    ky = sv.groupby("layer_b", sort=False)["kept_dims_y"].first()
    heights = [p.get_height() for p in ax.patches]
    assert heights == [*map(float, kx[LAYERS]), *map(float, ky[LAYERS])]
    assert [t.get_text() for t in ax.get_xticklabels()] == LAYERS
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["net-seed0", "net-seed1"]


def test_kept_dims_from_attrs_only(df):
    frame = df.drop(columns=["kept_dims_x", "kept_dims_y"])
    frame.attrs = dict(df.attrs)
    ax = plot.kept_dims(frame).axes[0]
    heights_attrs = [p.get_height() for p in ax.patches]
    heights_cols = [p.get_height() for p in plot.kept_dims(df).axes[0].patches]
    assert heights_attrs == heights_cols


def test_kept_dims_without_svcca_says_so():
    ax = plot.kept_dims(minimal_frame(["a"], ["b"])).axes[0]
    assert not ax.patches
    assert any("no SVCCA" in t.get_text() for t in ax.texts)


# --------------------------------------------------------------------------- layer profile


def test_layer_profile_best_and_same_named_lines(df):
    fig = plot.layer_profile(df, "cka")
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    _, _, mat = measure_matrix(df, "cka")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), mat.max(axis=1))
    np.testing.assert_allclose(ax.lines[1].get_ydata(), np.diag(mat))
    assert [t.get_text() for t in ax.get_xticklabels()] == LAYERS
    assert len(ax.texts) == 6  # best-match labels


def test_layer_profile_nan_rows_become_gaps(df):
    ax = plot.layer_profile(df, "cca").axes[0]
    best = ax.lines[0].get_ydata()
    assert np.isnan(best[LAYERS.index("fc1")])
    assert np.isfinite(np.delete(best, LAYERS.index("fc1"))).all()


def test_layer_profile_lower_is_better_and_no_same_names():
    frame = minimal_frame(["a", "b"], ["x", "y", "z"], measure="dist", values=[3, 1, 2, 5, 6, 4])
    frame.attrs["measures"] = {"dist": {"higher_is_better": False}}
    _, best, vals, ref = best_matches(frame, "dist")
    # no same names: a (depth 0) is matched with x (depth 0), b (depth 1) with z (depth 1)
    assert best == ["y", "z"] and list(vals) == [1, 4] and list(ref) == [3, 4]
    ax = plot.layer_profile(frame, "dist").axes[0]
    assert len(ax.lines) == 2
    assert list(ax.lines[0].get_ydata()) == [1, 4]
    assert list(ax.lines[1].get_ydata()) == [3, 4]
    assert ax.get_legend().get_texts()[1].get_text() == "depth-matched layer of B"
    ax = plot.layer_profile(frame, "dist", reference="name").axes[0]
    assert len(ax.lines) == 1  # no same-named layers: no reference line


# --------------------------------------------------------------------------- general


def test_single_layer_everywhere():
    frame = minimal_frame(["only"], ["only"], measure="svcca", values=[0.8])
    frame["kept_dims_x"] = 3
    frame["kept_dims_y"] = 4
    frame.attrs["spectra"] = {"svcca": {"only|only": [0.99, 0.8, 0.61]}}
    figs = [
        plot.heatmap(frame, "svcca"),
        plot.spectrum(frame, "svcca"),
        plot.kept_dims(frame),
        plot.layer_profile(frame, "svcca"),
    ]
    assert figs[0].axes[0].images[0].get_array().shape == (1, 1)
    assert len(figs[1].axes[0].lines) == 1
    assert len(figs[2].axes[0].patches) == 2
    assert len(figs[3].axes[0].lines) == 2
    for fig in figs:
        assert plot.figure_to_png_bytes(fig).startswith(PNG_SIGNATURE)


def test_int64_columns_with_missing_values(df):
    assert str(df["kept_dims_x"].dtype) == "Int64" and df["kept_dims_x"].isna().any()
    plot.kept_dims(df)


def test_no_pyplot_figures_and_no_leak_warning(df):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    small = minimal_frame(["a"], ["b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(22):  # > figure.max_open_warning (20) if they were pyplot figures
            plot.heatmap(small, "cka")
        plot.spectrum(df, "cca")
        plot.kept_dims(df)
        plot.layer_profile(df, "pwcca")
    assert plt.get_fignums() == before


def test_style_context_is_restored():
    rc = matplotlib.rcParams
    before = (rc["font.size"], rc["savefig.dpi"])
    with plot.paper_style():
        assert rc["font.size"] == 9 and rc["savefig.dpi"] == 150
    assert (rc["font.size"], rc["savefig.dpi"]) == before


def test_export_helpers():
    fig = plot.heatmap(minimal_frame(["a", "b"], ["c"]), "cka")
    png = plot.figure_to_png_bytes(fig, dpi=100)
    w, h = png_size(png)
    png2 = plot.figure_to_png_bytes(fig, dpi=200)
    w2, _ = png_size(png2)
    assert png.startswith(PNG_SIGNATURE) and w2 > 1.5 * w and h > 100
    import matplotlib.image as mpimg

    assert mpimg.imread(io.BytesIO(png), format="png").shape[:2] == (h, w)
    svg = plot.figure_to_svg(fig)
    assert "<svg" in svg and svg.lstrip().startswith("<?xml")
    inline = plot.figure_to_svg(fig, inline=True)
    assert inline.lstrip().startswith("<svg") and "DOCTYPE" not in inline
    with pytest.raises(ValueError):
        png_size(b"GIF89a" + bytes(30))


def test_shorten():
    assert plot.shorten("fc") == "fc"
    s = plot.shorten("a" * 10 + "b" * 30 + "c" * 10, 20)
    assert len(s) == 20 and s.startswith("aaaa") and s.endswith("cccc") and "…" in s
    assert plot.shorten(12345, 3) == "1…5"
