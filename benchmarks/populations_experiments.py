"""The population analyses of Morcos, Raghu & Bengio (2018) at CPU scale, on real digits.

Small CNNs (``nc.models.SmallCNN``) on scikit-learn's 8×8 handwritten digits (real data that
ships with scikit-learn), conv layers averaged over positions as in the paper:

1. Converging coefficients (Fig. 1): one CNN with a checkpoint per epoch; sorted CCA
   coefficients of ``relu2``/``relu3`` against the final epoch, and the §2.2 test (top-k vs
   bottom-k CCA directions between epoch 1 and the middle epoch, followed to the end).
2. Generalising vs memorising (Fig. 3, App. A10, Figs. A5/A9): 3 CNNs on the true labels and
   3 on one fixed random permutation of the labels of a 600-image training subset, all
   trained to near-zero training loss; pairwise PWCCA, mean CCA, cosine and Euclidean
   distance per layer within each group and between groups, on the training and the test
   images.
3. Width (Fig. 4): groups of 3 CNNs with widths (w, 2w, 2w) for w = 4, 8, 16, 32; PWCCA
   distance within each group on a fixed random subset of 8 channels of ``relu3``
   (footnote 8), on all its channels, and on the 10 logits (the same size at every width),
   on the training and the test images, and its correlation with test accuracy.
4. Clusters (Fig. 5): 24 CNNs, 3 learning rates × 8 seeds; the PWCCA distance matrix at
   ``relu3`` (spatial mean, i.e. the penultimate layer) on the held-out images
   (``nc.compare_many``, ``nc.analyses.model_matrix``), average-linkage clusters
   (``nc.analyses.cluster``) and their adjusted Rand index with the learning rate (also
   complete and Ward linkage, and average linkage with one cluster more than rates), the
   nearest-neighbour agreement with its permutation p-value; the ordered heatmap with
   dendrogram and the MDS map (``nc.plot.many``); once with the cosine schedule of the
   other experiments (rates 0.003/0.03/0.3, 15 epochs), once closer to the paper with
   constant SGD rates 0.001/0.01/0.1 for 40 epochs (``clusters_constant``, files
   ``populations_clusters_constant*``).

Writes ``benchmarks/results/many/populations.json`` (every table, timings, provenance), the
tidy frames as ``populations_*.csv`` and one ``populations_*.png`` per figure, and prints
the headline numbers. About 10 minutes on one thread of a quiet machine.

Usage::

    python benchmarks/populations_experiments.py [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results" / "many"
LAYERS = ["relu1", "relu2", "relu3", "pool", "fc"]


def _cnn(widths: tuple[int, ...], seed: int) -> Any:
    import torch

    from nncompare.workbench.models import SmallCNN

    torch.manual_seed(seed)
    return SmallCNN(widths=widths)


def _train(net: Any, x: Any, y: Any, *, epochs: int, lr: float, seed: int, **kw: Any) -> Any:
    from nncompare.workbench.training import train

    kw.setdefault("lr_schedule", "cosine")
    return train(net, (x, y), epochs=epochs, lr=lr, seed=seed, **kw)


def converging(tr: Any, te: Any, epochs: int, tmp: Path) -> dict[str, Any]:
    from nncompare.analyses import populations as pop
    from nncompare.plot import populations as pplot
    from nncompare.workbench.models import SmallCNN

    net = _cnn((32, 64, 64), 0)
    res = _train(
        net,
        tr.x,
        tr.y,
        epochs=epochs,
        lr=0.05,
        seed=0,
        eval_data=te,
        checkpoint_dir=tmp,
        checkpoint_every=1,
    )
    import torch

    ckpts = {}
    for path in sorted(tmp.glob("epoch*.pt")):
        m = SmallCNN(widths=(32, 64, 64))
        m.load_state_dict(torch.load(path, weights_only=True))
        ckpts[f"e{int(path.stem[5:])}"] = m
    out: dict[str, Any] = {"test_accuracy": [h.eval_accuracy for h in res.history]}
    out["train_loss"] = [h.train_loss for h in res.history]
    names = list(ckpts)
    for layer in ("relu2", "relu3"):
        cc = pop.converging_coefficients(ckpts, te.x, layer)
        ds = pop.direction_stability(
            ckpts, te.x, layer, early=names[0], middle=names[len(names) // 2], k=16
        )
        cc.to_csv(OUT / f"populations_converging_{layer}.csv", index=False)
        ds.to_csv(OUT / f"populations_stability_{layer}.csv", index=False)
        fig = pplot.converging_coefficients(cc)
        fig.savefig(OUT / f"populations_converging_{layer}.png", dpi=130)
        fig = pplot.direction_stability(ds)
        fig.savefig(OUT / f"populations_stability_{layer}.png", dpi=130)
        mean = cc.groupby("checkpoint", sort=False)["mean_rho"].first()
        piv = ds.pivot(index="checkpoint", columns="part", values="value").reindex(
            ds["checkpoint"].unique()
        )
        out[layer] = {
            "mean_rho_by_checkpoint": mean.round(4).to_dict(),
            "stable": piv["stable"].round(4).to_dict(),
            "unstable": piv["unstable"].round(4).to_dict(),
            "fraction_rho_above_0.9_first_last": [
                float((cc[cc["checkpoint"] == c]["rho"] > 0.9).mean())
                for c in (names[0], names[-2])
            ],
        }
    return out


def memorising(tr: Any, te: Any, n_train: int, epochs: int, n_nets: int) -> dict[str, Any]:
    import torch

    import nncompare as nc
    from nncompare.analyses import populations as pop
    from nncompare.plot import populations as pplot
    from nncompare.workbench.training import evaluate

    x, y = tr.x[:n_train], tr.y[:n_train]
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(123))
    y_rand = y[perm]  # one fixed random permutation of the labels, shared by every network
    models, groups, acc = {}, {}, {}
    for kind, labels in (("generalising", y), ("memorising", y_rand)):
        for s in range(n_nets):
            name = f"{kind[:3]}{s}"
            net = _cnn((32, 64, 64), 100 + s)
            _train(net, x, labels, epochs=epochs, lr=3e-3, seed=s, optimizer="adam", batch_size=32)
            models[name], groups[name] = net, kind
            acc[name] = {
                "train": evaluate(net, (x, labels)),
                "test": evaluate(net, te),
                "train_loss": float(
                    torch.nn.functional.cross_entropy(net.eval()(x), labels).detach()
                ),
            }
    out: dict[str, Any] = {"accuracy": acc, "n_train": n_train}
    for split, data in (("train", x), ("test", te.x)):
        df = nc.compare_many(models, data, layers=LAYERS, measures=["pwcca", "cca"])
        dd = pop.direct_distances(models, data, layers=LAYERS)
        full = df.assign(split=split)
        full.to_csv(OUT / f"populations_memorising_pairs_{split}.csv", index=False)
        summ = pop.group_summary(df, groups)
        summ_d = pop.group_summary(dd, groups)
        both = __import__("pandas").concat([summ, summ_d], ignore_index=True)
        both.to_csv(OUT / f"populations_memorising_{split}.csv", index=False)
        fig = new_fig_row(4)
        for ax, m in zip(fig.axes, ["pwcca", "cca", "cosine", "euclidean"], strict=True):
            pplot.group_distances(both, measure=m, ax=ax, title=f"{m} ({split} images)")
        fig.savefig(OUT / f"populations_memorising_{split}.png", dpi=130)
        table = {}
        for (m, comp), sub in both.groupby(["measure", "comparison"], sort=False):
            table[f"{m} | {comp}"] = {
                la: f"{mu:.3f} ± {sd:.3f}"
                for la, mu, sd in zip(sub["layer"], sub["mean"], sub["std"], strict=True)
            }
        out[split] = table
        p = summ[summ["measure"] == "pwcca"].set_index(["layer", "comparison"])["mean"]
        out[f"{split}_gen_minus_mem_pwcca"] = {
            la: round(float(p[(la, "generalising")] - p[(la, "memorising")]), 4) for la in LAYERS
        }
    return out


def new_fig_row(n: int) -> Any:
    from nncompare.plot._style import new_figure

    fig = new_figure((4.2 * n, 3.3))
    fig.subplots(1, n)
    return fig


def width(tr: Any, te: Any, ws: list[int], n_nets: int, epochs: int) -> dict[str, Any]:
    from nncompare.analyses import populations as pop
    from nncompare.plot import populations as pplot
    from nncompare.workbench.training import evaluate

    models, groups, acc = {}, {}, {}
    for w in ws:
        for s in range(n_nets):
            name = f"w{w}_s{s}"
            net = _cnn((w, 2 * w, 2 * w), 200 + s)
            _train(net, tr.x, tr.y, epochs=epochs, lr=0.05, seed=s)
            models[name], groups[name], acc[name] = net, str(w), evaluate(net, te)
    n_units = 2 * min(ws)
    import pandas as pd

    import nncompare as nc

    variants = {
        f"relu3, {n_units} random channels, train": pop.subset_distances(
            models, tr.x, "relu3", n_units=n_units, groups=groups
        ),
        f"relu3, {n_units} random channels, test": pop.subset_distances(
            models, te.x, "relu3", n_units=n_units, groups=groups
        ),
    }
    for split, data in (("train", tr.x), ("test", te.x)):
        df = nc.compare_many(models, data, layers=["relu3", "fc"], measures=["pwcca"])
        same = df["model_a"].map(groups) == df["model_b"].map(groups)
        df = df[same]
        variants[f"relu3, all channels, {split}"] = df[df["layer_a"] == "relu3"]
        variants[f"fc (10 logits), {split}"] = df[df["layer_a"] == "fc"]
    mean_acc = {str(w): sum(acc[f"w{w}_s{s}"] for s in range(n_nets)) / n_nets for w in ws}
    out: dict[str, Any] = {
        "n_units": n_units,
        "mean_test_accuracy": {k: round(v, 4) for k, v in mean_acc.items()},
    }
    summaries, all_pairs = [], []
    for i, (variant, pairs) in enumerate(variants.items()):
        summ = pop.group_summary(pairs, groups)
        corr = pop.distance_accuracy(pairs, acc, groups=groups)
        summaries.append(summ.assign(variant=variant))
        all_pairs.append(pairs.assign(variant=variant))
        out[variant] = {
            "within_group_pwcca_distance": {
                c: f"{m:.3f} ± {s:.3f}"
                for c, m, s in zip(summ["comparison"], summ["mean"], summ["std"], strict=True)
            },
            "correlation_with_accuracy": corr[["level", "n", "pearson_r", "spearman_r"]]
            .round(3)
            .to_dict(orient="records"),
        }
        if i == 0 or variant == "fc (10 logits), train":
            fig = pplot.width_trend(summ, pairs, acc, groups, title=variant)
            fig.savefig(OUT / f"populations_width{'' if i == 0 else '_fc'}.png", dpi=130)
    pd.concat(all_pairs).to_csv(OUT / "populations_width_pairs.csv", index=False)
    pd.concat(summaries).to_csv(OUT / "populations_width.csv", index=False)
    return out


def clusters(
    tr: Any, te: Any, lrs: list[float], n_seeds: int, epochs: int, schedule: str = "cosine"
) -> dict[str, Any]:
    """Fig. 5: PWCCA distances at ``relu3`` (spatial mean) on the held-out images, clusters
    against the learning rate, and a permutation test of the nearest-neighbour agreement."""
    import numpy as np

    import nncompare as nc
    from nncompare.analyses import populations as pop
    from nncompare.plot.many import many_heatmap, many_mds
    from nncompare.workbench.training import evaluate

    models, lr_of, acc = {}, {}, {}
    for i, lr in enumerate(lrs):
        for s in range(n_seeds):
            name = f"lr{lr:g}_s{s}"
            # every network its own initialisation and data order (as in the paper): with
            # shared seeds across learning rates, the seed, not the rate, groups them
            seed = 300 + 100 * i + s
            net = _cnn((16, 32, 32), seed)
            _train(net, tr.x, tr.y, epochs=epochs, lr=lr, seed=seed, lr_schedule=schedule)
            models[name], lr_of[name], acc[name] = net, f"{lr:g}", evaluate(net, te)
    # held-out images, as in the paper
    df = nc.compare_many(models, te.x, layers=["relu3"], measures=["pwcca"])
    meta = {k: {"lr": v} for k, v in lr_of.items()}
    M = nc.analyses.model_matrix(df, "relu3", "pwcca", metadata=meta)
    k = len(lrs)
    cl = nc.analyses.cluster(M, n_clusters=k)
    cl_complete = nc.analyses.cluster(M, n_clusters=k, method="complete")
    cl_ward = nc.analyses.cluster(M, n_clusters=k, method="ward")
    # one more flat cluster than rates: average linkage spends a cluster on a lone outlier
    cl_k1 = nc.analyses.cluster(M, n_clusters=k + 1)
    tag = "" if schedule == "cosine" else f"_{schedule}"
    cl.to_frame().to_csv(OUT / f"populations_clusters{tag}.csv", index=False)
    __import__("pandas").DataFrame(M.values, index=M.names, columns=M.names).to_csv(
        OUT / f"populations_clusters{tag}_matrix.csv"
    )
    ari = cl.agreement("lr")
    fig = many_heatmap(cl, title=f"PWCCA distance at relu3, {schedule} lr (ARI {ari:.2f})")
    fig.savefig(OUT / f"populations_clusters{tag}.png", dpi=130)
    many_mds(cl, color_by="lr").savefig(OUT / f"populations_clusters{tag}_mds.png", dpi=130)
    summ = pop.group_summary(df, lr_of)
    frame = cl.to_frame()
    D = M.values.copy()
    np.fill_diagonal(D, np.inf)
    labels = np.array([lr_of[n] for n in M.names])
    nearest = D.argmin(axis=1)
    nn_same = float(np.mean(labels[nearest] == labels))
    chance = (n_seeds - 1) / (len(labels) - 1)
    rng = np.random.default_rng(0)
    perm = [np.mean((p := rng.permutation(labels))[nearest] == p) for _ in range(2000)]
    nn_p = (1 + sum(v >= nn_same for v in perm)) / (1 + len(perm))
    return {
        "n_models": len(models),
        "n_pairs": len(df),
        "schedule": schedule,
        "ari": round(ari, 4),
        "ari_complete_linkage": round(cl_complete.agreement("lr"), 4),
        "ari_ward_linkage": round(cl_ward.agreement("lr"), 4),
        "ari_average_linkage_k_plus_1": round(cl_k1.agreement("lr"), 4),
        "nearest_neighbour_same_lr": round(nn_same, 4),
        "nearest_neighbour_chance": round(chance, 4),
        "nearest_neighbour_permutation_p": round(float(nn_p), 4),
        "distance_images": "test (held out)",
        "learning_rates": [f"{lr:g}" for lr in lrs],
        "epochs": epochs,
        "cluster_by_lr_k_plus_1": cl_k1.to_frame().groupby("lr")["cluster"].apply(list).to_dict(),
        "cluster_by_lr": frame.groupby("lr")["cluster"].apply(list).to_dict(),
        "mean_test_accuracy_by_lr": {
            f"{lr:g}": round(sum(acc[f"lr{lr:g}_s{s}"] for s in range(n_seeds)) / n_seeds, 4)
            for lr in lrs
        },
        "distance_within_between": {
            c: f"{m:.3f} ± {s:.3f}"
            for c, m, s in zip(summ["comparison"], summ["mean"], summ["std"], strict=True)
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny settings (a smoke test)")
    ap.add_argument("--only", nargs="*", default=None, help="converging memorising width clusters")
    args = ap.parse_args(argv)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(args.threads)
    import tempfile

    import torch

    import nncompare as nc
    from nncompare.workbench.data import load_digits

    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    tr, te = load_digits("train"), load_digits("test")
    q = args.quick
    results: dict[str, Any] = {
        "provenance": {
            "nncompare": nc.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": args.threads,
            "data": "scikit-learn digits, stratified split seed 0 (1347 train / 450 test)",
            "load_avg_start": os.getloadavg(),
            "quick": q,
        },
        "seconds": {},
    }
    todo = args.only or ["converging", "memorising", "width", "clusters", "clusters_constant"]
    jobs = {
        "converging": lambda: converging(tr, te, 4 if q else 20, Path(tempfile.mkdtemp())),
        "memorising": lambda: memorising(
            tr, te, 300 if q else 600, 10 if q else 100, 2 if q else 3
        ),
        "width": lambda: width(
            tr, te, [4, 8] if q else [4, 8, 16, 32], 2 if q else 3, 3 if q else 20
        ),
        "clusters": lambda: clusters(
            tr, te, [0.01, 0.1] if q else [0.003, 0.03, 0.3], 2 if q else 8, 3 if q else 15
        ),
        # closer to the paper: constant SGD rates two decades apart, trained to convergence
        "clusters_constant": lambda: clusters(
            tr,
            te,
            [0.01, 0.1] if q else [0.001, 0.01, 0.1],
            2 if q else 8,
            3 if q else 40,
            "constant",
        ),
    }
    for name in todo:
        t0 = time.perf_counter()
        results[name] = jobs[name]()
        results["seconds"][name] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {results['seconds'][name]} s", file=sys.stderr)
    results["provenance"]["load_avg_end"] = os.getloadavg()
    path = OUT / ("populations_quick.json" if q else "populations.json")
    if args.only and path.exists():
        old = json.loads(path.read_text())
        old.update({k: v for k, v in results.items() if k != "seconds"})
        old.setdefault("seconds", {}).update(results["seconds"])
        results = old
    path.write_text(json.dumps(results, indent=1, default=str))
    print(
        json.dumps({k: v for k, v in results.items() if k != "provenance"}, indent=1, default=str)[
            :6000
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
