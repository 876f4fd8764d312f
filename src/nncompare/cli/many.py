"""``nncompare compare-many``: every pair of a set of models, their distance matrices and clusters.

Thin: the models load as ``nncompare compare`` loads them (:mod:`nncompare.cli.loading`,
safe by default) — each MODEL a model spec, or with ``--factory`` a checkpoint file or a
directory of them — the inputs as it takes them, then :func:`nncompare.compare_many`
compares every pair and :func:`nncompare.report._many.write_many_report` writes the
matrices, dendrograms, MDS and group summaries. Every bad input is a one-line error naming
the option. :mod:`nncompare.cli.main` registers :func:`compare_many_command`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from nncompare.cli._common import DataArgs, check_models_run, data_args, out_option, safety_options
from nncompare.cli._options import parse_formats

__all__ = ["compare_many_command"]

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".th", ".bin", ".safetensors")

_EPILOG = """\b
Each MODEL is, as in `nncompare compare`:
  * a torch.export archive (.pt2), or a pickle/TorchScript file with --allow-pickle;
  * 'module:factory(key=literal, ...)' of nncompare.models (or a --trust-module);
  * with --factory SPEC: a state-dict checkpoint, or a directory whose checkpoint files
    (.pt, .pth, .th, .bin, .safetensors) are all taken, in name order.
Models are named after their file stem (or spec); --metadata FILE gives each name its
attributes: a .json mapping name -> {key: value}, or a .csv with a 'model' column.
"""


def _split(values: tuple[str, ...]) -> list[str]:
    out = []
    for v in values:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def _expand(models: tuple[str, ...], factory: str | None) -> list[tuple[str, str | None]]:
    """(spec, weights) per model."""
    if factory is None:
        for m in models:
            if Path(m).is_dir():
                raise click.BadParameter(
                    f"{m!r} is a directory; a directory of checkpoints needs --factory SPEC "
                    "(the architecture to load them into)",
                    param_hint="MODEL",
                )
        return [(m, None) for m in models]
    out: list[tuple[str, str | None]] = []
    for m in models:
        p = Path(m)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix in CHECKPOINT_SUFFIXES)
            if not files:
                raise click.BadParameter(
                    f"the directory {m!r} holds no checkpoint files "
                    f"({', '.join(CHECKPOINT_SUFFIXES)})",
                    param_hint="MODEL",
                )
            out += [(factory, str(f)) for f in files]
        elif p.is_file():
            out.append((factory, str(p)))
        else:
            raise click.BadParameter(
                f"{m!r} is neither a checkpoint file nor a directory; with --factory every "
                "MODEL is a checkpoint (or a directory of them)",
                param_hint="MODEL",
            )
    return out


def _names(entries: list[tuple[str, str | None]]) -> list[str]:
    from nncompare.cli.main import _short

    names = [_short(spec, w) for spec, w in entries]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if names.count(n) > 1:
            seen[n] = seen.get(n, 0) + 1
            out.append(f"{n}#{seen[n]}")
        else:
            out.append(n)
    return out


def _read_metadata(path: str | None, names: list[str]) -> dict[str, dict[str, Any]] | None:
    if path is None:
        return None
    p = Path(path)
    try:
        if p.suffix.lower() == ".json":
            raw = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
                raise click.BadParameter(
                    f"{p.name} must hold a JSON object mapping model name -> object of "
                    'attributes, e.g. {"net0": {"seed": 0, "lr": 0.1}}',
                    param_hint="--metadata",
                )
            meta = {str(k): dict(v) for k, v in raw.items()}
        elif p.suffix.lower() == ".csv":
            import pandas as pd

            df = pd.read_csv(p)
            if "model" not in df.columns:
                raise click.BadParameter(
                    f"{p.name} needs a 'model' column naming each model; its columns are "
                    f"{list(df.columns)}",
                    param_hint="--metadata",
                )
            meta = {
                str(r["model"]): {k: v for k, v in r.items() if k != "model"}
                for r in df.to_dict(orient="records")
            }
        else:
            raise click.BadParameter(
                f"expected a .json or .csv file; got {p.name}", param_hint="--metadata"
            )
    except (OSError, ValueError) as exc:
        if isinstance(exc, click.BadParameter):
            raise
        raise click.BadParameter(f"cannot read {p.name}: {exc}", param_hint="--metadata") from exc
    missing = [n for n in names if n not in meta]
    if missing:
        raise click.BadParameter(
            f"{p.name} has no entry for the models {missing[:6]} (the models are named "
            f"{names[:6]}{', …' if len(names) > 6 else ''})",
            param_hint="--metadata",
        )
    return {n: meta[n] for n in names}


@click.command("compare-many", epilog=_EPILOG)
@click.argument("models", nargs=-1, required=True)
@data_args
@click.option(
    "--factory",
    default=None,
    metavar="SPEC",
    help="Architecture the MODEL checkpoints load into, e.g. "
    "'nncompare.models:SmallCNN(in_channels=1)'.",
)
@click.option(
    "--layer",
    "layer_texts",
    multiple=True,
    metavar="L[,L2...]",
    help="Layers compared (the same names in every model). Repeatable. Default: the "
    "readable default layers (nncompare layers MODEL).",
)
@click.option(
    "--measure",
    "measure_specs",
    multiple=True,
    metavar="NAME[:K=V,...]",
    help="Measures (repeatable). Default: pwcca and cca.",
)
@click.option(
    "--conv",
    default="mean",
    show_default=True,
    type=click.Choice(["mean", "samples", "flatten"], case_sensitive=False),
    help="Reshape policy for convolutional activations (the spatial mean by default).",
)
@click.option(
    "--metadata", "metadata_path", default=None, type=click.Path(exists=True, dir_okay=False)
)
@click.option(
    "--group-by",
    "group_by",
    multiple=True,
    metavar="KEY",
    help="Metadata key whose groups are summarised (mean ± std distance within and between "
    "groups). Repeatable.",
)
@click.option(
    "--n-clusters", default=None, type=click.IntRange(1), help="Flat clusters per dendrogram."
)
@click.option(
    "--linkage",
    default="average",
    show_default=True,
    type=click.Choice(["average", "complete", "single", "weighted", "ward"]),
)
@click.option("--title", default=None, help="Report title.")
@click.option("--formats", default="png", show_default=True, metavar="png,pdf,svg")
@click.option("--progress/--no-progress", default=False)
@out_option("nncompare-many")
@safety_options(pickle_help="Load files that run code when read (pickles).", trust_help=None)
def compare_many_command(
    models: tuple[str, ...],
    data: DataArgs,
    factory: str | None,
    layer_texts: tuple[str, ...],
    measure_specs: tuple[str, ...],
    conv: str,
    metadata_path: str | None,
    group_by: tuple[str, ...],
    n_clusters: int | None,
    linkage: str,
    title: str | None,
    formats: str,
    progress: bool,
    out_dir: str,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
) -> None:
    """Compare every pair of MODELS layer by layer: distance matrices, clusters, MDS.

    Each model runs over the inputs once; every unordered pair is compared at each
    layer with each measure (nc.compare_many). OUT gets report.html (per layer and
    measure: the distance matrix in dendrogram order with metadata colour bars, the MDS
    embedding, group summaries), results.csv/json (every pair), matrices/*.csv,
    clusters.csv, metadata.csv, groups.csv (with --group-by) and figures/.

    \b
    Example (checkpoints of one architecture, trained with several learning rates):
      nncompare compare-many runs/ --factory 'nncompare.models:SmallCNN(in_channels=1)' \\
          --data digits.npz --layer relu3 --metadata runs.csv --group-by lr \\
          --n-clusters 3 --out many-report
    """
    from nncompare.cli._options import parse_measures
    from nncompare.cli.loading import load_model

    figure_formats = parse_formats(formats)
    entries = _expand(models, factory)
    if len(entries) < 2:
        raise click.BadParameter(
            f"compare-many needs at least two models; got {len(entries)}", param_hint="MODELS"
        )
    names = _names(entries)
    metadata = _read_metadata(metadata_path, names)
    if group_by and metadata is None:
        raise click.BadParameter(
            "groups come from the models' metadata; pass --metadata FILE too",
            param_hint="--group-by",
        )
    if metadata is not None:
        for key in group_by:
            lacking = [n for n in names if key not in metadata[n]]
            if lacking:
                raise click.BadParameter(
                    f"{key!r} is not in the metadata of {lacking[:4]}; the keys are "
                    f"{sorted(metadata[names[0]])}",
                    param_hint="--group-by",
                )
    measures = parse_measures(measure_specs or ("pwcca", "cca"), conv=conv.lower())
    nets = {}
    for name, (spec, weights) in zip(names, entries, strict=True):
        nets[name] = load_model(
            spec, weights=weights, allow_pickle=allow_pickle, trust_modules=trust_modules
        )
    runs = [(n, spec, nets[n]) for n, (spec, _) in zip(names, entries, strict=True)]
    inputs, x = data.read(runs)
    check_models_run(runs, x, data.data_path, what="{label} ({spec})")
    layers = _split(layer_texts) or None
    if layers is not None:
        from nncompare.capture import LayerNotFoundError, resolve_layers

        for n, net in nets.items():
            try:
                resolve_layers(net, layers)
            except LayerNotFoundError as exc:
                raise click.BadParameter(f"{n}: {exc}", param_hint="--layer") from exc
    from nncompare.analyses.many import compare_many
    from nncompare.report._many import write_many_report

    click.echo(
        f"models: {len(nets)} ({len(nets) * (len(nets) - 1) // 2} pairs); measures: "
        f"{', '.join(measures)}"
    )
    df = compare_many(
        nets,
        x,
        layers=layers,
        measures=measures,
        conv=conv.lower(),
        batch_size=data.batch_size,
        progress=progress,
        provenance={
            "data": Path(data.data_path).name,
            "preprocessing": inputs.preprocessing,
            "command": " ".join(sys.argv),
        },
    )
    errors = df[df["value"].isna()]
    if len(errors):
        r = errors.iloc[0]
        raise click.ClickException(
            f"{len(errors)} comparisons gave no value (e.g. {r['model_a']} vs {r['model_b']} "
            f"at {r['layer_a']}, {r['measure']}: {r.get('error')}); a distance matrix needs "
            "every pair: choose other --layer/--measure or more --data samples"
        )
    rep = write_many_report(
        df,
        out_dir,
        metadata=metadata,
        group_by=group_by,
        n_clusters=n_clusters,
        method=linkage,
        title=title,
        formats=figure_formats,
        provenance=df.attrs.get("provenance"),
    )
    click.echo(f"report:  {Path(rep.html).resolve()}")
    click.echo(
        f"results: {Path(rep.csv).resolve()}, matrices in {Path(out_dir).resolve() / 'matrices'}"
    )
