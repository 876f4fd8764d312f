"""nncompare.report: a self-contained, escaped HTML report plus machine-readable CSV and JSON.

Layer and model names are hostile on purpose (markup, quotes, ampersands); the report must
show them as text, never as markup.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pd = pytest.importorskip("pandas")

import matplotlib.image as mpimg  # noqa: E402

from nncompare.report import (  # noqa: E402
    ReportFiles,
    example_frame,
    load_results,
    render_html,
    results_json,
    write_report,
)
from nncompare.report._files import atomic_write  # noqa: E402

XSS = "<script>alert(1)</script>"
QUOTES = "fc&\"'2"
LAYERS = (XSS, "conv2", "conv3", "fc1", QUOTES, "logits")
MODELS = ("<b>net</b> A", "net 'B' & co")
TITLE = 'Seeds 0 & 1: <i>"paper"</i> run'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMG_RE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
SRC_RE = re.compile(r'\bsrc="([^"]*)"')
ALT_RE = re.compile(r'\balt="([^"]*)"')


@pytest.fixture(scope="module")
def frame():
    return example_frame(layers_a=LAYERS, names=MODELS)


@pytest.fixture(scope="module")
def report(frame, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "nested" / "dir"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a figure that fails to draw warns
        files = write_report(frame, out, title=TITLE)
    return files


@pytest.fixture(scope="module")
def page(report):
    return report.html.read_text(encoding="utf-8")


def subset(frame, *measures):
    """The rows of some measures, with the attrs (a smaller, faster report)."""
    out = frame[frame["measure"].isin(measures)].reset_index(drop=True)
    out.attrs = dict(frame.attrs)
    return out


def reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def strict_loads(text):
    return json.loads(text, parse_constant=reject_constant)


# --------------------------------------------------------------------------- files


def test_files_exist(report):
    assert isinstance(report, ReportFiles)
    assert report.directory.is_dir()
    assert report.html == report.directory / "report.html"
    assert report.csv == report.directory / "results.csv"
    assert report.json == report.directory / "results.json"
    for p in (report.html, report.csv, report.json):
        assert p.is_file() and p.stat().st_size > 0
    assert sorted(os.listdir(report.directory)) == ["report.html", "results.csv", "results.json"]


def test_html_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    lowered = page.lower()
    for pattern in ('src="http', "src='http", 'href="http', "href='http", "url(http", "@import"):
        assert pattern not in lowered, pattern
    assert "//cdn" not in lowered
    assert "<script" not in lowered  # no script at all, and no injected one
    assert '<link rel="stylesheet"' not in lowered
    assert "<style>" in page
    # every resource reference is a data: URI or a relative link to the sibling files
    for ref in re.findall(r'\b(?:src|href)="([^"]*)"', page):
        assert ref.startswith("data:") or ref in ("results.csv", "results.json"), ref


def test_every_image_is_a_valid_embedded_png(page):
    imgs = IMG_RE.findall(page)
    # 4 measures × (heatmap + profile) + 3 spectra + kept dims
    assert len(imgs) == 12
    for tag in imgs:
        src = SRC_RE.search(tag).group(1)
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        arr = mpimg.imread(io.BytesIO(data), format="png")
        assert arr.ndim == 3 and arr.shape[0] > 50 and arr.shape[1] > 50
        assert arr[..., :3].std() > 0.01  # not a blank image
        alt = ALT_RE.search(tag).group(1)
        assert len(alt) > 10
        assert re.search(r'\bwidth="\d+"', tag) and re.search(r'\bheight="\d+"', tag)


def test_user_strings_are_escaped(page):
    assert XSS not in page
    assert "alert(1)" in page  # the name is shown ...
    assert html.escape(XSS) in page  # ... as text
    assert QUOTES not in page
    assert html.escape(QUOTES) in page
    for name in MODELS:
        assert name not in page
        assert html.escape(name) in page
    assert f"<title>{html.escape(TITLE)}</title>" in page
    assert TITLE not in page
    assert "<b>net</b>" not in page and "<i>" not in page


def test_report_sections(page, frame):
    for heading in (
        "Summary",
        "Layer × layer similarity",
        "Canonical correlation spectra",
        "SVCCA kept dimensions",
        "All results (144 rows)",
        "Provenance",
        "Measures and conventions",
        "Reshape policies",
    ):
        assert heading in page, heading
    # header: models, n, date, version
    prov = frame.attrs["provenance"]
    assert "n = <b>120</b>" in page
    assert html.escape(prov["timestamp"]) in page
    # summary: the mean over same-named pairs of CKA
    cka = frame[(frame.measure == "cka") & (frame.layer_a == frame.layer_b)]["value"]
    assert f"{cka.mean():.4f}" in page
    # conventions, references and policies
    assert "biased HSIC" in page
    assert "Kornblith" in page
    assert "spatial mean per channel" in page
    # provenance block
    for key in ("numpy", "python", "platform", "seeds", "command"):
        assert f'<th scope="row">{key}</th>' in page
    # undefined values are explained
    assert "trivially perfect" in page
    assert page.count('class="num nan">NaN<') == int(frame["value"].isna().sum())


def test_results_table_keeps_full_names(tmp_path):
    long = "features.denseblock4.denselayer16.conv2"
    frame = example_frame(layers_a=(long, "b", "c", "d"), measures=("cka",), n_samples=60)
    page = render_html(frame)
    assert f'<td class="name long">{long}</td>' in page
    assert "Layer names shortened in the figures" in page


# --------------------------------------------------------------------------- CSV and JSON


def test_csv_round_trip(report, frame):
    back = pd.read_csv(report.csv, keep_default_na=False, na_values=[""])
    assert list(back.columns) == list(frame.columns)
    assert len(back) == len(frame)
    for col in ("model_a", "model_b", "layer_a", "layer_b", "measure", "policy"):
        assert back[col].tolist() == frame[col].astype(str).tolist(), col
    np.testing.assert_array_equal(back["value"].to_numpy(), frame["value"].to_numpy())
    for col in ("n_samples", "kept_dims_x", "kept_dims_y", "rank_x", "rank_y"):
        np.testing.assert_array_equal(
            back[col].to_numpy(dtype=float, na_value=np.nan),
            frame[col].to_numpy(dtype=float, na_value=np.nan),
        )
    errors_back = back["error"].fillna("").tolist()
    errors = [e if isinstance(e, str) else "" for e in frame["error"]]
    assert errors_back == errors


def test_json_is_strict_and_complete(report, frame):
    text = report.json.read_text(encoding="utf-8")
    doc = strict_loads(text)
    assert "NaN" not in text and "Infinity" not in text
    assert doc["format"] == "nncompare.results" and doc["format_version"] == 1
    assert doc["columns"] == list(frame.columns)
    assert len(doc["records"]) == len(frame)
    values = [r["value"] for r in doc["records"]]
    for v, ref in zip(values, frame["value"], strict=True):
        assert (v is None and math.isnan(ref)) or v == ref
    assert doc["records"][0]["kept_dims_x"] is None  # Int64 <NA> -> null
    attrs = doc["attrs"]
    for key in ("provenance", "measures", "spectra", "kept_dims", "title"):
        assert key in attrs
    assert attrs["spectra"]["cca"] == frame.attrs["spectra"]["cca"]
    assert attrs["kept_dims"] == frame.attrs["kept_dims"]
    assert attrs["measures"]["cka"]["higher_is_better"] is True
    assert attrs["provenance"]["n_samples"] == 120


def test_load_results_round_trip(report, frame):
    back = load_results(report.directory)
    assert list(back.columns) == list(frame.columns)
    np.testing.assert_array_equal(back["value"].to_numpy(), frame["value"].to_numpy())
    assert str(back["kept_dims_x"].dtype) == "Int64"
    assert back["layer_a"].tolist() == frame["layer_a"].tolist()
    assert back.attrs["spectra"] == frame.attrs["spectra"]
    assert back.attrs["provenance"]["seeds"] == frame.attrs["provenance"]["seeds"]
    # and the reloaded frame renders
    page = render_html(subset(back, "cka"))
    assert XSS not in page and html.escape(XSS) in page


def test_json_nan_and_inf_become_null():
    df = pd.DataFrame(
        {
            "layer_a": ["a", "a"],
            "layer_b": ["b", "c"],
            "measure": ["bures_wasserstein", "bures_wasserstein"],
            "value": [math.inf, math.nan],
        }
    )
    df.attrs["spectra"] = {"cca": {"a|b": [1.0, float("nan")]}}
    df.attrs["provenance"] = {"seeds": np.array([1, 2]), "x": np.float32(np.nan), "t": (1, 2)}
    doc = strict_loads(results_json(df))
    assert [r["value"] for r in doc["records"]] == [None, None]
    assert doc["attrs"]["spectra"]["cca"]["a|b"] == [1.0, None]
    assert doc["attrs"]["provenance"] == {"seeds": [1, 2], "x": None, "t": [1, 2]}


# --------------------------------------------------------------------------- robustness


def test_minimal_frame_without_attrs(tmp_path):
    df = pd.DataFrame(
        {
            "layer_a": ["x", "x", "y", "y"],
            "layer_b": ["x", "y", "x", "y"],
            "measure": ["cka"] * 4,
            "value": [1.0, 0.4, float("nan"), 0.9],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        files = write_report(df, tmp_path)
    page = files.html.read_text(encoding="utf-8")
    assert "<title>A vs B</title>" in page
    assert "No provenance recorded" in page
    assert "Figure not available" not in page
    assert "Canonical correlation spectra" not in page  # nothing to show
    assert "SVCCA kept dimensions" not in page
    assert len(IMG_RE.findall(page)) == 2  # heatmap + profile
    assert strict_loads(files.json.read_text())["records"][2]["value"] is None


def test_title_defaults(frame):
    page = render_html(subset(frame, "cka"))
    assert f"<title>{html.escape(frame.attrs['title'])}</title>" in page
    assert "Canonical correlation spectra" not in page  # only for measures in the frame
    assert "SVCCA kept dimensions" not in page


def test_empty_frame_and_bad_input(tmp_path):
    empty = pd.DataFrame(columns=["layer_a", "layer_b", "measure", "value"])
    files = write_report(empty, tmp_path / "empty")
    assert "holds no rows" in files.html.read_text()
    assert strict_loads(files.json.read_text())["records"] == []
    with pytest.raises(ValueError, match="lacks column"):
        write_report(pd.DataFrame({"layer": ["a"], "value": [1.0]}), tmp_path / "bad")
    with pytest.raises(ValueError, match="image_format"):
        render_html(empty.assign(), image_format="gif")


def test_svg_mode_is_inline_and_escaped(frame):
    page = render_html(subset(frame, "cka", "cca"), image_format="svg", dpi=72)
    assert "<img" not in page
    assert page.count("<svg") == 5  # 2 heatmaps, 2 profiles, 1 spectrum
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert XSS not in page
    assert 'src="http' not in page and 'href="http' not in page


def test_writes_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / "results.csv"
    atomic_write(target, "old\n")
    import nncompare.report._files as files_mod

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, "new\n")
    assert target.read_text() == "old\n"  # the old file is intact ...
    assert os.listdir(tmp_path) == ["results.csv"]  # ... and no temp file is left


def test_rewrite_replaces_files(tmp_path, frame):
    small = subset(frame, "cka")
    first = write_report(small, tmp_path)
    second = write_report(small, tmp_path, title="second")
    assert first == second
    assert "<title>second</title>" in second.html.read_text()
    assert sorted(os.listdir(tmp_path)) == ["report.html", "results.csv", "results.json"]
    assert oct(second.html.stat().st_mode & 0o777) == "0o644"


def test_compare_models_end_to_end(tmp_path):
    torch = pytest.importorskip("torch")
    try:
        from nncompare.analyses.compare import compare_models
    except ImportError as exc:  # pragma: no cover - the lead's module not there yet
        pytest.skip(f"compare_models unavailable: {exc}")
    torch.manual_seed(0)

    def net():
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))

    x = torch.randn(200, 8)
    df = compare_models(
        net(),
        net(),
        x,
        layers_a=["1", "2"],  # ReLU and output: full-rank activations
        layers_b=["1", "2"],
        measures=["cka", "svcca", "cca"],
        names=("m1", "m2"),
    )
    files = write_report(df, tmp_path)
    page = files.html.read_text(encoding="utf-8")
    assert "<title>m1 vs m2</title>" in page
    assert "Figure not available" not in page
    assert len(IMG_RE.findall(page)) == 9  # 3 heatmaps, 3 profiles, 2 spectra, kept dims
    doc = strict_loads(files.json.read_text())
    assert len(doc["records"]) == len(df)
