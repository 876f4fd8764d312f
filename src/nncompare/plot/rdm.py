"""Figure of a representational dissimilarity matrix (the RDM of :func:`nncompare.rdm`).

Drawn like the other nncompare figures: pyplot-free, house style, colour-blind-safe map,
into ``ax`` when one is given (else into a new Figure), and the Figure is returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nncompare.plot._style import NAN_FACE, clean_text, new_figure, paper_style, shorten

__all__ = ["plot_rdm"]

MAX_TICKS = 40  # beyond this, only every k-th sample label is drawn


def _as_square(rdm: Any) -> np.ndarray:
    from nncompare._array import is_torch, to_numpy

    if is_torch(rdm) or hasattr(rdm, "__array__"):
        a = np.asarray(to_numpy(rdm) if is_torch(rdm) else rdm)
    else:
        try:
            a = np.asarray(rdm)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise TypeError(
                f"rdm must be an (n, n) array such as nc.rdm(X); got {type(rdm).__name__}."
            ) from exc
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2:
        raise ValueError(
            "rdm must be a square (n, n) dissimilarity matrix with n >= 2, such as nc.rdm(X); "
            f"got shape {tuple(a.shape)}."
        )
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"rdm must hold real numbers; got dtype {a.dtype}.")
    a = a.astype(np.float64)
    if np.isinf(a).any():
        raise ValueError(
            "rdm contains infinite values; a dissimilarity matrix needs finite entries "
            "(NaN entries are drawn as undefined)."
        )
    return a


def _ticks(ax: Any, labels: Sequence[Any], max_len: int) -> None:
    n = len(labels)
    step = max(1, math.ceil(n / MAX_TICKS))
    pos = list(range(0, n, step))
    text = [clean_text(shorten(labels[i], max_len)) for i in pos]
    size = 8 if n <= 20 else (7 if n <= 30 else 6)
    ax.set_xticks(pos)
    ax.set_xticklabels(text, rotation=45, ha="right", rotation_mode="anchor", fontsize=size)
    ax.set_yticks(pos)
    ax.set_yticklabels(text, fontsize=size)


def plot_rdm(
    rdm: Any,
    *,
    ax: Any = None,
    labels: Sequence[Any] | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    colorbar_label: str = "dissimilarity",
    max_label_len: int = 20,
) -> Any:
    """Draw a representational dissimilarity matrix as a heatmap (samples × samples).

    Parameters
    ----------
    rdm : array (n, n)
        Dissimilarities, e.g. ``nc.rdm(X)`` (numpy array or torch tensor).
    ax : matplotlib Axes, optional
        Draw here (a colorbar is added next to it); default: a new Figure.
    labels : sequence of n names, optional
        Sample (or condition) names for the ticks; default: no tick labels beyond indices.
        Long names are shortened in the middle with "…"; beyond 40 samples only every k-th
        label is drawn.
    cmap : str
        A perceptually uniform, colour-blind-safe map ("viridis", "cividis", ...).
    vmin, vmax : float, optional
        Colour limits; default: 0 (or the smallest entry when negative) to the largest.
    title : str, optional
        Default: "RDM (n samples)".
    colorbar_label : str
        Label of the colour scale.
    max_label_len : int
        Longest tick label, in characters.

    Returns
    -------
    matplotlib.figure.Figure
        NaN entries are drawn grey.

    Examples
    --------
    >>> import numpy as np, nncompare as nc
    >>> fig = nc.plot.plot_rdm(nc.rdm(np.random.default_rng(0).normal(size=(6, 4))))
    >>> fig.savefig("rdm.png")  # doctest: +SKIP
    """
    R = _as_square(rdm)
    n = R.shape[0]
    if labels is not None:
        labels = list(labels)
        if len(labels) != n:
            raise ValueError(
                f"labels must name each of the {n} samples of the RDM; got {len(labels)} labels."
            )
    finite = R[np.isfinite(R)]
    lo = vmin if vmin is not None else (min(0.0, float(finite.min())) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if not hi > lo:
        hi = lo + 1.0
    with paper_style():
        import matplotlib as mpl

        if ax is None:
            side = min(7.0, max(3.4, 1.6 + 0.22 * n)) if labels is not None else 4.2
            fig = new_figure((side + 0.9, side))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        cm = mpl.colormaps[cmap].with_extremes(bad=NAN_FACE)
        norm = mpl.colors.Normalize(vmin=lo, vmax=hi)
        im = ax.imshow(
            np.ma.masked_invalid(R), cmap=cm, norm=norm, aspect="equal", interpolation="nearest"
        )
        if labels is not None:
            _ticks(ax, labels, max_label_len)
            ax.tick_params(length=2)
        else:
            ax.set_xlabel("sample")
            ax.set_ylabel("sample")
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(clean_text(title if title is not None else f"RDM ({n} samples)"), loc="left")
        cbar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, shrink=0.9)
        cbar.set_label(clean_text(colorbar_label))
        cbar.outline.set_visible(False)
    return fig
