"""Figures of the stitching experiments (Csiszárik et al. 2021, Figs. 2-8).

One function per experiment of :mod:`nncompare.stitching.experiments`; each takes the frame
that experiment returned, draws into ``ax`` when one is given and the figure has a single
panel (else into a new pyplot-free Figure) and returns the Figure:

* :func:`stitch_layer_sweep` — relative accuracy and cross-entropy per layer (Fig. 2).
* :func:`stitch_width_sweep` — relative accuracy against width, a panel per layer (Fig. 3).
* :func:`stitch_similarity_training` — similarity indices and task performance over
  training steps (Fig. 4).
* :func:`stitch_cka_penalty` — CKA and relative accuracy of CKA-penalised self-stitching
  (Fig. 5).
* :func:`stitch_initialisation` — histogram of relative accuracy by initialisation (Fig. 6).
* :func:`stitch_low_rank` — relative accuracy against rank, direct vs task loss (Fig. 7).
* :func:`stitch_mode_connectivity` — relative accuracy along λM₁ + (1-λ)M₂ (Exp. 6).
* :func:`stitch_sparsity` — example stitching matrices and relative accuracy against
  sparsity (Fig. 8).

Means over runs are drawn as lines, ± one standard deviation as bands (where there is more
than one run). Points an experiment skipped (``skipped`` column) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nncompare.plot._style import LINE_COLORS, OKABE_ITO, clean_text, new_figure, paper_style

__all__ = [
    "stitch_cka_penalty",
    "stitch_initialisation",
    "stitch_layer_sweep",
    "stitch_low_rank",
    "stitch_mode_connectivity",
    "stitch_similarity_training",
    "stitch_sparsity",
    "stitch_width_sweep",
]

GREY = "#7f7f7f"
METHOD_COLORS = {
    "ls": OKABE_ITO[0],
    "direct": OKABE_ITO[0],
    "rrr": OKABE_ITO[0],
    "lasso": OKABE_ITO[0],
    "task": OKABE_ITO[1],
    "procrustes": OKABE_ITO[2],
    "random": OKABE_ITO[3],
    "identity": GREY,
}
METHOD_LABELS = {
    "ls": "least squares",
    "procrustes": "Procrustes",
    "task": "task loss",
    "identity": "no transformation",
    "direct": "direct (least squares)",
    "random": "random init",
}
MEASURE_LABELS = {
    "cka": "CKA",
    "fit_r2": "R² of S(A) to B",
    "lr_r2": "R²_LR (refit)",
    "cca": "CCA",
    "svcca": "SVCCA",
}
_FUNCTION_OF = {
    "layer_sweep": "stitch_layer_sweep",
    "width_sweep": "stitch_width_sweep",
    "similarity_during_training": "stitch_similarity_training",
    "cka_penalised_self_stitch": "stitch_cka_penalty",
    "initialisation_study": "stitch_initialisation",
    "low_rank_study": "stitch_low_rank",
    "mode_connectivity": "stitch_mode_connectivity",
    "sparsity_study": "stitch_sparsity",
}


# --------------------------------------------------------------------------- helpers


def _check(df: Any, experiment: str, columns: Sequence[str], *, allow_empty: bool = False) -> Any:
    """The measured rows of ``df``, after checking it is the frame of ``experiment``."""
    import pandas as pd

    function = _FUNCTION_OF[experiment]
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"Expected the DataFrame returned by nc.stitching.experiments.{experiment} for "
            f"nc.plot.{function}, got {type(df).__name__}."
        )
    other = df.attrs.get("experiment")
    if other is not None and other != experiment:
        hint = f" Draw it with nc.plot.{_FUNCTION_OF[other]}." if other in _FUNCTION_OF else ""
        raise ValueError(
            f"Expected the frame of nc.stitching.experiments.{experiment} for "
            f"nc.plot.{function}, got the frame of {other!r}.{hint}"
        )
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"Expected the columns {list(columns)} of nc.stitching.experiments.{experiment} "
            f"in the frame for nc.plot.{function}; missing {missing}."
        )
    rows = df[df["skipped"].isna()] if "skipped" in df.columns else df
    if not allow_empty and rows.empty:
        raise ValueError(
            f"Expected at least one measured row to draw with nc.plot.{function}, got "
            f"{len(df)} rows, all skipped" + (f" ({_reasons(df)})." if len(df) else ".")
        )
    return rows


def _reasons(df: Any) -> str:
    return "; ".join(sorted({str(r) for r in df["skipped"].dropna()}))[:300]


def _mean_std(sub: Any, x: str, y: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x values (sorted), mean and std of y over the runs at each x, run counts."""
    clean = sub[[x, y]].dropna()
    grouped = clean.groupby(x, sort=True)[y]
    xs = np.asarray(grouped.mean().index, dtype=float)
    mean = grouped.mean().to_numpy(dtype=float)
    std = grouped.std(ddof=0).to_numpy(dtype=float)
    count = grouped.count().to_numpy()
    return xs, mean, np.nan_to_num(std), count


def _line(ax: Any, xs: Any, mean: Any, std: Any, count: Any, **kw: Any) -> None:
    ax.plot(xs, mean, marker="o", **kw)
    if len(count) and np.max(count) > 1:
        ax.fill_between(xs, mean - std, mean + std, color=kw.get("color"), alpha=0.2, lw=0)


def _figure(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot()
    return ax.figure, ax


def _layer_label(layer_a: str, layer_b: str) -> str:
    return layer_a if layer_a == layer_b else f"{layer_a}→{layer_b}"


def _title(ax: Any, title: str | None, default: str) -> None:
    ax.set_title(clean_text(title if title is not None else default), loc="left")


def _rel_axis(ax: Any) -> None:
    ax.set_ylabel("relative accuracy")
    ax.axhline(1.0, color=GREY, lw=0.6, ls=":")


def _panels(n: int, *, width: float = 2.8, height: float = 2.5) -> tuple[Any, list[Any]]:
    cols = min(n, 4)
    rows = -(-n // cols)
    fig = new_figure((width * cols + 0.6, height * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    flat = list(axes.ravel())
    for extra in flat[n:]:
        extra.set_visible(False)
    return fig, flat[:n]


# --------------------------------------------------------------------------- Fig. 2


def stitch_layer_sweep(df: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Relative accuracy (left axis, solid) and cross-entropy (right axis, dashed) per layer.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`nncompare.stitching.experiments.layer_sweep`.
    ax : matplotlib Axes, optional
        Draw here (a twin axis is added for the cross-entropy); default: a new Figure.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One line per method (mean over seeds, band ± std), the no-transformation baseline in
        grey.
    """
    cols = ["position", "layer_a", "layer_b", "method", "relative_accuracy", "cross_entropy"]
    rows = _check(df, "layer_sweep", cols)
    order = df.drop_duplicates("position").sort_values("position")
    labels = [_layer_label(a, b) for a, b in zip(order["layer_a"], order["layer_b"], strict=True)]
    with paper_style():
        fig, ax = _figure(ax, (max(4.6, 0.7 * len(labels) + 2.6), 3.2))
        ax2 = ax.twinx()
        ax2.spines["right"].set_visible(True)
        for method in dict.fromkeys(rows["method"]):
            sub = rows[rows["method"] == method]
            color = METHOD_COLORS.get(method, LINE_COLORS[-1])
            name = METHOD_LABELS.get(method, method)
            xs, mean, std, count = _mean_std(sub, "position", "relative_accuracy")
            _line(ax, xs, mean, std, count, color=color, label=name)
            xs, mean, std, count = _mean_std(sub, "position", "cross_entropy")
            ax2.plot(xs, mean, ls="--", marker=".", color=color, lw=1.0)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(
            [clean_text(s) for s in labels], rotation=45, ha="right", rotation_mode="anchor"
        )
        ax.set_xlim(-0.5, len(labels) - 0.5)
        _rel_axis(ax)
        ax.set_xlabel("stitching layer")
        ax2.set_ylabel("cross-entropy to model B (dashed)")
        ax.legend(loc="best")
        _title(ax, title, "Stitching per layer")
    return fig


# --------------------------------------------------------------------------- Fig. 3


def stitch_width_sweep(df: Any, *, title: str | None = None) -> Any:
    """Relative accuracy against the width multiplier, one panel per layer (log₂ axis).

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`nncompare.stitching.experiments.width_sweep`.
    title : str, optional
        Title of the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    cols = ["width", "position", "layer_a", "layer_b", "method", "relative_accuracy"]
    rows = _check(df, "width_sweep", cols)
    order = df.drop_duplicates("position").sort_values("position")
    with paper_style():
        fig, axes = _panels(len(order))
        for ax, (_, info) in zip(axes, order.iterrows(), strict=True):
            sub = rows[rows["position"] == info["position"]]
            for method in dict.fromkeys(sub["method"]):
                part = sub[sub["method"] == method]
                xs, mean, std, count = _mean_std(part, "width", "relative_accuracy")
                color = METHOD_COLORS.get(method, LINE_COLORS[-1])
                _line(
                    ax, xs, mean, std, count, color=color, label=METHOD_LABELS.get(method, method)
                )
            ax.set_xscale("log", base=2)
            widths = sorted(set(df["width"]))
            ax.set_xticks(widths)
            ax.set_xticklabels([f"{w:g}×" for w in widths])
            ax.minorticks_off()
            ax.set_xlabel("width multiplier")
            ax.set_title(clean_text(_layer_label(info["layer_a"], info["layer_b"])), loc="left")
            ax.axhline(1.0, color=GREY, lw=0.6, ls=":")
        axes[0].set_ylabel("relative accuracy")
        axes[0].legend(loc="lower right")
        fig.suptitle(clean_text(title if title is not None else "Stitching against width"))
    return fig


# --------------------------------------------------------------------------- Fig. 4 / 5


def _steps_panel(ax: Any, rows: Any, y: str, label: str, color: Any) -> None:
    xs, mean, std, count = _mean_std(rows, "step", y)
    _line(ax, xs, mean, std, count, color=color, label=label)


def stitch_similarity_training(df: Any, *, title: str | None = None) -> Any:
    """Similarity indices (left) and task performance (right) over task-loss training steps.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`nncompare.stitching.experiments.similarity_during_training`.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Left: each monitored measure (mean over seeds, band ± std). Right: relative
        accuracy (solid) and cross-entropy to model B (dashed, right axis).
    """
    measures = [m for m in df.attrs.get("measures", []) if m in df.columns]
    if not measures:
        measures = [m for m in MEASURE_LABELS if m in df.columns]
    rows = _check(df, "similarity_during_training", ["step", "relative_accuracy", "cross_entropy"])
    if not measures:
        raise ValueError(
            "Expected monitored measure columns (attrs['measures'], e.g. 'cka') in the frame "
            "for nc.plot.stitch_similarity_training, got none."
        )
    with paper_style():
        fig = new_figure((8.0, 3.0))
        left, right = fig.subplots(1, 2)
        for i, m in enumerate(measures):
            _steps_panel(left, rows, m, MEASURE_LABELS.get(m, m), LINE_COLORS[i % 7])
        left.set_xlabel("training step")
        left.set_ylabel("similarity")
        left.legend(loc="best")
        left.set_title("Similarity of S(A) and B", loc="left")
        _steps_panel(right, rows, "relative_accuracy", "relative accuracy", OKABE_ITO[1])
        _rel_axis(right)
        right.set_xlabel("training step")
        twin = right.twinx()
        twin.spines["right"].set_visible(True)
        xs, mean, _, _ = _mean_std(rows, "step", "cross_entropy")
        twin.plot(xs, mean, ls="--", color=OKABE_ITO[5], marker=".", lw=1.0)
        twin.set_ylabel("cross-entropy to model B (dashed)")
        right.set_title("Task performance", loc="left")
        layer = _layer_label(str(rows["layer_a"].iloc[0]), str(rows["layer_b"].iloc[0]))
        default = f"Task-loss training of the stitching layer at {layer}"
        fig.suptitle(clean_text(title if title is not None else default))
    return fig


def stitch_cka_penalty(df: Any, *, title: str | None = None) -> Any:
    """CKA (left) and relative accuracy (right) over training, one line per penalty λ.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`nncompare.stitching.experiments.cka_penalised_self_stitch`.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = _check(df, "cka_penalised_self_stitch", ["penalty", "step", "cka", "relative_accuracy"])
    with paper_style():
        fig = new_figure((8.0, 3.0))
        left, right = fig.subplots(1, 2)
        for i, (lam, sub) in enumerate(rows.groupby("penalty", sort=True)):
            color = LINE_COLORS[i % len(LINE_COLORS)]
            _steps_panel(left, sub, "cka", f"λ = {lam:g}", color)
            _steps_panel(right, sub, "relative_accuracy", f"λ = {lam:g}", color)
        left.set_ylabel("CKA of S(A) and A")
        left.set_xlabel("training step")
        left.legend(loc="lower left")
        left.set_title("CKA", loc="left")
        _rel_axis(right)
        right.set_xlabel("training step")
        right.set_title("Relative accuracy", loc="left")
        layer = str(rows["layer_a"].iloc[0])
        default = f"Self-stitching at {layer}: cross-entropy + λ·CKA"
        fig.suptitle(clean_text(title if title is not None else default))
    return fig


# --------------------------------------------------------------------------- Fig. 6 / 7


def stitch_initialisation(
    df: Any, *, ax: Any = None, bins: int = 20, title: str | None = None
) -> Any:
    """Histogram of the relative accuracies, one colour per initialisation type.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`nncompare.stitching.experiments.initialisation_study`.
    ax : matplotlib Axes, optional
    bins : int, default 20
        Shared bins over the range of all runs.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = _check(df, "initialisation_study", ["init", "relative_accuracy"])
    values = rows["relative_accuracy"].dropna().to_numpy(dtype=float)
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-3:
        lo, hi = lo - 0.01, hi + 0.01
    edges = np.linspace(lo, hi, int(bins) + 1)
    with paper_style():
        fig, ax = _figure(ax, (4.6, 3.0))
        for init in dict.fromkeys(rows["init"]):
            v = rows.loc[rows["init"] == init, "relative_accuracy"].dropna().to_numpy(float)
            color = METHOD_COLORS.get(init, LINE_COLORS[-1])
            name = {"ls": "least-squares init", "random": "random init"}.get(init, f"{init} init")
            ax.hist(v, bins=edges, color=color, alpha=0.6, label=f"{name} ({len(v)} runs)")
        ax.set_xlabel("relative accuracy")
        ax.set_ylabel("runs")
        ax.legend(loc="upper left")
        _title(ax, title, "Task-loss matching by initialisation")
    return fig


def stitch_low_rank(df: Any, *, title: str | None = None) -> Any:
    """Relative accuracy against the rank of the stitching layer, one panel per layer.

    Reduced-rank least squares (direct) and bottleneck task-loss matching; the full-rank
    references (``full_rank`` rows at the largest rank) are the horizontal dotted lines.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`nncompare.stitching.experiments.low_rank_study`.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    cols = [
        "position",
        "layer_a",
        "layer_b",
        "matching",
        "method",
        "kind",
        "rank",
        "relative_accuracy",
    ]
    rows = _check(df, "low_rank_study", cols)
    order = df.drop_duplicates("position").sort_values("position")
    with paper_style():
        fig, axes = _panels(len(order))
        for ax, (_, info) in zip(axes, order.iterrows(), strict=True):
            sub = rows[rows["position"] == info["position"]]
            is_low = (sub["method"] == "rrr") | (sub["kind"] == "lowrank")
            low, full = sub[is_low], sub[~is_low]
            for matching in ("direct", "task"):
                color = METHOD_COLORS[matching]
                part = low[low["matching"] == matching]
                if len(part):
                    xs, mean, std, count = _mean_std(part, "rank", "relative_accuracy")
                    label = "reduced-rank LS" if matching == "direct" else "bottleneck task loss"
                    _line(ax, xs, mean, std, count, color=color, label=label)
                ref = full.loc[full["matching"] == matching, "relative_accuracy"].dropna()
                if len(ref):
                    ax.axhline(float(ref.mean()), color=color, ls=":", lw=1.0)
            ranks = sorted({int(r) for r in sub["rank"].dropna()})
            if ranks:
                ax.set_xscale("log", base=2)
                ax.set_xticks(ranks)
                ax.set_xticklabels([str(r) for r in ranks])
                ax.minorticks_off()
            ax.set_xlabel("rank")
            ax.set_title(clean_text(_layer_label(info["layer_a"], info["layer_b"])), loc="left")
        axes[0].set_ylabel("relative accuracy")
        axes[0].legend(loc="lower right")
        default = "Low-rank stitching (dotted: full rank)"
        fig.suptitle(clean_text(title if title is not None else default))
    return fig


# --------------------------------------------------------------------------- Exp. 6 / Fig. 8


def stitch_mode_connectivity(df: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Relative accuracy along M_λ = λM₁ + (1-λ)M₂, one thin line per pair, mean in bold.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`nncompare.stitching.experiments.mode_connectivity`. A frame without
        pairs (fewer than two solutions kept) gives a figure saying so.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = _check(
        df, "mode_connectivity", ["pair", "lambda", "relative_accuracy"], allow_empty=True
    )
    with paper_style():
        fig, ax = _figure(ax, (4.6, 3.0))
        if rows.empty:
            solutions = df.attrs.get("solutions", [])
            kept = sum(bool(s.get("kept")) for s in solutions)
            ax.text(
                0.5,
                0.5,
                f"no pair to interpolate: {kept} of {len(solutions)} solutions kept",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        for _, sub in rows.groupby("pair", sort=True):
            sub = sub.sort_values("lambda")
            ax.plot(sub["lambda"], sub["relative_accuracy"], color=OKABE_ITO[4], lw=0.8, alpha=0.7)
        if not rows.empty:
            xs, mean, std, count = _mean_std(rows, "lambda", "relative_accuracy")
            _line(ax, xs, mean, std, count, color=OKABE_ITO[1], label="mean over pairs")
            ax.legend(loc="lower left")
        ax.set_xlabel("λ  (M_λ = λ·M₁ + (1 − λ)·M₂)")
        _rel_axis(ax)
        ax.set_xlim(0, 1)
        _title(ax, title, "Mode connectivity of stitching matrices")
    return fig


def stitch_sparsity(df: Any, *, n_examples: int = 3, title: str | None = None) -> Any:
    """Example stitching matrices (top) and relative accuracy against sparsity (bottom).

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`nncompare.stitching.experiments.sparsity_study` (matrices in
        ``attrs["matrices"]``).
    n_examples : int, default 3
        Matrices shown per matching type (spread over its sparsities); 0 shows none.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = _check(df, "sparsity_study", ["matching", "penalty", "sparsity", "relative_accuracy"])
    matrices = list(df.attrs.get("matrices") or [])
    examples: list[dict[str, Any]] = []
    for matching in ("direct", "task"):
        mine = sorted(
            (m for m in matrices if m.get("matching") == matching), key=lambda m: m["sparsity"]
        )
        if mine and n_examples > 0:
            picks = np.unique(np.linspace(0, len(mine) - 1, min(n_examples, len(mine))).round())
            examples += [mine[int(i)] for i in picks]
    with paper_style():
        import matplotlib as mpl

        n = len(examples)
        fig = new_figure((max(5.0, 1.5 * n + 0.8), 5.2 if n else 3.2))
        if n:
            grid = fig.add_gridspec(2, n, height_ratios=(1.0, 1.6))
            top = [fig.add_subplot(grid[0, i]) for i in range(n)]
            curve = fig.add_subplot(grid[1, :])
            vmax = max(float(np.max(np.abs(np.asarray(e["matrix"])))) for e in examples) or 1.0
            norm = mpl.colors.TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
            for ax, e in zip(top, examples, strict=True):
                M = np.asarray(e["matrix"], dtype=float)
                im = ax.imshow(M, cmap="RdBu_r", norm=norm, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                kind = "lasso" if e["matching"] == "direct" else "L1 task"
                ax.set_title(
                    f"{kind} {e['penalty']:g}\n{e['sparsity']:.0%} sparse", fontsize=7, loc="left"
                )
            cbar = fig.colorbar(im, ax=top, fraction=0.05, pad=0.02, shrink=0.9)
            cbar.outline.set_visible(False)
        else:
            curve = fig.add_subplot()
        for matching in ("direct", "task"):
            sub = rows[rows["matching"] == matching].sort_values("sparsity")
            if sub.empty:
                continue
            label = "lasso (direct)" if matching == "direct" else "L1 task loss"
            curve.plot(
                sub["sparsity"],
                sub["relative_accuracy"],
                marker="o",
                color=METHOD_COLORS[matching],
                label=label,
            )
        curve.set_xlabel("sparsity (share of zero entries)")
        _rel_axis(curve)
        curve.set_xlim(-0.02, 1.02)
        curve.legend(loc="lower left")
        threshold = rows["threshold"].iloc[0] if "threshold" in rows.columns else None
        default = "Sparse stitching matrices" + (
            f" (|m| < {threshold:g} set to 0)" if threshold is not None else ""
        )
        fig.suptitle(clean_text(title if title is not None else default))
    return fig
