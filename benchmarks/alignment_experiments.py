"""Run the task-alignment experiments of Imani, Hu & White at CPU scale; write JSON and figures.

The five functions of :mod:`nncompare.alignment.experiments` (circle example, Fig. 4;
shuffled MNIST labels, Fig. 2; training and depth on the scikit-learn digits, Figs. 6-7; the
pretrained CIFAR-10 ResNet-20 against a random one, Fig. 13; the peaks transfer benchmark
over seeds, Fig. 10). Writes ``results.json`` (per-curve summaries, the peaks transfer table
and claims, timings, provenance) and one PNG per experiment into
``benchmarks/results/alignment/`` and prints the tables.

Data: ``../shared/data/mnist``, ``../shared/data/cifar10`` and
``../shared/data/akamaster_resnet_cifar10`` (or ``$NNCOMPARE_SHARED``); the experiments that
need them are skipped with a message when they are absent.

Usage::

    python benchmarks/alignment_experiments.py [--threads 1] [--seeds 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results" / "alignment"


def _shared() -> Path:
    env = os.environ.get("NNCOMPARE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def _step_curves(ax: Any, df: Any, by: list[str], style: Any, label: Any) -> None:
    """Draw each curve of ``df`` (grouped by ``by``) as a step function of tau.

    The curve is given at 0 and at each singular value; A(tau) sums over sigma_i >= tau, so
    on (sigma_k+1, sigma_k] it takes the value at the right end (steps "pre"), and it drops
    to 0 past sigma_1."""
    for key, sub in df.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        sub = sub.sort_values("tau")
        taus = [*sub["tau"], float(sub["tau"].max()) * 1.03]
        values = [*sub["alignment"], 0.0]
        ax.step(taus, values, where="pre", label=label(*key), **style(*key))
    ax.set_xlabel("threshold τ on singular values")
    ax.set_ylabel("alignment")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)


def _figure(width: float, height: float, ncols: int) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _records(df: Any) -> list[dict[str, Any]]:
    return json.loads(df.to_json(orient="records"))


def fig_circle(df: Any, path: Path) -> None:
    fig, axes = _figure(9, 3, 3)
    import numpy as np

    rng = np.random.default_rng(0)  # the same draw as circle_example(seed=0)
    h, spread = 500, df.attrs["provenance"]["spread"]
    ang = np.concatenate(
        [rng.normal(math.pi / 4, spread, h), rng.normal(-3 * math.pi / 4, spread, h)]
    )
    X = np.stack([np.cos(ang), np.sin(ang)], 1)
    across = X @ np.array([math.cos(3 * math.pi / 4), math.sin(3 * math.pi / 4)])
    for ax, (name, y) in zip(
        axes[:2],
        (("along v1", np.r_[np.ones(h), np.zeros(h)]), ("along v2", across > 0)),
        strict=True,
    ):
        ax.scatter(X[:, 0], X[:, 1], c=y, s=3, cmap="viridis")
        ax.set_aspect("equal")
        ax.set_title(f"labels {name}", fontsize=9)
    _step_curves(axes[2], df, ["labels"], lambda lab: {}, lambda lab: lab)
    s1, s2 = df.attrs["sigma"]
    axes[2].set_title(f"σ1 = {s1:.2f}, σ2 = {s2:.2f}", fontsize=9)
    fig.savefig(path, dpi=120)


def fig_shuffled(df: Any, path: Path) -> None:
    import numpy as np

    panels = [
        ("true", "input"),
        ("shuffled", "input"),
        ("shuffled", "init"),
        ("shuffled", "trained"),
    ]
    fig, axes = _figure(12, 2.8, 4)
    by = {(sp["labels"], sp["representation"]): sp for sp in df.attrs["spectra"]}
    for ax, key in zip(axes, panels, strict=True):
        sp = by[key]
        p = np.asarray(sp["projections"])[:40]
        ax.bar(np.arange(1, len(p) + 1), p, color="#0072B2")
        ax.set_title(f"{key[1]} features, {key[0]} labels", fontsize=9)
        ax.set_xlabel("singular direction i")
        ax.set_ylabel("(uᵢᵀy)²")
    fig.savefig(path, dpi=120)


def fig_layers(df: Any, path: Path, seed: int = 0) -> None:
    sub = df[df["seed"] == seed] if "seed" in df.columns else df
    sub = sub[sub["label"] == sub["label"].iloc[0]]
    fig, axes = _figure(5, 3.6, 1)
    colors = ["#7f7f7f", "#E69F00", "#56B4E9", "#009E73", "#D55E00"]
    layers = list(dict.fromkeys(sub["layer"]))
    _step_curves(
        axes[0],
        sub,
        ["layer", "representation"],
        lambda layer, rep: {
            "color": colors[layers.index(layer) % len(colors)],
            "ls": "--" if rep in ("init", "random") else "-",
        },
        lambda layer, rep: layer if layer == "input" else f"{layer} ({rep})",
    )
    fig.savefig(path, dpi=120)


def fig_peaks(df: Any, path: Path) -> None:
    import nncompare as nc

    view = df.copy()
    view.attrs = {"experiment": "peaks_transfer"}
    fig = nc.plot.alignment_transfer(view)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seeds", type=int, default=10, help="seeds of the peaks benchmark")
    parser.add_argument("--quick", action="store_true", help="a smoke run (few epochs)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    torch.set_num_threads(args.threads)
    from nncompare.alignment import experiments as ex

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    shared = _shared() / "data"
    q = args.quick
    doc: dict[str, Any] = {"experiments": {}, "seconds": {}}
    keep = ["labels", "seed", "representation", "layer", "rank", "sigma_max", "total", "top1",
            "top", "mean_sigma", "mean_sigma_rel"]  # fmt: skip

    def record(name: str, df: Any, t0: float, fig: Any, **extra: Any) -> None:
        seconds = time.perf_counter() - t0
        doc["seconds"][name] = round(seconds, 1)
        entry: dict[str, Any] = {
            "title": df.attrs.get("title"),
            "provenance": df.attrs.get("provenance"),
            "notes": df.attrs.get("notes"),
            **extra,
        }
        if df.attrs.get("spectra"):
            s = ex.summarize(df)
            entry["summary"] = _records(s[[c for c in keep if c in s.columns]])
            print(f"\n== {name} ({seconds:.1f} s): {df.attrs.get('title')}")
            print(s[[c for c in keep if c in s.columns]].round(3).to_string(index=False))
        doc["experiments"][name] = entry
        fig(df, out / f"{name}.png")

    t0 = time.perf_counter()
    record("circle_example", ex.circle_example(), t0, fig_circle)

    mnist = shared / "mnist" / "mnist_test10k_train17435.npz"
    if mnist.exists():
        t0 = time.perf_counter()
        df = ex.shuffled_labels(mnist, epochs=5 if q else 60)
        record("shuffled_labels", df, t0, fig_shuffled, train_accuracy=df.attrs["train_accuracy"])
    else:
        print(f"skipped shuffled_labels: {mnist} is absent")

    t0 = time.perf_counter()
    df = ex.training_and_depth(epochs=3 if q else 30, seeds=(0, 1) if q else (0, 1, 2, 3, 4))
    record("training_and_depth", df, t0, fig_layers, train_accuracy=df.attrs["train_accuracy"])

    weights = shared / "akamaster_resnet_cifar10" / "resnet20-12fca82f.th"
    cifar = shared / "cifar10" / "cifar10_train_jpeg10k.npz"
    if weights.exists() and cifar.exists():
        t0 = time.perf_counter()
        df = ex.pretrained_vs_random(weights, cifar, n_per_class=100 if q else 500)
        record("pretrained_vs_random", df, t0, fig_layers)
    else:
        print("skipped pretrained_vs_random: the ResNet weights or CIFAR-10 images are absent")

    t0 = time.perf_counter()
    seeds = range(2 if q else args.seeds)
    df = ex.peaks_benchmark(seeds, epochs=3 if q else 30)
    table = pd.DataFrame(df.attrs["transfer"])
    record("peaks_benchmark", df, t0, fig_peaks, transfer=df.attrs["transfer"],
           claims=df.attrs["claims"], tau_step=df.attrs["tau_step"])  # fmt: skip
    print(f"\n== peaks_benchmark ({doc['seconds']['peaks_benchmark']:.1f} s), {len(seeds)} seeds")
    print(table.round(1).to_string(index=False))
    print("claims:", df.attrs["claims"])
    from nncompare.alignment import peaks

    view = df.copy()
    view.attrs = {"experiment": "peaks_transfer"}
    doc["experiments"]["peaks_benchmark"]["per_tau"] = _records(peaks.summary(view))

    doc["quick"] = q
    doc["torch_threads"] = args.threads
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(f"\nwrote {out / 'results.json'} and {len(list(out.glob('*.png')))} figures "
          f"in {sum(doc['seconds'].values()):.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
