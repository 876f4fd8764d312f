"""True cuts of a model's computation graph (torch.fx), and the list of valid cut points.

A model is traced once with :mod:`torch.fx`; the tracer records, for every submodule, the
graph node its ``forward`` returned (the module's output) and, for every node, the module
it was created in. Cutting at a module's output node ``c`` splits the graph in two:

* the *front*: ``c`` and every node it depends on;
* the *back*: every other node the model output depends on.

The cut is *true* when nothing in the back reads a value of the front except ``c`` itself
(parameters and buffers, ``get_attr`` nodes, may be read on both sides). A skip connection
around the cut (stitching inside a residual block) reads an earlier activation and makes
the cut invalid.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from nncompare.capture._errors import LayerNotFoundError
from nncompare.capture._layers import _check_model, _training_mode
from nncompare.errors import NNCompareError

__all__ = ["Cut", "InvalidCutError", "TracedModel", "trace", "valid_cuts"]

_SCOPE = "nncompare_scope"
_MAX_LISTED = 16


class InvalidCutError(NNCompareError, ValueError):
    """A layer is not a true cut point of the model (a skip connection crosses it, ...)."""


class _RecordingTracer(fx.Tracer):
    """An fx tracer that records each module's output node and each node's module.

    Modules named in ``opaque`` are traced as single operations (leaves); the innermost
    module whose forward fails to trace is remembered in ``failed``.
    """

    def __init__(self, opaque: set[str]) -> None:
        super().__init__()
        self.opaque = opaque
        self.outputs: dict[str, list[fx.Node]] = defaultdict(list)
        self.failed: str | None = None
        self._scope: list[str] = []

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name in self.opaque or super().is_leaf_module(
            m, module_qualified_name
        )

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        try:
            name = self.path_of_module(m)
        except NameError:  # a module that is not a submodule of the traced root
            return super().call_module(m, forward, args, kwargs)
        self._scope.append(name)
        try:
            out = super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed is None:
                self.failed = name
            raise
        finally:
            self._scope.pop()
        if isinstance(out, fx.Proxy):
            self.outputs[name].append(out.node)
        return out

    def create_node(self, *args: Any, **kwargs: Any) -> fx.Node:
        node = super().create_node(*args, **kwargs)
        node.meta[_SCOPE] = self._scope[-1] if self._scope else ""
        return node


@dataclass(frozen=True)
class Cut:
    """A valid cut point: the output of one module, as listed by :func:`valid_cuts`.

    Attributes
    ----------
    name : str
        The module's dot path (``model.named_modules()``), the ``layer_a``/``layer_b`` to pass
        to :func:`nncompare.stitch`.
    type : str
        Class name of the module.
    shape : tuple of int or None
        Shape of its output for the example input (batch dimension as given), or None
        without an example input.
    """

    name: str
    type: str
    shape: tuple[int, ...] | None = None

    def __str__(self) -> str:
        shape = "" if self.shape is None else f" -> {self.shape}"
        return f"{self.name} ({self.type}){shape}"


class TracedModel:
    """One fx trace of a model with the output node of every module.

    Parameters
    ----------
    model : torch.nn.Module
    owner : str
        How error messages name the model ("model_a", ...).
    """

    def __init__(self, model: nn.Module, owner: str = "the model") -> None:
        self.model = _check_model(model)
        self.owner = owner
        #: submodules whose forward torch.fx cannot trace (e.g. a branch on x.ndim): they
        #: are kept whole, as one operation, so the model cannot be cut inside them
        self.opaque: set[str] = set()
        graph: fx.Graph | None = None
        failure: Exception | None = None
        while graph is None:
            tracer = _RecordingTracer(self.opaque)
            try:
                graph = tracer.trace(model)
            except Exception as err:
                if tracer.failed is not None and tracer.failed not in self.opaque:
                    self.opaque.add(tracer.failed)  # keep that module whole and retry
                    continue
                failure = err
                break
        if graph is None:
            err = failure
            raise InvalidCutError(
                f"Stitching needs a true cut of {owner} ({type(model).__name__}), found by "
                "tracing its forward with torch.fx, and the trace of its own forward failed: "
                f"{type(err).__name__}: {err}. Models whose forward branches on tensor values "
                "or calls untraceable code cannot be cut automatically. Fix: make the forward "
                "traceable (torch.fx.wrap the offending function, or move data-dependent "
                "control flow into a leaf module), or wrap the part before and after the cut "
                "in nn.Sequential stages."
            ) from err
        self.graph = graph
        self.graph_module = fx.GraphModule(model, graph)
        self.outputs = dict(tracer.outputs)
        self._order = {node: i for i, node in enumerate(graph.nodes)}
        self._output_node = next(n for n in graph.nodes if n.op == "output")
        self._needed = _ancestors([self._output_node])

    # ------------------------------------------------------------------ lookup
    def module_names(self) -> list[str]:
        return [name for name, _ in self.model.named_modules() if name]

    def cut_node(self, layer: str) -> fx.Node:
        """The output node of module ``layer``; clear errors when there is none or several."""
        if not isinstance(layer, str) or not layer:
            raise TypeError(
                f"Expected a layer name of {self.owner} as a non-empty str (a dot path of "
                f"named_modules(), e.g. 'layer1'), got {layer!r}."
            )
        names = self.module_names()
        if layer not in names:
            raise LayerNotFoundError.for_name(layer, names, owner=self.owner)
        nodes = self.outputs.get(layer, [])
        if not nodes:
            raise InvalidCutError(
                f"Cannot cut {self.owner} at {layer!r}: the traced forward never calls that "
                "module as a module returning one tensor (it is unused, returns a tuple or "
                "dict, or sits inside a module torch.fx treats as one operation"
                + (
                    f"; modules kept whole because their forward is not traceable: "
                    f"{sorted(self.opaque)}"
                    if self.opaque
                    else ""
                )
                + f"). Choose another layer; valid cuts: {self._listing()}."
            )
        if len(set(nodes)) > 1:
            raise InvalidCutError(
                f"Cannot cut {self.owner} at {layer!r}: the module is called "
                f"{len(set(nodes))} times in one forward pass, so its output is not one "
                f"point of the computation. Choose another layer; valid cuts: "
                f"{self._listing()}."
            )
        return nodes[0]

    def module_of(self, node: fx.Node) -> str:
        """The name of the (innermost) module whose output ``node`` is, else its scope."""
        best: str | None = None
        for name, nodes in self.outputs.items():
            if node in nodes and (best is None or name.count(".") > best.count(".")):
                best = name
        if best is not None:
            return best
        if node.op == "placeholder":
            return f"the input {node.target!r}"
        scope = node.meta.get(_SCOPE, "")
        return f"{node.name} (in {scope!r})" if scope else node.name

    # ------------------------------------------------------------------ cuts
    def crossings(self, cut: fx.Node) -> tuple[set[fx.Node], list[tuple[fx.Node, fx.Node]], bool]:
        """(front nodes, [(earlier value, reader after the cut)], whether the back uses cut)."""
        front = _ancestors([cut])
        back = [n for n in self._needed if n not in front]
        crossing: list[tuple[fx.Node, fx.Node]] = []
        for node in back:
            if node.op == "placeholder":
                crossing.append((node, node))
                continue
            for src in node.all_input_nodes:
                if src is not cut and src in front and src.op != "get_attr":
                    crossing.append((src, node))
        crossing.sort(key=lambda p: (self._order[p[1]], self._order[p[0]]))
        return front, crossing, cut in self._needed

    def is_valid(self, layer: str) -> bool:
        nodes = set(self.outputs.get(layer, []))
        if len(nodes) != 1:
            return False
        cut = next(iter(nodes))
        _, crossing, used = self.crossings(cut)
        return used and not crossing

    def valid_names(self) -> list[str]:
        return [name for name in self.module_names() if self.is_valid(name)]

    def _listing(self) -> str:
        names = self.valid_names()
        shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
        more = f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
        return (shown + more) if names else "none"

    def check_back(self, layer: str) -> fx.Node:
        """The cut node of ``layer``, refusing cuts that a skip connection crosses."""
        cut = self.cut_node(layer)
        _, crossing, used = self.crossings(cut)
        if not used:
            raise InvalidCutError(
                f"Cannot cut {self.owner} at {layer!r}: the model output does not depend on "
                "that module's output, so nothing after the cut would see the stitching layer. "
                f"Choose a layer on the path to the output; valid cuts: {self._listing()}."
            )
        if crossing:
            pairs = []
            for src, reader in crossing[:6]:
                pairs.append(
                    f"the output of {self.module_of(src)!r} is read by "
                    f"{self._reader_name(reader)!r}"
                )
            raise InvalidCutError(
                f"Cannot cut {self.owner} at {layer!r}: it is not a true cut, because the "
                "computation after it also reads values computed before it (a skip "
                "connection crosses the cut): " + "; ".join(pairs) + ". A stitching layer "
                "there would replace only part of what the rest of the model reads. Fix: cut "
                "at a block output instead (outside the residual block). Valid cuts: "
                f"{self._listing()}; nc.stitching.valid_cuts(model, example_input) lists "
                "them with their shapes."
            )
        return cut

    def _reader_name(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return str(node.target)
        if node.op == "placeholder":
            return "the part after the cut"
        scope = node.meta.get(_SCOPE, "")
        return f"{node.name} in {scope}" if scope else node.name

    # ------------------------------------------------------------------ splitting
    def front(self, cut: fx.Node) -> fx.GraphModule:
        """A copy of the model up to and including ``cut``, returning its output."""
        front = _ancestors([cut])
        graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        for node in self.graph.nodes:
            if node in front:
                env[node] = graph.node_copy(node, lambda n: env[n])
        graph.output(env[cut])
        return _detached_module(self.model, graph)

    def back(self, cut: fx.Node) -> fx.GraphModule:
        """A copy of the model after ``cut``: takes the cut's output, returns the model output."""
        front = _ancestors([cut])
        back = {n for n in self._needed if n not in front}
        shared = {  # parameters and buffers read on both sides of the cut
            src
            for node in back
            for src in node.all_input_nodes
            if src in front and src.op == "get_attr"
        }
        graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {cut: graph.placeholder("activation")}
        for node in self.graph.nodes:
            if node in shared:
                env[node] = graph.node_copy(node)
            elif node in back:
                env[node] = graph.node_copy(node, lambda n: env[n])
        return _detached_module(self.model, graph)

    def shapes(self, example_input: Any) -> dict[fx.Node, tuple[int, ...]]:
        """Output shape of every tensor node for ``example_input`` (model in eval mode)."""
        shapes: dict[fx.Node, tuple[int, ...]] = {}
        interp = _ShapeRecorder(self.graph_module, shapes)
        with _training_mode(self.model, False), torch.no_grad():
            interp.run(example_input)
        return shapes


class _ShapeRecorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, shapes: dict[fx.Node, tuple[int, ...]]) -> None:
        super().__init__(gm)
        self._shapes = shapes

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self._shapes[n] = tuple(out.shape)
        return out


def _ancestors(nodes: Iterable[fx.Node]) -> set[fx.Node]:
    """``nodes`` and every node they depend on."""
    seen: set[fx.Node] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(node.all_input_nodes)
    return seen


def _detached_module(model: nn.Module, graph: fx.Graph) -> fx.GraphModule:
    """A GraphModule of ``graph`` over deep copies of the submodules and tensors it uses.

    The copies keep the stitched model from ever changing the source model (weights,
    ``requires_grad`` flags, train/eval modes), whatever is done to it.
    """
    graph.lint()
    gm = fx.GraphModule(model, graph)  # copies references to exactly the used attributes
    return copy.deepcopy(gm)


def trace(model: nn.Module, owner: str = "the model") -> TracedModel:
    """Trace ``model`` once with torch.fx, recording module outputs (see :class:`TracedModel`)."""
    return TracedModel(model, owner)


def valid_cuts(model: nn.Module, example_input: Any = None) -> list[Cut]:
    """The layers at which ``model`` can be truly cut for stitching, with their shapes.

    A layer is a valid cut when, after its output, the model reads no activation computed
    before it: a skip connection across it (inside a residual block, say) makes it invalid.
    The model is traced with :mod:`torch.fx`; it is not changed (with an example input it
    runs once in eval mode, without gradients, and its modes are restored).

    Parameters
    ----------
    model : torch.nn.Module
        A model whose ``forward`` torch.fx can trace.
    example_input : torch.Tensor, optional
        A small batch (e.g. two samples) to report each cut's activation shape.

    Returns
    -------
    list of Cut
        In ``named_modules()`` order; aliases (a Sequential stage and its last block return
        the same tensor) are listed under each name.

    Raises
    ------
    InvalidCutError
        If torch.fx cannot trace the model (the message names what failed).

    Examples
    --------
    >>> import torch, nncompare as nc  # doctest: +SKIP
    >>> net = nc.models.cifar_resnet(20)  # doctest: +SKIP
    >>> [str(c) for c in nc.stitching.valid_cuts(net, torch.zeros(2, 3, 32, 32))][:2]
    ... # doctest: +SKIP
    ['conv1 (Conv2d) -> (2, 16, 32, 32)', 'bn1 (BatchNorm2d) -> (2, 16, 32, 32)']
    """
    traced = trace(model)
    shapes = traced.shapes(example_input) if example_input is not None else {}
    modules = dict(model.named_modules())
    cuts = []
    for name in traced.valid_names():
        node = traced.outputs[name][0]
        cuts.append(Cut(name, type(modules[name]).__name__, shapes.get(node)))
    return cuts


def names_of(cuts: Sequence[Cut]) -> list[str]:
    return [c.name for c in cuts]
