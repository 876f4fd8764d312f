"""Figures of the population analyses (:mod:`nncompare.analyses.populations`).

Each function returns a pyplot-free :class:`matplotlib.figure.Figure`; single-panel figures
draw into ``ax`` when one is given:

* :func:`converging_coefficients` - sorted canonical correlations of each checkpoint
  against the final one (Fig. 1a-c).
* :func:`direction_stability` - the stable (top-k) and unstable (bottom-k) CCA directions
  through training (Fig. 1d-f).
* :func:`group_distances` - pairwise distance per layer within and between groups, mean ±
  std (Fig. 3).
* :func:`width_trend` - within-group distance against width, and pairwise distance against
  test accuracy (Fig. 4).

The clustered distance matrix of Fig. 5 is :func:`nncompare.plot.many.many_heatmap`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nncompare.plot._style import OKABE_ITO, clean_text, new_figure, shorten

__all__ = [
    "converging_coefficients",
    "direction_stability",
    "group_distances",
    "width_trend",
]


def _figure(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot()
    return ax.figure, ax


def _need(frame: Any, columns: Sequence[str], what: str) -> None:
    have = set(getattr(frame, "columns", ()))
    missing = [c for c in columns if c not in have]
    if missing:
        raise ValueError(
            f"{what} needs a frame with the columns {list(columns)}; missing {missing}. Pass "
            f"the frame of nncompare.analyses.populations.{what}."
        )


def converging_coefficients(frame: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Sorted canonical correlations of every checkpoint against the final one."""
    import matplotlib as mpl

    _need(frame, ["checkpoint", "order", "index", "rho"], "converging_coefficients")
    fig, ax = _figure(ax, (4.2, 3.2))
    orders = sorted(set(frame["order"]))
    cmap = mpl.colormaps["viridis"]
    for i, (name, sub) in enumerate(frame.groupby("checkpoint", sort=False)):
        c = cmap(orders.index(int(sub["order"].iloc[0])) / max(1, len(orders) - 1))
        label = clean_text(name) if i in (0, len(orders) - 1) or len(orders) <= 6 else None
        ax.plot(sub["index"], sub["rho"], color=c, label=label)
    ax.set_xlabel("CCA coefficient (sorted)")
    ax.set_ylabel("canonical correlation ρ")
    ax.set_ylim(0, 1.02)
    ax.legend(title="checkpoint", fontsize=7)
    layer = frame.attrs.get("layer", "")
    ax.set_title(clean_text(title or f"{layer} vs final ({frame.attrs.get('final', '')})"),
                 loc="left")  # fmt: skip
    return fig


def direction_stability(frame: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Mean CCA of the stable and unstable directions with the layer through training."""
    _need(frame, ["checkpoint", "order", "part", "value"], "direction_stability")
    fig, ax = _figure(ax, (4.2, 3.2))
    colors = {"stable": OKABE_ITO[2], "unstable": OKABE_ITO[5]}
    ticks: dict[int, str] = {}
    for part, sub in frame.groupby("part", sort=False):
        sub = sub.sort_values("order")
        k = int(sub["k"].iloc[0]) if "k" in sub else 0
        ax.plot(sub["order"], sub["value"], marker="o", color=colors.get(str(part)),
                label=f"{part} (k={k})")  # fmt: skip
        ticks.update(zip(sub["order"].astype(int), sub["checkpoint"].astype(str), strict=True))
    step = max(1, len(ticks) // 8)
    keys = sorted(ticks)[::step]
    ax.set_xticks(keys, [shorten(ticks[k], 10) for k in keys], rotation=45, fontsize=7)
    ax.set_xlabel("checkpoint")
    ax.set_ylabel("mean CCA with the layer")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    a = frame.attrs
    ax.set_title(clean_text(title or f"{a.get('layer', '')}: directions {a.get('early', '')} "
                            f"vs {a.get('middle', '')}"), loc="left")  # fmt: skip
    return fig


def group_distances(
    summary: Any,
    *,
    measure: str | None = None,
    ax: Any = None,
    title: str | None = None,
    ylabel: str = "distance",
) -> Any:
    """Per layer, the mean ± std pairwise distance of every comparison of a group summary."""
    _need(summary, ["layer", "measure", "comparison", "mean", "std"], "group_summary")
    measures = list(dict.fromkeys(summary["measure"]))
    if measure is None:
        if len(measures) != 1:
            raise ValueError(f"the summary has several measures {measures}; pass measure=.")
        measure = measures[0]
    elif measure not in measures:
        raise ValueError(f"measure={measure!r} is not in the summary; it has {measures}.")
    sub = summary[summary["measure"] == measure]
    layers = list(dict.fromkeys(sub["layer"]))
    fig, ax = _figure(ax, (4.6, 3.2))
    comps = list(dict.fromkeys(sub["comparison"]))
    width = 0.8 / max(1, len(comps))
    for i, comp in enumerate(comps):
        c = sub[sub["comparison"] == comp].set_index("layer").reindex(layers)
        x = np.arange(len(layers)) + (i - (len(comps) - 1) / 2) * width
        ax.errorbar(x, c["mean"], yerr=c["std"], marker="o", capsize=2, lw=1.2,
                    color=OKABE_ITO[i % len(OKABE_ITO)], label=clean_text(comp))  # fmt: skip
    ax.set_xticks(range(len(layers)), [shorten(la, 12) for la in layers], fontsize=8)
    ax.set_xlabel("layer")
    ax.set_ylabel(f"{measure} {ylabel}")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title(clean_text(title or f"pairwise {measure} {ylabel}"), loc="left")
    return fig


def width_trend(
    summary: Any,
    pairs: Any,
    accuracy: Mapping[str, float],
    groups: Mapping[str, Any],
    *,
    title: str | None = None,
) -> Any:
    """Two panels: within-group distance against width (a), distance against accuracy (b).

    ``summary`` is :func:`~nncompare.analyses.populations.group_summary` of ``pairs`` with
    the widths as groups; ``pairs`` the frame of
    :func:`~nncompare.analyses.populations.subset_distances`.
    """
    _need(summary, ["comparison", "kind", "mean", "std"], "group_summary")
    _need(pairs, ["model_a", "model_b", "distance"], "subset_distances")
    fig = new_figure((8.0, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    within = summary[summary["kind"] == "within"]
    widths = [float(c) for c in within["comparison"]]
    ax1.errorbar(widths, within["mean"], yerr=within["std"], marker="o", capsize=2)
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("width (group)")
    ax1.set_ylabel("within-group distance")
    ax1.set_title("(a) distance vs width", loc="left")
    g = {str(k): v for k, v in groups.items()}
    labels = list(dict.fromkeys(g[a] for a in pairs["model_a"]))
    for i, lab in enumerate(labels):
        sel = pairs["model_a"].map(g) == lab
        sub = pairs[sel]
        acc = [(accuracy[a] + accuracy[b]) / 2 for a, b in zip(sub["model_a"], sub["model_b"],
                                                            strict=True)]  # fmt: skip
        ax2.scatter(sub["distance"], acc, s=14, color=OKABE_ITO[i % len(OKABE_ITO)],
                    label=clean_text(lab))  # fmt: skip
    ax2.set_xlabel("pairwise distance")
    ax2.set_ylabel("mean test accuracy of the pair")
    ax2.legend(title="width", fontsize=7)
    ax2.set_title("(b) accuracy vs distance", loc="left")
    if title:
        fig.suptitle(clean_text(title))
    return fig
