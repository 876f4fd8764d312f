"""The float32 products formed in row blocks on the package's own threads
(``stats._block_grams``), and the scratch buffer they are centred into."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import nncompare as nc
from nncompare import _scratch, stats
from nncompare.stats import Moments, _finish_f32_product, _gram_blocks


@pytest.mark.parametrize(
    ("rows", "features", "blocks"),
    [
        (10, 100, 1),  # too few rows to split
        (799, 100, 1),  # 2 blocks would have fewer than 4 rows per feature
        (800, 100, 2),
        (10_000, 1024, 2),  # the benchmark's joint 10000 × (512 + 512)
        (5000, 2560, 2),  # the 10 × 10 grid of 5000 × 256: 2500 rows per block are enough
        (4095, 2560, 1),  # fewer than 2048 rows per block
        (20_000, 2560, 2),  # 4 blocks would have fewer than 4 rows per feature
        (1600, 100, 4),
        (10**7, 10, 16),  # never more than _GRAM_MAX_BLOCKS
    ],
)
def test_gram_blocks_is_a_power_of_two_of_long_enough_blocks(rows, features, blocks):
    assert _gram_blocks(rows, features) == blocks
    if blocks > 1:
        assert rows // blocks >= min(
            stats._GRAM_BLOCK_ROWS * features, stats._GRAM_FIRST_SPLIT_ROWS
        )
    if blocks > 2:
        assert rows // blocks >= stats._GRAM_BLOCK_ROWS * features
    # and the largest such count: one more halving would break the rule
    if blocks == 1:
        assert rows < 2 * min(stats._GRAM_BLOCK_ROWS * features, stats._GRAM_FIRST_SPLIT_ROWS)
    elif blocks < stats._GRAM_MAX_BLOCKS:
        assert rows < 2 * blocks * stats._GRAM_BLOCK_ROWS * features


def _pair(n=3000, d=40, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * np.linspace(0.5, 4.0, d) + 7.0).astype(np.float32)
    Y = (
        X[:, : d // 2] @ rng.standard_normal((d // 2, d)) + rng.standard_normal((n, d)) - 3.0
    ).astype(np.float32)
    return X, Y


@pytest.mark.parametrize(
    ("n", "d", "blocks"),
    [
        (3000, 40, 8),  # long blocks
        (4200, 550, 2),  # two blocks of fewer than 4 rows per feature (a wide layer grid)
    ],
)
@pytest.mark.parametrize("workers", ["2", "3", "8", "12"])  # fewer, as many, more than blocks
def test_float32_products_have_the_same_bits_whatever_the_worker_count(
    n, d, blocks, workers, monkeypatch
):
    X, Y = _pair(n, d)
    assert _gram_blocks(X.shape[0], 2 * X.shape[1]) == blocks
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = Moments.from_arrays(X, Y)
    monkeypatch.setenv("OMP_NUM_THREADS", workers)
    many = Moments.from_arrays(X, Y)
    assert one.product_precision == many.product_precision == "float32"
    for name in ("zxx", "zyy", "zxy"):
        a, b = getattr(one, name), getattr(many, name)
        if int(workers) <= blocks:  # every block a single-threaded product either way
            np.testing.assert_array_equal(a, b)
        else:  # multi-threaded BLAS products: the same bits with some OpenBLAS kernels only
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(a).max())


def test_blocked_float32_products_match_the_float64_centred_products():
    X, Y = _pair(seed=1)
    m = Moments.from_arrays(X, Y)
    exact = Moments.from_arrays(X, Y, precision="float64")
    assert m.product_precision == "float32"
    for name in ("cxx", "cyy", "cxy"):
        got, want = getattr(m, name), getattr(exact, name)
        np.testing.assert_allclose(got, want, rtol=0, atol=3e-6 * np.abs(want).max())


def test_blocked_cka_debiased_row_norms_match_the_float64_path():
    X, Y = _pair(seed=2)
    fast = float(nc.cka_debiased(X, Y))
    exact = float(nc.cka_debiased(X, Y, precision="float64"))
    assert fast == pytest.approx(exact, abs=1e-6)


def test_finish_sums_partial_products_in_float64_in_order():
    rng = np.random.default_rng(3)
    D, nb = 300, 5000
    parts = []
    for _ in range(3):
        q = rng.standard_normal((D, D)).astype(np.float32)
        parts.append(q + q.T)
    c = rng.standard_normal(D) * 1e-6
    inv = 2.0 ** rng.integers(-4, 4, D).astype(float)
    total = parts[0].astype(np.float64) + parts[1] + parts[2]
    want = (total - nb * np.outer(c, c)) * np.outer(inv, inv)
    got = _finish_f32_product(parts, nb, c, inv, upper=True)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(got, got.T)


def test_scratch_reuses_one_buffer_per_thread():
    _scratch.release()
    a = _scratch.scratch((100, 30), np.float32)
    b = _scratch.scratch((30, 50), np.float64)  # fits in the kept buffer: the same memory
    assert a.shape == (100, 30) and a.dtype == np.float32
    assert b.shape == (30, 50) and b.dtype == np.float64 and b.flags.c_contiguous
    assert np.shares_memory(a, b)
    other = []
    t = threading.Thread(target=lambda: other.append(_scratch.scratch((100, 30), np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(a, other[0])  # each thread has its own
    _scratch.release()
    assert not np.shares_memory(a, _scratch.scratch((100, 30), np.float32))


def test_scratch_does_not_keep_a_buffer_over_the_cap(monkeypatch):
    _scratch.release()
    monkeypatch.setattr(_scratch, "MAX_BYTES", 1000)
    a = _scratch.scratch((500,), np.float32)  # 2000 bytes: a fresh array
    b = _scratch.scratch((500,), np.float32)
    assert not np.shares_memory(a, b)
    assert getattr(_scratch._LOCAL, "buf", None) is None
