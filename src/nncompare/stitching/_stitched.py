"""The stitched (Frankenstein) network F(x) = T_B(S(R_A(x))) and its stitching layer S."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nncompare.capture._layers import _as_input_tensor, _model_device, _model_float_dtype
from nncompare.stitching._cut import InvalidCutError, trace

__all__ = ["KINDS", "RESIZE", "Stitched", "stitch"]

KINDS = ("linear", "lowrank")
RESIZE = (None, "interpolate", "pool")


def _conv_for(ndim: int) -> Any:
    return {2: nn.Linear, 3: nn.Conv1d, 4: nn.Conv2d}[ndim]


def _affine(ndim: int, c_in: int, c_out: int, bias: bool) -> nn.Module:
    if ndim == 2:
        return nn.Linear(c_in, c_out, bias=bias)
    return _conv_for(ndim)(c_in, c_out, kernel_size=1, bias=bias)


def _weight2d(layer: nn.Module) -> torch.Tensor:
    w = layer.weight
    return w.reshape(w.shape[0], w.shape[1])


class Stitched(nn.Module):
    """A Frankenstein network: the front of model A, a stitching layer S, the back of model B.

    ``forward(x) = back_b(S(resize(front_a(x))))`` (Csiszárik et al. 2021, Definition 3.1:
    F = T_{B,M} ∘ S ∘ R_{A,L}). Build it with :func:`nncompare.stitch`.

    The three parts of the source models are frozen *copies* (``front_a``, ``front_b`` — the
    front of B, whose activations are the targets of direct matching — and ``back_b``): the
    source models are never changed by anything done to the stitched model, and later
    changes to them do not reach it. Only the stitching layer (``stitch_layer``) has
    ``requires_grad=True``. The copies always run in eval mode (BatchNorm uses its running
    statistics); :meth:`train` switches only the stitching layer. The front of A runs
    without autograd.

    Attributes
    ----------
    layer_a, layer_b : str
        The cut points.
    kind : {"linear", "lowrank"}
    rank : int or None
        Bottleneck width of a ``"lowrank"`` stitching layer.
    resize : {None, "interpolate", "pool"}
        How A's activations are brought to B's spatial size (before S).
    shape_a, shape_b : tuple of int or None
        Activation shapes at the cuts without the batch dimension, ``(C, H, W)`` or
        ``(D,)``; None until the stitching layer is built from the first batch (or
        ``example_input`` of :func:`nncompare.stitch`).
    stitch_layer : torch.nn.Module or None
        S: a 1×1 convolution (``nn.Conv2d``/``nn.Conv1d``) for (N, C, ...) activations or an
        ``nn.Linear`` for (N, D) vectors; for ``"lowrank"`` an ``nn.Sequential`` of two such
        layers (C_a → rank without bias, rank → C_b with bias).
    method : str or None
        How S was last set: ``"identity"`` (a new linear layer between equal widths) or
        ``"random"`` (torch's default initialisation, seed 0) when built, then the
        :func:`~nncompare.stitching.fit` method or ``"task"``.
    """

    def __init__(
        self,
        front_a: nn.Module,
        front_b: nn.Module,
        back_b: nn.Module,
        *,
        layer_a: str,
        layer_b: str,
        kind: str = "linear",
        rank: int | None = None,
        resize: str | None = None,
        names: tuple[str, str] = ("model_a", "model_b"),
    ) -> None:
        super().__init__()
        self.front_a = front_a
        self.front_b = front_b
        self.back_b = back_b
        for part in (front_a, front_b, back_b):
            part.requires_grad_(False)
            part.eval()
        self.layer_a = layer_a
        self.layer_b = layer_b
        self.kind = kind
        self.rank = rank
        self.resize = resize
        self.model_names = names
        self.shape_a: tuple[int, ...] | None = None
        self.shape_b: tuple[int, ...] | None = None
        self.stitch_layer: nn.Module | None = None
        #: how the stitching layer was last set: "identity"/"random" when built, then the
        #: fit method or "task"
        self.method: str | None = None

    # ------------------------------------------------------------------ building
    @property
    def device(self) -> torch.device:
        return _model_device(self.front_b)

    @property
    def float_dtype(self) -> torch.dtype | None:
        return _model_float_dtype(self.front_b) or _model_float_dtype(self.back_b)

    def as_input(self, x: Any) -> torch.Tensor:
        return _as_input_tensor(x, self.device, self.float_dtype, "the input")

    def build(self, x: Any) -> Stitched:
        """Create the stitching layer from one batch ``x`` (a no-op once it exists)."""
        if self.stitch_layer is not None:
            return self
        x = self.as_input(x)
        with torch.no_grad():
            a = self.front_a(x)
            b = self.front_b(x)
        for label, act, layer in (("A", a, self.layer_a), ("B", b, self.layer_b)):
            if not isinstance(act, torch.Tensor):
                raise InvalidCutError(
                    f"Expected the output of {label}'s layer {layer!r} to be one tensor, got "
                    f"{type(act).__name__}. Cut at a module that returns a tensor."
                )
        self._build(tuple(a.shape[1:]), tuple(b.shape[1:]))
        return self

    def _build(self, shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> None:
        a_desc = (
            f"{self.model_names[0]} at {self.layer_a!r} gives (N, {', '.join(map(str, shape_a))})"
        )
        b_desc = (
            f"{self.model_names[1]} at {self.layer_b!r} takes (N, {', '.join(map(str, shape_b))})"
        )
        if len(shape_a) != len(shape_b) or len(shape_a) not in (1, 2, 3):
            raise ValueError(
                "Expected activations of the same kind on both sides, (N, D) vectors or "
                f"(N, C, L) / (N, C, H, W) feature maps; {a_desc} but {b_desc}. Stitch "
                "conv layers to conv layers and vector layers to vector layers (cut both "
                "models after their pooling or flattening to stitch vectors)."
            )
        if shape_a[1:] != shape_b[1:]:
            if self.resize is None:
                raise ValueError(
                    "Expected equal spatial sizes at the two cuts, or resize=; "
                    f"{a_desc} but {b_desc}. Pass resize='interpolate' (bilinear/linear "
                    "resampling) or resize='pool' (adaptive average pooling, to shrink) to "
                    "nc.stitch."
                )
            if self.resize == "pool" and any(
                sb > sa for sa, sb in zip(shape_a[1:], shape_b[1:], strict=True)
            ):
                raise ValueError(
                    "resize='pool' can only shrink feature maps, but "
                    f"{a_desc} and {b_desc}. Use resize='interpolate' to enlarge."
                )
        c_a, c_b = shape_a[0], shape_b[0]
        ndim = len(shape_a) + 1
        if self.kind == "lowrank" and self.rank > min(c_a, c_b):
            raise ValueError(
                f"Expected rank <= min(C_a, C_b) = {min(c_a, c_b)} (the widths at the cuts: "
                f"C_a = {c_a}, C_b = {c_b}), got rank={self.rank}. A bottleneck wider "
                "than the layers is no bottleneck; choose a smaller rank or kind='linear'."
            )
        # torch's default initialisation, from a fixed seed and without touching the
        # caller's random state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            if self.kind == "lowrank":
                layer: nn.Module = nn.Sequential(
                    _affine(ndim, c_a, self.rank, bias=False),
                    _affine(ndim, self.rank, c_b, bias=True),
                )
            else:
                layer = _affine(ndim, c_a, c_b, bias=True)
        layer = layer.to(device=self.device, dtype=self.float_dtype or torch.float32)
        self.shape_a, self.shape_b = shape_a, shape_b
        self.stitch_layer = layer
        self.stitch_layer.train(self.training)
        self.method = "random"
        if self.kind == "linear" and c_a == c_b:
            self.set_matrix(torch.eye(c_a), torch.zeros(c_b))
            self.method = "identity"

    def _require_built(self) -> nn.Module:
        if self.stitch_layer is None:
            raise ValueError(
                "The stitching layer is not built yet: its shape comes from the first batch. "
                "Call fit, train or evaluate, run the stitched model on a batch, or pass "
                "example_input= to nc.stitch."
            )
        return self.stitch_layer

    # ------------------------------------------------------------------ the map
    @property
    def widths(self) -> tuple[int, int]:
        """(C_a, C_b), the channel counts at the two cuts."""
        self._require_built()
        return self.shape_a[0], self.shape_b[0]

    def resize_a(self, a: torch.Tensor) -> torch.Tensor:
        """A's activations resampled to B's spatial size (unchanged when they agree)."""
        target = self.shape_b[1:]
        if tuple(a.shape[2:]) == tuple(target):
            return a
        if self.resize == "pool":
            pool = F.adaptive_avg_pool1d if a.ndim == 3 else F.adaptive_avg_pool2d
            return pool(a, target)
        mode = "linear" if a.ndim == 3 else "bilinear"
        return F.interpolate(a, size=target, mode=mode, align_corners=False)

    def transform(self, a: torch.Tensor) -> torch.Tensor:
        """S(resize(a)): A's activations at the cut mapped into B's activation space."""
        return self._require_built()(self.resize_a(a))

    def forward(self, x: Any) -> Any:
        self.build(x)
        x = self.as_input(x)
        with torch.no_grad():
            a = self.front_a(x)
        return self.back_b(self.transform(a))

    def train(self, mode: bool = True) -> Stitched:
        """Set the stitching layer's mode; the frozen parts of A and B stay in eval mode."""
        if not isinstance(mode, bool):
            raise TypeError(f"Expected mode to be True or False, got {mode!r}.")
        self.training = mode
        if self.stitch_layer is not None:
            self.stitch_layer.train(mode)
        return self

    # ------------------------------------------------------------------ the matrix
    @property
    def matrix(self) -> np.ndarray:
        """The stitching matrix M, shape (C_a, C_b), in the paper's convention ``A M + b ≈ B``."""
        return self.matrix_tensor().detach().cpu().double().numpy()

    @property
    def bias(self) -> np.ndarray:
        """The bias b, shape (C_b,)."""
        layer = self._require_built()
        last = layer[-1] if isinstance(layer, nn.Sequential) else layer
        return last.bias.detach().cpu().double().numpy()

    def matrix_tensor(self) -> torch.Tensor:
        """M as a tensor (differentiable with respect to the stitching layer's weights)."""
        layer = self._require_built()
        if isinstance(layer, nn.Sequential):
            return (_weight2d(layer[1]) @ _weight2d(layer[0])).T
        return _weight2d(layer).T

    def set_matrix(self, matrix: Any, bias: Any) -> None:
        """Set S to ``a ↦ a M + b`` (M of shape (C_a, C_b)).

        For a ``"lowrank"`` layer M is split into its two factors by a truncated SVD; a
        matrix of larger rank than the bottleneck is refused.
        """
        layer = self._require_built()
        c_a, c_b = self.widths
        M = torch.as_tensor(np.asarray(matrix) if not torch.is_tensor(matrix) else matrix)
        b = torch.as_tensor(np.asarray(bias) if not torch.is_tensor(bias) else bias)
        M, b = M.detach().to(torch.float64).cpu(), b.detach().to(torch.float64).cpu()
        if tuple(M.shape) != (c_a, c_b) or tuple(b.shape) != (c_b,):
            raise ValueError(
                f"Expected a matrix of shape (C_a, C_b) = ({c_a}, {c_b}) and a bias of shape "
                f"({c_b},), got {tuple(M.shape)} and {tuple(b.shape)}."
            )
        if not (torch.isfinite(M).all() and torch.isfinite(b).all()):
            raise ValueError("Expected a finite stitching matrix and bias; got NaN or inf.")
        with torch.no_grad():
            if isinstance(layer, nn.Sequential):
                U, S, Vh = torch.linalg.svd(M, full_matrices=False)
                r = self.rank
                tail = float(S[r:].max()) if S.numel() > r else 0.0
                if tail > 1e-6 * max(float(S[0]), np.finfo(float).tiny):
                    raise ValueError(
                        f"Expected a matrix of rank <= {r} for this rank-{r} stitching layer, "
                        f"got one with singular value {tail:.3g} beyond rank {r} (largest "
                        f"{float(S[0]):.3g}). Fit it with method='rrr' or stitch with "
                        "kind='linear'."
                    )
                root = S[:r].sqrt()
                first = (U[:, :r] * root).T  # (r, C_a)
                second = root[:, None] * Vh[:r]  # (r, C_b)
                self._copy_weight(layer[0], first)
                self._copy_weight(layer[1], second.T)
                layer[1].bias.copy_(b.to(layer[1].bias))
            else:
                self._copy_weight(layer, M.T)
                layer.bias.copy_(b.to(layer.bias))

    @staticmethod
    def _copy_weight(layer: nn.Module, w: torch.Tensor) -> None:
        layer.weight.copy_(w.reshape(layer.weight.shape).to(layer.weight))

    def extra_repr(self) -> str:
        rank = f", rank={self.rank}" if self.kind == "lowrank" else ""
        resize = f", resize={self.resize!r}" if self.resize else ""
        return f"{self.layer_a!r} -> {self.layer_b!r}, kind={self.kind!r}{rank}{resize}"


def _check_rank(kind: str, rank: Any) -> int | None:
    if kind == "lowrank":
        if rank is None:
            raise ValueError(
                "kind='lowrank' needs rank=, the bottleneck width (e.g. rank=8); got None."
            )
        if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or rank < 1:
            raise ValueError(f"Expected rank to be a positive integer, got {rank!r}.")
        return int(rank)
    if rank is not None:
        raise ValueError(
            f"rank= applies to kind='lowrank' (a bottleneck stitching layer), got rank={rank!r} "
            "with kind='linear'. For a reduced-rank fit of a full linear layer use "
            "nc.stitching.fit(stitched, data, method='rrr', rank=k)."
        )
    return None


def stitch(
    model_a: nn.Module,
    layer_a: str,
    model_b: nn.Module,
    layer_b: str,
    *,
    kind: str = "linear",
    rank: int | None = None,
    resize: str | None = None,
    example_input: Any = None,
) -> Stitched:
    """Stitch the front of ``model_a`` (up to ``layer_a``) to the back of ``model_b``.

    Builds the Frankenstein network F(x) = T_{B,layer_b}(S(R_{A,layer_a}(x))) of Csiszárik
    et al. (2021, Definition 3.1) with a trainable stitching layer S between them; fit S
    with :func:`nncompare.stitching.fit` (direct matching) or
    :func:`nncompare.stitching.train` (task loss) and score it with
    :func:`nncompare.stitching.evaluate`.

    The cut is a true cut of the traced computation graph (:mod:`torch.fx`): if B's
    computation after ``layer_b`` also reads an activation from before it (a skip connection
    around the cut, as inside a residual block), the call is refused with the crossing layers
    named and the valid cut points listed (:func:`nncompare.stitching.valid_cuts`).

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        The two networks (may be the same object, for self-stitching). They are not
        changed: the stitched model holds frozen copies of the parts it uses.
    layer_a, layer_b : str
        Module names (dot paths of ``named_modules()``) whose outputs are the cut points.
    kind : {"linear", "lowrank"}, default "linear"
        ``"linear"``: an affine map, a 1×1 convolution for (N, C, H, W) activations (an
        ``nn.Linear`` for (N, D) vectors); ``"lowrank"``: a bottleneck of two such maps
        through ``rank`` channels.
    rank : int, optional
        Bottleneck width for ``kind="lowrank"`` (at most the smaller width).
    resize : {None, "interpolate", "pool"}, default None
        Needed when the spatial sizes differ: A's activations are resampled to B's size by
        bilinear interpolation or adaptive average pooling before S.
    example_input : torch.Tensor, optional
        A small batch to build S right away (else it is built from the first batch seen).

    Returns
    -------
    Stitched
        An ``nn.Module``; only its ``stitch_layer`` requires gradients. A new ``"linear"``
        layer between equal widths starts as the identity (the no-transformation baseline).

    Raises
    ------
    LayerNotFoundError
        If a layer name is not a module of its model (close names suggested).
    InvalidCutError
        If ``layer_b`` is crossed by a skip connection, is called several times, or a model
        cannot be traced.
    ValueError
        For an unknown ``kind``/``resize``, a missing or too large ``rank``, or activation
        shapes that cannot be stitched (different spatial sizes without ``resize``).

    Examples
    --------
    >>> import torch, nncompare as nc  # doctest: +SKIP
    >>> a, b = nc.models.cifar_resnet(20), nc.models.cifar_resnet(32)  # doctest: +SKIP
    >>> s = nc.stitch(a, "layer2", b, "layer2")  # doctest: +SKIP
    >>> nc.stitching.fit(s, (x_train, y_train), method="ls")  # doctest: +SKIP
    """
    if kind not in KINDS:
        raise ValueError(f"Expected kind to be one of {KINDS}, got {kind!r}.")
    if resize not in RESIZE:
        raise ValueError(
            f"Expected resize to be one of {RESIZE} (None: the spatial sizes must agree), "
            f"got {resize!r}."
        )
    rank = _check_rank(kind, rank)
    traced_a = trace(model_a, "model_a")
    traced_b = trace(model_b, "model_b")
    cut_a = traced_a.cut_node(layer_a)
    cut_b = traced_b.check_back(layer_b)
    dev_a, dev_b = _model_device(model_a), _model_device(model_b)
    if dev_a != dev_b:
        raise ValueError(
            f"Expected model_a and model_b on the same device, got {dev_a} and {dev_b}. "
            "Move them with .to(device) first."
        )
    stitched = Stitched(
        traced_a.front(cut_a),
        traced_b.front(cut_b),
        traced_b.back(cut_b),
        layer_a=layer_a,
        layer_b=layer_b,
        kind=kind,
        rank=rank,
        resize=resize,
    )
    if example_input is not None:
        stitched.build(example_input)
    return stitched
