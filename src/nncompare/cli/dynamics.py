"""``nncompare dynamics`` and ``nncompare class-sensitivity``: the SVCCA paper's analyses of
one model on the command line (Raghu et al. 2017 §4.1, §4.3).

Thin: the model loads as ``nncompare compare`` loads it (:mod:`nncompare.cli.loading`, safe
by default), the inputs as it takes them (:func:`~nncompare.cli._options.data_options`);
then :func:`nncompare.analyses.learning_dynamics` or
:func:`nncompare.analyses.class_sensitivity` runs, and
:mod:`nncompare.report._dynamics` writes the report folder. Every bad input is a one-line
error naming the option; heavy imports happen inside the commands.
:mod:`nncompare.cli.main` registers both with the ``nncompare`` group.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from nncompare.cli._common import (
    DataArgs,
    check_layers_exist,
    check_models_run,
    data_args,
    out_option,
    output_options,
    split_names,
)
from nncompare.cli._options import parse_formats

__all__ = ["class_sensitivity_command", "dynamics", "parse_classes"]

_MODEL_HELP = """\b
MODEL loads exactly as in `nncompare compare` (see its --help):
  * a torch.export archive (.pt2), checked part by part;
  * a TorchScript archive or a torch.save(model) pickle, only with --allow-pickle;
  * 'module:factory' with literal keyword arguments and --weights state dicts,
    e.g. 'nncompare.models:cifar_resnet(depth=20)'. Only factories of
    nncompare.models or of modules trusted with --trust-module are called.
"""
#: CIFAR-10's class names, in label order (``--classes automobile,truck``)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def parse_classes(text: str) -> dict[str, int]:
    """``--classes``: ``1,9,6``, ``automobile=1,truck=9`` or CIFAR-10 names
    (``automobile,truck,frog``) -> {name: index}.

    Raises
    ------
    click.BadParameter
        Naming ``--classes``, for an empty entry, a name that is not a CIFAR-10 class
        without ``=INDEX``, a negative or non-integer index, or repeated names.
    """
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise click.BadParameter(
                f"expected classes separated by commas, such as 1,9,6 or cat=3,dog=5; got "
                f"{text!r} (an empty entry)",
                param_hint="--classes",
            )
        name, _, index = part.partition("=")
        name, index = name.strip(), index.strip()
        if not index:
            if name.lstrip("-").isdigit():
                index = name
            elif name.lower() in CIFAR10_CLASSES:
                index = str(CIFAR10_CLASSES.index(name.lower()))
            else:
                raise click.BadParameter(
                    f"{name!r} is neither a class index nor a CIFAR-10 class name "
                    f"({', '.join(CIFAR10_CLASSES)}); give its logit column as {name}=INDEX",
                    param_hint="--classes",
                )
        if not index.lstrip("-").isdigit() or int(index) < 0:
            raise click.BadParameter(
                f"expected a non-negative integer logit column for {name!r}; got {index!r}",
                param_hint="--classes",
            )
        if name in out:
            raise click.BadParameter(f"class {name!r} is named twice", param_hint="--classes")
        out[name] = int(index)
    return out


def _checkpoint_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted([*p.glob("*.pt"), *p.glob("*.pth"), *p.glob("*.th")])
            if not found:
                raise click.BadParameter(
                    f"expected checkpoint files (*.pt, *.pth, *.th) in {str(p)!r}, found none; "
                    "pass the folder nncompare train --checkpoint-dir wrote, or the files",
                    param_hint="--checkpoints",
                )
            files.extend(sorted(found, key=lambda f: f.name))
        else:
            files.append(p)
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        raise click.BadParameter(
            f"the checkpoints are labelled by their file names, which repeat "
            f"({', '.join(stems)}); rename the files so that each name is unique",
            param_hint="--checkpoints",
        )
    if len(files) < 2:
        raise click.BadParameter(
            f"learning dynamics needs at least two checkpoints in training order; got {len(files)}",
            param_hint="--checkpoints",
        )
    return files


def _common(f: Any) -> Any:
    for option in reversed(
        [
            click.option("--weights", type=click.Path(exists=True, dir_okay=False)),
            click.option(
                "--layers",
                default=None,
                help="Comma-separated layer names or glob patterns (see `nncompare layers`). "
                "Default: the block outputs.",
            ),
            click.option("--name", default=None, help="Label of MODEL in the report."),
            output_options(None),
        ]
    ):
        f = option(f)
    return data_args(f)


def _load(
    model: str,
    weights: str | None,
    layers: str | None,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
    data: DataArgs,
) -> tuple[Any, list[str] | None, Any]:
    from nncompare.cli.loading import load_model

    layer_list = split_names(layers, what="names")
    net = load_model(model, weights=weights, allow_pickle=allow_pickle, trust_modules=trust_modules)
    check_layers_exist(net, layer_list)
    models = [("MODEL", model, net)]
    inputs, x = data.read(models)
    check_models_run(models, x, data.data_path)
    return net, layer_list, (x, inputs)


def _provenance(extra: dict[str, Any]) -> dict[str, Any]:
    import torch

    from nncompare.analyses.engine import provenance

    return provenance({**extra, "torch_threads": torch.get_num_threads(),
                       "command": " ".join(sys.argv)})  # fmt: skip


@click.command(epilog=_MODEL_HELP)
@click.argument("model")
@click.option(
    "--checkpoints",
    "checkpoints",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="A folder of checkpoints (*.pt, *.pth, *.th, sorted by name: the trainer's "
    "epoch0003.pt names sort in training order), or checkpoint files; repeatable, in order. "
    "The last one is the final network.",
)
@click.option(
    "--measure",
    default="svcca",
    show_default=True,
    help="Similarity measure (a registry name, see `nncompare measures`).",
)
@click.option(
    "--conv",
    type=click.Choice(["mean", "flatten", "dft"], case_sensitive=False),
    default="mean",
    show_default=True,
    help="Convolutional outputs: averaged over positions, one feature per entry, or the "
    "exact DFT path (cca, svcca).",
)
@click.option(
    "--threshold",
    default=0.9,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="A layer has converged from the first checkpoint at which it stays at or above this "
    "similarity with itself at the end.",
)
@_common
@out_option("nncompare-dynamics")
def dynamics(
    model: str,
    checkpoints: tuple[str, ...],
    measure: str,
    conv: str,
    threshold: float,
    data: DataArgs,
    weights: str | None,
    layers: str | None,
    name: str | None,
    title: str | None,
    formats: str | None,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
    out_dir: str,
) -> None:
    """Learning dynamics of MODEL: every layer at every checkpoint against every layer of
    the final network (Raghu et al. 2017, §4.1, Fig. 4).

    OUT gets report.html (the layers x layers panels over training, each layer's
    convergence curve, the step at which each layer first stays above --threshold),
    results.csv (one row per checkpoint and layer pair) and results.json.

    \b
    Example (checkpoints written by the trainer, one per epoch):
      nncompare dynamics 'nncompare.models:SmallCNN(in_channels=1)' \\
          --checkpoints ckpt/ --data digits_test.npz --out dynamics-report
    """
    from nncompare.cli.main import _label, _short

    figure_formats = parse_formats(formats)
    files = _checkpoint_files(checkpoints)
    label = _label(name, "--name") or _short(model, weights)
    from nncompare.measures._registry import get as get_measure

    try:
        get_measure(measure)
    except (KeyError, ValueError) as exc:
        raise click.BadParameter(" ".join(str(exc).split()), param_hint="--measure") from exc
    net, layer_list, (x, inputs) = _load(model, weights, layers, allow_pickle, trust_modules, data)

    from nncompare.analyses.dynamics import convergence_steps, learning_dynamics
    from nncompare.report._dynamics import write_dynamics_report

    t0 = time.perf_counter()
    try:
        df = learning_dynamics(
            net, files, x, layers=layer_list, measure=measure, conv=conv.lower(),
            batch_size=data.batch_size, progress=True,
        )  # fmt: skip
    except (ValueError, TypeError, RuntimeError) as exc:
        text = " ".join(str(exc).split())
        where = "--checkpoints" if "checkpoint" in text or "state_dict" in text else "dynamics"
        raise click.ClickException(f"{where}: {text}") from exc
    seconds = time.perf_counter() - t0
    df.attrs["model"] = label
    df.attrs["provenance"] = _provenance(
        {
            **dict(df.attrs.get("provenance") or {}),
            "model": model,
            "weights": Path(weights).name if weights else None,
            "checkpoints": [f.name for f in files],
            "data": Path(data.data_path).name,
            "preprocessing": inputs.preprocessing,
            "seconds": round(seconds, 2),
        }
    )
    files_out = write_dynamics_report(
        df, out_dir, title=title, threshold=threshold, formats=figure_formats
    )
    conv_steps = convergence_steps(df, threshold)
    text = ", ".join(
        f"{r.layer} {r.converged_checkpoint if isinstance(r.converged_checkpoint, str) else '—'}"
        for r in conv_steps.itertuples()
    )
    click.echo(
        f"learning dynamics of {label}: {len(files)} checkpoints x "
        f"{len(df.attrs['layers'])} layers in {seconds:.1f} s; first checkpoint at or above "
        f"{threshold:g}: {text}"
    )
    click.echo(f"wrote {files_out.html}")


@click.command("class-sensitivity", epilog=_MODEL_HELP)
@click.argument("model")
@click.option(
    "--classes",
    required=True,
    help="Logit columns to compare with: indices (1,9,6), name=index pairs (cat=3,dog=5) or "
    "CIFAR-10 class names (automobile,truck,frog).",
)
@click.option(
    "--logits-layer",
    default=None,
    help="The layer whose output holds the logits. Default: the model's output.",
)
@click.option(
    "--measure",
    type=click.Choice(["cca", "svcca", "cca_r2"], case_sensitive=False),
    default="cca",
    show_default=True,
)
@click.option(
    "--conv",
    type=click.Choice(["dft", "mean", "flatten"], case_sensitive=False),
    default="dft",
    show_default=True,
    help="Convolutional outputs: the exact DFT path (as in the paper), averaged over "
    "positions, or one feature per entry.",
)
@_common
@out_option("nncompare-class-sensitivity")
def class_sensitivity_command(
    model: str,
    classes: str,
    logits_layer: str | None,
    measure: str,
    conv: str,
    data: DataArgs,
    weights: str | None,
    layers: str | None,
    name: str | None,
    title: str | None,
    formats: str | None,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
    out_dir: str,
) -> None:
    """Class sensitivity of MODEL: per layer, the DFT-CCA similarity between the layer and
    the logit of each class in --classes (Raghu et al. 2017, §4.3, Fig. 6).

    OUT gets report.html (one curve per class over the layers, the table), results.csv and
    results.json.

    \b
    Example (the pretrained CIFAR-10 ResNet-20):
      nncompare class-sensitivity 'nncompare.models:cifar_resnet(depth=20)' \\
          --weights resnet20.th --preset cifar --data cifar10_test.npz \\
          --classes automobile,truck,cat,dog,frog --out sensitivity-report
    """
    from nncompare.cli.main import _label, _short

    figure_formats = parse_formats(formats)
    chosen = parse_classes(classes)
    label = _label(name, "--name") or _short(model, weights)
    net, layer_list, (x, inputs) = _load(model, weights, layers, allow_pickle, trust_modules, data)
    if logits_layer is not None and logits_layer not in dict(net.named_modules()):
        raise click.BadParameter(
            f"{logits_layer!r} is not a layer of MODEL; see `nncompare layers MODEL`",
            param_hint="--logits-layer",
        )
    import torch

    with torch.no_grad():
        probe = net(x[:2]) if logits_layer is None else None
    if probe is not None and isinstance(probe, torch.Tensor):
        width = int(probe.reshape(probe.shape[0], -1).shape[1])
        bad = {k: v for k, v in chosen.items() if v >= width}
        if bad:
            raise click.BadParameter(
                f"the model has {width} logits (columns 0..{width - 1}); "
                f"{', '.join(f'{k}={v}' for k, v in bad.items())} is outside them",
                param_hint="--classes",
            )

    from nncompare.analyses.sensitivity import class_sensitivity
    from nncompare.report._dynamics import write_sensitivity_report

    t0 = time.perf_counter()
    try:
        df = class_sensitivity(
            net, x, chosen, layers=layer_list, logits_layer=logits_layer,
            measure=measure.lower(), conv=conv.lower(), batch_size=data.batch_size, progress=True,
        )  # fmt: skip
    except (ValueError, TypeError, RuntimeError) as exc:
        raise click.ClickException(f"class sensitivity: {' '.join(str(exc).split())}") from exc
    seconds = time.perf_counter() - t0
    df.attrs["model"] = label
    df.attrs["provenance"] = _provenance(
        {
            **dict(df.attrs.get("provenance") or {}),
            "model": model,
            "weights": Path(weights).name if weights else None,
            "data": Path(data.data_path).name,
            "preprocessing": inputs.preprocessing,
            "classes": chosen,
            "seconds": round(seconds, 2),
        }
    )
    files_out = write_sensitivity_report(df, out_dir, title=title, formats=figure_formats)
    last = df.attrs["layers"][-1] if df.attrs["layers"] else None
    mid = df.attrs["layers"][len(df.attrs["layers"]) // 2] if df.attrs["layers"] else None
    vals = df.set_index(["layer", "class"])["value"]
    text = ", ".join(f"{c} {vals.get((mid, c), float('nan')):.3f}" for c in chosen)
    click.echo(
        f"class sensitivity of {label}: {len(df.attrs['layers'])} layers x {len(chosen)} "
        f"classes in {seconds:.1f} s; at {mid} (middle layer): {text}"
        + (f"; last layer {last}" if last else "")
    )
    click.echo(f"wrote {files_out.html}")
