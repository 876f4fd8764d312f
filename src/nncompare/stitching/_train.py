"""Task-loss matching (training the stitching layer) and evaluation of a stitched model."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from nncompare.capture._data import _is_array, iter_batches
from nncompare.stitching._fit import channels_last_rows, check_stitched, fit
from nncompare.stitching._result import StitchResult
from nncompare.stitching._stitched import Stitched

__all__ = ["INITS", "TARGETS", "evaluate", "train"]

TARGETS = ("soft", "hard")
INITS = ("ls", "identity", "random", "procrustes")


# --------------------------------------------------------------------------- helpers


def _logits(out: Any, where: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        desc = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"Expected model_b to return class logits of shape (N, n_classes) for {where}, "
            f"got {desc}. Stitching evaluation and task-loss training need a classifier "
            "output; cut B before any extra heads, or wrap it to return its logits."
        )
    return out


def _soft_cross_entropy(
    out: torch.Tensor, target: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Mean over samples of -sum_k softmax(target / T)_k log softmax(out / T)_k."""
    p = F.softmax(target / temperature, dim=1)
    return -(p * F.log_softmax(out / temperature, dim=1)).sum(dim=1).mean()


def _labels(y: Any, i: int) -> torch.Tensor | None:
    if y is None:
        return None
    if not isinstance(y, torch.Tensor):
        raise TypeError(
            f"Expected integer class labels in batch {i}, got {type(y).__name__}. Pass "
            "(inputs, labels) with labels an integer array of shape (N,)."
        )
    if y.is_floating_point() or y.ndim != 1:
        raise ValueError(
            f"Expected integer class labels of shape (N,) in batch {i}, got dtype {y.dtype} "
            f"and shape {tuple(y.shape)}. Pass class indices, not one-hot rows or scores."
        )
    return y.long()


def _check_number(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"Expected {name} to be a number, got {value!r}.")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"Expected a finite {name} {need}, got {value!r}.")
    return v


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"Expected {name} to be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _shuffled(data: Any, batch_size: int, generator: torch.Generator) -> Any:
    """``data`` in a new random order (arrays and datasets); loaders and iterables as given."""
    if _is_array(data):
        perm = torch.randperm(len(data), generator=generator)
        return data[perm.numpy() if isinstance(data, np.ndarray) else perm]
    if isinstance(data, tuple | list) and data and _is_array(data[0]):
        perm = torch.randperm(len(data[0]), generator=generator)
        return tuple(
            a[perm.numpy() if isinstance(a, np.ndarray) else perm] if _is_array(a) else a
            for a in data
        )
    if isinstance(data, Dataset) and not isinstance(data, DataLoader):
        return DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator)
    return data


def _batches(
    stitched: Stitched, data: Any, batch_size: int, max_samples: int | None = None
) -> Iterator[tuple[torch.Tensor, Any]]:
    return iter_batches(
        data,
        batch_size,
        stitched.device,
        dtype=stitched.float_dtype,
        max_samples=max_samples,
        with_targets=True,
    )


def _one_shot(data: Any) -> bool:
    """True for an iterator (a generator, say), which can be iterated only once."""
    try:
        return iter(data) is data
    except TypeError:  # not iterable at all: iter_batches names what is accepted
        return False


def _resolve_monitor(monitor: Sequence[Any]) -> list[tuple[str, Callable[..., Any]]]:
    if isinstance(monitor, str) or callable(monitor):
        monitor = [monitor]
    from nncompare.measures._registry import get

    out = []
    for item in monitor:
        if isinstance(item, str):
            out.append((item, get(item).function))
        elif callable(item):
            out.append((getattr(item, "__name__", repr(item)), item))
        else:
            raise TypeError(
                f"Expected monitor to list measure names (e.g. 'cka', 'lr_r2') or functions "
                f"f(X, Y), got {item!r}."
            )
    return out


# --------------------------------------------------------------------------- evaluate


def evaluate(
    stitched: Stitched,
    data: Any,
    *,
    batch_size: int = 256,
    max_samples: int | None = None,
    temperature: float = 1.0,
) -> StitchResult:
    """Score a stitched model against model B on ``data`` (paper Sec. 3.2: an evaluation task).

    Parameters
    ----------
    stitched : Stitched
    data : (inputs, labels), Dataset or DataLoader
        Labels give the accuracies; without them only ``cross_entropy`` and ``agreement``
        are computed.
    batch_size : int, default 256
    max_samples : int, optional
    temperature : float, default 1.0
        Temperature of both softmaxes in ``cross_entropy``.

    Returns
    -------
    StitchResult
        ``accuracy`` (stitched), ``accuracy_b`` (model B's own), ``relative_accuracy``
        (their ratio), ``cross_entropy`` (mean cross-entropy of the stitched softmax to B's,
        in nats), ``agreement`` (share of equal top-1 classes), and the current matrix.

    Raises
    ------
    ValueError
        If model B's output is not (N, n_classes) logits, or B gets every labelled sample
        wrong (the relative accuracy would divide by zero).
    """
    check_stitched(stitched, "nc.stitching.evaluate")
    batch_size = _check_int("batch_size", batch_size)
    temperature = _check_number("temperature", temperature, positive=True)
    n = correct = correct_b = agree = 0
    ce_sum = 0.0
    labelled = 0
    was_training = stitched.training
    stitched.train(False)
    try:
        with torch.no_grad():
            for i, (x, y) in enumerate(_batches(stitched, data, batch_size, max_samples)):
                stitched.build(x)
                y = _labels(y, i)
                out_b = _logits(stitched.back_b(stitched.front_b(x)), "evaluation")
                out = _logits(
                    stitched.back_b(stitched.transform(stitched.front_a(x))), "evaluation"
                )
                pred, pred_b = out.argmax(1), out_b.argmax(1)
                agree += int((pred == pred_b).sum())
                ce_sum += float(
                    _soft_cross_entropy(out.double(), out_b.double(), temperature)
                ) * len(x)
                if y is not None:
                    correct += int((pred == y).sum())
                    correct_b += int((pred_b == y).sum())
                    labelled += len(x)
                n += len(x)
    finally:
        stitched.train(was_training)
    if n == 0:
        raise ValueError("Expected data with at least one sample to evaluate, got none.")
    accuracy = accuracy_b = relative = None
    if labelled:
        if labelled != n:
            raise ValueError(
                f"Expected labels in every batch or in none, got them for {labelled} of {n} "
                "samples."
            )
        accuracy, accuracy_b = correct / n, correct_b / n
        if correct_b == 0:
            raise ValueError(
                f"Model B classifies none of the {n} labelled samples correctly, so the "
                "relative accuracy (stitched / B) is undefined. Check the labels, the input "
                "preprocessing and model B."
            )
        relative = accuracy / accuracy_b
    return StitchResult(
        method=stitched.method or "unbuilt",
        matrix=stitched.matrix,
        bias=stitched.bias,
        layer_a=stitched.layer_a,
        layer_b=stitched.layer_b,
        kind=stitched.kind,
        rank=stitched.rank,
        resize=stitched.resize,
        options={"temperature": temperature},
        n_samples=n,
        accuracy=accuracy,
        accuracy_b=accuracy_b,
        relative_accuracy=relative,
        cross_entropy=ce_sum / n,
        agreement=agree / n,
    )


# --------------------------------------------------------------------------- train


def _initialise(
    stitched: Stitched, data: Any, init: str | None, seed: int, batch_size: int
) -> None:
    if init is None:  # keep the layer as it is (built from the first batch if need be)
        x0, _ = next(iter(_batches(stitched, data, batch_size)))
        stitched.build(x0)
        return
    if init in ("ls", "procrustes"):
        method = "rrr" if (init == "ls" and stitched.kind == "lowrank") else init
        fit(stitched, data, method, batch_size=batch_size)
        return
    x0, _ = next(iter(_batches(stitched, data, batch_size)))
    stitched.build(x0)
    c_a, c_b = stitched.widths
    if init == "identity":
        if c_a != c_b or (stitched.kind == "lowrank" and stitched.rank < c_a):
            raise ValueError(
                f"init='identity' needs equal widths and a full-rank layer; got C_a = {c_a}, "
                f"C_b = {c_b}"
                + (f", rank {stitched.rank}" if stitched.kind == "lowrank" else "")
                + ". Use init='ls' (any widths) or init='random'."
            )
        stitched.set_matrix(torch.eye(c_a), torch.zeros(c_b))
        stitched.method = "identity"
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in stitched.stitch_layer.modules():
            if isinstance(module, torch.nn.Linear | torch.nn.Conv1d | torch.nn.Conv2d):
                module.reset_parameters()
    stitched.method = "random"


def _monitor_values(
    stitched: Stitched,
    batch: torch.Tensor,
    measures: list[tuple[str, Callable[..., Any]]],
) -> dict[str, float]:
    if not measures:
        return {}
    with torch.no_grad():
        z = channels_last_rows(stitched.transform(stitched.front_a(batch))).double()
        b = channels_last_rows(stitched.front_b(batch)).double()
    return {name: float(f(z, b)) for name, f in measures}


def train(
    stitched: Stitched,
    data: Any,
    *,
    target: str = "soft",
    temperature: float = 1.0,
    init: str | None = "ls",
    epochs: int = 1,
    lr: float = 1e-3,
    seed: int = 0,
    l1: float = 0.0,
    cka_penalty: float = 0.0,
    monitor: Sequence[Any] = (),
    eval_data: Any = None,
    progress: bool = True,
    batch_size: int = 128,
    eval_every: int | None = None,
    monitor_samples: int = 256,
) -> StitchResult:
    """Task-loss matching: train the stitching layer through the back of B (paper Sec. 4.1).

    The loss is the cross-entropy of the stitched model's outputs to model B's softmax
    (``target="soft"``, the paper's choice, Hinton et al.'s soft labels) or to the labels
    (``"hard"``), plus ``l1 · mean|M|`` and ``cka_penalty · CKA(S(A), B)`` (linear CKA over
    the positions, nncompare's differentiable :func:`nncompare.cka`; paper Fig. 5). Only the
    stitching layer is trained, with Adam; the front of A runs once per batch without
    autograd and the parts of A and B stay in eval mode.

    Parameters
    ----------
    stitched : Stitched
    data : (inputs, labels), Dataset or DataLoader
        Training data. Arrays and datasets are reshuffled every epoch (from ``seed``); a
        DataLoader is used as given.
    target : {"soft", "hard"}, default "soft"
    temperature : float, default 1.0
        Softmax temperature of the soft target (both sides).
    init : {"ls", "identity", "random", "procrustes"} or None, default "ls"
        Starting point: the least-squares fit on ``data`` (rank-reduced for a ``"lowrank"``
        layer; the paper's most stable choice), the identity (equal widths), torch's default
        random initialisation from ``seed``, or the Procrustes fit. None: start from the
        stitching layer as it is (after a :func:`fit`, say).
    epochs : int, default 1
    lr : float, default 1e-3
        Adam's learning rate.
    seed : int, default 0
        Seeds the shuffling and the random initialisation (the caller's random state is
        left alone).
    l1 : float, default 0.0
        Weight of the L1 penalty mean|M| (paper Sec. 4.2, sparse matchings).
    cka_penalty : float, default 0.0
        Weight of CKA between the transformed activations and B's (positive values push
        CKA down; paper Sec. 6, Fig. 5).
    monitor : list of str or callable, default ()
        Similarity measures (registry names such as ``"cka"``, ``"lr_r2"``, ``"cca"``,
        ``"svcca"``, or functions f(X, Y)) between the transformed activations and B's,
        recorded at every evaluation step on a fixed batch (paper Fig. 4).
    eval_data : data, optional
        Held-out data, evaluated with :func:`evaluate` at every evaluation step and at the
        end (the result's accuracy fields). Without it the history's accuracy is the running
        training accuracy (to the labels, or agreement with B when there are none).
    progress : bool, default True
        Print one line per evaluation step to stderr.
    batch_size : int, default 128
    eval_every : int, optional
        Steps between history entries; default once per epoch. Step 0 is always recorded.
    monitor_samples : int, default 256
        Inputs in the fixed batch of the monitored measures.

    Returns
    -------
    StitchResult
        ``method="task"``, the trained matrix, ``history`` (one dict per evaluation step),
        and the final evaluation on ``eval_data`` when given.

    Raises
    ------
    ValueError
        For unknown ``target``/``init``, labels missing with ``target="hard"``, negative
        penalties, or the errors of :func:`fit` for ``init="ls"``/``"procrustes"``.
    """
    check_stitched(stitched, "nc.stitching.train")
    if target not in TARGETS:
        raise ValueError(f"Expected target to be one of {TARGETS}, got {target!r}.")
    if init is not None and init not in INITS:
        raise ValueError(f"Expected init to be one of {INITS}, got {init!r}.")
    temperature = _check_number("temperature", temperature, positive=True)
    lr = _check_number("lr", lr, positive=True)
    l1 = _check_number("l1", l1)
    cka_penalty = _check_number("cka_penalty", cka_penalty)
    epochs = _check_int("epochs", epochs)
    batch_size = _check_int("batch_size", batch_size)
    seed = _check_int("seed", seed, minimum=0)
    monitor_samples = _check_int("monitor_samples", monitor_samples)
    if eval_every is not None:
        eval_every = _check_int("eval_every", eval_every)
    measures = _resolve_monitor(monitor)
    for name, value in (("data", data), ("eval_data", eval_data)):
        if value is not None and _one_shot(value):
            raise TypeError(
                f"Expected {name} that can be iterated several times (arrays, (inputs, labels), "
                "a Dataset or a DataLoader), got a one-shot iterator "
                f"({type(value).__name__}): training reads the data once per epoch and for "
                "every evaluation. Materialise it first, e.g. as a DataLoader."
            )

    first_x, first_y = next(iter(_batches(stitched, data, batch_size)), (None, None))
    if first_x is None:
        raise ValueError("Expected training data with at least one sample, got none.")
    if target == "hard" and first_y is None:
        raise ValueError(
            "target='hard' trains on the labels, but the data has none. Pass (inputs, labels) "
            "or a Dataset/DataLoader yielding (x, y), or use target='soft' (model B's outputs)."
        )
    _initialise(stitched, data, init, seed, batch_size)
    init_method = stitched.method
    mon_src = eval_data if eval_data is not None else data
    mon_batch = next(iter(_batches(stitched, mon_src, monitor_samples, monitor_samples)))[0]

    layer = stitched.stitch_layer
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, Any]] = []
    run = {"loss": 0.0, "steps": 0, "correct": 0, "seen": 0}

    def record(step: int, epoch: int) -> None:
        entry: dict[str, Any] = {
            "step": step,
            "epoch": epoch,
            "loss": run["loss"] / run["steps"] if run["steps"] else None,
        }
        if eval_data is not None:
            ev = evaluate(stitched, eval_data, batch_size=max(batch_size, 256))
            entry.update(
                accuracy=ev.accuracy,
                relative_accuracy=ev.relative_accuracy,
                cross_entropy=ev.cross_entropy,
                agreement=ev.agreement,
            )
        else:
            entry["accuracy"] = run["correct"] / run["seen"] if run["seen"] else None
        entry.update(_monitor_values(stitched, mon_batch, measures))
        history.append(entry)
        run.update(loss=0.0, steps=0, correct=0, seen=0)
        if progress:
            shown = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in entry.items()
                if v is not None
            )
            print(f"stitching.train: {shown}", file=sys.stderr)

    record(0, 0)
    step = n_inputs = 0
    stitched.train(True)
    try:
        for epoch in range(1, epochs + 1):
            batches = _batches(stitched, _shuffled(data, batch_size, generator), batch_size)
            for i, (x, y) in enumerate(batches):
                y = _labels(y, i)
                with torch.no_grad():
                    a = stitched.front_a(x)
                    b_act = stitched.front_b(x) if (target == "soft" or cka_penalty) else None
                    soft = stitched.back_b(b_act) if target == "soft" else None
                z = stitched.transform(a)
                out = _logits(stitched.back_b(z), "task-loss training")
                if target == "hard":
                    if y is None:
                        raise ValueError(
                            f"target='hard' needs labels in every batch; batch {i} has none."
                        )
                    loss = F.cross_entropy(out / temperature, y)
                else:
                    loss = _soft_cross_entropy(out, _logits(soft, "soft targets"), temperature)
                if l1:
                    loss = loss + l1 * stitched.matrix_tensor().abs().mean()
                if cka_penalty:
                    from nncompare.measures.cka import cka

                    value = cka(channels_last_rows(z), channels_last_rows(b_act)).value
                    loss = loss + cka_penalty * value
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                if epoch == 1:
                    n_inputs += len(x)
                run["loss"] += float(loss.detach())
                run["steps"] += 1
                with torch.no_grad():
                    ref = y if y is not None else (soft.argmax(1) if soft is not None else None)
                    if ref is not None:
                        run["correct"] += int((out.argmax(1) == ref).sum())
                        run["seen"] += len(x)
                if eval_every is not None and step % eval_every == 0:
                    record(step, epoch)
            if eval_every is None or step % eval_every:
                record(step, epoch)
    finally:
        stitched.train(False)
    stitched.method = "task"
    result = (
        evaluate(stitched, eval_data, batch_size=max(batch_size, 256))
        if eval_data is not None
        else None
    )
    options: dict[str, Any] = {
        "target": target,
        "temperature": temperature,
        "init": init if init is not None else f"kept ({init_method})",
        "epochs": epochs,
        "lr": lr,
        "seed": seed,
        "l1": l1,
        "cka_penalty": cka_penalty,
        "batch_size": batch_size,
        "steps": step,
    }
    return StitchResult(
        method="task",
        matrix=stitched.matrix,
        bias=stitched.bias,
        layer_a=stitched.layer_a,
        layer_b=stitched.layer_b,
        kind=stitched.kind,
        rank=stitched.rank,
        resize=stitched.resize,
        options=options,
        n_samples=n_inputs,
        history=history,
        accuracy=None if result is None else result.accuracy,
        accuracy_b=None if result is None else result.accuracy_b,
        relative_accuracy=None if result is None else result.relative_accuracy,
        cross_entropy=None if result is None else result.cross_entropy,
        agreement=None if result is None else result.agreement,
    )
