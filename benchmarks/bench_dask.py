"""A model-set grid on Dask: 1 and 2 LocalCluster workers against the in-process run.

``nc.compare_many`` over ``--models`` small MLPs (every unordered pair, ``--layers``
depth-matched layers, 4 streaming measures) on ``--n`` random inputs:

* in process (``executor=None``: one capture, the pair tasks in a loop);
* on a LocalCluster of 1 and of 2 workers (worker processes, 1 thread each; started
  before the timing, reused by every repeat): the inputs cut into shards captured as tasks,
  the shards' moments tree-merged on the cluster, then the pair tasks;
* the overhead per task: ``client.map`` of a no-op over ``--tasks`` items, per item, and
  ``DaskExecutor.map`` of it (the function scattered once, results gathered in order).

Every Dask result is checked against the in-process values (max |difference| printed).
The machine's load average is printed with the times; on a shared machine the speed-ups
mean little, the per-task overhead a little more.

Usage::

    python benchmarks/bench_dask.py [--models 8] [--layers 3] [--n 4000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _util import bench, fmt_s, loadavg, positive_int, quiet_third_party, table  # noqa: E402

import nncompare as nc  # noqa: E402

MEASURES = ["cka", "cca", "svcca", "pwcca"]


def make_models(n_models: int, n_layers: int, width: int, d_in: int) -> dict[str, torch.nn.Module]:
    out = {}
    for i in range(n_models):
        torch.manual_seed(i)
        mods: list[torch.nn.Module] = []
        d = d_in
        for _ in range(n_layers):
            mods += [torch.nn.Linear(d, width), torch.nn.ReLU()]
            d = width
        out[f"m{i}"] = torch.nn.Sequential(*mods).eval()
    return out


def _noop(x: object) -> object:
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--repeats", type=positive_int, default=3)
    ap.add_argument("--tasks", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    quiet_third_party()
    import distributed

    from nncompare.parallel import DaskExecutor

    models = make_models(args.models, args.layers, args.width, 32)
    x = torch.randn(args.n, 32, generator=torch.Generator().manual_seed(0))
    layers = [str(2 * i + 1) for i in range(args.layers)]  # the ReLUs
    kw = dict(layers=layers, measures=MEASURES, batch_size=500)
    n_pairs = args.models * (args.models - 1) // 2
    print(
        f"{args.models} models x {args.layers} layers (width {args.width}), {n_pairs} model "
        f"pairs, {n_pairs * args.layers * len(MEASURES)} (pair, measure) tasks, n={args.n}"
    )
    print(f"load average before: {loadavg()}")
    ref = bench(lambda: nc.compare_many(models, x, **kw), repeats=args.repeats)
    rows = [["in process", fmt_s(ref.median), "1.00x", "-"]]
    overhead: list[list[str]] = []
    for workers in (1, 2):
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = distributed.Client(cluster, set_as_default=False)
        try:
            ex = DaskExecutor(client)
            t = bench(
                lambda ex=ex: nc.compare_many(models, x, executor=ex, **kw), repeats=args.repeats
            )
            diff = float(np.max(np.abs(t.last["value"].to_numpy() - ref.last["value"].to_numpy())))
            rows.append(
                [
                    f"Dask, {workers} worker(s)",
                    fmt_s(t.median),
                    f"{ref.median / t.median:.2f}x",
                    f"{diff:.1e}",
                ]
            )
            items = list(range(args.tasks))
            t0 = time.perf_counter()
            client.gather(client.map(_noop, items, pure=False))
            per_noop = (time.perf_counter() - t0) / args.tasks
            t0 = time.perf_counter()
            ex.map(_noop, items)
            per_map = (time.perf_counter() - t0) / args.tasks
            overhead.append(
                [f"{workers} worker(s)", f"{per_noop * 1e3:.2f} ms", f"{per_map * 1e3:.2f} ms"]
            )
        finally:
            client.close()
            cluster.close()
    print(table(rows, ["run", "median time", "speed-up", "max |diff| vs in process"]))
    print()
    print(table(overhead, ["cluster", "client.map no-op / task", "DaskExecutor.map / task"]))
    print(f"load average after: {loadavg()}; cpu count {os.cpu_count()}")


if __name__ == "__main__":
    main()
