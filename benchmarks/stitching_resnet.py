"""Stitch the pretrained CIFAR-10 ResNet-20 (A) into ResNet-32 (B) at the stage outputs.

Csiszárik et al. (2021), Experiment 1 on real models: for each of layer1, layer2, layer3,
``nc.stitch(resnet20, stage, resnet32, stage)``; least-squares direct matching (eq. 2) on
CIFAR-10 training images, evaluated on the pixel-exact test images, then task-loss matching
(cross-entropy to B's softmax, Adam) started from the LS matrix. Prints the relative-accuracy
table (stitched accuracy / ResNet-32's own) and the timings.

Data: ``../shared/data/akamaster_resnet_cifar10`` and ``../shared/data/cifar10`` (or
``$NNCOMPARE_SHARED``). Training images: the first ``--n-train`` of
``cifar10_train_jpeg10k.npz`` (real photos with exact labels, JPEG-degraded; see that README);
test images: the 1017 pixel-exact ones of ``cifar10_test_exact1017.npz``.

Usage::

    python benchmarks/stitching_resnet.py [--n-train 2000] [--epochs 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _shared() -> Path:
    env = os.environ.get("NNCOMPARE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2000, help="training images (<= 10000)")
    parser.add_argument("--n-test", type=int, default=1017, help="exact test images (<= 1017)")
    parser.add_argument("--epochs", type=int, default=1, help="task-loss epochs")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--stages", nargs="+", default=["layer1", "layer2", "layer3"])
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    import nncompare as nc
    from nncompare.models import cifar_preprocess, cifar_resnet

    torch.set_num_threads(args.threads)
    shared = _shared()
    ckpt = shared / "data" / "akamaster_resnet_cifar10"
    cifar = shared / "data" / "cifar10"
    if not ckpt.is_dir() or not cifar.is_dir():
        print(f"shared data not found under {shared} (set NNCOMPARE_SHARED)", file=sys.stderr)
        return 2
    a = cifar_resnet(20, next(ckpt.glob("resnet20-*.th"))).eval()
    b = cifar_resnet(32, next(ckpt.glob("resnet32-*.th"))).eval()
    with np.load(cifar / "cifar10_train_jpeg10k.npz") as f:
        x_train = cifar_preprocess(f["x"][: args.n_train])
        y_train = torch.from_numpy(f["y"][: args.n_train])
    with np.load(cifar / "cifar10_test_exact1017.npz") as f:
        x_test = cifar_preprocess(f["x"][: args.n_test])
        y_test = torch.from_numpy(f["y"][: args.n_test])
    train, test = (x_train, y_train), (x_test, y_test)
    print(
        f"ResNet-20 -> ResNet-32, fit on {len(x_train)} CIFAR-10 training images (JPEG copy), "
        f"evaluated on {len(x_test)} exact test images; torch threads {args.threads}, "
        f"task loss: {args.epochs} epoch(s), Adam lr {args.lr}, batch {args.batch_size}"
    )

    rows = []
    for stage in args.stages:
        s = nc.stitch(a, stage, b, stage)
        t0 = time.perf_counter()
        ls = nc.stitching.fit(s, train, "ls", batch_size=256)
        t_fit = time.perf_counter() - t0
        ev_ls = nc.stitching.evaluate(s, test)
        t0 = time.perf_counter()
        task = nc.stitching.train(
            s,
            train,
            init=None,  # start from the LS fit just made
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            eval_data=test,
            progress=False,
        )
        t_task = time.perf_counter() - t0
        rows.append((stage, ls.matrix.shape, ls.fit_r2, ev_ls, task, t_fit, t_task, ls.n_positions))
        print(
            f"{stage}: LS rel. acc {ev_ls.relative_accuracy:.4f} (fit {t_fit:.1f} s, "
            f"{ls.n_positions} positions), task loss {task.relative_accuracy:.4f} "
            f"({t_task:.1f} s incl. evaluations)",
            flush=True,
        )

    acc_b = rows[0][3].accuracy_b
    with torch.no_grad():
        preds = torch.cat([a(x_test[i : i + 256]).argmax(1) for i in range(0, len(x_test), 256)])
    acc_a = float((preds == y_test).double().mean())
    print()
    print(
        f"Accuracy on the exact test images: ResNet-20 (A) {acc_a:.4f}, ResNet-32 (B) {acc_b:.4f}"
    )
    print(
        "| stage | widths | LS fit R² | LS rel. acc. | LS cross-ent. | task rel. acc. "
        "| task cross-ent. | LS fit s | task s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for stage, shape, r2, ev, task, t_fit, t_task, _ in rows:
        print(
            f"| {stage} | {shape[0]}→{shape[1]} | {r2:.3f} | {ev.relative_accuracy:.4f} | "
            f"{ev.cross_entropy:.3f} | {task.relative_accuracy:.4f} | {task.cross_entropy:.3f} | "
            f"{t_fit:.1f} | {t_task:.1f} |"
        )
    worst = min(r[4].relative_accuracy for r in rows)
    ok = worst >= 0.9
    print(f"\ntask loss from LS: worst relative accuracy {worst:.4f} ({'>=' if ok else '<'} 0.90)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
