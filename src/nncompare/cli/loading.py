"""Loading models named on the command line, safely.

* ``*.pt2``: a ``torch.export`` archive (``torch.export.load(path).module()``).
* ``*.pt`` / ``*.ts`` / ``*.jit`` / ``*.pth`` that are TorchScript archives: ``torch.jit.load``.
* ``package.module:factory`` or ``package.module:factory(key=value, ...)``: the factory is
  imported and called with the literal keyword arguments (parsed with ``ast.literal_eval``,
  never ``eval``); ``--weights`` then loads a state dict with ``torch.load(...,
  weights_only=True)``, which refuses arbitrary pickles unless ``allow_pickle=True``.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import click


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
            raise click.BadParameter(f"cannot parse arguments of {spec!r}: {exc}") from None
        if not isinstance(call, ast.Call) or call.args:
            raise click.BadParameter(
                "factory arguments must be keywords with literal values, e.g. depth=20; "
                f"got {spec!r}"
            )
        for kw in call.keywords:
            try:
                kwargs[str(kw.arg)] = ast.literal_eval(kw.value)
            except ValueError:
                raise click.BadParameter(
                    f"argument {kw.arg!r} of {spec!r} is not a literal (numbers, strings, "
                    "tuples, lists, dicts, booleans, None)"
                ) from None
    return module, name.strip(), kwargs


def _load_exported(path: Path) -> Any:
    """A torch.export archive, unflattened so that its submodules keep their names (hookable)."""
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise click.ClickException(f"cannot load torch.export archive {path}: {exc}") from None
    try:
        return torch.export.unflatten(program)
    except Exception:  # pragma: no cover - exotic programs
        return program.module()


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


def load_state(path: str | Path, *, allow_pickle: bool = False) -> Any:
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        raise click.ClickException(
            f"{path} is not a plain state dict (tensors only): torch refused to unpickle it "
            f"safely ({str(exc).splitlines()[0]}). If you trust the file, pass --allow-pickle."
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def load_model(spec: str, *, weights: str | None = None, allow_pickle: bool = False) -> Any:
    """Build the torch.nn.Module named by ``spec`` (see the module docstring), in eval mode."""
    import torch

    path = Path(spec)
    if path.suffix in (".pt2", ".pt", ".ts", ".jit", ".pth") and path.exists():
        if weights:
            raise click.BadParameter("--weights applies to module:factory models only")
        if path.suffix == ".pt2":
            return _load_exported(path)
        try:
            net = torch.jit.load(str(path), map_location="cpu")
        except Exception:
            try:
                return _load_exported(path)
            except click.ClickException:
                raise click.ClickException(
                    f"{path} is neither a TorchScript nor a torch.export archive. For a "
                    "state-dict checkpoint pass the architecture as module:factory and the "
                    "file with --weights."
                ) from None
        return scripted_model(net).eval()
    if ":" not in spec:
        raise click.BadParameter(
            f"{spec!r} is not an existing model archive nor 'module:factory'", param_hint="MODEL"
        )
    module_name, factory_name, kwargs = _parse_factory(spec)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.ClickException(f"cannot import {module_name!r}: {exc}") from None
    try:
        factory = getattr(module, factory_name)
    except AttributeError:
        raise click.ClickException(f"{module_name!r} has no attribute {factory_name!r}") from None
    net = factory(**kwargs)
    if not isinstance(net, torch.nn.Module):
        raise click.ClickException(f"{spec} returned {type(net).__name__}, not a torch.nn.Module")
    if weights:
        state = load_state(weights, allow_pickle=allow_pickle)
        if isinstance(state, torch.nn.Module):
            net = state
        else:
            try:
                net.load_state_dict(state)
            except RuntimeError as exc:
                raise click.ClickException(
                    f"the checkpoint {weights} does not fit {spec}: {str(exc).splitlines()[0]}"
                ) from None
    return net.eval()
