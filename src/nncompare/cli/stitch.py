"""``nncompare stitch``: model stitching between two models on the command line.

Thin: the models load as ``nncompare compare`` loads them (:mod:`nncompare.cli.loading`,
safe by default), the inputs as it takes them (:func:`~nncompare.cli._options.data_options`),
then each layer pair is stitched with :mod:`nncompare.stitching` for each matching method
and the results go to a report folder (:func:`nncompare.report.write_stitching_report`).
Every bad input is a one-line error naming the option; heavy imports happen inside the
command. :mod:`nncompare.cli.main` registers :func:`stitch` with the ``nncompare`` group.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from nncompare.cli._common import (
    DataArgs,
    check_models_run,
    data_args,
    label_array,
    library_notes,
    output_options,
    print_outputs,
    split_names,
)
from nncompare.cli._options import parse_formats, parse_spec_options

_MODEL_HELP = """\b
MODEL_A and MODEL_B load exactly as in `nncompare compare` (see its --help):
  * a torch.export archive (.pt2), checked part by part;
  * a TorchScript archive or a torch.save(model) pickle, only with --allow-pickle;
  * 'module:factory' with literal keyword arguments and --weights-a/--weights-b
    state dicts, e.g. 'nncompare.models:cifar_resnet(depth=20)'. Only factories
    of nncompare.models or of modules trusted with --trust-module are called.
"""

__all__ = ["METHOD_OPTIONS", "MethodSpec", "pair_layers", "parse_method", "stitch"]

#: the methods of ``--method`` and the options each takes (``name:key=value,...``)
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "ls": (),
    "procrustes": (),
    "rrr": ("rank",),
    "lasso": ("alpha", "max_iter", "tol"),
    "task": (
        "epochs",
        "lr",
        "target",
        "init",
        "temperature",
        "l1",
        "cka_penalty",
        "seed",
        "batch_size",
        "eval_every",
    ),
    "identity": (),
}
DEFAULT_METHODS = ("ls", "task")
DIRECT = ("ls", "procrustes", "rrr", "lasso")


@dataclass(frozen=True)
class MethodSpec:
    """One ``--method``: its name and options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    text: str = ""


def parse_method(text: str) -> MethodSpec:
    """``--method`` text (``"ls"``, ``"rrr:rank=8"``, ``"task:epochs=5,lr=1e-3"``) to a spec.

    Values are Python literals (``ast.literal_eval``, never ``eval``), else text.

    Raises
    ------
    click.BadParameter
        For an unknown method (close names suggested), an option the method does not take,
        or options not written as ``key=value`` pairs.
    """
    import difflib

    name = text.partition(":")[0]
    name = name.strip().lower()
    known = ", ".join(METHOD_OPTIONS)
    if name not in METHOD_OPTIONS:
        close = difflib.get_close_matches(name, list(METHOD_OPTIONS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise click.BadParameter(
            f"unknown method {name!r} in {text!r}: {hint}Expected one of {known} "
            "(direct matching: ls, procrustes, rrr, lasso; task: task-loss training; "
            "identity: the no-transformation baseline)",
            param_hint="--method",
        )
    accepted = METHOD_OPTIONS[name]

    def check_key(key: str) -> None:
        if key not in accepted:
            close = difflib.get_close_matches(key, list(accepted), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            listed = ", ".join(accepted) if accepted else "none"
            raise click.BadParameter(
                f"method {name} has no option {key!r}: {hint}its options: {listed}",
                param_hint="--method",
            )

    options = parse_spec_options(
        text,
        option="--method",
        example="rrr:rank=8",
        examples="task:epochs=5,lr=0.001",
        check_key=check_key,
    )
    return MethodSpec(name=name, options=options, text=text.strip())


def _split_layers(values: Sequence[str], option: str) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(split_names(value, option, what="layer names", example="layer1,layer2") or [])
    return out


def pair_layers(layers_a: Sequence[str], layers_b: Sequence[str]) -> list[tuple[str, str]]:
    """The layer pairs of ``--layer-a`` and ``--layer-b``, each given once or repeatedly,
    or as comma-separated lists: the i-th layer of A goes with the i-th of B; one layer on a
    side goes with every layer of the other."""
    a = _split_layers(layers_a, "--layer-a")
    b = _split_layers(layers_b, "--layer-b")
    if len(a) == len(b):
        pairs = list(zip(a, b, strict=True))
    elif len(a) == 1:
        pairs = [(a[0], lb) for lb in b]
    elif len(b) == 1:
        pairs = [(la, b[0]) for la in a]
    else:
        raise click.BadParameter(
            f"expected as many layers of B as of A (they are stitched in pairs: the i-th "
            f"--layer-a with the i-th --layer-b), or one layer on a side; got {len(a)} "
            f"({', '.join(a)}) and {len(b)} ({', '.join(b)})",
            param_hint="--layer-b",
        )
    return list(dict.fromkeys(pairs))


def _load_labels(path: str, key: str | None, x_key: str | None, n: int, option: str) -> Any:
    """The label array of ``path`` (``key``, or ``y`` when present), as int64, or None."""
    import numpy as np
    import torch

    name = Path(path).name
    if Path(path).suffix.lower() != ".npz":
        if key is not None:
            raise click.BadParameter(
                f"{name} is a .npy file holding one array (the inputs), so it has no labels "
                f"{key!r}; store inputs and labels together with numpy.savez(path, x=..., "
                "y=...)",
                param_hint="--labels",
            )
        return None
    found = label_array(
        path,
        key,
        x_key,
        option=option,
        inputs_name="--x-key",
        kind="an integer array",
        missing_y=None,
    )
    if found is None:
        return None
    key, y = found
    if y.ndim != 1 or len(y) != n:
        raise click.BadParameter(
            f"expected one class label per input of {option} {name}, shape ({n},); "
            f"{key!r} has shape {tuple(y.shape)}",
            param_hint="--labels",
        )
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise click.BadParameter(
            f"expected integer class labels in {key!r} of {name}; got dtype {y.dtype} "
            "(class indices 0..K-1, not one-hot rows or scores)",
            param_hint="--labels",
        )
    return torch.as_tensor(y.astype(np.int64))


def _cli_words(message: str) -> str:
    """The library's Python wording in command-line terms."""
    flat = " ".join(message.split())
    return (
        flat.replace("resize='interpolate'", "--resize interpolate")
        .replace("resize='pool'", "--resize pool")
        .replace(" to nc.stitch", "")
        .replace("kind='linear'", "--kind linear")
        .replace("method='rrr'", "--method rrr")
        .replace("method='ls'", "--method ls")
        .replace("init='ls'", "--method task:init='ls'")
        .replace("target='soft'", "--target soft")
    )


def _check_layers(net_a: Any, net_b: Any, pairs: list[tuple[str, str]]) -> None:
    """Each layer of A a module output, each layer of B a true cut (one-line errors)."""
    from nncompare.capture import LayerNotFoundError
    from nncompare.stitching import InvalidCutError
    from nncompare.stitching._cut import trace

    try:
        traced_a = trace(net_a, "MODEL_A")
        traced_b = trace(net_b, "MODEL_B")
    except InvalidCutError as exc:
        raise click.ClickException(_cli_words(str(exc))) from exc
    for option, layers, check in (
        ("--layer-a", [a for a, _ in pairs], traced_a.cut_node),
        ("--layer-b", [b for _, b in pairs], traced_b.check_back),
    ):
        for layer in dict.fromkeys(layers):
            try:
                check(layer)
            except (LayerNotFoundError, InvalidCutError) as exc:
                raise click.BadParameter(_cli_words(str(exc)), param_hint=option) from exc


def _check_methods(specs: list[MethodSpec], *, kind: str, has_labels: bool, target: str) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise click.BadParameter(
                f"method {spec.name!r} is given twice; each method runs once per layer pair "
                "(run the command again for other options)",
                param_hint="--method",
            )
        seen.add(spec.name)
        if kind == "lowrank" and spec.name in ("ls", "procrustes", "lasso", "identity"):
            raise click.BadParameter(
                f"--kind lowrank makes a rank-limited stitching layer, which cannot hold the "
                f"full-rank matrix of --method {spec.name}; use --method rrr (the reduced-rank "
                "fit) or --method task, or --kind linear",
                param_hint="--method",
            )
        if spec.name == "lasso" and "alpha" not in spec.options:
            raise click.BadParameter(
                "method lasso needs its L1 penalty, e.g. --method lasso:alpha=0.01",
                param_hint="--method",
            )
        if spec.name == "rrr" and "rank" not in spec.options and kind != "lowrank":
            raise click.BadParameter(
                "method rrr needs the rank of the matrix, e.g. --method rrr:rank=8",
                param_hint="--method",
            )
        if spec.name == "task" and not has_labels:
            if spec.options.get("target", target) == "hard":
                raise click.BadParameter(
                    "task-loss training with target hard trains on the labels, but --data "
                    "has none: pass --labels KEY (an integer array in the .npz), or use "
                    "--target soft (model B's own outputs)",
                    param_hint="--target",
                )


@dataclass
class _Run:
    """The rows and results of one command run."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)


def _stitch_all(
    net_a: Any,
    net_b: Any,
    pairs: list[tuple[str, str]],
    specs: list[MethodSpec],
    *,
    data: Any,
    eval_data: Any,
    sample: Any,
    kind: str,
    rank: int | None,
    resize: str | None,
    task_defaults: dict[str, Any],
    monitor: list[str],
    batch_size: int,
    progress: bool,
    names: tuple[str, str],
) -> _Run:
    import dataclasses
    import warnings

    from nncompare.stitching import evaluate, fit, stitch, train

    run = _Run()
    n_eval = len(eval_data[0] if isinstance(eval_data, tuple) else eval_data)
    for position, (la, lb) in enumerate(pairs):
        label = la if la == lb else f"{la} -> {lb}"
        for spec in specs:
            t0 = time.perf_counter()
            where = f"stitching {label} ({spec.text or spec.name})"
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    stitched = stitch(
                        net_a,
                        la,
                        net_b,
                        lb,
                        kind=kind,
                        rank=rank,
                        resize=resize,
                        example_input=sample,
                    )
                    if spec.name == "identity":
                        c_a, c_b = stitched.widths
                        if c_a != c_b:
                            run.rows.append(
                                {
                                    "position": position,
                                    "layer_a": la,
                                    "layer_b": lb,
                                    "method": "identity",
                                    "width_a": c_a,
                                    "width_b": c_b,
                                    "n_eval_samples": n_eval,
                                    "skipped": "no identity baseline between unequal "
                                    f"widths ({c_a} and {c_b} channels)",
                                }
                            )
                            click.echo(f"{label}: identity skipped (widths {c_a} and {c_b})")
                            continue
                        result = evaluate(stitched, eval_data, batch_size=batch_size)
                    elif spec.name in DIRECT:
                        fitted = fit(
                            stitched, data, spec.name, batch_size=batch_size, **spec.options
                        )
                        ev = evaluate(stitched, eval_data, batch_size=batch_size)
                        result = dataclasses.replace(
                            fitted,
                            accuracy=ev.accuracy,
                            accuracy_b=ev.accuracy_b,
                            relative_accuracy=ev.relative_accuracy,
                            cross_entropy=ev.cross_entropy,
                            agreement=ev.agreement,
                        )
                    else:
                        options = {**task_defaults, **spec.options}
                        result = train(
                            stitched,
                            data,
                            monitor=monitor,
                            eval_data=eval_data,
                            progress=progress,
                            **options,
                        )
            except (ValueError, TypeError) as exc:
                raise click.ClickException(f"{where}: {_cli_words(str(exc))}") from exc
            seconds = time.perf_counter() - t0
            row = {"position": position, **result.to_row(), "skipped": None}
            if spec.name == "identity":
                row["n_samples"] = None  # nothing was fitted
            row.update(
                model_a=names[0],
                model_b=names[1],
                n_eval_samples=n_eval,
                seconds=round(seconds, 3),
            )
            notes = library_notes(caught)
            if notes:
                row["note"] = "; ".join(notes)
                for note in notes:
                    click.echo(f"{label}: {spec.name}: note: {note}")
            run.rows.append(row)
            run.results.append(result)
            score = (
                f"relative accuracy {result.relative_accuracy:.3f}"
                if result.relative_accuracy is not None
                else f"agreement with B {result.agreement:.3f}"
            )
            click.echo(
                f"{label}: {spec.name:<10} {score}, cross-entropy to B "
                f"{result.cross_entropy:.4f} ({seconds:.1f} s)"
            )
    return run


_LAYER_HELP = (
    "Layer of {which} to cut at (a module name, see `nncompare layers`); repeat, or give a "
    "comma-separated list, for several cuts. The i-th --layer-a is stitched to the i-th "
    "--layer-b; one layer on a side goes with every layer of the other."
)
_METHOD_HELP = (
    "Matching method, optionally with options: ls (least squares), procrustes, rrr:rank=K "
    "(reduced rank), lasso:alpha=A (direct matching, closed form), task (task-loss "
    "training, options epochs, lr, target, init, temperature, l1, cka_penalty, seed, "
    "batch_size, eval_every), identity (the no-transformation baseline). Repeat for "
    f"several. Default: {', '.join(DEFAULT_METHODS)}."
)


@click.command(epilog=_MODEL_HELP)
@click.argument("model_a")
@click.argument("model_b")
@data_args
@click.option(
    "--labels",
    "labels_key",
    default=None,
    metavar="KEY",
    help="Array name of the integer class labels in the --data (and --eval-data) .npz. "
    "Default: 'y' when present. Relative accuracy needs labels; without them the report "
    "shows the agreement with model B's top-1 classes.",
)
@click.option(
    "--eval-data",
    "eval_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Held-out inputs (and labels, same keys and preprocessing as --data) to evaluate "
    "the stitched models on. Default: --data itself (the scores are then on the data the "
    "stitching layer was fitted to).",
)
@click.option("--weights-a", type=click.Path(exists=True, dir_okay=False))
@click.option("--weights-b", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--layer-a",
    "layers_a",
    multiple=True,
    required=True,
    metavar="LAYER",
    help=_LAYER_HELP.format(which="MODEL_A (the end of its front)"),
)
@click.option(
    "--layer-b",
    "layers_b",
    multiple=True,
    required=True,
    metavar="LAYER",
    help=_LAYER_HELP.format(which="MODEL_B (the stitched model continues after it)"),
)
@click.option(
    "--method", "method_specs", multiple=True, metavar="NAME[:K=V,...]", help=_METHOD_HELP
)
@click.option(
    "--kind",
    type=click.Choice(["linear", "lowrank"], case_sensitive=False),
    default="linear",
    show_default=True,
    help="Stitching layer: an affine map (a 1x1 convolution for feature maps), or a "
    "bottleneck of --rank channels.",
)
@click.option("--rank", type=click.IntRange(1), default=None, help="Bottleneck of --kind lowrank.")
@click.option(
    "--resize",
    type=click.Choice(["interpolate", "pool"], case_sensitive=False),
    default=None,
    help="How A's feature maps are brought to B's spatial size when they differ.",
)
@click.option(
    "--epochs",
    default=3,
    show_default=True,
    type=click.IntRange(1, 10000),
    help="Epochs of task-loss training.",
)
@click.option(
    "--lr",
    default=1e-3,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Adam's learning rate for task-loss training.",
)
@click.option(
    "--target",
    type=click.Choice(["soft", "hard"], case_sensitive=False),
    default="soft",
    show_default=True,
    help="Task-loss target: model B's softmax outputs (soft, the paper's) or the labels.",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0))
@click.option(
    "--monitor",
    "monitor",
    multiple=True,
    metavar="MEASURE",
    help="Similarity measure recorded during task-loss training between the transformed "
    "activations and B's (e.g. cka, lr_r2, cca, svcca; repeat). Default: cka.",
)
@click.option("--name-a", default=None, help="Label of MODEL_A in the report.")
@click.option("--name-b", default=None, help="Label of MODEL_B in the report.")
@output_options("nncompare-stitch")
@click.option("--progress/--no-progress", default=True)
def stitch(
    model_a: str,
    model_b: str,
    data: DataArgs,
    labels_key: str | None,
    eval_path: str | None,
    weights_a: str | None,
    weights_b: str | None,
    layers_a: tuple[str, ...],
    layers_b: tuple[str, ...],
    method_specs: tuple[str, ...],
    kind: str,
    rank: int | None,
    resize: str | None,
    epochs: int,
    lr: float,
    target: str,
    seed: int,
    monitor: tuple[str, ...],
    name_a: str | None,
    name_b: str | None,
    title: str | None,
    formats: str | None,
    out_dir: str,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
    progress: bool,
) -> None:
    """Stitch MODEL_A into MODEL_B at the given layers and report how well it works.

    The front of MODEL_A up to --layer-a, a trainable linear stitching layer, and the
    back of MODEL_B after --layer-b form one network (Csiszárik et al. 2021). Each
    --method sets the stitching layer on --data (direct matching in closed form, or
    task-loss training); the stitched network is then scored against MODEL_B on
    --eval-data: relative accuracy (stitched / B) and cross-entropy to B's outputs.
    --max-samples takes the first N inputs of --data and of --eval-data alike. OUT gets
    report.html, results.csv (one row per cut and method), results.json (the rows, the
    training histories, provenance) and matrices.npz (every stitching matrix and bias).

    \b
    Example (the pretrained CIFAR-10 ResNets, stitched at the three stages):
      nncompare stitch 'nncompare.models:cifar_resnet(depth=20)' \\
          'nncompare.models:cifar_resnet(depth=32)' \\
          --weights-a resnet20.th --weights-b resnet32.th --preset cifar \\
          --data cifar10_train.npz --eval-data cifar10_test.npz --labels y \\
          --layer-a layer1,layer2,layer3 --layer-b layer1,layer2,layer3 \\
          --method ls --method task --out stitch-report
    """
    from nncompare.cli.main import _label, _short

    kind = kind.lower()
    target = target.lower()
    resize = resize.lower() if resize else None
    specs = [parse_method(t) for t in (method_specs or DEFAULT_METHODS)]
    pairs = pair_layers(layers_a, layers_b)
    figure_formats = parse_formats(formats)
    if kind == "lowrank" and rank is None:
        raise click.BadParameter(
            "--kind lowrank needs --rank, the bottleneck width (e.g. --rank 8)",
            param_hint="--rank",
        )
    if kind != "lowrank" and rank is not None:
        raise click.BadParameter(
            "--rank sets the bottleneck of --kind lowrank; for a reduced-rank fit of a full "
            "layer use --method rrr:rank=K",
            param_hint="--rank",
        )
    monitor_names = _check_monitor(monitor or ("cka",))
    label_a = _label(name_a, "--name-a") or _short(model_a, weights_a)
    label_b = _label(name_b, "--name-b") or _short(model_b, weights_b)

    import torch

    from nncompare.analyses.engine import provenance
    from nncompare.cli.loading import load_model
    from nncompare.report import StitchingData, write_stitching_report

    net_a = load_model(
        model_a, weights=weights_a, allow_pickle=allow_pickle, trust_modules=trust_modules
    )
    net_b = load_model(
        model_b, weights=weights_b, allow_pickle=allow_pickle, trust_modules=trust_modules
    )
    models = [("MODEL_A", model_a, net_a), ("MODEL_B", model_b, net_b)]
    inputs, x = data.read(models)
    y = _load_labels(data.data_path, labels_key, data.x_key, len(inputs.x), "--data")
    y = y[: len(x)] if y is not None else None
    if eval_path is not None:
        eval_inputs, ex = data.read(models, eval_path, echo=False)
        ey = _load_labels(eval_path, labels_key, data.x_key, len(eval_inputs.x), "--eval-data")
        ey = ey[: len(ex)] if ey is not None else None
        if (y is None) != (ey is None):
            which = "--eval-data" if ey is None else "--data"
            raise click.BadParameter(
                f"labels were found in only one of --data and --eval-data ({which} has none); "
                "store them in both .npz files under the same name (--labels KEY)",
                param_hint="--labels",
            )
    else:
        ex, ey = x, y
        click.echo(
            "evaluation: on --data itself (no --eval-data given), so the scores are on the "
            "inputs the stitching layers were fitted to"
        )
    if y is None:
        click.echo(
            "labels: none in --data, so no accuracies: the report shows the agreement with "
            "MODEL_B's top-1 classes and the cross-entropy to its outputs (pass --labels KEY)"
        )
    check_models_run(models, x, data.data_path)
    _check_layers(net_a, net_b, pairs)
    _check_methods(specs, kind=kind, has_labels=y is not None, target=target)
    fit_data = (x, y) if y is not None else x
    eval_data = (ex, ey) if ey is not None else ex
    click.echo(
        f"stitching {len(pairs)} layer pair{'s' if len(pairs) != 1 else ''} with "
        f"{', '.join(s.text or s.name for s in specs)}"
        + ("" if method_specs else " (the default; choose with --method)")
    )
    torch_threads = torch.get_num_threads()
    t0 = time.perf_counter()
    run = _stitch_all(
        net_a,
        net_b,
        pairs,
        specs,
        data=fit_data,
        eval_data=eval_data,
        sample=x[:2],
        kind=kind,
        rank=rank,
        resize=resize,
        task_defaults={"epochs": epochs, "lr": lr, "target": target, "seed": seed},
        monitor=monitor_names,
        batch_size=data.batch_size,
        progress=progress,
        names=(label_a, label_b),
    )
    import pandas as pd

    frame = pd.DataFrame(run.rows)
    frame.attrs["names"] = [label_a, label_b]
    frame.attrs["provenance"] = provenance(
        {
            "model_a": model_a,
            "model_b": model_b,
            "weights_a": Path(weights_a).name if weights_a else None,
            "weights_b": Path(weights_b).name if weights_b else None,
            "data": Path(data.data_path).name,
            "eval_data": Path(eval_path).name if eval_path else "the --data inputs",
            "preprocessing": inputs.preprocessing,
            "n_samples": len(x),
            "n_eval_samples": len(ex),
            "labels": labels_key or ("y" if y is not None else None),
            "kind": kind,
            "rank": rank,
            "resize": resize,
            "methods": [s.text or s.name for s in specs],
            "monitor": monitor_names,
            "torch_threads": torch_threads,
            "seconds": round(time.perf_counter() - t0, 2),
            "command": " ".join(sys.argv),
        }
    )
    rep = write_stitching_report(
        StitchingData(frame=frame, results=run.results),
        out_dir,
        title=title,
        formats=figure_formats,
    )
    print_outputs(rep)


def _check_monitor(names: Sequence[str]) -> list[str]:
    """``--monitor`` names against the registry (case-insensitive; one-line errors)."""
    from nncompare.measures import available, get

    registry = available("activations")
    by_lower = {k.lower(): k for k in registry}
    out = []
    for text in names:
        name = by_lower.get(text.strip().lower(), text.strip())
        try:
            get(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--monitor") from None
        if name not in registry:
            raise click.BadParameter(
                f"{name!r} compares covariance matrices, not activations; measures of "
                f"activations: {', '.join(sorted(registry))}",
                param_hint="--monitor",
            )
        if name not in out:
            out.append(name)
    return out
