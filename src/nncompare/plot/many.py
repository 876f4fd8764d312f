"""Figures of model sets and of network dynamics (Morcos, Raghu & Bengio 2018).

* :func:`many_heatmap` — a model × model distance matrix in dendrogram order, with the
  dendrogram and one colour bar per metadata column (Fig. 5).
* :func:`many_mds` — the models' MDS embedding, coloured by a metadata column.
* :func:`pwcca_toy_curves` — mean CCA, SVCCA and PWCCA of the signal + noise toy against the
  ratio of signal to noise dimensions (Fig. 2).
* :func:`rnn_convergence` — each recurrent layer's distance to the final network over
  training, one panel per measure (Fig. 6d).
* :func:`rnn_timesteps` — a layer's state compared across sequence steps, one panel
  per measure (Figs. A2-A4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nncompare.plot._style import LINE_COLORS, OKABE_ITO, new_figure, paper_style, shorten

__all__ = ["many_heatmap", "many_mds", "pwcca_toy_curves", "rnn_convergence", "rnn_timesteps"]


def _clustering(obj: Any, function: str) -> Any:
    from nncompare.analyses.cluster import Clustering, ModelMatrix, cluster

    if isinstance(obj, Clustering):
        return obj
    if isinstance(obj, ModelMatrix):
        return cluster(obj)
    raise TypeError(
        f"nc.plot.{function} expects a Clustering (nc.analyses.cluster(matrix)) or a "
        f"ModelMatrix (nc.analyses.model_matrix(...)); got {type(obj).__name__}."
    )


def _category_colors(values: Sequence[Any], offset: int = 0) -> tuple[list[str], dict[Any, str]]:
    uniq = list(dict.fromkeys(values))
    pal = {u: OKABE_ITO[(offset + i) % len(OKABE_ITO)] for i, u in enumerate(uniq)}
    return [pal[v] for v in values], pal


def many_heatmap(
    clustering: Any,
    *,
    metadata: Sequence[str] | None = None,
    max_label_len: int = 14,
    title: str | None = None,
) -> Any:
    """The distance matrix in dendrogram order, the dendrogram above it and metadata bars.

    Parameters
    ----------
    clustering : Clustering or ModelMatrix
        A ModelMatrix is clustered first with default options.
    metadata : list of str, optional
        Metadata columns drawn as colour bars (default: all of them).
    max_label_len : int, default 14
    title : str, optional
        Default: "<measure> distance at <layer>".

    Returns
    -------
    matplotlib.figure.Figure
    """
    from scipy.cluster.hierarchy import dendrogram

    c = _clustering(clustering, "many_heatmap")
    mm = c.matrix
    meta = mm.metadata
    keys = list(meta.columns) if metadata is None else list(metadata)
    missing = [k for k in keys if meta is None or k not in meta.columns]
    if missing:
        have = [] if meta is None else list(meta.columns)
        raise KeyError(f"metadata has no columns {missing}; it has {have}.")
    d = mm.distances()[np.ix_(c.order, c.order)]
    names = [shorten(mm.names[i], max_label_len) for i in c.order]
    n = len(names)
    side = min(2.5 + 0.28 * n, 12)
    with paper_style():
        fig = new_figure((side + 1.2, side + 0.9 + 0.25 * len(keys)))
        ratios = [1.2] + [0.12] * len(keys) + [4.0]
        gs = fig.add_gridspec(len(ratios), 2, height_ratios=ratios, width_ratios=[20, 1])
        ax_d = fig.add_subplot(gs[0, 0])
        dendrogram(
            c.linkage,
            ax=ax_d,
            no_labels=True,
            color_threshold=0,
            link_color_func=lambda _: "#555555",
        )
        ax_d.set_axis_off()
        legend_items = []
        offset = 0
        for r, key in enumerate(keys, start=1):
            ax = fig.add_subplot(gs[r, 0])
            vals = meta[key].to_numpy()[c.order]
            if np.issubdtype(np.asarray(vals).dtype, np.number) and len(set(vals)) > 6:
                ax.imshow(np.asarray(vals, float)[None, :], aspect="auto", cmap="viridis")
            else:
                cols, pal = _category_colors(list(vals), offset)
                offset += len(pal)
                from matplotlib.colors import to_rgb

                ax.imshow(np.array([[to_rgb(col) for col in cols]]), aspect="auto")
                legend_items.append((key, pal))
            ax.set_xticks([])
            ax.set_yticks([0])
            ax.set_yticklabels([shorten(key, 12)])
        ax_h = fig.add_subplot(gs[-1, 0])
        im = ax_h.imshow(d, cmap="magma_r", vmin=0, aspect="auto")
        ax_h.set_xticks(range(n))
        ax_h.set_yticks(range(n))
        ax_h.set_xticklabels(names, rotation=90)
        ax_h.set_yticklabels(names)
        cax = fig.add_subplot(gs[-1, 1])
        fig.colorbar(im, cax=cax, label=f"{mm.measure} distance")
        if legend_items:
            from matplotlib.patches import Patch

            handles = [
                Patch(color=col, label=f"{key}={shorten(v, 10)}")
                for key, pal in legend_items
                for v, col in pal.items()
            ]
            ax_d.legend(
                handles=handles,
                loc="upper left",
                bbox_to_anchor=(1.0, 1.0),
                fontsize=7,
                frameon=False,
            )
        fig.suptitle(title if title is not None else f"{mm.measure} distance at {mm.layer}")
    return fig


def many_mds(
    clustering: Any,
    *,
    color_by: str | None = None,
    label: bool = True,
    max_label_len: int = 10,
    title: str | None = None,
) -> Any:
    """The models' MDS embedding (first two coordinates), coloured by a metadata column
    (default: the flat clusters, or the first metadata column).

    Returns
    -------
    matplotlib.figure.Figure
    """
    c = _clustering(clustering, "many_mds")
    meta = c.matrix.metadata
    if color_by is not None and (meta is None or color_by not in meta.columns):
        have = [] if meta is None else list(meta.columns)
        raise KeyError(f"metadata has no column {color_by!r}; it has {have}.")
    if color_by is not None:
        groups, what = list(meta[color_by].to_numpy()), color_by
    elif c.labels is not None:
        groups, what = list(c.labels), "cluster"
    elif meta is not None and len(meta.columns):
        groups, what = list(meta[meta.columns[0]].to_numpy()), str(meta.columns[0])
    else:
        groups, what = ["model"] * len(c.matrix.names), ""
    emb = c.embedding
    y = emb[:, 1] if emb.shape[1] > 1 else np.zeros(len(emb))
    with paper_style():
        fig = new_figure((4.6, 3.8))
        ax = fig.add_subplot()
        cols, pal = _category_colors(groups)
        ax.scatter(emb[:, 0], y, c=cols, s=36, edgecolor="white", linewidth=0.5)
        if label:
            for name, xx, yy in zip(c.matrix.names, emb[:, 0], y, strict=True):
                ax.annotate(
                    shorten(name, max_label_len),
                    (xx, yy),
                    fontsize=6,
                    xytext=(3, 2),
                    textcoords="offset points",
                )
        if what:
            from matplotlib.lines import Line2D

            handles = [
                Line2D(
                    [], [], marker="o", linestyle="", color=col, label=f"{what}={shorten(v, 10)}"
                )
                for v, col in pal.items()
            ]
            ax.legend(handles=handles, fontsize=7, frameon=False)
        ax.set_xlabel("MDS 1")
        ax.set_ylabel("MDS 2")
        ax.set_title(
            title
            if title is not None
            else f"{c.matrix.measure} at {c.matrix.layer} (stress {c.stress:.2f})"
        )
    return fig


def pwcca_toy_curves(frame: Any, *, title: str | None = "Shared signal + unshared noise") -> Any:
    """Mean ± std over seeds of each measure against the signal:noise dimension ratio
    (:func:`nncompare.analyses.toys.signal_noise_curves`; Morcos et al., Fig. 2).

    Returns
    -------
    matplotlib.figure.Figure
    """
    need = {"n_noise", "n_signal", "measure", "value"}
    if not need <= set(getattr(frame, "columns", [])):
        raise ValueError(
            f"pwcca_toy_curves expects the frame of nc.analyses.toys.signal_noise_curves (columns "
            f"{sorted(need)})."
        )
    with paper_style():
        fig = new_figure((4.8, 3.4))
        ax = fig.add_subplot()
        g = frame[frame["n_noise"] > 0]
        for i, (m, sub) in enumerate(g.groupby("measure", sort=False)):
            s = sub.groupby("n_noise")["value"].agg(["mean", "std"]).sort_index(ascending=False)
            ratio = sub["n_signal"].iloc[0] / s.index.to_numpy()
            ax.errorbar(
                ratio,
                s["mean"],
                yerr=s["std"].fillna(0),
                marker="o",
                ms=3,
                color=LINE_COLORS[i % len(LINE_COLORS)],
                label=m,
                capsize=2,
            )
        ax.set_xscale("log")
        ax.set_xlabel("signal dims / noise dims")
        ax.set_ylabel("similarity")
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=False)
        if title:
            ax.set_title(title)
    return fig


def rnn_convergence(frame: Any, *, title: str | None = "Distance to the final network") -> Any:
    """Each layer's distance to the final network over training, one panel per measure
    (:func:`nncompare.analyses.recurrent.convergence_to_final`; Fig. 6d).

    Returns
    -------
    matplotlib.figure.Figure
    """
    need = {"checkpoint", "index", "layer", "depth", "measure", "distance"}
    if not need <= set(getattr(frame, "columns", [])):
        raise ValueError(
            "rnn_convergence expects the frame of "
            f"nc.analyses.recurrent.convergence_to_final (columns {sorted(need)})."
        )
    measures = list(dict.fromkeys(frame["measure"]))
    with paper_style():
        fig = new_figure((3.4 * len(measures) + 0.4, 3.2))
        axes = fig.subplots(1, len(measures), squeeze=False, sharey=True)[0]
        for ax, m in zip(axes, measures, strict=True):
            sub = frame[frame["measure"] == m]
            for layer, g in sub.groupby("depth", sort=True):
                g = g.sort_values("index")
                ax.plot(
                    g["checkpoint"],
                    g["distance"],
                    marker="o",
                    ms=2.5,
                    color=LINE_COLORS[(layer - 1) % len(LINE_COLORS)],
                    label=str(g["layer"].iloc[0]),
                )
            ax.set_title(m)
            ax.set_xlabel("training step")
        axes[0].set_ylabel("distance to final")
        axes[-1].legend(frameon=False)
        if title:
            fig.suptitle(title)
    return fig


def rnn_timesteps(frame: Any, *, title: str | None = None) -> Any:
    """Step × step similarity of a layer's state, one panel per measure
    (:func:`nncompare.analyses.recurrent.timestep_similarity`; Figs. A2-A4).

    Returns
    -------
    matplotlib.figure.Figure
    """
    need = {"step_a", "step_b", "measure", "value"}
    if not need <= set(getattr(frame, "columns", [])):
        raise ValueError(
            "rnn_timesteps expects the frame of nc.analyses.recurrent.timestep_similarity "
            f"(columns {sorted(need)})."
        )
    measures = list(dict.fromkeys(frame["measure"]))
    with paper_style():
        fig = new_figure((3.1 * len(measures) + 0.6, 3.0))
        axes = fig.subplots(1, len(measures), squeeze=False)[0]
        im = None
        for ax, m in zip(axes, measures, strict=True):
            grid = frame[frame["measure"] == m].pivot_table(
                "value", "step_a", "step_b", dropna=False
            )
            steps = grid.index.to_numpy()
            im = ax.imshow(
                grid.to_numpy(),
                vmin=0,
                vmax=1,
                cmap="viridis",
                origin="lower",
                extent=(steps[0] - 0.5, steps[-1] + 0.5, steps[0] - 0.5, steps[-1] + 0.5),
            )
            ax.set_title(m)
            ax.set_xlabel("step")
        axes[0].set_ylabel("step")
        if im is not None:
            fig.colorbar(im, ax=list(axes), shrink=0.8, label="similarity")
        if title:
            fig.suptitle(title)
    return fig
