"""Every sequence step's hidden and cell state of the recurrent layers of a model.

A :class:`torch.nn.LSTM` returns its output sequence but only the *last* step's hidden and
cell state. :func:`capture_recurrent` hooks the recurrent modules (``nn.LSTM``, ``nn.GRU``,
``nn.RNN``), records each call's input and initial state, and unrolls the module's own
weights step by step to recover every step's hidden state (and, for an LSTM, cell state)
of every one of its layers; the unrolled output is checked against what the module returned.
The hooks are removed when it returns, also after an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nncompare.capture._layers import _check_model, _model_device, _training_mode

__all__ = ["RecurrentStates", "capture_recurrent", "recurrent_layers"]

RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)
STATES = ("output", "hidden", "cell")


class RecurrentStates(dict):
    """``{"layer:state": tensor (n, T, H)}`` of :func:`capture_recurrent`.

    Keys are ``"<layer>:output"`` (what the module returned, per step),
    ``"<layer>:hidden"`` and, for LSTMs, ``"<layer>:cell"``; a module with
    ``num_layers > 1`` has ``"<layer>.l<k>:hidden"`` / ``":cell"`` per layer ``k``.
    """

    @property
    def n_steps(self) -> int:
        """Sequence steps ``T``."""
        return int(next(iter(self.values())).shape[1])

    @property
    def layers(self) -> list[str]:
        """The layers with hidden states, in capture order."""
        return list(dict.fromkeys(k.rsplit(":", 1)[0] for k in self if k.endswith(":hidden")))

    def step(self, key: str, t: int) -> torch.Tensor:
        """The ``(n, H)`` state ``key`` at sequence step ``t`` (negative counts from the end)."""
        a = self[key]
        if not -a.shape[1] <= t < a.shape[1]:
            raise IndexError(f"step {t} is out of range for {a.shape[1]} sequence steps.")
        return a[:, t]

    def flat(self, key: str) -> torch.Tensor:
        """State ``key`` with every (sample, step) as one row: ``(n · T, H)``."""
        a = self[key]
        return a.reshape(-1, a.shape[-1])


def recurrent_layers(model: nn.Module) -> list[str]:
    """Names of the ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` modules of ``model``."""
    return [n for n, m in _check_model(model).named_modules() if isinstance(m, RECURRENT)]


def _check_supported(name: str, m: nn.Module) -> None:
    if getattr(m, "bidirectional", False) or getattr(m, "proj_size", 0):
        raise NotImplementedError(
            f"layer {name!r} is bidirectional or has proj_size > 0; capture_recurrent "
            "unrolls unidirectional modules without projections only. Capture its output "
            "with nc.capture(model, data, [name]) instead."
        )


def _cell_step(m: nn.Module, k: int, x: torch.Tensor, h: torch.Tensor, c: Any) -> Any:
    w_ih, w_hh = getattr(m, f"weight_ih_l{k}"), getattr(m, f"weight_hh_l{k}")
    b_ih = getattr(m, f"bias_ih_l{k}", None) if m.bias else None
    b_hh = getattr(m, f"bias_hh_l{k}", None) if m.bias else None
    gi = nn.functional.linear(x, w_ih, b_ih)
    gh = nn.functional.linear(h, w_hh, b_hh)
    if isinstance(m, nn.LSTM):
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if isinstance(m, nn.GRU):
        ir, iz, in_ = gi.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return (1 - z) * n + z * h, None
    act = torch.tanh if m.nonlinearity == "tanh" else torch.relu
    return act(gi + gh), None


def _unroll(m: nn.Module, x: torch.Tensor, hx: Any) -> list[tuple[torch.Tensor, Any]]:
    """Per layer of ``m``: (hidden (n, T, H), cell (n, T, H) or None)."""
    if x.ndim == 2:  # unbatched (T, F)
        x = x.unsqueeze(0)
        hx = None if hx is None else tuple(h.unsqueeze(1) for h in _as_tuple(hx))
    elif not m.batch_first:
        x = x.transpose(0, 1)
    n = x.shape[0]
    h0 = c0 = None
    if hx is not None:
        parts = _as_tuple(hx)
        h0 = parts[0]
        c0 = parts[1] if len(parts) > 1 else None
    out = []
    seq = x
    for k in range(m.num_layers):
        h = h0[k] if h0 is not None else x.new_zeros(n, m.hidden_size)
        c = None
        if isinstance(m, nn.LSTM):
            c = c0[k] if c0 is not None else x.new_zeros(n, m.hidden_size)
        hs, cs = [], []
        for t in range(seq.shape[1]):
            h, c = _cell_step(m, k, seq[:, t], h, c)
            hs.append(h)
            if c is not None:
                cs.append(c)
        hseq = torch.stack(hs, dim=1)
        out.append((hseq, torch.stack(cs, dim=1) if cs else None))
        seq = hseq
    return out


def _as_tuple(hx: Any) -> tuple[torch.Tensor, ...]:
    return tuple(hx) if isinstance(hx, tuple | list) else (hx,)


def capture_recurrent(
    model: nn.Module,
    data: Any,
    layers: Sequence[str] | str | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    max_samples: int | None = None,
    atol: float = 1e-4,
) -> RecurrentStates:
    """Every step's output, hidden and cell state of a model's recurrent layers.

    Runs the data through the model once (eval mode, no gradients); hooks on the
    recurrent modules record each call's input and initial state, and each module's
    weights are unrolled step by step to recover the states at every step.

    Parameters
    ----------
    model : torch.nn.Module
    data : tensor, ndarray, (x, y), Dataset or DataLoader
        Model inputs (see :func:`nncompare.capture.iter_batches`).
    layers : list of str, str, optional
        Names of ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` modules; default: all of them.
    batch_size, device, max_samples
        As in :func:`nncompare.capture`.
    atol : float, default 1e-4
        Largest difference allowed between the unrolled last-layer states and the
        module's own output (a check that the unrolling matches the module).

    Returns
    -------
    RecurrentStates
        ``"<layer>:output"``, ``"<layer>:hidden"`` and (LSTM) ``"<layer>:cell"``, each a
        CPU tensor ``(n, T, H)``; with ``num_layers > 1``, ``"<layer>.l<k>:hidden"`` etc.
        for each of its layers.

    Raises
    ------
    ValueError
        No recurrent module in the model, a named layer is not recurrent, a module is
        called more than once per forward pass, or receives a PackedSequence.
    NotImplementedError
        Bidirectional modules or LSTMs with ``proj_size``.

    Examples
    --------
    >>> states = nc.capture.capture_recurrent(lstm_net, x)  # doctest: +SKIP
    >>> states["lstm1:cell"].shape  # doctest: +SKIP
    torch.Size([1000, 40, 32])
    """
    from nncompare.capture._data import iter_batches
    from nncompare.capture._errors import LayerNotFoundError

    model = _check_model(model)
    modules = dict(model.named_modules())
    names = recurrent_layers(model) if layers is None else (
        [layers] if isinstance(layers, str) else list(layers)
    )  # fmt: skip
    if not names:
        raise ValueError(
            f"{type(model).__name__} has no nn.LSTM, nn.GRU or nn.RNN module; "
            "capture_recurrent captures recurrent layers. Use nc.capture for the others."
        )
    for name in names:
        if name not in modules:
            raise LayerNotFoundError(
                f"No layer named {name!r} in {type(model).__name__}; its recurrent layers "
                f"are {recurrent_layers(model)}."
            )
        if not isinstance(modules[name], RECURRENT):
            raise ValueError(
                f"layer {name!r} is a {type(modules[name]).__name__}, not an nn.LSTM, nn.GRU "
                f"or nn.RNN; the recurrent layers are {recurrent_layers(model)}."
            )
        _check_supported(name, modules[name])
    seen: dict[str, list[tuple[torch.Tensor, Any, torch.Tensor]]] = {n: [] for n in names}

    def make_hook(name: str) -> Any:
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            x = args[0] if args else kwargs.get("input")
            if isinstance(x, nn.utils.rnn.PackedSequence):
                raise ValueError(
                    f"layer {name!r} received a PackedSequence; capture_recurrent needs "
                    "padded tensors. Run it on equal-length sequences."
                )
            hx = args[1] if len(args) > 1 else kwargs.get("hx")
            out = output[0] if isinstance(output, tuple) else output
            seen[name].append((x.detach(), hx, out.detach()))

        return hook

    dev = torch.device(device) if device is not None else _model_device(model)
    dtype = next((p.dtype for p in model.parameters()), None)
    results: dict[str, list[torch.Tensor]] = {}
    handles = []
    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(make_hook(name), with_kwargs=True))
        with _training_mode(model, False), torch.no_grad():
            for batch in iter_batches(data, batch_size, dev, dtype=dtype, max_samples=max_samples):
                for calls in seen.values():
                    calls.clear()
                model(batch)
                for name in names:
                    _collect(name, modules[name], seen[name], results, atol)
    finally:
        for h in handles:
            h.remove()
    return RecurrentStates({k: torch.cat(v) for k, v in results.items()})


def _collect(
    name: str,
    m: nn.Module,
    calls: list[tuple[torch.Tensor, Any, torch.Tensor]],
    results: dict[str, list[torch.Tensor]],
    atol: float,
) -> None:
    if len(calls) != 1:
        raise ValueError(
            f"layer {name!r} ran {len(calls)} times in one forward pass; capture_recurrent "
            "needs each recurrent module called exactly once per batch."
        )
    x, hx, out = calls[0]
    per_layer = _unroll(m, x, hx)
    if out.ndim == 2:  # unbatched module call
        out = out.unsqueeze(0)
    elif not m.batch_first:
        out = out.transpose(0, 1)
    last = per_layer[-1][0]
    if last.shape != out.shape or float((last - out).abs().max()) > atol:
        raise RuntimeError(  # pragma: no cover - a torch change in the recurrence
            f"unrolling layer {name!r} does not reproduce its output (largest difference "
            f"{float((last - out).abs().max()):.3g}); please report this."
        )
    results.setdefault(f"{name}:output", []).append(out.cpu())
    for k, (h, c) in enumerate(per_layer):
        key = name if m.num_layers == 1 else f"{name}.l{k}"
        results.setdefault(f"{key}:hidden", []).append(h.cpu())
        if c is not None:
            results.setdefault(f"{key}:cell", []).append(c.cpu())
