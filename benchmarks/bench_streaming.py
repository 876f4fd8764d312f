"""Benchmark 5: streaming ``nc.Moments`` (batches of 1000) vs in-memory, as n grows.

Each configuration runs in a fresh subprocess so that its peak memory is its own:

* ``stream``: batches are generated one at a time and fed to ``Moments.update``; the full
  data never exists;
* ``memory``: the same batches are written into full (n, d) arrays, then
  ``nc.Moments.from_arrays(X, Y)`` (one product) and ``nc.cca``/``nc.cka`` of it.

Reported: the time of the nncompare calls (data generation excluded) for the first call
in the fresh process and for a second one (the first pays the kernel's first-touch page
faults for every new large buffer, which are expensive on a VM), the values (they
must agree), the tracemalloc peak (allocations traced by Python, numpy's included) and the
process's peak RSS (VmHWM) minus that of a subprocess that only imports and
generates one batch.

Run alone: ``python benchmarks/bench_streaming.py [--quick]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _util import fmt_s, fmt_x, table

HERE = Path(__file__).resolve()


def _batch(seed: int, b: int, d: int, W: Any) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((b, d)) + 0.2
    Y = X @ W + rng.standard_normal((b, d))
    return X, Y


def worker(mode: str, n: int, d: int, batch: int) -> dict[str, Any]:
    """Runs inside the subprocess; prints one JSON line."""
    import tracemalloc

    import numpy as np

    import nncompare as nc

    W = np.random.default_rng(12345).standard_normal((d, d)) / np.sqrt(d)
    # warm-up: lazy imports and first-call costs stay out of the timings and the peak
    Xw, Yw = _batch(10**9, 4 * d + 8, d, W)
    mw = nc.Moments().update(Xw, Yw)
    nc.cca(mw), nc.cka(mw), nc.cca(Xw, Yw)
    del Xw, Yw, mw
    tracemalloc.start()
    t_nc = 0.0
    times = [0.0, 0.0]
    if mode == "baseline":
        _batch(0, batch, d, W)
        vals = {}
    elif mode == "stream":
        times = []
        for _ in range(2):  # first pass (cold process) and a second one
            t_nc = 0.0
            m = nc.Moments()
            for s in range(n // batch):
                X, Y = _batch(s, batch, d, W)
                t0 = time.perf_counter()
                m.update(X, Y)
                t_nc += time.perf_counter() - t0
                del X, Y
            t0 = time.perf_counter()
            vals = {"cca": float(nc.cca(m)), "cka": float(nc.cka(m))}
            times.append(t_nc + time.perf_counter() - t0)
    elif mode == "memory":
        X = np.empty((n, d))
        Y = np.empty((n, d))
        for s in range(n // batch):
            X[s * batch : (s + 1) * batch], Y[s * batch : (s + 1) * batch] = _batch(s, batch, d, W)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            m = nc.Moments.from_arrays(X, Y)
            vals = {"cca": float(nc.cca(m)), "cka": float(nc.cka(m))}
            times.append(time.perf_counter() - t0)
            del m
    else:
        raise ValueError(mode)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "mode": mode,
        "n": n,
        "d": d,
        "time_s": times[0],  # first call in a fresh process (pays first-touch page faults)
        "time_warm_s": times[1],
        "values": vals,
        "tracemalloc_peak_mb": peak / 2**20,
        "maxrss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM).

    Not ``getrusage(...).ru_maxrss``: Linux carries the parent's high-water mark across
    fork+exec into it, so a child of a big benchmark process would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - non-Linux
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spawn(mode: str, n: int, d: int, batch: int) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE), "--worker", mode, str(n), str(d), str(batch)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"streaming worker failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    d, batch = cfg["d"], cfg["batch"]
    base = _spawn("baseline", batch, d, batch)
    out: dict[str, Any] = {"d": d, "batch": batch, "baseline": base, "runs": []}
    rows = []
    for n in cfg["ns"]:
        s = _spawn("stream", n, d, batch)
        m = _spawn("memory", n, d, batch)
        diff = max(abs(s["values"][k] - m["values"][k]) for k in s["values"])
        entry = {
            "n": n,
            "stream": s,
            "memory": m,
            "max_abs_diff": diff,
            "time_ratio_stream_over_memory": s["time_s"] / m["time_s"],
            "time_ratio_stream_over_memory_warm": s["time_warm_s"] / m["time_warm_s"],
            "stream_rss_above_baseline_mb": s["maxrss_mb"] - base["maxrss_mb"],
            "memory_rss_above_baseline_mb": m["maxrss_mb"] - base["maxrss_mb"],
            "data_size_mb": 2 * n * d * 8 / 2**20,
        }
        out["runs"].append(entry)
        rows.append(
            [
                f"{n} × {d} (+ {n} × {d})",
                f"{entry['data_size_mb']:.0f} MB",
                f"{fmt_s(s['time_s'])} / {fmt_s(s['time_warm_s'])}",
                f"{fmt_s(m['time_s'])} / {fmt_s(m['time_warm_s'])}",
                f"{fmt_x(entry['time_ratio_stream_over_memory'])} / "
                f"{fmt_x(entry['time_ratio_stream_over_memory_warm'])}",
                f"{s['tracemalloc_peak_mb']:.1f} / {entry['stream_rss_above_baseline_mb']:.0f} MB",
                f"{m['tracemalloc_peak_mb']:.1f} / {entry['memory_rss_above_baseline_mb']:.0f} MB",
                f"{diff:.1e}",
            ]
        )
        print(f"  n={n}: stream {fmt_s(s['time_s'])}, memory {fmt_s(m['time_s'])}", flush=True)
    print(
        table(
            rows,
            [
                "X, Y",
                "data (float64)",
                f"stream (batches of {batch}): 1st / 2nd call",
                "in memory: 1st / 2nd call",
                "stream / memory: 1st / 2nd",
                "stream peak: tracemalloc / RSS",
                "memory peak: tracemalloc / RSS",
                "max abs Δ (cca, cka)",
            ],
        )
    )
    print(f"  baseline process (imports + one batch): RSS {base['maxrss_mb']:.0f} MB")
    out["rows"] = rows
    return out


def quick_cfg(quick: bool) -> dict[str, Any]:
    if quick:
        return {"ns": [5000, 20000], "d": 64, "batch": 1000}
    return {"ns": [10000, 40000, 160000], "d": 256, "batch": 1000}


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", nargs=4, metavar=("MODE", "N", "D", "BATCH"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        mode, n, d, b = a.worker
        print(json.dumps(worker(mode, int(n), int(d), int(b))))
    else:
        run(quick_cfg(a.quick))
