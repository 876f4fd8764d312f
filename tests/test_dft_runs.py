"""SpectralMoments sums runs of float64 batches before it centres them (issue 8, the
streamed DFT path).

Consecutive float64 numpy batches of at most ``conv._RUN_MAX`` (1023) samples in all share
one shift, the first sample's spectra, and are centred and merged only when the run is
full, when a batch cannot join it, or when the moments are read. Pinned here:

* the moments equal an independent centred oracle (numpy ``fftn``, explicit means) and the
  one-shot ``nc.cca(conv="dft")``, for batch sizes that close runs at different points;
* when runs close: count of centrings per stream, none before the moments are read;
* what breaks a run: float32 batches, a batch over the limit, other spatial sizes, a
  change of units; each still gives the oracle's moments;
* an outlying first sample: the run's shift is one of its samples, so the correction
  loses at most 10 bits, and the moments stay exact to ~1e-11 of their size;
* pickling with a pending run, and the state earlier versions pickled.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import nncompare as nc
from nncompare.measures import conv
from nncompare.measures._spectral import SpectralMoments
from nncompare.measures.conv import dft_cca_from_comoments


def oracle(A: np.ndarray, B: np.ndarray, sm: SpectralMoments) -> np.ndarray:
    """Centred joint co-moments (R, D, D) at the accumulator's frequencies, from numpy's
    ``fftn`` of the whole data with explicit means (independent of nncompare's passes)."""
    Z = np.concatenate(
        [np.fft.fftn(M, axes=(1, 2), norm="ortho") for M in (A, B)], axis=-1
    )  # (n, H, W, D); the grid is the data's size here
    h, w = Z.shape[1:3]
    out = []
    for fh, fw in sm.frequencies:
        z = Z[:, int(fh) % h, int(fw) % w, :]
        zc = z - z.mean(0)
        out.append(zc.conj().T @ zc)
    return np.stack(out)


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, 4, 4, 3)) + 2.0
    B = rng.normal(size=(n, 4, 4, 2)) + 0.5 * A[..., :2]
    A[..., 2] = 0.75  # a constant channel: exact zeros through every run
    return A, B


def stream(A: np.ndarray, B: np.ndarray, sizes: list[int], **kw) -> SpectralMoments:
    sm = SpectralMoments((4, 4), **kw)
    s = 0
    for b in sizes:
        sm.update({"a": A[s : s + b], "b": B[s : s + b]})
        s += b
    assert s == len(A)
    return sm


def count_centrings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = conv._centred_run

    def spy(run):
        calls.append(run.n)
        return real(run)

    monkeypatch.setattr(conv, "_centred_run", spy)
    import nncompare.measures._spectral as spectral

    monkeypatch.setattr(spectral, "_centred_run", spy)
    return calls


@pytest.mark.parametrize(
    ("sizes", "closed", "pending"),
    [
        ([300] * 7, [900, 900], [300]),  # a fourth batch of 300 would pass 1023
        ([100] * 21, [1000, 1000], [100]),
        ([1023, 1, 1076], [1023, 1], []),  # the 1076-sample batch: centred on its own
        ([2100], [], []),
    ],
)
def test_runs_close_where_they_would_pass_the_limit(monkeypatch, sizes, closed, pending):
    A, B = data(sum(sizes), seed=1)
    calls = count_centrings(monkeypatch)
    sm = stream(A, B, sizes)
    assert calls == closed
    com = sm.comoment
    assert calls == closed + pending
    want = oracle(A, B, sm)
    np.testing.assert_allclose(com, want, rtol=0, atol=1e-11 * np.abs(want).max())
    np.testing.assert_array_equal(com[:, 2, :], 0.0)  # the constant channel
    assert sm.n == sum(sizes)
    r = dft_cca_from_comoments(*sm.pair("a", "b"), sm.n, target=(4, 4))
    assert float(r) == pytest.approx(float(nc.cca(A, B, conv="dft")), rel=1e-12)


def test_nothing_is_centred_before_the_moments_are_read(monkeypatch):
    A, B = data(600, seed=2)
    calls = count_centrings(monkeypatch)
    sm = stream(A, B, [200, 200, 200])
    assert calls == []
    assert sm.mean.shape == (len(sm.frequencies), 5)
    assert calls == [600]
    _ = sm.comoment, sm.pair("a", "b")
    assert calls == [600]  # centred once


def spectra(M: np.ndarray) -> np.ndarray:
    """Unitary fftn over the spatial axes, cropped to the 4 × 4 grid."""
    F = np.fft.fftn(M, axes=(1, 2), norm="ortho")
    keep = conv._crop_indices(M.shape[1], 4)
    return F[:, keep][:, :, conv._crop_indices(M.shape[2], 4)]


def centred(Z: np.ndarray, sm: SpectralMoments) -> np.ndarray:
    out = []
    for fh, fw in sm.frequencies:
        z = Z[:, int(fh) % 4, int(fw) % 4, :]
        zc = z - z.mean(0)
        out.append(zc.conj().T @ zc)
    return np.stack(out)


def test_what_breaks_a_run(monkeypatch):
    """float32 batches and another spatial size close the run (float32 batches are
    merged one by one); the moments still equal the oracle's."""
    rng = np.random.default_rng(3)
    A, B = data(400, seed=3)
    big = rng.normal(size=(100, 6, 6, 3)) + 1.0  # cropped to the grid
    a32, b32 = A[100:200].astype(np.float32), B[100:200].astype(np.float32)
    calls = count_centrings(monkeypatch)
    sm = SpectralMoments((4, 4))
    sm.update({"a": A[:100], "b": B[:100]})
    sm.update({"a": a32, "b": b32})
    assert calls == [100]
    sm.update({"a": A[200:300], "b": B[200:300]})
    sm.update({"a": big, "b": B[300:400]})
    assert calls == [100, 100]
    F = np.concatenate(
        [spectra(A[:100]), spectra(a32.astype(np.float64)), spectra(A[200:300]), spectra(big)]
    )
    G = np.concatenate([spectra(B[:100]), spectra(b32.astype(np.float64)), spectra(B[200:])])
    want = centred(np.concatenate([F, G], axis=-1), sm)
    # float32 products for the float32 batch (see dft_cca's precision)
    np.testing.assert_allclose(sm.comoment, want, rtol=0, atol=1e-6 * np.abs(want).max())
    assert calls == [100, 100, 100]


def test_a_change_of_units_closes_the_run_in_the_old_units(monkeypatch):
    A, B = data(300, seed=7)
    scaled = A.copy()
    scaled[200:] *= 2.0**200  # beyond 2^190: the accumulator's units change
    calls = count_centrings(monkeypatch)
    sm = stream(scaled, B, [100, 100, 100])
    assert calls == [200]
    assert sm.magnitude["a"] > 2.0**190
    r = dft_cca_from_comoments(*sm.pair("a", "b"), sm.n, target=(4, 4))
    assert calls == [200, 100]
    assert float(r) == pytest.approx(float(nc.cca(scaled, B, conv="dft")), rel=1e-9)


def test_an_outlying_first_sample_costs_at_most_ten_bits():
    """The run's shift is its first sample; 1e4 away from the other 1022 samples, the
    shifted sums of squares reach ~n times the centred ones (the bound), and the moments
    still agree with the centred oracle to ~2^10 eps of their size."""
    A, B = data(1023, seed=4)
    A[0, ..., :2] += 1e4  # the constant channel stays constant
    sm = stream(A, B, [1, 511, 511])
    want = oracle(A, B, sm)
    com = sm.comoment
    idx = np.arange(5)
    scale = np.sqrt(np.abs(want[:, idx, idx]))  # per coefficient: its own size
    err = np.abs(com - want) / np.maximum(scale[:, :, None] * scale[:, None, :], 1e-300)
    err[:, 2, :] = err[:, :, 2] = 0.0  # the constant channel: exactly zero (below)
    assert float(err.max()) < 2**10 * 2.3e-16 * 20
    np.testing.assert_array_equal(com[:, 2, :], 0.0)


def test_pickling_folds_the_pending_run():
    A, B = data(500, seed=5)
    sm = stream(A[:300], B[:300], [200, 100])
    copy = pickle.loads(pickle.dumps(sm))
    assert copy._run is None and copy.n == 300
    np.testing.assert_array_equal(copy.comoment, sm.comoment)
    copy.update({"a": A[300:], "b": B[300:]})  # the copy goes on streaming
    want = oracle(A, B, copy)
    np.testing.assert_allclose(copy.comoment, want, rtol=0, atol=1e-11 * np.abs(want).max())


def test_state_pickled_by_earlier_versions_still_loads():
    A, B = data(300, seed=6)
    sm = stream(A, B, [300])
    state = sm.__getstate__()
    old = {k: v for k, v in state.items() if k not in ("_mean", "_comoment", "_n_merged", "_run")}
    old["mean"], old["comoment"] = state["_mean"], state["_comoment"]
    revived = SpectralMoments.__new__(SpectralMoments)
    revived.__setstate__(old)
    np.testing.assert_array_equal(revived.comoment, sm.comoment)
    revived.update({"a": A[:50], "b": B[:50]})
    assert revived.n == 350


def test_a_changed_layout_names_both_layouts():
    A, B = data(40, seed=8)
    sm = SpectralMoments((4, 4)).update({"a": A, "b": B})
    with pytest.raises(
        ValueError, match=r"expected layers \(channels\) \{'a': 3, 'b': 2\}, got \{'a': 2, 'b': 2\}"
    ):
        sm.update({"a": A[..., :2], "b": B})
