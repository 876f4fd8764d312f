"""The stitching section of the report, and the stand-alone stitching report.

Model stitching (:mod:`nncompare.stitching`, Csiszárik et al. 2021) gives one result per
(layer pair, matching method): a stitching matrix, how well the stitched network does
against model B, and, for task-loss matching, a training history. This module turns a list
of :class:`~nncompare.stitching.StitchResult` (or a tidy frame of their rows) into

* an HTML section (:func:`stitching_section`): the relative accuracy and the cross-entropy
  to B per layer pair and method, the training curves with the monitored similarity
  measures, example stitching matrices, and every value in a table;
* a report folder of its own (:func:`write_stitching_report`), as ``nncompare stitch``
  writes it: ``report.html``, ``results.csv`` (one row per layer pair and method),
  ``results.json`` (the rows, the training histories and the provenance, strict JSON) and
  ``matrices.npz`` (every stitching matrix and bias).

It reads results only: nothing here runs a model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nncompare._io import atomic_write
from nncompare.report._html import _is_missing
from nncompare.report._json import dumps_strict, to_jsonable

__all__ = [
    "STITCHING_FORMAT",
    "StitchingData",
    "as_stitching",
    "load_stitching_results",
    "stitching_figures",
    "stitching_section",
    "write_stitching_report",
]

STITCHING_FORMAT = "nncompare.stitching"
STITCHING_FORMAT_VERSION = 1
MATRICES_NAME = "matrices.npz"
MAX_MATRICES = 6  # example stitching matrices drawn in the report

#: how the report names the methods (others are shown as they are)
METHOD_LABELS = {
    "ls": "least squares (direct)",
    "procrustes": "Procrustes (direct)",
    "rrr": "reduced rank (direct)",
    "lasso": "lasso (direct)",
    "task": "task loss",
    "identity": "no transformation",
    "random": "random (untrained)",
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_ORDER = ("identity", "random", "ls", "procrustes", "rrr", "lasso", "task")
_TABLE_COLUMNS = (
    ("layer_a", "Layer of A"),
    ("layer_b", "Layer of B"),
    ("method", "Method"),
    ("seed", "Seed"),
    ("relative_accuracy", "Relative accuracy"),
    ("accuracy", "Accuracy"),
    ("accuracy_b", "Accuracy of B"),
    ("cross_entropy", "Cross-entropy to B"),
    ("agreement", "Agreement with B"),
    ("fit_r2", "Fit R²"),
    ("width_a", "C_a"),
    ("width_b", "C_b"),
    ("skipped", "Not measured because"),
    ("note", "Note"),
)


@dataclass(frozen=True)
class StitchingData:
    """What the stitching section shows: the tidy rows and the results behind them.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per (layer pair, method): ``layer_a``, ``layer_b``, ``method`` and the
        scores of :meth:`~nncompare.stitching.StitchResult.to_row`, as
        :func:`nncompare.stitching.experiments.layer_sweep` returns them (``position``, the
        index of the cut; ``skipped``, why a row has no scores, e.g. no identity baseline
        between unequal widths; ``note``, warnings of the run);
        ``frame.attrs["provenance"]`` is shown with the section.
    results : list of StitchResult
        The results with their matrices and training histories (may be empty: then the
        section shows the curves and the table only).
    """

    frame: Any
    results: list[Any]


def _is_result(obj: Any) -> bool:
    return all(hasattr(obj, k) for k in ("to_row", "matrix", "history", "layer_a", "method"))


def as_stitching(obj: Any) -> StitchingData:
    """Normalise what the stitching section accepts into :class:`StitchingData`.

    Accepted: a :class:`StitchingData`; a sequence of
    :class:`~nncompare.stitching.StitchResult` (the frame is made of their rows); a tidy
    :class:`pandas.DataFrame` of such rows (curves and table only); or any object with
    ``frame`` and ``results`` attributes (such as the result of an experiment of
    :mod:`nncompare.stitching`).

    Raises
    ------
    TypeError
        For anything else, saying what was expected.
    ValueError
        For a frame without the ``layer_a``, ``layer_b`` and ``method`` columns.
    """
    import pandas as pd

    if isinstance(obj, StitchingData):
        return obj
    frame: Any = None
    results: list[Any] = []
    if isinstance(obj, pd.DataFrame):
        frame = obj
    elif hasattr(obj, "frame") and hasattr(obj, "results"):
        frame, results = obj.frame, list(obj.results or [])
    elif _is_result(obj):
        results = [obj]
    elif isinstance(obj, Sequence) and not isinstance(obj, str) and all(map(_is_result, obj)):
        results = list(obj)
    else:
        raise TypeError(
            "Expected stitching results: a list of nncompare.stitching.StitchResult (from "
            "nc.stitching.fit / train / evaluate), a tidy DataFrame of their rows, or an "
            f"object with .frame and .results; got {type(obj).__name__}."
        )
    if frame is None:
        frame = pd.DataFrame([r.to_row() for r in results])
    missing = [c for c in ("layer_a", "layer_b", "method") if c not in frame.columns]
    if missing and len(frame) and frame.attrs.get("experiment") not in _EXPERIMENT_FIGURES:
        raise ValueError(
            f"Expected stitching rows with columns layer_a, layer_b and method (the rows of "
            f"StitchResult.to_row()); the frame lacks {missing} (it has {list(frame.columns)})."
        )
    return StitchingData(frame=frame, results=results)


# --------------------------------------------------------------------------- data helpers


def _pairs(frame: Any) -> list[tuple[str, str]]:
    """The layer pairs in the order of the rows."""
    pairs = zip(frame["layer_a"].astype(str), frame["layer_b"].astype(str), strict=True)
    return list(dict.fromkeys(pairs))


def _pair_label(a: str, b: str) -> str:
    return a if a == b else f"{a} → {b}"


def _methods(frame: Any) -> list[str]:
    found = list(dict.fromkeys(frame["method"].astype(str)))
    return sorted(
        found, key=lambda m: (_ORDER.index(m) if m in _ORDER else len(_ORDER), found.index(m))
    )


def _label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def _column(frame: Any, pairs: list[tuple[str, str]], method: str, col: str) -> np.ndarray:
    out = np.full(len(pairs), np.nan)
    if col not in frame.columns:
        return out
    index = {p: i for i, p in enumerate(pairs)}
    for a, b, m, v in zip(
        frame["layer_a"].astype(str),
        frame["layer_b"].astype(str),
        frame["method"].astype(str),
        frame[col],
        strict=True,
    ):
        if m == method and not _is_missing(v):
            out[index[(a, b)]] = float(v)
    return out


def _score_column(frame: Any) -> tuple[str, str]:
    """(column, axis label) of the per-layer score: relative accuracy when labels were
    given, else the agreement of the top-1 classes with model B."""
    if "relative_accuracy" in frame.columns and frame["relative_accuracy"].notna().any():
        return "relative_accuracy", "relative accuracy (stitched / B)"
    return "agreement", "agreement with B (top-1; no labels)"


def _names(frame: Any) -> tuple[str, str]:
    attrs = getattr(frame, "attrs", {}) or {}
    names = attrs.get("names")
    if isinstance(names, list | tuple) and len(names) == 2:
        return str(names[0]), str(names[1])
    out = []
    for col, default in (("model_a", "model A"), ("model_b", "model B")):
        vals = list(dict.fromkeys(frame[col].dropna().astype(str))) if col in frame else []
        out.append(vals[0] if len(vals) == 1 else default)
    return out[0], out[1]


# --------------------------------------------------------------------------- figures


def _layer_axis(ax: Any, labels: list[str]) -> None:
    from nncompare.plot._style import clean_text, shorten

    ax.set_xticks(np.arange(len(labels)))
    rotate = len(labels) > 4 or max((len(s) for s in labels), default=0) > 10
    ax.set_xticklabels(
        [clean_text(shorten(s, 24)) for s in labels],
        rotation=35 if rotate else 0,
        ha="right" if rotate else "center",
    )


def figure_per_layer(data: StitchingData, column: str | None = None) -> Any:
    """A line per method over the layer pairs: relative accuracy (or ``column``)."""
    from nncompare.plot._style import LINE_COLORS, LINESTYLES, clean_text, new_figure, paper_style

    frame = data.frame
    pairs = _pairs(frame)
    col, ylabel = _score_column(frame) if column is None else (column, column.replace("_", " "))
    labels = [_pair_label(a, b) for a, b in pairs]
    with paper_style():
        fig = new_figure((min(max(4.6, 2.4 + 0.55 * len(pairs)), 11.0), 3.3))
        ax = fig.add_subplot()
        x = np.arange(len(pairs))
        for i, m in enumerate(_methods(frame)):
            y = _column(frame, pairs, m, col)
            if not np.isfinite(y).any():
                continue
            ax.plot(
                x,
                y,
                marker=_MARKERS[i % len(_MARKERS)],
                markersize=5,
                color=LINE_COLORS[i % len(LINE_COLORS)],
                linestyle=LINESTYLES[i % len(LINESTYLES)] if m in ("identity", "random") else "-",
                label=clean_text(_label(m)),
            )
        if col in ("relative_accuracy", "agreement"):
            ax.axhline(1.0, color="#8c8c8c", linewidth=0.8, linestyle=":")
            ax.set_ylim(bottom=0)
        _layer_axis(ax, labels)
        ax.set_xlabel("cut (layer of A → layer of B)")
        ax.set_ylabel(clean_text(ylabel))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best")
    return fig


def _trained(results: list[Any]) -> list[Any]:
    return [r for r in results if getattr(r, "history", None)]


def figure_training(results: list[Any]) -> Any:
    """Training curves of the task-loss results: loss, accuracy and the monitored measures
    per evaluation step, one line per layer pair."""
    from nncompare.plot._style import LINE_COLORS, clean_text, new_figure, paper_style

    trained = _trained(results)
    keys: list[str] = []
    for r in trained:
        for entry in r.history:
            for k in entry:
                if k not in ("step", "epoch") and k not in keys:
                    keys.append(k)
    # loss first, then the score, then the monitored measures
    score = "relative_accuracy" if "relative_accuracy" in keys else "accuracy"
    skip = {"cross_entropy", "agreement", "accuracy"} - {score}
    panels = [k for k in ("loss", score) if k in keys]
    panels += [k for k in keys if k not in panels and k not in skip]
    panels = panels[:6]
    ncols = min(3, max(1, len(panels)))
    nrows = math.ceil(len(panels) / ncols) if panels else 1
    with paper_style():
        fig = new_figure((3.4 * ncols, 2.6 * nrows + 0.3))
        axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(max(1, len(panels)))]
        for ax, key in zip(axes, panels, strict=False):
            for i, r in enumerate(trained):
                steps = [e.get("step") for e in r.history]
                vals = [e.get(key) for e in r.history]
                pts = [
                    (s, float(v)) for s, v in zip(steps, vals, strict=True) if not _is_missing(v)
                ]
                if not pts:
                    continue
                sx, sy = zip(*pts, strict=True)
                ax.plot(
                    sx,
                    sy,
                    marker="o" if len(pts) <= 30 else None,
                    color=LINE_COLORS[i % len(LINE_COLORS)],
                    label=clean_text(_pair_label(str(r.layer_a), str(r.layer_b))),
                )
            ax.set_title(clean_text(key.replace("_", " ")))
            ax.set_xlabel("training step")
        if len(trained) > 1 and panels:
            axes[0].legend(loc="best")
    return fig


def _example_results(results: list[Any]) -> list[Any]:
    """Up to MAX_MATRICES fitted or trained results (not the identity baseline): the first,
    middle and last layer pair, every method."""
    with_matrix = [
        r
        for r in results
        if getattr(r, "matrix", None) is not None and str(r.method) not in ("identity", "random")
    ]
    pairs = list(dict.fromkeys((str(r.layer_a), str(r.layer_b)) for r in with_matrix))
    if len(pairs) > 3:
        pairs = [pairs[0], pairs[len(pairs) // 2], pairs[-1]]
    chosen = [r for r in with_matrix if (str(r.layer_a), str(r.layer_b)) in pairs]
    if len(chosen) > MAX_MATRICES:
        methods = list(dict.fromkeys(str(r.method) for r in chosen))
        keep = max(1, MAX_MATRICES // len(pairs))
        chosen = [r for r in chosen if str(r.method) in methods[:keep]][:MAX_MATRICES]
    return chosen


def figure_matrices(results: list[Any]) -> Any:
    """Example stitching matrices M (rows: channels of A, columns: channels of B)."""
    from matplotlib.ticker import MaxNLocator

    from nncompare.plot._style import clean_text, new_figure, paper_style

    chosen = _example_results(results)
    n = max(1, len(chosen))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    with paper_style():
        fig = new_figure((3.2 * ncols, 3.0 * nrows))
        for i, r in enumerate(chosen):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            m = np.asarray(r.matrix, dtype=float)
            finite = m[np.isfinite(m)]
            lim = float(np.max(np.abs(finite))) if finite.size else 1.0
            lim = lim if lim > 0 else 1.0
            im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(
                clean_text(
                    f"{_pair_label(str(r.layer_a), str(r.layer_b))}\n{_label(str(r.method))}"
                )
            )
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(f"channel of B ({m.shape[1]})")
            ax.set_ylabel(f"channel of A ({m.shape[0]})")
            fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def _sweep_like(frame: Any) -> bool:
    """Whether ``nc.plot.stitch_layer_sweep`` can draw ``frame``: a layer sweep's columns
    with measured relative accuracies."""
    need = ("position", "layer_a", "layer_b", "method", "relative_accuracy", "cross_entropy")
    if any(c not in frame.columns for c in need):
        return False
    if frame.attrs.get("experiment") not in (None, "layer_sweep"):
        return False
    return bool(frame["relative_accuracy"].notna().any())


#: the figure of each experiment of nncompare.stitching.experiments (frame.attrs["experiment"])
_EXPERIMENT_FIGURES = {
    "width_sweep": ("stitch_width_sweep", "Relative accuracy per layer against width (Fig. 3)"),
    "similarity_during_training": (
        "stitch_similarity_training",
        "Similarity of the stitched activations to B's during task-loss training (Fig. 4)",
    ),
    "cka_penalised_self_stitch": (
        "stitch_cka_penalty",
        "CKA-penalised self-stitching: CKA and accuracy during training (Fig. 5)",
    ),
    "initialisation_study": (
        "stitch_initialisation",
        "Relative accuracy by initialisation, random vs least squares (Fig. 6)",
    ),
    "low_rank_study": (
        "stitch_low_rank",
        "Reduced-rank least squares vs low-rank task-loss matching by rank (Fig. 7)",
    ),
    "mode_connectivity": (
        "stitch_mode_connectivity",
        "Relative accuracy along the line between two task-loss solutions (Exp. 6)",
    ),
    "sparsity_study": (
        "stitch_sparsity",
        "Relative accuracy against sparsity, lasso vs L1 task loss, and example matrices (Fig. 8)",
    ),
}


def _per_layer_specs(data: StitchingData) -> list[tuple[str, Any, str, str]]:
    """(file stem, make, alt text, caption) of the per-layer figures."""
    frame = data.frame
    experiment = frame.attrs.get("experiment")
    if experiment in _EXPERIMENT_FIGURES:
        from nncompare import plot

        function, caption = _EXPERIMENT_FIGURES[experiment]
        draw = getattr(plot, function)
        return [
            (
                f"stitching_{experiment}",
                lambda: draw(frame, title=""),
                caption,
                f"{caption} (nc.plot.{function}).",
            )
        ]
    if _sweep_like(frame):
        from nncompare import plot

        return [
            (
                "stitching_layers",
                lambda: plot.stitch_layer_sweep(frame, title=""),
                "Relative accuracy and cross-entropy to model B per cut and matching method",
                "Relative accuracy (stitched / B, solid, left axis) and cross-entropy to B's "
                "outputs (dashed, right axis) per cut and matching method; the "
                "no-transformation baseline in grey (nc.plot.stitch_layer_sweep).",
            )
        ]
    col, ylabel = _score_column(frame)
    specs = [
        (
            f"stitching_{col}",
            lambda: figure_per_layer(data),
            f"{ylabel} per layer pair and matching method",
            f"{ylabel[0].upper()}{ylabel[1:]} per cut and matching method; the dotted line "
            "is model B itself.",
        )
    ]
    if "cross_entropy" in frame.columns and frame["cross_entropy"].notna().any():
        specs.append(
            (
                "stitching_cross_entropy",
                lambda: figure_per_layer(data, "cross_entropy"),
                "Cross-entropy to model B's outputs per layer pair and matching method",
                "Cross-entropy of the stitched network's softmax to B's (nats; lower is "
                "closer to B).",
            )
        )
    return specs


def stitching_figures(obj: Any) -> dict[str, Any]:
    """The section's figures by file stem: ``stitching_layers`` (relative accuracy and
    cross-entropy per cut, :func:`nncompare.plot.stitch_layer_sweep`; without labels
    ``stitching_agreement`` and ``stitching_cross_entropy``), ``stitching_training`` and
    ``stitching_matrices`` (the last two only when results with histories and matrices
    are given)."""
    data = as_stitching(obj)
    out = {name: make() for name, make, _, _ in _per_layer_specs(data)}
    if _trained(data.results):
        out["stitching_training"] = figure_training(data.results)
    if _example_results(data.results):
        out["stitching_matrices"] = figure_matrices(data.results)
    return out


# --------------------------------------------------------------------------- HTML


def _table(frame: Any) -> str:
    from nncompare.report._html import _e
    from nncompare.report._sections import name_cell, results_table

    def cell(c: str, v: Any) -> str | None:
        if c in ("layer_a", "layer_b"):
            return name_cell(v)
        if c == "method":
            return f"<td>{_e(_label(str(v)))}</td>"
        if c in ("note", "skipped"):
            return f'<td class="err">{"" if _is_missing(v) else _e(v)}</td>'
        return None

    return results_table(
        [(c, h) for c, h in _TABLE_COLUMNS if c in frame.columns],
        frame.to_dict(orient="records"),
        text=("layer_a", "layer_b", "method", "note", "skipped"),
        cell=cell,
    )


def _options_note(results: list[Any]) -> str:
    from nncompare.report._html import _compact_kv

    seen: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.method not in seen and r.options:
            seen[str(r.method)] = dict(r.options)
    if not seen:
        return ""
    items = "".join(f"<li>{_label(m)}: {_compact_kv(o)}</li>" for m, o in seen.items())
    return (
        f'<details class="note"><summary>Options of each method</summary><ul>{items}</ul></details>'
    )


def stitching_section(
    obj: Any,
    figs: Any,
    *,
    heading: str = "h2",
    names: tuple[str, str] | None = None,
) -> str:
    """The stitching section as an HTML fragment.

    Parameters
    ----------
    obj : list of StitchResult, DataFrame or StitchingData
        See :func:`as_stitching`.
    figs : nncompare.report._html._Figures
        The report's figure renderer (embeds each figure, passes it to the figure sink).
    heading : {"h2", "h3"}
        Level of the section heading (sub-headings are one level below).
    names : (str, str), optional
        Labels of models A and B (default: from the frame).
    """
    from nncompare.report._html import _e

    data = as_stitching(obj)
    frame = data.frame
    sub = "h3" if heading == "h2" else "h4"
    name_a, name_b = names if names is not None else _names(frame)
    parts = [
        f'<{heading} id="stitching">Model stitching: can a layer of {_e(name_a)} do the job of '
        f"one of {_e(name_b)}?</{heading}>",
        '<p class="note">The front of A up to a layer, a trainable linear stitching layer, and '
        "the back of B after a layer, evaluated as one network (Csiszárik et al. 2021, "
        '"Similarity and matching of neural network representations"). <b>Relative '
        "accuracy</b> is the stitched network's accuracy divided by B's own; "
        "<b>cross-entropy</b> is that of the stitched network's outputs to B's softmax. "
        "Direct matching fits the stitching matrix in closed form to B's activations; task-"
        "loss matching trains it through the back of B. A layer that direct matching cannot "
        "stitch but task loss can looks unlike B's layer yet carries the same "
        "information.</p>",
    ]
    if not len(frame):
        parts.append('<p class="note">No stitching results.</p>')
        return "\n".join(parts)
    blocks = [
        figs.render(make, name=name, alt=alt, caption=caption)
        for name, make, alt, caption in _per_layer_specs(data)
    ]
    parts.append(f"<{sub}>Per layer</{sub}>")
    parts.append(f'<div class="figs">{"".join(blocks)}</div>')
    if _trained(data.results):
        parts.append(f"<{sub}>Task-loss training</{sub}>")
        parts.append(
            figs.render(
                lambda: figure_training(data.results),
                name="stitching_training",
                alt="Training curves of task-loss stitching: loss, accuracy and monitored "
                "similarity measures per step",
                caption="Per evaluation step of task-loss matching: the training loss, the "
                "accuracy and the similarity measures between the transformed activations "
                "of A and B's activations (paper Fig. 4).",
            )
        )
    if _example_results(data.results):
        parts.append(f"<{sub}>Stitching matrices</{sub}>")
        parts.append(
            figs.render(
                lambda: figure_matrices(data.results),
                name="stitching_matrices",
                alt="Example stitching matrices as images",
                caption="Example stitching matrices M (A M + b ≈ B): rows are channels of A, "
                "columns channels of B; red positive, blue negative.",
            )
        )
    parts.append(f"<{sub}>Every value</{sub}>")
    parts.append(_table(frame))
    parts.append(_options_note(data.results))
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------- files


def _json_doc(data: StitchingData, title: str) -> dict[str, Any]:
    frame = data.frame
    return {
        "format": STITCHING_FORMAT,
        "format_version": STITCHING_FORMAT_VERSION,
        "title": title,
        "columns": [str(c) for c in frame.columns],
        "records": [
            {str(k): to_jsonable(v) for k, v in rec.items()}
            for rec in frame.to_dict(orient="records")
        ],
        "attrs": to_jsonable(dict(getattr(frame, "attrs", {}) or {})),
        "results": [
            {
                "index": i,
                "layer_a": r.layer_a,
                "layer_b": r.layer_b,
                "method": r.method,
                "options": to_jsonable(dict(r.options or {})),
                "history": to_jsonable(list(r.history or [])),
                "matrix": f"{MATRICES_NAME}:matrix_{i:03d}",
                "bias": f"{MATRICES_NAME}:bias_{i:03d}",
            }
            for i, r in enumerate(data.results)
        ],
    }


def stitching_csv(obj: Any) -> str:
    """The stitching rows as spreadsheet-safe CSV text (see
    :func:`nncompare.report.write_report`'s notes on formula injection)."""
    from nncompare.report._files import neutralise_formula

    frame = as_stitching(obj).frame
    out = frame.copy(deep=False)
    out.attrs = {}
    for col in out.columns:
        if out[col].dtype.kind not in "biufcmM":
            out[col] = out[col].astype(object).map(neutralise_formula)
    out.columns = [neutralise_formula(str(c)) for c in out.columns]
    return out.to_csv(index=False, lineterminator="\r\n")


def write_stitching_files(
    obj: Any, out_dir: str | os.PathLike[str], *, stem: str = "results", title: str = ""
) -> tuple[Path, Path, Path | None]:
    """Write ``<stem>.csv``, ``<stem>.json`` and (with results) ``matrices.npz``."""
    import io

    data = as_stitching(obj)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    atomic_write(csv_path, stitching_csv(data))
    atomic_write(json_path, dumps_strict(_json_doc(data, title)) + "\n")
    npz_path = None
    if data.results:
        arrays: dict[str, np.ndarray] = {}
        for i, r in enumerate(data.results):
            arrays[f"matrix_{i:03d}"] = np.asarray(r.matrix)
            arrays[f"bias_{i:03d}"] = np.asarray(r.bias)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        npz_path = out / MATRICES_NAME
        atomic_write(npz_path, buf.getvalue())
    return csv_path, json_path, npz_path


def load_stitching_results(path: str | os.PathLike[str]) -> Any:
    """Read a stitching ``results.json`` (the file, or the report folder) back into the
    frame; ``frame.attrs`` holds the provenance and ``frame.attrs["results"]`` the options
    and training histories of each result (their matrices are in ``matrices.npz``).

    Raises
    ------
    ValueError
        If the file is not a stitching results file.
    """
    import pandas as pd

    from nncompare.report._sections import read_results_doc

    doc = read_results_doc(path, STITCHING_FORMAT, what="a stitching", command="nncompare stitch")
    frame = pd.DataFrame.from_records(list(doc.get("records") or []), columns=doc.get("columns"))
    frame.attrs.update(dict(doc.get("attrs") or {}))
    frame.attrs["results"] = list(doc.get("results") or [])
    return frame


def write_stitching_report(
    obj: Any,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    image_format: str = "png",
    dpi: int = 150,
    formats: tuple[str, ...] | list[str] | str = (),
) -> Any:
    """Write a stitching report folder: ``report.html``, ``results.csv``, ``results.json``
    and ``matrices.npz``.

    Parameters
    ----------
    obj : list of StitchResult, DataFrame or StitchingData
        See :func:`as_stitching`. ``frame.attrs["provenance"]`` (versions, data, command)
        and ``frame.attrs["names"]`` (labels of A and B) are shown when present.
    out_dir : path
        Created if needed; existing report files in it are replaced.
    title : str, optional
        Default: "Stitching <model A> into <model B>".
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

    data = as_stitching(obj)
    frame = data.frame
    name_a, name_b = _names(frame)
    title = str(title if title is not None else f"Stitching {name_a} into {name_b}")
    attrs = dict(getattr(frame, "attrs", {}) or {})
    prov = attrs.get("provenance") if isinstance(attrs.get("provenance"), Mapping) else {}
    n = prov.get("n_samples", "—")
    n_eval = prov.get("n_eval_samples")
    section = Section(
        title=title,
        meta=f"Model A: <b>{_e(name_a)}</b> &nbsp;·&nbsp; Model B: <b>{_e(name_b)}</b>"
        f" &nbsp;·&nbsp; fitted on n = <b>{_e(n)}</b>"
        + (f", evaluated on n = <b>{_e(n_eval)}</b>" if n_eval is not None else "")
        + f" &nbsp;·&nbsp; {_e(prov.get('timestamp') or _date(frame))}",
        body=lambda figs: stitching_section(data, figs, names=(name_a, name_b)),
        footer="Machine-readable results: "
        '<a href="results.csv">results.csv</a> (one row per cut and method), '
        '<a href="results.json">results.json</a> (rows, training histories, provenance) and '
        f"{MATRICES_NAME} (the stitching matrices and biases).",
        write_files=lambda out: write_stitching_files(data, out, title=title)[:2],
        provenance=prov,
    )
    return write_section_report(
        section, out_dir, image_format=image_format, dpi=dpi, formats=formats
    )
