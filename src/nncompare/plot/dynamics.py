"""Figures of the SVCCA paper's analyses (Raghu et al. 2017, §4.1 and §4.3).

Each function returns a pyplot-free :class:`matplotlib.figure.Figure`; single-panel figures
draw into ``ax`` when one is given:

* :func:`dynamics_grid` — the row of layers × layers panels over training, each checkpoint
  against the final network (Fig. 4) (frame of :func:`nncompare.analyses.learning_dynamics`).
* :func:`convergence_curves` — each layer against itself in the final network over
  training, with the threshold of :func:`nncompare.analyses.convergence_steps`.
* :func:`class_sensitivity_curves` — per class, the similarity of each layer with the
  class's logit (Fig. 6) (frame of :func:`nncompare.analyses.class_sensitivity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nncompare.plot._style import clean_text, new_figure, paper_style, shorten

__all__ = ["class_sensitivity_curves", "convergence_curves", "dynamics_grid"]

MAX_PANELS = 6


def _check(df: Any, columns: Sequence[str], function: str, source: str) -> None:
    have = set(getattr(df, "columns", ()))
    missing = [c for c in columns if c not in have]
    if missing:
        raise ValueError(
            f"{function} expects the frame of {source} (columns {', '.join(columns)}); it "
            f"lacks {', '.join(missing)}."
        )


def _measure(df: Any, measure: str | None) -> str:
    from nncompare.analyses.dynamics import _pick_measure

    return _pick_measure(df, measure)


def _figure(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot()
    return ax.figure, ax


def _spread(items: list[Any], k: int) -> list[Any]:
    """At most ``k`` items, evenly spaced, first and last included."""
    if len(items) <= k:
        return list(items)
    idx = np.unique(np.round(np.linspace(0, len(items) - 1, k)).astype(int))
    return [items[i] for i in idx]


def dynamics_grid(
    df: Any,
    *,
    measure: str | None = None,
    checkpoints: Sequence[str] | None = None,
    max_panels: int = MAX_PANELS,
    title: str | None = None,
) -> Any:
    """The row of layers × layers panels over training (Raghu et al. 2017, Fig. 4).

    Panel t: rows are the layers at checkpoint t, columns the layers of the final network;
    the colour is the similarity (0 to 1). A diagonal that fills in from the top-left
    corner is bottom-up convergence.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame of :func:`nncompare.analyses.learning_dynamics`.
    measure : str, optional
        Default: the only measure, else ``"svcca"``.
    checkpoints : list of str, optional
        Which checkpoints to draw (default: at most ``max_panels``, evenly spaced, first
        and last included).
    max_panels : int
    title : str, optional
    """
    _check(df, ("checkpoint", "layer_a", "layer_b", "measure", "value"), "dynamics_grid",
           "nc.analyses.learning_dynamics")  # fmt: skip
    measure = _measure(df, measure)
    sub = df[df["measure"] == measure]
    all_cks = list(df.attrs.get("checkpoints") or dict.fromkeys(sub["checkpoint"]))
    cks = list(checkpoints) if checkpoints is not None else _spread(all_cks, max_panels)
    unknown = [c for c in cks if c not in set(sub["checkpoint"])]
    if unknown:
        raise ValueError(
            f"checkpoints {unknown} are not in the frame; it holds {', '.join(all_cks)}."
        )
    layers_a = list(dict.fromkeys(sub["layer_a"]))
    layers_b = list(dict.fromkeys(sub["layer_b"]))
    step_of = dict(zip(sub["checkpoint"], sub["step"], strict=False)) if "step" in sub else {}
    n = len(cks)
    side = max(1.6, min(3.2, 0.28 * len(layers_a) + 0.8))
    with paper_style():
        fig = new_figure((side * n + 0.9, side + 0.7))
        axes = fig.subplots(1, n, squeeze=False)[0]
        image = None
        for ax, ck in zip(axes, cks, strict=True):
            piece = sub[sub["checkpoint"] == ck].pivot_table(
                index="layer_a", columns="layer_b", values="value", aggfunc="first"
            )
            grid = piece.reindex(index=layers_a, columns=layers_b).to_numpy(dtype=float)
            image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", origin="upper")
            step = step_of.get(ck)
            ax.set_title(clean_text(f"{ck}" + (f" (step {step})" if step is not None else "")),
                         fontsize=8)  # fmt: skip
            ax.set_xticks(range(len(layers_b)))
            ax.set_xticklabels([clean_text(shorten(x, 10)) for x in layers_b], rotation=90,
                               fontsize=6)  # fmt: skip
            ax.set_yticks(range(len(layers_a)))
            if ax is axes[0]:
                ax.set_yticklabels([clean_text(shorten(x, 12)) for x in layers_a], fontsize=6)
                ax.set_ylabel("layer at checkpoint")
            else:
                ax.set_yticklabels([])
        axes[n // 2].set_xlabel("layer of the final network")
        if image is not None:
            fig.colorbar(image, ax=list(axes), shrink=0.8, label=measure)
        if title is None:
            title = f"Learning dynamics ({measure}): each checkpoint against the final network"
        if title:
            fig.suptitle(clean_text(title), fontsize=9)
    return fig


def convergence_curves(
    df: Any,
    *,
    measure: str | None = None,
    threshold: float | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Each layer against itself in the final network over training (one line per layer,
    darker = lower layer), with an optional dashed ``threshold``.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame of :func:`nncompare.analyses.learning_dynamics`.
    measure : str, optional
    threshold : float, optional
        Drawn as a horizontal line (the threshold of
        :func:`nncompare.analyses.convergence_steps`).
    ax : matplotlib Axes, optional
    title : str, optional
    """
    _check(df, ("checkpoint", "step", "layer_a", "layer_b", "measure", "value"),
           "convergence_curves", "nc.analyses.learning_dynamics")  # fmt: skip
    import matplotlib as mpl

    measure = _measure(df, measure)
    diag = df[(df["measure"] == measure) & (df["layer_a"] == df["layer_b"])]
    layers = list(df.attrs.get("layers") or dict.fromkeys(diag["layer_a"]))
    layers = [lay for lay in layers if lay in set(diag["layer_a"])]
    cmap = mpl.colormaps["viridis"]
    with paper_style():
        fig, ax = _figure(ax, (5.2, 3.4))
        for i, layer in enumerate(layers):
            line = diag[diag["layer_a"] == layer].sort_values("step")
            colour = cmap(i / max(1, len(layers) - 1) * 0.9)
            ax.plot(line["step"], line["value"], marker="o", ms=2.5, color=colour,
                    label=clean_text(shorten(layer, 16)))  # fmt: skip
        if threshold is not None:
            ax.axhline(float(threshold), ls="--", lw=1, color="0.4")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"{measure} with itself at the end")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, ncol=2 if len(layers) > 8 else 1, loc="lower right")
        if title is None:
            title = "Convergence per layer (dark: lower layers)"
        if title:
            ax.set_title(clean_text(title), loc="left")
    return fig


def class_sensitivity_curves(df: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Per class, the similarity of each layer with the class's logit (Raghu et al. 2017,
    Fig. 6): x = layers in forward order, one line per class.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame of :func:`nncompare.analyses.class_sensitivity`.
    ax : matplotlib Axes, optional
    title : str, optional
    """
    _check(df, ("layer", "class", "value"), "class_sensitivity_curves",
           "nc.analyses.class_sensitivity")  # fmt: skip
    layers = list(df.attrs.get("layers") or dict.fromkeys(df["layer"]))
    classes = list(dict.fromkeys(df["class"]))
    with paper_style():
        fig, ax = _figure(ax, (max(4.5, 0.38 * len(layers) + 2.0), 3.4))
        x = np.arange(len(layers))
        for cls in classes:
            sub = df[df["class"] == cls].set_index("layer").reindex(layers)
            ax.plot(x, sub["value"].to_numpy(dtype=float), marker="o", ms=3,
                    label=clean_text(cls))  # fmt: skip
        ax.set_xticks(x)
        ax.set_xticklabels([clean_text(shorten(lay, 12)) for lay in layers], rotation=90,
                           fontsize=7)  # fmt: skip
        measure = str(df["measure"].iloc[0]) if "measure" in df and len(df) else "similarity"
        ax.set_ylabel(f"{measure} with the class logit")
        ax.legend(fontsize=7)
        if title is None:
            title = "Class sensitivity per layer"
        if title:
            ax.set_title(clean_text(title), loc="left")
    return fig
