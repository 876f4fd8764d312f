"""Options shared by the commands: measure specs, figure formats and the input data.

Everything here turns command-line text into the arguments of the public functions and
fails with a one-line :class:`click.BadParameter` / :class:`click.ClickException` naming
the option, what was expected, what arrived and how to fix it. Heavy imports (torch,
the measures) happen inside the functions, so that ``nncompare --version`` stays fast.
"""

from __future__ import annotations

import ast
import difflib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

__all__ = [
    "DEFAULT_MEASURES",
    "DFT_DEFAULT_MEASURES",
    "PRESETS",
    "PreparedInputs",
    "data_options",
    "first_layer",
    "parse_formats",
    "parse_measure_spec",
    "parse_measures",
    "prepare_inputs",
]

#: Measures of ``nncompare compare`` when no --measure is given.
DEFAULT_MEASURES: tuple[str, ...] = ("cka", "svcca", "pwcca")
#: The same with ``--conv dft``, which only the CCA family supports.
DFT_DEFAULT_MEASURES: tuple[str, ...] = ("cca", "svcca")
#: ``--preset`` names: per-channel (mean, std) after scaling to [0, 1].
PRESETS: tuple[str, ...] = ("cifar",)

# Arguments of the measure functions that are not measure options on the command line.
_FIGURE_FORMATS = ("png", "pdf", "svg")  # nncompare.plot._export.FIGURE_FORMATS (no import)


# --------------------------------------------------------------------------- measures


def _split_top_level(text: str) -> list[str]:
    """Split at commas that are not inside brackets or quotes."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _literal(text: str) -> Any:
    """A Python literal (``0.95``, ``(10, 20)``, ``True``, ``'x'``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_measure_spec(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name"`` or ``"name:key=value,key=value"`` into the name and its options.

    Values are read as Python literals (``ast.literal_eval``; never ``eval``), and kept
    as text when they are not one: ``pwcca:convention=google,epsilon=1e-6`` gives
    ``("pwcca", {"convention": "google", "epsilon": 1e-06})``. The name is lower-cased
    (measure names are case-insensitive); commas inside brackets or quotes do not
    separate options (``svcca:dims=(10,20)``).

    Raises
    ------
    click.BadParameter
        For an empty name, an option without ``=``, a key that is not an identifier, or
        a key given twice.
    """
    name = text.partition(":")[0]
    name = name.strip().lower()
    if not name:
        raise click.BadParameter(
            f"expected a measure name such as 'cka' or 'svcca:variance=0.95'; got {text!r}",
            param_hint="--measure",
        )
    options = parse_spec_options(
        text,
        option="--measure",
        example="svcca:variance=0.95",
        examples="pwcca:convention=google,epsilon=1e-6",
    )
    return name, options


def parse_spec_options(
    text: str,
    *,
    option: str,
    example: str,
    examples: str,
    check_key: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The ``key=value`` options after the ``:`` of a ``name:key=value,...`` spec of
    ``option`` (none without a ``:``), values read by :func:`_literal`.

    ``check_key`` may refuse a key (it raises) before the check for a key given twice;
    ``example`` (one option) and ``examples`` (several) appear in the errors.

    Raises
    ------
    click.BadParameter
        For a ``:`` with nothing after it, an option without ``=``, a key that is not an
        identifier, or a key given twice.
    """
    _, sep, rest = text.partition(":")
    options: dict[str, Any] = {}
    if sep and not rest.strip():
        raise click.BadParameter(
            f"expected options after ':' in {text!r}, e.g. '{example}' (or no ':')",
            param_hint=option,
        )
    for item in _split_top_level(rest) if rest.strip() else ():
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise click.BadParameter(
                f"expected options as key=value pairs separated by commas, e.g. "
                f"'{examples}'; got {item.strip()!r} in {text!r}",
                param_hint=option,
            )
        if check_key is not None:
            check_key(key)
        if key in options:
            raise click.BadParameter(
                f"option {key!r} is given twice in {text!r}", param_hint=option
            )
        options[key] = _literal(value.strip())
    return options


def _ints(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, tuple | list):
        return [i for v in value for i in _ints(v)]
    return []


_PROBE_LIMIT = 1024


def _probe(name: str, function: Callable[..., Any], options: dict[str, Any], text: str) -> None:
    """Call the measure once on small random data so that bad option values fail now.

    The data are sized after the integer options (``dims=``, ``k=``), so that a value
    that fits real data is not refused for the probe's size; options with integers past
    ``_PROBE_LIMIT`` are left to the run itself.
    """
    import numpy as np

    big = max((abs(i) for v in options.values() for i in _ints(v)), default=0)
    if big > _PROBE_LIMIT:
        return
    d = max(8, big + 2)
    n = max(64, 3 * d, big + 16)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d))
    y = x @ rng.standard_normal((d, d)) + 0.5 * rng.standard_normal((n, d))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            function(x, y, **options)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(
            f"{text}: {' '.join(str(exc).split())}", param_hint="--measure"
        ) from exc


def _check_declared(info: Any, options: dict[str, Any], text: str) -> None:
    """Check option values against the measure's declared constraints (no data needed)."""
    from nncompare._validation import InvalidParameterError

    try:
        info.check_options(options)
    except InvalidParameterError as exc:
        raise click.BadParameter(f"{text}: {exc.reason}", param_hint="--measure") from None


def parse_measures(texts: Sequence[str], *, conv: str) -> dict[str, dict[str, Any]]:
    """``--measure`` values to the ``{name: options}`` mapping of ``compare_models``.

    Names are looked up case-insensitively among the activation measures of the
    registry (unknown names get the registry's "did you mean" error); option names are
    checked against the measure function's keyword arguments, and option values against
    the measure's declared constraints (:attr:`MeasureInfo.parameters`), then by calling
    the measure once on small random data (for rules between options, such as pwcca's
    epsilon with convention='google'), so that the library's own error for a bad value
    comes before any model runs. With ``conv="dft"`` only measures
    whose registry entry lists the ``dft`` policy are accepted.

    Raises
    ------
    click.BadParameter
        One line, with the option hint ``--measure`` (or ``--conv``).
    """
    from nncompare.analyses.grid import measure_options
    from nncompare.measures import available, get, supporting

    registry = available()
    by_lower = {k.lower(): k for k in registry}
    out: dict[str, dict[str, Any]] = {}
    for text in texts:
        raw_name, options = parse_measure_spec(text)
        name = by_lower.get(raw_name, raw_name)
        try:
            info = get(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--measure") from None
        if info.input != "activations":
            acts = ", ".join(sorted(available("activations")))
            raise click.BadParameter(
                f"{name!r} compares covariance matrices, not activations, so compare cannot "
                f"run it; measures of activations: {acts}",
                param_hint="--measure",
            )
        if name in out:
            raise click.BadParameter(
                f"{name!r} is given twice; each measure runs once per comparison (run "
                "compare again for other options)",
                param_hint="--measure",
            )
        if conv not in info.conv_policies:
            dft = ", ".join(supporting("dft"))
            raise click.BadParameter(
                f"{name} is not defined with --conv {conv} (it takes --conv "
                f"{', '.join(info.conv_policies)}); with --conv {conv} use {dft}",
                param_hint="--measure",
            )
        accepted = measure_options(info.name)  # the library's own rule, one place
        for key in options:
            if key == "conv":
                raise click.BadParameter(
                    f"set the reshape policy with --conv, not as an option of {name} "
                    f"(got {text!r})",
                    param_hint="--measure",
                )
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}? " if close else ""
                listed = ", ".join(accepted) if accepted else "none"
                raise click.BadParameter(
                    f"{name} has no option {key!r}: {hint}Its options: {listed} "
                    f"(see help(nncompare.{name}))",
                    param_hint="--measure",
                )
        if options:
            _check_declared(info, options, text)
            _probe(name, info.function, options, text)  # what the declarations cannot say
        out[name] = options
    return out


def parse_formats(text: str | None) -> tuple[str, ...]:
    """``--formats png,pdf,svg`` to the ``formats=`` tuple of ``write_report``."""
    if text is None:
        return ()
    fmts = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    bad = [f for f in fmts if f not in _FIGURE_FORMATS]
    if not fmts or bad:
        raise click.BadParameter(
            f"expected a comma-separated subset of {', '.join(_FIGURE_FORMATS)} such as "
            f"png,pdf; got {text!r}" + (f" (unknown: {', '.join(bad)})" if bad else ""),
            param_hint="--formats",
        )
    return tuple(dict.fromkeys(fmts))


# --------------------------------------------------------------------------- data


def _scale_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from nncompare.workbench.data.images import parse_scale

    try:
        parse_scale(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def data_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The input-data options of ``compare`` and ``extract``."""
    options = [
        click.option(
            "--data",
            "data_path",
            required=True,
            type=click.Path(exists=True, dir_okay=False),
            help="Inputs as .npy or .npz (key 'x' or the only array).",
        ),
        click.option("--x-key", default=None, help="Array name of the inputs in an .npz."),
        click.option(
            "--channels-last/--channels-first",
            "channels_last",
            default=None,
            help="Image layout of 4-D inputs: (N, H, W, C) or (N, C, H, W). Default: "
            "inferred where only one reading fits (the model's first convolution's "
            "input channels), and said in the output.",
        ),
        click.option(
            "--scale",
            default=None,
            callback=_scale_callback,
            help="Multiply inputs by this first, e.g. 1/255. Default: 1/255 for uint8 "
            "inputs, none for floats.",
        ),
        click.option(
            "--mean",
            default=None,
            metavar="M1,M2,...",
            help="Per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406.",
        ),
        click.option(
            "--std",
            default=None,
            metavar="S1,S2,...",
            help="Per-channel std divided by after the mean, e.g. 0.229,0.224,0.225.",
        ),
        click.option(
            "--preset",
            type=click.Choice(PRESETS, case_sensitive=False),
            default=None,
            help="Normalisation of a model family: 'cifar' is --mean 0.485,0.456,0.406 "
            "--std 0.229,0.224,0.225 (nncompare.models.CIFAR_MEAN/CIFAR_STD, the pretrained "
            "CIFAR ResNets); --mean/--std override it.",
        ),
        click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1)),
        click.option(
            "--max-samples", default=None, type=click.IntRange(1), help="Use the first N inputs."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@dataclass(frozen=True)
class PreparedInputs:
    """Inputs ready for the models and what was done to them (one line each)."""

    x: Any
    lines: list[str]
    preprocessing: str


def first_layer(net: Any) -> tuple[str, str, int, int] | None:
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


def _first_conv2d(net: Any) -> tuple[str, int] | None:
    """(name, in_channels) of the first 2-D convolution, when it is the first weighted layer."""
    first = first_layer(net)
    if first is None or first[1] != "Conv2d":
        return None
    return first[0], first[3]


def _cli_words(message: str) -> str:
    """prepare_images' Python wording of the layout choice in command-line terms."""
    return (
        message.replace(
            "layout='NHWC' / 'NCHW' (CLI: --channels-last / --channels-first)",
            "--channels-last or --channels-first",
        )
        .replace("(layout='NHWC')", "(--channels-last)")
        .replace("(layout='NCHW')", "(--channels-first)")
    )


def prepare_inputs(
    data_path: str,
    *,
    x_key: str | None,
    models: Sequence[tuple[str, str, Any]],
    channels_last: bool | None,
    scale: str | None,
    mean: str | None,
    std: str | None,
    preset: str | None,
) -> PreparedInputs:
    """Load ``--data`` and turn it into the float32 tensor the models take.

    Layout, scaling and normalisation are :func:`nncompare.data.prepare_images`'s; this
    adds the command line's choices: the layout from ``--channels-last/--channels-first``
    or, when neither is given and the models start with a 2-D convolution, inferred
    with its ``in_channels``; 4-D inputs of models that do not start with one are kept
    as they are. ``models`` holds ``(label, spec, net)`` triples.

    Raises
    ------
    click.ClickException
        One line, for models that need different channel counts and for data that
        :func:`~nncompare.data.prepare_images` refuses.
    """
    import torch

    from nncompare.workbench.data import load_array_file, prepare_images

    name = Path(data_path).name
    convs = [(label, spec, _first_conv2d(net)) for label, spec, net in models]
    channels = {c[1] for *_, c in convs if c is not None}
    if len(channels) > 1:
        said = "; ".join(
            f"{label} {spec} starts with {c[0]} ({c[1]} channel{'' if c[1] == 1 else 's'})"
            for label, spec, c in convs
            if c is not None
        )
        raise click.ClickException(
            f"the models take different numbers of input channels ({said}), so they cannot "
            f"run on the same inputs from --data {name}."
        )
    conv = next((c for *_, c in convs if c is not None), None)
    lines: list[str] = []
    if preset is not None:
        from nncompare.workbench.models import CIFAR_MEAN, CIFAR_STD

        given = [o for o, v in (("--mean", mean), ("--std", std)) if v is not None]
        mean = mean if mean is not None else ",".join(f"{v:g}" for v in CIFAR_MEAN)
        std = std if std is not None else ",".join(f"{v:g}" for v in CIFAR_STD)
        over = f" ({' and '.join(given)} given, so overriding it)" if given else ""
        lines.append(f"preset {preset.lower()}: --mean {mean} --std {std}{over}")
    ds = load_array_file(data_path, x_key=x_key, as_tensor=True)
    raw = ds.x
    shape = tuple(int(s) for s in raw.shape)
    layout = {True: "NHWC", False: "NCHW", None: "auto"}[channels_last]
    detail = ""
    if conv is not None:
        plural = "" if conv[1] == 1 else "s"
        detail = f"; the model's first layer {conv[0]} is a Conv2d taking {conv[1]} channel{plural}"
    lines.insert(0, f"data: {name} holds {shape} {str(raw.dtype).removeprefix('torch.')}{detail}")
    kept_as_is = False
    if layout == "auto" and raw.ndim == 4 and conv is None:
        layout, kept_as_is = "NCHW", True
    try:
        prepared = prepare_images(
            raw,
            layout=layout,
            channels=conv[1] if conv is not None else None,
            scale=scale,
            mean=mean,
            std=std,
        )
    except ValueError as exc:
        raise click.ClickException(
            f"cannot use the inputs in --data {name}: {_cli_words(str(exc))}"
        ) from exc
    notes = list(prepared.notes)
    if kept_as_is and notes and notes[0].startswith("layout:"):
        notes[0] = (
            f"layout: kept {shape} as it is (the model does not start with a 2-D "
            "convolution; pass --channels-last to move a last axis of channels first)"
        )
    lines.extend(notes)
    x = prepared.x
    if not torch.is_floating_point(x):  # pragma: no cover - prepare_images returns float32
        x = x.to(torch.float32)
    return PreparedInputs(x=x, lines=lines, preprocessing="; ".join(notes) or "none")
