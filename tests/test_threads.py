"""nncompare._threads: the worker-thread helpers the numpy kernels share.

The BLAS limit (threadpoolctl) is set and restored by the thread that enters it; nested
uses restore the original counts on the outermost exit.
"""

from __future__ import annotations

import numpy as np
import pytest

from nncompare import _threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads() -> list[tuple[str, int]]:
    return [
        (info["filepath"], info["num_threads"])
        for info in threadpoolctl.threadpool_info()
        if info.get("user_api") == "blas"
    ]


def test_nested_limits_restore_on_the_outermost_exit():
    before = blas_threads()
    with _threads.blas_single_threaded():
        with _threads.blas_single_threaded():
            pass
        assert all(n == 1 for _, n in blas_threads()), blas_threads()
    assert blas_threads() == before


def test_thread_map_keeps_order_and_the_callers_errstate():
    with np.errstate(divide="raise"):
        with pytest.raises(FloatingPointError):
            _threads.thread_map(lambda x: np.float64(1.0) / np.float64(x), [1.0, 0.0], 2)
    out = _threads.thread_map(lambda x: x * x, range(7), 3)
    assert out == [x * x for x in range(7)]


def test_row_slices_cover_the_rows_once():
    for n, parts in [(10, 3), (2, 5), (1, 1), (7, 7)]:
        sl = _threads.row_slices(n, parts)
        assert [i for s in sl for i in range(s.start, s.stop)] == list(range(n))
        assert len(sl) == min(n, parts)


def test_the_kept_library_view_is_rebuilt_after_an_import(monkeypatch):
    import sys
    import types

    first = _threads._controller()
    assert _threads._controller() is first  # nothing imported in between: kept
    monkeypatch.setitem(sys.modules, "nncompare_test_fake_module", types.ModuleType("fake"))
    rebuilt = _threads._controller()
    assert rebuilt is not first
    # and the limit through it reaches every BLAS library loaded now
    with _threads.blas_single_threaded():
        assert all(n == 1 for _, n in blas_threads()), blas_threads()


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("n", [0, 1, 5, 64, 130])
def test_block_map_visits_fixed_blocks_in_order(n, workers):
    got = _threads.block_map(lambda a, b: (a, b), n, 16, workers)
    want = [(a, min(n, a + 16)) for a in range(0, n, 16)]
    assert got == want
