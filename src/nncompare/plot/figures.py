"""Figures of a layer-by-layer comparison: heatmaps, CCA spectra, SVCCA kept dims, profiles.

Every function takes a comparison: the tidy frame of :func:`nncompare.compare_models`, a
:class:`nncompare.ComparisonResult` or the :class:`nncompare.GridResult` of
:func:`nncompare.pairwise` (or, for :func:`spectrum`, a spectra mapping), reads it once
(:func:`nncompare.plot._data.comparison`), draws into ``ax`` when one is given (else into a
new pyplot-free Figure) and returns the Figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nncompare.plot._data import (
    Reference,
    best_matches,
    color_scale,
    comparison,
    is_comparison,
    kept_dims_table,
    layer_order,
    lean,
    measure_matrix,
    measure_meta,
    measures_in,
    model_names,
    pretty_measure,
    reference_pairs,
    spectra_of,
    split_pair,
)
from nncompare.plot._style import (
    LINE_COLORS,
    LINESTYLES,
    NAN_FACE,
    NAN_HATCH_EDGE,
    OKABE_ITO,
    clean_text,
    new_figure,
    paper_style,
    shorten,
)

__all__ = ["heatmap", "kept_dims", "layer_profile", "spectrum"]

ANNOTATE_MAX = 12  # annotate heatmap cells when the grid is at most this many rows and columns
MAX_TICKS = 40  # beyond this, only every k-th tick label is drawn


def _clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def _label_inches(names: Sequence[Any], max_len: int, fontsize: float = 8.0) -> float:
    longest = max((len(shorten(n, max_len)) for n in names), default=4)
    return longest * fontsize * 0.55 / 72.0


def _tick_step(n: int) -> int:
    return max(1, math.ceil(n / MAX_TICKS))


def _set_ticks(ax: Any, axis: str, names: Sequence[Any], max_len: int) -> None:
    n = len(names)
    step = _tick_step(n)
    pos = list(range(0, n, step))
    labels = [clean_text(shorten(names[i], max_len)) for i in pos]
    size = 8 if n <= 20 else (7 if n <= 30 else 6)
    if axis == "x":
        ax.set_xticks(pos)
        ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=size)
    else:
        ax.set_yticks(pos)
        ax.set_yticklabels(labels, fontsize=size)


def _luminance(rgba: Sequence[float]) -> float:
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def heatmap(
    df: Any,
    measure: str,
    *,
    ax: Any = None,
    annotate: bool | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    max_label_len: int = 20,
    title: str | None = None,
    share_scale: bool = True,
) -> Any:
    """Layer × layer heatmap of one measure: layers of model A as rows, of model B as columns.

    Parameters
    ----------
    df : pandas.DataFrame, ComparisonResult or GridResult
        The tidy frame of :func:`nncompare.compare_models`, its typed view, or the grid of
        :func:`nncompare.pairwise`.
    measure : str
        Which measure to draw (a value of the ``measure`` column).
    ax : matplotlib Axes, optional
        Draw here (a colorbar is added next to it); default: a new Figure.
    annotate : bool, optional
        Write the values in the cells; default: when the grid is at most 12 × 12.
    cmap : str
        A perceptually uniform, colour-blind-safe map ("viridis", "cividis", ...).
    vmin, vmax : float, optional
        Colour limits; default: the measure's range (e.g. [0, 1]) — shared with the other
        measures of its family in the frame (see ``share_scale``) — or the data's when the
        range is unbounded.
    max_label_len : int
        Longer layer names are shortened in the middle with "…" (the report tables keep them
        in full).
    title : str, optional
        Default: "<Measure>: <model A> vs <model B>".
    share_scale : bool
        Draw on one colour scale with the other measures of the frame from the same family
        of the measure registry (linear and debiased CKA; CCA, SVCCA and PWCCA; ...): the
        union of their ranges, so equal values get equal colours across the heatmaps. The
        colourbar label says so.

    Returns
    -------
    matplotlib.figure.Figure
        Undefined (NaN) cells are grey and hatched, with a legend entry saying so.
    """
    df = comparison(df)
    rows, cols, mat = measure_matrix(df, measure)
    if not rows or not cols:
        held = sorted(map(str, measures_in(df)))
        raise ValueError(f"no rows for measure {measure!r}; the frame holds {held}.")
    meta = measure_meta(df, measure)
    name_a, name_b = model_names(df)
    scale = color_scale(df, measure, mat, vmin, vmax, share=share_scale)
    lo, hi = scale.vmin, scale.vmax
    nr, nc_ = mat.shape
    if annotate is None:
        annotate = nr <= ANNOTATE_MAX and nc_ <= ANNOTATE_MAX
    with paper_style():
        import matplotlib as mpl
        from matplotlib.patches import Patch, Rectangle

        own = ax is None
        if own:
            cell = 0.42 if max(nr, nc_) <= 12 else 0.26
            xlab = _label_inches(cols, max_label_len) * 0.75
            ylab = _label_inches(rows, max_label_len)
            width = _clamp(1.9 + ylab + cell * nc_, 4.0, 13.0)
            height = _clamp(1.5 + xlab + cell * nr, 3.2, 13.0)
            fig = new_figure((width, height))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        cm = mpl.colormaps[cmap].with_extremes(bad=NAN_FACE)
        norm = mpl.colors.Normalize(vmin=lo, vmax=hi)
        masked = np.ma.masked_invalid(mat)
        im = ax.imshow(masked, cmap=cm, norm=norm, aspect="auto", interpolation="nearest")
        nan_cells = np.argwhere(~np.isfinite(mat))
        for i, j in nan_cells:
            ax.add_patch(
                Rectangle(
                    (j - 0.5, i - 0.5),
                    1,
                    1,
                    facecolor=NAN_FACE,
                    edgecolor=NAN_HATCH_EDGE,
                    hatch="////",
                    linewidth=0,
                    gid="nan-cell",
                )
            )
        if annotate:
            fs = 8 if max(nr, nc_) <= 6 else (7 if max(nr, nc_) <= 9 else 6)
            for i in range(nr):
                for j in range(nc_):
                    v = mat[i, j]
                    if not np.isfinite(v):
                        continue
                    color = "black" if _luminance(cm(norm(v))) > 0.45 else "white"
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=fs, color=color)
        _set_ticks(ax, "x", cols, max_label_len)
        _set_ticks(ax, "y", rows, max_label_len)
        ax.tick_params(length=2)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel(clean_text(f"{name_b} layer"))
        ax.set_ylabel(clean_text(f"{name_a} layer"))
        if title is None:
            title = f"{meta.label}: {name_a} vs {name_b}"
        ax.set_title(clean_text(title), loc="left")
        cbar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, shrink=0.9)
        cbar_label = f"{meta.label} ({meta.direction})"
        if scale.shared_with:
            others = ", ".join(pretty_measure(m) for m in scale.shared_with)
            cbar_label += f"\nscale shared with {others}"
        cbar.set_label(clean_text(cbar_label))
        cbar.outline.set_visible(False)
        if len(nan_cells):
            handle = Patch(
                facecolor=NAN_FACE,
                edgecolor=NAN_HATCH_EDGE,
                hatch="////",
                linewidth=0,
                label=f"undefined (NaN): {len(nan_cells)} of {nr * nc_} pairs",
            )
            if own:
                fig.legend(handles=[handle], loc="outside lower left", frameon=False)
            else:
                ax.legend(handles=[handle], loc="upper right", frameon=True, framealpha=0.9)
    return fig


def _pair_key(a: Any, b: Any) -> str:
    return f"{a}|{b}"


def _default_pairs(
    spectra: dict[str, np.ndarray],
    df: Any,
    measure: str,
    layers_a: list[str],
    layers_b: list[str],
    reference: str,
) -> tuple[list[str], str]:
    """The pairs to draw by default and what they are ("depth-matched", "same-named" or
    "best-matching"): the reference pairs (:func:`nncompare.plot._data.reference_pairs`)
    that have a spectrum, in depth order of A; without any, the best match of each layer."""
    ref = reference_pairs(layers_a, layers_b, reference)
    keys = [
        _pair_key(a, ref.match[a])
        for a in layers_a
        if a in ref.match and _pair_key(a, ref.match[a]) in spectra
    ]
    if keys:
        return keys, ref.label
    split = {k: split_pair(k, layers_a, layers_b) for k in spectra}
    values: dict[str, float] = {}
    hib = True
    if df is not None:
        hib = measure_meta(df, measure).higher_is_better
        rows, cols, mat = measure_matrix(df, measure)
        for i, a in enumerate(rows):
            for j, b in enumerate(cols):
                values[_pair_key(a, b)] = float(mat[i, j])
    best: dict[str, tuple[float, str]] = {}
    for k, (a, _b) in split.items():
        v = values.get(k, math.nan)
        if not math.isfinite(v):
            v = float(np.mean(spectra[k]))
        if not math.isfinite(v):
            continue
        score = v if hib else -v
        if a not in best or score > best[a][0]:
            best[a] = (score, k)
    return [best[a][1] for a in layers_a if a in best], "best-matching"


def _subsample(keys: list[str], k: int) -> list[str]:
    if len(keys) <= k:
        return keys
    idx = np.unique(np.round(np.linspace(0, len(keys) - 1, k)).astype(int))
    return [keys[i] for i in idx]


def _spectra_layers(spectra: dict[str, np.ndarray]) -> tuple[list[str], list[str]]:
    """Layer names of A and B in the order of the spectra keys (no frame at hand)."""
    la: dict[str, None] = {}
    lb: dict[str, None] = {}
    for k in spectra:
        a, b = split_pair(k)
        la.setdefault(a, None)
        lb.setdefault(b, None)
    return list(la), list(lb)


def spectrum(
    df_or_spectra: Any,
    measure: str = "cca",
    pairs: Sequence[str | tuple[str, str]] | None = None,
    ax: Any = None,
    *,
    max_pairs: int = 10,
    max_label_len: int = 20,
    title: str | None = None,
    reference: str = "auto",
) -> Any:
    """Canonical correlation spectra ρ_i (descending) against i, one line per layer pair.

    Parameters
    ----------
    df_or_spectra : DataFrame or mapping
        A comparison (the frame of :func:`nncompare.compare_models`, whose spectra are
        ``ComparisonResult.spectra``; a :class:`nncompare.GridResult` kept with
        ``keep_results=True``), a mapping ``{measure: {"a|b": rho}}`` or ``{"a|b": rho}``.
    measure : str
        A measure with a canonical-correlation spectrum (``nc.measures.with_spectrum()``:
        "cca", "cca_r2", "svcca", "pwcca").
    pairs : list of "a|b" keys or (a, b) tuples, optional
        Default: the reference pairs ("the diagonal"): same-named layers when both models have
        the same layer names, else layers at the same relative depth (within stages such as
        ``layer1.*`` where both models have the same stages); without any recorded, the
        best-matching layer of B for each layer of A. At most ``max_pairs`` of them, evenly
        spaced in depth, are drawn, and the legend says "k of n".
    ax : matplotlib Axes, optional
        Draw here (legend inside the axes); default: a new Figure with the legend below the
        plot.
    max_pairs : int
        Most lines drawn for the default pairs.
    max_label_len : int
        Longer layer names are shortened in the middle with "…".
    title : str, optional
        Default: "<Measure> spectra: <model A> vs <model B>".
    reference : {"auto", "name", "stage", "depth"}
        How the default pairs are made (see :func:`nncompare.plot._data.reference_pairs`).

    Returns
    -------
    matplotlib.figure.Figure
        With no spectrum recorded, the axes say so (no lines).
    """
    df = comparison(df_or_spectra) if is_comparison(df_or_spectra) else None
    spectra = spectra_of(df if df is not None else df_or_spectra, measure)
    if df is not None:
        layers_a = [str(x) for x in layer_order(df, "a")]
        layers_b = [str(x) for x in layer_order(df, "b")]
    else:
        layers_a, layers_b = _spectra_layers(spectra)
    if pairs is None:
        candidates, kind = _default_pairs(spectra, df, measure, layers_a, layers_b, reference)
        keys = _subsample(candidates, max(1, int(max_pairs)))
    else:
        keys = []
        for p in pairs:
            key = _pair_key(p[0], p[1]) if isinstance(p, tuple | list) else str(p)
            if key not in spectra:
                avail = ", ".join(sorted(spectra)[:10]) or "none"
                raise ValueError(
                    f"no {measure} spectrum for pair {key!r}; recorded pairs: {avail}. "
                    "Pass pairs as 'layer_a|layer_b' keys or (layer_a, layer_b) tuples."
                )
            keys.append(key)
        candidates, kind = keys, "chosen"
    name_a, name_b = model_names(df) if df is not None else ("A", "B")
    pair_values: dict[str, float] = {}
    if df is not None:
        rows, cols, mat = measure_matrix(df, measure)
        for i, a in enumerate(rows):
            for j, b in enumerate(cols):
                pair_values[_pair_key(a, b)] = float(mat[i, j])
    labels = []
    for key in keys:
        a, b = split_pair(key, layers_a, layers_b)
        label = (
            shorten(a, max_label_len)
            if a == b and kind in ("same-named", "chosen")
            else f"{shorten(a, max_label_len)} ↔ {shorten(b, max_label_len)}"
        )
        value = pair_values.get(key, math.nan)
        if math.isfinite(value):
            label += f" ({value:.2f})"
        else:
            label += f" (mean ρ {np.nanmean(spectra[key]):.2f})"
        labels.append(clean_text(label))
    with paper_style():
        own = ax is None
        if own:
            longest = max((len(t) for t in labels), default=10)
            ncols = 1 if not labels else (3 if longest <= 22 else 2)
            ncols = min(ncols, max(1, len(labels)))
            legend_rows = math.ceil(len(labels) / ncols) + 2  # + the two title lines
            width = 6.4 if ncols >= 3 or longest <= 30 else 7.2
            fig = new_figure((width, 3.6 + 0.17 * legend_rows))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        kmax = 1
        for idx, (key, label) in enumerate(zip(keys, labels, strict=True)):
            rho = np.sort(spectra[key])[::-1]
            kmax = max(kmax, rho.size)
            ax.plot(
                np.arange(1, rho.size + 1),
                rho,
                color=LINE_COLORS[idx % len(LINE_COLORS)],
                linestyle=LINESTYLES[(idx // len(LINE_COLORS)) % len(LINESTYLES)],
                marker="o" if rho.size <= 30 else None,
                markersize=3,
                label=label,
            )
        ax.set_xlabel("canonical direction i (sorted by correlation)")
        ax.set_ylabel("canonical correlation ρᵢ")
        ax.set_ylim(-0.02, 1.04)
        ax.set_xlim(0.5, kmax + 0.5)
        if kmax <= 12:
            ax.set_xticks(range(1, kmax + 1))
        ax.grid(axis="y", alpha=0.3, linewidth=0.6)
        if title is None:
            title = f"{pretty_measure(measure)} spectra: {name_a} vs {name_b}"
        if own:
            fig.suptitle(clean_text(title), x=0.02, ha="left", fontsize=10, fontweight="bold")
        else:
            ax.set_title(clean_text(title), loc="left")
        if keys:
            what = f"{name_a} layer ↔ {name_b} layer"
            what += f" ({pretty_measure(measure)})" if pair_values else " (mean ρ)"
            n_all = len(candidates)
            if kind == "chosen":
                shown = f"{len(keys)} chosen pair{'s' if len(keys) != 1 else ''}"
            elif len(keys) < n_all:
                shown = f"showing {len(keys)} of {n_all} {kind} pairs, evenly spaced in depth"
            else:
                shown = f"all {n_all} {kind} pair{'s' if n_all != 1 else ''}"
            legend_kw = {"title": clean_text(f"{what}\n{shown}"), "alignment": "left"}
            if own:
                fig.legend(loc="outside lower center", ncols=ncols, **legend_kw)
            else:
                ax.legend(loc="best", **legend_kw)
        else:
            ax.text(
                0.5,
                0.5,
                f"no {measure} spectra recorded",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="0.4",
            )
    return fig


def _ordered(store: dict[str, int], order: list[str]) -> dict[str, int]:
    """``store`` in the depth order ``order`` (names not in it keep their order, last)."""
    rank = {n: i for i, n in enumerate(order)}
    keys = sorted(store, key=lambda n: (rank.get(n, len(rank)), list(store).index(n)))
    return {k: store[k] for k in keys}


def _bars(
    ax: Any,
    xs: list[float],
    values: list[int],
    width: float,
    color: str,
    label: str,
    annotate: bool,
) -> None:
    bars = ax.bar(xs, values, width=width, color=color, label=clean_text(label))
    if annotate:
        ax.bar_label(bars, fmt="%d", fontsize=7, padding=1)


def _name_ticks(ax: Any, pos: list[float], names: list[str], max_label_len: int) -> None:
    ax.set_xticks(pos)
    ax.set_xticklabels(
        [clean_text(shorten(n, max_label_len)) for n in names],
        rotation=45 if len(names) > 3 else 0,
        ha="right" if len(names) > 3 else "center",
        rotation_mode="anchor",
    )


def kept_dims(
    df: Any,
    *,
    measure: str = "svcca",
    ax: Any = None,
    max_label_len: int = 20,
    title: str | None = None,
) -> Any:
    """Bar chart of the singular directions SVCCA kept per layer, for both models.

    Values come from the ``kept_dims_x`` (layers of A) / ``kept_dims_y`` (layers of B)
    columns, or from ``ComparisonResult.kept_dims``. ``df`` is a comparison frame, its
    :class:`nncompare.ComparisonResult` or a :class:`nncompare.GridResult`. Layers are in
    depth order (the order they have in the results frame, i.e. in the models). When both
    models have the same layers, one pair of bars per layer; otherwise one panel per model
    (with ``ax``: the layers of A, then those of B, on one axes).
    """
    df = comparison(df)
    kx, ky = kept_dims_table(df, measure)
    name_a, name_b = model_names(df)
    kx = _ordered(kx, [str(x) for x in layer_order(df, "a")])
    ky = _ordered(ky, [str(x) for x in layer_order(df, "b")])
    names_a, names_b = list(kx), list(ky)
    together = not kx or not ky or names_a == names_b
    thr = ""
    opts = measure_meta(df, measure)
    if opts is not None:
        if opts.options.get("dims") is not None:
            thr = f" (dims = {opts.options['dims']})"
        else:
            var = opts.options.get("variance", 0.99)
            try:
                thr = f" ({float(var):.0%} variance)"
            except (TypeError, ValueError):
                thr = ""
    if title is None:
        title = f"SVCCA kept dimensions{thr}"
    with paper_style():
        own = ax is None
        label_h = _label_inches([*names_a, *names_b], max_label_len) * 0.7
        if together:
            names = names_a or names_b
            if own:
                width = _clamp(2.2 + 0.55 * len(names), 4.2, 13.0)
                fig = new_figure((width, 3.4 + label_h))
                ax = fig.add_subplot()
            else:
                fig = ax.figure
            axes = [ax]
            both = bool(kx) and bool(ky)
            w = 0.38 if both else 0.6
            for store, label, color, shift in (
                (kx, name_a, OKABE_ITO[0], -w / 2 if both else 0.0),
                (ky, name_b, OKABE_ITO[1], w / 2 if both else 0.0),
            ):
                if store:
                    xs = [i + shift for i in range(len(store))]
                    _bars(ax, xs, list(store.values()), w, color, label, len(names) <= 24)
            _name_ticks(ax, list(range(len(names))), names, max_label_len)
            ax.set_xlabel("layer (in depth order)")
        elif own:
            n = max(len(names_a), len(names_b))
            width = _clamp(2.2 + 0.42 * n, 4.2, 13.0)
            fig = new_figure((width, 2.0 * (2.2 + label_h)))
            ax, ax2 = fig.subplots(2, 1, sharey=True)
            axes = [ax, ax2]
            for a_x, store, label, color in (
                (ax, kx, name_a, OKABE_ITO[0]),
                (ax2, ky, name_b, OKABE_ITO[1]),
            ):
                names = list(store)
                _bars(
                    a_x,
                    list(range(len(names))),
                    list(store.values()),
                    0.6,
                    color,
                    label,
                    len(names) <= 24,
                )
                _name_ticks(a_x, list(range(len(names))), names, max_label_len)
                a_x.set_xlim(-0.6, len(names) - 0.4)
                a_x.set_xlabel(clean_text(f"{label} layer (in depth order)"))
                a_x.set_ylabel("kept singular directions")
        else:
            fig = ax.figure
            axes = [ax]
            off = len(names_a) + 1
            _bars(
                ax,
                list(range(len(names_a))),
                list(kx.values()),
                0.6,
                OKABE_ITO[0],
                name_a,
                len(names_a) + len(names_b) <= 24,
            )
            _bars(
                ax,
                [off + i for i in range(len(names_b))],
                list(ky.values()),
                0.6,
                OKABE_ITO[1],
                name_b,
                len(names_a) + len(names_b) <= 24,
            )
            _name_ticks(
                ax,
                [*range(len(names_a)), *(off + i for i in range(len(names_b)))],
                [*names_a, *names_b],
                max_label_len,
            )
            ax.axvline(len(names_a), color="0.6", linewidth=0.8, linestyle=":")
            ax.set_xlabel(clean_text(f"layer of {name_a}, then of {name_b} (in depth order)"))
        axes[0].set_ylabel("kept singular directions")
        if own and not together:
            fig.suptitle(clean_text(title), x=0.02, ha="left", fontsize=10, fontweight="bold")
        else:
            ax.set_title(clean_text(title), loc="left")
        if kx or ky:
            for a_x in axes:
                a_x.margins(y=0.15)
                a_x.legend(loc="upper left")
        else:
            ax.text(
                0.5,
                0.5,
                "no SVCCA kept dimensions recorded",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="0.4",
            )
    return fig


def layer_profile(
    df: Any,
    measure: str,
    *,
    ax: Any = None,
    annotate: bool | None = None,
    max_label_len: int = 20,
    title: str | None = None,
    reference: str = "auto",
) -> Any:
    """For each layer of A, the value of its best-matching layer of B (a line over layers).

    A dashed second line gives the value of the reference pair of each layer (see
    ``reference``): the same-named layer of B when both models have the same layer names,
    else the layer of B at the same relative depth (within the same stage, such as
    ``layer2.*``, where both models have the same stages). A gap between the lines shows a
    layer that matches a *different* layer of B best. Points are labelled with the
    best-matching layer when there are at most 16 layers (``annotate``).

    Where the frame has bootstrap intervals (``ci_low``/``ci_high`` columns, from
    ``ci=`` of the front doors), both lines carry them as error bars.

    Parameters
    ----------
    reference : {"auto", "name", "stage", "depth"}
        How the reference pairs are made (:func:`nncompare.plot._data.reference_pairs`).
    """
    df = comparison(df)
    rows, best_name, best_val, _ = best_matches(df, measure)
    if not rows:
        raise ValueError(
            f"no rows for measure {measure!r}; the frame holds {sorted(map(str, measures_in(df)))}."
        )
    _, cols, mat = measure_matrix(df, measure)
    ref: Reference = reference_pairs(rows, cols, reference)
    col_index = {c: j for j, c in enumerate(cols)}
    same_val = np.array(
        [mat[i, col_index[ref.match[r]]] if r in ref.match else np.nan for i, r in enumerate(rows)]
    )
    meta = measure_meta(df, measure)
    name_a, name_b = model_names(df)
    if annotate is None:
        annotate = len(rows) <= 16
    x = np.arange(len(rows))
    with paper_style():
        own = ax is None
        if own:
            width = _clamp(2.4 + 0.5 * len(rows), 4.6, 13.0)
            fig = new_figure((width, 3.2 + _label_inches(rows, max_label_len) * 0.7))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        word = "max" if meta.higher_is_better else "min"
        bounds = _ci_matrices(df, measure, rows, cols)
        best_cols = [col_index.get(b) for b in best_name]
        ax.plot(
            x,
            best_val,
            marker="o",
            color=OKABE_ITO[0],
            label=clean_text(f"best match in {name_b} ({word})"),
        )
        _error_bars(ax, x, best_val, bounds, best_cols, OKABE_ITO[0])
        if np.isfinite(same_val).any():
            ax.plot(
                x,
                same_val,
                marker="s",
                linestyle="--",
                color=OKABE_ITO[1],
                label=clean_text(f"{ref.label} layer of {name_b}"),
            )
            ref_cols = [col_index.get(ref.match[r]) if r in ref.match else None for r in rows]
            _error_bars(ax, x, same_val, bounds, ref_cols, OKABE_ITO[1])
        if annotate:
            for xi, v, b in zip(x, best_val, best_name, strict=True):
                if b is None or not np.isfinite(v):
                    continue
                ax.annotate(
                    clean_text(shorten(b, 14)),
                    (xi, v),
                    textcoords="offset points",
                    xytext=(0, 6),
                    ha="center",
                    fontsize=6.5,
                    color="0.25",
                )
        lo, hi = meta.value_range or (math.nan, math.nan)
        finite = best_val[np.isfinite(best_val)]
        if math.isfinite(lo) and math.isfinite(hi):
            bottom = min(lo, 0.0) if finite.size and finite.min() < 0 else max(lo, 0.0)
            ax.set_ylim(bottom, hi + 0.08 * (hi - bottom))
        ax.set_xticks(x)
        ax.set_xticklabels(
            [clean_text(shorten(r, max_label_len)) for r in rows],
            rotation=45 if len(rows) > 3 else 0,
            ha="right" if len(rows) > 3 else "center",
            rotation_mode="anchor",
        )
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_xlabel(clean_text(f"{name_a} layer"))
        ax.set_ylabel(clean_text(f"{meta.label} ({meta.direction})"))
        ax.grid(axis="y", alpha=0.3, linewidth=0.6)
        if title is None:
            title = f"{meta.label}: best match in {name_b} per layer of {name_a}"
        ax.set_title(clean_text(title), loc="left")
        ax.legend(loc="best")
    return fig


def _ci_matrices(
    df: Any, measure: str, rows: list[Any], cols: list[Any]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``ci_low`` / ``ci_high`` grids of ``measure`` (rows × cols), or None without them."""
    frame = lean(df)
    if not {"ci_low", "ci_high"} <= set(frame.columns):
        return None
    out = []
    for col in ("ci_low", "ci_high"):
        r, c, mat = measure_matrix(frame.assign(value=frame[col]), measure)
        ri, cj = {k: i for i, k in enumerate(r)}, {k: j for j, k in enumerate(c)}
        grid = np.full((len(rows), len(cols)), np.nan)
        for i, a in enumerate(rows):
            for j, b in enumerate(cols):
                if a in ri and b in cj:
                    grid[i, j] = mat[ri[a], cj[b]]
        out.append(grid)
    return out[0], out[1]


def _error_bars(
    ax: Any,
    x: np.ndarray,
    y: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray] | None,
    cols: list[int | None],
    color: Any,
) -> None:
    """Vertical bars from each point's ``ci_low`` to ``ci_high`` (where both are finite)."""
    if bounds is None:
        return
    lo, hi = bounds
    low = np.array([lo[i, j] if j is not None else np.nan for i, j in enumerate(cols)])
    high = np.array([hi[i, j] if j is not None else np.nan for i, j in enumerate(cols)])
    ok = np.isfinite(low) & np.isfinite(high) & np.isfinite(y)
    if not ok.any():
        return
    err = np.vstack([np.clip(y[ok] - low[ok], 0, None), np.clip(high[ok] - y[ok], 0, None)])
    ax.errorbar(x[ok], y[ok], yerr=err, fmt="none", ecolor=color, elinewidth=0.9, capsize=2.5)
