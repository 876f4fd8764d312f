"""The main job: train two small CNNs from different seeds, compare every layer pair, report.

Everything runs on CPU in well under two minutes on two cores, with data that ships with
scikit-learn (1797 real 8×8 handwritten digits): nothing is downloaded. The report has a
model-stitching section too: net A's front stitched into net B's back at every block, by
least squares and by task loss (:func:`nncompare.stitching.experiments.layer_sweep`), and
a weights section: the two networks' spatial eigenfilters, channel-weight spectra and
aligned channel covariances (:func:`nncompare.weights.experiments.weights_summary`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoResult", "run_demo"]

DEMO_MEASURES: dict[str, dict[str, Any]] = {
    "cka": {},
    "cca": {},
    "svcca": {"variance": 0.99},
    "pwcca": {},
    "procrustes": {},
    "cka_debiased": {},
}
#: cuts of the stitching section: each conv block's output, the max-pooled map, the global pool
DEMO_STITCH_LAYERS: tuple[str, ...] = ("relu1", "maxpool1", "relu2", "pool")


@dataclass
class DemoResult:
    """What the demo produced: the report files, the comparison and the training figures."""

    out_dir: Path
    report: Any
    frame: Any
    accuracies: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: the stitching layer sweep (None with ``stitching=False``)
    stitching: Any = None
    #: net A's task-alignment curves before/after training (None with ``alignment=False``)
    alignment: Any = None
    #: the weight lens's summary (None with ``weights=False``)
    weights: Any = None
    #: net A's learning dynamics over its checkpoints (None with ``dynamics=False``)
    dynamics: Any = None


def run_demo(
    out_dir: str | Path = "nncompare-report",
    *,
    seeds: tuple[int, int] = (0, 1),
    epochs: int = 30,
    log: Any = print,
    stitching: bool = True,
    stitch_epochs: int = 3,
    alignment: bool = True,
    weights: bool = True,
    dynamics: bool = True,
) -> DemoResult:
    """Train two SmallCNNs on digits with different seeds, compare all layers, write a report.

    Parameters
    ----------
    out_dir : path
        Directory for ``report.html``, ``results.csv``, ``results.json`` and the checkpoints.
    seeds : (int, int)
        Seeds of the two networks (initialisation and data order).
    epochs : int
        Training epochs per network.
    log : callable
        Receives one progress line at a time (``print`` by default).
    stitching : bool
        Also stitch net A into net B at every block (least squares and task loss,
        evaluated on the test split) and add the section to the report.
    stitch_epochs : int
        Epochs of task-loss training per cut.
    alignment : bool
        Also measure the task alignment of net A's layers on the test split before and
        after training (:func:`nncompare.alignment.experiments.before_after`; Imani, Hu &
        White) and add the section to the report.
    weights : bool
        Also compare the two networks' weights (the weight lens: spatial eigenfilters,
        channel spectra, aligned channel covariances on the test images) and add the
        section to the report.
    dynamics : bool
        Also save net A at a few epochs and compare every layer at each of them with every
        layer of the trained net (:func:`nncompare.analyses.learning_dynamics`, SVCCA;
        Raghu et al. 2017 §4.1) and add the learning-dynamics section to the report.
    """
    import torch

    from nncompare.analyses.compare import compare_models
    from nncompare.report import write_report
    from nncompare.workbench.data import load_digits
    from nncompare.workbench.models import SmallCNN
    from nncompare.workbench.training import train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_set = load_digits("train")
    test_set = load_digits("test")
    log(
        f"data: scikit-learn digits, {len(train_set.x)} train / {len(test_set.x)} test images "
        "(8x8, 10 classes)"
    )
    nets, acc, seconds = [], {}, {}
    initial: list[Any] = []  # the untrained weights, for the alignment section
    for name, seed in zip(("A", "B"), seeds, strict=True):
        torch.manual_seed(seed)
        net = SmallCNN(in_channels=1, num_classes=10)
        initial.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        ts = time.perf_counter()
        result = train(
            net,
            train_set,
            epochs=epochs,
            lr=0.05,
            seed=seed,
            batch_size=64,
            optimizer="sgd",
            momentum=0.9,
            weight_decay=5e-4,
            lr_schedule="cosine",
            checkpoint_dir=out / "checkpoints" / f"net_{name}_seed{seed}",
            checkpoint_every=_dynamics_epochs(epochs) if dynamics and name == "A" else None,
            eval_data=test_set,
        )
        if name == "A":
            trained_a = result
        seconds[f"train_{name}"] = time.perf_counter() - ts
        acc[name] = float(result.final_eval_accuracy or 0.0)
        log(
            f"trained net {name} (seed {seed}): test accuracy {acc[name]:.1%} "
            f"in {seconds[f'train_{name}']:.1f} s"
        )
        nets.append(net)
    ts = time.perf_counter()
    df = compare_models(
        nets[0],
        nets[1],
        test_set.x,
        measures=DEMO_MEASURES,
        conv="mean",
        names=(f"SmallCNN seed {seeds[0]}", f"SmallCNN seed {seeds[1]}"),
        provenance={
            "seeds": list(seeds),
            "data": "scikit-learn load_digits, test split (stratified 25%, seed 0)",
            "training": f"SGD lr 0.05 momentum 0.9 wd 5e-4 cosine, {epochs} epochs, batch 64",
            "test_accuracy": acc,
        },
    )
    seconds["compare"] = time.perf_counter() - ts
    n_layers = df["layer_a"].nunique()
    log(
        f"compared {n_layers} x {df['layer_b'].nunique()} layer pairs with "
        f"{df['measure'].nunique()} measures on {int(df['n_samples'].iloc[0])} test images "
        f"in {seconds['compare']:.1f} s"
    )
    df.attrs["title"] = "Two SmallCNNs trained on digits from different seeds"
    sweep = None
    if stitching:
        from nncompare.stitching.experiments import layer_sweep

        ts = time.perf_counter()
        sweep = layer_sweep(
            nets[0],
            nets[1],
            list(DEMO_STITCH_LAYERS),
            train_set,
            test_set,
            methods=("ls", "task"),
            epochs=stitch_epochs,
        )
        seconds["stitching"] = time.perf_counter() - ts
        measured = sweep[sweep["method"].isin(["ls", "task"])]
        worst = measured.groupby("method")["relative_accuracy"].min()
        log(
            f"stitched net A into net B at {len(DEMO_STITCH_LAYERS)} cuts: lowest relative "
            f"accuracy {worst.get('ls', float('nan')):.1%} by least squares, "
            f"{worst.get('task', float('nan')):.1%} by task loss ({stitch_epochs} epochs) "
            f"in {seconds['stitching']:.1f} s"
        )
    wsum = None
    if weights:
        import warnings

        from nncompare.errors import NNCompareWarning
        from nncompare.weights.experiments import weights_summary

        ts = time.perf_counter()
        with warnings.catch_warnings():
            # a layer without a learned component is said in the log line and the report
            warnings.simplefilter("ignore", NNCompareWarning)
            wsum = weights_summary(
                nets[0],
                nets[1],
                test_set.x,
                names=(f"SmallCNN seed {seeds[0]}", f"SmallCNN seed {seeds[1]}"),
            )
        seconds["weights"] = time.perf_counter() - ts
        comp = wsum.comparison
        s_text = ", ".join(
            f"{layer} {value:.2f}" if value == value else f"{layer} undefined"
            for layer, value in zip(comp["layer"], comp["S"], strict=True)
        )
        log(
            f"compared the weights of {len(comp)} layers (aligned on the test images): "
            f"S {s_text} in {seconds['weights']:.1f} s"
        )
    aligned = None
    if alignment:
        from nncompare.alignment.experiments import before_after, summarize

        ts = time.perf_counter()
        aligned = before_after(nets[0], initial[0], test_set, list(DEMO_STITCH_LAYERS))
        seconds["alignment"] = time.perf_counter() - ts
        rel = summarize(aligned).set_index(["representation", "layer"])["mean_sigma_rel"]
        last = DEMO_STITCH_LAYERS[-1]
        log(
            f"task alignment of net A at {len(DEMO_STITCH_LAYERS)} layers on the test images: "
            f"labels' mean singular value at {last} {rel[('init', last)]:.3f} before and "
            f"{rel[('trained', last)]:.3f} after training (relative to sqrt(n)) "
            f"in {seconds['alignment']:.1f} s"
        )
    learning = None
    if dynamics:
        import pandas as pd

        from nncompare.analyses.dynamics import convergence_steps, learning_dynamics

        ts = time.perf_counter()
        learning = learning_dynamics(
            nets[0], trained_a, test_set.x, layers=[*DEMO_STITCH_LAYERS, "fc"], measure="svcca"
        )
        seconds["dynamics"] = time.perf_counter() - ts
        steps = convergence_steps(learning, 0.9)
        at = ", ".join(
            f"{r.layer} {'-' if pd.isna(r.converged_step) else int(r.converged_step)}"
            for r in steps.itertuples()
        )
        log(
            f"learning dynamics of net A over {len(trained_a.checkpoints)} checkpoints: "
            f"first step staying at SVCCA >= 0.9 with itself at the end: {at} "
            f"in {seconds['dynamics']:.1f} s"
        )
    report = write_report(
        df,
        out,
        title=df.attrs["title"],
        alignment=aligned,
        stitching=sweep,
        weights=wsum,
        dynamics=learning,
    )
    seconds["total"] = time.perf_counter() - t0
    return DemoResult(
        out_dir=out,
        report=report,
        frame=df,
        accuracies=acc,
        seconds=seconds,
        alignment=aligned,
        stitching=sweep,
        weights=wsum,
        dynamics=learning,
    )


def _dynamics_epochs(epochs: int) -> list[int]:
    """Epochs at which the demo saves net A: dense early, where layers change most."""
    marks = {0, 1, 2, 3, 5, 8, 12, epochs // 2, epochs}
    return sorted(m for m in marks if 0 <= m <= epochs)
