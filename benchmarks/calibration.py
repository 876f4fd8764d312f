"""Calibration of the bootstrap intervals of nc.analyses.bootstrap on planted Gaussian data.

Each draw is n samples of a jointly Gaussian pair with known population values:
x ~ N(0, I_p), y = diag(rho) x + diag(sqrt(1 - rho^2)) e, e ~ N(0, I_p), so that
Sigma_xx = Sigma_yy = I, Sigma_xy = diag(rho) and

* the canonical correlations are rho (``cca`` = mean(rho), ``cca_r2`` = mean(rho^2));
* linear CKA (and debiased CKA, which estimates the same population ratio) is
  ||Sigma_xy||_F^2 / (||Sigma_xx||_F ||Sigma_yy||_F) = sum(rho^2) / p.

Per measure and n: the coverage of the 95% interval (fraction of draws whose interval
holds the population value; the percentile, basic and bias-corrected "bc" intervals read
off the same replicates), their mean widths, the estimator's own bias
(mean estimate - population) and the bootstrap's estimate of it (mean of
boot_mean - estimate). The i.i.d. bootstrap of samples for every measure; the bootstrap of
blocks of moments (``method="blocks"``, 50 blocks) for the streaming ones at the larger n.

Writes benchmarks/results/calibration.json.

Usage::

    python benchmarks/calibration.py [--draws 150] [--n-boot 200] [--sizes 100 400]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from nncompare.analyses import bootstrap
from nncompare.analyses.inference import interval

RHO = np.array([0.9, 0.6, 0.3, 0.0, 0.0])
MEASURES = ("cka", "cka_debiased", "cca", "cca_r2")


def population(measure: str, rho: np.ndarray = RHO) -> float:
    """The population value of ``measure`` for the planted model."""
    p = rho.size
    if measure in ("cka", "cka_debiased"):
        return float(np.sum(rho**2) / p)
    if measure == "cca":
        return float(np.mean(rho))
    if measure == "cca_r2":
        return float(np.mean(rho**2))
    raise ValueError(f"no population value for {measure!r}; choose among {MEASURES}.")


def draw(n: int, rng: np.random.Generator, rho: np.ndarray = RHO) -> tuple[np.ndarray, ...]:
    """One sample of the planted model: X, Y of shape (n, p)."""
    X = rng.standard_normal((n, rho.size))
    E = rng.standard_normal((n, rho.size))
    return X, X * rho + E * np.sqrt(1.0 - rho**2)


def calibrate(
    measure: str,
    n: int,
    *,
    draws: int,
    n_boot: int,
    seed: int,
    method: str = "samples",
    ci: float = 0.95,
) -> dict[str, float]:
    """Coverage, width and bias of ``bootstrap(measure, ...)`` over ``draws`` draws."""
    truth = population(measure)
    rng = np.random.default_rng(seed)
    kinds = ("percentile", "basic", "bc")
    hit: dict[str, list[bool]] = {k: [] for k in kinds}
    width: dict[str, list[float]] = {k: [] for k in kinds}
    est, boot_bias = [], []
    t0 = time.perf_counter()
    for d in range(draws):
        X, Y = draw(n, rng)
        r = bootstrap(measure, X, Y, ci=ci, n_boot=n_boot, method=method, seed=seed + d)
        if not np.isfinite(r.ci_low):
            continue
        for k in kinds:
            lo, hi = interval(r.replicates, r.value, ci, k)
            hit[k].append(lo <= truth <= hi)
            width[k].append(hi - lo)
        est.append(r.value)
        boot_bias.append(r.bias)
    k = len(est)
    cov = {c: float(np.mean(hit[c])) if k else float("nan") for c in kinds}
    return {
        "measure": measure,
        "n": n,
        "method": method,
        "population": truth,
        "draws": k,
        **{f"coverage_{c}": cov[c] for c in kinds},
        "coverage_se": float(np.sqrt(0.95 * 0.05 / k)) if k else float("nan"),
        **{f"mean_width_{c}": float(np.mean(width[c])) if k else float("nan") for c in kinds},
        "estimator_bias": float(np.mean(est) - truth) if k else float("nan"),
        "bootstrap_bias_estimate": float(np.mean(boot_bias)) if k else float("nan"),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=150)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 400])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "calibration.json"
    )
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        for m in MEASURES:
            rows.append(calibrate(m, n, draws=args.draws, n_boot=args.n_boot, seed=args.seed))
            print(json.dumps(rows[-1]), flush=True)
    big = max(args.sizes)
    for m in ("cka", "cca"):
        rows.append(
            calibrate(m, big, draws=args.draws, n_boot=args.n_boot, seed=args.seed, method="blocks")
        )
        print(json.dumps(rows[-1]), flush=True)
    out = {
        "what": "coverage of 95% percentile bootstrap intervals, planted Gaussian model",
        "model": {"p": int(RHO.size), "rho": RHO.tolist()},
        "ci": 0.95,
        "n_boot": args.n_boot,
        "seed": args.seed,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
