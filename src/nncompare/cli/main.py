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
from nncompare.cli._errors import DEBUG_KEY, NncompareGroup


@click.group(cls=NncompareGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nncompare")
@click.option(
    "--debug",
    is_flag=True,
    help="On an error, show the full Python traceback (also: NNCOMPARE_DEBUG=1).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """How alike are two neural networks, and in what way.

    Errors are reported in one line; `nncompare --debug COMMAND ...` shows the traceback.
    """
    ctx.meta[DEBUG_KEY] = debug


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


_MODEL_HELP = """\b
MODEL is a file or 'module:factory':
  * a torch.export archive (.pt2): checked part by part; pickled parts,
    compiled code, non-aten operators and code strings are refused;
  * a TorchScript archive or a torch.save(model) pickle: these are programs
    and load only with --allow-pickle;
  * 'module:factory' with literal keyword arguments, e.g.
    'nncompare.models:cifar_resnet(depth=20)'. This IMPORTS module (its
    top-level code runs, as with any import; the current directory is not
    searched: use PYTHONPATH=. for a module there). Only torch.nn.Module
    classes and functions of nncompare.models or of modules trusted with
    --trust-module are called; os:system and the like are refused.
"""

_TRUST_HELP = (
    "Allow factory functions defined in this module and its submodules "
    "(e.g. --trust-module mypkg trusts mypkg.models:build). Repeatable."
)
_PICKLE_HELP = (
    "Load files that run code when read: pickles (torch.save(model), checkpoints with "
    "Python objects), TorchScript archives, .pt2 archives with pickled parts. "
    "Only for files you trust."
)


def _first_layer(net: Any) -> tuple[str, str, int, int] | None:
    """(name, kind, input ndim, channels or features) of the first weighted layer."""
    import torch

    kinds = {torch.nn.Conv1d: 3, torch.nn.Conv2d: 4, torch.nn.Conv3d: 5}
    for name, module in net.named_modules():
        for cls, ndim in kinds.items():
            if isinstance(module, cls):
                return name, cls.__name__, ndim, int(module.in_channels)
        if isinstance(module, torch.nn.Linear):
            return name, "Linear", 2, int(module.in_features)
    for name, param in net.named_parameters():
        if name.endswith("weight") and param.ndim in (2, 3, 4, 5):
            kind = {2: "Linear", 3: "Conv1d", 4: "Conv2d", 5: "Conv3d"}[param.ndim]
            layer = name.removesuffix(".weight")
            return layer, kind, param.ndim, int(param.shape[1])
    return None


def _expected_text(kind: str, ndim: int, size: int) -> str:
    if kind == "Linear":
        return f"(N, {size})"
    spatial = {3: "L", 4: "H, W", 5: "D, H, W"}[ndim]
    return f"(N, {size}, {spatial})"


def _input_hint(net: Any, shape: tuple[int, ...], *, option: str) -> str:
    """A 'did you mean …' for an input shape the model cannot take (or '')."""
    first = _first_layer(net)
    if first is None:
        return ""
    name, kind, ndim, size = first
    expects = f"the first layer {name} ({kind}) expects {_expected_text(kind, ndim, size)}"
    guess: tuple[int, ...] | None = None
    channels_last = False
    if kind != "Linear" and len(shape) == ndim and shape[1] != size and shape[-1] == size:
        guess = (shape[0], size, *shape[1:-1])
        channels_last = True
    elif kind != "Linear" and len(shape) == ndim - 1 and shape[0] == size:
        guess = (1, *shape)
    elif kind != "Linear" and len(shape) == ndim and shape[1] != size:
        guess = (shape[0], size, *shape[2:])
    elif kind == "Linear" and len(shape) >= 2 and shape[-1] != size:
        guess = (shape[0], size)
    if guess is None:
        return expects[0].upper() + expects[1:]
    if option == "--input-shape":
        return f"did you mean --input-shape {','.join(map(str, guess))}? ({expects})"
    if channels_last:
        order = ", ".join(str(i) for i in (0, ndim - 1, *range(1, ndim - 1)))
        return (
            f"did you mean channels-first data? The inputs look channels-last (N, ..., C) "
            f"but {expects}: transpose them, e.g. np.transpose(x, ({order})), and save the "
            "file again"
        )
    return expects[0].upper() + expects[1:]


def _check_runs(net: Any, x: Any, *, what: str, option: str) -> None:
    """Run ``net`` on ``x`` once; a failure becomes a one-line error with a hint first."""
    import torch

    try:
        with torch.no_grad():
            net(x)
    except Exception as exc:
        shape = tuple(int(v) for v in x.shape)
        hint = _input_hint(net, shape, option=option)
        detail = " ".join(str(exc).split())[:300]
        raise click.ClickException(
            f"{what} cannot run on inputs of shape {shape} ({option}): "
            + (f"{hint}. " if hint else "")
            + f"({type(exc).__name__}: {detail})"
        ) from exc


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(v < 1 for v in shape):
        raise click.BadParameter(
            f"expected comma-separated positive integers such as 1,3,32,32 (batch first); "
            f"got {text!r}",
            param_hint="--input-shape",
        )
    return shape


@cli.command(epilog=_MODEL_HELP)
@click.argument("model")
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False),
    help="State-dict checkpoint for a module:factory model.",
)
@click.option(
    "--input-shape", default=None, help="Sample input shape to show output shapes, e.g. 1,3,32,32."
)
@click.option("--allow-pickle", is_flag=True, help=_PICKLE_HELP)
@click.option("--trust-module", "trust_modules", multiple=True, metavar="NAME", help=_TRUST_HELP)
def layers(
    model: str,
    weights: str | None,
    input_shape: str | None,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
) -> None:
    """List the layers of MODEL (names usable in --layers-a/--layers-b)."""
    shape = _parse_shape(input_shape) if input_shape else None
    import torch

    from nncompare.capture import format_layer_table, list_layers
    from nncompare.cli.loading import load_model

    net = load_model(model, weights=weights, allow_pickle=allow_pickle, trust_modules=trust_modules)
    sample = None
    if shape is not None:
        sample = torch.zeros(shape)
        _check_runs(net, sample, what=f"MODEL {model}", option="--input-shape")
    click.echo(format_layer_table(list_layers(net, sample)))


@cli.command(epilog=_MODEL_HELP)
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
@click.option("--allow-pickle", is_flag=True, help=_PICKLE_HELP)
@click.option("--trust-module", "trust_modules", multiple=True, metavar="NAME", help=_TRUST_HELP)
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
    trust_modules: tuple[str, ...],
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
    from nncompare.capture import LayerNotFoundError, resolve_layers

    net_a = load_model(
        model_a, weights=weights_a, allow_pickle=allow_pickle, trust_modules=trust_modules
    )
    net_b = load_model(
        model_b, weights=weights_b, allow_pickle=allow_pickle, trust_modules=trust_modules
    )
    for option, net, text in (("--layers-a", net_a, layers_a), ("--layers-b", net_b, layers_b)):
        if text is not None:
            try:
                resolve_layers(net, _split(text))
            except LayerNotFoundError as exc:
                raise click.BadParameter(str(exc), param_hint=option) from exc
    ds = load_array_file(data_path, x_key=x_key, as_tensor=True)
    x = ds.x
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    if scale is not None:
        x = x * scale
    for label, spec, net in (("MODEL_A", model_a, net_a), ("MODEL_B", model_b, net_b)):
        _check_runs(net, x[:2], what=f"{label} {spec}", option=f"--data {Path(data_path).name}")
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
    """Entry point of the ``nncompare`` console script (and of ``python -m``).

    The current directory is taken off ``sys.path`` first (unless PYTHONPATH names it), so
    that ``module:factory`` and the lazy imports of the commands never pick up a file
    lying there.
    """
    from nncompare.cli.loading import drop_cwd_from_sys_path

    drop_cwd_from_sys_path()
    return cli.main(args=argv, prog_name="nncompare")


if __name__ == "__main__":  # pragma: no cover
    main()
