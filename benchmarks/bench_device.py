"""Benchmark 7: nncompare on torch tensors on one device (a GPU where one is lent), against
that device's own matmul rate.

Every input is a torch tensor on ``--device``; every result must come back as a torch
tensor on that device (checked: a step that fell back to the host would show here) and
agree with the numpy result on the host copy (printed). Rows, each timed round-robin with
its bound (``_util.bench_interleaved``; on CUDA every call ends with a synchronisation):

* the device's GEMM rate, square (``--gemm`` × ``--gemm``), float64 and float32;
* the measures of benchmark 2 (``bench_measures.py``) on n × d pairs, time / the matmul
  bound 2·n·(d² + d² + d²) at the rate of the device's Xᵀ Y in the input's dtype;
* the exact DFT path at (N, H, W, C), one-shot and streamed (``SpectralMoments``, four
  batches), against one batched complex product (R, D, N) · (R, N, D) of the same
  shape on the device (R = the kept frequencies, D = both inputs' channels);
* the linear-CKA grid of L layers of n × d float32 (``nc.pairwise``), against the joint
  symmetric product of all the layers side by side.

Run alone: ``python benchmarks/bench_device.py --device cuda [--repeats 5]``;
``--quick`` shrinks every size (``--device cpu`` runs it on the host, e.g. in the tests).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from _util import early_thread_limit

early_thread_limit(sys.argv)

import numpy as np  # noqa: E402
from _util import bench_interleaved, fmt_s, loadavg, positive_int, table  # noqa: E402
from bench_conv import make_conv_pair  # noqa: E402
from bench_measures import GOALS, OURS, make_pair  # noqa: E402

import nncompare as nc  # noqa: E402

FULL = {"n": 10000, "d": 512, "gemm": 4096, "conv": (2000, 16, 16, 64), "grid": (10, 5000, 256)}
QUICK = {"n": 600, "d": 48, "gemm": 256, "conv": (80, 8, 8, 8), "grid": (3, 300, 16)}


def _synchroniser(device: Any) -> Any:
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _on_device(value: Any, device: Any) -> bool:
    import torch

    if not isinstance(value, torch.Tensor) or value.device.type != device.type:
        return False
    return device.index is None or value.device.index in (None, device.index)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="a torch device: cuda, cuda:1, cpu, ...")
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--blas-threads", type=int, default=None, help="(applied before numpy loads)")
    a = p.parse_args()
    import torch

    try:
        device = torch.device(a.device)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as exc:
        p.error(f"--device {a.device!r} is not usable here ({exc}); try --device cpu")
    cfg = QUICK if a.quick else FULL
    sync = _synchroniser(device)
    misplaced: list[str] = []  # results that did not come back on the device
    reps = a.repeats
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "host CPU"
    print(f"device {device} ({gpu_name}), torch {torch.__version__}, load {loadavg()}")

    def timed(fn: Any) -> Any:
        def call() -> Any:
            out = fn()
            sync()
            return out

        return call

    # ------------------------------------------------------------------ GEMM rate
    g = cfg["gemm"]
    rows = []
    for dt in (torch.float64, torch.float32):
        A = torch.randn(g, g, dtype=dt, device=device)
        res = bench_interleaved({"gemm": timed(lambda A=A: A @ A)}, repeats=reps)
        t = res["gemm"].median
        rows.append([f"{g} × {g} GEMM", str(dt).removeprefix("torch."), fmt_s(t)])
        rows[-1].append(f"{2 * g**3 / t / 1e9:.1f} GFlop/s")
    print(table(rows, ["product", "dtype", "median", "rate"]))

    # ------------------------------------------------------------------ measures
    n, d = cfg["n"], cfg["d"]
    X64, Y64 = make_pair(n, d, d)
    flops = 2.0 * n * 3 * d * d
    rows = []
    for dname, dt in (("float64", torch.float64), ("float32", torch.float32)):
        Xt = torch.as_tensor(X64, dtype=dt, device=device)
        Yt = torch.as_tensor(Y64, dtype=dt, device=device)
        Xh, Yh = Xt.cpu().numpy(), Yt.cpu().numpy()
        for m in OURS:
            f = getattr(nc, m)
            res = bench_interleaved(
                {
                    "measure": timed(lambda f=f, Xt=Xt, Yt=Yt: f(Xt, Yt)),
                    "bound": timed(lambda Xt=Xt, Yt=Yt: Xt.T @ Yt),
                },
                repeats=reps,
            )
            t, tb = res["measure"].median, res["bound"].median
            bound = flops * tb / (2.0 * n * d * d)
            value = res["measure"].last.value
            diff = abs(float(value) - float(f(Xh, Yh)))
            on = "yes" if _on_device(value, device) else "NO"
            if on == "NO":
                misplaced.append(f"{m} ({dname})")
            row = [m, dname, fmt_s(t), fmt_s(bound), f"{t / bound:.2f}", f"≤ {GOALS[m]}"]
            rows.append([*row, on, f"{diff:.1e}"])
    print(f"\n{n} × {d} pairs, time / matmul bound (the device's Xᵀ Y rate, input's dtype)")
    header = ["measure", "input", "median", "bound", "× bound", "goal", "on device", "|Δ| numpy"]
    print(table(rows, header))

    # ------------------------------------------------------------------ DFT
    N, H, W, C = cfg["conv"]
    X, Y = make_conv_pair(N, H, W, C, seed=2)
    Xt, Yt = torch.as_tensor(X, device=device), torch.as_tensor(Y, device=device)
    batch = max(1, N // 4)
    R = len(nc.SpectralMoments((H, W)).update({"x": X[:1]}).frequencies)  # kept frequencies
    Z = torch.randn(R, N, 2 * C, dtype=torch.complex128, device=device)

    def streamed() -> Any:
        sm = nc.SpectralMoments((H, W))
        for s in range(0, N, batch):
            sm.update({"x": Xt[s : s + batch], "y": Yt[s : s + batch]})
        return sm.dft_cca("x", "y")

    fns = {
        "nc.cca(conv='dft')": timed(lambda: nc.cca(Xt, Yt, conv="dft")),
        f"SpectralMoments, batches of {batch}, + .dft_cca": timed(streamed),
        f"bound: ({R}, {2 * C}, {N}) · ({R}, {N}, {2 * C}) complex": timed(lambda: Z.mT.conj() @ Z),
    }
    res = bench_interleaved(fns, repeats=reps)
    bound = res[list(fns)[-1]].median
    want = float(nc.cca(X, Y, conv="dft"))
    rows = []
    for k, t in res.items():
        last = t.last if k.startswith("bound") else t.last.value
        on = "yes" if _on_device(last, device) else "NO"
        if on == "NO":
            misplaced.append(k)
        diff = "" if k.startswith("bound") else f"{abs(float(last) - want):.1e}"
        rows.append([k, fmt_s(t.median), f"{t.median / bound:.2f}", on, diff])
    print(f"\nexact DFT path at {(N, H, W, C)}, float64 (complex128)")
    print(table(rows, ["variant", "median", "× bound", "on device", "|Δ| numpy"]))

    # ------------------------------------------------------------------ grid
    L, gn, gd = cfg["grid"]
    rng = np.random.default_rng(3)
    base = rng.standard_normal((gn, gd))
    layers = {
        f"l{i}": torch.as_tensor(
            base + 0.5 * i * rng.standard_normal((gn, gd)), dtype=torch.float32, device=device
        )
        for i in range(L)
    }
    joint = torch.cat([v - v.mean(0) for v in layers.values()], dim=1)
    res = bench_interleaved(
        {
            "grid": timed(lambda: nc.pairwise(layers, measures="cka")),
            "bound": timed(lambda: joint.T @ joint),
        },
        repeats=reps,
    )
    t, tb = res["grid"].median, res["bound"].median
    grid = res["grid"].last
    host = nc.pairwise({k: v.cpu().numpy() for k, v in layers.items()}, measures="cka")
    diff = float(np.max(np.abs(grid.values["cka"] - host.values["cka"])))
    print(f"\n{L} × {L} linear-CKA grid of {gn} × {gd} float32 (nc.pairwise)")
    rows = [["nc.pairwise", fmt_s(t), fmt_s(tb), f"{t / tb:.2f}", "≤ 1.5", f"{diff:.1e}"]]
    print(table(rows, ["variant", "median", "joint product", "× bound", "goal", "|Δ| numpy"]))
    if misplaced:
        sys.exit(f"results not on {device}: {', '.join(misplaced)}")
    print(f"\nevery result stayed on {device}")


if __name__ == "__main__":
    main()
