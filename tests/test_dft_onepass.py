"""The one-pass DFT co-moments (shift by the first sample's spectrum, sums from the same
product) and the frequency blocks decomposed in threads.

Oracle: per frequency, the centred complex product of numpy's unnormalised ``fft2``
spectra divided by the grid size (the unitary DFT), written out independently here.
"""

from __future__ import annotations

import numpy as np
import pytest

import nncompare as nc
from nncompare.measures import conv


def oracle_comoments(X: np.ndarray, plan: conv._Plan) -> np.ndarray:
    """Σ_s (z_s - z̄)ᴴ (z_s - z̄) at every representative frequency, (R, C, C)."""
    h, w = X.shape[1:3]
    Z = np.fft.fft2(X, axes=(1, 2)) / np.sqrt(h * w)
    out = []
    for f in plan.reps:
        z = Z[:, f[0] % h, f[1] % w, :]
        zc = z - z.mean(axis=0)
        out.append(zc.conj().T @ zc)
    return np.stack(out)


def joint(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    plan = conv._frequency_plan(X.shape[1:3], conjugate=True)
    return conv._joint_comoments(np, [conv._Source(X, 1.0, False)], plan, half=True)[1], plan


def count_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = conv._shifted_pass

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(conv, "_shifted_pass", spy)
    return calls


def test_one_pass_matches_the_centred_oracle(monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, 6, 6, 5)) + 3.0
    X[..., 4] = 2.5  # a constant channel: exact zeros, no second pass
    calls = count_passes(monkeypatch)
    com, plan = joint(X)
    assert len(calls) == 1
    want = oracle_comoments(X, plan)
    np.testing.assert_allclose(com, want, atol=1e-11 * np.abs(want).max())
    np.testing.assert_array_equal(com[:, 4, :], 0.0)


def test_an_outlying_first_sample_falls_back_to_the_exact_mean(monkeypatch):
    """The shift is a sample, so shifted / centred sums of squares stay below n + 1; with
    n = 3000 and a first image 1e4 away from the others they reach ~n > 2^10, and the
    guard repeats the pass with the mean spectrum as the shift."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 4, 4, 2))
    X[0] += 1e4 * rng.normal(size=(4, 4, 2))
    calls = count_passes(monkeypatch)
    com, plan = joint(X)
    assert len(calls) == 2
    want = oracle_comoments(X, plan)
    np.testing.assert_allclose(com, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())


def test_an_outlier_elsewhere_keeps_one_pass(monkeypatch):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 4, 4, 2))
    X[7] += 1e4 * rng.normal(size=(4, 4, 2))
    calls = count_passes(monkeypatch)
    com, plan = joint(X)
    assert len(calls) == 1
    want = oracle_comoments(X, plan)
    np.testing.assert_allclose(com, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("kwargs", [{}, {"variance": 0.9}])
def test_threads_split_the_blocks_without_changing_results(monkeypatch, kwargs):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 6, 6, 4))
    Y = X @ rng.normal(size=(4, 5)) + rng.normal(size=(300, 6, 6, 5))
    Y[..., 2] = 0.0  # constant: ranks differ between the blocks' sides
    fn = nc.svcca if kwargs else nc.cca
    monkeypatch.setattr(conv, "_fft_workers", lambda: 1)
    one = fn(X, Y, conv="dft", **kwargs)
    monkeypatch.setattr(conv, "_fft_workers", lambda: 3)
    three = fn(X, Y, conv="dft", **kwargs)
    np.testing.assert_array_equal(one.k_per_frequency, three.k_per_frequency)
    np.testing.assert_allclose(one.rho_per_frequency, three.rho_per_frequency, atol=1e-13)
    assert float(three) == pytest.approx(float(one), abs=1e-14)


def test_threads_keep_the_constant_input_error(monkeypatch):
    X = np.ones((50, 4, 4, 3))
    Y = np.random.default_rng(6).normal(size=(50, 4, 4, 3))
    monkeypatch.setattr(conv, "_fft_workers", lambda: 2)
    with pytest.raises(ValueError, match="an input is constant at every frequency"):
        nc.cca(X, Y, conv="dft")
