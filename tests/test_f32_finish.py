"""The float32 product's float64 finish (residual-mean correction and exact power-of-two
rescaling, by row blocks) against the formula written out in full."""

from __future__ import annotations

import numpy as np

import nncompare as nc
from nncompare.stats import _finish_f32_product


def test_blocked_finish_equals_the_full_formula():
    rng = np.random.default_rng(0)
    D, nb = 900, 1000  # (1 << 17) // 900 = 145 rows per block: seven blocks
    p = rng.standard_normal((D, D)).astype(np.float32)
    p = p + p.T
    c = rng.standard_normal(D) * 1e-7
    inv = 2.0 ** rng.integers(-5, 5, D).astype(float)
    inv[3] = 0.0  # a constant feature
    want = (p.astype(np.float64) - nb * np.outer(c, c)) * np.outer(inv, inv)
    got = _finish_f32_product(p, nb, c, inv)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(got[3], 0.0)
    # float64 input (several row blocks of products were summed) is finished in place
    p64 = p.astype(np.float64)
    assert _finish_f32_product(p64, nb, c, inv) is p64


def test_grid_float32_matches_float64_products():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((2000, 40))
    acts = {
        f"l{i}": (base @ rng.standard_normal((40, 30)) + 3.0).astype(np.float32) for i in range(4)
    }
    fast = nc.pairwise(acts, measures=["cka"])["cka"]
    exact = nc.pairwise(acts, measures=["cka"], precision="float64")["cka"]
    np.testing.assert_allclose(fast, exact, atol=1e-6)
