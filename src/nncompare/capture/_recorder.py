"""Forward-hook based recording of intermediate activations."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from nncompare.capture._layers import (
    _check_model,
    _describe_output,
    _training_mode,
    resolve_layers,
)

__all__ = ["ActivationRecorder", "Reduce", "Reuse", "Selector"]

Selector = int | str | Callable[[Any], torch.Tensor]
Reduce = Literal["flatten", "avgpool"] | Callable[[torch.Tensor], torch.Tensor]
Reuse = Literal["all", "first", "last"]

_REUSE_CHOICES = ("all", "first", "last")
_REDUCE_CHOICES = ("flatten", "avgpool")


def call_key(name: str, index: int) -> str:
    """Key of the ``index``-th call (0-based) of layer ``name``: ``name``, ``name#1``, ..."""
    return name if index == 0 else f"{name}#{index}"


def _reduce_flatten(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _reduce_avgpool(t: torch.Tensor) -> torch.Tensor:
    return t.mean(dim=tuple(range(2, t.ndim))) if t.ndim > 2 else t


def _resolve_reduce(reduce: Reduce | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if reduce is None or callable(reduce):
        return reduce
    if reduce == "flatten":
        return _reduce_flatten
    if reduce == "avgpool":
        return _reduce_avgpool
    raise ValueError(
        f"Expected reduce to be None, a callable or one of {_REDUCE_CHOICES}, got {reduce!r}. "
        "'flatten' reshapes to (n, -1); 'avgpool' averages (n, c, ...) over the trailing "
        "(spatial) dimensions to (n, c)."
    )


def _describe_selector(select: Any) -> str:
    if callable(select):
        return f"callable {getattr(select, '__qualname__', type(select).__name__)}"
    return repr(select)


class ActivationRecorder:
    """Context manager recording the outputs of named modules with forward hooks.

    Hooks are registered on entry and **always** removed on exit, also when the
    forward pass raises; the model's train/eval modes are restored as well.

    Parameters
    ----------
    model : torch.nn.Module
        The network to record from.
    layers : str or iterable of str
        Exact module names or glob patterns, resolved by
        :func:`~nncompare.capture.resolve_layers` (unknown names raise
        :class:`~nncompare.capture.LayerNotFoundError`).
    detach : bool, default True
        Detach recorded tensors from the autograd graph. With ``detach=False`` the
        records keep their graph so gradients can flow back into the model; run the
        forward pass with gradients enabled in that case.
    clone : bool, default True
        Copy each output before storing it, so that later in-place operations (a
        following ``ReLU(inplace=True)``, say) cannot change the record. Outputs
        are only copied when the stored tensor would otherwise share memory with
        the module's output (``reduce`` or ``dtype`` usually make a new tensor).
    reduce : {"flatten", "avgpool"}, callable or None, default None
        Applied to every recorded tensor before it is stored, e.g. to save memory.
        ``"flatten"`` reshapes ``(n, ...)`` to ``(n, -1)``; ``"avgpool"`` averages a
        conv output ``(n, c, *spatial)`` over the spatial dimensions to ``(n, c)``
        (it assumes channels in dimension 1, torch's layout); a callable maps a
        tensor ``(n, ...)`` to a tensor ``(n, ...)``.
    select : int, str, callable, or dict of them, default None
        Which tensor to record when a module's output is not a single tensor.

        * None: a tuple or list output records its first tensor; a dict output
          raises a ``TypeError`` naming its keys.
        * int: index into tuple/list outputs. str: key into dict outputs (also
          ``Mapping`` subclasses such as Hugging Face ``ModelOutput``). Plain tensor
          outputs are recorded as they are, so one ``select`` can serve a mix.
        * callable: receives every output (tensors too) and returns the tensor to
          record.
        * dict ``{layer_name: selector}``: a selector per layer; layers missing from
          it use the default.
    reuse : {"all", "first", "last"}, default "all"
        What to record for a module that runs several times in one forward pass
        (a shared block applied repeatedly). ``"all"`` keeps every call, under the
        keys ``name``, ``name#1``, ``name#2``, ... in call order (the first call keeps
        the bare name, so a module called once is unaffected); ``"first"`` / ``"last"``
        keep one call under ``name``.
    train_mode : bool or None, default False
        Mode to run the model in while recording: False is eval mode (dropout off,
        BatchNorm uses running statistics), True is train mode (note that BatchNorm
        then updates its running statistics), None leaves the modes as they are.
        The original mode of every submodule is restored on exit.
    dtype : torch.dtype or None, default None
        Cast recorded tensors to this dtype inside the hook (None keeps theirs).

    Attributes
    ----------
    layers : list of str
        The resolved module names, in recording order.

    Examples
    --------
    >>> with ActivationRecorder(model, ["layer1", "fc"]) as rec:  # doctest: +SKIP
    ...     acts = rec.run(x)            # {"layer1": tensor (n, ...), "fc": ...}
    ...     model(x2); acts2 = rec.pop()  # or run the model yourself, then pop()
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Iterable[str],
        *,
        detach: bool = True,
        clone: bool = True,
        reduce: Reduce | None = None,
        select: Selector | Mapping[str, Selector] | None = None,
        reuse: Reuse = "all",
        train_mode: bool | None = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.model = _check_model(model)
        self.layers = resolve_layers(model, layers)
        if reuse not in _REUSE_CHOICES:
            raise ValueError(
                f"Expected reuse to be one of {_REUSE_CHOICES}, got {reuse!r}. "
                "'all' records every call of a reused module as name, name#1, ...; "
                "'first'/'last' keep one call."
            )
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise TypeError(
                f"Expected dtype to be a torch.dtype or None, got {dtype!r}; e.g. torch.float32."
            )
        if train_mode is not None and not isinstance(train_mode, bool):
            raise TypeError(
                f"Expected train_mode to be None, False or True, got {train_mode!r}. "
                "Use False (eval mode, the default), True (train mode) or None (leave as is)."
            )
        self.detach = bool(detach)
        self.clone = bool(clone)
        self.reuse: Reuse = reuse
        self.train_mode = train_mode
        self.dtype = dtype
        self._reduce = _resolve_reduce(reduce)
        self._selectors = self._resolve_select(select)
        self._calls: dict[str, list[torch.Tensor]] = {name: [] for name in self.layers}
        self._handles: list[Any] = []
        self._mode_ctx: contextlib.AbstractContextManager[None] | None = None

    # ----------------------------------------------------------------- configuration

    def _resolve_select(self, select: Any) -> dict[str, Selector | None]:
        if isinstance(select, Mapping):
            unknown = [k for k in select if k not in self.layers]
            if unknown:
                raise ValueError(
                    f"Expected the keys of select to be recorded layers {self.layers}, "
                    f"got unknown key(s) {unknown}. Use the exact names from `layers`."
                )
            per_layer = dict(select)
        else:
            per_layer = dict.fromkeys(self.layers, select)
        for name, sel in per_layer.items():
            if sel is not None and not (isinstance(sel, int | str) or callable(sel)):
                raise TypeError(
                    f"Expected the selector for layer {name!r} to be an int index, a str "
                    f"key or a callable, got {type(sel).__name__}."
                )
        return {name: per_layer.get(name) for name in self.layers}

    # ----------------------------------------------------------------- hooks

    def _select(self, name: str, output: Any) -> torch.Tensor:
        sel = self._selectors[name]
        if callable(sel):
            picked = sel(output)
            if not isinstance(picked, torch.Tensor):
                raise TypeError(
                    f"Expected the select callable for layer {name!r} to return a "
                    f"torch.Tensor, got {type(picked).__name__}."
                )
            return picked
        if isinstance(output, torch.Tensor):
            return output
        where = f"Layer {name!r} returned {_describe_output(output)}"
        if isinstance(output, tuple | list):
            if sel is None:
                for item in output:
                    if isinstance(item, torch.Tensor):
                        return item
                raise TypeError(
                    f"{where}, which holds no tensor to record. Pass select= with an "
                    "index, or a callable that returns the tensor you want."
                )
            if isinstance(sel, int):
                if not -len(output) <= sel < len(output):
                    raise IndexError(
                        f"{where}; select={sel} is out of range for its {len(output)} "
                        "items. Pass an index within range."
                    )
                return self._must_be_tensor(name, output[sel], f"item {sel}")
            raise TypeError(
                f"{where}, a sequence; select={sel!r} is a key, which needs a dict output. "
                "Pass an int index, or a {layer: selector} dict to select per layer."
            )
        if isinstance(output, Mapping):
            keys = list(output.keys())
            if sel is None:
                raise TypeError(
                    f"{where}: a dict with keys {keys}, so it is ambiguous which tensor "
                    f"to record. Pass select={keys[0]!r} (a key; or "
                    f"select={{{name!r}: {keys[0]!r}}} for this layer only) or a callable "
                    "that returns a tensor."
                    if keys
                    else f"{where}: an empty dict, which holds no tensor to record."
                )
            if not isinstance(sel, str) or sel not in output:
                raise KeyError(
                    f"{where}: a dict with keys {keys}; select={sel!r} is not one of them. "
                    "Pass one of these keys."
                )
            return self._must_be_tensor(name, output[sel], f"key {sel!r}")
        raise TypeError(
            f"{where}, which nncompare cannot record by default. Pass select= with a "
            "callable that returns a tensor from this output."
        )

    @staticmethod
    def _must_be_tensor(name: str, value: Any, where: str) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"Expected {where} of layer {name!r}'s output to be a torch.Tensor, got "
                f"{type(value).__name__}. Choose another select= value."
            )
        return value

    def _process(self, name: str, output: Any) -> torch.Tensor:
        selected = self._select(name, output)
        t = selected
        if self._reduce is not None:
            t = self._reduce(t)
            if not isinstance(t, torch.Tensor):
                raise TypeError(
                    f"Expected reduce to return a torch.Tensor for layer {name!r}, got "
                    f"{type(t).__name__}."
                )
        if self.detach:
            t = t.detach()
        if self.dtype is not None and t.dtype != self.dtype:
            t = t.to(self.dtype)
        if self.clone and _shares_memory(t, selected):
            t = t.clone()
        return t

    def _make_hook(self, name: str) -> Callable[..., None]:
        calls = self._calls[name]
        reuse = self.reuse

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if reuse == "first" and calls:
                return
            t = self._process(name, output)
            if reuse == "last" and calls:
                calls[0] = t
            else:
                calls.append(t)

        return hook

    # ----------------------------------------------------------------- context manager

    @property
    def active(self) -> bool:
        """True while the hooks are registered (inside the ``with`` block)."""
        return bool(self._handles)

    def __enter__(self) -> ActivationRecorder:
        if self._handles:
            raise RuntimeError(
                "This ActivationRecorder is already active; it cannot be entered twice. "
                "Create a second recorder instead."
            )
        modules = dict(self.model.named_modules())
        mode_ctx = _training_mode(self.model, self.train_mode)
        mode_ctx.__enter__()
        try:
            for name in self.layers:
                self._handles.append(modules[name].register_forward_hook(self._make_hook(name)))
        except BaseException:
            self._remove_hooks()
            mode_ctx.__exit__(None, None, None)
            raise
        self._mode_ctx = mode_ctx
        self.clear()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self._remove_hooks()
        finally:
            ctx, self._mode_ctx = self._mode_ctx, None
            if ctx is not None:
                ctx.__exit__(None, None, None)

    def _remove_hooks(self) -> None:
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()

    # ----------------------------------------------------------------- results

    def clear(self) -> None:
        """Forget everything recorded so far."""
        for calls in self._calls.values():
            calls.clear()

    def pop(self, *, strict: bool = False) -> dict[str, torch.Tensor]:
        """Return what was recorded since the last ``pop``/``clear`` and forget it.

        Parameters
        ----------
        strict : bool, default False
            Raise a ``RuntimeError`` if a layer did not run at all.

        Returns
        -------
        dict of str to torch.Tensor
            One tensor ``(batch, ...)`` per layer and call, keyed by layer name in
            ``layers`` order; extra calls of a reused module follow as ``name#1``,
            ``name#2``, ... (with ``reuse="all"``). Layers that did not run are absent.
        """
        out: dict[str, torch.Tensor] = {}
        missing = []
        for name in self.layers:
            calls = self._calls[name]
            if not calls:
                missing.append(name)
            for i, t in enumerate(calls):
                out[call_key(name, i)] = t
        self.clear()
        if strict and missing:
            raise RuntimeError(
                f"Layer(s) {missing} did not run during the forward pass, so there is "
                "nothing to record. They may be defined on the model but unused in its "
                "forward(); pick layers that list_layers(model, sample_input) shows with "
                "an output shape."
            )
        return out

    def run(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Run ``model(*args, **kwargs)`` and return the recorded activations.

        The forward pass runs under :func:`torch.no_grad` when ``detach=True`` (only
        for this call; the global grad mode is untouched afterwards). Anything
        recorded before is discarded first.

        Returns
        -------
        dict of str to torch.Tensor
            As :meth:`pop` with ``strict=True``.
        """
        if not self._handles:
            raise RuntimeError(
                "ActivationRecorder.run() needs active hooks; use it inside "
                "`with ActivationRecorder(model, layers) as rec:`."
            )
        self.clear()
        grad_ctx = torch.no_grad() if self.detach else contextlib.nullcontext()
        with grad_ctx:
            self.model(*args, **kwargs)
        return self.pop(strict=True)

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        return (
            f"ActivationRecorder({type(self.model).__name__}, layers={self.layers}, "
            f"reuse={self.reuse!r}, detach={self.detach}, {state})"
        )


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    try:
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # tensors without plain storage
        return True
