"""Benchmark 4: a 10 × 10 layer grid of 5000 × 256 activations.

* ``nc.pairwise(acts, measures=[m])``: one joint product of all layers
  (:class:`nncompare.JointMoments`), each layer decomposed once;
* a naive loop calling ``nc.<m>(acts[a], acts[b])`` for the same pairs (a symmetric
  measure: the 55 pairs a ≤ b, as pairwise computes; an asymmetric one: all 100);
* ckatorch ``cka_base`` per pair for linear CKA (55 pairs);
* the linear-CKA grid against its product bound (:func:`grid_bound`), in float32 and
  float64: ``nc.pairwise(acts, measures=["cka"])``, the one joint product
  ``Zᵀ Z`` of all layers side by side (Z: 5000 × 2560, the input's dtype, BLAS syrk) and the
  per-pair loop, timed round-robin in one run so that a changing load hits all alike.

Run alone: ``python benchmarks/bench_pairwise.py [--quick] [--grid]`` (``--grid``: only the
grid-against-bound section).
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

import numpy as np
from _util import bench, bench_interleaved, fmt_s, fmt_x, table

import nncompare as nc

MEASURES = ("cka", "cca", "svcca", "pwcca", "procrustes", "cca_r2", "lr_r2", "shape")


def make_layers(n_layers: int, n: int, d: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A chain of layers: each is a noisy random linear map of the previous one + ReLU."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, d))
    acts = {}
    for i in range(n_layers):
        h = np.maximum(h @ rng.standard_normal((d, d)) / np.sqrt(d), 0) + 0.3 * (
            rng.standard_normal((n, d))
        )
        acts[f"layer{i}"] = h.copy()
    return acts


def _pairs(names: list[str], symmetric: bool) -> list[tuple[str, str]]:
    return [
        (a, b) for i, a in enumerate(names) for j, b in enumerate(names) if not symmetric or j >= i
    ]


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    from nncompare.measures._registry import get as get_measure

    acts = make_layers(cfg["n_layers"], cfg["n"], cfg["d"])
    names = list(acts)
    out: dict[str, Any] = {
        "shape": {"layers": cfg["n_layers"], "n": cfg["n"], "d": cfg["d"]},
        "measures": {},
    }
    rows = []
    tot_grid = tot_naive = 0.0
    for m in MEASURES:
        info = get_measure(m)
        pairs = _pairs(names, info.symmetric)
        f = getattr(nc, m)
        t_grid = bench(lambda m=m: nc.pairwise(acts, measures=[m]), repeats=cfg["repeats"])
        grid = t_grid.last
        t0 = time.perf_counter()
        naive = {}
        for a, b in pairs:
            naive[(a, b)] = float(f(acts[a], acts[b]))
        t_naive = time.perf_counter() - t0
        diff = max(abs(naive[(a, b)] - grid[m][names.index(a), names.index(b)]) for a, b in pairs)
        out["measures"][m] = {
            "pairs": len(pairs),
            "pairwise": t_grid.as_dict(),
            "naive_loop_s": t_naive,
            "speedup": t_naive / t_grid.median,
            "max_abs_diff_grid_vs_naive": diff,
        }
        tot_grid += t_grid.median
        tot_naive += t_naive
        rows.append(
            [
                m,
                len(pairs),
                fmt_s(t_grid.median),
                fmt_s(t_naive),
                fmt_x(t_naive / t_grid.median),
                f"{diff:.1e}",
            ]
        )
        print(f"  {m}: pairwise {fmt_s(t_grid.median)}, naive {fmt_s(t_naive)}", flush=True)
    # all measures in one call (one joint product shared by every measure)
    t_all = bench(lambda: nc.pairwise(acts, measures=list(MEASURES)), repeats=cfg["repeats"])
    out["all_measures_one_call"] = t_all.as_dict()
    rows.append(
        [
            "all of the above, one pairwise call",
            "-",
            fmt_s(t_all.median),
            fmt_s(tot_naive),
            fmt_x(tot_naive / t_all.median),
            "-",
        ]
    )
    # ckatorch per pair (CKA), when installed (the bench extra)
    if importlib.util.find_spec("ckatorch") is None:
        out["ckatorch_missing"] = True
        print("  ckatorch not installed: its per-pair comparison is skipped", flush=True)
    else:
        rows.append(_ckatorch_row(acts, names, cfg, out))
    print(
        table(
            rows,
            ["measure", "pairs", "nc.pairwise", "per-pair loop", "speed-up", "max abs Δ value"],
        )
    )
    out["rows"] = rows
    out["cka_grid_bound"] = grid_bound(cfg)
    return out


def _ckatorch_row(
    acts: dict[str, np.ndarray], names: list[str], cfg: dict[str, Any], out: dict[str, Any]
) -> list[Any]:
    """ckatorch ``cka_base`` over the grid's pairs (some timed, the total scaled): its row."""
    import torch
    from ckatorch.core import cka_base

    pairs = _pairs(names, True)
    tacts = {k: torch.from_numpy(v) for k, v in acts.items()}
    k = min(cfg["ckatorch_pairs"], len(pairs))
    t0 = time.perf_counter()
    ck_vals = {}
    with torch.no_grad():
        for a, b in pairs[:k]:
            ck_vals[(a, b)] = float(cka_base(tacts[a], tacts[b], kernel="linear"))
    t_ck_part = time.perf_counter() - t0
    t_ck = t_ck_part * len(pairs) / k
    cka_grid = out["measures"]["cka"]
    grid_vals = nc.pairwise(acts, measures=["cka"])["cka"]
    ck_diff = max(
        abs(v - grid_vals[names.index(a), names.index(b)]) for (a, b), v in ck_vals.items()
    )
    out["ckatorch_cka"] = {
        "pairs_timed": k,
        "pairs_total": len(pairs),
        "timed_s": t_ck_part,
        "total_s": t_ck,
        "extrapolated": k < len(pairs),
        "max_abs_diff_vs_nc": ck_diff,
        "speedup_nc_pairwise": t_ck / cka_grid["pairwise"]["median_s"],
    }
    label = "ckatorch cka_base per pair (CKA)"
    if k < len(pairs):
        label += f" [timed {k} of {len(pairs)} pairs, scaled]"
    return [
        label,
        len(pairs),
        fmt_s(cka_grid["pairwise"]["median_s"]),
        fmt_s(t_ck),
        fmt_x(t_ck / cka_grid["pairwise"]["median_s"]),
        f"{ck_diff:.1e}",
    ]


def grid_bound(cfg: dict[str, Any]) -> dict[str, Any]:
    """Linear-CKA grid vs the time of its one joint product, and vs a per-pair loop.

    For each dtype: ``nc.pairwise(acts, measures=["cka"])`` (default precision: the
    input's), the bound ``Z.T @ Z`` with Z all layers side by side in that dtype, and
    ``nc.cka`` over the 55 pairs a <= b, interleaved ``repeats`` times after one warm-up.
    Ratios come from the same run; the load average is recorded at both ends.
    """
    acts64 = make_layers(cfg["n_layers"], cfg["n"], cfg["d"])
    names = list(acts64)
    pairs = _pairs(names, True)
    out: dict[str, Any] = {"load_start": list(os.getloadavg()), "dtypes": {}}
    rows = []
    exact32 = None
    for dtype in ("float32", "float64"):
        acts = {k: v.astype(dtype) for k, v in acts64.items()}
        Z = np.ascontiguousarray(np.concatenate(list(acts.values()), axis=1))

        def loop(acts: dict[str, np.ndarray] = acts) -> dict[tuple[str, str], float]:
            return {(a, b): float(nc.cka(acts[a], acts[b])) for a, b in pairs}

        t = bench_interleaved(
            {
                "grid": lambda acts=acts: nc.pairwise(acts, measures=["cka"]),
                "bound": lambda Z=Z: Z.T @ Z,
                "loop": loop,
            },
            repeats=cfg["repeats"],
        )
        grid = t["grid"].last["cka"]
        naive = t["loop"].last
        diff = max(abs(v - grid[names.index(a), names.index(b)]) for (a, b), v in naive.items())
        if dtype == "float32":
            exact32 = nc.pairwise(acts, measures=["cka"], precision="float64")["cka"]
            diff_exact = float(np.max(np.abs(grid - exact32)))
        else:
            diff_exact = 0.0
        g, b, lp = t["grid"].median, t["bound"].median, t["loop"].median
        out["dtypes"][dtype] = {
            "grid": t["grid"].as_dict(),
            "bound_joint_product": t["bound"].as_dict(),
            "per_pair_loop": t["loop"].as_dict(),
            "grid_over_bound": g / b,
            "loop_over_grid": lp / g,
            "max_abs_diff_grid_vs_loop": diff,
            "max_abs_diff_vs_float64_products": diff_exact,
        }
        rows.append(
            [
                dtype,
                fmt_s(g),
                fmt_s(b),
                fmt_s(lp),
                fmt_x(g / b),
                fmt_x(lp / g),
                f"{diff:.1e}",
                f"{diff_exact:.1e}" if dtype == "float32" else "-",
            ]
        )
        print(f"  {dtype}: grid {fmt_s(g)}, bound {fmt_s(b)}, loop {fmt_s(lp)}", flush=True)
    out["load_end"] = list(os.getloadavg())
    print(
        table(
            rows,
            [
                "dtype",
                "nc.pairwise cka",
                "bound ZᵀZ",
                "per-pair loop",
                "grid / bound",
                "loop / grid",
                "max Δ vs loop",
                "max Δ vs float64 products",
            ],
        )
    )
    la, lb = out["load_start"], out["load_end"]
    print(f"load average (1, 5, 15 min): start {la}, end {lb}; target grid / bound <= 1.5")
    out["rows"] = rows
    return out


def quick_cfg(quick: bool) -> dict[str, Any]:
    if quick:
        return {"n_layers": 10, "n": 500, "d": 32, "repeats": 2, "ckatorch_pairs": 11}
    # ckatorch: 11 of the 55 pairs are timed and the total scaled (all pairs have one shape)
    return {"n_layers": 10, "n": 5000, "d": 256, "repeats": 3, "ckatorch_pairs": 11}


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--grid", action="store_true", help="only the CKA grid against its bound")
    a = p.parse_args()
    if a.grid:
        grid_bound(quick_cfg(a.quick))
    else:
        run(quick_cfg(a.quick))
