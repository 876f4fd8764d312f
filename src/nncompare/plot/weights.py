"""Figures of the weight lens (Guth & Ménard, Figs. 1, 3 and 4).

Each function takes what :mod:`nncompare.weights` returned and gives a pyplot-free
:class:`matplotlib.figure.Figure`:

* :func:`weights_eigenfilters` — layers × rank grid of spatial eigenfilter images (Fig. 1),
  near-degenerate ranks (possibly swapped) marked.
* :func:`weights_overlap` — top-``rank`` eigen-subspace overlaps between the layers of one
  or two networks, with the chance level rank / k².
* :func:`weights_spectra` — eigenvalue spectra (shrunk, eq. 3) with the effective rank
  r_eff (eq. 4) marked.
* :func:`weights_eigenvector_similarity` — |cos| between leading covariance eigenvectors,
  one panel per layer, coloured white at the chance level 1/√d and black at 5× chance, with
  r_eff arrows on both rank axes (Fig. 3).
* :func:`weights_similarity_by_depth` — the normalised similarity S (eq. 6) against depth,
  one curve per pair of networks (Fig. 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nncompare.plot._style import LINE_COLORS, clean_text, new_figure, paper_style, shorten
from nncompare.weights import (
    EigenvectorSimilarity,
    SpatialEigenfilters,
    effective_rank,
    subspace_overlap,
)

__all__ = [
    "weights_eigenfilters",
    "weights_eigenvector_similarity",
    "weights_overlap",
    "weights_similarity_by_depth",
    "weights_spectra",
]

DEGENERATE_COLOR = "#D55E00"


def _filters(eigenfilters: Any, function: str) -> dict[str, SpatialEigenfilters]:
    if isinstance(eigenfilters, SpatialEigenfilters):
        return {eigenfilters.layer: eigenfilters}
    if not isinstance(eigenfilters, Mapping) or not eigenfilters:
        raise TypeError(
            f"nc.plot.{function} expects the mapping returned by "
            f"nc.weights.spatial_eigenfilters(model) (layer -> SpatialEigenfilters); got "
            f"{type(eigenfilters).__name__}"
            f"{' (empty)' if isinstance(eigenfilters, Mapping) else ''}."
        )
    bad = [k for k, v in eigenfilters.items() if not isinstance(v, SpatialEigenfilters)]
    if bad:
        raise TypeError(
            f"nc.plot.{function} expects SpatialEigenfilters values (from "
            f"nc.weights.spatial_eigenfilters); the entries {bad[:4]} are not."
        )
    return dict(eigenfilters)


def weights_eigenfilters(
    eigenfilters: Mapping[str, SpatialEigenfilters],
    *,
    n_ranks: int = 9,
    max_label_len: int = 18,
    title: str | None = "Spatial eigenfilters",
) -> Any:
    """Layers × rank grid of spatial eigenfilter images (Guth & Ménard, Fig. 1).

    Parameters
    ----------
    eigenfilters : mapping of str to SpatialEigenfilters
        From :func:`nncompare.weights.spatial_eigenfilters`; one row per entry, in order.
        Layers of different kernel sizes may be mixed.
    n_ranks : int, default 9
        Leading ranks shown (fewer where a layer has fewer than ``n_ranks`` = k²).
    max_label_len : int, default 18
        Row labels are shortened to this length.
    title : str or None

    Returns
    -------
    matplotlib.figure.Figure
        Each image uses a symmetric grey scale (white positive, black negative, mid-grey 0);
        a rank flagged ``near_degenerate`` (its order may swap with a neighbour's, the paper's
        "flipped order") is framed in orange. Column titles give the rank and each row's
        first panel the share of the total second moment.
    """
    ef = _filters(eigenfilters, "weights_eigenfilters")
    if not isinstance(n_ranks, int) or n_ranks < 1:
        raise ValueError(f"n_ranks must be a positive int; got {n_ranks!r}.")
    cols = min(n_ranks, max(e.eigenvectors.shape[0] for e in ef.values()))
    rows = len(ef)
    with paper_style():
        fig = new_figure((0.75 * cols + 1.4, 0.75 * rows + 0.6))
        axes = fig.subplots(rows, cols, squeeze=False)
        for i, (name, e) in enumerate(ef.items()):
            for j in range(cols):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j >= e.eigenvectors.shape[0]:
                    ax.set_axis_off()
                    continue
                img = e.eigenvectors[j]
                m = float(np.abs(img).max()) or 1.0
                ax.imshow(img, cmap="gray", vmin=-m, vmax=m, interpolation="nearest")
                edge = DEGENERATE_COLOR if e.near_degenerate[j] else "#8c8c8c"
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color(edge)
                    spine.set_linewidth(1.6 if e.near_degenerate[j] else 0.5)
                if i == 0:
                    ax.set_title(f"{j + 1}", fontsize=8, fontweight="normal")
            axes[i, 0].set_ylabel(
                clean_text(shorten(name, max_label_len)), rotation=0, ha="right", va="center",
                fontsize=7,
            )  # fmt: skip
        if title:
            fig.suptitle(clean_text(title) + " (rank →; orange: near-degenerate)", fontsize=9)
    return fig


def _overlap_matrix(a: dict[str, Any], b: dict[str, Any], rank: int) -> np.ndarray:
    M = np.full((len(a), len(b)), np.nan)
    for i, ea in enumerate(a.values()):
        for j, eb in enumerate(b.values()):
            if ea.kernel_size == eb.kernel_size and rank <= ea.eigenvectors.shape[0]:
                M[i, j] = subspace_overlap(ea, eb, rank)
    return M


def weights_overlap(
    eigenfilters_a: Mapping[str, SpatialEigenfilters],
    eigenfilters_b: Mapping[str, SpatialEigenfilters] | None = None,
    *,
    rank: int = 3,
    labels: tuple[str, str] = ("network A", "network B"),
    max_label_len: int = 18,
) -> Any:
    """Overlap of the top-``rank`` spatial eigen-subspaces between layers.

    ``‖U_iᵀ U_j‖_F² / rank`` (:func:`nncompare.weights.subspace_overlap`) for every pair of
    layers of one network (``eigenfilters_b=None``) or of two; 1 = same subspace, the chance
    level rank / k² is the colour bar's marked tick. Pairs of different kernel sizes are
    left blank (no overlap is defined between R^{k²} of different k).
    """
    a = _filters(eigenfilters_a, "weights_overlap")
    b = a if eigenfilters_b is None else _filters(eigenfilters_b, "weights_overlap")
    M = _overlap_matrix(a, b, rank)
    ks = {e.kernel_size for e in (*a.values(), *b.values())}
    chance = [rank / k**2 for k in sorted(ks)]
    with paper_style():
        n, m = M.shape
        fig = new_figure((min(2.2 + 0.22 * m, 11), min(1.8 + 0.2 * n, 11)))
        ax = fig.add_subplot()
        im = ax.imshow(np.ma.masked_invalid(M), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        cb.set_label(f"top-{rank} subspace overlap")
        for c in chance:
            cb.ax.axhline(c, color="white", linewidth=1.2)
        step_a, step_b = max(1, n // 20), max(1, m // 20)
        ax.set_yticks(range(0, n, step_a))
        ax.set_yticklabels([clean_text(shorten(k, max_label_len)) for k in list(a)[::step_a]])
        ax.set_xticks(range(0, m, step_b))
        ax.set_xticklabels(
            [clean_text(shorten(k, max_label_len)) for k in list(b)[::step_b]], rotation=90
        )
        ax.set_ylabel(clean_text(labels[0]))
        ax.set_xlabel(clean_text(labels[1] if eigenfilters_b is not None else labels[0]))
        ax.set_title(f"Spatial eigen-subspaces (chance {', '.join(f'{c:.2f}' for c in chance)})")
    return fig


def weights_spectra(
    spectra: Mapping[str, Any],
    *,
    n_ranks: int | None = 50,
    title: str | None = "Weight covariance spectra",
) -> Any:
    """Eigenvalue spectra against rank with the effective rank r_eff (eq. 4) marked.

    Parameters
    ----------
    spectra : mapping of str to 1-d array
        Label -> (shrunk, eq. 3) eigenvalues, e.g. ``{"A conv3": np.linalg.eigvalsh(
        covs["conv3"].shrunk_a)}``; sorted here in descending order.
    n_ranks : int or None, default 50
        Ranks drawn (None: all).
    """
    if not isinstance(spectra, Mapping) or not spectra:
        raise TypeError(
            "nc.plot.weights_spectra expects a non-empty mapping label -> eigenvalues; got "
            f"{type(spectra).__name__}."
        )
    with paper_style():
        fig = new_figure((4.6, 3.0))
        ax = fig.add_subplot()
        for i, (name, lam) in enumerate(spectra.items()):
            lam = np.sort(np.asarray(lam, dtype=float).ravel())[::-1]
            r = effective_rank(np.clip(lam, 0, None))
            shown = lam if n_ranks is None else lam[:n_ranks]
            color = LINE_COLORS[i % len(LINE_COLORS)]
            ax.plot(np.arange(1, shown.size + 1), shown, color=color,
                    label=f"{clean_text(name)} (r_eff {r:.1f})")  # fmt: skip
            if r > 0:
                ax.axvline(r, color=color, linestyle=":", linewidth=1.0)
        ax.set_xlabel("rank")
        ax.set_ylabel("eigenvalue (init variance = 1)")
        ax.legend(loc="upper right")
        if title:
            ax.set_title(clean_text(title))
    return fig


def weights_eigenvector_similarity(
    panels: EigenvectorSimilarity | Mapping[str, EigenvectorSimilarity],
    *,
    labels: tuple[str, str] = ("network A", "network B"),
    ncols: int = 4,
) -> Any:
    """|cos| between leading covariance eigenvectors, one panel per layer (Fig. 3).

    The colour scale follows the paper: white at the chance level 1/√d of two random unit
    vectors of R^d and black at 5 × chance (statistically significant), clipped beyond.
    Arrows (▲ on the x axis, ▶ on the y axis) mark the effective ranks r_eff of the two
    covariances.

    Parameters
    ----------
    panels : EigenvectorSimilarity or mapping of str to EigenvectorSimilarity
        From :func:`nncompare.weights.eigenvector_similarity`; mapping keys are panel titles.
    labels : (str, str)
        Axis labels of the two networks (y: first, x: second).
    ncols : int, default 4
    """
    if isinstance(panels, EigenvectorSimilarity):
        panels = {"": panels}
    if not isinstance(panels, Mapping) or not panels:
        raise TypeError(
            "nc.plot.weights_eigenvector_similarity expects an EigenvectorSimilarity (from "
            "nc.weights.eigenvector_similarity) or a non-empty mapping of them; got "
            f"{type(panels).__name__}."
        )
    bad = [k for k, v in panels.items() if not isinstance(v, EigenvectorSimilarity)]
    if bad:
        raise TypeError(
            f"nc.plot.weights_eigenvector_similarity: the entries {bad[:4]} are not "
            "EigenvectorSimilarity results."
        )
    from matplotlib.colors import Normalize

    from nncompare._array import to_numpy

    n = len(panels)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    with paper_style():
        fig = new_figure((2.5 * ncols + 0.8, 2.4 * nrows + 0.3))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        im = None
        for ax, (name, p) in zip(axes.flat, panels.items(), strict=False):
            M = to_numpy(p.matrix)
            norm = Normalize(vmin=p.chance, vmax=5 * p.chance, clip=True)
            im = ax.imshow(M, cmap="Greys", norm=norm, origin="upper", interpolation="nearest",
                           extent=(0.5, p.k + 0.5, p.k + 0.5, 0.5))  # fmt: skip
            for r, axis in ((p.r_eff_2, "x"), (p.r_eff_1, "y")):
                if 0 < r <= p.k + 0.5:
                    if axis == "x":
                        ax.plot([r], [p.k + 0.5], marker="^", color=DEGENERATE_COLOR,
                                clip_on=False, markersize=6)  # fmt: skip
                    else:
                        ax.plot([0.5], [r], marker=">", color=DEGENERATE_COLOR,
                                clip_on=False, markersize=6)  # fmt: skip
            ax.set_title(clean_text(name) or f"d = {p.d}", fontsize=9)
            ax.set_xlabel(f"rank ({clean_text(labels[1])})")
            ax.set_ylabel(f"rank ({clean_text(labels[0])})")
        for ax in list(axes.flat)[n:]:
            ax.set_axis_off()
        if im is not None:
            cb = fig.colorbar(im, ax=axes, shrink=0.7)
            cb.set_ticks([im.norm.vmin, im.norm.vmax])
            cb.set_ticklabels(["chance 1/√d", "5 × chance"])
            cb.set_label("|cos| of eigenvectors")
    return fig


def weights_similarity_by_depth(
    frames: Any,
    *,
    column: str = "S",
    title: str | None = "Normalised covariance similarity by depth",
    max_label_len: int = 14,
) -> Any:
    """S (eq. 6, or another column) of :func:`nncompare.weights.compare_weights` by depth.

    Parameters
    ----------
    frames : DataFrame or mapping of str to DataFrame
        One frame per pair of networks (the label is the legend entry); rows in layer order
        (the x axis is the layer index, labelled with the layer names of the first frame).
        NaN rows (layers without learned component) are gaps, their ``note`` is in the frame.
    column : str, default "S"
        Also ``"cosine"``, ``"bw"``, ``"r_eff_a"``, ...
    """
    import pandas as pd

    if isinstance(frames, pd.DataFrame):
        frames = {"": frames}
    if not isinstance(frames, Mapping) or not frames:
        raise TypeError(
            "nc.plot.weights_similarity_by_depth expects the DataFrame of "
            "nc.weights.compare_weights or a mapping label -> DataFrame; got "
            f"{type(frames).__name__}."
        )
    for label, df in frames.items():
        if not isinstance(df, pd.DataFrame) or column not in df.columns or "layer" not in df:
            raise ValueError(
                f"nc.plot.weights_similarity_by_depth: the frame {label!r} needs the columns "
                f"'layer' and {column!r} of nc.weights.compare_weights; got "
                f"{list(df.columns) if isinstance(df, pd.DataFrame) else type(df).__name__}."
            )
    first = next(iter(frames.values()))
    names: Sequence[str] = [str(x) for x in first["layer"]]
    with paper_style():
        fig = new_figure((max(3.6, 0.35 * len(names) + 1.6), 3.0))
        ax = fig.add_subplot()
        for i, (label, df) in enumerate(frames.items()):
            y = df[column].to_numpy(dtype=float)
            color = LINE_COLORS[i % len(LINE_COLORS)]
            ax.plot(
                np.arange(1, y.size + 1),
                y,
                marker="o",
                color=color,
                label=clean_text(label) or None,
            )
        if column == "S":
            ax.axhline(0.0, color="#7f7f7f", linewidth=0.8, linestyle=":")
            ax.axhline(1.0, color="#7f7f7f", linewidth=0.8, linestyle=":")
        ax.set_xticks(np.arange(1, len(names) + 1))
        ax.set_xticklabels([clean_text(shorten(n, max_label_len)) for n in names], rotation=60,
                           ha="right")  # fmt: skip
        ax.set_xlabel("layer")
        ax.set_ylabel({"S": "S (eq. 6)", "cosine": "cos θ (eq. 5)"}.get(column, column))
        if any(str(k) for k in frames):
            ax.legend()
        if title:
            ax.set_title(clean_text(title))
    return fig
