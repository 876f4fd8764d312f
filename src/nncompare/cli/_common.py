"""Blocks every command shares: the model-safety and output options, loading a model and the
inputs of ``--data``, library warnings as notes, and the ``report: ... results: ...`` lines.

One place for each, so that ``nncompare align``, ``stitch``, ``weights``, ``dynamics``,
``compare``, ``extract`` and ``compare-many`` load, warn and print alike. Light at import
time (click only); torch and the library load inside the functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from nncompare.cli._options import data_options, prepare_inputs

__all__ = [
    "PICKLE_HELP",
    "TRUST_HELP",
    "DataArgs",
    "check_layers_exist",
    "check_models_run",
    "data_args",
    "library_notes",
    "out_option",
    "output_options",
    "print_outputs",
    "read_inputs",
    "safety_options",
]

PICKLE_HELP = (
    "Load files that run code when read (pickles, TorchScript, .pt2 archives with pickled "
    "parts). Only for files you trust."
)
TRUST_HELP = "Allow factory functions defined in this module and its submodules. Repeatable."

_FORMATS_HELP = "Also write every figure as a file in OUT/figures/ in these formats."

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _stack(options: Sequence[Decorator]) -> Decorator:
    """One decorator applying ``options`` so that ``--help`` lists them in this order."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def safety_options(
    *, pickle_help: str | None = PICKLE_HELP, trust_help: str | None = TRUST_HELP
) -> Decorator:
    """``--allow-pickle`` and ``--trust-module NAME`` (repeatable), as every loader takes them."""
    return _stack(
        [
            click.option("--allow-pickle", is_flag=True, help=pickle_help),
            click.option(
                "--trust-module", "trust_modules", multiple=True, metavar="NAME", help=trust_help
            ),
        ]
    )


def out_option(default: str, *, help: str | None = None) -> Decorator:
    """``--out DIR`` (into ``out_dir``), the folder a command writes, ``default`` unless
    given."""
    return click.option(
        "--out",
        "out_dir",
        default=default,
        show_default=True,
        type=click.Path(file_okay=False),
        help=help,
    )


def output_options(
    default_out: str | None,
    *,
    title_help: str = "Report title.",
    formats_help: str = _FORMATS_HELP,
    safety: bool = True,
    pickle_help: str | None = PICKLE_HELP,
    trust_help: str | None = TRUST_HELP,
) -> Decorator:
    """``--title``, ``--formats``, ``--out`` (defaulting to ``default_out``; none when it is
    None) and, with ``safety``, :func:`safety_options` (with ``pickle_help`` and
    ``trust_help``)."""
    options: list[Decorator] = [
        click.option("--title", default=None, help=title_help),
        click.option("--formats", default=None, metavar="png,pdf,svg", help=formats_help),
    ]
    if default_out is not None:
        options.append(out_option(default_out))
    if safety:
        options.append(safety_options(pickle_help=pickle_help, trust_help=trust_help))
    return _stack(options)


def check_layers_exist(net: Any, patterns: list[str] | None, option: str = "--layers") -> None:
    """Every name or pattern of ``patterns`` names a module of ``net``, else a one-line
    :class:`click.BadParameter` naming ``option``."""
    if patterns is None:
        return
    from nncompare.capture import LayerNotFoundError, resolve_layers

    try:
        resolve_layers(net, patterns)
    except LayerNotFoundError as exc:
        raise click.BadParameter(" ".join(str(exc).split()), param_hint=option) from exc


def read_inputs(
    data_path: str,
    models: Sequence[tuple[str, str, Any]],
    *,
    x_key: str | None,
    channels_last: bool | None,
    scale: str | None,
    mean: str | None,
    std: str | None,
    preset: str | None,
    max_samples: int | None = None,
    echo: bool = True,
) -> tuple[Any, Any]:
    """The inputs of ``--data`` prepared for ``models`` ((label, spec, net) each), their lines
    printed (with ``echo``); returns ``(inputs, x)`` with ``x`` cut to ``max_samples`` when
    given."""
    inputs = prepare_inputs(
        data_path,
        x_key=x_key,
        models=list(models),
        channels_last=channels_last,
        scale=scale,
        mean=mean,
        std=std,
        preset=preset,
    )
    for line in inputs.lines if echo else ():
        click.echo(line)
    x = inputs.x[:max_samples] if max_samples else inputs.x
    return inputs, x


def check_models_run(
    models: Sequence[tuple[str, str, Any]],
    x: Any,
    data_path: str,
    *,
    what: str = "{label} {spec}",
) -> None:
    """Each (label, spec, net) of ``models`` runs on the first two inputs of ``x``, else a
    one-line error naming ``--data`` (``what`` words the model from ``label`` and ``spec``)."""
    from nncompare.cli.main import _check_runs

    for label, spec, net in models:
        _check_runs(
            net,
            x[:2],
            what=what.format(label=label, spec=spec),
            option=f"--data {Path(data_path).name}",
        )


def library_notes(caught: Sequence[Any], *, pass_on: bool = True) -> list[str]:
    """The library's warnings among ``caught`` as notes (one line each, first occurrence
    order, no repeats); with ``pass_on`` other warnings, such as torch's own, are warned
    again as they came."""
    import warnings

    from nncompare.errors import NNCompareWarning

    notes: list[str] = []
    for w in caught:
        if issubclass(w.category, NNCompareWarning):
            text = " ".join(str(w.message).split())
            if text not in notes:
                notes.append(text)
        elif pass_on:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return notes


def print_outputs(rep: Any, *, figures: bool = True, resolve_figures: bool = False) -> None:
    """The ``report:``, ``results:`` and (with ``figures``) ``figures:`` lines of a written
    report ``rep`` (``.html``, ``.csv``, ``.json`` and optionally ``.figures``)."""
    click.echo(f"report:  {Path(rep.html).resolve()}")
    click.echo(f"results: {Path(rep.csv).resolve()}, {Path(rep.json).resolve()}")
    if not figures:
        return
    for fmt, paths in (getattr(rep, "figures", None) or {}).items():
        if paths:
            where = Path(paths[0]).resolve().parent if resolve_figures else Path(paths[0]).parent
            click.echo(f"figures: {len(paths)} {fmt.upper()} files in {where}")


@dataclass(frozen=True)
class DataArgs:
    """The values of the input-data options (:func:`~nncompare.cli._options.data_options`);
    ``data_path`` is None only where a command makes ``--data`` optional."""

    data_path: str | None
    x_key: str | None
    channels_last: bool | None
    scale: str | None
    mean: str | None
    std: str | None
    preset: str | None
    batch_size: int
    max_samples: int | None

    def read(
        self,
        models: Sequence[tuple[str, str, Any]],
        path: str | None = None,
        *,
        echo: bool = True,
        cut: bool = True,
    ) -> Any:
        """:func:`read_inputs` of ``path`` (default ``--data``) with these options:
        ``(inputs, x)``, ``x`` cut to ``--max-samples`` with ``cut`` (without, the library
        call takes ``max_samples`` itself)."""
        path = self.data_path if path is None else path
        if path is None:
            raise click.BadParameter("expected a file of inputs; got none", param_hint="--data")
        return read_inputs(
            path,
            models,
            x_key=self.x_key,
            channels_last=self.channels_last,
            scale=self.scale,
            mean=self.mean,
            std=self.std,
            preset=self.preset,
            max_samples=self.max_samples if cut else None,
            echo=echo,
        )


_DATA_FIELDS = tuple(DataArgs.__dataclass_fields__)


def data_args(f: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`~nncompare.cli._options.data_options` for a command that takes their values
    as one ``data: DataArgs`` argument."""

    @functools.wraps(f)
    def command(**kwargs: Any) -> Any:
        data = DataArgs(**{k: kwargs.pop(k) for k in _DATA_FIELDS})
        return f(data=data, **kwargs)

    return data_options(command)


def label_array(
    path: str,
    key: str | None,
    x_key: str | None,
    *,
    option: str,
    inputs_name: str,
    kind: str,
    missing_y: str | None,
) -> tuple[str, Any] | None:
    """``(key, array)`` of the labels in the ``.npz`` ``path`` (``--labels KEY``, else
    ``y``), read without unpickling; the caller checks the array's shape and dtype.

    With no ``KEY`` and no usable ``y``: None when ``missing_y`` is None, else a
    :class:`click.BadParameter` with ``missing_y`` (``{name}`` the file name, ``{keys}``
    its arrays). ``option`` names the file (``--data``), ``inputs_name`` the inputs' array
    in the error for a clash (``the inputs``, ``--x-key``), ``kind`` the expected array
    (``a numeric array``) in the error for an object array.
    """
    import numpy as np

    name = Path(path).name
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.files)
        if key is None:
            if "y" not in keys or x_key == "y":
                if missing_y is None:
                    return None
                raise click.BadParameter(
                    missing_y.format(name=name, keys=", ".join(keys)), param_hint="--labels"
                )
            key = "y"
        elif key not in keys:
            raise click.BadParameter(
                f"{option} {name} has no array {key!r}; it holds {', '.join(keys)}",
                param_hint="--labels",
            )
        inputs_key = x_key if x_key is not None else ("x" if "x" in keys else None)
        if key == inputs_key:
            raise click.BadParameter(
                f"--labels and {inputs_name} both name {key!r}; the labels must be another array",
                param_hint="--labels",
            )
        try:
            return key, archive[key]
        except ValueError as exc:
            raise click.BadParameter(
                f"the labels {key!r} in {name} cannot be read without unpickling "
                f"({' '.join(str(exc).split())}); store them as {kind}",
                param_hint="--labels",
            ) from exc


def split_names(
    text: str | None,
    option: str = "--layers",
    *,
    what: str = "layer names or patterns",
    example: str = "relu1,layer*",
) -> list[str] | None:
    """The comma-separated names of ``option`` (None when not given); an empty name is a
    one-line :class:`click.BadParameter` naming ``what`` was expected, e.g. ``example``."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise click.BadParameter(
            f"expected {what} separated by commas, such as {example}; got {text!r} (an empty name)",
            param_hint=option,
        )
    return parts
