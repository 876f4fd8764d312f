"""Writing the report folder: report.html, results.csv, results.json (each atomically)."""

from __future__ import annotations

import json
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nncompare._io import atomic_write
from nncompare.plot._data import comparison
from nncompare.report._json import dumps_strict, frame_to_json_dict, from_json_dict

__all__ = [
    "ReportFiles",
    "atomic_write",
    "load_results",
    "neutralise_formula",
    "results_csv",
    "results_json",
    "write_report",
]

HTML_NAME = "report.html"
CSV_NAME = "results.csv"
JSON_NAME = "results.json"


@dataclass(frozen=True)
class ReportFiles:
    """Paths of a written report."""

    html: Path
    csv: Path
    json: Path
    directory: Path
    #: figure files by format ({"pdf": [...], "svg": [...]}), empty unless ``formats`` given
    figures: dict[str, list[Path]] = field(default_factory=dict)


def results_json(df: Any, *, indent: int | None = 1) -> str:
    """A comparison (frame, :class:`nncompare.ComparisonResult` or
    :class:`nncompare.GridResult`) as strict JSON text (``{"format": "nncompare.results",
    ..., "columns", "records", "attrs"}``, ``attrs`` the metadata in the form of
    ``DataFrame.attrs``; NaN and ±inf are written as null)."""
    return dumps_strict(frame_to_json_dict(comparison(df)), indent=indent)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _is_plain_value(v: Any) -> bool:
    """Numbers, booleans and missing values: written by ``to_csv`` as they are."""
    if v is None or isinstance(v, numbers.Number | np.generic):
        return True
    try:
        import pandas as pd

        return v is pd.NA or v is pd.NaT
    except ImportError:  # pragma: no cover
        return False


def neutralise_formula(v: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, prefixed with ``'``.

    OWASP's rule for CSV injection: a text cell that starts with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return gets a leading single quote, which spreadsheets
    show as text instead of evaluating (``=HYPERLINK(...)`` becomes
    ``'=HYPERLINK(...)``). Numbers (negative ones included), booleans and missing
    values are returned unchanged; other objects are judged by their ``str()``.
    """
    if _is_plain_value(v):
        return v
    text = v if isinstance(v, str) else str(v)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else v


def results_csv(df: Any) -> str:
    """The tidy table as CSV text, safe to open in a spreadsheet.

    Text cells and column names that start with ``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return get a leading ``'`` (:func:`neutralise_formula`, OWASP's rule against
    CSV formula injection), so a layer named ``=HYPERLINK("http://…")`` is shown, not
    run. Numeric columns are written unchanged (``-0.25`` stays the number -0.25 and
    reads back as a float with :func:`pandas.read_csv`). Lines end in CRLF as RFC 4180
    asks, so that a carriage return or line feed inside a cell is always quoted (with a
    bare ``\\n`` terminator Python's csv writer leaves a lone ``\\r`` unquoted, which
    splits the row). ``results.json`` keeps every string exactly as it was.
    """
    out = comparison(df).table.copy(deep=False)  # cells are replaced below, not in df
    for col in out.columns:
        series = out[col]
        if series.dtype.kind in "biufcmM":  # numeric, boolean and datetime columns
            continue
        out[col] = series.astype(object).map(neutralise_formula)
    out.columns = [neutralise_formula(str(c)) for c in out.columns]
    return out.to_csv(index=False, lineterminator="\r\n")


def load_results(path: str | os.PathLike[str]) -> Any:
    """Read ``results.json`` (a file, or the report folder holding it) back into the frame
    of :func:`nncompare.compare_models`, its metadata in ``DataFrame.attrs``
    (:meth:`nncompare.ComparisonResult.from_frame` gives them typed); nulls become NaN in
    ``value``."""
    p = Path(path)
    if p.is_dir():
        p = p / JSON_NAME
    with open(p, encoding="utf-8") as fh:
        doc = json.load(fh)
    return from_json_dict(doc)


def write_report(
    df: Any,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    image_format: str = "png",
    dpi: int = 150,
    formats: tuple[str, ...] | list[str] | str = (),
    stitching: Any = None,
    alignment: Any = None,
    weights: Any = None,
    dynamics: Any = None,
    compression: Any = None,
) -> ReportFiles:
    """Write ``report.html``, ``results.csv`` and ``results.json`` into ``out_dir``.

    Parameters
    ----------
    df : pandas.DataFrame, nncompare.ComparisonResult or nncompare.GridResult
        The tidy frame of :func:`nncompare.compare_models` (at least ``layer_a``, ``layer_b``,
        ``measure`` and ``value``; every other column and metadata entry is optional), its
        typed view, or the grid of :func:`nncompare.pairwise`. It is read once
        (:meth:`nncompare.ComparisonResult.from_frame`).
    out_dir : path
        Created if needed; existing report files in it are replaced.
    title : str, optional
        Default: the comparison's title (``ComparisonResult.title``), else
        "<model A> vs <model B>".
    image_format : {"png", "svg"}
        Figures as base64 PNG data URIs or as inline SVG.
    dpi : int
        Resolution of the PNG figures.
    formats : sequence of {"png", "pdf", "svg"}
        Also write each figure of the report as a file in ``out_dir/figures/``
        (``heatmap_<measure>``, ``profile_<measure>``, ``spectrum_<measure>``,
        ``kept_dims``), e.g. ``formats=("png", "pdf", "svg")``: PDF and SVG are vector
        graphics for a paper. Default: none (figures only embedded in the HTML).
    stitching : list of StitchResult or DataFrame, optional
        Model-stitching results of the same two models (:mod:`nncompare.stitching`, e.g.
        the frame of :func:`nncompare.stitching.experiments.layer_sweep`): the report gains
        a stitching section, and ``stitching.csv`` / ``stitching.json`` (and
        ``matrices.npz`` for StitchResults) are written beside the results.
    alignment : pandas.DataFrame, optional
        Task-alignment curves of a model of the comparison (the frame of
        :func:`nncompare.alignment.layer_alignment`, e.g. before and after training): the
        report gains an alignment section, and ``alignment.csv`` / ``alignment.json`` are
        written beside the results.
    weights : WeightsSummary, optional
        The weight lens's summary of the same model(s)
        (:func:`nncompare.weights.experiments.weights_summary`): the report gains a weights
        section, and ``weights.csv`` / ``weights.json`` are written beside the results.
    dynamics : pandas.DataFrame, optional
        Learning dynamics of a model of the comparison (the frame of
        :func:`nncompare.analyses.learning_dynamics`): the report gains a learning-dynamics
        section (panels over training, convergence curves, the step at which each layer
        first stays above 0.9), and ``dynamics.csv`` / ``dynamics.json`` are written beside
        the results.
    compression : pandas.DataFrame, optional
        A compression sweep of a model of the comparison (the frame of
        :func:`nncompare.analyses.compression_sweep`): the report gains a compression
        section (accuracy against kept fraction, the table), and ``compression.csv`` is
        written beside the results.

    Returns
    -------
    ReportFiles
        ``html``, ``csv``, ``json`` paths, the ``directory`` and ``figures`` (format ->
        paths of the figure files written).

    Notes
    -----
    ``results.csv`` is meant to be opened in spreadsheets, so it follows OWASP's rule
    against CSV formula injection: a text cell (layer or model name, error message,
    option text, column name) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return is written with a leading single quote (``'=SUM(A1)``). Numbers,
    negative ones included, are written as numbers. ``results.json`` holds the strings
    unchanged, and :func:`load_results` reads them back exactly. In ``report.html``
    bidirectional-override and other control characters in names are shown as visible
    escapes (``\\u202e``).
    """
    from nncompare.report._html import render_html

    df = comparison(df)  # read once: the HTML, the JSON and the CSV read the typed fields
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from nncompare.plot._export import FigureFiles

    sink = FigureFiles(out, formats, dpi=dpi)  # checks formats before any drawing
    page = render_html(
        df,
        title=title,
        image_format=image_format,
        dpi=dpi,
        figure_sink=sink,
        stitching=stitching,
        alignment=alignment,
        weights=weights,
        dynamics=dynamics,
        compression=compression,
    )
    sink.raise_errors()
    json_text = results_json(df)
    csv_text = results_csv(df)
    files = ReportFiles(
        html=out / HTML_NAME,
        csv=out / CSV_NAME,
        json=out / JSON_NAME,
        directory=out,
        figures=sink.paths,
    )
    atomic_write(files.csv, csv_text)
    atomic_write(files.json, json_text + "\n")
    if stitching is not None:
        from nncompare.report._stitching import write_stitching_files

        write_stitching_files(stitching, out, stem="stitching", title=f"{title or ''}")
    if alignment is not None:
        from nncompare.report._alignment import write_alignment_files

        write_alignment_files(alignment, out, stem="alignment", title=f"{title or ''}")
    if weights is not None:
        from nncompare.report._weights import write_weights_files

        write_weights_files(weights, out, stem="weights", title=f"{title or ''}")
    if dynamics is not None:
        from nncompare.report._dynamics import write_dynamics_files

        write_dynamics_files(dynamics, out, stem="dynamics", title=f"{title or ''}")
    if compression is not None:
        from nncompare.report._dynamics import _csv

        atomic_write(out / "compression.csv", _csv(compression))
    atomic_write(files.html, page)
    return files
