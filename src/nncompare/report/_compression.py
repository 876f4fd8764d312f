"""Report sections for compression by SVCCA projection and Freeze Training (Raghu et al. 2017,
§4.2, §4.4): the accuracy-against-kept-fraction figure and table of
:func:`nncompare.analyses.compression_sweep`, and the Freeze-vs-normal table and curves of
:func:`nncompare.training.freeze_experiment`. Each writes a report folder as the dynamics
report does (``report.html``, ``results.csv``, ``results.json``).
"""

from __future__ import annotations

import os
from typing import Any

from nncompare.report._dynamics import _fmt, _page, _table

__all__ = [
    "COMPRESSION_FORMAT",
    "FREEZE_FORMAT",
    "compression_section",
    "freeze_section",
    "write_compression_report",
    "write_freeze_report",
]

COMPRESSION_FORMAT = "nncompare.svcca_compression"
FREEZE_FORMAT = "nncompare.freeze_training"


def compression_section(df: Any, figs: Any, *, heading: str = "h2") -> str:
    """The compression section as an HTML fragment (frame of ``compression_sweep``)."""
    from nncompare import plot

    parts = [
        f'<{heading} id="compression">Compression by SVCCA projection</{heading}>',
        '<p class="note">Each layer\'s output is projected onto its top-k SVCCA directions '
        "(against the logits, another network's layer, or random directions as a baseline) "
        "and the projection is folded into the next linear layer as (W R)(P x): k(n + m) "
        "parameters instead of m n, no retraining (Raghu et al. 2017, §4.4, Fig. App.5). "
        "Grey: the uncompressed accuracy.</p>",
    ]
    if not len(df):
        parts.append('<p class="note">No compression results.</p>')
        return "\n".join(parts)
    figures = []
    for mode, caption in (
        ("single", "One layer compressed at a time."),
        ("consecutive", "All layers compressed together, each fitted on the compressed net."),
    ):
        if (df["mode"] == mode).any():
            figures.append(
                figs.render(
                    lambda mode=mode: plot.compression_curves(df, mode=mode, title=""),
                    name=f"compression_{mode}",
                    alt=f"Accuracy against kept fraction ({mode})",
                    caption=caption,
                )
            )
    parts.append('<div class="figs">' + "".join(figures) + "</div>")
    header = ["Mode", "Layer", "Reference", "Kept fraction", "k", "Accuracy", "Parameters"]
    rows = [
        [r.mode, r.layer, r.reference, _fmt(r.fraction), r.k, _fmt(r.accuracy),
         f"{int(r.params)} / {int(r.original_params)}"]
        for r in df.itertuples()
    ]  # fmt: skip
    parts.append(_table(header, rows))
    return "\n".join(parts)


def freeze_section(runs: Any, history: Any, figs: Any, *, heading: str = "h2") -> str:
    """The Freeze Training section (``freeze_experiment``'s runs and history)."""
    from nncompare import plot
    from nncompare.analyses.freeze import summarize_freeze

    parts = [
        f'<{heading} id="freeze">Freeze Training</{heading}>',
        '<p class="note">Stage i of L stops training after i/L of the steps; frozen stages '
        "compute no gradient, so the backward pass gets cheaper (Raghu et al. 2017, §4.2, "
        "Fig. 5). Backward FLOPs are counted per phase with FlopCounterMode.</p>",
    ]
    if not len(runs):
        parts.append('<p class="note">No Freeze Training results.</p>')
        return "\n".join(parts)
    figures = [
        figs.render(
            lambda name=name: plot.freeze_curves(history[history["model"] == name]),
            name=f"freeze_{name}",
            alt=f"Test accuracy over training, {name}",
            caption=f"{name}: mean ± std over seeds.",
        )
        for name in dict.fromkeys(history["model"])
    ]
    parts.append('<div class="figs">' + "".join(figures) + "</div>")
    summary = summarize_freeze(runs)
    rows = [
        [r.model, r.mode, r.n_seeds, f"{_fmt(r.test_accuracy_mean)} ± {_fmt(r.test_accuracy_std)}",
         f"{100 * r.saved_fraction_mean:.1f}%", f"{r.seconds_mean:.1f}"]
        for r in summary.itertuples()
    ]  # fmt: skip
    parts.append(
        _table(["Model", "Mode", "Seeds", "Test accuracy", "Backward FLOPs saved", "Seconds"], rows)
    )
    return "\n".join(parts)


def write_compression_report(
    df: Any,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    image_format: str = "png",
    dpi: int = 150,
    formats: tuple[str, ...] | list[str] | str = (),
) -> Any:
    """Write a compression report folder. Returns :class:`nncompare.report.ReportFiles`."""
    model = str(df.attrs.get("model") or "the model")
    return _page(
        out_dir,
        str(title if title is not None else f"Compression of {model} by SVCCA projection"),
        f"{len(df)} compressed networks",
        lambda figs: compression_section(df, figs),
        df,
        fmt=COMPRESSION_FORMAT,
        extra={},
        image_format=image_format,
        dpi=dpi,
        formats=formats,
    )


def write_freeze_report(
    runs: Any,
    history: Any,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    image_format: str = "png",
    dpi: int = 150,
    formats: tuple[str, ...] | list[str] | str = (),
) -> Any:
    """Write a Freeze Training report folder (results.csv holds the per-epoch history)."""
    return _page(
        out_dir,
        str(title if title is not None else "Freeze Training against normal training"),
        f"{runs['seed'].nunique() if len(runs) else 0} seeds",
        lambda figs: freeze_section(runs, history, figs),
        history,
        fmt=FREEZE_FORMAT,
        extra={"runs": runs.to_dict(orient="records")},
        image_format=image_format,
        dpi=dpi,
        formats=formats,
    )
