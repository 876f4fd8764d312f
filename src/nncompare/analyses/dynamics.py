"""Learning dynamics (Raghu et al. 2017, §4.1, Fig. 4, App. D): every layer at every
checkpoint against every layer of the final network.

:func:`learning_dynamics` runs on the one engine (:mod:`nncompare.analyses.engine`): each
checkpoint is one source, the final network another, and one pass over the data feeds
every batch once through each of them, so the final network's activations are captured
once and each checkpoint's once. :func:`convergence_steps` reads off, per layer, the first
checkpoint from which the layer stays above a similarity threshold against itself at the
end (bottom-up convergence as numbers).

Cross-model comparison with the DFT (§4.4, Fig. 7, App. E) needs no function of its own:
a conv net against a ResNet, layer × layer, is :func:`nncompare.compare_models` with
``conv="dft"``. Layers of different spatial sizes are compared on the frequencies both
have (the larger map's spectrum is cropped to the smaller one, the resize path of
:mod:`nncompare.measures.conv`)::

    import nncompare as nc

    df = nc.compare_models(convnet, resnet, x, measures=["svcca"], conv="dft")
    df.pivot(index="layer_a", columns="layer_b", values="value")
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nncompare._io import read_state_dict, state_dict_from
from nncompare.analyses.compare import _as_list, _describe, default_layers
from nncompare.analyses.engine import (
    Pair,
    Progress,
    capture_sources,
    evaluate,
    tidy_frame,
    tidy_rows,
    validate_executor,
)
from nncompare.analyses.engine import provenance as run_provenance
from nncompare.analyses.grid import parse_measures
from nncompare.measures._registry import get as get_measure

__all__ = ["DYNAMICS_COLUMNS", "convergence_steps", "learning_dynamics"]

#: the leading columns of :func:`learning_dynamics`'s frame
DYNAMICS_COLUMNS = ("checkpoint", "step", "layer_a", "layer_b", "measure", "value")


def _checkpoint_list(checkpoints: Any) -> tuple[list[Any], list[int] | None]:
    """The checkpoints as a list, and the steps a training result carries with them."""
    if hasattr(checkpoints, "checkpoints") and hasattr(checkpoints, "checkpoint_steps"):
        return list(checkpoints.checkpoints), [int(s) for s in checkpoints.checkpoint_steps]
    if isinstance(checkpoints, str | bytes) or hasattr(checkpoints, "__fspath__"):
        folder = Path(checkpoints)  # type: ignore[arg-type]
        if folder.is_dir():
            files = sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth"))
            if not files:
                raise ValueError(
                    f"expected checkpoint files (*.pt, *.pth) in {str(folder)!r}, found none; "
                    "pass a folder that nncompare.training.train(checkpoint_dir=...) wrote, or "
                    "a list of state dicts or paths in training order."
                )
            return sorted(files, key=lambda p: p.name), None
        return [folder], None
    if isinstance(checkpoints, Mapping):
        raise TypeError(
            "checkpoints must be a sequence of state dicts or paths in training order (or a "
            "TrainResult); got a single mapping. Wrap one state dict in a list: [state]."
        )
    return list(checkpoints), None


def _label(ck: Any, i: int) -> str:
    if isinstance(ck, str | bytes) or hasattr(ck, "__fspath__"):
        return Path(ck).stem  # type: ignore[arg-type]
    return str(i)


def _load(model: Any, ck: Any, label: str) -> Any:
    m = copy.deepcopy(model)
    if isinstance(ck, Mapping):
        state = state_dict_from(ck, source=f"checkpoint {label!r}")
    elif isinstance(ck, str | bytes) or hasattr(ck, "__fspath__"):
        state = read_state_dict(ck, what=f"checkpoint {label!r}")
    else:
        raise TypeError(
            f"checkpoint {label!r} must be a state dict or a path to one (weights only); got "
            f"{type(ck).__name__}."
        )
    m.load_state_dict(state)
    m.eval()
    return m


def learning_dynamics(
    model: Any,
    checkpoints: Any,
    data: Any,
    layers: Sequence[str] | str | None = None,
    measure: str | Sequence[str] | Mapping[str, Mapping[str, Any]] = "svcca",
    *,
    final: Any = None,
    steps: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    conv: str = "mean",
    batch_size: int = 256,
    device: Any = None,
    max_samples: int | None = None,
    progress: bool = False,
    executor: Any = None,
) -> Any:
    """Every layer at every checkpoint against every layer of the final network.

    Raghu et al. 2017 §4.1 (Fig. 4): the layers × layers grid at each point of training,
    against the converged network; its diagonal (a layer against itself at the end) gives
    the per-layer convergence curves (:func:`convergence_steps`).

    Parameters
    ----------
    model : torch.nn.Module
        An instance of the architecture; it is copied, never modified.
    checkpoints : sequence of state dicts or paths, a folder, or a TrainResult
        In training order. Paths are read weights-only (``torch.load(weights_only=True)``);
        a folder means its ``*.pt`` / ``*.pth`` files sorted by name (the trainer's
        ``epoch0003.pt`` / ``step0000120.pt`` names sort in order); the result of
        :func:`nncompare.training.train` gives its checkpoints and their steps.
    data : tensor, ndarray, (x, y), Dataset or DataLoader
        Inputs, fed in batches (see :func:`nncompare.capture.iter_batches`).
    layers : list of names or glob patterns, optional
        Default: the block outputs (as :func:`nncompare.compare_models`).
    measure : str, list or {name: {option: value}}, default "svcca"
        Registry names (``nc.measures.names()``), with options as in ``compare_models``.
    final : state dict or path, optional
        The final network. Default: the last checkpoint (its activations are then the
        reference, captured once, and its own row is the grid against itself).
    steps : list of int, optional
        Training step of each checkpoint (the ``step`` column and the convergence steps).
        Default: the TrainResult's ``checkpoint_steps``, else 0, 1, 2, ...
    labels : list of str, optional
        Names of the checkpoints (``checkpoint`` column). Default: the file stems, else
        "0", "1", ....
    conv : {"mean", "samples", "flatten", "dft"}
        Reshape policy for convolutional outputs, as in ``compare_models``.
    batch_size, device, max_samples, progress, executor
        As in :func:`nncompare.compare_models`.

    Returns
    -------
    pandas.DataFrame
        One row per (checkpoint, layer_a, layer_b, measure): ``checkpoint``, ``step``,
        ``layer_a`` (at the checkpoint), ``layer_b`` (in the final network), ``measure``,
        ``value``, then ``distance``, ``policy``, ``n_samples``, ``error`` and ``note`` as
        in ``compare_models``. ``attrs`` holds ``checkpoints``, ``steps``, ``layers``,
        ``final``, ``measures`` and ``provenance``.

    Notes
    -----
    One pass over the data: each batch goes once through every checkpoint and once
    through the final network (the last checkpoint is not run twice). The streaming
    measures keep one joint product of all recorded layers of all checkpoints, so memory
    grows with (checkpoints × total width)²; for many wide checkpoints, call it on groups
    of checkpoints (the values of a pair do not depend on the other checkpoints).

    Examples
    --------
    >>> result = nc.training.train(net, train_set, epochs=10, lr=0.05,
    ...                            checkpoint_dir="ckpt", checkpoint_every=1)  # doctest: +SKIP
    >>> df = nc.analyses.learning_dynamics(net, result, test_x)  # doctest: +SKIP
    >>> nc.analyses.convergence_steps(df, threshold=0.9)  # doctest: +SKIP
    """
    spec = parse_measures(measure)
    run = validate_executor(executor)
    ckpts, given_steps = _checkpoint_list(checkpoints)
    if not ckpts:
        raise ValueError(
            "checkpoints is empty; pass at least one state dict or path, in training order."
        )
    if labels is None:
        labels = [_label(c, i) for i, c in enumerate(ckpts)]
    labels = [str(lab) for lab in labels]
    if len(labels) != len(ckpts) or len(set(labels)) != len(labels):
        raise ValueError(
            f"labels must be unique, one per checkpoint: got {len(labels)} label(s) "
            f"({len(set(labels))} distinct) for {len(ckpts)} checkpoint(s); pass labels= "
            "with one distinct name each."
        )
    if steps is None:
        steps = given_steps if given_steps is not None else list(range(len(ckpts)))
    steps = [int(s) for s in steps]
    if len(steps) != len(ckpts):
        raise ValueError(
            f"steps must give one training step per checkpoint: got {len(steps)} for "
            f"{len(ckpts)} checkpoint(s)."
        )
    if any(b < a for a, b in itertools.pairwise(steps)):
        raise ValueError(
            f"checkpoints must be in training order, but their steps decrease: {steps}; "
            "sort the checkpoints (and steps) by training step."
        )
    layer_list = default_layers(model) if layers is None else _as_list(layers)
    models: dict[str, tuple[Any, list[str]]] = {
        lab: (_load(model, ck, lab), layer_list) for lab, ck in zip(labels, ckpts, strict=True)
    }
    if final is None:
        final_label = labels[-1]
    else:
        final_label = "final"
        while final_label in models:
            final_label += "'"
        models[final_label] = (_load(model, final, final_label), layer_list)
    keep_arrays = any(not get_measure(m).streaming for m in spec)

    def make_pairs(found: dict[str, list[str]]) -> list[Pair]:
        return [
            ((lab, a), (final_label, b))
            for lab in labels
            for a in found[lab]
            for b in found[final_label]
        ]

    bar = Progress(progress)
    acc = capture_sources(
        models,
        data,
        conv=conv,
        batch_size=batch_size,
        device=device,
        progress=bar,
        max_samples=max_samples,
        keep_arrays=keep_arrays,
        pairs=make_pairs,
        defaulted=list(models) if layers is None else (),
    )
    outcomes = evaluate(acc, acc.pairs, spec, executor=run, progress=bar)
    step_of = dict(zip(labels, steps, strict=True))
    rows = tidy_rows(
        acc,
        acc.pairs,
        outcomes,
        lambda p: {
            "checkpoint": p[0][0],
            "step": step_of[p[0][0]],
            "layer_a": p[0][1],
            "layer_b": p[1][1],
        },
        details=False,
    )
    df = tidy_frame(rows)
    df.attrs["checkpoints"] = list(labels)
    df.attrs["steps"] = list(steps)
    df.attrs["layers"] = list(acc.layers[labels[0]])
    df.attrs["final"] = final_label if final is not None else f"{final_label} (last checkpoint)"
    df.attrs["measures"] = {m: dict(opts) for m, opts in spec.items()}
    df.attrs["provenance"] = run_provenance(
        {
            "analysis": "learning dynamics (Raghu et al. 2017, section 4.1)",
            "model": _describe(model),
            "checkpoints": list(labels),
            "steps": list(steps),
            "n_samples": acc.n_samples,
            "conv_policy": conv,
            "batch_size": batch_size,
        }
    )
    return df


def convergence_steps(df: Any, threshold: float = 0.9, *, measure: str | None = None) -> Any:
    """Per layer, the first checkpoint from which the layer stays above ``threshold``.

    Reads the diagonal of :func:`learning_dynamics`'s frame (each layer at each checkpoint
    against itself in the final network).

    Parameters
    ----------
    df : pandas.DataFrame
        The frame of :func:`learning_dynamics`.
    threshold : float, default 0.9
        Similarity the layer must reach and keep at every later checkpoint.
    measure : str, optional
        Which measure (default: the only one, else ``"svcca"`` if present).

    Returns
    -------
    pandas.DataFrame
        One row per layer in forward order: ``layer``, ``measure``, ``threshold``,
        ``converged_checkpoint`` and ``converged_step`` (None where the layer ends below
        the threshold), ``final_value`` (at the last checkpoint), ``first_value``.
    """
    import pandas as pd

    need = {"checkpoint", "step", "layer_a", "layer_b", "measure", "value"}
    if not need <= set(getattr(df, "columns", ())):
        missing = sorted(need - set(getattr(df, "columns", ())))
        raise ValueError(
            f"expected the frame of nc.analyses.learning_dynamics (columns "
            f"{', '.join(sorted(need))}); it lacks {', '.join(missing)}."
        )
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1]; got {threshold!r}.")
    measure = _pick_measure(df, measure)
    diag = df[(df["measure"] == measure) & (df["layer_a"] == df["layer_b"])]
    cks = list(df.attrs.get("checkpoints") or dict.fromkeys(df["checkpoint"]))
    layers = list(df.attrs.get("layers") or dict.fromkeys(diag["layer_a"]))
    rows = []
    for layer in layers:
        sub = diag[diag["layer_a"] == layer].set_index("checkpoint").reindex(cks)
        vals = sub["value"].to_numpy(dtype=float)
        stp = sub["step"].tolist()
        above = np.nan_to_num(vals, nan=-np.inf) >= threshold
        at = None
        for i in range(len(vals)):
            if above[i:].all():
                at = i
                break
        rows.append(
            {
                "layer": layer,
                "measure": measure,
                "threshold": float(threshold),
                "converged_checkpoint": cks[at] if at is not None else None,
                "converged_step": int(stp[at]) if at is not None else None,
                "final_value": float(vals[-1]) if len(vals) else float("nan"),
                "first_value": float(vals[0]) if len(vals) else float("nan"),
            }
        )
    out = pd.DataFrame.from_records(rows)
    out["converged_step"] = out["converged_step"].astype("Int64")
    return out


def _pick_measure(df: Any, measure: str | None) -> str:
    found = list(dict.fromkeys(df["measure"]))
    if measure is None:
        if len(found) == 1:
            return str(found[0])
        if "svcca" in found:
            return "svcca"
        raise ValueError(
            f"the frame holds several measures ({', '.join(map(str, found))}); pass measure= "
            "naming one of them."
        )
    if measure not in found:
        raise ValueError(
            f"measure {measure!r} is not in the frame; it holds {', '.join(map(str, found))}."
        )
    return measure
