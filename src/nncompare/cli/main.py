"""``nncompare`` command-line interface (click).

Commands are thin wrappers over public functions; heavy imports happen inside the
commands so that ``nncompare --version`` answers instantly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from nncompare._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nncompare")
def cli() -> None:
    """How alike are two neural networks, and in what way."""


@cli.command()
@click.option(
    "--out",
    "out_dir",
    default="nncompare-report",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for the report.",
)
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(1, 500))
@click.option("--seeds", default="0,1", show_default=True, help="Seeds of the two networks.")
def demo(out_dir: str, epochs: int, seeds: str) -> None:
    """Train two small CNNs on the embedded digits and compare every layer pair."""
    import torch

    from nncompare.demo import run_demo

    # The demo's networks are tiny: one intra-op thread is faster than two, and far faster
    # when the cores are shared. This is the CLI process, so it is ours to set.
    torch.set_num_threads(1)

    try:
        s = tuple(int(v) for v in seeds.split(","))
    except ValueError:
        raise click.BadParameter(f"expected two integers like '0,1'; got {seeds!r}") from None
    if len(s) != 2:
        raise click.BadParameter(f"expected two seeds like '0,1'; got {seeds!r}")
    result = run_demo(out_dir, seeds=s, epochs=epochs, log=click.echo)
    rep = result.report
    click.echo(f"report:  {Path(rep.html).resolve()}")
    click.echo(f"results: {Path(rep.csv).resolve()}, {Path(rep.json).resolve()}")
    click.echo(f"done in {result.seconds['total']:.1f} s")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def measures(as_json: bool) -> None:
    """List the similarity measures with their properties."""
    from nncompare.measures import available

    infos = available()
    if as_json:
        import json

        click.echo(json.dumps({k: v.as_dict() for k, v in infos.items()}, indent=2))
        return
    header = f"{'name':<18} {'higher':<7} {'metric':<7} {'sym':<5} {'stream':<7} invariances"
    click.echo(header)
    click.echo("-" * len(header + "-" * 30))
    for name, info in infos.items():
        inv = ", ".join(sorted(info.invariances)) or "-"
        click.echo(
            f"{name:<18} {_yn(info.higher_is_better):<7} {_yn(info.is_metric):<7} "
            f"{_yn(info.symmetric):<5} {_yn(info.streaming):<7} {inv}"
        )
        click.echo(f"{'':<18} {info.description} [{info.reference}]")


def _yn(b: bool) -> str:
    return "yes" if b else "no"


_MODEL_HELP = (
    "A TorchScript archive (.pt/.ts), a torch.export archive (.pt2), or 'module:factory' "
    "(optionally with keyword arguments: 'nncompare.models:cifar_resnet(depth=20)')."
)


@cli.command()
@click.argument("model")
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False),
    help="State-dict checkpoint for a module:factory model.",
)
@click.option(
    "--input-shape", default=None, help="Sample input shape to show output shapes, e.g. 1,3,32,32."
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Allow checkpoints that are arbitrary pickles (only for files you trust).",
)
def layers(model: str, weights: str | None, input_shape: str | None, allow_pickle: bool) -> None:
    """List the layers of MODEL (names usable in --layers-a/--layers-b)."""
    import torch

    from nncompare.capture import format_layer_table, list_layers
    from nncompare.cli.loading import load_model

    net = load_model(model, weights=weights, allow_pickle=allow_pickle)
    sample = None
    if input_shape:
        shape = tuple(int(v) for v in input_shape.split(","))
        sample = torch.zeros(shape)
    click.echo(format_layer_table(list_layers(net, sample)))


@cli.command()
@click.argument("model_a")
@click.argument("model_b")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Inputs as .npy or .npz (key 'x' or the only array).",
)
@click.option("--x-key", default=None, help="Array name of the inputs in an .npz.")
@click.option("--weights-a", type=click.Path(exists=True, dir_okay=False))
@click.option("--weights-b", type=click.Path(exists=True, dir_okay=False))
@click.option("--layers-a", default=None, help="Comma-separated names or globs (default: all).")
@click.option("--layers-b", default=None, help="Comma-separated names or globs (default: all).")
@click.option(
    "--measure",
    "measure_names",
    multiple=True,
    default=("cka", "svcca", "pwcca"),
    show_default=True,
    help="Measure name; repeat for several.",
)
@click.option(
    "--conv",
    default="mean",
    show_default=True,
    type=click.Choice(["mean", "samples", "flatten"]),
    help="Reshape policy for convolutional activations.",
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1))
@click.option("--max-samples", default=None, type=click.IntRange(1))
@click.option(
    "--scale",
    default=None,
    type=float,
    help="Multiply inputs by this (e.g. 1/255 for uint8 images).",
)
@click.option(
    "--out",
    "out_dir",
    default="nncompare-report",
    show_default=True,
    type=click.Path(file_okay=False),
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Allow checkpoints that are arbitrary pickles (only for files you trust).",
)
@click.option("--progress/--no-progress", default=True)
def compare(
    model_a: str,
    model_b: str,
    data_path: str,
    x_key: str | None,
    weights_a: str | None,
    weights_b: str | None,
    layers_a: str | None,
    layers_b: str | None,
    measure_names: tuple[str, ...],
    conv: str,
    batch_size: int,
    max_samples: int | None,
    scale: float | None,
    out_dir: str,
    allow_pickle: bool,
    progress: bool,
) -> None:
    """Compare every layer of MODEL_A with every layer of MODEL_B on the inputs in --data."""
    import torch

    from nncompare.analyses.compare import compare_models
    from nncompare.cli.loading import load_model
    from nncompare.data import load_array_file
    from nncompare.measures import get
    from nncompare.report import write_report

    for m in measure_names:
        try:
            get(m)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--measure") from None
    net_a = load_model(model_a, weights=weights_a, allow_pickle=allow_pickle)
    net_b = load_model(model_b, weights=weights_b, allow_pickle=allow_pickle)
    ds = load_array_file(data_path, x_key=x_key, as_tensor=True)
    x = ds.x
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    if scale is not None:
        x = x * scale
    df = compare_models(
        net_a,
        net_b,
        x,
        layers_a=_split(layers_a),
        layers_b=_split(layers_b),
        measures=list(measure_names),
        conv=conv,
        batch_size=batch_size,
        max_samples=max_samples,
        progress=progress,
        names=(_short(model_a, weights_a), _short(model_b, weights_b)),
        provenance={"data": str(Path(data_path).name), "command": " ".join(sys.argv)},
    )
    rep = write_report(df, out_dir)
    click.echo(f"report:  {Path(rep.html).resolve()}")
    click.echo(f"results: {Path(rep.csv).resolve()}, {Path(rep.json).resolve()}")


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise click.BadParameter("expected at least one layer name or pattern")
    return parts


def _short(spec: str, weights: str | None) -> str:
    base = Path(weights).stem if weights else spec
    return base if len(base) <= 40 else base[:18] + "…" + base[-18:]


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``nncompare`` console script."""
    return cli.main(args=argv, prog_name="nncompare")


if __name__ == "__main__":  # pragma: no cover
    main()
