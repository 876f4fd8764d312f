"""The report of a model set: distance matrices, clusters, MDS and group summaries.

:func:`write_many_report` turns the frame of :func:`nncompare.compare_many` into a folder

* ``report.html`` — per (layer, measure): the distance matrix in dendrogram order with the
  dendrogram and the metadata colour bars (Morcos et al. 2018, Fig. 5), the MDS embedding,
  and, per metadata column asked for, the mean ± std distance within and between groups;
* ``results.csv`` / ``results.json`` — the tidy frame (as :func:`nncompare.report.write_report`);
* ``matrices/<layer>__<measure>.csv`` — each square distance matrix (model names as index
  and header); ``metadata.csv`` — the models' metadata;
* ``clusters.csv`` — per (layer, measure, model): flat cluster, MDS coordinates, dendrogram
  position; ``groups.csv`` — the group summaries;
* ``figures/`` — every figure as a file (``formats``).

It reads results only: nothing here runs a model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nncompare._io import atomic_write

__all__ = ["write_many_report"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _stem(layer: str, measure: str) -> str:
    return f"{_UNSAFE.sub('_', layer).strip('._') or 'layer'}__{_UNSAFE.sub('_', measure)}"


def _table(df: Any) -> str:
    from nncompare.report._html import _e, _fmt_num

    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    rows = []
    for r in df.itertuples(index=False):
        cells = "".join(f"<td>{_fmt_num(v) if isinstance(v, float) else _e(v)}</td>" for v in r)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def many_summary(
    frame: Any,
    *,
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    group_by: Sequence[str] = (),
    n_clusters: int | None = None,
    method: str = "average",
) -> dict[str, Any]:
    """Matrices, clusterings and group summaries of every (layer, measure) of the frame."""
    import pandas as pd

    from nncompare.analyses.cluster import cluster, group_summary, model_matrices

    mats = model_matrices(frame, metadata=metadata)
    n_models = len(next(iter(mats.values())).names)
    k = None if n_clusters is None else min(int(n_clusters), n_models)
    clusterings = {key: cluster(mm, method=method, n_clusters=k) for key, mm in mats.items()}
    tables = []
    for (layer, measure), c in clusterings.items():
        t = c.to_frame()
        t.insert(0, "measure", measure)
        t.insert(0, "layer", layer)
        tables.append(t)
    groups = []
    for mm in mats.values():
        for key in group_by:
            t = group_summary(mm, key)
            t.insert(0, "key", key)
            groups.append(t)
    return {
        "matrices": mats,
        "clusterings": clusterings,
        "clusters": pd.concat(tables, ignore_index=True),
        "groups": pd.concat(groups, ignore_index=True) if groups else None,
    }


def write_many_report(
    frame: Any,
    out_dir: str | os.PathLike[str],
    *,
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    group_by: Sequence[str] = (),
    n_clusters: int | None = None,
    method: str = "average",
    title: str | None = None,
    image_format: str = "png",
    dpi: int = 130,
    formats: tuple[str, ...] | list[str] | str = ("png",),
    provenance: Mapping[str, Any] | None = None,
) -> Any:
    """Write the report folder of a model set (see the module docstring).

    Parameters
    ----------
    frame : pandas.DataFrame
        From :func:`nncompare.compare_many` (matched layers).
    out_dir : path
        Created if needed; existing report files in it are replaced.
    metadata : mapping model name -> dict, optional
        Each model's attributes (seed, width, lr, labels, ...): colour bars, columns of
        ``clusters.csv`` and ``metadata.csv``.
    group_by : sequence of str
        Metadata columns whose groups are summarised (within / between, mean ± std).
    n_clusters : int, optional
        Flat clusters cut from each dendrogram (at most the number of models).
    method : str, default "average"
        Linkage of :func:`nncompare.analyses.cluster`.
    title, image_format, dpi, formats, provenance
        As in :func:`nncompare.report.write_weights_report`.

    Returns
    -------
    nncompare.report.ReportFiles
    """
    from nncompare import __version__
    from nncompare.plot.many import many_heatmap, many_mds
    from nncompare.report._files import results_csv, results_json
    from nncompare.report._html import _date, _e
    from nncompare.report._sections import Section, write_section_report

    if metadata is not None:
        bad = [k for k in group_by if not all(k in dict(v) for v in metadata.values())]
    else:
        bad = list(group_by)
    if bad:
        raise ValueError(
            f"group_by names {bad}, which not every model's metadata has; give each model "
            "these keys in metadata, or drop them from group_by."
        )
    summary = many_summary(
        frame, metadata=metadata, group_by=group_by, n_clusters=n_clusters, method=method
    )
    mats, clusterings = summary["matrices"], summary["clusterings"]
    names = next(iter(mats.values())).names
    title = str(title if title is not None else f"{len(names)} models")
    out = Path(out_dir)
    (out / "matrices").mkdir(parents=True, exist_ok=True)
    for (layer, measure), mm in mats.items():
        atomic_write(out / "matrices" / f"{_stem(layer, measure)}.csv", mm.to_frame().to_csv())
    meta_frame = next(iter(mats.values())).metadata
    atomic_write(out / "metadata.csv", meta_frame.to_csv())
    atomic_write(out / "clusters.csv", summary["clusters"].to_csv(index=False))
    if summary["groups"] is not None:
        atomic_write(out / "groups.csv", summary["groups"].to_csv(index=False))
    csv_path, json_path = out / "results.csv", out / "results.json"
    atomic_write(csv_path, results_csv(frame))
    atomic_write(json_path, results_json(frame))

    prov = dict(provenance or {})

    def body(figs: Any) -> str:
        parts = [
            '<p class="note">Each unordered pair of models compared once per layer and measure '
            "(nc.compare_many); distances are the measures' distances (1 − similarity for the CCA "
            "and CKA measures). Clusters: scipy hierarchical clustering "
            f"({_e(method)} linkage); MDS: classical (Torgerson).</p>",
        ]
        for (layer, measure), c in clusterings.items():
            stem = _stem(layer, measure)
            parts.append(f"<h2>{_e(measure)} at {_e(layer)}</h2>")
            parts.append(
                figs.render(
                    lambda c=c: many_heatmap(c),
                    alt=f"{measure} distance matrix at {layer}",
                    caption="Distances in dendrogram order, the dendrogram above and the metadata "
                    f"as colour bars (matrices/{stem}.csv).",
                    name=f"heatmap_{stem}",
                )
            )
            parts.append(
                figs.render(
                    lambda c=c: many_mds(c),
                    alt=f"MDS embedding of the models, {measure} at {layer}",
                    caption=f"MDS embedding (Kruskal stress-1 {c.stress:.3f}).",
                    name=f"mds_{stem}",
                )
            )
            if summary["groups"] is not None:
                g = summary["groups"]
                g = g[(g["layer"] == layer) & (g["measure"] == measure)]
                for key in group_by:
                    sub = g[g["key"] == key]
                    parts.append(
                        f"<h3>{_e(measure)} distance within and between groups of {_e(key)}</h3>"
                    )
                    parts.append(_table(sub[["group_a", "group_b", "n_pairs", "mean", "std"]]))
        return "\n".join(parts)

    section = Section(
        title=title,
        meta=f"{len(names)} models: {_e(', '.join(names))} &nbsp;·&nbsp; {_e(_date(prov))}",
        body=body,
        footer="Files: "
        '<a href="results.csv">results.csv</a>, <a href="clusters.csv">clusters.csv</a>, '
        '<a href="metadata.csv">metadata.csv</a>'
        + (', <a href="groups.csv">groups.csv</a>' if summary["groups"] is not None else "")
        + ", matrices/*.csv.",
        write_files=lambda out: (csv_path, json_path),
        provenance=prov,
        version=__version__,
    )
    return write_section_report(section, out, image_format=image_format, dpi=dpi, formats=formats)
