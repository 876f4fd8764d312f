"""``nncompare align``: task alignment of every layer of a model on the command line.

Thin: the model loads as ``nncompare compare`` loads it (:mod:`nncompare.cli.loading`, safe
by default), the inputs as it takes them (:func:`~nncompare.cli._options.data_options`),
the labels from the same ``.npz``; then :func:`nncompare.alignment.layer_alignment` gives
every layer's alignment curve (at each ``--checkpoint``), and
:func:`nncompare.report.write_alignment_report` writes the report folder. Every bad input is
a one-line error naming the option; heavy imports happen inside the command.
:mod:`nncompare.cli.main` registers :func:`align` with the ``nncompare`` group.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import click

from nncompare.cli._common import (
    DataArgs,
    check_layers_exist,
    check_models_run,
    data_args,
    label_array,
    output_options,
    print_outputs,
    split_names,
)
from nncompare.cli._options import parse_formats

__all__ = ["KINDS", "align", "read_labels"]

#: the label encodings of ``--kind``
KINDS = ("auto", "classes", "onehot", "regression")

_MODEL_HELP = """\b
MODEL loads exactly as in `nncompare compare` (see its --help):
  * a torch.export archive (.pt2), checked part by part;
  * a TorchScript archive or a torch.save(model) pickle, only with --allow-pickle;
  * 'module:factory' with literal keyword arguments and --weights state dicts,
    e.g. 'nncompare.models:cifar_resnet(depth=20)'. Only factories of
    nncompare.models or of modules trusted with --trust-module are called.
"""
_KIND_HELP = (
    "How the labels become label vectors: classes (two classes: one ±1 vector; k classes: k "
    "one-vs-rest ±1 vectors, summed), onehot (the k one-hot vectors centred to mean zero, "
    "so that their constant part, which a bias learns, does not dominate the curve), "
    "regression (float targets, centred). Default auto: classes for integer labels, "
    "regression for float ones."
)


def read_labels(path: str, key: str | None, x_key: str | None, n: int) -> Any:
    """The label array of ``--data`` (``key``, or ``y`` when present) as numpy.

    Integer or bool arrays of shape (n,) are class labels, float arrays of shape (n,) or
    (n, t) regression targets.

    Raises
    ------
    click.BadParameter
        Naming ``--labels``, for a missing or unreadable array, the wrong length or dtype.
    """
    import numpy as np

    name = Path(path).name
    if Path(path).suffix.lower() != ".npz":
        raise click.BadParameter(
            f"{name} is a .npy file holding one array (the inputs), so it has no labels; "
            "store inputs and labels together with numpy.savez(path, x=..., y=...)",
            param_hint="--labels",
        )
    found = label_array(
        path,
        key,
        x_key,
        option="--data",
        inputs_name="the inputs",
        kind="a numeric array",
        missing_y="--data {name} has no array 'y'; name the labels with --labels KEY (it "
        "holds {keys})",
    )
    assert found is not None  # with missing_y, no labels raise instead
    key, y = found
    if y.ndim not in (1, 2) or len(y) != n:
        raise click.BadParameter(
            f"expected one label per input of --data {name}, shape ({n},) (or ({n}, T) "
            f"regression targets); {key!r} has shape {tuple(y.shape)}",
            param_hint="--labels",
        )
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise click.BadParameter(
            f"expected numeric labels in {key!r} of {name} (integer classes or float "
            f"targets); got dtype {y.dtype}",
            param_hint="--labels",
        )
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
        bad = int(np.sum(~np.isfinite(y)))
        raise click.BadParameter(
            f"the labels {key!r} of {name} hold {bad} NaN or infinite value(s); drop those "
            "samples or fill them in",
            param_hint="--labels",
        )
    return y


def _encode(y: Any, kind: str) -> tuple[Any, str, str]:
    """(labels, kind for layer_alignment, what it is in words)."""
    import numpy as np

    categorical = y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer)
    if kind == "auto":
        kind = "classes" if categorical and y.ndim == 1 else "regression"
    if kind in ("classes", "onehot"):
        if y.ndim != 1 or not categorical:
            raise click.BadParameter(
                f"--kind {kind} needs one integer class label per input; got "
                f"{'shape ' + str(tuple(y.shape)) if y.ndim != 1 else 'dtype ' + str(y.dtype)} "
                "(use --kind regression for float targets)",
                param_hint="--kind",
            )
        classes = np.unique(y)
        if len(classes) < 2:
            raise click.BadParameter(
                f"the labels hold one class only ({classes[0].item()!r}); alignment needs at least "
                "two classes (or use float targets with --kind regression)",
                param_hint="--labels",
            )
        if kind == "onehot":
            onehot = (y[:, None] == classes[None, :]).astype(np.float64)
            return onehot, "regression", f"{len(classes)} centred one-hot vectors"
        what = (
            "one ±1 vector"
            if len(classes) == 2
            else f"{len(classes)} one-vs-rest ±1 vectors (summed)"
        )
        return y, "classes", what
    return y.astype(np.float64), "regression", "centred regression targets"


@click.command(epilog=_MODEL_HELP)
@click.argument("model")
@data_args
@click.option(
    "--labels",
    "labels_key",
    default=None,
    metavar="KEY",
    help="Array name of the labels in the --data .npz: integer classes or float regression "
    "targets, one per input. Default: 'y'.",
)
@click.option("--weights", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--layers",
    default=None,
    help="Comma-separated layer names or glob patterns (see `nncompare layers`). Default: "
    "the block outputs.",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A state dict to measure (e.g. before and after training); repeat, in order. "
    "Default: the model's own weights.",
)
@click.option(
    "--kind",
    type=click.Choice(KINDS, case_sensitive=False),
    default="auto",
    show_default=True,
    help=_KIND_HELP,
)
@click.option(
    "--conv",
    type=click.Choice(["mean", "flatten"], case_sensitive=False),
    default="mean",
    show_default=True,
    help="Convolutional outputs: averaged over positions, or one feature per entry.",
)
@click.option(
    "--input/--no-input",
    "include_input",
    default=True,
    show_default=True,
    help="Also measure the inputs themselves (layer 'input'; for large inputs this is a "
    "d x d eigendecomposition of the flattened input size d).",
)
@click.option("--name", default=None, help="Label of MODEL in the report.")
@output_options("nncompare-align")
def align(
    model: str,
    data: DataArgs,
    labels_key: str | None,
    weights: str | None,
    layers: str | None,
    checkpoints: tuple[str, ...],
    kind: str,
    conv: str,
    include_input: bool,
    name: str | None,
    title: str | None,
    formats: str | None,
    out_dir: str,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
) -> None:
    """Task alignment of every layer of MODEL with the labels of --data.

    For each layer, Alignment(Φ, y, τ) = Σ over singular values σᵢ ≥ τ of (uᵢᵀy)²
    (Imani, Hu & White, eq. 2), with Φ = UΣVᵀ the layer's activations (rows scaled to unit
    length): how much of the labels lies along the layer's top singular directions, i.e.
    how fast a linear model on that layer learns them. The inputs are measured too (layer
    'input'; --no-input skips them). OUT gets report.html (the curves per layer and a
    per-layer table), results.csv (every curve point) and results.json (points, summary,
    spectra).

    \b
    Example (the pretrained CIFAR-10 ResNet-20; add --checkpoint FILE, repeated,
    to compare weights, e.g. before and after training):
      nncompare align 'nncompare.models:cifar_resnet(depth=20)' \\
          --weights resnet20.th --preset cifar --data cifar10_test.npz --labels y \\
          --layers layer1,layer2,layer3,avgpool --out align-report
    """
    from nncompare.cli.main import _label, _short

    kind = kind.lower()
    conv = conv.lower()
    figure_formats = parse_formats(formats)
    label = _label(name, "--name") or _short(model, weights)
    layer_list = split_names(layers)

    import torch

    from nncompare.alignment import layer_alignment
    from nncompare.analyses.engine import provenance
    from nncompare.cli.loading import load_model
    from nncompare.report._alignment import write_alignment_report

    net = load_model(model, weights=weights, allow_pickle=allow_pickle, trust_modules=trust_modules)
    check_layers_exist(net, layer_list)
    models = [("MODEL", model, net)]
    inputs, x = data.read(models)
    y = read_labels(data.data_path, labels_key, data.x_key, len(inputs.x))
    y = y[: len(x)]
    labels, lib_kind, what = _encode(y, kind)
    click.echo(f"labels: {labels_key or 'y'} of --data, as {what}")
    check_models_run(models, x, data.data_path)
    ckpts: Any = None
    if checkpoints:
        stems = [Path(c).stem for c in checkpoints]
        if len(set(stems)) != len(stems):
            raise click.BadParameter(
                "the checkpoints are labelled by their file names, which repeat "
                f"({', '.join(stems)}); rename the files so that each name is unique",
                param_hint="--checkpoint",
            )
        ckpts = {stem: c for stem, c in zip(stems, checkpoints, strict=True)}
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            df = layer_alignment(
                net,
                x,
                labels,
                layer_list,
                ckpts,
                kind=lib_kind,
                conv=conv,
                include_input=include_input,
                batch_size=data.batch_size,
            )
        except (ValueError, TypeError, RuntimeError) as exc:
            where = "--checkpoint" if ckpts and "checkpoint" in str(exc) else "alignment"
            raise click.ClickException(f"{where}: {' '.join(str(exc).split())}") from exc
    seconds = time.perf_counter() - t0
    notes = sorted({" ".join(str(w.message).split()) for w in caught})
    for note in notes:
        click.echo(f"note: {note}")
    df.attrs["model"] = label
    df.attrs["label_vectors"] = what
    df.attrs["provenance"] = provenance(
        {
            "model": model,
            "weights": Path(weights).name if weights else None,
            "checkpoints": [Path(c).name for c in checkpoints] or None,
            "data": Path(data.data_path).name,
            "preprocessing": inputs.preprocessing,
            "n_samples": int(df.attrs.get("n_samples", len(x))),
            "labels": labels_key or "y",
            "label_vectors": what,
            "kind": kind,
            "conv": conv,
            "notes": notes or None,
            "torch_threads": torch.get_num_threads(),
            "seconds": round(seconds, 2),
            "command": " ".join(sys.argv),
        }
    )
    from nncompare.report._alignment import alignment_summary

    summary = alignment_summary(df)
    last = summary.iloc[-1]
    click.echo(
        f"aligned {len(summary)} layer curve(s) on {df.attrs.get('n_samples')} samples in "
        f"{seconds:.1f} s; last: {last['layer']} ({last['representation']}) alignment at tau=0 "
        f"{last['total']:.4g}, share on the top 10 directions {last['top']:.3f}"
    )
    rep = write_alignment_report(df, out_dir, title=title, formats=figure_formats)
    print_outputs(rep)
