"""Benchmark 4: a 10 × 10 layer grid of 5000 × 256 activations.

* ``nc.pairwise(acts, measures=[m])``: one joint product of all layers
  (:class:`nncompare.JointMoments`), each layer decomposed once;
* a naive loop calling ``nc.<m>(acts[a], acts[b])`` for the same pairs (a symmetric
  measure: the 55 pairs a ≤ b, as pairwise computes; an asymmetric one: all 100);
* ckatorch ``cka_base`` per pair for linear CKA (55 pairs).

Run alone: ``python benchmarks/bench_pairwise.py [--quick]``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from _util import bench, fmt_s, fmt_x, table

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
    import torch
    from ckatorch.core import cka_base

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
    # ckatorch per pair (CKA)
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
    rows.append(
        [
            label,
            len(pairs),
            fmt_s(cka_grid["pairwise"]["median_s"]),
            fmt_s(t_ck),
            fmt_x(t_ck / cka_grid["pairwise"]["median_s"]),
            f"{ck_diff:.1e}",
        ]
    )
    print(
        table(
            rows,
            ["measure", "pairs", "nc.pairwise", "per-pair loop", "speed-up", "max abs Δ value"],
        )
    )
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
    a = p.parse_args()
    run(quick_cfg(a.quick))
