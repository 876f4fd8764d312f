"""The SVCCA paper's analyses measured (Raghu et al. 2017 §4.1, §4.3, §4.4; issue #13).

Writes benchmarks/results/svcca/*.json and *.png:

* ``sensitivity_resnet20`` — class sensitivity of the pretrained CIFAR-10 ResNet-20 (akamaster
  weights) over the 10,000 CIFAR-10 test images (JPEG-degraded copy, exact labels; see
  ../shared/data/cifar10/README.md) for automobile/truck, cat/dog and frog (DFT-CCA of each
  block output with each class's logit);
* ``dynamics_digits`` — learning dynamics of the demo's digit CNN (the demo's recipe, 30
  epochs, a checkpoint every epoch), SVCCA, and the per-layer convergence steps;
* ``dynamics_cifar_cnn`` — the same for a small CNN trained on 10,000 CIFAR-10 training
  images (10 epochs), measured on 2,000 test images;
* ``cross_model_dft`` — that CNN against the pretrained ResNet-20, layer × layer, SVCCA
  with ``conv="dft"`` (different spatial sizes: the resize path), 1,017 exact test images.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/svcca_analyses.py`` (about 4 minutes on one
thread). Needs ../shared/data (or $NNCOMPARE_SHARED/data).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "svcca"
SHARED = Path(os.environ.get("NNCOMPARE_SHARED", ROOT.parent / "shared")) / "data"
CKPT = Path(tempfile.mkdtemp(prefix="nncompare-svcca-"))
CLASSES = {"automobile": 1, "truck": 9, "cat": 3, "dog": 5, "frog": 6}
THRESHOLDS = (0.8, 0.9, 0.95)


def _save(name: str, doc: dict, fig: object | None = None) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1, default=float) + "\n")
    if fig is not None:
        fig.savefig(OUT / f"{name}.png", dpi=110)


def _load_avg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _convergence(df: object) -> dict:
    import pandas as pd

    import nncompare as nc

    out = {}
    for t in THRESHOLDS:
        steps = nc.analyses.convergence_steps(df, t)
        out[str(t)] = {
            r.layer: None if pd.isna(r.converged_step) else int(r.converged_step)
            for r in steps.itertuples()
        }
    return out


def _diag(df: object) -> dict:
    d = df[df["layer_a"] == df["layer_b"]]
    return {
        layer: [round(float(v), 4) for v in sub.sort_values("step")["value"]]
        for layer, sub in d.groupby("layer_a", sort=False)
    }


def sensitivity_resnet20() -> None:
    import nncompare as nc
    from nncompare.workbench.models import cifar_preprocess, cifar_resnet

    net = cifar_resnet(20, weights=SHARED / "akamaster_resnet_cifar10" / "resnet20-12fca82f.th")
    with np.load(SHARED / "cifar10" / "cifar10_test_jpeg10k.npz") as f:
        x = cifar_preprocess(f["x"])
    t0 = time.perf_counter()
    df = nc.analyses.class_sensitivity(net, x, CLASSES, batch_size=250)
    seconds = time.perf_counter() - t0
    wide = df.pivot(index="layer", columns="class", values="value").loc[df.attrs["layers"]]
    doc = {
        "what": "class sensitivity (DFT-CCA with each class logit) of the pretrained ResNet-20",
        "data": "CIFAR-10 test, 10000 images (JPEG-degraded copy, exact labels)",
        "n_samples": int(df["n_samples"].iloc[0]),
        "seconds": round(seconds, 1),
        "load_avg": _load_avg(),
        "values": {
            lay: {c: round(float(v), 4) for c, v in row.items()} for lay, row in wide.iterrows()
        },
        "pair_gaps": {
            "automobile-truck": round(float((wide["automobile"] - wide["truck"]).abs().mean()), 4),
            "cat-dog": round(float((wide["cat"] - wide["dog"]).abs().mean()), 4),
            "frog-cat": round(float((wide["frog"] - wide["cat"]).abs().mean()), 4),
            "frog-automobile": round(float((wide["frog"] - wide["automobile"]).abs().mean()), 4),
        },
    }
    _save("sensitivity_resnet20", doc, nc.plot.class_sensitivity_curves(df))
    print(f"sensitivity ResNet-20: {seconds:.1f} s; mean |gap| {doc['pair_gaps']}")


def dynamics_digits() -> None:
    import nncompare as nc
    from nncompare.workbench.data import load_digits
    from nncompare.workbench.models import SmallCNN
    from nncompare.workbench.training import train

    tr, te = load_digits("train"), load_digits("test")
    torch.manual_seed(0)
    net = SmallCNN(in_channels=1, num_classes=10)
    res = train(
        net,
        tr,
        epochs=30,
        lr=0.05,
        seed=0,
        batch_size=64,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        lr_schedule="cosine",
        checkpoint_dir=CKPT / "digits",
        checkpoint_every=1,
        eval_data=te,
    )
    t0 = time.perf_counter()
    df = nc.analyses.learning_dynamics(net, res, te.x)
    seconds = time.perf_counter() - t0
    doc = {
        "what": "learning dynamics (SVCCA vs the final net) of the demo's SmallCNN on digits",
        "test_accuracy": float(res.final_eval_accuracy or 0.0),
        "checkpoint_steps": res.checkpoint_steps,
        "seconds": round(seconds, 1),
        "load_avg": _load_avg(),
        "convergence_step": _convergence(df),
        "diagonal": _diag(df),
    }
    _save("dynamics_digits", doc, nc.plot.dynamics_grid(df))
    nc.plot.convergence_curves(df, threshold=0.9).savefig(
        OUT / "dynamics_digits_curves.png", dpi=110
    )
    print(f"dynamics digits: {seconds:.1f} s; convergence {doc['convergence_step']['0.9']}")


def _cifar_cnn() -> tuple[object, object, object]:
    from nncompare.workbench.models import SmallCNN, cifar_preprocess
    from nncompare.workbench.training import train

    with np.load(SHARED / "cifar10" / "cifar10_train_jpeg10k.npz") as f:
        xtr, ytr = cifar_preprocess(f["x"]), torch.as_tensor(f["y"])
    with np.load(SHARED / "cifar10" / "cifar10_test_jpeg10k.npz") as f:
        xte, yte = cifar_preprocess(f["x"][:2000]), torch.as_tensor(f["y"][:2000])
    torch.manual_seed(0)
    net = SmallCNN(in_channels=3, num_classes=10, widths=(16, 32, 64), image_size=32)
    res = train(
        net,
        (xtr, ytr),
        epochs=10,
        lr=0.05,
        seed=0,
        batch_size=128,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        lr_schedule="cosine",
        checkpoint_dir=CKPT / "cifar",
        checkpoint_every=[0, 1, 2, 3, 4, 5, 6, 8, 10],
        eval_data=(xte, yte),
    )
    return net, res, xte


def dynamics_cifar(net: object, res: object, xte: object) -> None:
    import nncompare as nc

    t0 = time.perf_counter()
    df = nc.analyses.learning_dynamics(net, res, xte)
    seconds = time.perf_counter() - t0
    doc = {
        "what": "learning dynamics (SVCCA vs the final net) of a SmallCNN (16-32-64) trained on "
        "10000 CIFAR-10 training images (JPEG copy), 10 epochs; 2000 test images",
        "test_accuracy": float(res.final_eval_accuracy or 0.0),
        "checkpoint_steps": res.checkpoint_steps,
        "seconds": round(seconds, 1),
        "load_avg": _load_avg(),
        "convergence_step": _convergence(df),
        "diagonal": _diag(df),
    }
    _save("dynamics_cifar_cnn", doc, nc.plot.dynamics_grid(df))
    nc.plot.convergence_curves(df, threshold=0.9).savefig(
        OUT / "dynamics_cifar_cnn_curves.png", dpi=110
    )
    print(
        f"dynamics CIFAR CNN: acc {doc['test_accuracy']:.3f}, {seconds:.1f} s; "
        f"convergence {doc['convergence_step']['0.9']}"
    )


def cross_model(net: object) -> None:
    import nncompare as nc
    from nncompare.workbench.models import cifar_preprocess, cifar_resnet

    r20 = cifar_resnet(20, weights=SHARED / "akamaster_resnet_cifar10" / "resnet20-12fca82f.th")
    with np.load(SHARED / "cifar10" / "cifar10_test_exact1017.npz") as f:
        x = cifar_preprocess(f["x"])
    la = ["relu1", "maxpool1", "relu2", "maxpool2", "relu3", "pool"]
    lb = ["relu", "layer1", "layer2", "layer3", "avgpool"]
    t0 = time.perf_counter()
    df = nc.compare_models(
        net,
        r20,
        x,
        layers_a=la,
        layers_b=lb,
        measures=["svcca"],
        conv="dft",
        names=("SmallCNN", "ResNet-20"),
    )
    seconds = time.perf_counter() - t0
    grid = df.pivot(index="layer_a", columns="layer_b", values="value").loc[la, lb]
    doc = {
        "what": "SmallCNN (CIFAR, 10 epochs) vs pretrained ResNet-20, SVCCA conv='dft' "
        "(frequency cropping to the smaller map)",
        "n_samples": int(df["n_samples"].iloc[0]),
        "seconds": round(seconds, 1),
        "load_avg": _load_avg(),
        "grid": {a: {b: round(float(v), 4) for b, v in row.items()} for a, row in grid.iterrows()},
    }
    _save("cross_model_dft", doc, nc.plot.heatmap(df, "svcca"))
    print(f"cross-model DFT: {seconds:.1f} s\n{grid.round(3)}")


def main() -> int:
    torch.set_num_threads(1)
    if not SHARED.exists():
        print(f"shared data not found at {SHARED}; set NNCOMPARE_SHARED", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    sensitivity_resnet20()
    dynamics_digits()
    net, res, xte = _cifar_cnn()
    dynamics_cifar(net, res, xte)
    cross_model(net)
    print(f"total {time.perf_counter() - t0:.0f} s, load avg {_load_avg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
