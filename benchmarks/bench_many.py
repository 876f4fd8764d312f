"""nc.compare_many on a model set: 20 models × 6 layers (190 model pairs) × 4 measures.

Times, on the 1797 scikit-learn digits and 20 MLPs ``64 → 5 × 64 → 10`` (layers relu1-relu5
and the logits fc6, measures cka, cca, svcca, pwcca; 190 × 6 × 4 = 4560 values):

* ``forward``: the 20 models' plain forward passes over the data (no hooks), the floor;
* ``compare_many``: one capture per model (streaming moments), every pair from them;
* ``per-pair loop``: what one writes without it: for each of the 190 pairs capture both
  models (``nc.capture``) and call each measure on the arrays of each layer.

and the peak memory of ``compare_many`` as the number of models grows (a fresh process per
size; resident-set growth over the process before the call). Prints a table and writes
``benchmarks/results/many/bench_many.json`` with the load average before and after (other
jobs on the machine inflate the times: compare the ratios, and rerun on a quiet machine).

Usage::

    python benchmarks/bench_many.py [--threads 1] [--repeats 3] [--sizes 5 10 20 40]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results" / "many"
LAYERS = ["relu1", "relu2", "relu3", "relu4", "relu5", "fc6"]
MEASURES = ["cka", "cca", "svcca", "pwcca"]


def _setup(n_models: int) -> tuple[dict[str, Any], Any]:
    import torch

    from nncompare.workbench.data import load_digits
    from nncompare.workbench.models import MLP

    x = load_digits("all").x
    models = {}
    for i in range(n_models):
        torch.manual_seed(i)
        models[f"m{i:02d}"] = MLP(64, (64,) * 5, 10).eval()
    return models, x


def _forward(models: dict[str, Any], x: Any) -> None:
    import torch

    with torch.no_grad():
        for m in models.values():
            for s in range(0, len(x), 256):
                m(x[s : s + 256])


def _many(models: dict[str, Any], x: Any) -> Any:
    import nncompare as nc

    return nc.compare_many(models, x, layers=LAYERS, measures=MEASURES)


def _loop(models: dict[str, Any], x: Any) -> Any:
    import itertools
    import warnings

    import pandas as pd

    import nncompare as nc
    from nncompare.measures._registry import compute

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, b in itertools.combinations(models, 2):
            acts_a = nc.capture(models[a], x, LAYERS)
            acts_b = nc.capture(models[b], x, LAYERS)
            for layer in LAYERS:
                for m in MEASURES:
                    v = float(compute(acts_a[layer], acts_b[layer], m))
                    rows.append((a, b, layer, m, v))
    return pd.DataFrame(rows, columns=["model_a", "model_b", "layer_a", "measure", "value"])


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(n_models: int) -> None:
    """Peak memory of one compare_many call, printed as JSON (run in a fresh process)."""
    import warnings

    models, x = _setup(n_models)
    with warnings.catch_warnings():  # imports, first-call workspaces: not part of the growth
        warnings.simplefilter("ignore")
        _many(dict(list(models.items())[:2]), x[:300])
    before = _rss_kib()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = _many(models, x)
    sec = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "n_models": n_models,
                "pairs": n_models * (n_models - 1) // 2,
                "rows": len(df),
                "seconds": round(sec, 3),
                "rss_before_mib": round(before / 1024, 1),
                "peak_growth_mib": round((max(peak, peak_before) - before) / 1024, 1),
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loop-repeats", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="*", default=[5, 10, 20, 40])
    ap.add_argument("--memory-only", action="store_true", help="only the memory sizes")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(args.threads)
    import warnings

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if args.child is not None:
        child(args.child)
        return 0
    load_start = os.getloadavg()
    if args.memory_only:
        memory = _memory(args.sizes, args.threads)
        path = OUT / "bench_many.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        old["memory"] = memory
        old["load_avg_memory"] = {"start": load_start, "end": os.getloadavg()}
        path.write_text(json.dumps(old, indent=1))
        _print_memory(memory)
        return 0
    models, x = _setup(20)

    def best(fn: Any, repeats: int) -> tuple[float, Any]:
        times, out = [], None
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return min(times), out

    _forward(models, x[:8])  # warm-up
    t_fwd, _ = best(lambda: _forward(models, x), args.repeats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_many, df = best(lambda: _many(models, x), args.repeats)
    t_loop, loop = best(lambda: _loop(models, x), args.loop_repeats)
    key = ["model_a", "model_b", "layer_a", "measure"]
    merged = df.merge(loop, on=key, suffixes=("", "_loop"))
    diff = float(np.nanmax(np.abs(merged["value"] - merged["value_loop"])))
    memory = _memory(args.sizes, args.threads)
    out = {
        "setup": {
            "models": 20,
            "layers": LAYERS,
            "measures": MEASURES,
            "pairs": 190,
            "values": len(df),
            "samples": len(x),
            "model": "MLP(64, (64,)*5, 10)",
            "threads": args.threads,
            "torch": torch.__version__,
        },
        "seconds": {
            "forward": round(t_fwd, 4),
            "compare_many": round(t_many, 3),
            "per_pair_loop": round(t_loop, 3),
        },
        "ratios": {
            "compare_many_over_forward": round(t_many / t_fwd, 1),
            "loop_over_compare_many": round(t_loop / t_many, 1),
        },
        "max_abs_diff_loop_vs_many": diff,
        "matched_values": len(merged),
        "memory": memory,
        "load_avg": {"start": load_start, "end": os.getloadavg()},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_many.json").write_text(json.dumps(out, indent=1))
    print(
        f"20 models x 6 layers x 4 measures = {len(df)} values (190 pairs), "
        f"{len(x)} samples, {args.threads} thread(s)"
    )
    print(f"  forward passes alone : {t_fwd:8.3f} s")
    print(f"  compare_many         : {t_many:8.3f} s  ({t_many / t_fwd:.0f}x forward)")
    print(f"  per-pair loop        : {t_loop:8.3f} s  ({t_loop / t_many:.1f}x compare_many)")
    print(f"  max |many - loop|    : {diff:.2e} over {len(merged)} values")
    _print_memory(memory)
    print(f"  load average start {load_start}, end {os.getloadavg()}")
    return 0


def _memory(sizes: list[int], threads: int) -> list[dict[str, Any]]:
    out = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--threads", str(threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def _print_memory(memory: list[dict[str, Any]]) -> None:
    print("  memory (fresh process per size, after a warm-up call):")
    for m in memory:
        print(
            f"    {m['n_models']:3d} models, {m['pairs']:4d} pairs: {m['seconds']:7.2f} s, "
            f"peak +{m['peak_growth_mib']:.1f} MiB over {m['rss_before_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    raise SystemExit(main())
