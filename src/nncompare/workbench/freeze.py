"""Freeze Training (Raghu et al. 2017, §4.2): freeze lower layers one after another.

Networks converge bottom-up, so the lower layers can stop learning early. A
:class:`FreezeSchedule` names the model's *stages* (by default the parameterised
top-level children in forward order, a norm layer joined to the stage before it, and a
container of blocks such as a ResNet stage split into its blocks) and the fraction of
training after which each one is frozen. The ``"linear"`` schedule freezes stage ``i``
of ``L`` at fraction ``i / L`` (the last stage trains to the end).

Frozen means frozen for real: the stage's parameters get ``requires_grad=False`` (autograd
then computes no gradient for them and, as the lower stages freeze first, no gradient
flows through them either, so the backward pass really gets cheaper), and the stage is
put in eval mode, so its batch-norm statistics stop moving too: its whole state dict
stays bit-identical. :func:`nncompare.training.train` takes ``freeze="linear"`` or a
schedule, records per epoch which stages were frozen and counts the backward FLOPs spent
and saved (``torch.utils.flop_counter.FlopCounterMode`` on the first batch of every
phase). :func:`freeze_experiment` compares Freeze Training with normal training over
several seeds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nncompare.analyses.freeze import summarize_freeze

__all__ = ["FreezeSchedule", "freeze_experiment", "freeze_stages", "summarize_freeze"]

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def freeze_stages(model: nn.Module) -> list[tuple[str, tuple[str, ...]]]:
    """The default stages of ``model`` for Freeze Training, in forward order.

    Top-level children with parameters, in registration order (which is forward order for
    ``nn.Sequential`` and for the reference architectures); a normalisation layer
    (BatchNorm, LayerNorm, GroupNorm) joins the stage before it (``conv1`` + ``bn1``); a
    ``nn.Sequential`` or ``nn.ModuleList`` child whose children all have parameters (a
    ResNet stage of blocks) is split into its blocks (``layer1.0``, ``layer1.1``, ...).

    Parameters
    ----------
    model : torch.nn.Module
        The network.

    Returns
    -------
    list of (str, tuple of str)
        Per stage its name (its first module) and the module names it holds.

    Examples
    --------
    >>> from nncompare.models import SmallCNN
    >>> [name for name, _ in freeze_stages(SmallCNN())]
    ['conv1', 'conv2', 'fc']
    """
    stages: list[list[str]] = []
    for name, child in model.named_children():
        if not _has_params(child):
            continue
        if isinstance(child, _NORMS) and stages:
            stages[-1].append(name)
            continue
        kids = list(child.named_children())
        if (
            isinstance(child, nn.Sequential | nn.ModuleList)
            and kids
            and all(_has_params(k) and not isinstance(k, _NORMS) for _, k in kids)
        ):
            stages.extend([f"{name}.{sub}"] for sub, _ in kids)
            continue
        stages.append([name])
    return [(names[0], tuple(names)) for names in stages]


@dataclass(frozen=True)
class FreezeSchedule:
    """When each stage of a model stops training.

    Parameters
    ----------
    stages : sequence of str or of sequences of str, optional
        The stages in forward order, each a module name or a group of module names
        (``[["conv1", "bn1"], "conv2", ...]``). Default: :func:`freeze_stages`.
    fractions : sequence of float, optional
        Per stage, the fraction of the training steps after which it is frozen, in
        ``[0, 1]`` and non-decreasing (1 = never frozen). Default (``"linear"``): stage
        ``i`` of ``L`` (1-based) at ``i / L``.

    Examples
    --------
    >>> from nncompare.models import SmallCNN
    >>> FreezeSchedule.linear().steps(SmallCNN(), total_steps=90)
    [('conv1', 30), ('conv2', 60), ('fc', 90)]
    """

    stages: Sequence[str | Sequence[str]] | None = None
    fractions: Sequence[float] | None = None

    @classmethod
    def linear(cls, stages: Sequence[str | Sequence[str]] | None = None) -> FreezeSchedule:
        """The paper's linear regime: stage ``i`` of ``L`` freezes at fraction ``i / L``."""
        return cls(stages=stages)

    def resolve(self, model: nn.Module) -> list[tuple[str, tuple[str, ...], float]]:
        """Per stage: name, module names and freezing fraction, checked against ``model``."""
        if self.stages is None:
            groups = freeze_stages(model)
        else:
            if isinstance(self.stages, str):
                raise TypeError(
                    f"FreezeSchedule(stages=...) takes a list of module names or of groups "
                    f"of names, got the string {self.stages!r}; write [{self.stages!r}]."
                )
            groups = []
            for entry in self.stages:
                names = (entry,) if isinstance(entry, str) else tuple(entry)
                if not names or not all(isinstance(n, str) for n in names):
                    raise TypeError(
                        "FreezeSchedule(stages=...) entries must be module names or non-empty "
                        f"lists of them, got {entry!r}."
                    )
                groups.append((names[0], names))
        if not groups:
            raise ValueError(
                f"the model ({type(model).__name__}) has no parameterised top-level stages to "
                "freeze; pass FreezeSchedule(stages=[...]) with module names."
            )
        modules = dict(model.named_modules())
        for _, names in groups:
            for n in names:
                if n not in modules:
                    raise ValueError(
                        f"FreezeSchedule names module {n!r}, which the model "
                        f"({type(model).__name__}) does not have; use names from "
                        "model.named_modules(), e.g. those of "
                        f"freeze_stages(model): {[s for s, _ in freeze_stages(model)]}."
                    )
        L = len(groups)
        if self.fractions is None:
            fractions = [i / L for i in range(1, L + 1)]
        else:
            fractions = [float(f) for f in self.fractions]
            if len(fractions) != L:
                raise ValueError(
                    f"FreezeSchedule has {len(fractions)} fractions for {L} stages; give one "
                    "fraction per stage."
                )
            if any(not 0.0 <= f <= 1.0 for f in fractions) or any(
                b < a for a, b in itertools.pairwise(fractions)
            ):
                raise ValueError(
                    f"FreezeSchedule fractions must lie in [0, 1] and not decrease (lower "
                    f"stages freeze first), got {fractions}."
                )
        return [(name, names, f) for (name, names), f in zip(groups, fractions, strict=True)]

    def steps(self, model: nn.Module, total_steps: int) -> list[tuple[str, int]]:
        """Per stage, the number of optimizer steps after which it is frozen."""
        return [(name, round(f * total_steps)) for name, _, f in self.resolve(model)]


def as_schedule(freeze: Any) -> FreezeSchedule | None:
    """``None``, ``"linear"`` or a :class:`FreezeSchedule` -> a schedule (or None)."""
    if freeze is None or isinstance(freeze, FreezeSchedule):
        return freeze
    if freeze == "linear":
        return FreezeSchedule.linear()
    raise ValueError(
        f"freeze must be None, 'linear' or a nncompare.training.FreezeSchedule, got {freeze!r}."
    )


class FreezePlan:
    """The trainer's side of a schedule: freezes stages as the steps pass, counts FLOPs."""

    def __init__(self, schedule: FreezeSchedule, model: nn.Module, total_steps: int) -> None:
        self.model = model
        modules = dict(model.named_modules())
        self.stages = [
            (name, [modules[n] for n in names], round(f * total_steps))
            for name, names, f in schedule.resolve(model)
        ]
        self.frozen: list[str] = []
        self._saved_flags: list[tuple[nn.Parameter, bool]] = []
        # per phase (number of frozen stages): backward FLOPs per sample
        self.backward_per_sample: dict[int, float] = {}
        self.forward_per_sample: dict[int, float] = {}

    @property
    def phase(self) -> int:
        return len(self.frozen)

    def update(self, step: int) -> None:
        """Freeze every stage whose freezing step has been reached (before ``step + 1``)."""
        for name, modules, at in self.stages[len(self.frozen) :]:
            if step < at:
                break
            for module in modules:
                for p in module.parameters():
                    self._saved_flags.append((p, p.requires_grad))
                    p.requires_grad_(False)
                    p.grad = None
                module.eval()
            self.frozen.append(name)

    def keep_eval(self) -> None:
        """Put frozen stages back in eval mode (after ``model.train()``)."""
        for _, modules, _ in self.stages[: len(self.frozen)]:
            for module in modules:
                module.eval()

    def restore(self) -> None:
        """Give the parameters their ``requires_grad`` flags back (after training)."""
        for p, flag in reversed(self._saved_flags):
            p.requires_grad_(flag)
        self._saved_flags.clear()

    def needs_count(self) -> bool:
        return self.phase not in self.backward_per_sample

    def record(self, forward: float, backward: float, batch: int) -> None:
        self.forward_per_sample[self.phase] = forward / batch
        self.backward_per_sample[self.phase] = backward / batch

    def step_flops(self, batch: int) -> tuple[float, float]:
        """Backward FLOPs spent and saved (against phase 0, nothing frozen) by one step."""
        spent = self.backward_per_sample[self.phase] * batch
        full = self.backward_per_sample.get(0, self.backward_per_sample[self.phase]) * batch
        return spent, full - spent

    def info(self) -> dict[str, Any]:
        return {
            "stages": [name for name, _, _ in self.stages],
            "freeze_steps": [at for _, _, at in self.stages],
            "backward_flops_per_sample": dict(self.backward_per_sample),
            "forward_flops_per_sample": dict(self.forward_per_sample),
        }


def counter() -> FlopCounterMode:
    """A quiet FLOP counter (no table printed)."""
    return FlopCounterMode(display=False)


# --------------------------------------------------------------------------- experiment


def freeze_experiment(
    make_model: Callable[[], nn.Module],
    train_data: Any,
    eval_data: Any,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    name: str = "model",
    freeze: str | FreezeSchedule = "linear",
    **train_kwargs: Any,
) -> tuple[Any, Any]:
    """Freeze Training against normal training, same initial weights, several seeds.

    For every seed the model is built by ``make_model()`` under ``torch.manual_seed(seed)``
    (in a forked random state; the caller's is untouched), copied, and trained once
    normally and once with ``freeze``, with the same data order.

    Parameters
    ----------
    make_model : callable
        Returns a fresh (untrained) model.
    train_data, eval_data : Dataset or (x, y)
        As for :func:`nncompare.training.train`; ``eval_data`` gives the test accuracy.
    seeds : sequence of int, default (0, 1, 2)
        At least one seed; use three or more for a spread.
    name : str, default "model"
        Value of the ``model`` column.
    freeze : "linear" or FreezeSchedule, default "linear"
        The schedule of the frozen runs.
    **train_kwargs
        ``epochs``, ``lr`` and any other argument of :func:`~nncompare.training.train`.

    Returns
    -------
    runs : pandas.DataFrame
        One row per (seed, mode): ``model, mode ("normal"/"freeze"), seed,
        test_accuracy, train_accuracy, backward_flops, backward_flops_saved,
        saved_fraction, seconds``. Normal runs count their backward FLOPs as the frozen
        runs' phase 0 (nothing frozen) times the samples seen.
    history : pandas.DataFrame
        One row per (seed, mode, epoch): ``model, mode, seed, epoch, step,
        eval_accuracy, train_loss, frozen (comma-joined), backward_flops,
        backward_flops_saved, seconds``.
    """
    import copy

    import pandas as pd

    from nncompare.workbench.training import train

    if not seeds:
        raise ValueError("freeze_experiment needs at least one seed, got an empty list.")
    schedule = as_schedule(freeze)
    runs: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            base = make_model()
        results = {}
        for mode in ("freeze", "normal"):
            net = copy.deepcopy(base)
            results[mode] = train(
                net,
                train_data,
                seed=int(seed),
                eval_data=eval_data,
                freeze=schedule if mode == "freeze" else None,
                **train_kwargs,
            )
        per_sample = results["freeze"].info["freeze"]["backward_flops_per_sample"][0]
        for mode, res in results.items():
            for e in res.history:
                spent = e.backward_flops
                saved = e.backward_flops_saved
                if mode == "normal":
                    spent = per_sample * e.samples
                    saved = 0.0
                history.append(
                    {
                        "model": name,
                        "mode": mode,
                        "seed": int(seed),
                        "epoch": e.epoch,
                        "step": e.step,
                        "eval_accuracy": e.eval_accuracy,
                        "train_loss": e.train_loss,
                        "frozen": ",".join(e.frozen),
                        "backward_flops": spent,
                        "backward_flops_saved": saved,
                        "seconds": e.seconds,
                    }
                )
            spent = sum(h["backward_flops"] for h in history if _same(h, name, mode, seed))
            saved = sum(h["backward_flops_saved"] for h in history if _same(h, name, mode, seed))
            runs.append(
                {
                    "model": name,
                    "mode": mode,
                    "seed": int(seed),
                    "test_accuracy": res.final_eval_accuracy,
                    "train_accuracy": res.final_train_accuracy,
                    "backward_flops": spent,
                    "backward_flops_saved": saved,
                    "saved_fraction": saved / (spent + saved) if spent + saved else math.nan,
                    "seconds": res.seconds,
                }
            )
    return pd.DataFrame(runs), pd.DataFrame(history)


def _same(row: dict[str, Any], name: str, mode: str, seed: int) -> bool:
    return row["model"] == name and row["mode"] == mode and row["seed"] == int(seed)
