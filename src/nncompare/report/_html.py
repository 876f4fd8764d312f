"""The self-contained HTML report: no external resources, no script, images as data URIs.

Every user-provided string (layer and model names, titles, option values, provenance) goes
through :func:`html.escape`; a Content-Security-Policy that forbids scripts and any
non-``data:`` resource is a second line of defence.

Invisible characters that change how text reads are shown, not obeyed: the bidirectional
embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the direction marks
(U+200E, U+200F, U+061C) and other control characters (except tab and line breaks) appear
as visible ``\\u202e``-style escapes, so a layer named ``"fc\\u202e1.sgol"`` cannot pass for
another name in the report (inline SVG figures included). The raw names are kept in
``results.json``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from nncompare.measures._registry import with_spectrum
from nncompare.plot._data import (
    best_matches,
    color_scale_note,
    comparison,
    kept_dims_table,
    layer_order,
    lean,
    measure_matrix,
    measure_meta,
    measures_in,
    model_names,
    reference_matches,
    spectra_of,
)
from nncompare.report._json import to_jsonable

__all__ = ["render_html"]

MAX_TABLE_ROWS = 2000
LABEL_LEN = 20
POLICY_NOTES = {
    "none": "2-D layer, used as is",
    "mean": "spatial mean per channel: (N, C)",
    "samples": "every spatial location a sample: (N·H·W, C)",
    "flatten": "one feature per (location, channel): (N, H·W·C)",
    "dft": "block-diagonal CCA over spatial frequencies",
}

CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --alt: #f6f8fa; --accent: #0072b2;
        --bad: #9a3412; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       "Noto Sans", "Liberation Sans", sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 56px; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 12px; margin-bottom: 8px; }
h1 { font-size: 1.75rem; line-height: 1.25; margin: 0 0 6px; overflow-wrap: anywhere; }
h2 { font-size: 1.3rem; margin: 2.2em 0 0.6em; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 1.08rem; margin: 1.6em 0 0.3em; }
p { margin: 0.4em 0 0.8em; }
.meta { color: var(--muted); margin: 0; }
.meta b { color: var(--fg); font-weight: 600; overflow-wrap: anywhere; }
.muted, figcaption, .note { color: var(--muted); }
.note { font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 6px 0 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
         vertical-align: top; }
thead th { background: var(--alt); border-bottom: 2px solid var(--line); font-weight: 600;
           white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { white-space: nowrap; }
td.name.long { white-space: normal; overflow-wrap: anywhere; min-width: 12em; }
td.nan { color: var(--bad); }
td.err { font-size: 0.8rem; color: var(--muted); max-width: 30em; }
table.summary { width: 100%; }
table.summary tbody { border-bottom: 1px solid var(--line); }
table.summary tbody tr:nth-child(even) { background: none; }
table.summary tr.conv td { font-size: 0.78rem; color: var(--muted); padding-top: 0;
                           border-bottom: none; }
table.summary tr.conv td b { font-weight: 600; color: var(--fg); }
table.summary tr.conv code { font-size: 0.74rem; color: var(--fg); }
table.summary tr:first-child td { border-bottom: none; }
table.summary tr:not(.conv) td:first-child { white-space: nowrap; }
table.results td { padding: 2px 10px; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table.kv th { background: none; border-bottom: 1px solid var(--line); white-space: nowrap;
              color: var(--muted); font-weight: 500; width: 1%; }
table.kv table.kv { margin: 0; font-size: 1em; }
ul.conv { margin: 0; padding-left: 1.1em; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono",
            monospace; font-size: 0.8rem; overflow-wrap: anywhere; }
.figs { display: flex; flex-wrap: wrap; gap: 12px 28px; align-items: flex-start; }
figure { margin: 10px 0; break-inside: avoid; page-break-inside: avoid; max-width: 100%; }
figure img, figure svg { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; margin-top: 4px; max-width: 44em; }
details > summary { cursor: pointer; }
footer { margin-top: 3em; padding-top: 8px; border-top: 1px solid var(--line);
         color: var(--muted); font-size: 0.85rem; }
@media print {
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  .table-wrap { overflow: visible; }
  tr { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'"
)


_BIDI_CONTROLS = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C])
_HIDDEN_RE = re.compile(
    "[" + "".join(chr(c) for c in sorted(_BIDI_CONTROLS)) + "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)


def _show_hidden(text: str) -> str:
    """Bidirectional controls and other control characters as visible ``\\uXXXX`` text."""
    return _HIDDEN_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _e(x: Any) -> str:
    """Escaped text (quotes included, so it is also safe inside attribute values), with
    bidirectional and other control characters shown as visible escapes."""
    return _show_hidden(html.escape(str(x), quote=True))


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(v, float | np.floating) and math.isnan(v)


def _fmt_num(v: Any, digits: int = 4) -> str:
    if _is_missing(v):
        return "—"
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    if f != 0 and (abs(f) >= 1e4 or abs(f) < 1e-3):
        return f"{f:.{digits}g}"
    return f"{f:.{digits}f}"


def _inline_kv(d: Mapping[str, Any]) -> str:
    """``{"a": 1, "b": "x"}`` -> a small escaped list (or an em dash when empty)."""
    if not d:
        return '<span class="muted">—</span>'
    items = "".join(f"<li><code>{_e(k)}</code> = {_e(_scalar_text(v))}</li>" for k, v in d.items())
    return f'<ul class="conv">{items}</ul>'


def _compact_kv(d: Mapping[str, Any]) -> str:
    """``{"a": 1, "b": "x"}`` -> "a = 1; b = x" (escaped), for narrow table cells."""
    if not d:
        return '<span class="muted">—</span>'
    return "; ".join(
        f"<code>{_e(k)}</code>&#8239;=&#8239;{_e(_scalar_text(v))}" for k, v in d.items()
    )


def _scalar_text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, float | np.floating) or isinstance(v, int | np.integer):
        return _fmt_num(v, 6) if isinstance(v, float | np.floating) else str(int(v))
    if v is None or isinstance(v, bool):
        return str(v)
    return json.dumps(to_jsonable(v), ensure_ascii=False, allow_nan=False)


def _kv_table(d: Mapping[str, Any], depth: int = 0) -> str:
    rows = []
    for k, v in d.items():
        if isinstance(v, Mapping) and v and depth < 3:
            cell = _kv_table(v, depth + 1)
        elif isinstance(v, list | tuple) and all(
            isinstance(x, str | int | float | bool) or x is None for x in v
        ):
            cell = _e(", ".join(_scalar_text(x) for x in v))
        else:
            cell = _e(_scalar_text(v))
        rows.append(f'<tr><th scope="row">{_e(k)}</th><td>{cell}</td></tr>')
    return f'<table class="kv">{"".join(rows)}</table>'


class _Figures:
    """Renders figures to embeddable HTML, or notes why it cannot."""

    def __init__(self, image_format: str, dpi: int, sink: Any = None) -> None:
        self.sink = sink  # called with (name, figure) for each figure drawn
        if image_format not in ("png", "svg"):
            raise ValueError(f"image_format must be 'png' or 'svg'; got {image_format!r}.")
        self.image_format = image_format
        self.dpi = int(dpi)
        self.failures: list[str] = []
        try:
            import matplotlib  # noqa: F401

            self.available = True
        except ImportError:
            self.available = False

    def render(self, make: Any, alt: str, caption: str, name: str = "") -> str:
        if not self.available:
            return (
                '<p class="note">Figures need matplotlib (<code>pip install '
                '"nncompare[plot]"</code>); the tables below hold every value.</p>'
            )
        from nncompare.plot._export import figure_to_png_bytes, figure_to_svg, png_size

        try:
            fig = make()
            if self.sink is not None and name:
                self.sink(name, fig)
            if self.image_format == "png":
                data = figure_to_png_bytes(fig, dpi=self.dpi)
                w, h = png_size(data)
                scale = 96.0 / self.dpi
                b64 = base64.b64encode(data).decode("ascii")
                body = (
                    f'<img src="data:image/png;base64,{b64}" alt="{_e(alt)}" '
                    f'width="{round(w * scale)}" height="{round(h * scale)}">'
                )
            else:
                svg = _show_hidden(figure_to_svg(fig, inline=True))
                body = f'<div role="img" aria-label="{_e(alt)}">{svg}</div>'
            fig.clear()
        except Exception as exc:  # one broken figure must not cost the whole report
            msg = f"{type(exc).__name__}: {exc}"
            self.failures.append(msg)
            warnings.warn(f"nncompare report: a figure failed ({msg})", stacklevel=3)
            return f'<p class="note">Figure not available: {_e(msg)}</p>'
        return f"<figure>{body}<figcaption>{_e(caption)}</figcaption></figure>"


def _n_samples(data: Any, prov: Mapping[str, Any]) -> Any:
    if "n_samples" in data.columns:
        vals = [v for v in dict.fromkeys(data["n_samples"].tolist()) if not _is_missing(v)]
        if len(vals) == 1:
            return vals[0]
        if vals:
            return ", ".join(str(v) for v in vals)
    return prov.get("n_samples")


def _date(prov: Mapping[str, Any]) -> str:
    ts = prov.get("timestamp")
    if ts:
        return str(ts)
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _summary_rows(df: Any) -> list[dict[str, Any]]:
    out = []
    for m in measures_in(df):
        meta = measure_meta(df, m)
        rows, best_name, best_val, same_val = best_matches(df, m)
        _, ref_names, _, ref = reference_matches(df, m)
        _, _, mat = measure_matrix(df, m)
        finite = mat[np.isfinite(mat)]
        has_same = [i for i, r in enumerate(rows) if np.isfinite(same_val[i])]
        same_best = sum(1 for i in has_same if best_name[i] == ref_names[i])
        out.append(
            {
                "measure": m,
                "meta": meta,
                "ref": ref,
                "pairs": int(mat.size),
                "undefined": int(mat.size - finite.size),
                "same_mean": float(np.mean(same_val[has_same])) if has_same else math.nan,
                "n_same": len(has_same),
                "best_mean": float(np.nanmean(best_val))
                if np.isfinite(best_val).any()
                else math.nan,
                "same_best": same_best,
                "min": float(finite.min()) if finite.size else math.nan,
                "max": float(finite.max()) if finite.size else math.nan,
            }
        )
    return out


def _summary_table(rows: list[dict[str, Any]], name_a: str, name_b: str) -> str:
    ref = rows[0]["ref"] if rows else None
    ref_label = ref.label if ref is not None else "same-named"
    head = (
        "<thead><tr><th>Measure</th>"
        '<th class="num">Pairs<br>(undefined)</th>'
        f'<th class="num">Mean,<br>{ref_label} pairs</th>'
        f'<th class="num">Mean best<br>match in {_e(name_b)}</th>'
        f'<th class="num">Best match<br>= {ref_label}</th><th class="num">Range</th>'
        "</tr></thead>"
    )
    bodies = []
    for r in rows:
        meta = r["meta"]
        same = (
            f'{_fmt_num(r["same_mean"])} <span class="muted">(n={r["n_same"]})</span>'
            if r["n_same"]
            else '<span class="muted">—</span>'
        )
        same_best = f"{r['same_best']} / {r['n_same']}" if r["n_same"] else "—"
        rng = f"{_fmt_num(r['min'])} – {_fmt_num(r['max'])}" if math.isfinite(r["min"]) else "—"
        opts = _compact_kv(meta.options) if meta.options else "defaults"
        bodies.append(
            "<tbody><tr>"
            f"<td><b>{_e(meta.label)}</b> <code>{_e(meta.name)}</code><br>"
            f'<span class="muted">{_e(meta.direction)}</span></td>'
            f'<td class="num">{r["pairs"]} ({r["undefined"]})</td>'
            f'<td class="num">{same}</td>'
            f'<td class="num">{_fmt_num(r["best_mean"])}</td>'
            f'<td class="num">{same_best}</td>'
            f'<td class="num">{rng}</td>'
            "</tr>"
            f'<tr class="conv"><td colspan="6"><b>Options:</b> {opts}. '
            f"<b>Conventions:</b> {_compact_kv(meta.conventions)}.</td></tr></tbody>"
        )
    return (
        f'<div class="table-wrap"><table class="summary">{head}{"".join(bodies)}'
        "</table></div>"
        f'<p class="note">"Best match": for each layer of {_e(name_a)}, the most similar layer '
        f"of {_e(name_b)} (by the measure's direction); its mean over the layers of "
        f"{_e(name_a)}, and how often it is the {ref_label} layer. "
        + (_e(ref.explain(name_a, name_b)) if ref is not None else "")
        + "</p>"
    )


def _error_notes(df: Any, measure: Any) -> str:
    if "error" not in df.columns:
        return ""
    sub = df[df["measure"] == measure]
    msgs = [e for e in dict.fromkeys(sub["error"].tolist()) if isinstance(e, str) and e]
    if not msgs:
        return ""
    items = "".join(f"<li>{_e(m)}</li>" for m in msgs[:3])
    more = f"<li>… and {len(msgs) - 3} more (see the results table)</li>" if len(msgs) > 3 else ""
    return (
        '<details class="note"><summary>Why some values are undefined '
        f"({len(msgs)} distinct message{'s' if len(msgs) != 1 else ''})</summary>"
        f"<ul>{items}{more}</ul></details>"
    )


def _constant_columns(df: Any) -> dict[str, Any]:
    """Columns with one value in every row (shown once above the table, not per row)."""
    out: dict[str, Any] = {}
    if len(df) < 2:
        return out
    for c in ("model_a", "model_b", "n_samples", "policy"):
        if c in df.columns:
            vals = df[c].tolist()
            first = vals[0]
            if not _is_missing(first) and all(v == first for v in vals):
                out[c] = first
    return out


def _results_table(df: Any) -> str:
    constant = _constant_columns(df)
    cols = [str(c) for c in df.columns if str(c) not in constant]
    num_cols = {"value", "n_samples", "kept_dims_x", "kept_dims_y", "rank_x", "rank_y"}
    name_cols = {"model_a", "model_b", "layer_a", "layer_b"}
    head = "".join(
        f'<th class="num">{_e(c)}</th>' if c in num_cols else f"<th>{_e(c)}</th>" for c in cols
    )
    n = len(df)
    shown = df.iloc[:MAX_TABLE_ROWS]
    idx = [list(map(str, df.columns)).index(c) for c in cols]
    lines = []
    for full in shown.itertuples(index=False, name=None):
        cells = []
        for c, v in zip(cols, (full[i] for i in idx), strict=True):
            if c in num_cols:
                cls = "num nan" if c == "value" and _is_missing(v) else "num"
                text = "NaN" if c == "value" and _is_missing(v) else _fmt_num(v)
                cells.append(f'<td class="{cls}">{text}</td>')
            elif c == "error":
                if _is_missing(v) or not str(v):
                    cells.append('<td class="err"></td>')
                elif len(str(v)) > 60:
                    s = str(v)
                    cells.append(
                        f'<td class="err"><details><summary>{_e(s[:48])}…</summary>'
                        f"{_e(s)}</details></td>"
                    )
                else:
                    cells.append(f'<td class="err">{_e(v)}</td>')
            else:
                text = "" if _is_missing(v) else _scalar_text(v)
                cls = ""
                if c in name_cols:
                    cls = ' class="name long"' if len(text) > 32 else ' class="name"'
                cells.append(f"<td{cls}>{_e(text)}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    note = ""
    if constant:
        same = "; ".join(
            f"<code>{_e(k)}</code> = {_e(_scalar_text(v))}" for k, v in constant.items()
        )
        note += f'<p class="note">In every row: {same}.</p>'
    if n > MAX_TABLE_ROWS:
        note += (
            f'<p class="note">First {MAX_TABLE_ROWS} of {n} rows shown; results.csv and '
            "results.json hold all of them.</p>"
        )
    table = (
        f'<div class="table-wrap"><table class="results"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table></div>"
    )
    if n > 300:
        shown_n = min(n, MAX_TABLE_ROWS)
        return f"{note}<details><summary>Show {shown_n} rows</summary>{table}</details>"
    return note + table


def _measures_table(df: Any, measures: Iterable[Any]) -> str:
    rows = []
    for m in measures:
        meta = measure_meta(df, m)
        rows.append(
            "<tr>"
            f"<td><b>{_e(meta.label)}</b><br><code>{_e(meta.name)}</code></td>"
            f"<td>{_e(meta.description)}</td>"
            f"<td>{_e(meta.direction)}</td>"
            f"<td>{_inline_kv(meta.options)}</td>"
            f"<td>{_inline_kv(meta.conventions)}</td>"
            f"<td>{_e(meta.reference)}</td>"
            "</tr>"
        )
    return (
        '<div class="table-wrap"><table><thead><tr><th>Measure</th><th>Definition</th>'
        "<th>Direction</th><th>Options</th><th>Conventions</th><th>Reference</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _policies_table(df: Any) -> str:
    if "policy" not in df.columns:
        return '<p class="note">No reshape policy recorded (no <code>policy</code> column).</p>'
    counts: dict[str, int] = {}
    for p in df["policy"].tolist():
        key = "—" if _is_missing(p) else str(p)
        counts[key] = counts.get(key, 0) + 1
    rows = []
    for p, k in counts.items():
        parts = [POLICY_NOTES.get(x, "") for x in p.split("/")]
        note = " / ".join(x for x in parts if x)
        rows.append(
            f'<tr><td><code>{_e(p)}</code></td><td class="num">{k}</td><td>{_e(note)}</td></tr>'
        )
    return (
        '<table><thead><tr><th>Policy (A/B)</th><th class="num">Rows</th><th>Meaning</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _shortened_names(df: Any) -> str:
    from nncompare.plot._style import shorten

    names = list(dict.fromkeys([*layer_order(df, "a"), *layer_order(df, "b")]))
    long = [(shorten(n, LABEL_LEN), str(n)) for n in names if len(str(n)) > LABEL_LEN]
    if not long:
        return ""
    rows = "".join(
        f'<tr><td><code>{_e(s)}</code></td><td class="name"><code>{_e(f)}</code></td></tr>'
        for s, f in long
    )
    return (
        "<h3>Layer names shortened in the figures</h3><table><thead><tr><th>In figures</th>"
        f"<th>Full name</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def provenance_html(prov: Mapping[str, Any]) -> list[str]:
    """The Provenance heading and its table (or a note that none was recorded)."""
    table = _kv_table(prov) if prov else '<p class="note">No provenance recorded.</p>'
    return ['<h2 id="provenance">Provenance</h2>', table]


def page_html(title: str, body: str) -> str:
    """A self-contained HTML page (inline style, strict Content-Security-Policy) around
    ``body``; the one scaffold of every report page."""
    from nncompare import __version__

    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="nncompare {_e(__version__)}">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{_e(title)}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def render_html(
    df: Any,
    *,
    title: str | None = None,
    image_format: str = "png",
    dpi: int = 150,
    figure_sink: Any = None,
    stitching: Any = None,
    alignment: Any = None,
    weights: Any = None,
    dynamics: Any = None,
    compression: Any = None,
) -> str:
    """The report as one self-contained HTML document (see :func:`write_report`).

    ``df`` is a comparison frame, a :class:`nncompare.ComparisonResult` or a
    :class:`nncompare.GridResult`, read once. ``figure_sink``, when given, is called with
    ``(name, figure)`` for each figure before it is embedded (names such as
    ``"heatmap_cka"``, ``"spectrum_cca"``, ``"kept_dims"``); :func:`write_report` uses it
    to write the figures as files. ``stitching``, when given (stitching results, see
    :func:`nncompare.report._stitching.as_stitching`), adds a model-stitching section;
    ``weights`` (a :class:`nncompare.weights.experiments.WeightsSummary`) a weights section;
    ``dynamics`` (the frame of :func:`nncompare.analyses.learning_dynamics`) a
    learning-dynamics section; ``compression`` (the frame of
    :func:`nncompare.analyses.compression_sweep`) a compression section."""
    from nncompare import plot

    df = comparison(df)  # read once; every part below reads the typed fields
    data = lean(df)  # the bare table, for column work
    name_a, name_b = model_names(df)
    if title is None:
        title = df.title or f"{name_a} vs {name_b}"
    title = str(title)
    figs = _Figures(image_format, dpi, figure_sink)
    measures = measures_in(df)
    prov = df.provenance
    n = _n_samples(data, prov)
    from nncompare import __version__

    version = prov.get("nncompare", __version__)

    parts: list[str] = []
    parts.append(
        "<header>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="meta">Model A: <b>{_e(name_a)}</b> &nbsp;·&nbsp; Model B: <b>{_e(name_b)}</b>'
        f" &nbsp;·&nbsp; n = <b>{_e(n if n is not None else '—')}</b> samples"
        f" &nbsp;·&nbsp; {_e(_date(prov))} &nbsp;·&nbsp; nncompare {_e(version)}</p>"
        "</header>"
    )
    if not measures:
        parts.append('<p class="note">The results frame holds no rows.</p>')

    if measures:
        parts.append('<h2 id="summary">Summary</h2>')
        parts.append(_summary_table(_summary_rows(df), name_a, name_b))

        parts.append('<h2 id="heatmaps">Layer × layer similarity</h2>')
        parts.append(
            f'<p class="note">Rows: layers of {_e(name_a)}; columns: layers of {_e(name_b)}. '
            "Hatched grey cells are undefined (NaN; the reason is in the results table). "
            "The line plot gives, for each layer of "
            f"{_e(name_a)}, its best-matching layer of {_e(name_b)}.</p>"
        )
        for m in measures:
            meta = measure_meta(df, m)
            parts.append(f"<h3>{_e(meta.label)} <code>{_e(m)}</code></h3>")
            if meta.description:
                parts.append(
                    f'<p class="note">{_e(meta.description)} — {_e(meta.direction)}.'
                    + (f" {_e(meta.reference)}." if meta.reference else "")
                    + "</p>"
                )
            hm = figs.render(
                lambda m=m: plot.heatmap(df, m),
                name=f"heatmap_{m}",
                alt=f"Heatmap of {meta.label} between the layers of {name_a} (rows) and "
                f"{name_b} (columns)",
                caption=f"{meta.label} for every layer pair ({meta.direction})."
                + color_scale_note(df, m),
            )
            prof = figs.render(
                lambda m=m: plot.layer_profile(df, m),
                name=f"profile_{m}",
                alt=f"Best-matching layer of {name_b} for each layer of {name_a}, by {meta.label}",
                caption=f"Best match in {name_b} per layer of {name_a} ({meta.label}).",
            )
            parts.append(f'<div class="figs">{hm}{prof}</div>')
            parts.append(_error_notes(data, m))
        parts.append(_shortened_names(df))

        spectra_measures = [m for m in df.spectra if m in measures and spectra_of(df, str(m))]
        spectrum_order = with_spectrum()  # registry order of the measures with spectra
        spectra_measures.sort(
            key=lambda m: spectrum_order.index(m) if m in spectrum_order else len(spectrum_order)
        )
        if spectra_measures:
            parts.append('<h2 id="spectra">Canonical correlation spectra</h2>')
            parts.append(
                '<p class="note">Canonical correlations ρ<sub>i</sub> in descending order for '
                "the reference layer pairs: same-named layers when both models have the same "
                "layer names, else layers at the same relative depth (within the same stage "
                "where both models have the same stages); without any, the best-matching pair "
                f"of each layer of {_e(name_a)}. The legend says how many are shown. "
                "The CCA similarity is their mean; a long tail of small "
                "ρ<sub>i</sub> means directions that one model has and the other lacks.</p>"
            )
            blocks = []
            for m in spectra_measures:
                label = measure_meta(df, m).label
                blocks.append(
                    figs.render(
                        lambda m=m: plot.spectrum(df, str(m)),
                        name=f"spectrum_{m}",
                        alt=f"Canonical correlation spectra of {label}",
                        caption=f"{label}: canonical correlations per layer pair.",
                    )
                )
            parts.append(f'<div class="figs">{"".join(blocks)}</div>')

        kx, ky = kept_dims_table(df) if "svcca" in measures else ({}, {})
        if kx or ky:
            parts.append('<h2 id="kept-dims">SVCCA kept dimensions</h2>')
            parts.append(
                '<p class="note">Singular directions SVCCA keeps per layer before CCA. '
                "Few kept directions relative to the layer width mean a low-dimensional "
                "representation.</p>"
            )
            parts.append(
                figs.render(
                    lambda: plot.kept_dims(df),
                    name="kept_dims",
                    alt="Bar chart of the singular directions SVCCA kept per layer",
                    caption=f"Kept dimensions per layer of {name_a} and {name_b}.",
                )
            )

        if stitching is not None:
            from nncompare.report._stitching import stitching_section

            parts.append(stitching_section(stitching, figs, names=(name_a, name_b)))

        if alignment is not None:
            from nncompare.report._alignment import alignment_section

            parts.append(alignment_section(alignment, figs))

        if weights is not None:
            from nncompare.report._weights import weights_section

            parts.append(weights_section(weights, figs))

        if dynamics is not None:
            from nncompare.report._dynamics import dynamics_section

            parts.append(dynamics_section(dynamics, figs))

        if compression is not None:
            from nncompare.report._compression import compression_section

            parts.append(compression_section(compression, figs))

        parts.append(f'<h2 id="results">All results ({len(df)} rows)</h2>')
        parts.append(_results_table(data))

    parts.extend(provenance_html(prov))
    if measures:
        parts.append("<h3>Measures and conventions</h3>")
        parts.append(_measures_table(df, measures))
        parts.append("<h3>Reshape policies for convolutional layers</h3>")
        parts.append(_policies_table(data))
    extra = {**({"layer_aliases": df.layer_aliases} if df.layer_aliases else {}), **df.extra}
    if extra:
        parts.append("<h3>Other metadata</h3>")
        parts.append(_kv_table(extra))
    if figs.failures:
        parts.append(
            f'<p class="note">{len(figs.failures)} figure(s) could not be drawn; see above.</p>'
        )
    parts.append(
        "<footer>Generated by nncompare "
        f"{_e(__version__)}. Machine-readable results: "
        '<a href="results.csv">results.csv</a> (tidy table) and '
        '<a href="results.json">results.json</a> (table, metadata and spectra).</footer>'
    )
    return page_html(title, "\n".join(p for p in parts if p))
