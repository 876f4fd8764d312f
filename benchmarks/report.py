"""Render the markdown tables of benchmarks/README.md from results JSON files.

    .venv/bin/python benchmarks/report.py results/full.json [results/full_1thread.json]

The first file is the headline run; a second one (e.g. ``--blas-threads 1``) is shown
side by side where it matters. Prints markdown to stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import fmt_s, fmt_x, table
from bench_measures import GOALS  # the goals are declared once, beside the benchmark


def _load(p: str) -> dict[str, Any]:
    path = Path(p)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parent / p
    return json.loads(path.read_text())


def _label(r: dict[str, Any]) -> str:
    t = r["environment"].get("blas_threads_limit")
    return f"{t} BLAS thread" if t else f"default threads ({r['environment']['torch_threads']})"


def env_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for r in runs:
        e = r["environment"]
        blas = e["numpy_blas"]
        pools = [p for p in e.get("threadpools") or [] if p.get("api") == "openblas"]
        arch = pools[0]["arch"] if pools else "?"
        rows.append(
            [
                _label(r),
                e["date_utc"],
                e["cpu_model"],
                e["usable_cpus"],
                f"{e['loadavg_start'][0]:.2f} → {e.get('loadavg_end', ['?'])[0]}",
                e["versions"]["numpy"],
                f"{blas.get('name')} {blas.get('version')} ({arch})",
                e["versions"]["torch"],
                f"{e.get('total_wall_s', 0):.0f} s",
            ]
        )
    return table(
        rows,
        ["run", "date (UTC)", "CPU", "cores", "load avg", "numpy", "BLAS", "torch", "wall"],
    )


def gemm_table(runs: list[dict[str, Any]]) -> str:
    keys = [
        ("square_numpy_f64", "numpy A @ B, float64, 4096²"),
        ("square_torch_f64", "torch A @ B, float64, 4096²"),
        ("numpy_XtY_f64", "numpy Xᵀ Y, float64, 10000 × 512"),
        ("numpy_XtX_f64", "numpy Xᵀ X (syrk), float64"),
        ("numpy_ZtZ_f64", "numpy [X Y]ᵀ[X Y] (syrk), float64, 10000 × 1024"),
        ("torch_XtY_f64", "torch Xᵀ Y, float64"),
        ("torch_XtX_f64", "torch Xᵀ X, float64"),
        ("numpy_XtY_f32", "numpy Xᵀ Y, float32"),
        ("torch_XtY_f32", "torch Xᵀ Y, float32"),
    ]
    rows = []
    for k, label in keys:
        row = [label]
        for r in runs:
            g = r["sections"]["gemm"][k]
            row.append(f"{fmt_s(g['median_s'])}: {g['gflops']:.0f}")
        rows.append(row)
    return table(rows, ["product", *(f"{_label(r)}: time, GFLOP/s" for r in runs)])


def measures_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    first = runs[0]["sections"]["measures"]["ours"]
    for key in first:
        m, dt = key.split("/")
        row = [f"nc.{m}" if not m.startswith("prototype") else m.replace("_", " "), dt]
        for r in runs:
            e = r["sections"]["measures"]["ours"].get(key)
            if e is None:
                row += ["-", "-", "-"]
                continue
            row += [
                fmt_s(e["median_s"]),
                fmt_s(e["bound_s"]),
                f"**{fmt_x(e['ratio_to_bound'])}**",
            ]
        goal = GOALS.get(m)
        row.append(f"≤ {goal}×" if goal else "-")
        rows.append(row)
    header = ["measure", "input"]
    for r in runs:
        lab = _label(r)
        header += [f"{lab}: median", "bound", "ratio"]
    header.append("goal")
    return table(rows, header)


def anchors_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for key in runs[0]["sections"]["measures"]["anchors"]:
        name, dt = key.rsplit("/", 1)
        row = [name, dt]
        for r in runs:
            e = r["sections"]["measures"]["anchors"].get(key)
            row.append(fmt_s(e["median_s"]) if e else "-")
        row.append(f"{runs[0]['sections']['measures']['anchors'][key]['value']:.8f}")
        rows.append(row)
    return table(rows, ["anchor", "computes in", *(_label(r) for r in runs), "value"])


def speedup_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for key in runs[0]["sections"]["measures"]["speedups"]:
        row = [key]
        for r in runs:
            v = r["sections"]["measures"]["speedups"].get(key)
            row.append(fmt_x(v) if v else "-")
        rows.append(row)
    return table(rows, ["comparison (anchor time / nncompare time)", *(_label(r) for r in runs)])


def components_table(runs: list[dict[str, Any]]) -> str:
    comp0 = runs[0]["sections"]["measures"]["components"]
    rows = []
    for k in comp0:
        if k == "rows":
            continue
        row = [k]
        for r in runs:
            c = r["sections"]["measures"]["components"].get(k)
            row.append(fmt_s(c["current_threads"]["median_s"]) if c else "-")
        rows.append(row)
    return table(rows, ["primitive at 10000 × 512 (numpy, float64)", *(_label(r) for r in runs)])


def conv_table(r: dict[str, Any]) -> str:
    c = r["sections"]["conv"]
    rows = []
    for e in c["brute_force_measured"]:
        N, H, W, C = e["shape"]
        rows.append(
            [
                f"({N}, {H}, {W}, {C})",
                f"{e['n_samples_augmented']} × {e['n_features_flat']}",
                f"{fmt_s(e['brute_force']['median_s'])} (measured)",
                fmt_s(e["dft_on_augmented"]["median_s"]),
                fmt_s(e["dft_on_original"]["median_s"]),
                f"{e['abs_diff_bf_vs_dft_augmented']:.1e}",
                f"{e['abs_diff_bf_vs_dft_original']:.1e}",
            ]
        )
    N, H, W, C = c["dft_full_measured"]["shape"]
    rows.append(
        [
            f"({N}, {H}, {W}, {C})",
            f"{N * H * W} × {H * W * C}",
            f"{c['brute_force_full_extrapolated_s']:.3g} s = "
            f"{c['brute_force_full_extrapolated_s'] / 3600:.1f} h (EXTRAPOLATED)",
            "-",
            f"{fmt_s(c['dft_full_measured']['median_s'])} (measured)",
            "-",
            "-",
        ]
    )
    return table(
        rows,
        [
            "shape (N, H, W, C)",
            "brute force n × p",
            "brute force",
            "nc.cca(conv='dft') on augmented",
            "nc.cca(conv='dft') on original",
            "abs(BF − DFT aug)",
            "abs(BF − DFT orig)",
        ],
    )


def pairwise_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    p0 = runs[0]["sections"]["pairwise"]
    for m, e in p0["measures"].items():
        row = [m, e["pairs"]]
        for r in runs:
            x = r["sections"]["pairwise"]["measures"][m]
            row += [
                fmt_s(x["pairwise"]["median_s"]),
                fmt_s(x["naive_loop_s"]),
                fmt_x(x["speedup"]),
            ]
        rows.append(row)
    row = ["all 8 in one call", "-"]
    for r in runs:
        pw = r["sections"]["pairwise"]
        tot = sum(x["naive_loop_s"] for x in pw["measures"].values())
        t = pw["all_measures_one_call"]["median_s"]
        row += [fmt_s(t), fmt_s(tot), fmt_x(tot / t)]
    rows.append(row)
    ck = p0.get("ckatorch_cka")  # absent where ckatorch was not installed
    if ck is not None:
        label = f"ckatorch cka_base, CKA ({ck['pairs_timed']} of {ck['pairs_total']} pairs timed)"
        row = [label, 55]
        for r in runs:
            c = r["sections"]["pairwise"].get("ckatorch_cka")
            t = r["sections"]["pairwise"]["measures"]["cka"]["pairwise"]["median_s"]
            if c is None:
                row += [fmt_s(t), "-", "-"]
            else:
                row += [fmt_s(t), fmt_s(c["total_s"]), fmt_x(c["speedup_nc_pairwise"])]
        rows.append(row)
    header = ["measure", "pairs"]
    for r in runs:
        lab = _label(r)
        header += [f"{lab}: nc.pairwise", "per-pair loop", "speed-up"]
    return table(rows, header)


def streaming_table(r: dict[str, Any]) -> str:
    s = r["sections"]["streaming"]
    rows = []
    for e in s["runs"]:
        st, me = e["stream"], e["memory"]
        rows.append(
            [
                f"{e['n']} × {s['d']} (×2)",
                f"{e['data_size_mb']:.0f} MB",
                f"{fmt_s(st['time_s'])} / {fmt_s(st['time_warm_s'])}",
                f"{fmt_s(me['time_s'])} / {fmt_s(me['time_warm_s'])}",
                f"{st['tracemalloc_peak_mb']:.1f} MB / {e['stream_rss_above_baseline_mb']:.0f} MB",
                f"{me['tracemalloc_peak_mb']:.0f} MB / {e['memory_rss_above_baseline_mb']:.0f} MB",
                f"{e['max_abs_diff']:.1e}",
            ]
        )
    return table(
        rows,
        [
            "X, Y",
            "data",
            "stream: 1st / 2nd call",
            "in memory: 1st / 2nd call",
            "stream peak (tracemalloc / RSS above baseline)",
            "in-memory peak",
            "max abs Δ cca, cka",
        ],
    )


def main() -> None:
    files = sys.argv[1:] or ["results/full.json"]
    if any(f in ("-h", "--help") for f in files):
        print(__doc__)
        return
    try:
        runs = [_load(f) for f in files]
    except (OSError, ValueError) as exc:  # a missing or malformed results file: one line
        raise SystemExit(f"report.py: cannot read a results file: {exc}") from None
    out = [
        "### Environment",
        env_table(runs),
        "### 1. Matrix-multiply rate",
        gemm_table(runs),
        "### 2. 10000 × 512, ours vs the matmul bound",
        measures_table(runs),
        "Anchors:",
        anchors_table(runs),
        speedup_table(runs),
        "Primitives:",
        components_table(runs),
        "### 3. Conv",
        conv_table(runs[0]),
        "### 4. Grid",
        pairwise_table(runs),
        "### 5. Streaming",
        streaming_table(runs[0]),
    ]
    print("\n\n".join(out))


if __name__ == "__main__":
    main()
