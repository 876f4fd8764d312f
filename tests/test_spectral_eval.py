"""``SpectralMoments``: evaluation at the kept frequencies, and the frequency plan it keeps.

What is pinned here:

* ``SpectralMoments.dft_cca`` (CCA, SVCCA by variance or by dims) gives every frequency's
  canonical correlations of an independent complex CCA (QR of the centred, cropped numpy
  ``fftn`` spectra of all samples), and the one-shot ``nc.cca``/``nc.svcca(conv="dft")``
  values on the same samples; its options are checked as the measures check them;
* the plan: when every layer of the first batch has exactly the grid's size, -t/2 and t/2
  are one frequency (the one-shot call's pairs, fewer kept); a later batch with a larger
  layer widens the plan exactly (the co-moments then equal numpy's at every grid point,
  and the value does not depend on the order of the batches), also after pickling and
  for torch batches.
"""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

import nncompare as nc
from nncompare.measures import conv


def complex_cca(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Canonical correlations of complex (n, c) matrices (QR + singular values)."""
    qa, _ = np.linalg.qr(A - A.mean(0))
    qb, _ = np.linalg.qr(B - B.mean(0))
    return np.linalg.svd(qa.conj().T @ qb, compute_uv=False)


def cropped(M: np.ndarray, t: tuple[int, int]) -> np.ndarray:
    """Unitary fftn over the spatial axes, cropped to the grid t (numpy only)."""
    F = np.fft.fftn(M, axes=(1, 2), norm="ortho")
    F = F[:, conv._crop_indices(M.shape[1], t[0])]
    return F[:, :, conv._crop_indices(M.shape[2], t[1])]


def pair_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(240, 8, 8, 5))
    Y = rng.normal(size=(240, 6, 6, 4)) + 0.8 * X[:, 1:7, 1:7, :4]
    return X, Y


def fed(arrays: dict[str, np.ndarray], grid: tuple[int, int], batch: int) -> nc.SpectralMoments:
    sm = nc.SpectralMoments(grid)
    n = len(next(iter(arrays.values())))
    for s in range(0, n, batch):
        sm.update({k: v[s : s + batch] for k, v in arrays.items()})
    return sm


def test_dft_cca_gives_each_frequencys_complex_cca():
    X, Y = pair_data()
    sm = fed({"x": X, "y": Y}, (6, 6), 70)
    r = sm.dft_cca("x", "y")
    F, G = cropped(X, (6, 6)), cropped(Y, (6, 6))
    for u, v in itertools.product(range(6), repeat=2):
        np.testing.assert_allclose(
            r.rho_per_frequency[u, v], complex_cca(F[:, u, v], G[:, u, v]), atol=1e-10
        )
    assert r.measure == "cca" and r.n_samples == 240 and r.spatial_shape == (6, 6)
    assert r.conventions["resize"] == "frequency cropping to the smaller size"
    assert float(r) == pytest.approx(float(nc.cca(X, Y, conv="dft")), rel=1e-12)


@pytest.mark.parametrize(
    "opts", [{"variance": 0.9}, {"variance": 0.5}, {"dims": 30}, {"dims": (40, 25)}]
)
def test_dft_cca_as_svcca_equals_the_one_shot_call(opts):
    X, Y = pair_data(1)
    sm = fed({"x": X, "y": Y}, (6, 6), 100)
    got = sm.dft_cca("x", "y", **opts)
    want = nc.svcca(X, Y, conv="dft", **({"variance": None} if "dims" in opts else {}), **opts)
    assert got.measure == "svcca"
    assert float(got) == pytest.approx(float(want), rel=1e-10)
    np.testing.assert_array_equal(got.k_per_frequency, want.k_per_frequency)
    assert (got.kept_dims_x, got.kept_dims_y) == (want.kept_dims_x, want.kept_dims_y)


def test_dft_cca_takes_rtol_and_a_layer_with_itself():
    X, _ = pair_data(2)
    sm = fed({"x": X}, (8, 8), 120)
    r = sm.dft_cca("x", "x", rtol=1e-6)
    assert float(r) == pytest.approx(1.0, abs=1e-9)
    assert r.conventions["rank_rtol"] == 1e-6 and r.conventions["resize"] == "none"


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        ({"variance": 1.5}, r"svcca: variance must lie in \(0, 1\] or be None; got 1\.5"),
        ({"dims": 0}, r"svcca: dims must be a positive integer.*got 0"),
        ({"rtol": -1.0}, r"cca: rtol must lie in \(0, 1\); got -1\.0"),
    ],
)
def test_dft_cca_rejects_bad_options_as_the_measures_do(opts, match):
    X, Y = pair_data(3)
    sm = fed({"x": X, "y": Y}, (6, 6), 240)
    with pytest.raises(ValueError, match=match):
        sm.dft_cca("x", "y", **opts)


def test_dft_cca_names_the_layers_it_holds():
    X, Y = pair_data(3)
    sm = fed({"x": X, "y": Y}, (6, 6), 240)
    with pytest.raises(KeyError, match=r"no layer 'z' in this accumulator; it holds \['x', 'y'\]"):
        sm.dft_cca("x", "z")
    with pytest.raises(KeyError, match=r"no layer 'x' in this accumulator; it holds \[\]"):
        nc.SpectralMoments((4, 4)).dft_cca("x", "x")


def test_layers_of_the_grids_size_pair_minus_and_plus_half():
    rng = np.random.default_rng(4)
    A = rng.normal(size=(150, 6, 6, 3))
    B = rng.normal(size=(150, 6, 6, 2)) + A[..., :2]
    sm = fed({"a": A, "b": B}, (6, 6), 50)
    periodic = conv._frequency_plan((6, 6), conjugate=True, periodic=(True, True))
    np.testing.assert_array_equal(sm.frequencies, periodic.reps)
    assert len(sm.frequencies) < len(conv._frequency_plan((6, 6), conjugate=True).reps)
    Z = np.concatenate([cropped(A, (6, 6)), cropped(B, (6, 6))], axis=-1).reshape(150, 36, 5)
    Zc = Z - Z.mean(0)
    np.testing.assert_allclose(
        sm.comoment, np.einsum("nfa,nfb->fab", Zc.conj(), Zc)[periodic.rep_flat], atol=1e-10
    )
    assert float(sm.dft_cca("a", "b")) == pytest.approx(float(nc.cca(A, B, conv="dft")), 1e-12)


def widening_data(seed: int = 5) -> list[dict[str, np.ndarray]]:
    """Two batches of the grid's size, then one whose layer x is larger on the last axis
    only, then one larger on both axes."""
    rng = np.random.default_rng(seed)
    out = []
    for shape_x in [(6, 6), (6, 6), (6, 9), (8, 7)]:
        x = rng.normal(size=(60, *shape_x, 3))
        y = rng.normal(size=(60, 6, 6, 2)) + x[:, :6, :6, :2]
        out.append({"x": x, "y": y})
    return out


def test_a_larger_layer_widens_the_plan_exactly():
    batches = widening_data()
    sm = nc.SpectralMoments((6, 6))
    plans = []
    for b in batches:
        sm.update(b)
        plans.append(len(sm.frequencies))
    p = {
        per: len(conv._frequency_plan((6, 6), conjugate=True, periodic=per).reps)
        for per in [(True, True), (True, False), (False, False)]
    }
    assert plans == [p[(True, True)], p[(True, True)], p[(True, False)], p[(False, False)]]
    F = np.concatenate([cropped(b["x"], (6, 6)) for b in batches]).reshape(240, 36, 3)
    G = np.concatenate([cropped(b["y"], (6, 6)) for b in batches]).reshape(240, 36, 2)
    Fc, Gc = F - F.mean(0), G - G.mean(0)
    cxx, _, cxy = sm.pair("x", "y")
    np.testing.assert_allclose(cxx, np.einsum("nfa,nfb->fab", Fc.conj(), Fc), atol=1e-10)
    np.testing.assert_allclose(cxy, np.einsum("nfa,nfb->fab", Fc.conj(), Gc), atol=1e-10)
    backwards = nc.SpectralMoments((6, 6))
    for b in batches[::-1]:
        backwards.update(b)
    assert float(sm.dft_cca("x", "y")) == pytest.approx(
        float(backwards.dft_cca("x", "y")), rel=1e-12
    )


def test_widening_after_pickling_and_with_torch():
    batches = widening_data(6)
    whole = nc.SpectralMoments((6, 6))
    for b in batches:
        whole.update(b)
    sm = nc.SpectralMoments((6, 6)).update(batches[0]).update(batches[1])
    sm = pickle.loads(pickle.dumps(sm))
    sm.update(batches[2]).update(batches[3])
    assert float(sm.dft_cca("x", "y")) == pytest.approx(float(whole.dft_cca("x", "y")), 1e-12)
    torch = pytest.importorskip("torch")
    st = nc.SpectralMoments((6, 6))
    for b in batches:
        st.update({k: torch.from_numpy(v) for k, v in b.items()})
    got = st.dft_cca("x", "y")
    assert isinstance(got.value, torch.Tensor)
    assert float(got) == pytest.approx(float(whole.dft_cca("x", "y")), rel=1e-10)
