"""Report sections and folders of the SVCCA paper's analyses (Raghu et al. 2017 §4.1, §4.3).

* :func:`dynamics_section` — learning dynamics: the layers × layers panels over training
  (Fig. 4), the convergence curves, and a table of the step at which each layer first
  stays above a similarity threshold (:func:`nncompare.analyses.convergence_steps`);
* :func:`sensitivity_section` — class sensitivity: each layer against each class's logit
  (Fig. 6) and the table of values;
* :func:`write_dynamics_files` — ``<stem>.csv`` (the tidy rows) and ``<stem>.json`` (rows,
  per-layer convergence, metadata; strict JSON) beside a report;
* :func:`write_dynamics_report` / :func:`write_sensitivity_report` — a report folder of its
  own (``report.html``, ``results.csv``, ``results.json``), as ``nncompare dynamics`` and
  ``nncompare class-sensitivity`` write it.

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
    "DYNAMICS_FORMAT",
    "SENSITIVITY_FORMAT",
    "THRESHOLD",
    "dynamics_section",
    "sensitivity_section",
    "write_dynamics_files",
    "write_dynamics_report",
    "write_sensitivity_report",
]

DYNAMICS_FORMAT = "nncompare.dynamics"
SENSITIVITY_FORMAT = "nncompare.class_sensitivity"
FORMAT_VERSION = 1
#: default similarity threshold of the convergence table
THRESHOLD = 0.9


def _fmt(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—" if v is None else str(v)
    return "—" if f != f else f"{f:.3f}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    from nncompare.report._html import _e

    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def dynamics_section(
    df: Any, figs: Any, *, threshold: float = THRESHOLD, heading: str = "h2"
) -> str:
    """The learning-dynamics section as an HTML fragment.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame of :func:`nncompare.analyses.learning_dynamics`.
    figs : nncompare.report._html._Figures
        The report's figure renderer.
    threshold : float
        Similarity threshold of the convergence table.
    heading : {"h2", "h3"}
    """
    import pandas as pd

    from nncompare import plot
    from nncompare.analyses.dynamics import _pick_measure, convergence_steps
    from nncompare.report._html import _e

    sub = "h3" if heading == "h2" else "h4"
    parts = [
        f'<{heading} id="dynamics">Learning dynamics: when does each layer converge?</{heading}>',
        '<p class="note">Every layer at each checkpoint against every layer of the final '
        "network (Raghu et al. 2017, §4.1, Fig. 4). A layer's own curve (the diagonal) rising "
        "to 1 early means it settles early; networks tend to converge bottom up.</p>",
    ]
    if not len(df):
        parts.append('<p class="note">No learning-dynamics results.</p>')
        return "\n".join(parts)
    measure = _pick_measure(df, None)
    conv = convergence_steps(df, threshold, measure=measure)
    cks = list(df.attrs.get("checkpoints") or dict.fromkeys(df["checkpoint"]))
    blocks = [
        figs.render(
            lambda: plot.dynamics_grid(df, measure=measure, title=""),
            name="dynamics_grid",
            alt=f"Layers by layers {measure} grids at {len(cks)} checkpoints",
            caption=f"{measure}: rows the layers at the checkpoint, columns the layers of the "
            "final network (paper Fig. 4).",
        ),
        figs.render(
            lambda: plot.convergence_curves(df, measure=measure, threshold=threshold, title=""),
            name="dynamics_convergence",
            alt=f"Each layer's {measure} with itself at the end, over training",
            caption=f"Each layer against itself in the final network; dashed: threshold "
            f"{threshold:g}.",
        ),
    ]
    parts.append(f'<div class="figs">{"".join(blocks)}</div>')
    parts.append(f"<{sub}>Convergence step per layer</{sub}>")
    parts.append(
        f'<p class="note">First checkpoint from which the layer\'s {_e(measure)} with itself '
        f"at the end stays at or above {threshold:g} at every later checkpoint; “—”: it "
        "never does before the end.</p>"
    )
    rows = [
        [
            r.layer,
            r.converged_checkpoint if isinstance(r.converged_checkpoint, str) else "—",
            "—" if pd.isna(r.converged_step) else int(r.converged_step),
            _fmt(r.first_value),
        ]
        for r in conv.itertuples()
    ]  # fmt: skip
    parts.append(
        _table(["Layer", "Converged at", "Step", f"{measure} at the first checkpoint"], rows)
    )
    return "\n".join(parts)


def sensitivity_section(df: Any, figs: Any, *, heading: str = "h2") -> str:
    """The class-sensitivity section as an HTML fragment (frame of
    :func:`nncompare.analyses.class_sensitivity`)."""
    from nncompare import plot
    from nncompare.report._html import _e

    parts = [
        f'<{heading} id="class-sensitivity">Class sensitivity: which layers know each class?'
        f"</{heading}>",
        '<p class="note">The similarity of each layer with the logit of each class, an N × 1 '
        "representation (Raghu et al. 2017, §4.3, Fig. 6). With the DFT path a conv layer "
        "meets the logit on its zero frequency: the canonical correlation of the logit with "
        "the spatially averaged channels. Similar classes give close curves.</p>",
    ]
    if not len(df):
        parts.append('<p class="note">No class-sensitivity results.</p>')
        return "\n".join(parts)
    parts.append(
        '<div class="figs">'
        + figs.render(
            lambda: plot.class_sensitivity_curves(df, title=""),
            name="class_sensitivity",
            alt="Similarity of each layer with each class logit",
            caption="One line per class (paper Fig. 6).",
        )
        + "</div>"
    )
    wide = df.pivot_table(index="layer", columns="class", values="value", aggfunc="first")
    layers = list(df.attrs.get("layers") or dict.fromkeys(df["layer"]))
    classes = list(dict.fromkeys(df["class"]))
    wide = wide.reindex(index=layers, columns=classes)
    rows = [[lay, *[_fmt(v) for v in wide.loc[lay]]] for lay in layers]
    parts.append(_table(["Layer", *[_e(c) for c in classes]], rows))
    return "\n".join(parts)


# --------------------------------------------------------------------------- files


def _csv(df: Any) -> str:
    from nncompare.report._files import neutralise_formula

    out = df.copy(deep=False)
    out.attrs = {}
    for col in out.columns:
        if out[col].dtype.kind not in "biufcmM":
            out[col] = out[col].astype(object).map(neutralise_formula)
    out.columns = [neutralise_formula(str(c)) for c in out.columns]
    return out.to_csv(index=False, lineterminator="\r\n")


def _doc(df: Any, fmt: str, title: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "format": fmt,
        "format_version": FORMAT_VERSION,
        "title": title,
        "columns": [str(c) for c in df.columns],
        "records": [
            {str(k): to_jsonable(v) for k, v in rec.items()} for rec in df.to_dict(orient="records")
        ],
        **{k: to_jsonable(v) for k, v in extra.items()},
        "attrs": to_jsonable(dict(df.attrs)),
    }


def write_dynamics_files(
    df: Any,
    out_dir: str | os.PathLike[str],
    *,
    stem: str = "dynamics",
    title: str = "",
    threshold: float = THRESHOLD,
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (the rows of ``learning_dynamics``) and ``<stem>.json`` (rows,
    the convergence table at ``threshold``, metadata)."""
    from nncompare.analyses.dynamics import convergence_steps

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    conv = convergence_steps(df, threshold) if len(df) else None
    extra = {
        "convergence": [] if conv is None else conv.to_dict(orient="records"),
        "threshold": float(threshold),
    }
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    atomic_write(csv_path, _csv(df))
    atomic_write(json_path, dumps_strict(_doc(df, DYNAMICS_FORMAT, title, extra)) + "\n")
    return csv_path, json_path


def _page(
    out_dir: str | os.PathLike[str],
    title: str,
    meta: str,
    section: Any,
    df: Any,
    *,
    fmt: str,
    extra: Mapping[str, Any],
    image_format: str,
    dpi: int,
    formats: Any,
) -> Any:
    from nncompare.report._html import _e
    from nncompare.report._sections import Section, write_section_report

    prov = df.attrs.get("provenance") if isinstance(df.attrs.get("provenance"), Mapping) else {}

    def write_files(out: Path) -> tuple[Path, Path]:
        csv_path, json_path = out / "results.csv", out / "results.json"
        atomic_write(csv_path, _csv(df))
        atomic_write(json_path, dumps_strict(_doc(df, fmt, title, extra)) + "\n")
        return csv_path, json_path

    page = Section(
        title=title,
        meta=_e(meta),
        body=section,
        footer='Machine-readable results: <a href="results.csv">results.csv</a> and '
        '<a href="results.json">results.json</a>.',
        write_files=write_files,
        provenance=prov,
    )
    return write_section_report(page, out_dir, image_format=image_format, dpi=dpi, formats=formats)


def write_dynamics_report(
    df: Any,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    threshold: float = THRESHOLD,
    image_format: str = "png",
    dpi: int = 150,
    formats: tuple[str, ...] | list[str] | str = (),
) -> Any:
    """Write a learning-dynamics report folder: ``report.html`` (panels, curves, the
    convergence table), ``results.csv`` (the rows), ``results.json`` (rows, convergence,
    metadata). Returns :class:`nncompare.report.ReportFiles`."""
    from nncompare.analyses.dynamics import convergence_steps

    cks = list(df.attrs.get("checkpoints") or dict.fromkeys(df["checkpoint"]))
    layers = list(df.attrs.get("layers") or dict.fromkeys(df["layer_a"]))
    model = str(df.attrs.get("model") or "the model")
    conv = convergence_steps(df, threshold) if len(df) else None
    return _page(
        out_dir,
        str(title if title is not None else f"Learning dynamics of {model}"),
        f"{len(cks)} checkpoints · {len(layers)} layers · n = "
        f"{int(df['n_samples'].iloc[0]) if len(df) else '—'} samples",
        lambda figs: dynamics_section(df, figs, threshold=threshold),
        df,
        fmt=DYNAMICS_FORMAT,
        extra={
            "convergence": [] if conv is None else conv.to_dict(orient="records"),
            "threshold": float(threshold),
        },
        image_format=image_format,
        dpi=dpi,
        formats=formats,
    )


def write_sensitivity_report(
    df: Any,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    image_format: str = "png",
    dpi: int = 150,
    formats: tuple[str, ...] | list[str] | str = (),
) -> Any:
    """Write a class-sensitivity report folder (``report.html``, ``results.csv``,
    ``results.json``). Returns :class:`nncompare.report.ReportFiles`."""
    model = str(df.attrs.get("model") or "the model")
    classes = list(dict.fromkeys(df["class"])) if len(df) else []
    return _page(
        out_dir,
        str(title if title is not None else f"Class sensitivity of {model}"),
        f"classes {', '.join(map(str, classes))} · n = "
        f"{int(df['n_samples'].iloc[0]) if len(df) else '—'} samples",
        lambda figs: sensitivity_section(df, figs),
        df,
        fmt=SENSITIVITY_FORMAT,
        extra={},
        image_format=image_format,
        dpi=dpi,
        formats=formats,
    )
