"""Prototypes of faster variants, to show what the measured gaps are worth, and re-timings.

Our own minimal numpy code for full-rank, float64 inputs; not a replacement for the
library (no validation, no rank handling, no torch). Used by ``bench_measures.py``
(section "prototypes") and runnable alone: ``python benchmarks/prototypes.py [--quick]``.
``google_fourier_ccas_loop`` re-times google/svcca's per-frequency DFT CCA (their
algorithm in our words; their code is Python 2 and not installable), for ``bench_conv.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
if __name__ == "__main__":
    import _util

    _util.early_thread_limit(sys.argv[1:])

import numpy as np


def centre_into(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Means, then centre X and Y into one new (n, d1+d2) float64 buffer."""
    n, d1 = X.shape
    Z = np.empty((n, d1 + Y.shape[1]))
    np.subtract(X, X.mean(axis=0), out=Z[:, :d1])
    np.subtract(Y, Y.mean(axis=0), out=Z[:, d1:])
    return Z


def centred_comoment_full(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """What a one-shot moments pass does: centre into one (n, d1+d2) buffer, then syrk."""
    Z = centre_into(X, Y)
    return Z.T @ Z


def centred_comoment_chunked(X: np.ndarray, Y: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Same result, centring row blocks into one small reused buffer (no n-sized temporary).

    The (chunk, d1+d2) buffer stays in cache-sized memory and no fresh n × (d1+d2) array
    is page-faulted in on every call; the products are accumulated block by block.
    """
    n, d1 = X.shape
    D = d1 + Y.shape[1]
    mx, my = X.mean(axis=0), Y.mean(axis=0)
    buf = np.empty((min(chunk, n), D))
    C = np.zeros((D, D))
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        Z = buf[: e - s]
        np.subtract(X[s:e], mx, out=Z[:, :d1])
        np.subtract(Y[s:e], my, out=Z[:, d1:])
        C += Z.T @ Z
    return C


def cca_values_only(C: np.ndarray, d1: int) -> np.ndarray:
    """Canonical correlations from a joint co-moment: Cholesky whitening + svdvals only."""
    from scipy.linalg import cholesky, solve_triangular

    Cxx, Cyy, Cxy = C[:d1, :d1], C[d1:, d1:], C[:d1, d1:]
    sx, sy = 1 / np.sqrt(np.diag(Cxx)), 1 / np.sqrt(np.diag(Cyy))
    Lx = cholesky(sx[:, None] * Cxx * sx[None, :], lower=True, check_finite=False)
    Ly = cholesky(sy[:, None] * Cyy * sy[None, :], lower=True, check_finite=False)
    M = solve_triangular(Lx, sx[:, None] * Cxy * sy[None, :], lower=True, check_finite=False)
    M = solve_triangular(Ly, M.T, lower=True, check_finite=False).T
    return np.clip(np.linalg.svd(M, compute_uv=False), 0.0, 1.0)


def cca_prototype(X: np.ndarray, Y: np.ndarray) -> float:
    """Mean CCA: chunked moments + Cholesky whitening + svdvals (directions not formed)."""
    C = centred_comoment_chunked(X, Y)
    return float(np.mean(cca_values_only(C, X.shape[1])))


def cka_prototype(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA from the chunked joint co-moment."""
    d1 = X.shape[1]
    C = centred_comoment_chunked(X, Y)
    hxy = np.sum(C[:d1, d1:] ** 2)
    return float(hxy / np.sqrt(np.sum(C[:d1, :d1] ** 2) * np.sum(C[d1:, d1:] ** 2)))


def google_fourier_ccas_loop(X: np.ndarray, Y: np.ndarray) -> float:
    """Re-timing of google/svcca's per-frequency DFT CCA: their algorithm, our words.

    What ``dft_ccas.fourier_ccas(X, Y)`` (github.com/google/svcca, dft_ccas.py, Python 2)
    does, step by step: cast to complex64 and take an unnormalised ``np.fft.fft2`` over the
    spatial axes (cropping to the common frequencies when the sizes differ), then for every
    frequency (i, j) call ``cca_core.get_cca_similarity`` on the (C, N) spectra. With the
    arguments fourier_ccas passes, that is: the joint ``np.cov`` of both sides (complex128),
    each block divided by its largest magnitude, ``remove_small`` at epsilon 0 (it keeps
    everything: fourier_ccas passes ``compute_dirns=False`` into the ``epsilon`` slot),
    ``pinv`` of both auto-covariances, their Hermitian square roots by ``eigh``, the product
    Σxx^-1/2 Σxy Σyy^-1/2, its full ``svd``, the neuron means and the ``sum_threshold`` loop
    for the summary statistics. Not timed: the pandas ``DataFrame.append`` per frequency
    (removed in pandas 2; it only adds to their time) and the coefficient bookkeeping
    (``np.place`` copies). Returns the mean of all coefficients over all frequencies, which
    equals ``nc.cca(X, Y, conv="dft")`` up to their complex64 rounding.
    """
    h, w = min(X.shape[1], Y.shape[1]), min(X.shape[2], Y.shape[2])

    def spectra(A: np.ndarray) -> np.ndarray:
        F = np.fft.fft2(A.astype(np.complex64), axes=(1, 2))
        if A.shape[1:3] != (h, w):
            freqs = np.fft.fftfreq(A.shape[2], d=1.0 / A.shape[2])
            keep = np.flatnonzero((freqs >= -w / 2.0) & (freqs < w / 2.0))
            F = F[:, :, keep, :][:, keep, :, :]
        return F

    def sqrt_psd(A: np.ndarray) -> np.ndarray:  # their positivedef_matrix_sqrt
        vals, vecs = np.linalg.eigh(A)
        return np.dot(vecs, np.dot(np.diag(np.sqrt(vals)), np.conj(vecs).T))

    F, G = spectra(X), spectra(Y)
    coefs = []
    for i in range(h):
        for j in range(w):
            a, b = F[:, i, j, :].T, G[:, i, j, :].T  # (channels, images)
            nx = a.shape[0]
            cov = np.cov(a, b)
            sxx, sxy, syy = cov[:nx, :nx], cov[:nx, nx:], cov[nx:, nx:]
            xmax, ymax = np.max(np.abs(sxx)), np.max(np.abs(syy))
            sxx, syy = sxx / xmax, syy / ymax
            sxy = sxy / np.sqrt(xmax * ymax)
            kx, ky = np.abs(np.diagonal(sxx)) >= 0.0, np.abs(np.diagonal(syy)) >= 0.0
            sxx, syy, sxy = sxx[kx][:, kx], syy[ky][:, ky], sxy[kx][:, ky]
            sxx = sxx + 0.0 * np.eye(sxx.shape[0])
            syy = syy + 0.0 * np.eye(syy.shape[0])
            wx = sqrt_psd(np.linalg.pinv(sxx))
            wy = sqrt_psd(np.linalg.pinv(syy))
            _, s, _ = np.linalg.svd(np.dot(wx, np.dot(sxy, wy)))
            s = np.abs(s)
            np.mean(a, axis=1, keepdims=True), np.mean(b, axis=1, keepdims=True)
            for _ in range(2):  # their sum_threshold(s, 0.98), once per side
                for k in range(len(s)):
                    if np.sum(s[:k]) / np.sum(s) >= 0.98:
                        break
            coefs.append(s)
    return float(np.mean(np.concatenate(coefs)))


def run(n: int, d: int, repeats: int) -> dict[str, Any]:
    from _util import bench_interleaved, fmt_s, table

    import nncompare as nc

    rng = np.random.default_rng(3)
    X = rng.standard_normal((n, d)) + 0.3
    Y = X @ rng.standard_normal((d, d)) / np.sqrt(d) + rng.standard_normal((n, d)) + 1.0
    fns = {
        "nc.Moments.from_arrays": lambda: nc.Moments.from_arrays(X, Y),
        "centre into (n, 2d) buffer + syrk": lambda: centred_comoment_full(X, Y),
        "chunked centring + syrk (2048 rows)": lambda: centred_comoment_chunked(X, Y),
        "nc.cka": lambda: nc.cka(X, Y),
        "prototype cka (chunked)": lambda: cka_prototype(X, Y),
        "nc.cca": lambda: nc.cca(X, Y),
        "prototype cca (chunked, values only)": lambda: cca_prototype(X, Y),
        "gemm Xᵀ Y": lambda: X.T @ Y,
    }
    res = bench_interleaved(fns, repeats=repeats)
    tg = res["gemm Xᵀ Y"]
    bound = tg.median * (3.0)  # d1 = d2: 2n(d1² + d2² + d1 d2) = 3 × one Xᵀ Y
    bound_cpu = tg.cpu_median * 3.0
    C1 = centred_comoment_full(X, Y)
    C2 = centred_comoment_chunked(X, Y)
    out: dict[str, Any] = {
        "shape": [n, d],
        "bound_s": bound,
        "max_rel_diff_chunked_vs_full": float(np.max(np.abs(C1 - C2)) / np.max(np.abs(C1))),
        "abs_diff_cca": abs(float(res["nc.cca"].last) - float(res[list(fns)[6]].last)),
        "abs_diff_cka": abs(float(res["nc.cka"].last) - float(res["prototype cka (chunked)"].last)),
        "timings": {},
    }
    rows = []
    for k, t in res.items():
        out["timings"][k] = {
            **t.as_dict(),
            "ratio_to_bound": t.median / bound,
            "ratio_to_bound_cpu": t.cpu_median / bound_cpu,
        }
        rows.append(
            [
                k,
                fmt_s(t.median),
                fmt_s(t.cpu_median),
                f"{t.median / bound:.2f}×",
                f"{t.cpu_median / bound_cpu:.2f}×",
            ]
        )
    print(table(rows, ["variant", "wall", "CPU", "wall / bound", "CPU / CPU bound"]))
    print(
        f"  chunked vs full co-moment: max rel diff {out['max_rel_diff_chunked_vs_full']:.1e}; "
        f"|Δcca| {out['abs_diff_cca']:.1e}, |Δcka| {out['abs_diff_cka']:.1e}"
    )
    out["rows"] = rows
    return out


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--blas-threads", type=int, default=None, help="applied via the environment")
    a = p.parse_args()
    if a.quick:
        run(2000, 128, 3)
    else:
        run(10000, 512, 5)
