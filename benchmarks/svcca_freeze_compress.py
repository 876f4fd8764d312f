"""Freeze Training and compression by SVCCA projection (issue #13 items 2, 4; Raghu et al. 2017).

1. Freeze Training vs normal training over 3 seeds on a conv net (SmallCNN, widths 16/32/64)
   and a residual net (CIFAR ResNet-8) trained on a CIFAR-10 subset from ../shared/data
   (the first ``--train`` JPEG training images; tested on the 1017 pixel-exact test images):
   test accuracy mean +- std and the backward FLOPs saved (FlopCounterMode per phase).
2. Compression sweep on a trained digit CNN with a fully connected head (pool -> fc1 -> fc2
   -> fc3): accuracy against kept fraction for each of pool / relu3 / relu4 alone and the
   three compressed consecutively (App. 5), against the logits, against a second network
   (seed 1) and with random directions.

Writes benchmarks/results/svcca/freeze_runs.csv, freeze_history.csv, freeze_summary.json,
freeze_<model>.png, compression.csv, compression.json, compression_single.png,
compression_consecutive.png. One torch thread; about 3-5 min on one core.

Usage: python benchmarks/svcca_freeze_compress.py [--train 2000] [--epochs 6] [--skip-freeze]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "svcca"
SHARED = ROOT.parent.parent / "shared" / "data" / "cifar10"


def cifar(n_train: int):
    from nncompare.models import cifar_preprocess

    tr = np.load(SHARED / "cifar10_train_jpeg10k.npz")
    te = np.load(SHARED / "cifar10_test_exact1017.npz")
    return (
        (cifar_preprocess(tr["x"][:n_train]), torch.as_tensor(tr["y"][:n_train])),
        (cifar_preprocess(te["x"]), torch.as_tensor(te["y"])),
    )


def digit_cnn() -> nn.Sequential:
    from nncompare.models import GlobalAvgPool

    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 16, 3, padding=1, bias=False),
            bn1=nn.BatchNorm2d(16),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(16, 32, 3, padding=1, bias=False),
            bn2=nn.BatchNorm2d(32),
            relu2=nn.ReLU(),
            pool=GlobalAvgPool(),
            fc1=nn.Linear(32, 64),
            relu3=nn.ReLU(),
            fc2=nn.Linear(64, 48),
            relu4=nn.ReLU(),
            fc3=nn.Linear(48, 10),
        )
    )


def run_freeze(args: argparse.Namespace) -> dict:
    import pandas as pd

    import nncompare as nc
    from nncompare.models import SmallCNN, cifar_resnet
    from nncompare.training import FreezeSchedule, freeze_experiment, summarize_freeze

    train_data, test_data = cifar(args.train)
    nets = {
        "cnn": lambda: SmallCNN(in_channels=3, widths=(16, 32, 64), image_size=32),
        "resnet8": lambda: cifar_resnet(8),
    }
    runs, hist, steps = [], [], {}
    for name, make in nets.items():
        t0 = time.perf_counter()
        r, h = freeze_experiment(
            make,
            train_data,
            test_data,
            seeds=(0, 1, 2),
            name=name,
            epochs=args.epochs,
            lr=0.05,
            lr_schedule="cosine",
            batch_size=64,
            weight_decay=5e-4,
        )
        total = args.epochs * -(-args.train // 64)
        steps[name] = [s for _, s in FreezeSchedule.linear().steps(make(), total)]
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        runs.append(r)
        hist.append(h)
        fig = nc.plot.freeze_curves(h, freeze_steps=steps[name][:-1])
        fig.savefig(OUT / f"freeze_{name}.png", dpi=130)
    runs_df, hist_df = pd.concat(runs), pd.concat(hist)
    runs_df.to_csv(OUT / "freeze_runs.csv", index=False)
    hist_df.to_csv(OUT / "freeze_history.csv", index=False)
    summary = summarize_freeze(runs_df)
    print(summary.to_string(), file=sys.stderr)
    return {"summary": summary.to_dict(orient="records"), "freeze_steps": steps}


def run_compression() -> dict:
    import nncompare as nc
    from nncompare.data import load_digits
    from nncompare.training import train

    tr, te = load_digits("train"), load_digits("test")
    nets = []
    for seed in (0, 1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = digit_cnn()
        train(net, tr, epochs=20, lr=0.1, seed=seed, lr_schedule="cosine")
        nets.append(net)
    layers = ["pool", "relu3", "relu4"]
    df = nc.analyses.compression_sweep(
        nets[0],
        layers,
        tr,
        fractions=(0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0),
        eval_data=te,
        references=("logits", (nets[1], None), "random"),
        keep=1.0,  # every direction with variance: k reaches the layer's rank
    )
    df.to_csv(OUT / "compression.csv", index=False)
    nc.plot.compression_curves(df, mode="single").savefig(OUT / "compression_single.png", dpi=130)
    nc.plot.compression_curves(
        df, mode="consecutive", title="Consecutive compression of pool, relu3, relu4"
    ).savefig(OUT / "compression_consecutive.png", dpi=130)
    return {"keep": 1.0, "rows": df.to_dict(orient="records")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--skip-freeze", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": 1,
        "train_images": args.train,
        "epochs": args.epochs,
        "data": "CIFAR-10 train JPEG subset (first N) / 1017 exact test images; sklearn digits",
    }
    t0 = time.perf_counter()
    if not args.skip_freeze:
        if not SHARED.exists():
            print(f"skipping Freeze Training: {SHARED} not found", file=sys.stderr)
        else:
            freeze = run_freeze(args)
            (OUT / "freeze_summary.json").write_text(
                json.dumps({**meta, **freeze}, indent=1, default=float)
            )
    t1 = time.perf_counter()
    comp = run_compression()
    (OUT / "compression.json").write_text(
        json.dumps({**meta, **comp, "seconds": time.perf_counter() - t1}, indent=1, default=float)
    )
    print(f"total {time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
