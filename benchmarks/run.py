"""Run every nncompare benchmark in one process and write benchmarks/results/<name>.json.

    .venv/bin/python benchmarks/run.py            # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # smoke run (< 1 min)

Sections (each also runnable alone as ``benchmarks/bench_<section>.py``):

1. gemm       the machine's float64/float32 matmul rates (numpy, torch), square and
              workload-shaped, syrk (Xᵀ X) vs GEMM (Xᵀ Y)
2. measures   10000 × 512: nc.cka, cka_debiased, cca, svcca, pwcca, procrustes vs the matmul
              bound and vs ckatorch / torch-cka; profiles and a primitive breakdown
3. conv       (2000, 16, 16, 64): DFT path (measured) vs brute force (measured small,
              extrapolated full)
4. pairwise   10 × 10 layers of 5000 × 256: nc.pairwise vs per-pair loops and ckatorch
5. streaming  nc.Moments in batches vs in memory: time, values, peak memory vs n

Timings are medians of several ``time.perf_counter`` repeats after a warm-up; there are
no timed assertions. Where a bound is involved, the reference product is timed
round-robin with the measure so that load changes on a shared machine hit both.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util  # stdlib only at import time

_util.early_thread_limit(sys.argv[1:])  # before numpy, scipy and torch are loaded

import bench_conv  # noqa: E402
import bench_gemm  # noqa: E402
import bench_measures  # noqa: E402
import bench_pairwise  # noqa: E402
import bench_streaming  # noqa: E402

SECTIONS = ("gemm", "measures", "conv", "pairwise", "streaming")


def _summary(res: dict[str, Any]) -> list[list[str]]:
    """One line per goal of the brief: measured ratio and whether it is met."""
    rows: list[list[str]] = []
    meas = res.get("measures")
    if meas:
        for m, goal in bench_measures.GOALS.items():
            for dt in ("float64", "float32"):
                e = meas["ours"].get(f"{m}/{dt}")
                if e is None:
                    continue
                r = e["ratio_to_bound"]
                rows.append(
                    [
                        f"nc.{m} ({dt}) time / matmul bound",
                        f"≤ {goal}×",
                        _util.fmt_x(r),
                        "met" if r <= goal else "MISSED",
                    ]
                )
        slowest = max(
            meas["ours"][f"{m}/float64"]["median_s"]
            for m in ("cka", "cka_debiased", "cca", "svcca", "pwcca", "procrustes")
        )
        fastest_anchor = meas["fastest_full_n_anchor_s"]
        if meas.get("anchors_missing"):
            verdict = "not measured (anchors not installed)"
        else:
            verdict = "met" if slowest < fastest_anchor else "MISSED"
        rows.append(
            [
                "slowest nc measure vs fastest full-n anchor",
                "ahead",
                f"{_util.fmt_s(slowest)} vs {_util.fmt_s(fastest_anchor)}",
                verdict,
            ]
        )
    conv = res.get("conv")
    if conv:
        rows.append(
            [
                "DFT path vs brute force at {}".format(tuple(conv["dft_full_measured"]["shape"])),
                "faster",
                _util.fmt_x(conv["speedup_dft_vs_brute_force_full_extrapolated"])
                + " (extrapolated)",
                "met" if conv["speedup_dft_vs_brute_force_full_extrapolated"] > 1 else "MISSED",
            ]
        )
    pw = res.get("pairwise")
    if pw:
        for m, e in pw["measures"].items():
            rows.append(
                [
                    f"nc.pairwise vs per-pair loop: {m}",
                    "faster",
                    _util.fmt_x(e["speedup"]),
                    "met" if e["speedup"] > 1 else "MISSED",
                ]
            )
    st = res.get("streaming")
    if st and st["runs"]:
        peaks = [r["stream"]["tracemalloc_peak_mb"] for r in st["runs"]]
        rows.append(
            [
                "streaming peak memory independent of n",
                "flat",
                " / ".join(f"{p:.1f}" for p in peaks) + " MB",
                "met" if max(peaks) < 1.5 * min(peaks) + 1 else "MISSED",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run under 1 minute")
    p.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="run only these sections",
    )
    p.add_argument(
        "--name",
        default=None,
        help="results file benchmarks/results/<name>.json (default: quick or full)",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="limit BLAS/LAPACK (threadpoolctl) and torch intra-op threads to this number",
    )
    args = p.parse_args(argv)
    name = args.name or ("quick" if args.quick else "full")
    limiter = None
    if args.blas_threads:
        import scipy.linalg  # noqa: F401  (load scipy's BLAS so that it is limited too)
        import torch
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(args.blas_threads)
        torch.set_num_threads(args.blas_threads)
        for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[k] = str(args.blas_threads)  # for the streaming subprocesses
    t0 = time.perf_counter()
    env = _util.environment()
    env["blas_threads_limit"] = args.blas_threads
    env["mode"] = "quick" if args.quick else "full"
    print(f"nncompare benchmarks ({env['mode']}), {env['date_utc']}")
    print(
        f"CPU: {env['cpu_model']} ({env['usable_cpus']} usable cores); load avg "
        f"{env['loadavg_start']}; numpy {env['versions']['numpy']} "
        f"({env['numpy_blas'].get('name')} {env['numpy_blas'].get('version')}), "
        f"torch {env['versions']['torch']} ({env['torch_threads']} threads)"
    )
    cores = env["usable_cpus"] or 1
    if env["loadavg_start"] and env["loadavg_start"][0] > cores and not args.blas_threads:
        print(
            f"WARNING: load average {env['loadavg_start'][0]} exceeds the {cores} usable cores. "
            "Multi-threaded OpenBLAS degrades badly when cores are oversubscribed (small LAPACK "
            "calls slow down 10-1000x); consider --blas-threads 1 for stable numbers."
        )
    results: dict[str, Any] = {"environment": env, "sections": {}}
    path = _util.RESULTS / f"{name}.json"
    res = results["sections"]
    rec: dict[str, Any] = {}
    if "gemm" in args.only:
        rec = results.setdefault("timing", {}).setdefault("gemm", {})
        with _util.section("1. matrix-multiply rate", rec):
            res["gemm"] = bench_gemm.run(bench_gemm.quick_cfg(args.quick))
        _util.write_json(results, path)
    for key, title, mod, needs_gemm in (
        ("measures", "2. one pair, ours vs anchors", bench_measures, True),
        ("conv", "3. conv: DFT path vs brute force", bench_conv, True),
        ("pairwise", "4. layer × layer grid", bench_pairwise, False),
        ("streaming", "5. streaming Moments vs in memory", bench_streaming, False),
    ):
        if key not in args.only:
            continue
        rec = results.setdefault("timing", {}).setdefault(key, {})
        with _util.section(title, rec):
            cfg = mod.quick_cfg(args.quick)
            res[key] = mod.run(cfg, res.get("gemm")) if needs_gemm else mod.run(cfg)
        _util.write_json(results, path)
    summary = _summary(res)
    results["summary"] = summary
    results["environment"]["loadavg_end"] = _util.loadavg()
    results["environment"]["total_wall_s"] = round(time.perf_counter() - t0, 1)
    _util.write_json(results, path)
    print("\n=== summary " + "=" * 60)
    if args.quick:
        print(
            "(quick mode: smoke-test sizes where fixed per-call overheads dominate; the goals "
            "refer to the full sizes, run without --quick)"
        )
    print(_util.table(summary, ["goal", "target", "measured", "status"]))
    print(
        f"\ntotal {results['environment']['total_wall_s']:.0f} s; load avg "
        f"{env['loadavg_start']} -> {results['environment']['loadavg_end']}; "
        f"results: {path}"
    )
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
