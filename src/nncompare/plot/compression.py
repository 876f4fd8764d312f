"""Figures of the SVCCA paper's compression and Freeze Training (Raghu et al. 2017, §4.2, §4.4).

Each function returns a pyplot-free :class:`matplotlib.figure.Figure`; they draw into
``ax`` when one is given:

* :func:`compression_curves` — accuracy against the kept fraction ``k / n`` (the
  ``kept_fraction`` column where present) for every
  (layer, reference) of a :func:`nncompare.analyses.compression_sweep` frame, with the
  uncompressed accuracy as a grey line (Figs. 2a, App. 5).
* :func:`freeze_curves` — test accuracy against training step, normal and Freeze
  Training, mean over seeds with a band of one standard deviation, and the steps at
  which another stage froze as grey dotted lines (Fig. 5).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nncompare.plot._style import LINE_COLORS, clean_text, new_figure, paper_style

__all__ = ["compression_curves", "freeze_curves"]

_DASHES = {"logits": "-", "model": "--", "random": ":"}


def _figure(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot()
    return ax.figure, ax


def _need(frame: Any, columns: set[str], what: str) -> None:
    missing = columns - set(getattr(frame, "columns", ()))
    if missing:
        raise ValueError(
            f"{what} expects a frame with columns {sorted(columns)}; missing "
            f"{sorted(missing)}. Pass the frame returned by "
            + (
                "nc.analyses.compression_sweep."
                if what == "compression_curves"
                else "nc.training.freeze_experiment (its history)."
            )
        )


def compression_curves(
    frame: Any, *, ax: Any = None, title: str | None = None, mode: str | None = None
) -> Any:
    """Accuracy against kept fraction, one line per (layer, reference).

    Parameters
    ----------
    frame : pandas.DataFrame
        From :func:`nncompare.analyses.compression_sweep`.
    ax : matplotlib Axes, optional
        Draw here instead of a new figure.
    title : str, optional
        Panel title.
    mode : {"single", "consecutive"}, optional
        Only these rows (default: all).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _need(frame, {"layer", "reference", "fraction", "accuracy", "mode"}, "compression_curves")
    rows = frame if mode is None else frame[frame["mode"] == mode]
    if len(rows) == 0:
        raise ValueError(
            f"no rows with mode={mode!r} in the frame; modes: {sorted(set(frame['mode']))}."
        )
    with paper_style():
        fig, ax = _figure(ax, (5.2, 3.4))
        layers = list(dict.fromkeys(rows["layer"]))
        for i, layer in enumerate(layers):
            color = LINE_COLORS[i % len(LINE_COLORS)]
            for ref in dict.fromkeys(rows["reference"]):
                part = rows[(rows["layer"] == layer) & (rows["reference"] == ref)]
                if len(part) == 0:
                    continue
                x = "kept_fraction" if "kept_fraction" in part else "fraction"
                part = part.sort_values(x)
                ax.plot(
                    part[x],
                    part["accuracy"],
                    _DASHES.get(ref, "-."),
                    marker="o",
                    ms=3,
                    color=color,
                    label=clean_text(f"{layer} ({ref})"),
                )
        if "original_accuracy" in rows:
            ax.axhline(float(np.nanmean(rows["original_accuracy"])), color="0.6", lw=1)
        ax.set_xlabel("kept fraction k / n")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1.02)
        ax.legend(fontsize=7, frameon=False)
        ax.set_title(
            clean_text(title if title is not None else "Compression by SVCCA projection"),
            loc="left",
        )
    return fig


def freeze_curves(
    history: Any, *, ax: Any = None, title: str | None = None, freeze_steps: Any = None
) -> Any:
    """Test accuracy over training, normal against Freeze Training (mean +- std over seeds).

    Parameters
    ----------
    history : pandas.DataFrame
        The per-epoch frame of :func:`nncompare.training.freeze_experiment` (one model).
    ax : matplotlib Axes, optional
        Draw here instead of a new figure.
    title : str, optional
        Panel title (default: the model's name).
    freeze_steps : sequence of int, optional
        Steps at which a stage froze (grey dotted lines), e.g.
        ``result.info["freeze"]["freeze_steps"]``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _need(history, {"mode", "seed", "step", "eval_accuracy"}, "freeze_curves")
    with paper_style():
        fig, ax = _figure(ax, (5.2, 3.4))
        for i, mode in enumerate(("normal", "freeze")):
            part = history[history["mode"] == mode]
            if len(part) == 0:
                continue
            g = part.groupby("step")["eval_accuracy"]
            mean, std = g.mean(), g.std().fillna(0.0)
            color = LINE_COLORS[i % len(LINE_COLORS)]
            ax.plot(mean.index, mean.to_numpy(), color=color, label=mode)
            ax.fill_between(
                mean.index, (mean - std).to_numpy(), (mean + std).to_numpy(), color=color, alpha=0.2
            )
        for s in freeze_steps or ():
            ax.axvline(s, color="0.6", ls=":", lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=8, frameon=False)
        name = str(history["model"].iloc[0]) if "model" in history and len(history) else ""
        ax.set_title(
            clean_text(title if title is not None else f"Freeze Training {name}"), loc="left"
        )
    return fig
