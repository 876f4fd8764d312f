"""Benchmark 2: one pair of 10000 × 512 representations; ours vs the installable anchors.

For each nncompare measure we report the median time and its ratio to the *matmul bound*:
the flops of the products every linear measure needs (Xᵀ X, Yᵀ Y, Xᵀ Y, counted as GEMMs:
2·n·(d1² + d2² + d1·d2)) divided by the numpy GEMM rate at the workload shape in the
input's dtype (Xᵀ Y in float64 for float64 inputs, in float32 for float32 inputs: "its
bound"), measured round-robin with the measure so that load drift hits both alike (each
timed call after a settling pause, see ``_util.settle``). "best / best bound" divides the
fastest repeat of the measure by the fastest repeat of the bound's product (``timeit``'s
estimator: on a shared VM it is less moved by other tenants than the medians, which stay
the headline). "time / pooled bound" divides the median by one bound per dtype: the
median over every repeat of the bound's product in all that dtype's rows (each row's own
bound moves with the machine's state while that row runs; the pooled one is the same
denominator for every row). Beside it: the measure computed from its finished ``Moments``
(a fresh copy per call: the decompositions alone), so that ``(time - from Moments) /
bound`` is the share of the products and the passes over the data. For float32 inputs
the value of the default ``precision="auto"`` (float32 products) is compared with
``precision="float64"`` (the exact path).

Anchors (installed from the package registry, called as documented in
/work/shared/reference/README.md):

* ckatorch 1.0.3 ``cka_base(x, y, kernel="linear", unbiased=False|True)``: n × n Gram
  matrices in float64;
* torch-cka 0.21 ``CKA`` driven by identity models whose features are X and Y, float32:
  one batch holding all n rows (= debiased linear CKA) and minibatches (Nguyen et al.).

google/svcca, netrep, anatome and similarity-repository are not installable from the
registry; they are not timed here (their values are in the reference corpus).

Run alone: ``python benchmarks/bench_measures.py [--quick] [--measures-only] [--measures cka,cca]``
(``--measures-only``: the ratio table alone, no anchors, profiles or primitives).
"""

from __future__ import annotations

import cProfile
import io
import pickle
import pstats
import statistics
import sys
from typing import Any

if __name__ == "__main__":
    import _util

    # --blas-threads through the environment before numpy loads: it then also sets
    # nncompare's own worker count (which follows OMP_NUM_THREADS), not only BLAS's
    _util.early_thread_limit(sys.argv[1:])

import numpy as np
import prototypes
from _util import (
    bench,
    bench_interleaved,
    fmt_s,
    fmt_x,
    loadavg,
    positive_int,
    quiet_third_party,
    table,
)

import nncompare as nc

OURS = ("cka", "cka_debiased", "cca", "svcca", "pwcca", "procrustes")
# goals from the project brief: ratio to the matmul bound
GOALS = {
    "cka": 1.2,
    "cka_debiased": 1.2,
    "cca": 1.5,
    "svcca": 2.0,
    "pwcca": 2.0,
    "procrustes": 1.2,
}


#: measures that accept a Moments in place of the arrays
FROM_MOMENTS = ("cka", "cca", "svcca", "pwcca", "procrustes")


def make_pair(n: int, d1: int, d2: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A related pair: Y is a random linear map of X plus noise, with a non-zero offset."""
    rng = np.random.default_rng(seed)
    # decaying spectrum like real activations
    X = rng.standard_normal((n, d1)) * (1.0 / np.sqrt(1.0 + np.arange(d1)))[None, :] + 0.3
    Y = X @ rng.standard_normal((d1, d2)) / np.sqrt(d1) + 0.5 * rng.standard_normal((n, d2)) + 1.0
    return X, Y


def bound_flops(n: int, d1: int, d2: int) -> float:
    return 2.0 * n * (d1 * d1 + d2 * d2 + d1 * d2)


def _value(r: Any) -> float:
    return float(r)


def _missing_anchors() -> list[str]:
    import importlib.util

    return [m for m in ("ckatorch", "torch_cka") if importlib.util.find_spec(m) is None]


def _has_precision(f: Any) -> bool:
    import inspect

    return "precision" in inspect.signature(f).parameters


_HEADER = [
    "measure",
    "input",
    "median (wall)",
    "matmul bound",
    "time / bound",
    "best / best bound",
    "time / pooled bound",
    "CPU time / CPU bound",
    "time / joint syrk",
    "from Moments",
    "(time − from Moments) / bound",
    "goal",
]
_ACC_HEADER = ["measure (float32 input)", "precision='auto'", "precision='float64'", "|difference|"]


# --------------------------------------------------------------------------- anchors
def ckatorch_fn(X: np.ndarray, Y: np.ndarray, unbiased: bool):
    import torch
    from ckatorch.core import cka_base

    x, y = torch.from_numpy(X), torch.from_numpy(Y)

    def f() -> float:
        with torch.no_grad():
            return float(cka_base(x, y, kernel="linear", unbiased=unbiased, method="fro_norm"))

    return f


def torch_cka_fn(X: np.ndarray, Y: np.ndarray, batch_size: int):
    quiet_third_party()
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from torch_cka import CKA

    x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(Y, dtype=np.float32))

    def f() -> float:
        m1, m2 = nn.Sequential(nn.Identity()), nn.Sequential(nn.Identity())
        cka = CKA(m1, m2, "model_x", "model_y", model1_layers=["0"], model2_layers=["0"])
        dl1 = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=False)
        dl2 = DataLoader(TensorDataset(y), batch_size=batch_size, shuffle=False)
        with torch.no_grad():
            cka.compare(dl1, dl2)
        return float(cka.export()["CKA"][0, 0])

    return f


# --------------------------------------------------------------------------- profiling
def profile_call(fn: Any, top: int = 12) -> dict[str, Any]:
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    st = pstats.Stats(pr)
    rows = []
    for (file, line, func), (_cc, nc_, tt, ct, _callers) in st.stats.items():
        rows.append(
            {
                "function": f"{file.split('site-packages/')[-1].split('src/')[-1]}:{line}({func})",
                "calls": nc_,
                "tottime_s": round(tt, 4),
                "cumtime_s": round(ct, 4),
            }
        )
    rows.sort(key=lambda r: -r["tottime_s"])
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(top)
    return {"total_s": sum(r["tottime_s"] for r in rows), "top_tottime": rows[:top]}


def components(n: int, d1: int, d2: int, repeats: int) -> dict[str, Any]:
    """Time the primitives a moments-based measure is made of, at this shape."""
    from scipy.linalg import solve_triangular
    from threadpoolctl import threadpool_limits

    X, Y = make_pair(n, d1, d2, seed=1)
    Z = np.hstack([X - X.mean(0), Y - Y.mean(0)])
    C = Z.T @ Z
    Cxx = C[:d1, :d1] / np.outer(np.sqrt(np.diag(C[:d1, :d1])), np.sqrt(np.diag(C[:d1, :d1])))
    L = np.linalg.cholesky(Cxx)
    M = C[:d1, d1:]
    prims = {
        "isfinite(X).all()+isfinite(Y).all()": lambda: (
            bool(np.isfinite(X).all()) and bool(np.isfinite(Y).all())
        ),
        "column min+max of X, Y": lambda: (X.min(0), X.max(0), Y.min(0), Y.max(0)),
        "means + centre X, Y into one new buffer": lambda: prototypes.centre_into(X, Y),
        f"joint syrk [X Y]ᵀ[X Y] ({d1 + d2}²)": lambda: Z.T @ Z,
        f"3 products XᵀX, YᵀY, XᵀY ({d1}/{d2})": lambda: (
            Z[:, :d1].T @ Z[:, :d1],
            Z[:, d1:].T @ Z[:, d1:],
            Z[:, :d1].T @ Z[:, d1:],
        ),
        f"eigh {d1}×{d1}": lambda: np.linalg.eigh(Cxx),
        f"cholesky {d1}×{d1}": lambda: np.linalg.cholesky(Cxx),
        f"solve_triangular {d1}×{d1} (inverse)": lambda: solve_triangular(
            L, np.eye(d1), lower=True, check_finite=False
        ),
        f"svd {d1}×{d2} (U, s, Vh)": lambda: np.linalg.svd(M, full_matrices=False),
        f"svdvals {d1}×{d2}": lambda: np.linalg.svd(M, compute_uv=False),
        f"eigvalsh {d1}×{d1}": lambda: np.linalg.eigvalsh(Cxx),
        f"matmul {d1}×{d1}·{d1}×{d2}": lambda: Cxx @ M,
    }
    out: dict[str, Any] = {}
    rows = []
    for name, f in prims.items():
        t = bench(f, repeats=repeats)
        with threadpool_limits(1):
            t1 = bench(f, repeats=repeats)
        out[name] = {"current_threads": t.as_dict(), "one_thread": t1.as_dict()}
        rows.append([name, fmt_s(t.median), fmt_s(t.cpu_median), fmt_s(t1.median)])
    print(
        table(
            rows,
            ["primitive", "median (wall)", "median (CPU)", "median (wall, 1 BLAS thread)"],
        )
    )
    out["rows"] = rows
    return out


# --------------------------------------------------------------------------- main
def run(cfg: dict[str, Any], gemm: dict[str, Any] | None = None) -> dict[str, Any]:
    n, d1, d2 = cfg["n"], cfg["d"], cfg["d"]
    reps = cfg["repeats"]
    X64, Y64 = make_pair(n, d1, d2)
    X32, Y32 = X64.astype(np.float32), Y64.astype(np.float32)
    flops = bound_flops(n, d1, d2)

    def bound_of(gemm_s: float) -> float:
        """The bound's seconds, given one time of the Xᵀ Y product that sets its rate."""
        return flops * gemm_s / (2.0 * n * d1 * d2)

    out: dict[str, Any] = {
        "shape": {"n": n, "d1": d1, "d2": d2},
        "bound_flops": flops,
        "bound_definition": "2·n·(d1²+d2²+d1·d2) / (numpy GEMM rate of Xᵀ Y at this shape "
        "in the input's dtype, timed round-robin with the measure, each call after a "
        "settling pause)",
        "ours": {},
        "anchors": {},
    }
    square_rate = None
    if gemm and "square_numpy_f64" in gemm:
        square_rate = gemm["square_numpy_f64"]["gflops"] * 1e9
    rows = []
    measures = cfg.get("measures") or OURS
    values: dict[str, float] = {}
    accuracy_rows = []
    out["accuracy"] = {}
    for dname, (X, Y) in (("float64", (X64, Y64)), ("float32", (X32, Y32))):
        # every repeat of the bound's product in this dtype, over all rows: the pooled bound
        bound_times: list[float] = []
        dtype_rows: list[tuple[int, str, float]] = []

        # "its bound": the products in the input's own precision, at that precision's rate
        def gemm_ref(X: np.ndarray = X, Y: np.ndarray = Y) -> Any:
            return X.T @ Y

        # the flop-minimal form of the three products: one symmetric product of the
        # centred, concatenated data (n·(d1+d2)² flops = the GEMM count of
        # XᵀX/2 + YᵀY/2 + XᵀY)
        Zc = np.hstack([X - X.mean(0), Y - Y.mean(0)])

        def syrk_ref(Zc: np.ndarray = Zc) -> Any:
            return Zc.T @ Zc

        for m in measures:
            f = getattr(nc, m)
            r = reps if dname == "float64" else max(3, reps - 2)
            # the same measure from the finished moments (a fresh, uncached copy per call):
            # the decompositions and everything else that does not touch the samples
            # (cka_debiased needs per-sample norms, which Moments do not hold)
            fns = {"measure": lambda f=f, X=X, Y=Y: f(X, Y), "gemm": gemm_ref, "syrk": syrk_ref}
            if m in FROM_MOMENTS:
                m0 = nc.Moments.from_arrays(X, Y)
                copies = [pickle.loads(pickle.dumps(m0)) for _ in range(r + 1)]
                fns["moments"] = lambda f=f, copies=copies: f(copies.pop())
            res = bench_interleaved(fns, repeats=r)
            t, tg, ts, tm = res["measure"], res["gemm"], res["syrk"], res.get("moments")
            bound_times.extend(tg.times)
            rate = 2.0 * n * d1 * d2 / tg.median
            bound = flops / rate
            val = _value(res["measure"].last)
            values[f"{m}/{dname}"] = val
            entry = {
                **t.as_dict(),
                "value": val,
                "gemm_XtY_s": tg.median,
                "gemm_dtype": dname,
                "gemm_rate_gflops": rate / 1e9,
                "bound_s": bound,
                "ratio_to_bound": t.median / bound,
                "ratio_to_bound_min": t.min / bound_of(tg.min),
                # process CPU time: immune to waiting for a core on a shared machine; with
                # one BLAS thread it is the uncontended wall time
                "ratio_to_bound_cpu": t.cpu_median / (tg.cpu_median * flops / (2.0 * n * d1 * d2)),
                "joint_syrk_s": ts.median,
                "ratio_to_joint_syrk": t.median / ts.median,
                "ratio_to_joint_syrk_cpu": t.cpu_median / ts.cpu_median,
            }
            if tm is not None:
                entry["from_moments_s"] = tm.median
                entry["ratio_products_to_bound"] = (t.median - tm.median) / bound
            if square_rate:
                entry["bound_square_rate_s"] = flops / square_rate
                entry["ratio_to_square_rate_bound"] = t.median / (flops / square_rate)
            if dname == "float32" and _has_precision(f):
                # accuracy of the float32 products against the exact (float64) path
                exact = _value(f(X, Y, precision="float64"))
                entry["value_precision_float64"] = exact
                entry["abs_diff_to_float64_path"] = abs(val - exact)
                out["accuracy"][m] = abs(val - exact)
                diff = f"{abs(val - exact):.1e}"
                accuracy_rows.append([f"nc.{m}", f"{val:.10f}", f"{exact:.10f}", diff])
            out["ours"][f"{m}/{dname}"] = entry
            goal = GOALS.get(m)
            rows.append(
                [
                    f"nc.{m}",
                    dname,
                    fmt_s(t.median),
                    fmt_s(bound),
                    fmt_x(entry["ratio_to_bound"]),
                    fmt_x(entry["ratio_to_bound_min"]),
                    "",  # time / pooled bound: filled in once every row of this dtype ran
                    fmt_x(entry["ratio_to_bound_cpu"]),
                    fmt_x(entry["ratio_to_joint_syrk"]),
                    fmt_s(tm.median) if tm is not None else "-",
                    fmt_x(entry["ratio_products_to_bound"]) if tm is not None else "-",
                    f"≤ {goal}×" if goal else "-",
                ]
            )
            dtype_rows.append((len(rows) - 1, f"{m}/{dname}", t.median))
            print(
                f"  nc.{m:13s} {dname}: {fmt_s(t.median):>9s}  bound {fmt_s(bound)}  "
                f"ratio {fmt_x(entry['ratio_to_bound'])} "
                f"(CPU {fmt_x(entry['ratio_to_bound_cpu'])})"
                f"  load {loadavg()}",
                flush=True,
            )
        # the per-row bound scatters with the machine's state while each row runs (one run
        # saw 131-175 ms for the same product); the median over all rows' repeats is a
        # steadier denominator for comparing the rows of one dtype with each other
        pooled = bound_of(statistics.median(bound_times))
        out[f"pooled_bound_{dname}_s"] = pooled
        for i, key, med in dtype_rows:
            out["ours"][key]["pooled_bound_s"] = pooled
            out["ours"][key]["ratio_to_pooled_bound"] = med / pooled
            rows[i][_HEADER.index("time / pooled bound")] = fmt_x(med / pooled)
    if not cfg.get("anchors", True):
        print()
        print(table(rows, _HEADER))
        if accuracy_rows:
            print()
            print(table(accuracy_rows, _ACC_HEADER))
        out["rows"] = rows
        out["loadavg_end"] = loadavg()
        return out
    X, Y = X64, Y64

    def gemm_ref() -> Any:
        return X64.T @ Y64

    Zc = np.hstack([X64 - X64.mean(0), Y64 - Y64.mean(0)])

    def syrk_ref() -> Any:
        return Zc.T @ Zc

    # prototypes (benchmarks/prototypes.py: our own minimal numpy code, full-rank inputs)
    res = bench_interleaved(
        {
            "prototype_cka": lambda: prototypes.cka_prototype(X64, Y64),
            "prototype_cca": lambda: prototypes.cca_prototype(X64, Y64),
            "gemm": gemm_ref,
            "syrk": syrk_ref,
        },
        repeats=reps,
    )
    rate = 2.0 * n * d1 * d2 / res["gemm"].median
    for k in ("prototype_cka", "prototype_cca"):
        t = res[k]
        # the nncompare value it should agree with, where that measure was run
        ref = values.get("cka/float64" if k == "prototype_cka" else "cca/float64")
        v = float(t.last)
        tg = res["gemm"]
        cpu_bound = tg.cpu_median * flops / (2.0 * n * d1 * d2)
        out["ours"][f"{k}/float64"] = {
            **t.as_dict(),
            "value": v,
            "abs_diff_to_nc": None if ref is None else abs(v - ref),
            "bound_s": flops / rate,
            "ratio_to_bound": t.median / (flops / rate),
            "ratio_to_bound_cpu": t.cpu_median / cpu_bound,
        }
        rows.append(
            [
                {
                    "prototype_cka": "prototype cka: chunked syrk",
                    "prototype_cca": "prototype cca: chunked syrk, Cholesky, svdvals",
                }[k],
                "float64",
                fmt_s(t.median),
                fmt_s(flops / rate),
                fmt_x(t.median / (flops / rate)),
                fmt_x(t.min / bound_of(tg.min)),
                fmt_x(t.median / out["pooled_bound_float64_s"]),
                fmt_x(t.cpu_median / cpu_bound),
                fmt_x(t.median / res["syrk"].median),
                "-",
                "-",
                "-",
            ]
        )

    # anchors (skipped, with a note, when ckatorch / torch-cka are not installed)
    crow: list[list[Any]] = []
    agree: dict[str, float] = {}
    out["speedups"] = {}
    out["fastest_full_n_anchor_s"] = float("nan")
    missing = _missing_anchors()
    if missing:
        out["anchors_missing"] = missing
        print(f"  anchors not installed ({', '.join(missing)}): comparisons skipped", flush=True)
    else:
        mb = cfg["torch_cka_mb"]
        anchor_specs: list[tuple[str, Any, str]] = [
            ("ckatorch cka_base linear unbiased=False", ckatorch_fn(X64, Y64, False), "float64"),
            ("ckatorch cka_base linear unbiased=True", ckatorch_fn(X64, Y64, True), "float64"),
            (f"torch-cka CKA, one batch of {n}", torch_cka_fn(X32, Y32, n), "float32"),
            (f"torch-cka CKA, minibatches of {mb}", torch_cka_fn(X32, Y32, mb), "float32"),
        ]
        for name, f, dname in anchor_specs:
            big = "minibatches" not in name  # n × n Gram matrices
            r = cfg["anchor_repeats_big"] if big else cfg["anchor_repeats"]
            t = bench(f, repeats=r, warmup=0 if big else 1)
            key = f"{name}/{dname}"
            out["anchors"][key] = {**t.as_dict(), "value": float(t.last)}
            print(f"  {name} ({dname}): {fmt_s(t.median)}  value {float(t.last):.8f}", flush=True)
        ck = out["anchors"]
        t_ck = ck["ckatorch cka_base linear unbiased=False/float64"]["median_s"]
        t_cku = ck["ckatorch cka_base linear unbiased=True/float64"]["median_s"]
        t_tc = ck[f"torch-cka CKA, one batch of {n}/float32"]["median_s"]
        t_tcm = ck[f"torch-cka CKA, minibatches of {mb}/float32"]["median_s"]
        o = out["ours"]
        comparisons = [
            ("nc.cka vs ckatorch unbiased=False", "cka/float64", t_ck, "float64"),
            ("nc.cka (float32 in) vs ckatorch unbiased=False", "cka/float32", t_ck, "float64"),
            ("nc.cka_debiased vs ckatorch unbiased=True", "cka_debiased/float64", t_cku, "float64"),
            ("nc.cka_debiased vs torch-cka one batch", "cka_debiased/float32", t_tc, "float32"),
            (
                f"nc.cka_debiased vs torch-cka minibatch {mb} (other estimator)",
                "cka_debiased/float32",
                t_tcm,
                "float32",
            ),
        ]
        for label, key, t_anchor, dname in comparisons:
            sp = t_anchor / o[key]["median_s"]
            out["speedups"][label + f" [{dname}]"] = sp
            crow.append([label, dname, fmt_s(o[key]["median_s"]), fmt_s(t_anchor), fmt_x(sp)])
        # the CCA family vs the fastest anchor computing a full-n estimate (CKA)
        fastest_anchor = min(t_ck, t_cku, t_tc)
        out["fastest_full_n_anchor_s"] = fastest_anchor
        for m in ("cca", "svcca", "pwcca", "procrustes"):
            sp = fastest_anchor / o[f"{m}/float64"]["median_s"]
            out["speedups"][f"nc.{m} vs fastest full-n anchor (CKA)"] = sp

        # agreement of values (anchor values come from their timed calls)
        agree = {
            "|nc.cka - ckatorch| (float64)": abs(
                values["cka/float64"]
                - ck["ckatorch cka_base linear unbiased=False/float64"]["value"]
            ),
            "|nc.cka_debiased - ckatorch unbiased| (float64)": abs(
                values["cka_debiased/float64"]
                - ck["ckatorch cka_base linear unbiased=True/float64"]["value"]
            ),
            "|nc.cka_debiased - torch-cka one batch| (float32)": abs(
                values["cka_debiased/float32"]
                - ck[f"torch-cka CKA, one batch of {n}/float32"]["value"]
            ),
        }
    out["agreement"] = agree

    print()
    print(table(rows, _HEADER))
    if accuracy_rows:
        print()
        print(table(accuracy_rows, _ACC_HEADER))
    print()
    print(table(crow, ["comparison", "input", "nncompare", "anchor", "speed-up"]))
    for k, v in agree.items():
        print(f"  {k} = {v:.2e}")
    out["rows"] = rows
    out["comparison_rows"] = crow

    # profiles of every measure (float64), and a primitive breakdown
    out["profiles"] = {}
    for m in OURS:
        f = getattr(nc, m)
        out["profiles"][m] = profile_call(lambda f=f: f(X64, Y64))
    print("\nprimitives at this shape:")
    out["components"] = components(n, d1, d2, repeats=max(3, reps))
    return out


def quick_cfg(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "n": 1000,
            "d": 64,
            "repeats": 3,
            "anchor_repeats": 2,
            "anchor_repeats_big": 1,
            "torch_cka_mb": 250,
        }
    return {
        "n": 10000,
        "d": 512,
        "repeats": 5,
        "anchor_repeats": 2,
        "anchor_repeats_big": 1,
        "torch_cka_mb": 1000,
    }


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--measures-only",
        action="store_true",
        help="time nncompare's measures against the bound only (no anchors, profiles, primitives)",
    )
    p.add_argument("--measures", default=None, help="comma-separated subset, e.g. cka,cca")
    p.add_argument("--n", type=int, default=None, help="samples (default 10000, quick 1000)")
    p.add_argument("--d", type=int, default=None, help="features per side (default 512, quick 64)")
    p.add_argument("--repeats", type=positive_int, default=None, help="timed repeats per measure")
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="limit BLAS/OpenMP threads and nncompare's worker threads (set in the "
        "environment before numpy loads, then threadpoolctl); 1 gives ratios robust to a "
        "shared machine's load",
    )
    a = p.parse_args()
    cfg = quick_cfg(a.quick)
    if a.measures_only:
        cfg["anchors"] = False
    if a.measures:
        chosen = tuple(m.strip() for m in a.measures.split(",") if m.strip())
        unknown = [m for m in chosen if m not in OURS]
        if unknown or not chosen:
            p.error(
                f"--measures takes a comma-separated subset of {','.join(OURS)}; got {a.measures!r}"
            )
        cfg["measures"] = chosen
    if a.n:
        cfg["n"] = a.n
    if a.d:
        cfg["d"] = a.d
    if a.repeats:
        cfg["repeats"] = a.repeats
    print(f"load average at start: {loadavg()}")
    from nncompare._threads import worker_count

    print(f"nncompare worker threads: {worker_count()}")
    if a.blas_threads:
        # load every BLAS first (scipy's is a separate OpenBLAS, loaded lazily otherwise):
        # threadpoolctl limits only the libraries already loaded
        import scipy.linalg  # noqa: F401
        import torch  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(a.blas_threads):
            run(cfg)
    else:
        run(cfg)
    print(f"load average at end: {loadavg()}")
