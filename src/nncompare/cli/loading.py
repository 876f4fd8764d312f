"""Loading models named on the command line, safely.

``MODEL`` is either a file or ``package.module:factory``.

Files are recognised by their content (:func:`nncompare.cli._archives.classify`):

* ``torch.export`` archives (``.pt2``) are checked member by member and only plain data
  reaches ``torch.export.load`` (see :mod:`nncompare.cli._archives`); anything else in them
  is refused unless ``allow_pickle=True``.
* TorchScript archives are programs (TorchScript code, plus constants read by torch's
  TorchScript unpickler, which has had remote-code-execution bugs): they load only with
  ``allow_pickle=True``. There is no fallback from one format to another.
* ``torch.save`` checkpoints: a state dict needs its architecture (``module:factory``
  plus ``--weights``); a pickled whole model (``torch.save(model)``) loads only with
  ``allow_pickle=True``.

``module:factory`` or ``module:factory(key=value, ...)`` imports ``module`` (running its
top-level code, as any import does; never from the current directory) and calls
``factory`` with the literal keyword arguments (``ast.literal_eval``, never ``eval``) only
if it is a ``torch.nn.Module`` subclass, or a function defined in ``nncompare.models`` or
in a module trusted with ``trust_modules`` (``--trust-module NAME``, which trusts ``NAME``
and its submodules). Anything else (``os:system``, ``shutil:rmtree``, ...) is refused
before any call. ``--weights`` then loads a state dict with ``torch.load(...,
weights_only=True)`` unless ``allow_pickle=True``.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from nncompare._io import state_dict_from
from nncompare.cli._archives import (
    TRUST_HINT,
    UnsafeModelFileError,
    classify,
    describe_kind,
    load_pt2,
)

__all__ = [
    "BUILTIN_TRUSTED_MODULES",
    "check_factory",
    "drop_cwd_from_sys_path",
    "load_model",
    "load_state",
    "scripted_model",
]

#: Modules whose functions may be called as ``module:factory`` without ``--trust-module``:
#: the model zoo, under its public name and its home (``nncompare.models`` is an alias of
#: ``nncompare.workbench.models``, and a function's ``__module__`` names the home).
BUILTIN_TRUSTED_MODULES: tuple[str, ...] = ("nncompare.models", "nncompare.workbench.models")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


# --------------------------------------------------------------------------- import path


def _explicit_path_entries() -> set[str]:
    return {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}


def _is_implicit_cwd(entry: str, cwd: str, explicit: set[str]) -> bool:
    if entry in ("", "."):
        return True
    try:
        real = os.path.realpath(entry)
    except (OSError, ValueError):
        return False
    return real == cwd and real not in explicit


def drop_cwd_from_sys_path() -> list[str]:
    """Remove the current directory from ``sys.path`` unless PYTHONPATH names it.

    ``python -m nncompare.cli.main`` (and ``python -c``) put the current directory first
    on ``sys.path``, so a file such as ``torch.py`` or ``mymodel.py`` lying there would be
    imported — and run — in place of the real module. The ``nncompare`` console script does
    not search it either. Returns the removed entries.
    """
    cwd = os.path.realpath(os.getcwd())
    explicit = _explicit_path_entries()
    removed = [p for p in sys.path if _is_implicit_cwd(p, cwd, explicit)]
    sys.path[:] = [p for p in sys.path if not _is_implicit_cwd(p, cwd, explicit)]
    return removed


@contextlib.contextmanager
def _without_cwd_on_path() -> Iterator[None]:
    saved = list(sys.path)
    drop_cwd_from_sys_path()
    try:
        yield
    finally:
        sys.path[:] = saved


def _import_user_module(module_name: str) -> Any:
    if not _MODULE_NAME.fullmatch(module_name):
        raise click.BadParameter(
            f"{module_name!r} is not a module name (dotted identifiers such as 'nncompare.models')",
            param_hint="MODEL",
        )
    try:
        with _without_cwd_on_path():
            return importlib.import_module(module_name)
    except ImportError as exc:
        top = module_name.split(".")[0]
        here = Path.cwd()
        hint = ""
        if (here / f"{top}.py").exists() or (here / top / "__init__.py").exists():
            hint = (
                f" A {top!r} module lies in the current directory, but nncompare does not "
                "import from it (a file there could be anything); if you trust it, run with "
                "PYTHONPATH=. or install it."
            )
        raise click.ClickException(
            f"cannot import {module_name!r}: {exc}.{hint} MODEL must be an importable "
            "module, e.g. 'nncompare.models:cifar_resnet(depth=20)'."
        ) from exc
    except Exception as exc:
        raise click.ClickException(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


# --------------------------------------------------------------------------- factories


def _parse_factory(spec: str) -> tuple[str, str, dict[str, Any]]:
    module, _, rest = spec.partition(":")
    if not module or not rest:
        raise click.BadParameter(
            f"expected 'module:factory' or a model archive path; got {spec!r}", param_hint="MODEL"
        )
    kwargs: dict[str, Any] = {}
    name = rest
    if "(" in rest:
        if not rest.endswith(")"):
            raise click.BadParameter(f"unbalanced parentheses in {spec!r}", param_hint="MODEL")
        name, _, argtext = rest.partition("(")
        argtext = argtext[:-1]
        try:
            call = ast.parse(f"f({argtext})", mode="eval").body
        except SyntaxError as exc:
            raise click.BadParameter(
                f"cannot parse arguments of {spec!r}: {exc.msg}", param_hint="MODEL"
            ) from None
        if not isinstance(call, ast.Call) or call.args:
            raise click.BadParameter(
                "factory arguments must be keywords with literal values, e.g. depth=20; "
                f"got {spec!r}",
                param_hint="MODEL",
            )
        for kw in call.keywords:
            if kw.arg is None:
                raise click.BadParameter(
                    f"'**' is not allowed in factory arguments; got {spec!r}", param_hint="MODEL"
                )
            try:
                kwargs[kw.arg] = ast.literal_eval(kw.value)
            except ValueError:
                raise click.BadParameter(
                    f"argument {kw.arg!r} of {spec!r} is not a literal (numbers, strings, "
                    "tuples, lists, dicts, booleans, None)",
                    param_hint="MODEL",
                ) from None
    name = name.strip()
    if not _IDENTIFIER.fullmatch(name):
        raise click.BadParameter(
            f"expected a class or function name after ':' in {spec!r}; got {name!r}",
            param_hint="MODEL",
        )
    return module.strip(), name, kwargs


def _trusted(module_name: str | None, trusted: Iterable[str]) -> bool:
    if not module_name:
        return False
    return any(module_name == t or module_name.startswith(t + ".") for t in trusted)


def check_factory(obj: Any, module_name: str, name: str, trust_modules: Sequence[str] = ()) -> None:
    """Refuse, before any call, what ``module:factory`` may not call.

    Allowed: subclasses of ``torch.nn.Module``; functions *defined* (``__module__``) in
    ``nncompare.models`` or in a module of ``trust_modules`` (a name trusts itself and its
    submodules). Re-exports do not count: ``mypkg:system`` is ``os.system`` and is refused
    even when ``mypkg`` is trusted.

    Raises
    ------
    click.ClickException
        With the rule and the ``--trust-module`` option that would allow the call.
    """
    import torch

    spec = f"{module_name}:{name}"
    if isinstance(obj, type):
        if issubclass(obj, torch.nn.Module):
            return
        raise click.ClickException(
            f"refusing to call {spec}: it is the class {obj.__module__}.{obj.__qualname__}, "
            "not a torch.nn.Module subclass. MODEL must name a torch.nn.Module class or a "
            "function that builds one."
        )
    trusted = (*BUILTIN_TRUSTED_MODULES, *trust_modules)
    defined_in = getattr(obj, "__module__", None) if callable(obj) else None
    is_function = inspect.isfunction(obj) or inspect.isbuiltin(obj)
    if is_function and _trusted(defined_in, trusted):
        return
    if not callable(obj):
        raise click.ClickException(
            f"refusing to use {spec}: it is a {type(obj).__name__}, not a class or function."
        )
    where = f"defined in {defined_in!r}" if defined_in else "of unknown origin"
    how = ""
    if defined_in and is_function:
        package = defined_in.split(".")[0]
        how = f" If you trust {defined_in!r} to build models, pass --trust-module {defined_in}"
        how += (
            f" (or --trust-module {package} for its whole package)."
            if package != defined_in
            else "."
        )
    raise click.ClickException(
        f"refusing to call {spec} ({where}): nncompare calls only torch.nn.Module "
        f"subclasses and functions from {', '.join(trusted)} or from modules you trust "
        f"with --trust-module, so that a MODEL string cannot run arbitrary code.{how}"
    )


def _signature_text(obj: Any) -> str:
    """``name(a, b=1, *, c=(16, 32))`` without annotations, or ``''``."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    plain = sig.replace(
        parameters=[p.replace(annotation=p.empty) for p in sig.parameters.values()],
        return_annotation=sig.empty,
    )
    return f"{getattr(obj, '__name__', 'it')}{plain}"


def _bind_arguments(obj: Any, spec: str, kwargs: Mapping[str, Any]) -> None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(**kwargs)
    except TypeError as exc:
        accepted = [
            p.name
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        has_var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        unknown = [k for k in kwargs if k not in accepted and not has_var_kw]
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.5)
            hints.append(
                f"did you mean {close[0]!r} instead of {key!r}?"
                if close
                else f"{key!r} is not one of its arguments."
            )
        head = " ".join(hints) if hints else f"{exc}."
        raise click.ClickException(
            f"wrong arguments for {spec}: {head} It takes {_signature_text(obj)}."
        ) from exc


def _call_factory(obj: Any, spec: str, kwargs: Mapping[str, Any]) -> Any:
    _bind_arguments(obj, spec, kwargs)
    try:
        return obj(**kwargs)
    except Exception as exc:
        sig = _signature_text(obj)
        raise click.ClickException(
            f"building {spec} failed: {type(exc).__name__}: {exc}"
            + (f" (it takes {sig}; check the arguments)" if sig else "")
        ) from exc


# --------------------------------------------------------------------------- files


def scripted_model(scripted: Any) -> Any:
    """Wrap a TorchScript module so that its output can be recorded as layer ``output``.

    TorchScript modules do not support forward hooks (a PyTorch limitation), so their inner
    layers cannot be captured; ``output`` (the model's output) can. For per-layer comparisons
    export the model with ``torch.export`` (with a dynamic batch dimension) instead.
    """
    import torch

    class _Scripted(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.scripted = inner
            self.output = torch.nn.Identity()

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.output(self.scripted(*args, **kwargs))

    return _Scripted(scripted)


def _unpickling_reason(exc: BaseException) -> str:
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it needs the Python object {found.group(1)}, and unpickling that can run code"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"torch's weights-only loader refused it ({first[:160]})"


def _read_checkpoint(path: Path, *, allow_pickle: bool, role: str) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        raise UnsafeModelFileError(
            f"{role} {path} is not plain tensors: {_unpickling_reason(exc)}. {TRUST_HINT} "
            "Otherwise save only the weights (torch.save(model.state_dict(), PATH)) and pass "
            "the architecture as module:factory with --weights."
        ) from exc
    except Exception as exc:
        raise click.ClickException(
            f"cannot read {role} {path} as a torch checkpoint: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


def _as_state_dict(obj: Any) -> dict[str, Any] | None:
    try:
        return state_dict_from(obj)
    except ValueError:
        return None


def load_state(path: str | Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """The state dict in the checkpoint ``path`` (``--weights``), read without running code.

    ``{"state_dict": ...}`` / ``{"model_state_dict": ...}`` wrappers are unwrapped and
    ``module.`` prefixes (``DataParallel``) removed. With ``allow_pickle=True`` a pickled
    whole model (``torch.save(model)``) gives its ``state_dict()``.
    """
    path = Path(path)
    kind = classify(path)
    if kind in ("pt2", "pt2-legacy", "torchscript"):
        extra = (
            " with --allow-pickle (TorchScript archives are programs)"
            if kind == "torchscript"
            else ""
        )
        raise click.ClickException(
            f"--weights {path} is {describe_kind(kind)}, a whole model rather than a state "
            f"dict: pass it as MODEL instead of module:factory + --weights, e.g. "
            f"'nncompare layers {path}'{extra}."
        )
    obj = _read_checkpoint(path, allow_pickle=allow_pickle, role="--weights")
    state = _as_state_dict(obj)
    if state is None:
        raise click.ClickException(
            f"--weights {path} holds a {type(obj).__name__}, not a state dict (a mapping from "
            "parameter names to tensors, as saved by torch.save(model.state_dict(), PATH))."
        )
    return state


def _load_model_file(path: Path, *, allow_pickle: bool) -> Any:
    import torch

    kind = classify(path)
    if kind == "pt2":
        program = load_pt2(path, allow_pickle=allow_pickle)
        try:
            return torch.export.unflatten(program)
        except Exception:  # pragma: no cover - exotic programs
            return program.module()
    if kind == "pt2-legacy":
        if not allow_pickle:
            raise UnsafeModelFileError(
                f"refusing to load {path}: it is {describe_kind(kind)}, whose state is pickled "
                f"and unpickled without restrictions. {TRUST_HINT} Better, re-export it with "
                "torch.export.save from this torch version."
            )
        return load_pt2(path, allow_pickle=True).module()
    if kind == "torchscript":
        if not allow_pickle:
            raise UnsafeModelFileError(
                f"refusing to load {path}: it is {describe_kind(kind)}, which is a program "
                "(TorchScript code plus pickled constants; torch's TorchScript loading has had "
                f"a remote-code-execution bug, CVE-2025-32434). {TRUST_HINT} Or export the "
                "model with torch.export.save (.pt2), which nncompare checks and loads safely."
            )
        try:
            net = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise click.ClickException(
                f"cannot load the TorchScript archive {path}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
        return scripted_model(net)
    if kind in ("torch-save", "torch-save-legacy"):
        obj = _read_checkpoint(path, allow_pickle=allow_pickle, role="MODEL")
        if isinstance(obj, torch.nn.Module):
            return obj
        if _as_state_dict(obj) is not None:
            raise click.ClickException(
                f"MODEL {path} is a state-dict checkpoint (weights without the architecture): "
                "pass the architecture as module:factory and this file with --weights, e.g. "
                f"nncompare layers 'nncompare.models:cifar_resnet(depth=20)' --weights {path}"
            )
        raise click.ClickException(
            f"MODEL {path} holds a {type(obj).__name__}, not a torch.nn.Module."
        )
    raise click.ClickException(
        f"MODEL {path} is {describe_kind(kind)}: expected a torch.export archive (.pt2), a "
        "TorchScript archive, a torch.save(model) file, or 'module:factory'."
    )


# --------------------------------------------------------------------------- state dicts


def _shape(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return str(tuple(shape)) if shape is not None else type(value).__name__


def _listed(label: str, items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    more = f", … and {len(items) - limit} more" if len(items) > limit else ""
    return f"{label} ({len(items)}): {shown}{more}"


def _prefix_hint(missing: Sequence[str], unexpected: Sequence[str]) -> str | None:
    """'did you mean …' when every checkpoint name carries a prefix the model's lack."""
    if not missing or not unexpected:
        return None
    parts = unexpected[0].split(".")
    for cut in range(1, len(parts)):
        p = ".".join(parts[:cut]) + "."
        stripped = {u[len(p) :] for u in unexpected if u.startswith(p)}
        if len(stripped) == len(unexpected) and set(missing) <= stripped:
            return (
                f"did you mean a checkpoint without the prefix {p!r}? Every name in it starts "
                f"with {p!r} (re-save it as {{k.removeprefix({p!r}): v for k, v in "
                "state.items()})"
            )
    return None


def _num_classes_hint(
    own: Mapping[str, Any], state: Mapping[str, Any], params: set[str]
) -> str | None:
    if "num_classes" not in params:
        return None
    matrices = [k for k, v in own.items() if k.endswith(".weight") and getattr(v, "ndim", 0) == 2]
    if not matrices or matrices[-1] not in state:
        return None
    ours, theirs = tuple(own[matrices[-1]].shape), tuple(getattr(state[matrices[-1]], "shape", ()))
    if len(theirs) == 2 and theirs[1] == ours[1] and theirs[0] != ours[0]:
        return (
            f"did you mean num_classes={theirs[0]}? The checkpoint's classifier has "
            f"{theirs[0]} outputs"
        )
    return None


def _architecture_hint(net: Any, state: Mapping[str, Any]) -> str | None:
    try:
        from nncompare.workbench.models import CifarResNet
        from nncompare.workbench.models.resnet_cifar import _guess_depth
    except ImportError:  # pragma: no cover
        return None
    if isinstance(net, CifarResNet):
        depth = _guess_depth(state)
        if depth is not None and depth != getattr(net, "depth", None):
            return f"did you mean depth={depth}? The checkpoint is a ResNet-{depth}"
    return None


def _fit_state(
    net: Any, state: Mapping[str, Any], *, spec: str, weights: str, kwargs: Mapping[str, Any]
) -> None:
    import torch

    own = net.state_dict()
    # BatchNorm fills in a missing num_batches_tracked itself (older checkpoints lack it)
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {_shape(state[k])} in the checkpoint vs {_shape(own[k])} in the model"
        for k in own
        if k in state
        and isinstance(state[k], torch.Tensor)
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        hint = (
            _architecture_hint(net, state)
            or _prefix_hint(missing, unexpected)
            or _num_classes_hint(own, state, _parameters(net, kwargs))
        )
        parts = [
            _listed("missing keys", missing) if missing else "",
            _listed("unexpected keys", unexpected) if unexpected else "",
            _listed("shape mismatches", mismatched, limit=4) if mismatched else "",
        ]
        detail = "; ".join(p for p in parts if p)
        lead = f"{hint}. " if hint else ""
        raise click.ClickException(
            f"the checkpoint {weights} does not fit {spec}: {lead}{detail}. Check that the "
            "architecture and its arguments match the checkpoint."
        )
    try:
        net.load_state_dict(state)
    except Exception as exc:
        raise click.ClickException(
            f"the checkpoint {weights} does not fit {spec}: {type(exc).__name__}: "
            + " ".join(str(exc).split())
        ) from exc


def _parameters(net: Any, kwargs: Mapping[str, Any]) -> set[str]:
    try:
        return set(inspect.signature(type(net)).parameters) | set(kwargs)
    except (TypeError, ValueError):
        return set(kwargs)


# --------------------------------------------------------------------------- entry point


def load_model(
    spec: str,
    *,
    weights: str | None = None,
    allow_pickle: bool = False,
    trust_modules: Sequence[str] = (),
) -> Any:
    """Build the torch.nn.Module named by ``spec`` (see the module docstring), in eval mode.

    Parameters
    ----------
    spec : str
        A model file, or ``module:factory`` / ``module:factory(key=literal, ...)``.
    weights : str, optional
        A state-dict checkpoint for a ``module:factory`` model.
    allow_pickle : bool, default False
        Load files that can run code when read (pickles, TorchScript, archives with
        pickled parts). Only for files you trust.
    trust_modules : sequence of str
        Modules (and their submodules) whose functions may be called as factories.

    Raises
    ------
    click.ClickException
        One-line errors saying what was expected and how to proceed.
    """
    import torch

    path = Path(spec)
    if path.is_file():
        if weights:
            raise click.BadParameter(
                f"--weights applies to module:factory models only; {spec} is a model file "
                "that carries its own weights",
                param_hint="--weights",
            )
        return _load_model_file(path, allow_pickle=allow_pickle).eval()
    if ":" not in spec:
        hint = (
            f" (no such file: {spec})"
            if path.suffix in (".pt2", ".pt", ".pth", ".ts", ".jit", ".ckpt", ".bin")
            else ""
        )
        raise click.BadParameter(
            f"{spec!r} is neither an existing model file nor 'module:factory'{hint}",
            param_hint="MODEL",
        )
    for name in trust_modules:
        if not _MODULE_NAME.fullmatch(name):
            raise click.BadParameter(
                f"expected a dotted module name such as 'mypkg' or 'mypkg.models'; got {name!r}",
                param_hint="--trust-module",
            )
    module_name, factory_name, kwargs = _parse_factory(spec)
    module = _import_user_module(module_name)
    if not hasattr(module, factory_name):
        public = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(factory_name, public, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise click.ClickException(
            f"{module_name!r} has no attribute {factory_name!r}: {hint}MODEL must name a "
            f"class or function of {module_name}."
        )
    factory = getattr(module, factory_name)
    check_factory(factory, module_name, factory_name, trust_modules)
    net = _call_factory(factory, spec, kwargs)
    if not isinstance(net, torch.nn.Module):
        raise click.ClickException(
            f"{spec} returned an object of type {type(net).__name__}, not a torch.nn.Module: "
            "MODEL must build "
            "the network."
        )
    if weights:
        _fit_state(
            net,
            load_state(weights, allow_pickle=allow_pickle),
            spec=spec,
            weights=weights,
            kwargs=kwargs,
        )
    return net.eval()
