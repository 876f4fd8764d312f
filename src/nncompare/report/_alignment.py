"""The task-alignment section of the report, and the stand-alone alignment report.

Task alignment (:mod:`nncompare.alignment`, Imani, Hu & White) measures how much of a label
vector lies along a layer's top singular directions: Alignment(Φ, y, τ) = Σ_{σᵢ ≥ τ}
(uᵢᵀy)². :func:`nncompare.alignment.layer_alignment` gives the curves of every layer (and
checkpoint) of a model as a tidy frame; this module turns that frame into

* an HTML section (:func:`alignment_section`): the curves per layer (Fig. 7), each layer
  before and after training when there are several checkpoints (Fig. 6), and a table of
  one row per layer and checkpoint (rank, σ_max, alignment at τ = 0, the share of it on
  the top 10 singular directions, the label-weighted mean singular value);
* files beside a report (:func:`write_alignment_files`): ``<stem>.csv`` (the curve points)
  and ``<stem>.json`` (the points, the per-layer summary, the spectra and the metadata,
  strict JSON);
* a report folder of its own (:func:`write_alignment_report`), as ``nncompare align``
  writes it: ``report.html``, ``results.csv``, ``results.json``.

It reads results only: nothing here runs a model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nncompare._io import atomic_write
from nncompare.report._json import dumps_strict, to_jsonable

__all__ = [
    "ALIGNMENT_FORMAT",
    "alignment_figures",
    "alignment_section",
    "alignment_summary",
    "as_alignment",
    "load_alignment_results",
    "write_alignment_files",
    "write_alignment_report",
]

ALIGNMENT_FORMAT = "nncompare.alignment"
ALIGNMENT_FORMAT_VERSION = 1
TOP = 10  # leading singular directions of the table's share column
MAX_PANELS = 4  # layers drawn before/after training
_COLUMNS = ("checkpoint", "layer", "label", "tau", "alignment")
_TABLE = (
    ("representation", "Checkpoint"),
    ("layer", "Layer"),
    ("n_features", "Features"),
    ("rank", "Rank"),
    ("sigma_max", "σ_max"),
    ("total", "Alignment at τ = 0"),
    ("top", f"Share on top {TOP}"),
    ("mean_sigma", "Mean σ of y"),
    ("mean_sigma_rel", "… / √n"),
)


def as_alignment(obj: Any) -> Any:
    """The frame of :func:`nncompare.alignment.layer_alignment`, checked.

    Raises
    ------
    TypeError
        For anything but a DataFrame.
    ValueError
        For a frame without the columns or the metadata of ``layer_alignment``.
    """
    import pandas as pd

    if not isinstance(obj, pd.DataFrame):
        raise TypeError(
            "Expected the DataFrame returned by nncompare.alignment.layer_alignment for the "
            f"alignment section, got {type(obj).__name__}."
        )
    missing = [c for c in _COLUMNS if c not in obj.columns]
    other = obj.attrs.get("experiment")
    if missing or other != "layer_alignment":
        what = f"missing columns {missing}" if missing else f"a frame of {other!r}"
        raise ValueError(
            "Expected the frame of nncompare.alignment.layer_alignment (columns "
            f"{list(_COLUMNS)}, attrs['experiment'] == 'layer_alignment'), got {what}."
        )
    return obj


def alignment_summary(obj: Any, top: int = TOP) -> Any:
    """One row per (checkpoint, layer): rank, σ_max, alignment at τ = 0, the share of it on
    the first ``top`` singular directions, the label-weighted mean singular value
    (:func:`nncompare.alignment.experiments.summarize`), with ``n_features``."""
    from nncompare.alignment.experiments import summarize

    df = as_alignment(obj)
    out = summarize(df, top=top)
    feats = df.drop_duplicates(["layer"]).set_index("layer")["n_features"]
    out["n_features"] = [int(feats.get(layer, 0)) for layer in out["layer"]]
    return out


def _hidden(df: Any) -> list[str]:
    return [lay for lay in dict.fromkeys(df["layer"]) if lay != "input"]


def alignment_figures(obj: Any) -> dict[str, Any]:
    """The section's figures by file stem: ``alignment_layers`` (every layer's curve,
    :func:`nncompare.plot.alignment_layers`) and, with two or more checkpoints,
    ``alignment_before_after`` (:func:`nncompare.plot.alignment_before_after`)."""
    from nncompare import plot

    df = as_alignment(obj)
    out = {"alignment_layers": plot.alignment_layers(df, title="")}
    if len(df.attrs.get("checkpoints") or set(df["checkpoint"])) >= 2 and _hidden(df):
        out["alignment_before_after"] = plot.alignment_before_after(
            df, layers=_hidden(df)[-MAX_PANELS:]
        )
    return out


def _table(summary: Any) -> str:
    from nncompare.report._html import _e
    from nncompare.report._sections import name_cell, results_table

    def cell(c: str, v: Any) -> str | None:
        if c == "layer":
            return name_cell(v)
        if c == "representation":
            return f"<td>{_e('—' if v == 'input' else v)}</td>"
        return None

    return results_table(
        [(c, h) for c, h in _TABLE if c in summary.columns],
        summary.to_dict(orient="records"),
        text=("representation", "layer"),
        cell=cell,
    )


def _labels_note(attrs: Mapping[str, Any]) -> str:
    labels = [str(v) for v in attrs.get("labels") or []]
    kind = attrs.get("kind")
    if attrs.get("label_vectors"):
        what = str(attrs["label_vectors"])
    elif kind == "regression":
        what = "the centred regression targets"
    elif len(labels) == 1:
        what = f"one ±1 label vector ({labels[0]})"
    else:
        what = f"{len(labels)} one-vs-rest ±1 label vectors (the curves show their sum)"
    norm = attrs.get("normalize")
    rows = {
        "rows": "every row scaled to unit length",
        "max": "divided by the largest row norm",
        None: "unscaled",
    }.get(norm, str(norm))
    conv = attrs.get("conv")
    conv_text = (
        f"; convolutional outputs {'averaged over positions' if conv == 'mean' else 'flattened'}"
        if conv
        else ""
    )
    return f"Labels: {what}. Representations: {rows}{conv_text}."


def alignment_section(obj: Any, figs: Any, *, heading: str = "h2") -> str:
    """The alignment section as an HTML fragment.

    Parameters
    ----------
    obj : pandas.DataFrame
        The frame of :func:`nncompare.alignment.layer_alignment`.
    figs : nncompare.report._html._Figures
        The report's figure renderer (embeds each figure, passes it to the figure sink).
    heading : {"h2", "h3"}
        Level of the section heading (sub-headings are one level below).
    """
    from nncompare.report._html import _e

    df = as_alignment(obj)
    sub = "h3" if heading == "h2" else "h4"
    attrs = dict(df.attrs)
    n = attrs.get("n_samples", "—")
    parts = [
        f'<{heading} id="alignment">Task alignment: do the labels lie along the top singular '
        f"directions?</{heading}>",
        '<p class="note">Alignment(Φ, y, τ) = Σ<sub>σᵢ ≥ τ</sub> (uᵢᵀy)² with Φ = UΣVᵀ the '
        "layer's representation (Imani, Hu &amp; White, \"Representation alignment in neural "
        'networks", eq. 2). A curve that stays high up to large thresholds τ means the labels '
        "lie along the directions of large singular values: a linear model on this layer "
        "learns them fast and with small weights (their Propositions 1 and 2). At τ = 0 the "
        "curve is ‖P<sub>Φ</sub>y‖², the part of the labels a linear model can fit. "
        f"{_e(_labels_note(attrs))} n = {_e(n)} samples.</p>",
    ]
    if not len(df):
        parts.append('<p class="note">No alignment results.</p>')
        return "\n".join(parts)
    from nncompare import plot

    blocks = [
        figs.render(
            lambda: plot.alignment_layers(df, title=""),
            name="alignment_layers",
            alt="Alignment against the threshold tau for every layer",
            caption="Alignment curve of every layer (grey: the inputs; dashed: the first "
            "checkpoint, solid: the last) (paper Fig. 7).",
        )
    ]
    cks = list(dict.fromkeys(df["checkpoint"]))
    hidden = _hidden(df)
    if len(cks) >= 2 and hidden:
        chosen = hidden[-MAX_PANELS:]
        blocks.append(
            figs.render(
                lambda: plot.alignment_before_after(df, layers=chosen),
                name="alignment_before_after",
                alt=f"Alignment curves of {', '.join(chosen)} at {cks[0]} and {cks[-1]}",
                caption=f"Input features (orange), each layer at {cks[0]} (dashed) and at "
                f"{cks[-1]} (solid) (paper Fig. 6).",
            )
        )
    parts.append(f"<{sub}>Curves per layer</{sub}>")
    parts.append(f'<div class="figs">{"".join(blocks)}</div>')
    parts.append(f"<{sub}>Per layer</{sub}>")
    parts.append(
        f'<p class="note">Share on top {TOP}: the part of the alignment at τ = 0 on the first '
        f"{TOP} singular directions. Mean σ of y: Σσᵢ(uᵢᵀy)² / Σ(uᵢᵀy)², the area under the "
        "curve over its value at τ = 0; with unit rows Σσᵢ² = n, so “… / √n” lies in [0, 1] "
        "and compares layers. Larger is better aligned. Rank below the number of features "
        "means constant or dependent features (e.g. dead ReLUs); the curve sums over the "
        "positive singular values.</p>"
    )
    parts.append(_table(alignment_summary(df)))
    return "\n".join(parts)


# --------------------------------------------------------------------------- files


def _json_doc(df: Any, title: str) -> dict[str, Any]:
    summary = alignment_summary(df)
    return {
        "format": ALIGNMENT_FORMAT,
        "format_version": ALIGNMENT_FORMAT_VERSION,
        "title": title,
        "columns": [str(c) for c in df.columns],
        "records": [
            {str(k): to_jsonable(v) for k, v in rec.items()} for rec in df.to_dict(orient="records")
        ],
        "summary": [
            {str(k): to_jsonable(v) for k, v in rec.items()}
            for rec in summary.to_dict(orient="records")
        ],
        "attrs": to_jsonable(dict(df.attrs)),
    }


def alignment_csv(obj: Any) -> str:
    """The curve points as spreadsheet-safe CSV text (see
    :func:`nncompare.report.write_report`'s notes on formula injection)."""
    from nncompare.report._files import neutralise_formula

    out = as_alignment(obj).copy(deep=False)
    out.attrs = {}
    for col in out.columns:
        if out[col].dtype.kind not in "biufcmM":
            out[col] = out[col].astype(object).map(neutralise_formula)
    out.columns = [neutralise_formula(str(c)) for c in out.columns]
    return out.to_csv(index=False, lineterminator="\r\n")


def write_alignment_files(
    obj: Any, out_dir: str | os.PathLike[str], *, stem: str = "alignment", title: str = ""
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (the curve points) and ``<stem>.json`` (points, per-layer summary,
    spectra and metadata)."""
    df = as_alignment(obj)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    atomic_write(csv_path, alignment_csv(df))
    atomic_write(json_path, dumps_strict(_json_doc(df, title)) + "\n")
    return csv_path, json_path


def load_alignment_results(path: str | os.PathLike[str]) -> Any:
    """Read an alignment ``results.json`` (or ``alignment.json``; the file or the report
    folder) back into the frame of :func:`nncompare.alignment.layer_alignment`, its metadata
    (spectra included) in ``attrs``.

    Raises
    ------
    ValueError
        If the file is not an alignment results file.
    """
    import pandas as pd

    from nncompare.report._sections import read_results_doc

    doc = read_results_doc(
        path,
        ALIGNMENT_FORMAT,
        what="an alignment",
        command="nncompare align",
        names=("results.json", "alignment.json"),
    )
    frame = pd.DataFrame.from_records(list(doc.get("records") or []), columns=doc.get("columns"))
    frame.attrs.update(dict(doc.get("attrs") or {}))
    return frame


def write_alignment_report(
    obj: Any,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    image_format: str = "png",
    dpi: int = 150,
    formats: tuple[str, ...] | list[str] | str = (),
) -> Any:
    """Write an alignment report folder: ``report.html``, ``results.csv``, ``results.json``.

    Parameters
    ----------
    obj : pandas.DataFrame
        The frame of :func:`nncompare.alignment.layer_alignment`;
        ``attrs["provenance"]`` (versions, data, command) and ``attrs["model"]`` (a label)
        are shown when present.
    out_dir : path
        Created if needed; existing report files in it are replaced.
    title : str, optional
        Default: "Task alignment of <model>".
    image_format : {"png", "svg"}
    dpi : int
    formats : sequence of {"png", "pdf", "svg"}
        Also write each figure as a file in ``out_dir/figures/``.

    Returns
    -------
    nncompare.report.ReportFiles
    """
    from nncompare.report._html import _date, _e
    from nncompare.report._sections import Section, write_section_report

    df = as_alignment(obj)
    attrs = dict(df.attrs)
    model = str(attrs.get("model") or "the model")
    title = str(title if title is not None else f"Task alignment of {model}")
    prov = attrs.get("provenance") if isinstance(attrs.get("provenance"), Mapping) else {}
    layers = [lay for lay in attrs.get("layers") or [] if lay != "input"]
    section = Section(
        title=title,
        meta=f"Model: <b>{_e(model)}</b> &nbsp;·&nbsp; {len(layers)} layer(s)"
        f" &nbsp;·&nbsp; n = <b>{_e(attrs.get('n_samples', '—'))}</b> samples"
        f" &nbsp;·&nbsp; {_e(prov.get('timestamp') or _date(prov))}",
        body=lambda figs: alignment_section(df, figs),
        footer="Machine-readable results: "
        '<a href="results.csv">results.csv</a> (one row per checkpoint, layer, label vector '
        'and threshold) and <a href="results.json">results.json</a> (the rows, the per-layer '
        "summary, the singular values and projections, provenance).",
        write_files=lambda out: write_alignment_files(df, out, stem="results", title=title),
        provenance=prov,
    )
    return write_section_report(
        section, out_dir, image_format=image_format, dpi=dpi, formats=formats
    )
