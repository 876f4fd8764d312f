"""Self-contained reports of a layer-by-layer comparison.

:func:`write_report` turns a comparison (the tidy frame of :func:`nncompare.compare_models`,
a :class:`nncompare.ComparisonResult`, or the :class:`nncompare.GridResult` of
:func:`nncompare.pairwise`) into a folder with

* ``report.html`` — one file, no external resources and no script: summary, heatmaps,
  canonical-correlation spectra, SVCCA kept dimensions, every value, provenance;
* ``results.csv`` — the tidy table;
* ``results.json`` — the table plus its metadata (provenance, measures and their conventions,
  spectra, kept dims; in the form of ``DataFrame.attrs``) as strict JSON (NaN is written as
  ``null``);

each written atomically. :func:`load_results` reads ``results.json`` back into a frame.

:func:`write_stitching_report` writes the same folder for model stitching (one row per cut
and matching method, training histories, ``matrices.npz``); ``write_report(...,
stitching=results)`` adds a stitching section to a comparison report.

:func:`write_alignment_report` writes the folder of ``nncompare align`` (task-alignment
curves per layer, :mod:`nncompare.alignment`); ``write_report(..., alignment=frame)`` adds
an alignment section.

:func:`write_weights_report` writes the folder for the weight lens (eigenfilters, spectra,
aligned channel covariances of one or two networks); ``write_report(..., weights=summary)``
adds a weights section (the summary of :func:`nncompare.weights.experiments.weights_summary`).
"""

from nncompare.report._alignment import load_alignment_results, write_alignment_report
from nncompare.report._example import example_frame
from nncompare.report._files import ReportFiles, load_results, results_json, write_report
from nncompare.report._html import render_html
from nncompare.report._stitching import (
    StitchingData,
    load_stitching_results,
    stitching_figures,
    write_stitching_report,
)
from nncompare.report._weights import weights_figures, write_weights_report

__all__ = [
    "ReportFiles",
    "StitchingData",
    "example_frame",
    "load_alignment_results",
    "load_results",
    "load_stitching_results",
    "render_html",
    "results_json",
    "stitching_figures",
    "weights_figures",
    "write_alignment_report",
    "write_report",
    "write_stitching_report",
    "write_weights_report",
]
