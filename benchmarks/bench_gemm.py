"""Benchmark 1: the machine's matrix-multiply rate, measured in the same run.

* square float64 GEMM (A @ B, s × s) with numpy and torch;
* the workload's own products at n × d (10000 × 512): Xᵀ Y (GEMM), Xᵀ X (numpy dispatches
  ``X.T @ X`` to BLAS syrk, which needs half the flops), the joint [X Y]ᵀ [X Y] that
  :class:`nncompare.JointMoments` forms (syrk, n × 2d), in numpy and torch, float64 and
  float32 (the precision of the products for float32 inputs, ``precision="auto"``).

Rates are GFLOP/s with GEMM flop counts (2·m·k·n); for syrk we also give the rate on the
flops it actually performs (half). Run alone: ``python benchmarks/bench_gemm.py [--quick]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _util import bench_interleaved, fmt_s, table


def gemm_flops(m: int, k: int, n: int) -> float:
    return 2.0 * m * k * n


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    rows = []

    # -- square GEMM ----------------------------------------------------------------
    s = cfg["gemm_square"]
    A = rng.standard_normal((s, s))
    B = rng.standard_normal((s, s))
    At, Bt = torch.from_numpy(A), torch.from_numpy(B)
    sq = bench_interleaved(
        {"numpy": lambda: A @ B, "torch": lambda: At @ Bt}, repeats=cfg["gemm_repeats"]
    )
    f = gemm_flops(s, s, s)
    for lib, t in sq.items():
        rate = f / t.median / 1e9
        out[f"square_{lib}_f64"] = {
            **t.as_dict(),
            "shape": [s, s, s],
            "gflops": rate,
            "gflops_best": f / t.min / 1e9,
        }
        rows.append([f"{lib} A@B float64", f"{s}×{s} · {s}×{s}", fmt_s(t.median), f"{rate:.1f}"])

    # -- workload-shaped products ------------------------------------------------------
    n, d = cfg["n"], cfg["d"]
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, d))
    Z = np.hstack([X, Y])
    X32, Y32, Z32 = X.astype(np.float32), Y.astype(np.float32), Z.astype(np.float32)
    Xt, Yt, Zt = torch.from_numpy(X), torch.from_numpy(Y), torch.from_numpy(Z)
    Xt32, Yt32 = torch.from_numpy(X32), torch.from_numpy(Y32)
    fns = {
        "numpy_XtY_f64": lambda: X.T @ Y,
        "numpy_XtX_f64": lambda: X.T @ X,
        "numpy_ZtZ_f64": lambda: Z.T @ Z,
        "torch_XtY_f64": lambda: Xt.T @ Yt,
        "torch_XtX_f64": lambda: Xt.T @ Xt,
        "torch_ZtZ_f64": lambda: Zt.T @ Zt,
        "numpy_XtY_f32": lambda: X32.T @ Y32,
        "numpy_XtX_f32": lambda: X32.T @ X32,
        "numpy_ZtZ_f32": lambda: Z32.T @ Z32,
        "torch_XtY_f32": lambda: Xt32.T @ Yt32,
    }
    res = bench_interleaved(fns, repeats=cfg["gemm_repeats"])
    for key, t in res.items():
        lib, prod, dt = key.split("_")
        width = 2 * d if prod == "ZtZ" else d
        f = gemm_flops(width, n, width)
        sym = prod in ("XtX", "ZtZ")
        rate = f / t.median / 1e9
        out[key] = {
            **t.as_dict(),
            "shape": [width, n, width],
            "gflops": rate,
            "gflops_best": f / t.min / 1e9,
            "symmetric": sym,
        }
        if sym:
            out[key]["gflops_performed"] = rate / 2  # syrk computes one triangle
        label = {"XtY": "Xᵀ Y", "XtX": "Xᵀ X", "ZtZ": "[X Y]ᵀ[X Y]"}[prod]
        dt_name = {"f64": "float64", "f32": "float32"}[dt]
        rows.append(
            [
                f"{lib} {label} {dt_name}",
                f"{width}×{n} · {n}×{width}",
                fmt_s(t.median),
                f"{rate:.1f}" + (f" ({rate / 2:.1f} performed)" if sym else ""),
            ]
        )
    out["syrk_over_gemm_numpy"] = res["numpy_XtX_f64"].median / res["numpy_XtY_f64"].median
    out["syrk_over_gemm_torch"] = res["torch_XtX_f64"].median / res["torch_XtY_f64"].median
    # float32 products (precision="auto" for float32 inputs): the joint syrk against the
    # three products of the bound
    out["joint_syrk_over_bound_f32"] = res["numpy_ZtZ_f32"].median / (
        3 * res["numpy_XtY_f32"].median
    )
    out["joint_syrk_over_bound_f64"] = res["numpy_ZtZ_f64"].median / (
        3 * res["numpy_XtY_f64"].median
    )
    print(
        table(
            rows,
            ["product", "shape", "median", "GFLOP/s (GEMM-equivalent)"],
        )
    )
    print(
        f"syrk / gemm time at {n}×{d}: numpy {out['syrk_over_gemm_numpy']:.2f}, "
        f"torch {out['syrk_over_gemm_torch']:.2f} (0.5 would mean syrk's halved flops pay off); "
        f"joint syrk / 3 GEMMs: float64 {out['joint_syrk_over_bound_f64']:.2f}, "
        f"float32 {out['joint_syrk_over_bound_f32']:.2f}"
    )
    out["rows"] = rows
    return out


def quick_cfg(quick: bool) -> dict[str, Any]:
    if quick:
        return {"gemm_square": 1536, "gemm_repeats": 3, "n": 2000, "d": 128}
    return {"gemm_square": 4096, "gemm_repeats": 5, "n": 10000, "d": 512}


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    run(quick_cfg(a.quick))
