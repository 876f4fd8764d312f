"""Benchmark 3: CCA of convolutional activations — the DFT path vs brute force.

Brute force = CCA of the flattened, translation-augmented representation: every image
appears under all H·W circular shifts, so there are n = N·H·W samples of p = H·W·C
features. For (2000, 16, 16, 64) that is 512000 × 16384 (67 GB per input in float64):
infeasible here. So

* brute force is **measured** at scaled-down sizes (N, 4, 4, 16) and (N, 8, 8, 16) with all
  circular shifts, where ``nc.cca(X_aug, Y_aug, conv="dft")`` must equal it exactly
  (checked numerically), and **extrapolated** to (2000, 16, 16, 64) with the cost model
  t = c · n · p² (its products; the p³ decompositions are the smaller term at n/p ≈ 31);
* the DFT path is **measured** directly on (2000, 16, 16, 64), round-robin with
  google/svcca's per-frequency loop (``fourier_ccas``, re-timed in ``prototypes.py``), the
  same in SVCCA form and streamed through ``SpectralMoments``; the load average is
  recorded around it (the machine may be shared: the ratios within one run are what count;
  with one BLAS thread the CPU-time ratio is also printed, which time slicing by other
  processes does not distort).

Run alone: ``python benchmarks/bench_conv.py [--quick] [--vs-google]`` (``--vs-google``:
only the interleaved comparison with google's loop, no brute force).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import prototypes
from _util import bench, bench_interleaved, fmt_s, fmt_x, table

import nncompare as nc


def make_conv_pair(N: int, H: int, W: int, C: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Conv-like pair: Y mixes X's channels and a 3×3 neighbourhood, plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, H, W, C)) + 0.5
    mix = rng.standard_normal((C, C)) / np.sqrt(C)
    Y = np.einsum("nhwc,cd->nhwd", X, mix)
    Y = Y + 0.5 * (np.roll(Y, 1, axis=1) + np.roll(Y, 1, axis=2))
    Y = Y + rng.standard_normal((N, H, W, C))
    return X, Y


def augment_shifts(A: np.ndarray) -> np.ndarray:
    """All H·W circular shifts of every image: (N, H, W, C) -> (N·H·W, H, W, C)."""
    N, H, W, C = A.shape
    out = np.empty((N, H * W, H, W, C), dtype=A.dtype)
    k = 0
    for i in range(H):
        for j in range(W):
            out[:, k] = np.roll(A, (i, j), axis=(1, 2))
            k += 1
    return out.reshape(N * H * W, H, W, C)


def run(cfg: dict[str, Any], gemm: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"brute_force_measured": [], "definitions": {}}
    rows = []
    reps = cfg["repeats"]
    # ---------------------------------------------------------------- measured, small
    for N, H, W, C in cfg["small_shapes"]:
        X, Y = make_conv_pair(N, H, W, C, seed=1)
        t_aug, (Xa, Ya) = _timed(lambda X=X, Y=Y: (augment_shifts(X), augment_shifts(Y)))
        n, p = Xa.shape[0], H * W * C
        Xf, Yf = Xa.reshape(n, p), Ya.reshape(n, p)
        t_bf = bench(lambda Xf=Xf, Yf=Yf: nc.cca(Xf, Yf), repeats=cfg["bf_repeats"])
        t_da = bench(lambda Xa=Xa, Ya=Ya: nc.cca(Xa, Ya, conv="dft"), repeats=reps)
        t_do = bench(lambda X=X, Y=Y: nc.cca(X, Y, conv="dft"), repeats=reps)
        bf, da, do = float(t_bf.last), float(t_da.last), float(t_do.last)
        rho_bf = np.sort(np.asarray(t_bf.last.rho))
        rho_da = np.sort(np.asarray(t_da.last.rho_per_frequency).ravel())
        entry = {
            "shape": [N, H, W, C],
            "n_samples_augmented": n,
            "n_features_flat": p,
            "augment_s": t_aug,
            "brute_force": t_bf.as_dict(),
            "dft_on_augmented": t_da.as_dict(),
            "dft_on_original": t_do.as_dict(),
            "value_brute_force": bf,
            "value_dft_augmented": da,
            "value_dft_original": do,
            "abs_diff_bf_vs_dft_augmented": abs(bf - da),
            "max_abs_diff_sorted_rho": float(np.max(np.abs(rho_bf - rho_da))),
            "abs_diff_bf_vs_dft_original": abs(bf - do),
            "cost_constant_c_s": t_bf.median / (n * p * p),
            "speedup_dft_original_vs_bf": t_bf.median / t_do.median,
        }
        out["brute_force_measured"].append(entry)
        rows.append(
            [
                f"({N}, {H}, {W}, {C})",
                f"{n} × {p}",
                fmt_s(t_bf.median),
                fmt_s(t_da.median),
                fmt_s(t_do.median),
                f"{entry['abs_diff_bf_vs_dft_augmented']:.1e}",
                f"{entry['abs_diff_bf_vs_dft_original']:.1e}",
                fmt_x(entry["speedup_dft_original_vs_bf"]),
            ]
        )
        print(f"  brute force {N, H, W, C}: {fmt_s(t_bf.median)}", flush=True)
        del Xa, Ya, Xf, Yf
    print(
        ""
        if not rows
        else table(
            rows,
            [
                "shape (N,H,W,C)",
                "brute force n × p",
                "brute force (measured)",
                "DFT on augmented",
                "DFT on original",
                "abs(BF − DFT aug)",
                "abs(BF − DFT orig)",
                "speed-up DFT orig",
            ],
        )
    )
    # ---------------------------------------------------------------- measured, full DFT
    # nc against google/svcca's per-frequency loop (re-timed, benchmarks/prototypes.py) and
    # the streamed accumulator, round-robin in one process so that load drift hits all alike
    N, H, W, C = cfg["full_shape"]
    X, Y = make_conv_pair(N, H, W, C, seed=2)
    batch = cfg["stream_batch"]

    def streamed(X: np.ndarray = X, Y: np.ndarray = Y) -> Any:
        sm = nc.SpectralMoments((H, W))
        for s in range(0, N, batch):
            sm.update({"x": X[s : s + batch], "y": Y[s : s + batch]})
        return sm.dft_cca("x", "y")

    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    fns = {
        "nc.cca(conv='dft')": lambda: nc.cca(X, Y, conv="dft"),
        "nc.svcca(conv='dft', variance=0.99)": lambda: nc.svcca(X, Y, conv="dft", variance=0.99),
        "nc.cca(conv='dft'), float32 input (float32 products)": lambda: nc.cca(
            X32, Y32, conv="dft"
        ),
        f"SpectralMoments, batches of {batch}, + .dft_cca": streamed,
        f"SpectralMoments, float32 batches of {batch} (float32 products)": lambda: streamed(
            X32, Y32
        ),
        "google/svcca fourier_ccas loop (re-timed)": lambda: prototypes.google_fourier_ccas_loop(
            X, Y
        ),
    }
    load_before = os.getloadavg()
    res = bench_interleaved(fns, repeats=reps)
    load_after = os.getloadavg()
    t_full = res["nc.cca(conv='dft')"]
    t_google = res["google/svcca fourier_ccas loop (re-timed)"]
    value = float(t_full.last)
    out["dft_full_measured"] = {"shape": [N, H, W, C], **t_full.as_dict()}
    out["dft_full_value"] = value
    out["vs_google"] = {
        "shape": [N, H, W, C],
        "loadavg_before": list(load_before),
        "loadavg_after": list(load_after),
        "timings": {k: t.as_dict() for k, t in res.items()},
        "values": {k: float(t.last) for k, t in res.items()},
        "speedup_vs_google": {k: t_google.median / t.median for k, t in res.items()},
        "abs_diff_streamed_vs_nc": abs(
            float(res[f"SpectralMoments, batches of {batch}, + .dft_cca"].last) - value
        ),
        "abs_diff_google_vs_nc": abs(float(t_google.last) - value),
    }
    out["speedup_vs_google_cpu_time"] = {
        k: t_google.cpu_median / t.cpu_median for k, t in res.items()
    }
    rows_g = [
        [
            k,
            fmt_s(t.median),
            fmt_s(t.cpu_median),
            fmt_x(t_google.median / t.median),
            fmt_x(t_google.cpu_median / t.cpu_median),
            f"{float(t.last):.10f}",
        ]
        for k, t in res.items()
    ]
    print(
        f"  ({N}, {H}, {W}, {C}), {reps} interleaved repeats, load average "
        f"{load_before[0]:.2f} -> {load_after[0]:.2f}"
    )
    print(
        table(
            rows_g,
            [
                "variant",
                "wall (median)",
                "CPU",
                "× faster than google's loop (wall)",
                "(CPU time)",
                "value",
            ],
        )
    )
    out["rows_vs_google"] = rows_g
    # ---------------------------------------------------------------- extrapolated
    out["rows"] = rows
    if not out["brute_force_measured"]:  # --vs-google: no brute force to extrapolate from
        return out
    n_full, p_full = N * H * W, H * W * C
    largest = out["brute_force_measured"][-1]
    c = largest["cost_constant_c_s"]
    t_bf_full = c * n_full * p_full * p_full
    out["brute_force_full_extrapolated_s"] = t_bf_full
    out["extrapolation_model"] = (
        "t = c·n·p² with c from the largest measured brute force "
        f"(shape {largest['shape']}, c = {c:.3e} s)"
    )
    # pure-GEMM floor of the brute force products at the square GEMM rate
    if gemm and "square_numpy_f64" in gemm:
        rate = gemm["square_numpy_f64"]["gflops"] * 1e9
        out["brute_force_full_gemm_floor_s"] = 2.0 * n_full * 3 * p_full**2 / rate
    out["brute_force_full_memory_gb"] = 2 * n_full * p_full * 8 / 1e9
    out["speedup_dft_vs_brute_force_full_extrapolated"] = t_bf_full / t_full.median
    if len(out["brute_force_measured"]) > 1:
        a, b = out["brute_force_measured"][0], out["brute_force_measured"][-1]
        out["model_check_c_small_over_c_large"] = a["cost_constant_c_s"] / b["cost_constant_c_s"]
    print(
        f"  brute force at ({N}, {H}, {W}, {C}) = {n_full} × {p_full}: "
        f"{t_bf_full:.3g} s = {t_bf_full / 3600:.2f} h (EXTRAPOLATED), "
        f"inputs alone {out['brute_force_full_memory_gb']:.0f} GB; "
        f"DFT path {fmt_s(t_full.median)} (measured): "
        f"{fmt_x(out['speedup_dft_vs_brute_force_full_extrapolated'])}"
    )
    if "brute_force_full_gemm_floor_s" in out:
        print(
            "  even at the peak square-GEMM rate its products alone would take "
            f"{out['brute_force_full_gemm_floor_s']:.3g} s"
        )
    return out


def _timed(fn: Any) -> tuple[float, Any]:
    import time

    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def quick_cfg(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "small_shapes": [(64, 4, 4, 8), (32, 8, 8, 8)],
            "full_shape": (300, 16, 16, 32),
            "repeats": 2,
            "bf_repeats": 1,
            "stream_batch": 100,
        }
    return {
        # N = 500 keeps n/p = 31.25, the ratio of the full (2000, 16, 16, 64) problem
        "small_shapes": [(500, 4, 4, 16), (500, 8, 8, 16)],
        "full_shape": (2000, 16, 16, 64),
        "repeats": 3,
        "bf_repeats": 2,
        "stream_batch": 500,
    }


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--vs-google", action="store_true", help="only the interleaved run against google's loop"
    )
    a = p.parse_args()
    cfg = quick_cfg(a.quick)
    if a.vs_google:
        cfg["small_shapes"] = []
    run(cfg)
