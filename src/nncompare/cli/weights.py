"""``nncompare weights``: the weight lens (Guth & Ménard) on the command line.

Thin: the models load as ``nncompare compare`` loads them (:mod:`nncompare.cli.loading`,
safe by default), the inputs as it takes them (:func:`~nncompare.cli._options.data_options`,
here optional: one network needs no data), then
:func:`nncompare.weights.experiments.weights_summary` computes what the report shows and
:func:`nncompare.report.write_weights_report` writes it. Every bad input is a one-line
error naming the option; heavy imports happen inside the command.
:mod:`nncompare.cli.main` registers :func:`weights` with the ``nncompare`` group.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from nncompare.cli._common import (
    DataArgs,
    check_models_run,
    data_args,
    library_notes,
    output_options,
    print_outputs,
    split_names,
)
from nncompare.cli._options import parse_formats

__all__ = ["weights"]

_MODEL_HELP = """\b
MODEL_A and MODEL_B load exactly as in `nncompare compare` (see its --help):
  * a torch.export archive (.pt2), checked part by part;
  * a TorchScript archive or a torch.save(model) pickle, only with --allow-pickle;
  * 'module:factory' with literal keyword arguments and --weights-a/--weights-b
    state dicts, e.g. 'nncompare.models:cifar_resnet(depth=20)'. Only factories
    of nncompare.models or of modules trusted with --trust-module are called.
"""


def _weight_layers(net: Any) -> list[str]:
    from nncompare.weights._compare import _layer_modules

    return list(_layer_modules(net))


def _check_model(net: Any, label: str) -> None:
    layers = _weight_layers(net)
    if not layers:
        raise click.ClickException(
            f"{label} ({type(net).__name__}) has no Conv2d or Linear layer: the weight lens "
            "compares the weights of convolutions and linear layers; pass a network that has "
            "some"
        )


def _parse_layers(text: str | None, net_a: Any, net_b: Any | None) -> list[str] | None:
    names = split_names(text, what="weight-layer names", example="conv1,conv2")
    if names is None:
        return None
    import difflib

    for label, net in (("MODEL_A", net_a), ("MODEL_B", net_b)):
        if net is None:
            continue
        known = _weight_layers(net)
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}? " if close else ""
                shown = ", ".join(known[:12]) + (", …" if len(known) > 12 else "")
                raise click.BadParameter(
                    f"{name!r} is not a Conv2d or Linear layer of {label}: {hint}its weight "
                    f"layers are {shown} (see `nncompare layers`)",
                    param_hint="--layers",
                )
    return list(dict.fromkeys(names))


@click.command(epilog=_MODEL_HELP)
@click.argument("model_a")
@click.argument("model_b", required=False)
@data_args
@click.option("--weights-a", type=click.Path(exists=True, dir_okay=False))
@click.option("--weights-b", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--layers",
    "layers_text",
    default=None,
    metavar="L1,L2,...",
    help="Weight layers (Conv2d, Linear) to compare, by name. Default: all of them, whose "
    "names must agree between the two models.",
)
@click.option(
    "--top",
    "k",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Leading eigenvectors in each eigenvector-similarity panel.",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0))
@click.option("--name-a", default=None, help="Label of MODEL_A in the report.")
@click.option("--name-b", default=None, help="Label of MODEL_B in the report.")
@output_options("nncompare-weights")
def weights(
    model_a: str,
    model_b: str | None,
    data: DataArgs,
    weights_a: str | None,
    weights_b: str | None,
    layers_text: str | None,
    k: int,
    seed: int,
    name_a: str | None,
    name_b: str | None,
    title: str | None,
    formats: str | None,
    out_dir: str,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
) -> None:
    """Compare what one or two networks learned in their weights (Guth & Ménard).

    For each network: the spatial eigenfilters of its k x k convolutions (a layers x
    rank grid of filter images) with the overlaps of their top-3 eigen-subspaces, and the
    spectra of its channel-weight covariances, shrunk (eq. 3), with their effective ranks
    (eq. 4). With MODEL_B and --data: the two networks' channel bases aligned on the
    inputs' activations (eq. 1-2), then per layer the eigenvector-similarity matrix
    (Fig. 3) and the normalised covariance similarity S by depth (eq. 6, Fig. 4).
    Factorized blocks (nncompare.models.factorized_vgg) are aligned at their depthwise
    input. OUT gets report.html, results.csv (one row per layer: S, cosine, effective
    ranks, ...) and results.json (everything, with provenance).

    \b
    Example (the pretrained CIFAR-10 ResNet-20 and ResNet-32, at layers both have):
      nncompare weights 'nncompare.models:cifar_resnet(depth=20)' \\
          'nncompare.models:cifar_resnet(depth=32)' \\
          --weights-a resnet20.th --weights-b resnet32.th --preset cifar \\
          --data cifar10_test.npz --max-samples 300 \\
          --layers layer1.0.conv1,layer2.0.conv1,layer3.0.conv1,linear --out weights-report
    """
    from nncompare.cli.main import _label, _short

    figure_formats = parse_formats(formats)
    if model_b is None:
        for option, value in (("--weights-b", weights_b), ("--name-b", name_b)):
            if value is not None:
                raise click.BadParameter(
                    f"{option} describes MODEL_B, but only MODEL_A was given; pass MODEL_B "
                    f"too, or drop {option}",
                    param_hint=option,
                )
    elif data.data_path is None:
        raise click.BadParameter(
            "comparing two networks' channel weights needs inputs to align their channel "
            "bases (eq. 1 of Guth & Ménard): pass --data FILE (.npy or .npz), or give "
            "MODEL_A alone for its eigenfilters and spectra",
            param_hint="--data",
        )
    label_a = _label(name_a, "--name-a") or _short(model_a, weights_a)
    label_b = (
        (_label(name_b, "--name-b") or _short(model_b, weights_b)) if model_b is not None else None
    )
    if label_b is not None and label_b == label_a:
        label_a, label_b = f"{label_a} (A)", f"{label_b} (B)"

    import torch

    from nncompare.analyses.engine import provenance
    from nncompare.cli.loading import load_model
    from nncompare.report import write_weights_report
    from nncompare.weights.experiments import weights_summary

    net_a = load_model(
        model_a, weights=weights_a, allow_pickle=allow_pickle, trust_modules=trust_modules
    )
    _check_model(net_a, "MODEL_A")
    net_b = None
    if model_b is not None:
        net_b = load_model(
            model_b, weights=weights_b, allow_pickle=allow_pickle, trust_modules=trust_modules
        )
        _check_model(net_b, "MODEL_B")
    layers = _parse_layers(layers_text, net_a, net_b)
    if net_b is not None and layers is None:
        la, lb = _weight_layers(net_a), _weight_layers(net_b)
        if la != lb:
            only_a = [n for n in la if n not in lb][:4]
            only_b = [n for n in lb if n not in la][:4]
            raise click.BadParameter(
                f"the two models' weight layers differ ({len(la)} in MODEL_A, {len(lb)} in "
                f"MODEL_B; only in A: {', '.join(only_a) or 'none'}; only in B: "
                f"{', '.join(only_b) or 'none'}): pass --layers with names both models have",
                param_hint="--layers",
            )
    x = None
    inputs = None
    if data.data_path is not None:
        models = [("MODEL_A", model_a, net_a)]
        if net_b is not None:
            models.append(("MODEL_B", model_b, net_b))
        inputs, x = data.read(models)
        check_models_run(models, x, data.data_path)
        if net_b is None:
            click.echo("data: not needed for one network (its weights only); --data is unused")
    t0 = time.perf_counter()
    import warnings

    from nncompare.errors import NNCompareWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NNCompareWarning)
            summary = weights_summary(
                net_a,
                net_b,
                x if net_b is not None else None,
                names=(label_a, label_b or "B"),
                layers=layers,
                k=k,
                batch_size=data.batch_size,
                seed=seed,
            )
    except (ValueError, TypeError) as exc:
        raise click.ClickException(" ".join(str(exc).split())) from exc
    for note in library_notes(caught, pass_on=False):
        click.echo(f"note: {note}")
    seconds = time.perf_counter() - t0
    prov = provenance(
        {
            "model_a": model_a,
            "model_b": model_b,
            "weights_a": Path(weights_a).name if weights_a else None,
            "weights_b": Path(weights_b).name if weights_b else None,
            "data": Path(data.data_path).name if data.data_path else None,
            "preprocessing": inputs.preprocessing if inputs is not None else None,
            "n_samples": len(x) if x is not None and net_b is not None else None,
            "layers": layers,
            "top": k,
            "seed": seed,
            "torch_threads": torch.get_num_threads(),
            "seconds": round(seconds, 2),
            "command": " ".join(sys.argv),
        }
    )
    rep = write_weights_report(
        summary, out_dir, title=title, formats=figure_formats, provenance=prov
    )
    if summary.comparison is not None:
        frame = summary.comparison
        valid = frame["S"].notna()
        if valid.any():
            best = frame.loc[frame.loc[valid, "S"].idxmax()]
            click.echo(
                f"compared {len(frame)} weight layers: S from {frame.loc[valid, 'S'].min():.3f} "
                f"to {frame.loc[valid, 'S'].max():.3f} (highest at {best['layer']})"
            )
        else:
            click.echo(f"compared {len(frame)} weight layers: no layer has a learned component")
    else:
        n_conv = sum(len(v) for v in summary.eigenfilters.values())
        click.echo(
            f"{label_a}: {n_conv} k x k conv layers, {len(summary.spectra[label_a])} weight "
            "layers with spectra"
        )
    print_outputs(rep)


# --data is optional here: one network needs none (data_options makes it required for
# compare and extract).
for _param in weights.params:
    if _param.name == "data_path":
        _param.required = False
        _param.help = (
            "Inputs as .npy or .npz (key 'x' or the only array), to align the two networks' "
            "channel bases; needed with MODEL_B, unused for one network."
        )
