"""Figures of the task-alignment lens (Imani, Hu & White; :mod:`nncompare.alignment`).

Each function returns a pyplot-free :class:`matplotlib.figure.Figure`; single-panel figures
draw into ``ax`` when one is given:

* :func:`alignment_curve` — alignment against the threshold τ for one or several
  :class:`~nncompare.alignment.AlignmentCurve` (Figs. 3, 5).
* :func:`alignment_spectrum` — singular values and the label vector's squared projections
  (uᵢᵀy)² per singular direction (Fig. 2).
* :func:`alignment_layers` — the curves of every layer of a
  :func:`~nncompare.alignment.layer_alignment` frame, dashed before and solid after
  training (Fig. 7).
* :func:`alignment_before_after` — input features, and each chosen layer before/after
  training (Fig. 6).
* :func:`alignment_transfer` — the peaks transfer experiment: source, related and unrelated
  task against the original, initial and transferred representation (Fig. 10; per layer,
  Fig. 12).
* :func:`alignment_linear_transfer` — train/test error over steps and weight norm against
  the reduction of training loss of linear models on 100 samples (Fig. 11).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nncompare.plot._style import LINE_COLORS, OKABE_ITO, clean_text, new_figure, paper_style

__all__ = [
    "alignment_before_after",
    "alignment_curve",
    "alignment_layers",
    "alignment_linear_transfer",
    "alignment_spectrum",
    "alignment_transfer",
]

REP_COLORS = {"original": OKABE_ITO[1], "init": OKABE_ITO[0], "transfer": OKABE_ITO[2]}


def _figure(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot()
    return ax.figure, ax


def _title(ax: Any, title: str | None, default: str) -> None:
    ax.set_title(clean_text(title if title is not None else default), loc="left")


def _curves(curves: Any) -> dict[str, Any]:
    from nncompare.alignment import AlignmentCurve

    if isinstance(curves, AlignmentCurve):
        return {"": curves}
    if isinstance(curves, Mapping):
        items = dict(curves)
    elif isinstance(curves, Sequence) and not isinstance(curves, str):
        items = {str(i): c for i, c in enumerate(curves)}
    else:
        items = {"": curves}
    for name, c in items.items():
        if not isinstance(c, AlignmentCurve):
            raise TypeError(
                "Expected an AlignmentCurve (nc.alignment.curve) or a dict/list of them, got "
                f"{type(c).__name__}" + (f" for {name!r}." if name else ".")
            )
    return items


def _series(c: Any, label: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    from nncompare._array import to_numpy

    taus = to_numpy(c.taus)
    if label is None or label == "sum":
        return taus, to_numpy(c.total), "sum" if len(c.labels) > 1 else c.labels[0]
    if label not in c.labels:
        raise ValueError(f"Expected one of the label vectors {list(c.labels)} or 'sum', got "
                         f"{label!r}.")  # fmt: skip
    return taus, to_numpy(c.alignment)[:, c.labels.index(label)], label


def _step(
    ax: Any, taus: np.ndarray, values: np.ndarray, sigma_max: float | None = None, **kw: Any
) -> None:
    order = np.argsort(taus)
    taus, values = np.asarray(taus, float)[order], np.asarray(values, float)[order]
    if sigma_max is not None and len(taus) and taus[-1] <= sigma_max:
        # the curve is 0 beyond the largest singular value: draw that drop too
        taus = np.append(taus, sigma_max * 1.04)
        values = np.append(values, 0.0)
    # A(τ) = Σ_{σ ≥ τ}: constant on (σ_{k+1}, σ_k], the value at the right end
    ax.plot(taus, values, drawstyle="steps-pre", **kw)


def _sigma_max(sub: Any) -> float | None:
    if "sigma_max" not in sub.columns or sub.empty:
        return None
    return float(sub["sigma_max"].iloc[0])


def alignment_curve(
    curves: Any,
    *,
    label: str | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Alignment against the threshold τ (Imani et al., Figs. 3 and 5).

    Parameters
    ----------
    curves : AlignmentCurve, or dict {name: AlignmentCurve} / list of them
        From :func:`nncompare.alignment.curve` (or ``StreamingAlignment.curve``); several
        are overlaid.
    label : str, optional
        Which label vector to draw (default: the sum over label vectors).
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nncompare._array import to_numpy

    items = _curves(curves)
    with paper_style():
        fig, ax = _figure(ax, (4.4, 3.2))
        for i, (name, c) in enumerate(items.items()):
            taus, vals, lab = _series(c, label)
            s = np.asarray(to_numpy(c.singular_values))
            smax = float(s[0]) if len(s) else None
            _step(ax, taus, vals, smax, color=LINE_COLORS[i % len(LINE_COLORS)],
                  label=clean_text(name or lab))  # fmt: skip
        ax.set_xlabel("threshold τ on singular values")
        ax.set_ylabel("alignment: Σ (uᵢᵀy)² over σᵢ ≥ τ")
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        if len(items) > 1 or next(iter(items)):
            ax.legend(loc="best")
        _title(ax, title, "Alignment curve")
    return fig


def alignment_spectrum(
    curve: Any,
    *,
    label: str | None = None,
    max_index: int | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Squared projections (uᵢᵀy)² (bars) and singular values σᵢ (line, right axis) by index.

    The index runs over the singular directions in descending order of σᵢ (Imani et al.,
    Fig. 2); ``max_index`` zooms in on the first directions. ``label`` picks a label vector
    (default: the sum over label vectors).
    """
    from nncompare._array import to_numpy

    c = next(iter(_curves(curve).values()))
    P = to_numpy(c.projections)
    if label is None or label == "sum":
        p = P.sum(axis=1)
    elif label in c.labels:
        p = P[:, c.labels.index(label)]
    else:
        raise ValueError(f"Expected one of the label vectors {list(c.labels)} or 'sum', got "
                         f"{label!r}.")  # fmt: skip
    s = to_numpy(c.singular_values)
    k = len(s) if max_index is None else max(1, min(int(max_index), len(s)))
    idx = np.arange(1, k + 1)
    with paper_style():
        fig, ax = _figure(ax, (4.6, 3.2))
        ax.bar(idx, p[:k], color=OKABE_ITO[0], width=0.8, label="(uᵢᵀy)²")
        ax.set_xlabel("singular direction i (σ descending)")
        ax.set_ylabel("(uᵢᵀy)²", color=OKABE_ITO[0])
        ax2 = ax.twinx()
        ax2.spines["right"].set_visible(True)
        ax2.plot(idx, s[:k], color=OKABE_ITO[5], lw=1.2, marker="." if k <= 60 else None)
        ax2.set_ylabel("singular value σᵢ", color=OKABE_ITO[5])
        ax2.set_ylim(bottom=0)
        _title(ax, title, "Label projections on singular directions")
    return fig


def _check_frame(df: Any, experiment: str, function: str, columns: Sequence[str]) -> Any:
    import pandas as pd

    source = {
        "layer_alignment": "nc.alignment.layer_alignment",
        "peaks_transfer": "nc.alignment.peaks.transfer_experiment",
        "peaks_linear_transfer": "nc.alignment.peaks.linear_transfer",
    }[experiment]
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"Expected the DataFrame returned by {source} for nc.plot.{function}, "
                        f"got {type(df).__name__}.")  # fmt: skip
    other = df.attrs.get("experiment")
    if other is not None and other != experiment:
        raise ValueError(f"Expected the frame of {source} for nc.plot.{function}, got the frame "
                         f"of {other!r}.")  # fmt: skip
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"Expected the columns {list(columns)} of {source} in the frame for "
                         f"nc.plot.{function}; missing {missing}.")  # fmt: skip
    if df.empty:
        raise ValueError(f"Expected at least one row to draw with nc.plot.{function}, got none.")
    return df


def _pick_label(df: Any, label: str | None) -> Any:
    labels = list(dict.fromkeys(df["label"]))
    if label is None:
        label = "sum" if "sum" in labels else labels[0]
    if label not in labels:
        raise ValueError(f"Expected one of the labels {labels}, got {label!r}.")
    return df[df["label"] == label]


def alignment_layers(
    df: Any,
    *,
    label: str | None = None,
    checkpoints: Sequence[str] | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Alignment curves of every layer (Imani et al., Fig. 7).

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`nncompare.alignment.layer_alignment`.
    label : str, optional
        Label vector to draw (default: the sum, or the only one).
    checkpoints : list of str, optional
        Checkpoints to draw (default: all); the first is dashed ("before"), the last solid,
        those between dotted. The layer ``input`` is drawn once, in grey.
    ax : matplotlib Axes, optional
    title : str, optional
    """
    cols = ["checkpoint", "layer", "label", "tau", "alignment"]
    df = _pick_label(_check_frame(df, "layer_alignment", "alignment_layers", cols), label)
    cks = list(dict.fromkeys(df["checkpoint"])) if checkpoints is None else list(checkpoints)
    unknown = [c for c in cks if c not in set(df["checkpoint"])]
    if unknown:
        raise ValueError(f"Expected checkpoints among {sorted(set(df['checkpoint']))}, got "
                         f"{unknown}.")  # fmt: skip
    layers = list(dict.fromkeys(df["layer"]))
    hidden = [lay for lay in layers if lay != "input"]
    with paper_style():
        fig, ax = _figure(ax, (4.8, 3.4))
        if "input" in layers:
            sub = df[(df["layer"] == "input") & (df["checkpoint"] == cks[0])]
            _step(ax, sub["tau"].to_numpy(), sub["alignment"].to_numpy(), _sigma_max(sub),
                  color="#7f7f7f", lw=2.0, label="input")  # fmt: skip
        for i, layer in enumerate(hidden):
            color = LINE_COLORS[i % len(LINE_COLORS)]
            for j, ck in enumerate(cks):
                ls = "-" if j == len(cks) - 1 else ("--" if j == 0 else ":")
                sub = df[(df["layer"] == layer) & (df["checkpoint"] == ck)]
                name = layer if len(cks) == 1 else f"{layer} ({ck})"
                _step(ax, sub["tau"].to_numpy(), sub["alignment"].to_numpy(), _sigma_max(sub),
                      color=color, ls=ls, label=clean_text(name))  # fmt: skip
        ax.set_xlabel("threshold τ on singular values")
        ax.set_ylabel("alignment")
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        ax.legend(loc="best", ncol=2 if len(hidden) * len(cks) > 6 else 1)
        _title(ax, title, "Alignment per layer")
    return fig


def alignment_before_after(
    df: Any,
    *,
    layers: Sequence[str] | None = None,
    label: str | None = None,
    before: str | None = None,
    after: str | None = None,
    title: str | None = None,
) -> Any:
    """Input features (orange), each layer before (dashed) and after (solid) training (Fig. 6).

    ``df`` is a :func:`~nncompare.alignment.layer_alignment` frame with at least two
    checkpoints; ``before``/``after`` default to the first and the last; ``layers`` to the
    last hidden layer. One panel per chosen layer.
    """
    cols = ["checkpoint", "layer", "label", "tau", "alignment"]
    df = _pick_label(_check_frame(df, "layer_alignment", "alignment_before_after", cols), label)
    cks = list(dict.fromkeys(df["checkpoint"]))
    if len(cks) < 2:
        raise ValueError(
            "Expected a layer_alignment frame with at least two checkpoints (before and after "
            f"training) for nc.plot.alignment_before_after, got {cks}. Pass "
            "checkpoints={'init': ..., 'trained': ...} to layer_alignment."
        )
    before = cks[0] if before is None else before
    after = cks[-1] if after is None else after
    for ck in (before, after):
        if ck not in cks:
            raise ValueError(f"Expected a checkpoint among {cks}, got {ck!r}.")
    hidden = [lay for lay in dict.fromkeys(df["layer"]) if lay != "input"]
    chosen = hidden[-1:] if layers is None else list(layers)
    bad = [lay for lay in chosen if lay not in hidden]
    if bad or not chosen:
        raise ValueError(f"Expected layers among {hidden}, got {bad or chosen}.")
    with paper_style():
        fig = new_figure((3.2 * len(chosen) + 0.4, 3.0))
        axes = fig.subplots(1, len(chosen), squeeze=False)[0]
        for ax, layer in zip(axes, chosen, strict=True):
            sub = df[(df["layer"] == "input") & (df["checkpoint"] == before)]
            if not sub.empty:
                _step(ax, sub["tau"].to_numpy(), sub["alignment"].to_numpy(), _sigma_max(sub),
                      color=OKABE_ITO[1], label="input features")  # fmt: skip
            for ck, ls in ((before, "--"), (after, "-")):
                sub = df[(df["layer"] == layer) & (df["checkpoint"] == ck)]
                _step(ax, sub["tau"].to_numpy(), sub["alignment"].to_numpy(), _sigma_max(sub),
                      color=OKABE_ITO[0], ls=ls, label=clean_text(f"{layer} ({ck})"))  # fmt: skip
            ax.set_xlabel("threshold τ")
            ax.set_ylabel("alignment")
            ax.set_ylim(bottom=0)
            ax.set_xlim(left=0)
            ax.legend(loc="best")
            ax.set_title(clean_text(layer), loc="left")
        if title is not None:
            fig.suptitle(clean_text(title))
    return fig


def _mean_sem(sub: Any, x: str, y: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = sub.groupby(x, sort=True)[y]
    xs = np.asarray(g.mean().index, dtype=float)
    mean = g.mean().to_numpy(dtype=float)
    cnt = g.count().to_numpy()
    sem = np.nan_to_num(g.std(ddof=1).to_numpy(dtype=float)) / np.sqrt(np.maximum(cnt, 1))
    return xs, mean, sem


def alignment_transfer(df: Any, *, layer: str | None = None, title: str | None = None) -> Any:
    """The peaks transfer result (Imani et al., Fig. 10; Fig. 12 with ``layer="all"``).

    Three panels (source, related, unrelated task); in each, the alignment curve of the
    task's labels with the original features, the hidden representation at initialisation
    and after training on the source (mean over seeds, band ± standard error).
    ``layer`` picks the hidden layer (default: the last); ``"all"`` draws the transferred
    representation of every hidden layer instead (Fig. 12).
    """
    cols = ["seed", "role", "representation", "layer", "tau", "alignment"]
    df = _check_frame(df, "peaks_transfer", "alignment_transfer", cols)
    hidden = sorted({lay for lay in df["layer"] if lay != "input"})
    if layer is None:
        layer = hidden[-1]
    if layer != "all" and layer not in hidden:
        raise ValueError(f"Expected layer among {hidden} or 'all', got {layer!r}.")
    roles = [r for r in ("source", "related", "unrelated") if r in set(df["role"])]
    with paper_style():
        fig = new_figure((3.0 * len(roles) + 0.4, 2.9))
        axes = fig.subplots(1, len(roles), squeeze=False, sharey=True)[0]
        for ax, role in zip(axes, roles, strict=True):
            sub = df[df["role"] == role]
            if layer == "all":
                series = [("original", sub[sub["representation"] == "original"], "#7f7f7f")]
                series += [
                    (lay, sub[(sub["representation"] == "transfer") & (sub["layer"] == lay)],
                     LINE_COLORS[i % len(LINE_COLORS)])
                    for i, lay in enumerate(hidden)
                ]  # fmt: skip
            else:
                series = [
                    (rep, sub[(sub["representation"] == rep)
                              & ((sub["layer"] == layer) | (rep == "original"))],
                     REP_COLORS[rep])
                    for rep in ("original", "init", "transfer")
                ]  # fmt: skip
            for name, s, color in series:
                if s.empty:
                    continue
                xs, mean, sem = _mean_sem(s, "tau", "alignment")
                ax.plot(xs, mean, color=color, label=clean_text(name))
                ax.fill_between(xs, mean - sem, mean + sem, color=color, alpha=0.2, lw=0)
            ax.set_title(f"{role} task", loc="left")
            ax.set_xlabel("threshold τ")
            ax.set_ylim(bottom=0)
        axes[0].set_ylabel("alignment")
        axes[-1].legend(loc="best")
        if title is not None:
            fig.suptitle(clean_text(title))
    return fig


def alignment_linear_transfer(df: Any, *, title: str | None = None) -> Any:
    """Linear models on the peaks representations (Imani et al., Fig. 11).

    Top row: train (dashed) and test (solid) error over gradient steps for the related and
    the unrelated task; bottom row: weight norm against the fraction of training loss
    removed. Each representation uses the step size (of the frame's sweep) with the lowest
    final test error; means over seeds.
    """
    cols = ["seed", "role", "representation", "lr_factor", "step", "train_error",
            "test_error", "weight_norm", "train_reduction"]  # fmt: skip
    df = _check_frame(df, "peaks_linear_transfer", "alignment_linear_transfer", cols)
    roles = [r for r in ("related", "unrelated") if r in set(df["role"])]
    with paper_style():
        fig = new_figure((3.2 * len(roles) + 0.4, 5.6))
        axes = fig.subplots(2, len(roles), squeeze=False)
        for j, role in enumerate(roles):
            sub = df[df["role"] == role]
            for rep in ("original", "init", "transfer"):
                r = sub[sub["representation"] == rep]
                if r.empty:
                    continue
                last = r[r["step"] == r["step"].max()]
                best = last.groupby("lr_factor")["test_error"].mean().idxmin()
                r = r[r["lr_factor"] == best]
                color = REP_COLORS[rep]
                g = r.groupby("step", sort=True)
                steps = np.asarray(g.mean(numeric_only=True).index, dtype=float)
                m = g.mean(numeric_only=True)
                ax = axes[0, j]
                ax.plot(steps, m["train_error"], color=color, ls="--")
                ax.plot(steps, m["test_error"], color=color, label=rep)
                axes[1, j].plot(m["train_reduction"], m["weight_norm"], color=color, label=rep)
            ax = axes[0, j]
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlabel("gradient steps")
            ax.set_ylabel("MSE (train dashed, test solid)")
            ax.set_title(f"{role} task", loc="left")
            ax.legend(loc="best")
            axes[1, j].set_xlabel("fraction of training loss removed")
            axes[1, j].set_ylabel("‖w‖")
        if title is not None:
            fig.suptitle(clean_text(title))
    return fig
