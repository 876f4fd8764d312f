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
from nncompare.cli._common import (
    DataArgs,
    check_layers_exist,
    check_models_run,
    data_args,
    out_option,
    output_options,
    print_outputs,
    safety_options,
)
from nncompare.cli._errors import DEBUG_KEY, NncompareGroup
from nncompare.cli._options import (
    DEFAULT_MEASURES,
    DFT_DEFAULT_MEASURES,
    first_layer,
    parse_formats,
    parse_measures,
)


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
@out_option("nncompare-report", help="Directory for the report.")
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
    print_outputs(result.report, figures=False)
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
    header = (
        f"{'name':<18} {'higher':<7} {'metric':<7} {'sym':<5} {'stream':<7} {'dft':<4} invariances"
    )
    click.echo(header)
    click.echo("-" * len(header + "-" * 30))
    for name, info in infos.items():
        inv = ", ".join(sorted(info.invariances)) or "-"
        click.echo(
            f"{name:<18} {_yn(info.higher_is_better):<7} {_yn(info.is_metric):<7} "
            f"{_yn(info.symmetric):<5} {_yn(info.streaming):<7} {_yn(info.supports_dft):<4} {inv}"
        )
        click.echo(f"{'':<18} {info.label}: {info.description} [{info.reference}]")


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
_safety = safety_options(pickle_help=_PICKLE_HELP, trust_help=_TRUST_HELP)


def _expected_text(kind: str, ndim: int, size: int) -> str:
    if kind == "Linear":
        return f"(N, {size})"
    spatial = {3: "L", 4: "H, W", 5: "D, H, W"}[ndim]
    return f"(N, {size}, {spatial})"


def _input_hint(net: Any, shape: tuple[int, ...], *, option: str) -> str:
    """A 'did you mean …' for an input shape the model cannot take (or '')."""
    first = first_layer(net)
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
    if channels_last and ndim == 4:
        return (
            f"did you mean --channels-last? The inputs look channels-last (N, H, W, C) but "
            f"{expects}"
        )
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
@_safety
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


_MEASURE_HELP = (
    "Measure, optionally with options: cka, svcca:variance=0.95, "
    "pwcca:convention=google,epsilon=1e-6 (values are Python literals, else text; see "
    "`nncompare measures`). Case-insensitive; repeat for several. Default: "
    f"{', '.join(DEFAULT_MEASURES)} (with --conv dft: {', '.join(DFT_DEFAULT_MEASURES)})."
)


def _layers_help(which: str) -> str:
    return (
        f"Comma-separated layer names or globs of {which} (see `nncompare layers`). Default: "
        "the block outputs (nncompare.capture.default_layers)."
    )


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


@cli.command(epilog=_MODEL_HELP)
@click.argument("model_a")
@click.argument("model_b")
@data_args
@click.option("--weights-a", type=click.Path(exists=True, dir_okay=False))
@click.option("--weights-b", type=click.Path(exists=True, dir_okay=False))
@click.option("--layers-a", default=None, help=_layers_help("MODEL_A"))
@click.option("--layers-b", default=None, help=_layers_help("MODEL_B"))
@click.option(
    "--measure", "measure_specs", multiple=True, metavar="NAME[:K=V,...]", help=_MEASURE_HELP
)
@click.option(
    "--conv",
    default="mean",
    show_default=True,
    type=click.Choice(["mean", "samples", "flatten", "dft"], case_sensitive=False),
    help="Reshape policy for convolutional activations: spatial mean, every location a "
    "sample, one feature per (location, channel), or the DFT of Raghu et al. (CCA family).",
)
@click.option(
    "--name-a",
    default=None,
    help="Label of MODEL_A in the report (default: the --weights-a file stem, else MODEL_A).",
)
@click.option(
    "--name-b",
    default=None,
    help="Label of MODEL_B in the report (default: the --weights-b file stem, else MODEL_B).",
)
@output_options(
    "nncompare-report",
    title_help="Report title (default: 'NAME_A vs NAME_B').",
    formats_help="Also write every figure as a file in OUT/figures/ in these formats (PDF and "
    "SVG are vector graphics).",
    pickle_help=_PICKLE_HELP,
    trust_help=_TRUST_HELP,
)
@click.option("--progress/--no-progress", default=True)
@click.option(
    "--resume",
    "resume_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Result store directory: rows already stored there (same models, layers, measures, "
    "options and data) are read, not recomputed; finished rows are committed as they are "
    "done, so an interrupted run started again with the same --resume loses nothing.",
)
def compare(
    model_a: str,
    model_b: str,
    data: DataArgs,
    weights_a: str | None,
    weights_b: str | None,
    layers_a: str | None,
    layers_b: str | None,
    measure_specs: tuple[str, ...],
    conv: str,
    name_a: str | None,
    name_b: str | None,
    title: str | None,
    formats: str | None,
    out_dir: str,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
    progress: bool,
    resume_dir: str | None,
) -> None:
    """Compare every layer of MODEL_A with every layer of MODEL_B on the inputs in --data.

    \b
    Example (the pretrained CIFAR-10 ResNets on uint8 NHWC images):
      nncompare compare 'nncompare.models:cifar_resnet(depth=20)' \\
          'nncompare.models:cifar_resnet(depth=32)' \\
          --weights-a resnet20.th --weights-b resnet32.th \\
          --data cifar10_test.npz --preset cifar --measure cka --measure svcca:variance=0.95
    """
    from nncompare.analyses.compare import compare_models
    from nncompare.cli.loading import load_model
    from nncompare.report import write_report
    from nncompare.results import ComparisonResult

    conv = conv.lower()
    given = bool(measure_specs)
    measures = parse_measures(
        measure_specs or (DFT_DEFAULT_MEASURES if conv == "dft" else DEFAULT_MEASURES),
        conv=conv,
    )
    figure_formats = parse_formats(formats)
    label_a = _label(name_a, "--name-a") or _short(model_a, weights_a)
    label_b = _label(name_b, "--name-b") or _short(model_b, weights_b)
    net_a = load_model(
        model_a, weights=weights_a, allow_pickle=allow_pickle, trust_modules=trust_modules
    )
    net_b = load_model(
        model_b, weights=weights_b, allow_pickle=allow_pickle, trust_modules=trust_modules
    )
    for option, net, text in (("--layers-a", net_a, layers_a), ("--layers-b", net_b, layers_b)):
        check_layers_exist(net, _split(text), option)
    models = [("MODEL_A", model_a, net_a), ("MODEL_B", model_b, net_b)]
    inputs, x = data.read(models, cut=False)
    if not given:
        click.echo(f"measures: {', '.join(measures)} (the default; choose with --measure)")
    check_models_run(models, x, data.data_path)
    df = compare_models(
        net_a,
        net_b,
        x,
        layers_a=_split(layers_a),
        layers_b=_split(layers_b),
        measures=measures,
        conv=conv,
        batch_size=data.batch_size,
        max_samples=data.max_samples,
        progress=progress,
        names=(label_a, label_b),
        resume=resume_dir,
        provenance={
            "data": str(Path(data.data_path).name),
            "preprocessing": inputs.preprocessing,
            "command": " ".join(sys.argv),
        },
    )
    result = ComparisonResult.from_frame(df)  # the report reads the typed result
    if title is not None:
        result.title = title
    rep = write_report(result, out_dir, title=title, formats=figure_formats)
    print_outputs(rep, resolve_figures=True)


@cli.command(epilog=_MODEL_HELP)
@click.argument("model")
@data_args
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False),
    help="State-dict checkpoint for a module:factory model.",
)
@click.option(
    "--layers",
    "layers_text",
    default=None,
    help="Comma-separated layer names or globs (see `nncompare layers`). Default: "
    "nncompare.capture.default_layers(model, granularity=--granularity).",
)
@click.option(
    "--granularity",
    type=click.Choice(["blocks", "leaves"]),
    default=None,
    help="Default layers when --layers is not given: block outputs (the default) or every "
    "leaf layer.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Cache directory to create (atomically); an existing cache of the same capture is reused.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing activation cache at --out (nothing else is ever replaced).",
)
@_safety
@click.option("--progress/--no-progress", default=True)
def extract(
    model: str,
    data: DataArgs,
    weights: str | None,
    layers_text: str | None,
    granularity: str | None,
    out_dir: str,
    overwrite: bool,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
    progress: bool,
) -> None:
    """Write the activations of MODEL on the inputs in --data to the directory --out.

    \b
    The directory is nncompare's activation cache (what capture(..., cache_dir=DIR)
    writes, built under a temporary name and renamed into place when complete):
      manifest.json    format "nncompare.activations" and format_version, versions,
                       created_utc, model (class, fingerprint, output probe),
                       n_samples, options (layers, dtype, max_samples, ...), data
                       (fingerprint of the inputs), and per layer: name, file,
                       shape, dtype, checksum (BLAKE2b per 64 MiB chunk);
      layer_000.npy …  one standard .npy array per layer, float32,
                       shape (n_samples, ...): exactly what the layer returns,
                       so conv layers are channels-first (N, C, H, W), as torch
                       gives them; nncompare.capture.to_channels_last moves
                       channels last (N, H, W, C).
    Load it with nncompare.capture.load_cache(DIR) (checksums verified, arrays
    memory-mapped) or np.load(DIR/layer_000.npy).

    \b
    Example:
      nncompare extract 'nncompare.models:cifar_resnet(depth=20)' --weights resnet20.th \\
          --data cifar10_test.npz --preset cifar --layers layer1.0,layer2.0 --out acts20
    """
    from nncompare.capture import (
        InvalidCacheError,
        StaleCacheError,
        capture,
        default_layers,
        list_layers,
        resolve_layers,
    )
    from nncompare.cli.loading import load_model

    if layers_text is not None and granularity is not None:
        raise click.BadParameter(
            "--granularity chooses the default layers, so it cannot go with --layers; drop "
            "one of the two",
            param_hint="--granularity",
        )
    patterns = _split(layers_text)
    net = load_model(model, weights=weights, allow_pickle=allow_pickle, trust_modules=trust_modules)
    check_layers_exist(net, patterns)
    models = [("MODEL", model, net)]
    _, x = data.read(models, cut=False)
    check_models_run(models, x, data.data_path)
    if patterns is None:
        chosen = default_layers(net, granularity=granularity or "blocks")
        ran = {info.name for info in list_layers(net, x[:2]) if info.output_shapes}
        layers = [name for name in chosen if name in ran] or chosen
        click.echo(
            f"layers: {len(layers)} {granularity or 'blocks'} of the model (the default; "
            "choose with --layers)"
        )
    else:
        layers = resolve_layers(net, patterns, sample_input=x[:2])
    out = Path(out_dir)
    _check_out_dir(out)
    existed = (out / "manifest.json").is_file() and not overwrite
    try:
        acts = capture(
            net,
            x,
            layers,
            batch_size=data.batch_size,
            progress=progress,
            cache_dir=out,
            max_samples=data.max_samples,
            overwrite=overwrite,
        )
    except StaleCacheError as exc:
        raise click.ClickException(_cli_cache_words(str(exc))) from exc
    except (InvalidCacheError, FileExistsError) as exc:
        raise click.ClickException(
            f"cannot write the activations to --out {out}: {_cli_cache_words(str(exc))}"
        ) from exc
    assert acts is not None
    where = out.resolve()
    n_layers = len(acts.names)
    size = f"{n_layers} layer{'' if n_layers == 1 else 's'} × {acts.n_samples} samples"
    if existed:
        click.echo(
            f"reused the existing cache of {size} (same model, layers, options and data): {where}"
        )
    else:
        click.echo(f"wrote {size}: {where}")
    width = max(len(n) for n in acts.names)
    for name in acts.names:
        arr = acts[name]
        click.echo(f"  {name:<{width}}  {tuple(arr.shape)}  {arr.dtype}")
    click.echo(
        "conv layers are stored as torch returns them, channels first (N, C, H, W); "
        "nncompare.capture.to_channels_last(a) gives (N, H, W, C)"
    )
    click.echo(
        f"load: import nncompare as nc; acts = nc.capture.load_cache({str(where)!r}); "
        f"acts[{acts.names[0]!r}]"
    )


def _check_out_dir(out: Path) -> None:
    """Refuse an --out that exists and is not an activation cache (never replaced)."""
    import json

    if not out.exists():
        return
    if not out.is_dir():
        raise click.BadParameter(
            f"{out} is a file; expected a directory for the activations (a new one, or an "
            "existing nncompare activation cache)",
            param_hint="--out",
        )
    if next(out.iterdir(), None) is None:
        return
    manifest = out / "manifest.json"
    try:
        fmt = json.loads(manifest.read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        fmt = None
    if fmt != "nncompare.activations":
        raise click.BadParameter(
            f"{out} exists and is not an nncompare activation cache (no valid "
            "manifest.json), so nothing is written there, even with --overwrite: choose a "
            "new directory",
            param_hint="--out",
        )


def _cli_cache_words(message: str) -> str:
    """The cache errors' Python wording (cache_dir=, overwrite=True) in command-line terms."""
    flat = " ".join(message.split())
    return (
        flat.replace("pass overwrite=True to replace it", "pass --overwrite to replace it")
        .replace("capture(..., overwrite=True)", "--overwrite")
        .replace("choose another cache_dir", "choose another --out")
    )


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise click.BadParameter("expected at least one layer name or pattern")
    return parts


def _label(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    if not text.strip():
        raise click.BadParameter("expected a non-empty label", param_hint=option)
    return text.strip()


def _short(spec: str, weights: str | None) -> str:
    base = Path(weights).stem if weights else spec
    return base if len(base) <= 40 else base[:18] + "…" + base[-18:]


# ``nncompare stitch`` lives in its own module.
from nncompare.cli.stitch import stitch as _stitch_command  # noqa: E402

cli.add_command(_stitch_command)

# ``nncompare align`` (the task-alignment lens) lives in its own module.
from nncompare.cli.align import align as _align_command  # noqa: E402

cli.add_command(_align_command)

# ``nncompare weights`` (the weight lens) lives in its own module.
from nncompare.cli.weights import weights as _weights_command  # noqa: E402

cli.add_command(_weights_command)

# ``nncompare dynamics`` and ``nncompare class-sensitivity`` (the SVCCA paper's analyses).
from nncompare.cli.dynamics import class_sensitivity_command as _sensitivity_command  # noqa: E402
from nncompare.cli.dynamics import dynamics as _dynamics_command  # noqa: E402

cli.add_command(_dynamics_command)
cli.add_command(_sensitivity_command)

# ``nncompare train`` (with --freeze linear) and ``nncompare compress`` (SVCCA projection).
from nncompare.cli.train import compress as _compress_command  # noqa: E402
from nncompare.cli.train import train_command as _train_command  # noqa: E402

cli.add_command(_train_command)
cli.add_command(_compress_command)

# ``nncompare compare-many`` (a set of models: distance matrices, clusters, MDS).
from nncompare.cli.many import compare_many_command as _compare_many_command  # noqa: E402

cli.add_command(_compare_many_command)


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
