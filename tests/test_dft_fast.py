"""The fast exact DFT path: half-plane FFT, one symmetric product per frequency pair,
certified Cholesky whitening (issue 8, "Exact DFT path").

What is pinned here:

* values on fixed seeds equal those of the previous implementation (full complex FFT,
  per-frequency complex products, eigen-decomposition whitening of every block; nncompare
  at commit 940a4b9) to ~1e-10;
* every frequency's canonical correlations equal an independent complex CCA (QR of the
  centred numpy ``fftn`` spectra), on both whitening routes (Cholesky where certified,
  eigen-decomposition for nearly dependent channels) and with exact rank loss;
* the frequency plan: one representative per conjugate pair {f, -f}, the rfft slot it is
  read from, and wrap-around at -t/2 only where every input has the grid's size;
* torch (batched complex products) equals numpy (scipy.fft + BLAS syrk), and differentiates;
* streaming: ``SpectralMoments`` keeps one frequency per pair, ``pair`` fills the grid with
  exact conjugates, ``dft_cca_from_comoments`` decomposes each pair once and only when the
  blocks are exact conjugates; batches may differ in spatial size.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import nncompare as nc
from nncompare.measures import conv
from nncompare.measures._spectral import SpectralMoments
from nncompare.measures.conv import dft_cca_from_comoments


def complex_cca(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Canonical correlations of complex (n, c) matrices: cosines between the centred
    column spaces (QR + singular values), independently of nncompare."""
    qa, _ = np.linalg.qr(A - A.mean(0))
    qb, _ = np.linalg.qr(B - B.mean(0))
    return np.linalg.svd(qa.conj().T @ qb, compute_uv=False)


def cropped_spectra(Z: np.ndarray, target: tuple[int, ...]) -> np.ndarray:
    """Unitary fftn over the spatial axes, cropped to the grid (natural FFT order)."""
    axes = tuple(range(1, Z.ndim - 1))
    F = np.fft.fftn(Z, axes=axes, norm="ortho")
    for ax, t in zip(axes, target, strict=True):
        F = np.take(F, conv._crop_indices(Z.shape[ax], t), axis=ax)
    return F


# ---------------------------------------------------------------------- fixed-seed cases
def cases() -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
    out = {}
    rng = np.random.default_rng(101)
    X = rng.normal(size=(90, 6, 6, 5)) + 0.3
    Y = rng.normal(size=(90, 6, 6, 4)) + 0.6 * X[..., :4] + 0.4 * np.roll(X[..., 1:5], 1, axis=1)
    out["plain"] = (X, Y, {})
    out["svcca_var"] = (X, Y, {"variance": 0.7})
    out["svcca_dims"] = (X, Y, {"dims": (40, 30)})
    rng = np.random.default_rng(102)
    X = rng.normal(size=(80, 8, 6, 3))
    Y = rng.normal(size=(80, 4, 6, 2)) + X[:, ::2, :, :2]
    out["crop_even"] = (X, Y, {})
    rng = np.random.default_rng(103)
    X = rng.normal(size=(80, 8, 8, 3))
    Y = rng.normal(size=(80, 5, 5, 2)) + X[:, :5, :5, 1:]
    out["crop_odd"] = (X, Y, {})
    rng = np.random.default_rng(104)
    X = rng.normal(size=(100, 9, 3))
    Y = rng.normal(size=(100, 6, 2)) + X[:, :6, :2]
    out["one_d"] = (X, Y, {})
    rng = np.random.default_rng(105)
    X = rng.normal(size=(70, 4, 4, 3)) + 1j * rng.normal(size=(70, 4, 4, 3))
    Y = rng.normal(size=(70, 4, 4, 2)) + 0.5 * X[..., :2]
    out["complex"] = (X, Y, {})
    rng = np.random.default_rng(106)
    X = rng.normal(size=(120, 6, 6, 4))
    X[..., 0] = X[..., 0].mean(axis=(1, 2), keepdims=True) + rng.normal(size=(1, 6, 6))
    Y = rng.normal(size=(120, 6, 6, 3)) + 0.5 * X[..., 1:]
    out["constant_pattern"] = (X, Y, {})
    rng = np.random.default_rng(107)
    X = rng.normal(size=(90, 5, 5, 3)) + 1e4
    Y = rng.normal(size=(90, 5, 5, 3)) * 1e-3 + 1e-3 * X - 7.0
    out["offsets"] = (X, Y, {})
    rng = np.random.default_rng(108)
    X = rng.normal(size=(90, 6, 6, 3)).astype(np.float32)
    Y = (rng.normal(size=(90, 6, 6, 3)) + X).astype(np.float32)
    out["float32"] = (X, Y, {})
    return out


# value, Σ rho² over the grid, n_coefficients, kept_dims_x, kept_dims_y; printed by
# nncompare.measures.conv.dft_cca at commit 940a4b9 (the implementation this one replaced)
PREVIOUS = {
    "plain": (0.5689176558799731, 50.421903162420094, 144, None, None),
    "svcca_var": (0.5309315070313093, 26.40248555060958, 85, 109, 85),
    "svcca_dims": (0.45396451649420705, 7.069159028947282, 30, 41, 30),
    "crop_even": (0.5512868265276509, 14.882160821377932, 48, None, None),
    "crop_odd": (0.27403022046226544, 4.83137564678407, 50, None, None),
    "one_d": (0.3668344701774375, 2.061167018474115, 12, None, None),
    "complex": (0.6024870898811366, 11.843148208074973, 32, None, None),
    "constant_pattern": (0.4585004166901289, 23.559249325789274, 108, None, None),
    "offsets": (0.7010798823997746, 37.20216944430192, 75, None, None),
    "float32": (0.7057088271266844, 54.285811207557686, 108, None, None),
}


@pytest.mark.parametrize("name", sorted(PREVIOUS))
def test_values_equal_the_previous_implementation(name):
    X, Y, kw = cases()[name]
    # the previous implementation formed float64 products for every input: the exact path
    r = (nc.svcca if kw else nc.cca)(X, Y, conv="dft", precision="float64", **kw)
    value, rho2, n_coef, kx, ky = PREVIOUS[name]
    # the data with offsets 1e4 lose ~eps · 1e4 in either implementation's FFT
    tol = 1e-10 if name != "offsets" else 1e-9
    assert float(r) == pytest.approx(value, rel=tol, abs=tol)
    assert float(np.sum(np.asarray(r.rho_per_frequency) ** 2)) == pytest.approx(rho2, rel=tol)
    assert (r.n_coefficients, r.kept_dims_x, r.kept_dims_y) == (n_coef, kx, ky)


# streamed: 4 batches of 40 (the last 30), grid (4, 4) / (1, 1); same commit
PREVIOUS_STREAMED = {
    "cca": 0.385153966450589,
    "svcca": 0.3433858394524265,
    "vector": 0.19580687385234177,
}


def _stream_data():
    rng = np.random.default_rng(110)
    A = rng.normal(size=(150, 8, 8, 4))
    B = rng.normal(size=(150, 4, 4, 3)) + A[:, ::2, ::2, :3]
    V = rng.normal(size=(150, 5)) + A[:, 0, 0, :1]
    return A, B, V


def test_streamed_values_equal_the_previous_implementation():
    A, B, V = _stream_data()
    sm = SpectralMoments((4, 4))
    sv = SpectralMoments((1, 1))
    for s in range(0, 150, 40):
        sm.update({"a": A[s : s + 40], "b": B[s : s + 40]})
        sv.update({"a": A[s : s + 40], "v": V[s : s + 40]})
    r = dft_cca_from_comoments(*sm.pair("a", "b"), sm.n, target=(4, 4))
    assert float(r) == pytest.approx(PREVIOUS_STREAMED["cca"], rel=1e-10)
    r = dft_cca_from_comoments(*sm.pair("a", "b"), sm.n, target=(4, 4), variance=0.8)
    assert float(r) == pytest.approx(PREVIOUS_STREAMED["svcca"], rel=1e-10)
    r = dft_cca_from_comoments(*sv.pair("a", "v"), sv.n, target=(1, 1))
    assert float(r) == pytest.approx(PREVIOUS_STREAMED["vector"], rel=1e-10)
    # and in memory, on the same data
    assert float(nc.cca(A, B, conv="dft")) == pytest.approx(PREVIOUS_STREAMED["cca"], rel=1e-10)


# ---------------------------------------------------------------------- per-frequency oracle
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "sx,sy",
    [((8, 8), (8, 8)), ((6, 5), (6, 5)), ((8, 8), (4, 6)), ((9, 7), (6, 7)), ((10,), (4,))],
    ids=["even", "odd-even", "crop-even", "crop-odd", "1d-crop"],
)
def test_every_frequency_is_the_complex_cca_of_its_spectra(seed, sx, sy):
    rng = np.random.default_rng(seed)
    n, c1, c2 = 150, 4, 3
    X = rng.normal(size=(n, *sx, c1)) + 0.4
    sl = tuple(slice(0, s) for s in sy)
    Y = rng.normal(size=(n, *sy, c2)) + X[(slice(None), *sl, slice(0, c2))] @ rng.normal(
        size=(c2, c2)
    )
    r = nc.cca(X, Y, conv="dft")
    target = tuple(min(a, b) for a, b in zip(sx, sy, strict=True))
    assert r.spatial_shape == target
    F, G = cropped_spectra(X, target), cropped_spectra(Y, target)
    for idx in itertools.product(*(range(t) for t in target)):
        want = complex_cca(F[(slice(None), *idx)], G[(slice(None), *idx)])
        np.testing.assert_allclose(r.rho_per_frequency[idx], want, atol=1e-10)
    assert np.all(r.k_per_frequency == min(c1, c2))


def test_both_whitening_routes_against_the_oracle():
    """Channel 3 of X is within 1e-2 of channel 0 (correlation eigenvalue ~5e-5: the
    Cholesky certificate fails, the eigen-decomposition keeps it, rtol 1e-10), channel 4 of
    Y is an exact copy of channel 0 (rank loss); Y's other channels are well conditioned."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 6, 6, 4))
    X[..., 3] = X[..., 0] + 1e-2 * rng.normal(size=(200, 6, 6))
    Y = rng.normal(size=(200, 6, 6, 4)) + X @ rng.normal(size=(4, 4))
    Y = np.concatenate([Y, Y[..., :1]], axis=-1)
    C = conv._joint_comoments(
        np, [conv._Source(X, 1.0, False)], conv._frequency_plan((6, 6), conjugate=True), half=True
    )[1]
    side = conv._whiten_blocks(np, C, rtol=1e-10)
    assert np.all(np.asarray(side.rank) == 4)  # kept by eigh, not by Cholesky
    r = nc.cca(X, Y, conv="dft")
    np.testing.assert_array_equal(r.k_per_frequency, np.full((6, 6), 4))
    F, G = cropped_spectra(X, (6, 6)), cropped_spectra(Y[..., :4], (6, 6))
    for u, v in [(0, 0), (1, 2), (3, 3), (5, 1)]:
        np.testing.assert_allclose(
            r.rho_per_frequency[u, v], complex_cca(F[:, u, v], G[:, u, v]), atol=1e-9
        )
    # the duplicated channel changes nothing
    assert float(r) == pytest.approx(float(nc.cca(X, Y[..., :4], conv="dft")), rel=1e-10)


def test_whiten_blocks_certifies_cholesky_only_for_well_conditioned_blocks():
    from nncompare.measures._linalg import whiten

    rng = np.random.default_rng(3)
    A = rng.normal(size=(5, 300, 4)) + 1j * rng.normal(size=(5, 300, 4))
    A[3, :, 2] = A[3, :, 0] + 1e-3 * rng.normal(size=300)  # nearly dependent: eigh, rank 4
    A[4, :, 1] = 0.0  # a constant coefficient: eigh, rank 3
    C = np.conj(np.swapaxes(A, -1, -2)) @ A
    got = conv._whiten_blocks(np, C, rtol=1e-10)
    ref = whiten(np, C, rtol=1e-10)
    np.testing.assert_array_equal(np.asarray(got.rank), np.asarray(ref.rank))
    assert list(np.asarray(got.rank)) == [4, 4, 4, 4, 3]
    W = np.asarray(got.W)
    for i in range(5):
        # Cholesky whitening S L^-H is upper triangular; an eigenbasis is not
        assert bool(np.allclose(np.tril(W[i], -1), 0.0)) == (i < 3), i
        WCW = np.conj(W[i]).T @ C[i] @ W[i]
        np.testing.assert_allclose(WCW, np.diag((np.arange(4) < got.rank[i]) * 1.0), atol=1e-8)


# ---------------------------------------------------------------------- frequency plan
def test_plan_one_representative_per_conjugate_pair():
    plan = conv._frequency_plan((16, 16), conjugate=True, periodic=(True, True))
    assert len(plan.reps) == (256 - 4) // 2 + 4  # 4 self-conjugate frequencies
    exact = conv._frequency_plan((16, 16), conjugate=True)
    # without wrap-around, the 31 points with a -8 coordinate have no partner in the grid
    assert len(exact.reps) == (225 - 1) // 2 + 1 + 31
    assert len(conv._frequency_plan((5, 5), conjugate=True).reps) == 13
    assert conv._frequency_plan((4, 4), conjugate=False).is_identity
    for p, periodic in ((plan, True), (exact, False)):
        G = conv._grid(p.target)
        t = np.asarray(p.target)
        for i, g in enumerate(G):
            rep = p.reps[p.source[i]]
            if not p.conj[i]:
                np.testing.assert_array_equal(rep, g)
            elif periodic:
                np.testing.assert_array_equal(np.mod(rep, t), np.mod(-g, t))
            else:
                np.testing.assert_array_equal(rep, -g)
        assert np.all(p.multiplicity >= 1) and p.multiplicity.sum() == 256


@pytest.mark.parametrize("size,target", [((16, 16), (16, 16)), ((9, 8), (6, 4)), ((7,), (7,))])
def test_rfft_slots_hold_the_representatives_spectra(size, target):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(3, *size, 2))
    periodic = tuple(s == t for s, t in zip(size, target, strict=True))
    plan = conv._frequency_plan(target, conjugate=True, periodic=periodic)
    slots, flip = conv._slots(plan, size, half=True)
    axes = tuple(range(1, Z.ndim - 1))
    half = np.fft.rfftn(Z, axes=axes, norm="ortho").reshape(3, -1, 2)
    full = np.fft.fftn(Z, axes=axes, norm="ortho")
    for r, f in enumerate(plan.reps):
        got = half[:, slots[r]]
        got = np.conj(got) if flip[r] else got
        want = full[(slice(None), *np.mod(f, size))]
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_fft_threads_follow_the_blas_setting(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert conv._fft_workers() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    assert conv._fft_workers() >= 1


def test_threaded_products_give_the_same_bits(monkeypatch):
    """With several workers the per-frequency products run in Python threads (BLAS held
    to one thread); every block is still one single-threaded product: same bits."""
    X, Y, _ = cases()["plain"]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = nc.cca(X, Y, conv="dft")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    three = nc.cca(X, Y, conv="dft")
    assert float(three) == float(one)
    np.testing.assert_array_equal(three.rho_per_frequency, one.rho_per_frequency)


def test_svcca_keeps_whole_conjugate_pairs_at_the_nyquist_row():
    """On an even grid, (-t/2, v) and (-t/2, -v) are conjugate partners too (-t/2 ≡ t/2):
    their blocks have identical eigenvalues, so a variance threshold keeps both or neither
    (the previous implementation computed them apart, and rounding could split them)."""
    X, Y, _ = cases()["plain"]
    for v in (0.9, 0.8, 0.95):
        r = nc.svcca(X, Y, conv="dft", variance=v)
        k = np.asarray(r.k_per_frequency)
        rho = np.asarray(r.rho_per_frequency)
        for u, w in itertools.product(range(6), repeat=2):
            assert k[u, w] == k[-u % 6, -w % 6]
            np.testing.assert_array_equal(rho[u, w], rho[-u % 6, -w % 6])


# ---------------------------------------------------------------------- torch
def test_torch_route_equals_numpy_route():
    torch = pytest.importorskip("torch")
    for name in ("plain", "crop_even", "crop_odd", "one_d", "complex", "svcca_dims"):
        X, Y, kw = cases()[name]
        fn = nc.svcca if kw else nc.cca
        want = fn(X, Y, conv="dft", **kw)
        got = fn(torch.from_numpy(X), torch.from_numpy(Y), conv="dft", **kw)
        assert isinstance(got.value, torch.Tensor)
        assert float(got) == pytest.approx(float(want), rel=1e-12), name
        np.testing.assert_allclose(
            got.rho_per_frequency.numpy(), np.asarray(want.rho_per_frequency), atol=1e-12
        )


def test_torch_gradients_match_finite_differences():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    X = torch.tensor(rng.normal(size=(60, 4, 4, 3)), requires_grad=True)
    Y = torch.tensor(rng.normal(size=(60, 4, 4, 2))) + X.detach()[..., :2]
    value = nc.cca(X, Y, conv="dft").value
    (grad,) = torch.autograd.grad(value, X)
    assert bool(torch.isfinite(grad).all())
    D = torch.tensor(rng.normal(size=X.shape))
    h = 1e-6
    with torch.no_grad():
        up = nc.cca(X + h * D, Y, conv="dft").value
        down = nc.cca(X - h * D, Y, conv="dft").value
    assert float((up - down) / (2 * h)) == pytest.approx(float((grad * D).sum()), rel=1e-5)


# ---------------------------------------------------------------------- streaming
def test_spectral_moments_keep_one_frequency_per_pair_and_fill_the_grid():
    A, B, _ = _stream_data()
    sm = SpectralMoments((4, 4))
    sm.update({"a": A, "b": B})
    assert sm.frequencies.shape == (len(conv._frequency_plan((4, 4), conjugate=True).reps), 2)
    assert sm.comoment.shape == (len(sm.frequencies), 7, 7)
    cxx, _, cxy = sm.pair("a", "b")
    assert cxx.shape == (16, 4, 4) and cxy.shape == (16, 4, 3)
    # the grid's partners are exact conjugates, and each block is the centred co-moment
    F, G = (
        cropped_spectra(A, (4, 4)).reshape(150, 16, 4),
        cropped_spectra(B, (4, 4)).reshape(150, 16, 3),
    )
    Fc, Gc = F - F.mean(0), G - G.mean(0)
    want = np.einsum("nfa,nfb->fab", Fc.conj(), Gc)
    np.testing.assert_allclose(cxy, want, atol=1e-10)
    plan = conv._frequency_plan((4, 4), conjugate=True)
    pts = np.nonzero(plan.conj)[0]
    rep = plan.rep_flat[plan.source[pts]]
    np.testing.assert_array_equal(cxy[pts], np.conj(cxy[rep]))


def test_from_comoments_merges_only_exact_conjugates():
    A, B, _ = _stream_data()
    sm = SpectralMoments((4, 4)).update({"a": A, "b": B})
    cxx, cyy, cxy = sm.pair("a", "b")
    whole = dft_cca_from_comoments(cxx, cyy, cxy, sm.n, target=(4, 4))
    assert float(whole) == pytest.approx(float(nc.cca(A, B, conv="dft")), rel=1e-12)
    # f = (1, 1) and its partner (3, 3), i.e. (-1, -1): halve the partner's cross block
    cxy2 = cxy.copy()
    cxy2[3 * 4 + 3] = cxy2[3 * 4 + 3] * 0.5
    r = dft_cca_from_comoments(cxx, cyy, cxy2, sm.n, target=(4, 4))
    rho = np.asarray(r.rho_per_frequency)
    np.testing.assert_allclose(rho[3, 3], 0.5 * rho[1, 1], rtol=1e-10)
    np.testing.assert_array_equal(rho[1, 1], np.asarray(whole.rho_per_frequency)[1, 1])


def test_spectral_moments_accept_batches_of_different_spatial_size():
    """Every batch is cropped to the grid; a -t/2 frequency of an 8-wide batch is not the
    partner of anything, so it is kept on its own (no wrap-around pairing)."""
    rng = np.random.default_rng(11)
    big = rng.normal(size=(90, 8, 8, 3))
    small = rng.normal(size=(90, 4, 4, 3)) + 0.3
    other_big = rng.normal(size=(90, 6, 6, 2)) + big[:, :6, :6, :2]
    other_small = rng.normal(size=(90, 4, 4, 2)) + small[..., :2]
    sm = SpectralMoments((4, 4))
    sm.update({"x": big, "y": other_big}).update({"x": small, "y": other_small})
    r = dft_cca_from_comoments(*sm.pair("x", "y"), sm.n, target=(4, 4))
    F = np.concatenate([cropped_spectra(big, (4, 4)), cropped_spectra(small, (4, 4))])
    G = np.concatenate([cropped_spectra(other_big, (4, 4)), cropped_spectra(other_small, (4, 4))])
    for u, v in itertools.product(range(4), repeat=2):
        np.testing.assert_allclose(
            r.rho_per_frequency[u, v], complex_cca(F[:, u, v], G[:, u, v]), atol=1e-10
        )


def test_non_finite_input_still_named():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(40, 4, 4, 2))
    X[3, 1, 2, 0] = np.inf
    with pytest.raises(ValueError, match=r"X contains non-finite values .* index \(3, 1, 2, 0\)"):
        nc.cca(X, rng.normal(size=(40, 4, 4, 2)), conv="dft")
    with pytest.raises(ValueError, match=r"Y contains non-finite values"):
        nc.cca(rng.normal(size=(40, 4, 4, 2)), X * np.nan, conv="dft")


@pytest.mark.parametrize("scale", [1e155, 1e-160, 1e100])
@pytest.mark.parametrize("big_first", [False, True])
def test_streamed_batches_of_very_different_magnitudes(scale, big_first):
    """A batch beyond 2^±190 takes the exact route (units rescaled by a power of two), an
    ordinary one the one-pass route; the units and noise floors must agree across them."""
    rng = np.random.default_rng(13)
    A = rng.normal(size=(160, 4, 4, 3))
    B = rng.normal(size=(160, 4, 4, 2)) + A[..., :2]
    A[..., 2] = 0.25  # a constant channel: its floor decides it is constant
    parts = [(A[:80], B[:80]), (A[80:] * scale, B[80:])]
    if big_first:
        parts = parts[::-1]
    sm = SpectralMoments((4, 4))
    for a, b in parts:
        sm.update({"a": a, "b": b})
    r = dft_cca_from_comoments(*sm.pair("a", "b"), sm.n, target=(4, 4))
    want = nc.cca(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), conv="dft"
    )
    assert float(r) == pytest.approx(float(want), rel=1e-9)
    np.testing.assert_array_equal(r.k_per_frequency, want.k_per_frequency)


@pytest.mark.shared
def test_real_resnet_activations_against_the_oracle(shared_dir):
    """ResNet-20 vs ResNet-32 (pretrained, CIFAR-10 JPEG test images), layer3 (8 × 8 × 64):
    real activations with strongly correlated channels, every frequency checked."""
    torch = pytest.importorskip("torch")
    ck = shared_dir / "data" / "akamaster_resnet_cifar10"
    data = shared_dir / "data" / "cifar10" / "cifar10_test_jpeg10k.npz"
    if not data.exists() or not ck.exists():
        pytest.skip("shared ResNet checkpoints / CIFAR-10 not available")
    from nncompare.workbench.models import cifar_preprocess, cifar_resnet

    with np.load(data) as f:
        x = cifar_preprocess(f["x"][:600])
    acts = []
    for depth, name in ((20, "resnet20-12fca82f.th"), (32, "resnet32-d509ac18.th")):
        net = cifar_resnet(depth, weights=ck / name).eval()
        out: dict = {}
        hook = net.layer3.register_forward_hook(lambda m, i, o, out=out: out.__setitem__("a", o))
        with torch.no_grad():
            net(x)
        hook.remove()
        acts.append(np.moveaxis(out["a"].numpy(), 1, -1).astype(np.float64))
    X, Y = acts
    r = nc.cca(X, Y, conv="dft")
    F, G = cropped_spectra(X, (8, 8)), cropped_spectra(Y, (8, 8))
    for u, v in itertools.product(range(8), repeat=2):
        want = complex_cca(F[:, u, v], G[:, u, v])
        np.testing.assert_allclose(r.rho_per_frequency[u, v], want, atol=1e-9)


def test_float32_products_agree_with_the_float64_path():
    """float32 inputs: spectra and per-chunk products in float32 (precision="auto"), sums
    and decompositions in float64; the exact path stays one keyword away."""
    X, Y, _ = cases()["float32"]
    fast = nc.cca(X, Y, conv="dft")
    exact = nc.cca(X, Y, conv="dft", precision="float64")
    assert "float32" in fast.conventions["transform"]
    assert exact.conventions["transform"].endswith("(complex128)")
    assert float(fast) == pytest.approx(float(exact), abs=1e-6)
    np.testing.assert_allclose(fast.rho_per_frequency, exact.rho_per_frequency, atol=1e-5)
    assert fast.n_coefficients == exact.n_coefficients
    sv = nc.svcca(X, Y, conv="dft", variance=0.9)
    sv64 = nc.svcca(X, Y, conv="dft", variance=0.9, precision="float64")
    assert float(sv) == pytest.approx(float(sv64), abs=1e-6)


def test_float32_products_keep_constant_channels_out():
    """A constant channel and a channel that is a fixed spatial pattern carry no variance
    at any frequency: with float32 products too they are zeroed, not whitened noise."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(200, 8, 8, 4)).astype(np.float32)
    X[..., 1] = 3.0
    X[..., 2] = rng.normal(size=(8, 8)).astype(np.float32)
    Y = (rng.normal(size=(200, 8, 8, 3)) + X[..., [0, 3, 3]]).astype(np.float32)
    fast = nc.cca(X, Y, conv="dft")
    exact = nc.cca(X, Y, conv="dft", precision="float64")
    assert "float32" in fast.conventions["transform"]
    np.testing.assert_array_equal(fast.k_per_frequency, exact.k_per_frequency)
    assert float(fast) == pytest.approx(float(exact), abs=1e-6)


def test_float32_products_fall_back_to_float64_outside_their_range():
    """Channels of magnitude beyond 2^40 would overflow float32 products: the pair takes
    the float64 path (the conventions say so) and its value."""
    X, Y, _ = cases()["float32"]
    exact = float(nc.cca(X, Y, conv="dft", precision="float64"))
    for factor in (2.0**60, 2.0**-60):  # over- and underflow of the squares
        r = nc.cca(X * np.float32(factor), Y, conv="dft")
        assert r.conventions["transform"].endswith("(complex128)")
        assert float(r) == pytest.approx(exact, abs=1e-12)


def test_float32_products_with_an_outlying_first_image(monkeypatch):
    """The first image is the shift; float32 products spare fewer bits, so a first image
    6 σ out (shifted / centred sums of squares ~37 > 2^4, below float64's 2^10) sends the
    pass to the mean image's spectrum, and the value agrees with the float64 path."""
    rng = np.random.default_rng(12)
    X = rng.normal(size=(400, 6, 6, 3)).astype(np.float32)
    Y = (rng.normal(size=(400, 6, 6, 2)) + X[..., :2]).astype(np.float32)
    X[0] += np.float32(6.0)
    shifts = []
    real = conv._shifted_pass

    def spy(*args, **kwargs):
        shifts.append(args[8] is None)  # None: the first image's spectrum
        return real(*args, **kwargs)

    monkeypatch.setattr(conv, "_shifted_pass", spy)
    fast = nc.cca(X, Y, conv="dft")
    assert shifts == [True, False]
    assert "float32" in fast.conventions["transform"]
    exact = nc.cca(X, Y, conv="dft", precision="float64")
    assert shifts == [True, False, True]  # float64: one pass, the first image kept
    assert float(fast) == pytest.approx(float(exact), abs=1e-6)


def test_streamed_float32_batches_use_float32_products():
    """SpectralMoments: float32 batches are transformed and multiplied in float32 (each
    batch's products summed and merged in float64); precision="float64" is the exact
    path, equal to the one-shot float64 computation."""
    A, B, _ = _stream_data()
    A32, B32 = A.astype(np.float32), B.astype(np.float32)
    values = {}
    for precision in ("auto", "float64"):
        sm = SpectralMoments((4, 4), precision=precision)
        for s in range(0, 150, 40):
            sm.update({"a": A32[s : s + 40], "b": B32[s : s + 40]})
        values[precision] = float(dft_cca_from_comoments(*sm.pair("a", "b"), sm.n, target=(4, 4)))
    exact = float(nc.cca(A32, B32, conv="dft", precision="float64"))
    assert values["float64"] == pytest.approx(exact, abs=1e-12)
    assert values["auto"] == pytest.approx(exact, abs=1e-6)
    assert values["auto"] != values["float64"]  # the float32 products were used
    with pytest.raises(ValueError, match="precision"):
        SpectralMoments((4, 4), precision="half")


@pytest.mark.parametrize("size", [(4, 4), (8, 8), (6, 5)])
def test_matrix_product_spectra_use_the_half_plane_of_the_last_axis(size):
    """A grid without wrap-around (SpectralMoments) keeps representatives such as
    (-t/2, w < 0); their spectra are the conjugates of the partners' in the half plane an
    rfft keeps, so at most W/2 + 1 last-axis frequencies are formed, and each
    representative's spectrum still equals numpy's FFT there."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3, *size, 2))
    plan = conv._frequency_plan((4, 4), conjugate=True)
    t = conv._GemmSpectra(X, plan, 1.0, half=True, ws=conv._Workspace(), key=0)
    assert t.kw <= size[-1] // 2 + 1
    want = np.fft.fft2(X, axes=(1, 2), norm="ortho")
    idx = np.mod(plan.reps, np.asarray(size))
    want = want[:, idx[:, 0], idx[:, 1], :]  # (3, R, C)
    with conv.worker_pool(1) as pool:
        T = t.transform(slice(0, 3), pool, 1)
    zero = np.zeros_like(T[:, :, :, 0])
    got = np.empty_like(want)
    re, im = np.empty((3, 2)), np.empty((3, 2))
    for r in range(len(plan.reps)):
        t.fill(T, zero, r, re, im)
        got[:, r, :] = re + 1j * im
    np.testing.assert_allclose(got, want, atol=1e-12)
