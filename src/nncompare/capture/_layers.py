"""Layer discovery: list a model's modules and resolve names or glob patterns."""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nncompare.capture._errors import LayerNotFoundError

__all__ = [
    "LayerInfo",
    "default_layers",
    "format_layer_table",
    "list_layers",
    "resolve_layers",
]

Shape = tuple[int, ...]
_GLOB_CHARS = frozenset("*?[")


# --------------------------------------------------------------------------- helpers


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"Expected a torch.nn.Module as the model, got {type(model).__name__}. "
            "Pass the network object itself (for example torchvision.models.resnet18()), "
            "not its state_dict or a checkpoint path."
        )
    return model


def _model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (or buffer); CPU for a stateless model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _model_float_dtype(model: nn.Module) -> torch.dtype | None:
    """Dtype of the model's first floating-point parameter or buffer, if any."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


@contextlib.contextmanager
def _training_mode(model: nn.Module, train_mode: bool | None) -> Iterator[None]:
    """Put ``model`` in train (True) / eval (False) mode, or leave it (None).

    Every submodule's own ``training`` flag is saved and restored on exit, also when
    the body raises, so models with deliberately mixed modes (a frozen BatchNorm in
    eval mode inside a training model, say) come back exactly as they were.
    """
    if train_mode is not None and not isinstance(train_mode, bool):
        raise TypeError(
            f"Expected train_mode to be None, False or True, got {train_mode!r}. "
            "Use False (the default) for eval mode, True for train mode, or None to "
            "leave the model's modes untouched."
        )
    saved = [(m, m.training) for m in model.modules()]
    try:
        if train_mode is not None:
            model.train(train_mode)
        yield
    finally:
        for module, was_training in saved:
            module.training = was_training


def _as_input_tensor(
    x: Any, device: torch.device | None, float_dtype: torch.dtype | None, what: str
) -> torch.Tensor:
    """Convert one model input to a tensor on ``device``; cast floats to ``float_dtype``.

    ``device=None`` leaves tensors where they are (numpy arrays land on the CPU);
    integer and boolean inputs (token ids, masks) are never cast.
    """
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(
                f"Expected {what} to hold numbers, got a numpy array of dtype object. "
                "Convert it to a numeric array first, e.g. np.asarray(x, dtype=np.float32)."
            )
        if not x.flags.writeable:
            x = np.array(x)  # torch warns on read-only arrays
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"Expected {what} to be a torch.Tensor or a numpy array, got {type(x).__name__}."
        )
    if float_dtype is not None and x.is_floating_point() and x.dtype != float_dtype:
        return x.to(device=device, dtype=float_dtype)
    return x if device is None else x.to(device=device)


def _describe_output(out: Any) -> str:
    """A short human-readable description of a module output's structure."""
    if isinstance(out, torch.Tensor):
        return "Tensor" + str(tuple(out.shape))
    if out is None:
        return "None"
    if isinstance(out, tuple | list):
        inner = ", ".join(_describe_output(o) for o in out)
        kind = type(out).__name__
        return f"{kind}[{inner}]"
    if isinstance(out, Mapping):
        inner = ", ".join(f"{k!r}: {_describe_output(v)}" for k, v in out.items())
        return "{" + inner + "}"
    return type(out).__name__


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple | list):
        for item in out:
            if isinstance(item, torch.Tensor):
                return item
    return None


# --------------------------------------------------------------------------- LayerInfo


@dataclass(frozen=True)
class LayerInfo:
    """One submodule of a model, as reported by :func:`list_layers`.

    Attributes
    ----------
    name : str
        Dot path from :meth:`torch.nn.Module.named_modules`, e.g. ``"layer1.0.conv1"``;
        the name to pass to :func:`nncompare.capture.capture`.
    type : str
        Class name of the module, e.g. ``"Conv2d"``.
    n_params : int
        Number of parameter elements of the module *including its children*, so a
        container's count is the sum over what it holds.
    is_leaf : bool
        True when the module has no children.
    output_shapes : tuple of tuple of int
        One shape per call during the sample forward pass (several for a module
        called more than once; empty when no sample input was given or the module
        was not called). The batch dimension is shown as given in the sample. For a
        tuple or list output this is the shape of its first tensor, the one the
        capturer records by default; calls whose output holds no such tensor (a
        dict, ``None``) are listed in ``output_type`` only.
    output_type : str or None
        Structure of the first call's output, e.g. ``"Tensor(2, 64, 8, 8)"`` or
        ``"tuple[Tensor(2, 5), Tensor(2, 5)]"``; None without a sample input.
    """

    name: str
    type: str
    n_params: int
    is_leaf: bool
    output_shapes: tuple[Shape, ...] = field(default=())
    output_type: str | None = None

    @property
    def depth(self) -> int:
        """Nesting depth: 0 for direct children of the model."""
        return self.name.count(".")

    @property
    def n_calls(self) -> int:
        """How many times the module ran in the sample forward pass."""
        return len(self.output_shapes)

    @property
    def output_shape(self) -> Shape | None:
        """Shape of the first call's output, or None."""
        return self.output_shapes[0] if self.output_shapes else None

    def _shape_text(self) -> str:
        if self.output_shapes:
            text = " ".join(str(tuple(s)) for s in self.output_shapes)
            if self.output_type is not None and not self.output_type.startswith("Tensor"):
                text += f"  ({self.output_type})"
            return text
        return self.output_type or ""

    def __str__(self) -> str:
        parts = [self.name, self.type, f"{self.n_params:,} params"]
        shapes = self._shape_text()
        if shapes:
            parts.append("-> " + shapes)
        return "  ".join(parts)


# --------------------------------------------------------------------------- listing


def list_layers(
    model: nn.Module,
    sample_input: Any = None,
    *,
    leaf_only: bool = False,
) -> list[LayerInfo]:
    """List every submodule of ``model`` with its type, size and output shapes.

    Parameters
    ----------
    model : torch.nn.Module
        The network. It is not modified: hooks are removed and train/eval modes
        restored afterwards, also when the forward pass fails.
    sample_input : torch.Tensor, numpy.ndarray, tuple of them, or None
        When given, one forward pass ``model(*sample_input)`` is run in eval mode
        without gradients and each module's output shape(s) recorded. A single
        tensor is passed as ``model(sample_input)``. Tensors are moved to the
        model's device and floating-point ones cast to its dtype. A batch of one
        or two samples is enough, e.g. ``torch.zeros(1, 3, 224, 224)``.
    leaf_only : bool, default False
        Only list modules without children (convolutions, activations, ...),
        leaving out containers such as ``Sequential`` or residual blocks.

    Returns
    -------
    list of LayerInfo
        In ``named_modules()`` order; the root module (name ``""``) is excluded.
        Use :func:`format_layer_table` to print it.

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module`` or an input is not a tensor.

    Examples
    --------
    >>> layers = list_layers(model, torch.zeros(1, 3, 32, 32))  # doctest: +SKIP
    >>> print(format_layer_table(layers))  # doctest: +SKIP
    """
    model = _check_model(model)
    named = [(name, m) for name, m in model.named_modules() if name != ""]
    calls: dict[str, list[Any]] = {name: [] for name, _ in named}

    if sample_input is not None:
        device = _model_device(model)
        float_dtype = _model_float_dtype(model)
        if isinstance(sample_input, tuple | list):
            args = tuple(
                _as_input_tensor(x, device, float_dtype, f"sample_input[{i}]")
                for i, x in enumerate(sample_input)
            )
        else:
            args = (_as_input_tensor(sample_input, device, float_dtype, "sample_input"),)

        def make_hook(name: str):
            def hook(module: nn.Module, inputs: Any, output: Any) -> None:
                calls[name].append(output)

            return hook

        handles = []
        try:
            for name, module in named:
                handles.append(module.register_forward_hook(make_hook(name)))
            with _training_mode(model, False), torch.no_grad():
                model(*args)
        finally:
            for handle in handles:
                handle.remove()

    infos = []
    for name, module in named:
        is_leaf = next(iter(module.children()), None) is None
        if leaf_only and not is_leaf:
            continue
        outs = calls[name]
        shapes = tuple(
            tuple(int(d) for d in t.shape)
            for t in (_first_tensor(o) for o in outs)
            if t is not None
        )
        infos.append(
            LayerInfo(
                name=name,
                type=type(module).__name__,
                n_params=sum(p.numel() for p in module.parameters()),
                is_leaf=is_leaf,
                output_shapes=shapes,
                output_type=_describe_output(outs[0]) if outs else None,
            )
        )
    return infos


def format_layer_table(layers: Sequence[LayerInfo], *, indent: bool = False) -> str:
    """Format :func:`list_layers` output as a plain-text table.

    Parameters
    ----------
    layers : sequence of LayerInfo
        As returned by :func:`list_layers`.
    indent : bool, default False
        Indent names by nesting depth (two spaces per level). Off by default so
        names can be copied straight into ``capture(..., layers=[...])``.

    Returns
    -------
    str
        One header line, a rule, then one line per layer with the columns
        ``name``, ``type``, ``params`` and (when shapes are known) ``output``.
    """
    have_shapes = any(info.output_shapes or info.output_type for info in layers)
    header = ["name", "type", "params"] + (["output"] if have_shapes else [])
    rows = []
    for info in layers:
        name = ("  " * info.depth + info.name) if indent else info.name
        row = [name, info.type, f"{info.n_params:,}"]
        if have_shapes:
            row.append(info._shape_text())
        rows.append(row)
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = []
        for i, cell in enumerate(row):
            if i == 2:  # numbers right-aligned
                cells.append(cell.rjust(widths[i]))
            elif i == len(row) - 1:
                cells.append(cell)
            else:
                cells.append(cell.ljust(widths[i]))
        return "  ".join(cells).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    lines.extend(fmt(r) for r in rows)
    return "\n".join(lines)


# --------------------------------------------------------------------------- resolving


def _is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def resolve_layers(
    model: nn.Module,
    patterns: str | Iterable[str],
    *,
    sample_input: Any = None,
) -> list[str]:
    """Turn exact layer names and glob patterns into a list of module names.

    Parameters
    ----------
    model : torch.nn.Module
        The network whose ``named_modules()`` names are matched.
    patterns : str or iterable of str
        Exact names (``"layer1.0.conv1"``) and/or :mod:`fnmatch` glob patterns
        (``"layer*.?.relu"``, ``"*conv*"``; ``*`` also matches dots). A single
        string is treated as a one-element list. Matching is case-sensitive and
        never includes the root module.
    sample_input : torch.Tensor, numpy.ndarray, tuple of them, or None
        When given, one forward pass (eval mode, no gradients) finds glob matches
        that return the very same output tensor as another match, and keeps one
        of them (see Notes). A batch of one or two samples is enough.

    Returns
    -------
    list of str
        Matching names, in the order of ``patterns``; within one glob, in
        ``named_modules()`` order. Duplicates are removed (first occurrence kept).

    Raises
    ------
    LayerNotFoundError
        (a ``KeyError``) If an exact name is not a submodule, or a glob matches
        nothing. The message lists the closest names.
    ValueError
        If ``patterns`` is empty.
    TypeError
        If a pattern is not a string.

    Notes
    -----
    A container often returns its last child's output object unchanged: an
    ``nn.Sequential`` stage returns its last block's output, a residual block its
    final ReLU's. Without ``sample_input`` a glob such as ``"layer*"`` lists all of
    them, i.e. the same activations several times over. With ``sample_input`` such
    a group of aliases is reduced to one name: the outermost module that is not a
    plain ``Sequential``/``ModuleList``/``ModuleDict`` (so ``layer1.2`` stands for
    ``layer1``, ``layer1.2`` and ``layer1.2.relu2``), listed where the module that
    computed the tensor sits, so the list stays in depth order. A module modified
    in place afterwards (``ReLU(inplace=True)`` after a BatchNorm) is not an alias.
    Exactly named layers are always kept (a glob match aliasing one is dropped).
    """
    return _resolve(model, patterns, sample_input)[0]


def _resolve(
    model: nn.Module, patterns: str | Iterable[str], sample_input: Any = None
) -> tuple[list[str], dict[str, str]]:
    """:func:`resolve_layers`, plus ``{dropped alias: kept name}``."""
    model = _check_model(model)
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = list(patterns)
    if not patterns:
        raise ValueError(
            "Expected at least one layer name or pattern, got an empty list. "
            "Pass names such as ['layer1', 'fc'] or a pattern such as '*conv*'."
        )
    names = [name for name, _ in model.named_modules() if name != ""]
    known = set(names)
    owner = type(model).__name__
    resolved: dict[str, None] = {}
    exact: set[str] = set()
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(
                f"Expected layer names to be strings, got {type(pattern).__name__} "
                f"({pattern!r}). Use the dot-path names that nc.list_layers(model) shows."
            )
        if pattern in known:
            resolved.setdefault(pattern, None)
            exact.add(pattern)
        elif _is_glob(pattern):
            matches = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not matches:
                raise LayerNotFoundError.for_name(pattern, names, owner=owner, is_pattern=True)
            for match in matches:
                resolved.setdefault(match, None)
        else:
            raise LayerNotFoundError.for_name(pattern, names, owner=owner)
    out = list(resolved)
    if sample_input is None or len(out) == len(exact):
        return out, {}
    groups, _ = _output_groups(model, out, sample_input)
    return _merge_aliases(model, out, groups, exact)


def _merge_aliases(
    model: nn.Module, names: list[str], groups: list[list[str]], exact: set[str]
) -> tuple[list[str], dict[str, str]]:
    """Keep one name per group of aliases (see :func:`resolve_layers`, Notes)."""
    modules = dict(model.named_modules())
    emit_at: dict[str, list[str]] = {}  # position holder -> names emitted there
    dropped: dict[str, str] = {}
    for group in groups:  # each group in firing order: group[0] computed the tensor
        if len(group) < 2:
            continue
        kept_exact = [n for n in group if n in exact]
        if kept_exact:
            for n in group:
                if n not in exact:
                    dropped[n] = kept_exact[0]
            continue
        candidates = [n for n in group if not _is_plain(modules[n])] or group
        keeper = min(candidates, key=lambda n: n.count("."))
        for n in group:
            if n != keeper:
                dropped[n] = keeper
        emit_at.setdefault(group[0], []).append(keeper)
        if keeper != group[0]:
            dropped[keeper] = keeper  # moved to the producer's position
    out: list[str] = []
    for name in names:
        if name in emit_at:
            out.extend(emit_at[name])
        elif name not in dropped:
            out.append(name)
    return out, {k: v for k, v in dropped.items() if k != v}


def _output_groups(
    model: nn.Module, names: Sequence[str], sample_input: Any
) -> tuple[list[list[str]], list[str]]:
    """One forward pass: group ``names`` whose (first) output is the same tensor object.

    Returns the groups in firing order (each group in firing order too) and the names
    that did not run. Two outputs are the same when they are one tensor object with an
    unchanged version counter, so a tensor modified in place in between is not shared.
    """
    device = _model_device(model)
    float_dtype = _model_float_dtype(model)
    if isinstance(sample_input, tuple | list):
        args = tuple(
            _as_input_tensor(x, device, float_dtype, f"sample_input[{i}]")
            for i, x in enumerate(sample_input)
        )
    else:
        args = (_as_input_tensor(sample_input, device, float_dtype, "sample_input"),)
    modules = dict(model.named_modules())
    seen: dict[str, tuple[torch.Tensor, int]] = {}
    order: list[str] = []

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if name in seen:
                return
            t = _first_tensor(output)
            if t is None:
                return
            seen[name] = (t, t._version)
            order.append(name)

        return hook

    handles = []
    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(make_hook(name)))
        with _training_mode(model, False), torch.no_grad():
            model(*args)
    finally:
        for handle in handles:
            handle.remove()
    by_key: dict[tuple[int, int], list[str]] = {}
    for name in order:
        t, version = seen[name]
        by_key.setdefault((id(t), version), []).append(name)
    groups = list(by_key.values())
    not_run = [n for n in names if n not in seen]
    return groups, not_run


# --------------------------------------------------------------------------- defaults

_PLAIN_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_SKIP_LEAVES: tuple[type[nn.Module], ...] = (
    nn.modules.dropout._DropoutNd,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
)
_GRANULARITIES = ("blocks", "leaves")


def _is_leaf(module: nn.Module) -> bool:
    return next(iter(module.children()), None) is None


def _is_plain(module: nn.Module) -> bool:
    """A Sequential/ModuleList/ModuleDict without its own ``forward``.

    Its output (for a Sequential) is just its last child's output.
    """
    for base in _PLAIN_CONTAINERS:
        if isinstance(module, base):
            return type(module).forward is base.forward
    return False


def _has_repeated_blocks(container: nn.Module) -> bool:
    """Two or more consecutive children of one class, each with its own ``forward``."""
    prev: type | None = None
    for child in container.children():
        kind = None if _is_leaf(child) or _is_plain(child) else type(child)
        if kind is not None and kind is prev:
            return True
        prev = kind
    return False


def _holds_stage(module: nn.Module) -> bool:
    """True if a plain container at or below ``module`` holds repeated blocks."""
    return any(_is_plain(m) and _has_repeated_blocks(m) for m in module.modules())


def _continues(module: nn.Module) -> bool:
    """Normalisation and activation layers: they continue the previous layer's unit."""
    if type(module).__module__ == "torch.nn.modules.activation":
        return True
    if isinstance(
        module, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm | nn.LocalResponseNorm
    ):
        return True
    return "Norm" in type(module).__name__


def _walk_blocks(parent: nn.Module, prefix: str, out: list[tuple[str, nn.Module, str]]) -> None:
    for name, child in parent.named_children():
        full = prefix + name
        if _is_leaf(child):
            if not isinstance(child, _SKIP_LEAVES):
                out.append((full, child, prefix))
        elif _is_plain(child) or _holds_stage(child):
            _walk_blocks(child, full + ".", out)
        else:
            out.append((full, child, prefix))


def default_layers(model: nn.Module, granularity: str = "blocks") -> list[str]:
    """The layers worth comparing by default: block outputs, or every leaf.

    Parameters
    ----------
    model : torch.nn.Module
        The network. Only its module structure is read (no forward pass).
    granularity : {"blocks", "leaves"}, default "blocks"
        ``"leaves"``: every module without children except dropout, identity and
        flatten layers. ``"blocks"``: one entry per block, where the model is built
        of blocks (see Notes); a model without blocks (a flat ``nn.Sequential`` such
        as :class:`nncompare.models.SmallCNN` or :class:`nncompare.models.MLP`) gets
        its leaves, as with ``"leaves"``.

    Returns
    -------
    list of str
        Module names in ``named_modules()`` (i.e. roughly depth) order. No name in
        it is a container of another, so no two entries record the same tensor.

    Raises
    ------
    ValueError
        If ``granularity`` is not one of the two, or the model has no submodules.
    TypeError
        If ``model`` is not a ``torch.nn.Module``.

    Notes
    -----
    ``"blocks"`` walks the module tree from the top. Plain ``Sequential``,
    ``ModuleList`` and ``ModuleDict`` containers (stages) are looked through, since
    a Sequential's output is just its last child's. A module with its own
    ``forward`` and children (a residual block, a transformer layer, an inception
    module) is one block, listed by its own name and not looked into, unless it
    wraps a stage of repeated blocks (a transformer encoder holding its layers), in
    which case it is looked through as well. Leaves met on the way (stem and head
    layers) are listed too, except a leaf directly followed by a normalisation or
    activation layer, which continues it: ``conv1 → bn1 → relu`` is listed as
    ``relu``, the output of that unit. For :func:`nncompare.models.cifar_resnet`
    this gives the stem ``relu``, every residual block ``layer1.0``, ``layer1.1``,
    ..., ``layer3.{n-1}``, then ``avgpool`` and ``linear`` (12 layers for
    ResNet-20, 18 for ResNet-32); for torchvision's ``resnet18`` the stem, its
    eight blocks, ``avgpool`` and ``fc``.

    Examples
    --------
    >>> from nncompare.models import cifar_resnet
    >>> default_layers(cifar_resnet(20))[:5]
    ['relu', 'layer1.0', 'layer1.1', 'layer1.2', 'layer2.0']
    >>> len(default_layers(cifar_resnet(20), "leaves"))
    61
    """
    model = _check_model(model)
    if granularity not in _GRANULARITIES:
        raise ValueError(
            f"Expected granularity to be 'blocks' or 'leaves', got {granularity!r}. "
            "'blocks' lists block and stage outputs (residual blocks, transformer "
            "layers), 'leaves' every layer without children."
        )
    if _is_leaf(model):
        raise ValueError(
            f"{type(model).__name__} has no submodules, so there are no layers to pick "
            "by default; pass layers=[...] explicitly (the names that "
            "nc.list_layers(model) shows)."
        )
    leaves = [
        name
        for name, m in model.named_modules()
        if name and _is_leaf(m) and not isinstance(m, _SKIP_LEAVES)
    ]
    if granularity == "blocks":
        entries: list[tuple[str, nn.Module, str]] = []
        _walk_blocks(model, "", entries)
        if any(not _is_leaf(m) for _, m, _ in entries):
            names = []
            for i, (name, module, parent) in enumerate(entries):
                nxt = entries[i + 1] if i + 1 < len(entries) else None
                if (
                    _is_leaf(module)
                    and nxt is not None
                    and _is_leaf(nxt[1])
                    and nxt[2] == parent
                    and _continues(nxt[1])
                ):
                    continue
                names.append(name)
            return names
    if not leaves:
        raise ValueError(
            f"{type(model).__name__} has only dropout/identity/flatten leaves; pass "
            "layers=[...] explicitly (nc.list_layers(model) lists them)."
        )
    return leaves
