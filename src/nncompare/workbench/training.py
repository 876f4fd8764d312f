"""A small, honest trainer for classification models.

:func:`train` runs plain mini-batch training with cross-entropy loss, records what
happened per epoch, and optionally writes checkpoints (plain state dicts) that the
comparison tools can load later, e.g. to follow representations through training.
:func:`evaluate` measures accuracy. Nothing global is changed: the trainer seeds a
forked copy of torch's random state and leaves thread settings alone.

Reproducibility: with the same initial weights, data, arguments and ``seed``, CPU
training gives bit-identical weights (on the same machine, torch version and number
of threads). GPU kernels may be non-deterministic unless you enable
``torch.use_deterministic_algorithms`` yourself.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nncompare._io import atomic_write
from nncompare.workbench.freeze import (
    FreezePlan,
    FreezeSchedule,
    as_schedule,
    counter,
    freeze_experiment,
    freeze_stages,
    summarize_freeze,
)

__all__ = [
    "EpochStats",
    "FreezeSchedule",
    "TrainResult",
    "evaluate",
    "freeze_experiment",
    "freeze_stages",
    "save_state_dict",
    "summarize_freeze",
    "train",
]


@dataclass(frozen=True)
class EpochStats:
    """What happened in one epoch.

    Attributes
    ----------
    epoch : int
        1-based epoch number.
    step : int
        Number of optimizer steps done by the end of this epoch.
    train_loss : float
        Mean cross-entropy over the epoch's mini-batches, measured *during* training
        (train mode, weights changing), weighted by batch size.
    train_accuracy : float
        Fraction of training samples classified correctly by the mini-batch forward
        passes during the epoch (same caveat as ``train_loss``).
    eval_loss, eval_accuracy : float or None
        Loss and accuracy on ``eval_data`` after the epoch, in eval mode; ``None``
        without ``eval_data``.
    lr : float
        Learning rate of the epoch's last step.
    seconds : float
        Wall-clock time of the epoch, evaluation included.
    samples : int
        Training samples seen in the epoch.
    frozen : tuple of str
        With ``freeze``: the stages that were frozen during the epoch's last step (a
        stage frozen after the epoch's last step appears from the next epoch on).
    backward_flops, backward_flops_saved : float or None
        With ``freeze``: backward-pass FLOPs spent in the epoch, and saved against the
        same steps with nothing frozen (counted with
        ``torch.utils.flop_counter.FlopCounterMode`` on the first batch of every
        freezing phase, scaled by the samples of each step); ``None`` without ``freeze``.
    """

    epoch: int
    step: int
    train_loss: float
    train_accuracy: float
    eval_loss: float | None
    eval_accuracy: float | None
    lr: float
    seconds: float
    samples: int = 0
    frozen: tuple[str, ...] = ()
    backward_flops: float | None = None
    backward_flops_saved: float | None = None


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    history : list of EpochStats
        One entry per epoch.
    checkpoints : list of pathlib.Path
        Checkpoint files written, in training order (empty without ``checkpoint_dir``).
    checkpoint_steps : list of int
        Optimizer step count at which each checkpoint was taken (0 = initial weights).
    final_train_accuracy : float
        Accuracy of the final model on the training data, in eval mode.
    final_eval_accuracy : float or None
        Accuracy of the final model on ``eval_data`` (``None`` without it).
    steps : int
        Total optimizer steps.
    seconds : float
        Total wall-clock time.
    seed : int
        The seed used.
    """

    history: list[EpochStats]
    checkpoints: list[Path]
    checkpoint_steps: list[int]
    final_train_accuracy: float
    final_eval_accuracy: float | None
    steps: int
    seconds: float
    seed: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def final_accuracy(self) -> float:
        """Final accuracy on ``eval_data`` if given, otherwise on the training data."""
        if self.final_eval_accuracy is not None:
            return self.final_eval_accuracy
        return self.final_train_accuracy


# --------------------------------------------------------------------------- data


class _TensorData:
    """Inputs and labels held as two tensors of the same length."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batches(
        self, batch_size: int, generator: torch.Generator | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        for start in range(0, n, batch_size):
            if order is None:
                yield self.x[start : start + batch_size], self.y[start : start + batch_size]
            else:
                idx = order[start : start + batch_size]
                yield self.x[idx], self.y[idx]


class _LoaderData:
    """A ``torch.utils.data.Dataset`` yielding ``(input, label)`` pairs."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def batches(
        self, batch_size: int, generator: torch.Generator | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=batch_size,
            shuffle=generator is not None,
            generator=generator,
        )
        for batch in loader:
            if not isinstance(batch, list | tuple) or len(batch) != 2:
                raise ValueError(
                    "a torch Dataset passed to train/evaluate must yield (input, label) pairs, "
                    f"got batches of type {type(batch).__name__}."
                )
            yield batch[0], batch[1]


def _as_tensor(a: Any, what: str, role: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a))
    raise TypeError(
        f"{what}: {role} must be a torch.Tensor or numpy.ndarray, got {type(a).__name__}."
    )


def _prepare(data: Any, what: str) -> _TensorData | _LoaderData:
    """Accept a Dataset-like (``.x``/``.y``), an ``(x, y)`` pair or a torch Dataset."""
    if hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    elif isinstance(data, list | tuple) and len(data) == 2:
        x, y = data
    elif isinstance(data, torch.utils.data.Dataset):
        if len(data) == 0:  # type: ignore[arg-type]
            raise ValueError(f"{what} is empty; it needs at least one sample.")
        return _LoaderData(data)
    else:
        raise TypeError(
            f"{what} must be an nncompare.data.Dataset (anything with .x and .y), an "
            f"(inputs, labels) pair of tensors/arrays, or a torch Dataset of (input, label) "
            f"pairs; got {type(data).__name__}."
        )
    if y is None:
        raise ValueError(
            f"{what} has no labels (y is None); train/evaluate need integer class labels. "
            "Load a labelled file (e.g. load_array_file(path, y_key='labels'))."
        )
    x = _as_tensor(x, what, "inputs")
    y = _as_tensor(y, what, "labels")
    if not x.is_floating_point():
        raise TypeError(
            f"{what}: inputs have dtype {x.dtype}, expected a floating dtype; convert first, "
            "e.g. x.float() / 255 for uint8 images."
        )
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        raise ValueError(
            f"{what}: labels must be a 1-D integer tensor of class indices, got shape "
            f"{tuple(y.shape)} and dtype {y.dtype}; convert with y.long()."
        )
    if x.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{what}: {tuple(x.shape)} inputs but {tuple(y.shape)} labels; the first axis of "
            "the inputs must have one entry per label."
        )
    if len(y) == 0:
        raise ValueError(f"{what} is empty; it needs at least one sample.")
    return _TensorData(x, y.long())


# --------------------------------------------------------------------------- helpers


def save_state_dict(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> Path:
    """Write a state dict with :func:`torch.save`, atomically.

    The tensors are moved to the CPU and written to a temporary file in the target
    directory, which then replaces ``path`` with :func:`os.replace`; readers never
    see a half-written file. Load it with
    ``torch.load(path, map_location="cpu", weights_only=True)``.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        E.g. ``model.state_dict()``.
    path : str or os.PathLike
        Destination file; its directory must exist.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    plain = {key: value.detach().to("cpu") for key, value in state_dict.items()}
    return atomic_write(path, lambda handle: torch.save(plain, handle))


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    for p in model.parameters():
        return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


@contextlib.contextmanager
def _keep_modes(model: nn.Module) -> Iterator[None]:
    """Restore every submodule's train/eval flag on exit."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def _loss_and_accuracy(
    model: nn.Module, data: _TensorData | _LoaderData, batch_size: int
) -> tuple[float, float]:
    dtype, device = _model_dtype_device(model)
    total_loss, correct, count = 0.0, 0, 0
    model.eval()
    with torch.no_grad():
        for xb, yb in data.batches(batch_size, None):
            xb = xb.to(device=device, dtype=dtype)
            yb = yb.to(device=device, dtype=torch.long)
            logits = model(xb)
            total_loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(dim=1) == yb).sum())
            count += len(yb)
    return total_loss / count, correct / count


def evaluate(model: nn.Module, data: Any, batch_size: int = 256) -> float:
    """Classification accuracy of ``model`` on ``data``, in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape ``(N, num_classes)``. It runs on the device of its
        parameters; the inputs are moved there and cast to the parameters' dtype.
    data : Dataset, (x, y) pair or torch Dataset
        Anything with ``.x`` and ``.y`` (e.g. :func:`nncompare.data.load_digits`), an
        ``(inputs, labels)`` pair of tensors or arrays, or a
        ``torch.utils.data.Dataset`` yielding ``(input, label)``.
    batch_size : int, default 256
        Samples per forward pass.

    Returns
    -------
    float
        Fraction of correctly classified samples, in [0, 1]. The model's train/eval
        flags are restored afterwards.
    """
    _check_positive("batch_size", batch_size)
    prepared = _prepare(data, "data")
    with _keep_modes(model):
        return _loss_and_accuracy(model, prepared, batch_size)[1]


def _check_positive(name: str, value: Any, kind: type = int) -> None:
    ok = isinstance(value, int | float) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok or not value > 0:
        raise ValueError(f"{name} must be a positive {kind.__name__}, got {value!r}.")


def _checkpoint_schedule(
    every: int | Sequence[int] | None, unit: str, epochs: int, steps_per_epoch: int
) -> set[int]:
    """Return the set of step counts (0 = before training) at which to save."""
    total_steps = epochs * steps_per_epoch
    scale = steps_per_epoch if unit == "epoch" else 1
    limit = epochs if unit == "epoch" else total_steps
    if every is None:
        marks: set[int] = set()
    elif isinstance(every, int) and not isinstance(every, bool):
        if every < 1:
            raise ValueError(
                f"checkpoint_every={every} must be a positive number of {unit}s, or a list of "
                f"{unit} numbers (0 = initial weights)."
            )
        marks = set(range(every, limit + 1, every))
    else:
        try:
            values = [int(v) for v in every]  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise TypeError(
                f"checkpoint_every must be None, an int or a list of ints, got {every!r}."
            ) from None
        bad = [v for v in values if not 0 <= v <= limit]
        if bad:
            raise ValueError(
                f"checkpoint_every lists {unit}s {bad} outside 0..{limit} (training runs "
                f"{limit} {unit}s); pass {unit} numbers in that range (0 = initial weights)."
            )
        marks = set(values)
    return {m * scale for m in marks} | {total_steps}


def _checkpoint_name(unit: str, step: int, steps_per_epoch: int) -> str:
    if unit == "epoch" and step % steps_per_epoch == 0:
        return f"epoch{step // steps_per_epoch:04d}.pt"
    return f"step{step:07d}.pt"


# --------------------------------------------------------------------------- train


def train(
    model: nn.Module,
    train_data: Any,
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 64,
    optimizer: Literal["sgd", "adam"] = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    lr_schedule: Literal["constant", "cosine"] = "constant",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | Sequence[int] | None = None,
    checkpoint_unit: Literal["epoch", "step"] = "epoch",
    eval_data: Any = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    freeze: Literal["linear"] | FreezeSchedule | None = None,
) -> TrainResult:
    """Train a classifier in place with mini-batch SGD or Adam and cross-entropy loss.

    Parameters
    ----------
    model : torch.nn.Module
        Maps inputs to logits ``(N, num_classes)``. Trained in place and moved to
        ``device``; its train/eval flags are restored at the end.
    train_data : Dataset, (x, y) pair or torch Dataset
        Anything with ``.x`` and ``.y`` (e.g. :func:`nncompare.data.load_digits`), an
        ``(inputs, labels)`` pair of tensors/arrays, or a ``torch.utils.data.Dataset``
        yielding ``(input, label)``. Inputs are cast to the model's dtype.
    epochs : int
        Passes over the training data.
    lr : float
        (Initial) learning rate.
    seed : int
        Seeds the shuffling and any randomness inside the model (dropout) through a
        forked copy of torch's global generator; the caller's random state is left
        untouched. Same seed and same initial weights give bit-identical weights on CPU.
    batch_size : int, default 64
        Mini-batch size; the last batch of an epoch may be smaller.
    optimizer : {"sgd", "adam"}, default "sgd"
        ``torch.optim.SGD`` (with ``momentum``) or ``torch.optim.Adam``.
    momentum : float, default 0.9
        SGD momentum (ignored by Adam).
    weight_decay : float, default 0.0
        L2 penalty passed to the optimizer.
    lr_schedule : {"constant", "cosine"}, default "constant"
        ``"cosine"`` anneals the learning rate per step as
        ``lr * (1 + cos(pi * t / T)) / 2`` for step ``t`` of ``T`` (Loshchilov &
        Hutter 2017, without restarts), which makes the final weights much less
        sensitive to the last few noisy steps.
    checkpoint_dir : str or os.PathLike, optional
        Directory (created if needed) for checkpoints: plain state dicts written
        atomically with :func:`save_state_dict`, named ``epoch0003.pt`` or
        ``step0000120.pt``. The final weights are always saved when this is set.
    checkpoint_every : int or sequence of int, optional
        An int ``k`` saves every ``k`` epochs (or steps, see ``checkpoint_unit``); a
        sequence lists the exact epochs (or steps) to save, ``0`` meaning the initial
        weights. Needs ``checkpoint_dir``.
    checkpoint_unit : {"epoch", "step"}, default "epoch"
        Unit of ``checkpoint_every``; steps allow fine checkpoints early in training.
    eval_data : Dataset, (x, y) pair or torch Dataset, optional
        Evaluated after every epoch (loss and accuracy in eval mode).
    device : str or torch.device, default "cpu"
        Where to train.
    progress : bool, default False
        Print one line per epoch to standard error.
    freeze : {"linear"} or FreezeSchedule, optional
        Freeze Training (Raghu et al. 2017, §4.2): ``"linear"`` freezes stage ``i`` of
        ``L`` after ``i / L`` of the steps (stages: :func:`freeze_stages`, e.g. the
        blocks of a ResNet); a :class:`FreezeSchedule` names stages and fractions.
        Frozen stages get ``requires_grad=False`` (no gradient is computed for them)
        and eval mode (batch-norm statistics stop too), so their state stays
        bit-identical; the flags are restored after training. Every epoch records
        ``frozen``, ``backward_flops`` and ``backward_flops_saved``; ``info["freeze"]``
        holds the stages, their freezing steps and the FLOPs per sample of each phase.

    Returns
    -------
    TrainResult
        Per-epoch history, checkpoint paths and final accuracies.

    Raises
    ------
    FloatingPointError
        If the loss becomes NaN or infinite (lower ``lr``).

    Examples
    --------
    >>> import torch
    >>> from nncompare.data import load_digits
    >>> from nncompare.models import SmallCNN
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = SmallCNN()
    >>> result = train(net, load_digits("train"), epochs=10, lr=0.1, seed=0,
    ...                lr_schedule="cosine", eval_data=load_digits("test"))
    >>> result.final_accuracy > 0.9
    True
    """
    _check_positive("epochs", epochs)
    _check_positive("batch_size", batch_size)
    _check_positive("lr", lr, float)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {seed!r}; e.g. seed=0.")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}.")
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}.")
    if checkpoint_unit not in ("epoch", "step"):
        raise ValueError(f"checkpoint_unit must be 'epoch' or 'step', got {checkpoint_unit!r}.")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError(
            "checkpoint_every was given but checkpoint_dir is None; pass "
            "checkpoint_dir='path/to/dir' to say where checkpoints go."
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no trainable parameters (requires_grad=True).")

    schedule = as_schedule(freeze)
    train_set = _prepare(train_data, "train_data")
    eval_set = _prepare(eval_data, "eval_data") if eval_data is not None else None
    steps_per_epoch = math.ceil(len(train_set) / batch_size)
    total_steps = epochs * steps_per_epoch
    plan = FreezePlan(schedule, model, total_steps) if schedule is not None else None
    save_at: set[int] = set()
    ckpt_dir: Path | None = None
    if checkpoint_dir is not None:
        ckpt_dir = Path(checkpoint_dir)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        save_at = _checkpoint_schedule(checkpoint_every, checkpoint_unit, epochs, steps_per_epoch)

    device = torch.device(device)
    model.to(device)
    dtype, _ = _model_dtype_device(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    else:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

    checkpoints: list[Path] = []
    checkpoint_steps: list[int] = []

    def maybe_save(step: int) -> None:
        if ckpt_dir is not None and step in save_at:
            name = _checkpoint_name(checkpoint_unit, step, steps_per_epoch)
            checkpoints.append(save_state_dict(model.state_dict(), ckpt_dir / name))
            checkpoint_steps.append(step)

    cuda_devices: list[int] = []
    if device.type == "cuda":
        cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    history: list[EpochStats] = []
    start = time.perf_counter()
    step = 0
    current_lr = float(lr)
    with (
        _keep_modes(model),
        torch.random.fork_rng(devices=cuda_devices),
        contextlib.ExitStack() as restore,
    ):
        if plan is not None:
            restore.callback(plan.restore)
        # seed only the generators that fork_rng restores (torch.manual_seed would also
        # reseed every CUDA device for good)
        torch.default_generator.manual_seed(int(seed))
        for index in cuda_devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(int(seed))
        shuffle = torch.Generator().manual_seed(int(seed))
        maybe_save(0)
        for epoch in range(1, epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            if plan is not None:
                plan.keep_eval()
            loss_sum, correct, seen = 0.0, 0, 0
            spent_flops = saved_flops = 0.0
            for xb, yb in train_set.batches(batch_size, shuffle):
                if plan is not None:
                    plan.update(step)
                if lr_schedule == "cosine":
                    current_lr = lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
                    for group in opt.param_groups:
                        group["lr"] = current_lr
                xb = xb.to(device=device, dtype=dtype)
                yb = yb.to(device=device, dtype=torch.long)
                opt.zero_grad(set_to_none=True)
                count = plan is not None and plan.needs_count()
                with counter() if count else contextlib.nullcontext() as fwd:
                    logits = model(xb)
                    loss = F.cross_entropy(logits, yb)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"training loss became {float(loss.detach())} at epoch {epoch}, step "
                        f"{step + 1}; the run diverged. Lower the learning rate (lr={lr}) "
                        "or check the inputs for NaN/inf."
                    )
                with counter() if count else contextlib.nullcontext() as bwd:
                    if loss.requires_grad:  # False once a schedule froze every stage
                        loss.backward()
                if plan is not None:
                    if count:
                        plan.record(fwd.get_total_flops(), bwd.get_total_flops(), len(yb))
                    spent, saved = plan.step_flops(len(yb))
                    spent_flops += spent
                    saved_flops += saved
                opt.step()
                step += 1
                loss_sum += float(loss.detach()) * len(yb)
                correct += int((logits.detach().argmax(dim=1) == yb).sum())
                seen += len(yb)
                maybe_save(step)
            eval_loss = eval_acc = None
            if eval_set is not None:
                eval_loss, eval_acc = _loss_and_accuracy(model, eval_set, 256)
            stats = EpochStats(
                epoch=epoch,
                step=step,
                train_loss=loss_sum / seen,
                train_accuracy=correct / seen,
                eval_loss=eval_loss,
                eval_accuracy=eval_acc,
                lr=current_lr,
                seconds=time.perf_counter() - epoch_start,
                samples=seen,
                frozen=tuple(plan.frozen) if plan is not None else (),
                backward_flops=spent_flops if plan is not None else None,
                backward_flops_saved=saved_flops if plan is not None else None,
            )
            history.append(stats)
            if progress:
                extra = "" if eval_acc is None else f"  eval_acc {eval_acc:.4f}"
                print(
                    f"epoch {epoch}/{epochs}  loss {stats.train_loss:.4f}  "
                    f"acc {stats.train_accuracy:.4f}{extra}  {stats.seconds:.1f}s",
                    file=sys.stderr,
                )
        final_train = _loss_and_accuracy(model, train_set, 256)[1]
        if eval_set is None:
            final_eval = None
        elif history[-1].eval_accuracy is not None:
            final_eval = history[-1].eval_accuracy
        else:  # pragma: no cover - eval runs every epoch
            final_eval = _loss_and_accuracy(model, eval_set, 256)[1]

    return TrainResult(
        history=history,
        checkpoints=checkpoints,
        checkpoint_steps=checkpoint_steps,
        final_train_accuracy=final_train,
        final_eval_accuracy=final_eval,
        steps=step,
        seconds=time.perf_counter() - start,
        seed=int(seed),
        info={
            "optimizer": optimizer,
            "lr": lr,
            "lr_schedule": lr_schedule,
            "batch_size": batch_size,
            "epochs": epochs,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "device": str(device),
            **({"freeze": plan.info()} if plan is not None else {}),
        },
    )
