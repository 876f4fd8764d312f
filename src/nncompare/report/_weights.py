"""The weights section of the report, and the stand-alone weights report.

The weight lens (:mod:`nncompare.weights`, Guth & Ménard) summarised by
:func:`nncompare.weights.experiments.weights_summary` — one network or two — becomes

* an HTML section (:func:`weights_section`): the layers × rank grid of spatial eigenfilters
  (Fig. 1) with the overlaps of their top-3 eigen-subspaces, the shrunk channel-covariance
  spectra with their effective ranks (eq. 3-4), and for two networks the
  eigenvector-similarity panels (Fig. 3), the normalised similarity S by depth (eq. 6,
  Fig. 4) and every value in a table;
* a report folder of its own (:func:`write_weights_report`), as ``nncompare weights``
  writes it: ``report.html``, ``results.csv`` (one row per layer) and ``results.json``
  (everything, with provenance; strict JSON).

It reads results only: nothing here runs a model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nncompare._io import atomic_write
from nncompare.report._json import dumps_strict, to_jsonable

__all__ = [
    "WEIGHTS_FORMAT",
    "weights_csv",
    "weights_figures",
    "weights_section",
    "write_weights_files",
    "write_weights_report",
]

WEIGHTS_FORMAT = "nncompare.weights"
WEIGHTS_FORMAT_VERSION = 1
MAX_SPECTRA = 6  # layers drawn per network in the spectra figure

_COMPARISON_COLUMNS = (
    ("layer", "Layer"),
    ("depth", "Depth"),
    ("S", "S (eq. 6)"),
    ("cosine", "cos θ (eq. 5)"),
    ("zero_point", "Zero point"),
    ("upper_bound", "Upper bound"),
    ("bw", "Bures–Wasserstein"),
    ("r_eff_a", "r_eff A"),
    ("r_eff_b", "r_eff B"),
    ("gamma_a", "γ A"),
    ("c_in_a", "C_in A"),
    ("c_out_a", "C_out A"),
    ("alignment_residual", "Alignment residual"),
    ("note", "Note"),
)
_SPECTRA_COLUMNS = (
    ("layer", "Layer"),
    ("d", "D"),
    ("c_out", "C_out"),
    ("gamma", "γ = D / C_out"),
    ("noise_edge", "Noise edge (1+√γ)²"),
    ("top", "Largest eigenvalue"),
    ("n_learned", "Learned eigenvalues"),
    ("r_eff", "r_eff (eq. 4)"),
)


def _summary(obj: Any) -> Any:
    from nncompare.weights.experiments import WeightsSummary

    if not isinstance(obj, WeightsSummary):
        raise TypeError(
            "the weights section expects the WeightsSummary of "
            f"nncompare.weights.experiments.weights_summary, got {type(obj).__name__}; "
            "compute it with weights_summary(model_a, model_b, data)."
        )
    return obj


def _spectra_inputs(summary: Any) -> dict[str, Any]:
    """Up to MAX_SPECTRA evenly spaced layers per network: label -> shrunk eigenvalues."""
    import numpy as np

    out: dict[str, Any] = {}
    for net, df in summary.spectra.items():
        df = df[df["n_learned"] > 0] if len(df) else df  # all-zero spectra say nothing
        if not len(df):
            continue
        idx = np.unique(np.linspace(0, len(df) - 1, min(MAX_SPECTRA, len(df))).round().astype(int))
        prefix = f"{net}: " if len(summary.spectra) > 1 else ""
        for i in idx:
            row = df.iloc[int(i)]
            out[f"{prefix}{row['layer']}"] = np.asarray(row["shrunk"], dtype=float)
    return out


def _figure_specs(summary: Any) -> list[tuple[str, Any, str, str]]:
    """(file stem, make, alt text, caption) of each figure, in section order."""
    from nncompare import plot

    specs: list[tuple[str, Any, str, str]] = []
    names = summary.names
    for i, net in enumerate(names):
        ef = summary.eigenfilters.get(net) or {}
        if not ef:
            continue
        specs.append(
            (
                f"weights_eigenfilters_{'ab'[i]}",
                lambda ef=ef, net=net: plot.weights_eigenfilters(
                    ef, title=f"{net}: spatial eigenfilters"
                ),
                f"Grid of the spatial eigenfilters of {net}: conv layers (rows) by rank",
                f"{net}: eigenvectors of each conv layer's spatial covariance as k × k images, "
                "by rank (Fig. 1). Framed ranks are near-degenerate: their order may swap.",
            )
        )
    with_filters = [n for n in names if summary.eigenfilters.get(n)]
    if with_filters:
        ef_a = summary.eigenfilters[with_filters[0]]
        ef_b = summary.eigenfilters[with_filters[1]] if len(with_filters) > 1 else None
        labels = (with_filters[0], with_filters[1] if ef_b is not None else with_filters[0])
        specs.append(
            (
                "weights_overlap",
                lambda: plot.weights_overlap(ef_a, ef_b, rank=3, labels=labels),
                "Overlap of the top-3 spatial eigen-subspaces between conv layers",
                "Overlap of the top-3 spatial eigen-subspaces (mean squared cosine of the "
                "principal angles; chance 3/k²) between conv layers"
                + (f" of {labels[0]} and {labels[1]}." if ef_b is not None else "."),
            )
        )
    spectra = _spectra_inputs(summary)
    if spectra:
        specs.append(
            (
                "weights_spectra",
                lambda: plot.weights_spectra(spectra),
                "Shrunk channel-covariance spectra of some weight layers, r_eff marked",
                "Eigenvalues of the channel-weight covariances (init variance = 1) after the "
                "spiked-model shrinkage (eq. 3); dotted lines: effective rank r_eff (eq. 4). "
                f"Up to {MAX_SPECTRA} layers with a learned component per network; the "
                "table has all (a layer whose eigenvalues all lie inside the noise bulk has "
                "0 learned eigenvalues).",
            )
        )
    if summary.eigenvector_similarity:
        panels = dict(summary.eigenvector_similarity)
        specs.append(
            (
                "weights_eigenvector_similarity",
                lambda: plot.weights_eigenvector_similarity(panels, labels=names[:2]),
                "Panels of the absolute cosines between the leading aligned eigenvectors "
                "of the two networks' weight covariances, one per layer",
                "|cos| between the leading eigenvectors of the aligned weight covariances of "
                f"{names[0]} (rows) and {names[1]} (columns), per layer (Fig. 3): white at "
                "the chance level 1/√d, black at 5× chance; arrows mark r_eff.",
            )
        )
    comp = summary.comparison
    if comp is not None and len(comp) and comp["S"].notna().any():
        specs.append(
            (
                "weights_similarity_by_depth",
                lambda: plot.weights_similarity_by_depth(comp, title="S by depth"),
                "Normalised covariance similarity S against layer depth",
                "Normalised similarity S (eq. 6) of the aligned, shrunk weight covariances by "
                "depth (Fig. 4): 0 is a random rotation of A's covariance, 1 a fresh estimate "
                "of it from as many neurons. Gaps: layers without a learned component.",
            )
        )
    return specs


def weights_figures(obj: Any) -> dict[str, Any]:
    """The section's figures by file stem (``weights_eigenfilters_a``/``_b``,
    ``weights_overlap``, ``weights_spectra``, ``weights_eigenvector_similarity``,
    ``weights_similarity_by_depth``; those that apply)."""
    return {name: make() for name, make, _, _ in _figure_specs(_summary(obj))}


def _table(rows: list[dict[str, Any]], columns: tuple[tuple[str, str], ...]) -> str:
    from nncompare.report._html import _e
    from nncompare.report._sections import name_cell, results_table

    def cell(c: str, v: Any) -> str | None:
        if c == "layer":
            return name_cell(v)
        if c == "note":
            return f'<td class="err">{_e(v) if v else ""}</td>'
        return None

    return results_table(
        [(c, h) for c, h in columns if any(c in r for r in rows)],
        rows,
        text=("layer", "note"),
        cell=cell,
    )


def weights_section(obj: Any, figs: Any, *, heading: str = "h2") -> str:
    """The weights section as an HTML fragment.

    Parameters
    ----------
    obj : WeightsSummary
        From :func:`nncompare.weights.experiments.weights_summary`.
    figs : nncompare.report._html._Figures
        The report's figure renderer (embeds each figure, passes it to the figure sink).
    heading : {"h2", "h3"}
        Level of the section heading (sub-headings are one level below).
    """
    from nncompare.report._html import _e

    summary = _summary(obj)
    sub = "h3" if heading == "h2" else "h4"
    names = summary.names
    who = " and ".join(_e(n) for n in names)
    parts = [
        f'<{heading} id="weights">Weights: what {who} learned</{heading}>',
        '<p class="note">The weight lens of Guth &amp; Ménard ("On the universality of neural '
        'encodings in CNNs"): the spatial filters of k × k convolutions are described by the '
        "eigenvectors of their covariance (a small, largely universal set), and the channel "
        "weights by their covariance, normalised so that the initialisation variance is 1, "
        "whose eigenvalues are shrunk to remove the noise of a finite number of neurons "
        "(eq. 3); the effective rank r_eff (eq. 4) is the eigenvalue-weighted mean rank."
        + (
            " The two networks' channel bases are aligned on the inputs' activations "
            "(orthogonal Procrustes, eq. 1-2) before their covariances are compared: "
            "eigenvector similarity (Fig. 3) and the normalised similarity S (eq. 6)."
            if summary.comparison is not None
            else ""
        )
        + "</p>",
    ]
    specs = {name: (make, alt, caption) for name, make, alt, caption in _figure_specs(summary)}

    def render(*stems: str) -> str:
        blocks = [
            figs.render(specs[s][0], name=s, alt=specs[s][1], caption=specs[s][2])
            for s in stems
            if s in specs
        ]
        return f'<div class="figs">{"".join(blocks)}</div>' if blocks else ""

    filters = [s for s in specs if s.startswith("weights_eigenfilters_")]
    if filters or "weights_overlap" in specs:
        parts.append(f"<{sub}>Spatial eigenfilters</{sub}>")
        parts.append(render(*filters, "weights_overlap"))
    else:
        parts.append(
            '<p class="note">No k × k convolution (k ≥ 2): no spatial eigenfilters to show.</p>'
        )
    parts.append(f"<{sub}>Channel-weight spectra</{sub}>")
    if "weights_spectra" in specs:
        parts.append(render("weights_spectra"))
    else:
        parts.append(
            '<p class="note">No layer has a learned component: every eigenvalue of every '
            "channel covariance lies inside the noise bulk of its initialisation (below "
            "(1+√γ)²), so the shrunk spectra are zero; the table gives the largest "
            "eigenvalue of each layer against that edge.</p>"
        )
    for net, df in summary.spectra.items():
        if len(df):
            if len(summary.spectra) > 1:
                parts.append(f'<p class="note">{_e(net)}</p>')
            parts.append(_table(df.drop(columns=["eigenvalues", "shrunk"]).to_dict("records"),
                                _SPECTRA_COLUMNS))  # fmt: skip
    if summary.comparison is not None:
        parts.append(f"<{sub}>Aligned channel weights of {who}</{sub}>")
        parts.append(render("weights_eigenvector_similarity", "weights_similarity_by_depth"))
        parts.append(_table(summary.comparison.to_dict("records"), _COMPARISON_COLUMNS))
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------- files


def weights_csv(obj: Any) -> str:
    """One row per layer as spreadsheet-safe CSV text: the comparison of two networks, or
    the spectra of one (see :func:`nncompare.report.write_report`'s notes on formula
    injection)."""
    import pandas as pd

    from nncompare.report._files import neutralise_formula

    summary = _summary(obj)
    if summary.comparison is not None:
        out = summary.comparison.copy(deep=False)
    else:
        frames = [
            df.drop(columns=["eigenvalues", "shrunk"]).assign(model=net)
            for net, df in summary.spectra.items()
        ]
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs = {}
    for col in out.columns:
        if out[col].dtype.kind not in "biufcmM":
            out[col] = out[col].astype(object).map(neutralise_formula)
    out.columns = [neutralise_formula(str(c)) for c in out.columns]
    return out.to_csv(index=False, lineterminator="\r\n")


def _json_doc(summary: Any, title: str, provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "format": WEIGHTS_FORMAT,
        "format_version": WEIGHTS_FORMAT_VERSION,
        "title": title,
        "provenance": to_jsonable(dict(provenance or {})),
        **to_jsonable(summary.to_dict()),
    }


def write_weights_files(
    obj: Any,
    out_dir: str | os.PathLike[str],
    *,
    stem: str = "results",
    title: str = "",
    provenance: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.json``."""
    summary = _summary(obj)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    atomic_write(csv_path, weights_csv(summary))
    atomic_write(json_path, dumps_strict(_json_doc(summary, title, provenance)) + "\n")
    return csv_path, json_path


def write_weights_report(
    obj: Any,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    image_format: str = "png",
    dpi: int = 150,
    formats: tuple[str, ...] | list[str] | str = (),
    provenance: Mapping[str, Any] | None = None,
) -> Any:
    """Write a weights report folder: ``report.html``, ``results.csv``, ``results.json``.

    Parameters
    ----------
    obj : WeightsSummary
        From :func:`nncompare.weights.experiments.weights_summary`.
    out_dir : path
        Created if needed; existing report files in it are replaced.
    title : str, optional
        Default: "Weights of <A> vs <B>" (or "Weights of <A>").
    image_format : {"png", "svg"}
    dpi : int
    formats : sequence of {"png", "pdf", "svg"}
        Also write each figure as a file in ``out_dir/figures/``.
    provenance : mapping, optional
        Shown at the end and stored in ``results.json``.

    Returns
    -------
    nncompare.report.ReportFiles
    """
    from nncompare.report._html import _date, _e
    from nncompare.report._sections import Section, write_section_report

    summary = _summary(obj)
    names = summary.names
    title = str(title if title is not None else "Weights of " + " vs ".join(names))
    prov = dict(provenance or {})
    models = " &nbsp;·&nbsp; ".join(f"Model {'AB'[i]}: <b>{_e(n)}</b>" for i, n in enumerate(names))
    n = prov.get("n_samples")
    section = Section(
        title=title,
        meta=models
        + (f" &nbsp;·&nbsp; aligned on n = <b>{_e(n)}</b> inputs" if n is not None else "")
        + f" &nbsp;·&nbsp; {_e(_date(prov))}",
        body=lambda figs: weights_section(summary, figs),
        footer="Machine-readable results: "
        '<a href="results.csv">results.csv</a> (one row per layer) and '
        '<a href="results.json">results.json</a> (eigenfilters, spectra, comparison, '
        "eigenvector-similarity matrices, provenance).",
        write_files=lambda out: write_weights_files(summary, out, title=title, provenance=prov),
        provenance=prov,
    )
    return write_section_report(
        section, out_dir, image_format=image_format, dpi=dpi, formats=formats
    )
