"""``nncompare train`` and ``nncompare compress``: Freeze Training and compression by SVCCA
projection on the command line (Raghu et al. 2017, §4.2, §4.4).

Thin: the model loads as ``nncompare compare`` loads it (:mod:`nncompare.cli.loading`, safe
by default); labelled data come from the embedded digits (``--data digits``) or an ``.npz``
with arrays ``x`` and ``y`` (uint8 images scaled by 1/255, channels-last images moved
channels-first, ``--preset cifar`` for the CIFAR normalisation); then
:func:`nncompare.training.train` or :func:`nncompare.analyses.compression_sweep` runs.
Every bad input is a one-line error naming the option.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from nncompare.cli._common import out_option

__all__ = ["compress", "load_labelled", "train_command"]

_MODEL_HELP = """\b
MODEL loads exactly as in `nncompare compare`, e.g.
'nncompare.models:SmallCNN(in_channels=1)' (with --weights for a state dict).
--data is 'digits' (the embedded 8x8 digits: train split for training and fitting,
test split for --test-data digits) or an .npz with arrays x (inputs) and y (labels).
"""


def load_labelled(spec: str, option: str, *, split: str = "train", preset: str | None = None):
    """``digits`` or an ``.npz`` with ``x`` and ``y`` -> ``(x float tensor, y long tensor)``."""
    import numpy as np
    import torch

    if spec == "digits":
        from nncompare.data import load_digits

        d = load_digits(split)
        return d.x, d.y
    path = Path(spec)
    if not path.is_file() or path.suffix != ".npz":
        raise click.BadParameter(
            f"expected 'digits' or an existing .npz file with arrays x and y; got {spec!r}",
            param_hint=option,
        )
    with np.load(path, allow_pickle=False) as z:
        if "x" not in z or "y" not in z:
            raise click.BadParameter(
                f"{path.name} holds arrays {sorted(z.files)}; expected 'x' (inputs) and 'y' "
                "(integer labels)",
                param_hint=option,
            )
        x, y = z["x"], z["y"]
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
        raise click.BadParameter(
            f"{path.name}: y must be 1-D integer labels, one per input; got shape {y.shape} "
            f"and dtype {y.dtype} for {len(x)} inputs",
            param_hint=option,
        )
    if preset == "cifar":
        from nncompare.models import cifar_preprocess

        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise click.BadParameter(
                f"--preset cifar expects uint8 images (N, H, W, 3); {path.name} has x of shape "
                f"{x.shape} and dtype {x.dtype}",
                param_hint=option,
            )
        return cifar_preprocess(x), torch.as_tensor(y).long()
    xt = torch.as_tensor(x)
    if xt.dtype == torch.uint8:
        xt = xt.float() / 255
    elif not xt.is_floating_point():
        raise click.BadParameter(
            f"{path.name}: x has dtype {x.dtype}; expected floats or uint8 images",
            param_hint=option,
        )
    if xt.ndim == 4 and xt.shape[-1] in (1, 3) and xt.shape[1] not in (1, 3):
        xt = xt.permute(0, 3, 1, 2).contiguous()
    return xt.float(), torch.as_tensor(y).long()


def _model_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option("--weights", default=None, type=click.Path(exists=True, dir_okay=False)),
            click.option("--allow-pickle", is_flag=True, help="Load files that can run code."),
            click.option("--trust-module", "trust_modules", multiple=True),
            click.option(
                "--preset",
                type=click.Choice(["cifar"], case_sensitive=False),
                default=None,
                help="uint8 (N, H, W, 3) images normalised as the CIFAR ResNets expect.",
            ),
        ]
    ):
        f = option(f)
    return f


@click.command("train", epilog=_MODEL_HELP)
@click.argument("model")
@click.option("--data", "data_spec", required=True, help="'digits' or an .npz with x and y.")
@click.option("--test-data", "test_spec", default=None, help="Evaluation data, as --data.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option(
    "--lr-schedule", type=click.Choice(["constant", "cosine"]), default="cosine", show_default=True
)
@click.option(
    "--freeze",
    type=click.Choice(["none", "linear"]),
    default="none",
    show_default=True,
    help="Freeze Training: 'linear' freezes stage i of L after i/L of the steps.",
)
@click.option("--checkpoint-every", default=None, type=click.IntRange(1), help="Epochs.")
@out_option("nncompare-train")
@_model_options
def train_command(
    model: str,
    data_spec: str,
    test_spec: str | None,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int,
    lr_schedule: str,
    freeze: str,
    checkpoint_every: int | None,
    out_dir: str,
    weights: str | None,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
    preset: str | None,
) -> None:
    """Train MODEL (cross-entropy, SGD) and write OUT/final.pt, OUT/history.json and
    checkpoints in OUT/checkpoints (every --checkpoint-every epochs), e.g. for
    `nncompare dynamics`. With --freeze linear, each epoch's frozen stages and backward
    FLOPs saved are logged and stored.

    \b
    Example:
      nncompare train 'nncompare.models:SmallCNN()' --data digits --test-data digits \\
          --epochs 10 --freeze linear --out run
    """
    import torch

    from nncompare.cli.loading import load_model
    from nncompare.training import save_state_dict, train

    torch.set_num_threads(1)  # the CLI process is ours; tiny nets run fastest on one thread
    net = load_model(model, weights=weights, allow_pickle=allow_pickle, trust_modules=trust_modules)
    x, y = load_labelled(data_spec, "--data", preset=preset)
    test = None if test_spec is None else load_labelled(test_spec, "--test-data", split="test",
                                                         preset=preset)  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        res = train(
            net, (x, y), epochs=epochs, lr=lr, seed=seed, batch_size=batch_size,
            lr_schedule=lr_schedule, eval_data=test,
            freeze=None if freeze == "none" else freeze,
            checkpoint_dir=out / "checkpoints" if checkpoint_every else None,
            checkpoint_every=checkpoint_every,
        )  # fmt: skip
    except (ValueError, TypeError, RuntimeError, FloatingPointError) as exc:
        raise click.ClickException(f"train: {' '.join(str(exc).split())}") from exc
    save_state_dict(net.state_dict(), out / "final.pt")
    for e in res.history:
        frozen = f"  frozen {','.join(e.frozen) or '-'}" if freeze != "none" else ""
        saved = (
            f"  backward FLOPs saved {e.backward_flops_saved:.3g}"
            if e.backward_flops_saved is not None
            else ""
        )
        acc = "" if e.eval_accuracy is None else f"  test acc {e.eval_accuracy:.4f}"
        click.echo(f"epoch {e.epoch}  loss {e.train_loss:.4f}{acc}{frozen}{saved}")
    doc = {
        "model": model,
        "history": [vars(e) | {"frozen": list(e.frozen)} for e in res.history],
        "final_train_accuracy": res.final_train_accuracy,
        "final_eval_accuracy": res.final_eval_accuracy,
        "info": {k: v for k, v in res.info.items()},
        "seconds": res.seconds,
    }
    (out / "history.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    if freeze != "none":
        spent = sum(e.backward_flops or 0 for e in res.history)
        saved = sum(e.backward_flops_saved or 0 for e in res.history)
        click.echo(f"backward FLOPs saved by Freeze Training: {100 * saved / (spent + saved):.1f}%")
    click.echo(f"wrote {out / 'final.pt'} and {out / 'history.json'} in {res.seconds:.1f} s")


def _fractions(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"expected fractions in (0, 1] separated by commas, such as 0.1,0.35,1; got {text!r}",
            param_hint="--fractions",
        ) from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise click.BadParameter(
            f"expected fractions in (0, 1]; got {text!r}", param_hint="--fractions"
        )
    return values


@click.command("compress", epilog=_MODEL_HELP)
@click.argument("model")
@click.option("--data", "data_spec", required=True, help="Fitting data: 'digits' or an .npz.")
@click.option("--test-data", "test_spec", default=None, help="Evaluation data (default --data).")
@click.option("--layers", required=True, help="Layers to compress, e.g. pool,relu3 (each must "
              "feed an nn.Linear).")  # fmt: skip
@click.option("--fractions", default="0.05,0.1,0.2,0.35,0.5,0.75,1", show_default=True)
@click.option(
    "--reference",
    "references",
    multiple=True,
    default=("logits", "random"),
    show_default=True,
    help="'logits', 'random' or 'model' (with --other-model). Repeatable.",
)
@click.option("--other-model", default=None, help="Reference network (as MODEL).")
@click.option("--other-weights", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--keep", default=0.99, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@out_option("nncompare-compress")
@_model_options
def compress(
    model: str,
    data_spec: str,
    test_spec: str | None,
    layers: str,
    fractions: str,
    references: tuple[str, ...],
    other_model: str | None,
    other_weights: str | None,
    keep: float,
    out_dir: str,
    weights: str | None,
    allow_pickle: bool,
    trust_modules: tuple[str, ...],
    preset: str | None,
) -> None:
    """Compress MODEL's --layers by SVCCA projection and write OUT/report.html (accuracy
    against kept fraction, alone and consecutively), results.csv and results.json.

    \b
    Example:
      nncompare compress 'nncompare.models:SmallCNN()' --weights run/final.pt \\
          --data digits --test-data digits --layers pool
    """
    import torch

    from nncompare.analyses.compression import compression_sweep
    from nncompare.cli.loading import load_model
    from nncompare.report._compression import write_compression_report

    torch.set_num_threads(1)
    fr = _fractions(fractions)
    names = [n.strip() for n in layers.split(",")]
    if not all(names):
        raise click.BadParameter(f"expected layer names separated by commas; got {layers!r}",
                                 param_hint="--layers")  # fmt: skip
    net = load_model(model, weights=weights, allow_pickle=allow_pickle, trust_modules=trust_modules)
    refs: list[Any] = []
    for r in references:
        if r == "model":
            if other_model is None:
                raise click.BadParameter(
                    "--reference model needs --other-model (the reference network)",
                    param_hint="--reference",
                )
            other = load_model(other_model, weights=other_weights, allow_pickle=allow_pickle,
                               trust_modules=trust_modules)  # fmt: skip
            refs.append((other, None))
        elif r in ("logits", "random"):
            refs.append(r)
        else:
            raise click.BadParameter(
                f"expected 'logits', 'random' or 'model'; got {r!r}", param_hint="--reference"
            )
    fit = load_labelled(data_spec, "--data", preset=preset)
    test = None if test_spec is None else load_labelled(test_spec, "--test-data", split="test",
                                                         preset=preset)  # fmt: skip
    t0 = time.perf_counter()
    try:
        df = compression_sweep(net, names, fit, fr, eval_data=test, references=refs, keep=keep)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"compress: {' '.join(str(exc).split())}") from exc
    df.attrs["model"] = model
    df.attrs["provenance"] = {"model": model, "weights": Path(weights).name if weights else None,
                              "data": data_spec, "test_data": test_spec, "keep": keep,
                              "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
    files = write_compression_report(df, out_dir)
    best = df[(df["reference"] == refs_label(refs[0])) & (df["mode"] == "single")]
    if len(best):
        top = best.sort_values("fraction").iloc[0]
        click.echo(
            f"{top['layer']} at {top['fraction']:g} of its width ({refs_label(refs[0])}): "
            f"accuracy {top['accuracy']:.4f} (uncompressed {top['original_accuracy']:.4f})"
        )
    click.echo(f"wrote {files.html}")


def refs_label(ref: Any) -> str:
    return ref if isinstance(ref, str) else "model"
