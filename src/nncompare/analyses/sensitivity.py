"""Class sensitivity (Raghu et al. 2017, §4.3, Fig. 6): how correlated each layer is with
the logit of a class.

:func:`class_sensitivity` treats the logit of each chosen class as a representation of its
own (N × 1) and compares every layer with it on the one engine, with the exact DFT path
(``conv="dft"``) by default, as in the paper. A vector target has spatial size 1, so for a
conv layer the DFT path keeps its zero-frequency term: the value is the canonical
correlation between the logit and the layer's spatially averaged channels (the multiple
correlation of a least-squares fit of the logit from them), the same number
``nc.cca(layer, logit, conv="dft")`` gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nncompare.analyses.compare import _as_list, _describe, default_layers
from nncompare.analyses.engine import (
    Pair,
    Progress,
    capture_sources,
    evaluate,
    tidy_frame,
    tidy_rows,
)
from nncompare.analyses.engine import provenance as run_provenance
from nncompare.analyses.grid import parse_measures

__all__ = ["SENSITIVITY_MEASURES", "class_sensitivity"]

#: measures with one value for a layer against an N × 1 target on the DFT path
SENSITIVITY_MEASURES = ("cca", "svcca", "cca_r2")
_NET = "net"
_PICK = "logit"


def _torch_wrapper(model: Any, columns: list[int], logits_layer: str | None) -> Any:
    import torch
    from torch import nn

    class _Column(nn.Module):
        def __init__(self, j: int) -> None:
            super().__init__()
            self.j = j

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            flat = z.reshape(z.shape[0], -1)
            if self.j >= flat.shape[1]:
                raise IndexError(f"class index {self.j} >= {flat.shape[1]} logits")
            return flat[:, self.j : self.j + 1]

    class _WithLogits(nn.Module):
        """The model, plus one module per chosen class whose output is that logit."""

        def __init__(self) -> None:
            super().__init__()
            self.net = model
            self.logit = nn.ModuleList(_Column(j) for j in columns)

        def forward(self, x: torch.Tensor) -> Any:
            if logits_layer is None:
                z = self.net(x)
            else:
                got: list[Any] = []
                mod = dict(self.net.named_modules())[logits_layer]
                handle = mod.register_forward_hook(lambda _m, _i, o: got.append(o))
                try:
                    self.net(x)
                finally:
                    handle.remove()
                z = got[0]
            if not isinstance(z, torch.Tensor):
                raise TypeError(
                    f"the logits must be one tensor (N, n_classes); the "
                    f"{'model' if logits_layer is None else repr(logits_layer)} returned "
                    f"{type(z).__name__}. Name the layer that outputs them with logits_layer=."
                )
            return [pick(z) for pick in self.logit]

    return _WithLogits()


def _classes(classes: Any) -> tuple[list[str], list[int]]:
    if isinstance(classes, Mapping):
        items = [(str(k), v) for k, v in classes.items()]
    elif isinstance(classes, int | str):
        items = [(str(classes), classes)]
    else:
        items = [(str(c), c) for c in classes]
    if not items:
        raise ValueError(
            "classes is empty; pass class indices such as [1, 9, 6], or names with their "
            "indices such as {'automobile': 1, 'truck': 9, 'frog': 6}."
        )
    names, cols = [], []
    for name, c in items:
        if isinstance(c, bool) or not isinstance(c, int):
            try:
                ok = float(c).is_integer()  # type: ignore[arg-type]
            except (TypeError, ValueError):
                ok = False
            if not ok or isinstance(c, bool):
                raise TypeError(
                    f"expected integer class indices (columns of the logits); got {c!r} for "
                    f"class {name!r}. Give names as keys of a mapping: {{'cat': 3}}."
                )
            c = int(c)  # type: ignore[arg-type]
        if c < 0:
            raise ValueError(f"class index {c} of {name!r} is negative; use 0 .. n_classes-1.")
        names.append(name)
        cols.append(int(c))
    if len(set(names)) != len(names):
        raise ValueError(f"the classes must be distinct; got {names}.")
    return names, cols


def class_sensitivity(
    model: Any,
    data: Any,
    classes: Sequence[int] | Mapping[str, int] | int,
    layers: Sequence[str] | str | None = None,
    logits_layer: str | None = None,
    *,
    measure: str = "cca",
    conv: str = "dft",
    batch_size: int = 256,
    device: Any = None,
    max_samples: int | None = None,
    progress: bool = False,
    executor: Any = None,
) -> Any:
    """Per layer, the similarity between the layer and the logit of each chosen class.

    Raghu et al. 2017 §4.3 (Fig. 6): the DFT CCA similarity between a class's logit (an
    N × 1 representation) and each layer, vector and conv layers alike; similar classes
    give close curves, a distinct class its own.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (not modified; hooks are removed afterwards).
    data : tensor, ndarray, (x, y), Dataset or DataLoader
        Inputs, fed in batches (see :func:`nncompare.capture.iter_batches`).
    classes : list of int, int, or {name: index}
        Columns of the logits, e.g. ``{"automobile": 1, "truck": 9, "frog": 6}`` for
        CIFAR-10.
    layers : list of names or glob patterns, optional
        Default: the block outputs (as :func:`nncompare.compare_models`).
    logits_layer : str, optional
        The layer whose output holds the logits (N, n_classes). Default: the model's output.
    measure : {"cca", "svcca", "cca_r2"}, default "cca"
        Mean canonical correlation (with an N × 1 target: the one canonical correlation),
        SVCCA (the layer reduced to its top singular directions first) or the R² form.
    conv : {"dft", "mean", "flatten"}, default "dft"
        ``"dft"``: the exact DFT path of :mod:`nncompare.measures.conv` (for a conv layer
        against the N × 1 logit, its zero-frequency term). The others as in
        ``compare_models``.
    batch_size, device, max_samples, progress, executor
        As in :func:`nncompare.compare_models`.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, class): ``layer``, ``class``, ``class_index``, ``measure``,
        ``value``, ``distance``, ``policy``, ``n_samples``, ``error``, ``note``; ``attrs``
        holds ``layers``, ``classes`` ({name: index}) and ``provenance``.

    Examples
    --------
    >>> df = nc.analyses.class_sensitivity(
    ...     resnet20, cifar_test_x, {"automobile": 1, "truck": 9, "cat": 3, "dog": 5, "frog": 6}
    ... )  # doctest: +SKIP
    >>> df.pivot(index="layer", columns="class", values="value")  # doctest: +SKIP
    """
    if measure not in SENSITIVITY_MEASURES:
        raise ValueError(
            f"measure must be one of {', '.join(SENSITIVITY_MEASURES)} (one value of a layer "
            f"against an N x 1 logit); got {measure!r}."
        )
    if conv not in ("dft", "mean", "flatten"):
        raise ValueError(
            f"conv must be 'dft', 'mean' or 'flatten' for class sensitivity; got {conv!r} "
            "('samples' needs equal spatial sizes, and the logit has none)."
        )
    spec = parse_measures([measure])
    names, cols = _classes(classes)
    if logits_layer is not None and logits_layer not in dict(model.named_modules()):
        from nncompare.capture import LayerNotFoundError

        raise LayerNotFoundError(
            f"logits_layer {logits_layer!r} is not a module of {type(model).__name__}; pass "
            "one of the names of model.named_modules() (see nc.capture.list_layers), or "
            "None for the model's output."
        )
    wrapper = _torch_wrapper(model, cols, logits_layer)
    layer_list = default_layers(model) if layers is None else _as_list(layers)
    _check_layer_names(model, layer_list)  # named in the user's model, not the wrapper
    picks = [f"{_PICK}.{i}" for i in range(len(cols))]
    sources = {"m": (wrapper, [f"{_NET}.{lay}" for lay in layer_list] + picks)}

    def make_pairs(found: dict[str, list[str]]) -> list[Pair]:
        own = [n for n in found["m"] if not n.startswith(f"{_PICK}.")]
        return [(("m", a), ("m", p)) for a in own for p in picks]

    was_training = model.training
    bar = Progress(progress)
    try:
        acc = capture_sources(
            sources,
            data,
            conv=conv,
            batch_size=batch_size,
            device=device,
            progress=bar,
            max_samples=max_samples,
            keep_arrays=False,
            pairs=make_pairs,
            defaulted=["m"] if layers is None else (),
        )
    except IndexError as exc:
        raise ValueError(
            f"a class index in {cols} is outside the logits' columns ({exc}); pass indices "
            "0 .. n_classes-1, or the right logits_layer."
        ) from exc
    finally:
        model.train(was_training)
    outcomes = evaluate(acc, acc.pairs, spec, executor=executor, progress=bar)
    cls_of = dict(zip(picks, zip(names, cols, strict=True), strict=True))
    rows = tidy_rows(
        acc,
        acc.pairs,
        outcomes,
        lambda p: {
            "layer": p[0][1][len(_NET) + 1 :],
            "class": cls_of[p[1][1]][0],
            "class_index": cls_of[p[1][1]][1],
        },
        details=False,
    )
    df = tidy_frame(rows)
    df.attrs["layers"] = list(dict.fromkeys(df["layer"]))
    df.attrs["classes"] = dict(zip(names, cols, strict=True))
    df.attrs["provenance"] = run_provenance(
        {
            "analysis": "class sensitivity (Raghu et al. 2017, section 4.3)",
            "model": _describe(model),
            "logits": logits_layer or "model output",
            "n_samples": acc.n_samples,
            "conv_policy": conv,
            "measure": measure,
        }
    )
    return df


def _check_layer_names(model: Any, layers: Sequence[str]) -> None:
    """Every name or glob pattern in ``layers`` matches a module of ``model``."""
    import fnmatch

    from nncompare.capture import LayerNotFoundError

    known = [n for n, _ in model.named_modules() if n]
    for name in layers:
        pattern = any(ch in name for ch in "*?[")
        if not (fnmatch.filter(known, name) if pattern else name in known):
            raise LayerNotFoundError.for_name(
                name, known, owner=type(model).__name__, is_pattern=pattern
            )
