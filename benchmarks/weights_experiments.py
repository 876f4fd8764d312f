"""The weight lens's experiments (Guth & Ménard, issue #10) at CPU scale.

1. Universality of spatial eigenfilters (Fig. 1) on the pretrained CIFAR-10 ResNet-20/32/44/56:
   overlap of the top-3 spatial eigen-subspaces between every pair of 3 x 3 conv layers,
   within and across networks (``nc.weights.experiments.eigenfilter_universality``).
2. A width-reduced simplified VGG-11 and its factorized version (frozen eigenfilters: the
   mean spatial covariance of the ResNets' layers >= 2) trained with ``nc.training`` on the
   same CIFAR-10 images: both accuracies.
3. Factorized VGGs trained in different contexts: CIFAR-10 with two seeds, CIFAR-5 (classes
   0-4) against the other five classes (5-9), true against random labels; per pair
   ``compare_weights`` (S by depth, Fig. 4) and eigenvector-similarity panels (Fig. 3).

Data: ``../shared/data/akamaster_resnet_cifar10`` and ``../shared/data/cifar10`` (or
``$NNCOMPARE_SHARED``). Training images: the JPEG-degraded training file (real photos, exact
labels); test and alignment images: the 1017 pixel-exact test images. Trained state dicts are
cached in ``--cache`` so the analysis can be rerun without training.

Writes ``benchmarks/results/weights/experiments.json`` and PNG figures next to it.

Usage::

    python benchmarks/weights_experiments.py [--n-train 1500] [--epochs 3] [--width 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "weights"


def _shared() -> Path:
    env = os.environ.get("NNCOMPARE_SHARED")
    return Path(env) if env else HERE.parents[1] / "shared"


def _save(fig, name: str) -> str:
    path = OUT / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return str(path.relative_to(HERE.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1500, help="training images per run")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--width", type=int, default=8, help="base width of the VGGs")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-align", type=int, default=500, help="test images for alignment")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", default="/tmp/nncompare_weights_cache")
    parser.add_argument("--skip", nargs="*", default=[], choices=["universality", "train"])
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    import nncompare as nc
    from nncompare.models import cifar_preprocess, cifar_resnet
    from nncompare.weights import experiments as wx

    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    shared = _shared() / "data"
    record: dict = {
        "scale": {
            "n_train": args.n_train,
            "epochs": args.epochs,
            "width": args.width,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "optimizer": "sgd momentum 0.9, cosine schedule",
            "n_align": args.n_align,
            "torch_threads": args.threads,
            "train_images": "cifar10_train_jpeg10k.npz (JPEG-degraded, exact labels)",
            "test_images": "cifar10_test_exact1017.npz (pixel-exact)",
        },
        "figures": {},
    }
    t_all = time.perf_counter()

    # ---------------------------------------------------------------- 1. ResNets
    ck = shared / "akamaster_resnet_cifar10"
    nets = {}
    for depth in (20, 32, 44, 56):
        match = sorted(ck.glob(f"resnet{depth}-*.th"))
        if not match:
            print(f"missing pretrained ResNet-{depth} in {ck}", file=sys.stderr)
            return 1
        nets[f"resnet{depth}"] = cifar_resnet(depth, weights=match[0]).eval()
    t0 = time.perf_counter()
    uni = wx.eigenfilter_universality(nets, rank=3)
    summary = wx.summarize_universality(uni)
    pair = uni[
        (uni.net_a == "resnet20")
        & (uni.net_b == "resnet56")
        & (uni.depth_a >= 2)
        & (uni.depth_b >= 2)
    ]
    summary["resnet20_vs_resnet56_deep"] = {
        "mean": float(pair.overlap.mean()),
        "min": float(pair.overlap.min()),
        "n_pairs": len(pair),
    }
    universal = wx.universal_eigenfilters(nets)
    record["universality"] = {
        "rank": 3,
        "summary": summary,
        "universal_explained_top5": universal.explained[:5].round(4).tolist(),
        "seconds": time.perf_counter() - t0,
    }
    print("universality:", json.dumps(summary, indent=1))
    ef20 = nc.weights.spatial_eigenfilters(nets["resnet20"])
    ef56 = nc.weights.spatial_eigenfilters(nets["resnet56"])
    fig = nc.plot.weights_eigenfilters(ef20, title="ResNet-20 (pretrained): spatial eigenfilters")
    record["figures"]["eigenfilters_resnet20"] = _save(fig, "eigenfilters_resnet20.png")
    fig = nc.plot.weights_overlap(ef20, ef56, rank=3, labels=("ResNet-20", "ResNet-56"))
    record["figures"]["overlap_resnet20_resnet56"] = _save(fig, "overlap_resnet20_resnet56.png")
    fig = nc.plot.weights_eigenfilters(
        {"mean of layers >= 2": universal}, title="Filters of the factorized VGGs"
    )
    record["figures"]["universal_filters"] = _save(fig, "universal_filters.png")

    # ---------------------------------------------------------------- data
    with np.load(shared / "cifar10" / "cifar10_train_jpeg10k.npz") as f:
        x_tr_all, y_tr_all = f["x"], f["y"].astype(np.int64)
    with np.load(shared / "cifar10" / "cifar10_test_exact1017.npz") as f:
        x_te, y_te = cifar_preprocess(f["x"]), torch.from_numpy(f["y"].astype(np.int64))
    x_align = x_te[: args.n_align]

    def subset(classes: tuple[int, ...] | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        keep = (
            np.arange(len(y_tr_all))
            if classes is None
            else np.flatnonzero(np.isin(y_tr_all, classes))
        )
        keep = keep[:n]
        y = y_tr_all[keep]
        if classes is not None:  # relabel 0..len(classes)-1
            y = np.searchsorted(np.array(sorted(classes)), y)
        return cifar_preprocess(x_tr_all[keep]), torch.from_numpy(y)

    def test_subset(classes: tuple[int, ...] | None) -> tuple[torch.Tensor, torch.Tensor]:
        if classes is None:
            return x_te, y_te
        keep = np.flatnonzero(np.isin(y_te.numpy(), classes))
        y = np.searchsorted(np.array(sorted(classes)), y_te.numpy()[keep])
        return x_te[keep], torch.from_numpy(y)

    runs = {
        # name: (architecture, classes, random labels, seed)
        "vgg_c10": ("vgg", None, False, 0),
        "fact_c10": ("fact", None, False, 0),
        "fact_c10_bis": ("fact", None, False, 1),
        "fact_c5a": ("fact", (0, 1, 2, 3, 4), False, 0),
        "fact_c5b": ("fact", (5, 6, 7, 8, 9), False, 0),
        "fact_c10_random": ("fact", None, True, 0),
    }
    models, accuracy = {}, {}
    for name, (arch, classes, random_labels, seed) in runs.items():
        n_classes = 10 if classes is None else len(classes)
        torch.manual_seed(100 + seed)
        if arch == "vgg":
            net = nc.models.vgg11_simplified(width=args.width, num_classes=n_classes)
        else:
            net = nc.models.factorized_vgg(universal, width=args.width, num_classes=n_classes)
        path = cache / f"{name}_w{args.width}_n{args.n_train}_e{args.epochs}.pt"
        x_tr, y_tr = subset(classes, args.n_train)
        if random_labels:
            y_tr = torch.from_numpy(np.random.default_rng(7).integers(0, n_classes, len(y_tr)))
        if path.is_file():
            net.load_state_dict(torch.load(path, weights_only=True))
            seconds = None
        else:
            if "train" in args.skip:
                print(f"no cached weights for {name} at {path}", file=sys.stderr)
                return 1
            t0 = time.perf_counter()
            nc.training.train(
                net, (x_tr, y_tr), epochs=args.epochs, lr=args.lr, seed=seed,
                batch_size=args.batch_size, lr_schedule="cosine",
            )  # fmt: skip
            seconds = time.perf_counter() - t0
            torch.save(net.state_dict(), path)
        xt, yt = test_subset(classes)
        acc = nc.training.evaluate(net, (xt, yt))
        accuracy[name] = {
            "test_accuracy": round(float(acc), 4),
            "n_test": len(yt),
            "chance": 1 / n_classes,
            "classes": "0-9" if classes is None else f"{classes[0]}-{classes[-1]}",
            "labels": "random" if random_labels else "true",
            "seed": seed,
            "train_seconds": None if seconds is None else round(seconds, 1),
            "trainable_parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
        }
        print(name, accuracy[name], flush=True)
        models[name] = net.eval()
    record["accuracy"] = accuracy
    record["accuracy"]["factorized_over_vgg"] = round(
        accuracy["fact_c10"]["test_accuracy"] / accuracy["vgg_c10"]["test_accuracy"], 3
    )

    # ---------------------------------------------------------------- 3. Figs. 3-4
    pairs = {
        "CIFAR-10 vs CIFAR-10 (bis)": (models["fact_c10"], models["fact_c10_bis"]),
        "CIFAR-5 vs other 5": (models["fact_c5a"], models["fact_c5b"]),
        "true vs random labels": (models["fact_c10"], models["fact_c10_random"]),
    }
    t0 = time.perf_counter()
    layers = [f"pointwise{i}" for i in range(1, 9)]
    study = wx.weight_similarity_study(pairs, x_align, layers=layers, k=32)
    record["similarity_seconds"] = time.perf_counter() - t0
    cols = ["pair", "layer", "depth", "r_eff_a", "r_eff_b", "cosine", "S", "zero_point",
            "upper_bound", "gamma_a", "note"]  # fmt: skip
    print(study[cols].to_string())
    record["similarity"] = json.loads(study[cols].to_json(orient="records"))
    record["eigenvector_similarity"] = study.attrs["eigenvector_similarity"]
    frames = {name: study[study.pair == name] for name in pairs}
    fig = nc.plot.weights_similarity_by_depth(frames, title="S by depth (factorized VGGs)")
    record["figures"]["S_by_depth"] = _save(fig, "S_by_depth.png")
    labels = {
        "CIFAR-10 vs CIFAR-10 (bis)": ("CIFAR-10", "CIFAR-10 bis"),
        "CIFAR-5 vs other 5": ("CIFAR-5 (0-4)", "other 5 (5-9)"),
        "true vs random labels": ("true labels", "random labels"),
    }
    for name in pairs:
        slug = {"CIFAR-10 vs CIFAR-10 (bis)": "seeds", "CIFAR-5 vs other 5": "cifar5",
                "true vs random labels": "random_labels"}[name]  # fmt: skip
        fig = nc.plot.weights_eigenvector_similarity(
            wx.eigenvector_panels(study, pair=name), labels=labels[name]
        )
        record["figures"][f"panels {name}"] = _save(fig, f"eigenvectors_{slug}.png")
    record["total_seconds"] = time.perf_counter() - t_all
    (OUT / "experiments.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    print(f"wrote {OUT / 'experiments.json'} in {record['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
