"""The PWCCA toy and the LSTM dynamics of Morcos, Raghu & Bengio (2018) at CPU scale.

1. PWCCA robustness (Fig. 2): ``nc.analyses.toys.signal_noise_curves`` — 10 shared signal
   dimensions plus 0-160 unshared noise dimensions per side (noise std 0.5 and 0.2),
   4000 samples, 3 seeds; mean CCA, SVCCA and PWCCA against the ratio.
2. LSTM dynamics (§4.1, Fig. 6d; App. A.3, Figs. A2-A4): a 3-layer ``nc.models.StackedLSTM``
   (32 units each) trained with Adam on MNIST-1D read as a 40-step sequence, checkpoints
   during training; each layer's last-step hidden state at every checkpoint against the
   final network (PWCCA and the unweighted mean CCA) on the 1000 test signals, and the
   final network's hidden state compared across sequence steps (PWCCA, mean CCA, cosine).

Writes ``benchmarks/results/many/many_*.csv``/``.png`` and ``many_experiments.json`` (the
headline numbers, timings, environment), and prints the numbers. About 2-3 minutes on one
thread.

Usage::

    python benchmarks/many_experiments.py [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _util import RESULTS, environment, write_json  # noqa: E402

OUT = RESULTS / "many"


def save(fig, name: str) -> None:
    fig.savefig(OUT / f"{name}.png", dpi=130)


def toy(record: dict, quick: bool) -> None:
    import nncompare.plot.many as pm
    from nncompare.analyses.toys import signal_noise_curves

    noise = (0, 5, 10, 20, 40, 80) if quick else (0, 2, 5, 10, 20, 40, 80, 160)
    out = {}
    for scale in (0.5, 0.2):
        t = time.perf_counter()
        df = signal_noise_curves(noise, n_signal=10, n_samples=4000, noise_scale=scale)
        df.to_csv(OUT / f"many_toy_noise{scale}.csv", index=False)
        save(
            pm.pwcca_toy_curves(df, title=f"Signal 10 dims + noise (std {scale})"),
            f"many_toy_noise{scale}",
        )
        mean = df.groupby(["n_noise", "measure"])["value"].mean().unstack()
        print(f"\ntoy, noise std {scale} (mean over 3 seeds):\n{mean.round(3)}")
        out[str(scale)] = {
            "by_noise_dims": {
                int(k): {m: round(float(v), 4) for m, v in r.items()} for k, r in mean.iterrows()
            },
            "seconds": round(time.perf_counter() - t, 2),
        }
    record["toy"] = out


def lstm(record: dict, quick: bool) -> None:
    import torch

    import nncompare as nc
    import nncompare.plot.many as pm
    from nncompare.analyses.recurrent import (
        convergence_summary,
        convergence_to_final,
        timestep_similarity,
    )
    from nncompare.capture import capture_recurrent
    from nncompare.models import StackedLSTM
    from nncompare.workbench.training import train

    tr, te = nc.data.load_mnist1d("train"), nc.data.load_mnist1d("test")
    epochs = 6 if quick else 12
    steps_per_epoch = -(-len(tr.y) // 64)
    total = epochs * steps_per_epoch
    schedule = sorted({0, 10, 25, 50, 100, 150, 200, 300, 400, 500, 600, 700} & set(range(total)))
    torch.manual_seed(0)
    net = StackedLSTM(1, hidden=(32, 32, 32))
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = train(
            net, (tr.x, tr.y), epochs=epochs, lr=0.01, seed=0, optimizer="adam", batch_size=64,
            checkpoint_dir=tmp, checkpoint_every=schedule, checkpoint_unit="step",
            eval_data=(te.x, te.y),
        )  # fmt: skip
        train_s = time.perf_counter() - t
        ckpts = {}
        for step, path in zip(res.checkpoint_steps, res.checkpoints, strict=True):
            m = StackedLSTM(1, hidden=(32, 32, 32))
            m.load_state_dict(torch.load(path, weights_only=True))
            ckpts[int(step)] = m
    acc = [round(h.eval_accuracy, 3) for h in res.history]
    print(f"\nLSTM: {res.steps} steps in {train_s:.0f} s, test accuracy per epoch {acc}")
    t = time.perf_counter()
    x = te.x
    df = convergence_to_final(ckpts, x, measures=("pwcca", "cca"))
    df.to_csv(OUT / "many_lstm_convergence.csv", index=False)
    save(
        pm.rnn_convergence(df, title="StackedLSTM on MNIST-1D: distance to the final network"),
        "many_lstm_convergence",
    )
    summary = convergence_summary(df, threshold=0.25)
    summary.to_csv(OUT / "many_lstm_convergence_summary.csv", index=False)
    print(summary.round(3).to_string(index=False))
    conv_s = time.perf_counter() - t
    states = capture_recurrent(net, x)
    steps = [*range(0, 40, 3), 39]
    ts = {}
    for layer in states.layers:
        g = timestep_similarity(states, layer, steps=steps)
        g.to_csv(OUT / f"many_lstm_timesteps_{layer}.csv", index=False)
        save(
            pm.rnn_timesteps(g, title=f"{layer} hidden state across sequence steps"),
            f"many_lstm_timesteps_{layer}",
        )
        off = g[g.step_a != g.step_b]
        near = off[(off.step_a - off.step_b).abs() <= 3]
        far = off[(off.step_a - off.step_b).abs() >= 18]
        ts[layer] = {
            m: {
                "adjacent_mean": round(float(near[near.measure == m]["value"].mean()), 3),
                "far_mean": round(float(far[far.measure == m]["value"].mean()), 3),
            }
            for m in ("pwcca", "cca", "cosine")
        }
    print("timesteps (mean similarity of steps 3 apart / 18+ apart):", ts)
    record["lstm"] = {
        "hidden": [32, 32, 32],
        "epochs": epochs,
        "steps": res.steps,
        "checkpoints": sorted(ckpts),
        "test_accuracy_per_epoch": acc,
        "final_test_accuracy": round(float(res.final_eval_accuracy), 4),
        "train_seconds": round(train_s, 1),
        "convergence_seconds": round(conv_s, 1),
        "convergence_summary": summary.to_dict(orient="records"),
        "timesteps": ts,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    import warnings

    import torch

    from nncompare.errors import NNCompareWarning

    # the hidden states of early sequence steps are rank-deficient (one input feature); the
    # CCA measures work in their column space and say so: once is enough here
    warnings.simplefilter("once", NNCompareWarning)
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    record: dict = {"environment": environment(), "quick": args.quick}
    t = time.perf_counter()
    toy(record, args.quick)
    lstm(record, args.quick)
    record["seconds"] = round(time.perf_counter() - t, 1)
    write_json(record, OUT / "many_experiments.json")
    print(f"\ntotal {record['seconds']} s -> {OUT}")


if __name__ == "__main__":
    main()
