"""The streamed exact DFT path at several batch sizes, against the one-shot call.

``nc.SpectralMoments`` fed (2000, 16, 16, 64) float64 activations in batches of 100, 250,
500 and 1000 samples (then ``SpectralMoments.dft_cca``), round-robin with
``nc.cca(X, Y, conv="dft")`` on all 2000 at once, each call after a settling pause. The
ratio "streamed / one-shot" is what streaming costs on top of the one-shot call: per
batch, the validation scan and the setup of the transforms; per run of batches, the
centring and merge (see ``SpectralMoments``).

Run alone: ``python benchmarks/bench_dft_stream.py [--repeats 5] [--blas-threads 1]``.
To compare two versions of nncompare, run it once per version (e.g. with ``PYTHONPATH``
pointing at another checkout's ``src``), alternating.
"""

from __future__ import annotations

import argparse
import sys

from _util import early_thread_limit

early_thread_limit(sys.argv)

from _util import bench_interleaved, fmt_s, loadavg, positive_int, table  # noqa: E402
from bench_conv import make_conv_pair  # noqa: E402

import nncompare as nc  # noqa: E402


def _ints(text: str) -> list[int] | None:
    """Comma-separated positive integers, or None."""
    try:
        out = [int(v) for v in text.split(",")]
    except ValueError:
        return None
    return out if all(v > 0 for v in out) else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="2000,16,16,64", help="N,H,W,C")
    p.add_argument("--batches", default="100,250,500,1000", help="batch sizes, comma separated")
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--blas-threads", type=int, default=None, help="(applied before numpy loads)")
    a = p.parse_args()
    shape, batches = _ints(a.shape), _ints(a.batches)
    if shape is None or len(shape) != 4:
        p.error(f"--shape takes N,H,W,C (four positive integers); got {a.shape!r}")
    if batches is None:
        p.error(f"--batches takes positive integers, comma separated; got {a.batches!r}")
    N, H, W, C = shape
    X, Y = make_conv_pair(N, H, W, C, seed=2)

    def streamed(b: int) -> float:
        sm = nc.SpectralMoments((H, W))
        for s in range(0, N, b):
            sm.update({"x": X[s : s + b], "y": Y[s : s + b]})
        return float(sm.dft_cca("x", "y"))

    fns = {"one-shot nc.cca(conv='dft')": lambda: float(nc.cca(X, Y, conv="dft"))}
    for b in batches:
        fns[f"SpectralMoments, batches of {b}"] = lambda b=b: streamed(b)
    before = loadavg()
    res = bench_interleaved(fns, repeats=a.repeats)
    one = res["one-shot nc.cca(conv='dft')"].median
    rows = [[k, fmt_s(t.median), f"{t.median / one:.2f}", f"{t.last:.10f}"] for k, t in res.items()]
    print(
        f"shape {(N, H, W, C)}, float64, {a.repeats} interleaved repeats, "
        f"load average {before} -> {loadavg()}"
    )
    print(table(rows, ["variant", "wall (median)", "× one-shot", "value"]))


if __name__ == "__main__":
    main()
