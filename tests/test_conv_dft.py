"""The exact DFT path for convolutional activations (Raghu et al. 2017, §3.1).

For a translation-invariant data set — every image together with all its circular shifts —
the covariance of the flattened (N, H·W·C) representation is block-circulant, so a unitary
DFT over the spatial axes block-diagonalises it into H·W complex C×C blocks. CCA (and the
SVD step of SVCCA) of the flattened view therefore splits exactly into per-frequency
problems: ``nc.cca(X, Y, conv="dft")`` must equal brute-force ``nc.cca`` on
``X.reshape(N, -1)``. Also covered: frequency cropping for different spatial sizes,
conjugate symmetry, and the reshape policies.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import nncompare as nc
from nncompare.errors import NNCompareWarning
from nncompare.measures.conv import _crop_indices

SEEDS = [0, 1, 2]


# ---------------------------------------------------------------------- data
def shift_augment(Z: np.ndarray) -> np.ndarray:
    """All circular shifts of every sample over the spatial axes of (N, *spatial, C)."""
    spatial = Z.shape[1:-1]
    axes = tuple(range(1, Z.ndim - 1))
    shifts = itertools.product(*(range(s) for s in spatial))
    return np.concatenate([np.roll(Z, s, axis=axes) for s in shifts])


def circular_conv(Z: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Circular convolution of (N, *spatial, C1) with a (*k, C1, C2) kernel centred at 0."""
    axes = tuple(range(1, Z.ndim - 1))
    ksize = kernel.shape[: len(axes)]
    out = 0.0
    for offs in itertools.product(*(range(k) for k in ksize)):
        shift = tuple(o - k // 2 for o, k in zip(offs, ksize, strict=True))
        out = out + np.roll(Z, shift, axis=axes) @ kernel[offs]
    return out


def translation_invariant_pair(
    seed: int, spatial: tuple[int, ...] = (4, 4), n0: int = 40, c1: int = 3, c2: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """X: random images (with spatially smooth channels); Y: conv(X) + noise; all shifts."""
    rng = np.random.default_rng(seed)
    X0 = rng.normal(size=(n0, *spatial, c1))
    # make the spectrum non-flat so that SVCCA's variance selection is non-trivial
    X0 = X0 + circular_conv(X0, rng.normal(scale=0.6, size=(*(3,) * len(spatial), c1, c1)))
    kernel = rng.normal(size=(*(3,) * len(spatial), c1, c2))
    Y0 = circular_conv(X0, kernel) + 0.8 * rng.normal(size=(n0, *spatial, c2)) + 1.5
    X0 = X0 + rng.normal(size=c1)  # non-zero channel means
    return shift_augment(X0), shift_augment(Y0)


def flat(Z: np.ndarray) -> np.ndarray:
    return Z.reshape(Z.shape[0], -1)


def conjugate_groups(Z: np.ndarray, tol: float = 1e-8) -> tuple[np.ndarray, set[int]]:
    """Variance ratios of the flattened view and the counts that do not split tied groups.

    For real translation-invariant data, frequencies f and -f have identical covariance
    blocks, so most eigenvalues of the flattened covariance come in exactly tied pairs; a
    selection of k directions is well defined only when k does not split such a pair.
    """
    ev = np.linalg.eigvalsh(np.cov(flat(Z), rowvar=False))[::-1]
    ev = np.clip(ev, 0, None)
    boundaries = {k for k in range(1, ev.size) if ev[k - 1] - ev[k] > tol * ev[0]} | {ev.size}
    return np.cumsum(ev) / ev.sum(), boundaries


def kept(ratio: np.ndarray, v: float) -> int:
    """SVCCA's selection rule: smallest k whose cumulative variance fraction exceeds v."""
    return int(np.searchsorted(ratio, v, side="right")) + 1


def safe_variances(X: np.ndarray, Y: np.ndarray) -> list[float]:
    """Variance thresholds whose selection splits no conjugate pair, on either side."""
    rx, bx = conjugate_groups(X)
    ry, by = conjugate_groups(Y)
    out = []
    for v in np.linspace(0.3, 0.99, 70):
        if min(np.abs(rx - v).min(), np.abs(ry - v).min()) < 1e-6:
            continue
        if kept(rx, v) in bx and kept(ry, v) in by:
            out.append(float(v))
    return out


def structural_zeros(r) -> int:
    """Canonical correlations of a brute-force result that are exactly 0 up to roundoff."""
    return int(np.sum(np.asarray(r.rho) < 1e-7))


def complex_cca(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Canonical correlations of two complex (n, c) matrices, independently of nncompare."""
    qa, _ = np.linalg.qr(A - A.mean(0))
    qb, _ = np.linalg.qr(B - B.mean(0))
    return np.linalg.svd(qa.conj().T @ qb, compute_uv=False)


# ---------------------------------------------------------------------- (1) exactness
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("spatial", [(4, 4), (8,), (3, 5)], ids=["2d-4x4", "1d-8", "2d-3x5"])
def test_dft_cca_equals_flattened_cca(seed, spatial):
    X, Y = translation_invariant_pair(seed, spatial)
    N = X.shape[0]
    assert N == 40 * int(np.prod(spatial))
    r = nc.cca(X, Y, conv="dft")
    brute = nc.cca(flat(X), flat(Y))
    assert float(r) == pytest.approx(float(brute), rel=1e-10)
    rho = r.rho
    assert rho.shape == np.asarray(brute.rho).shape
    np.testing.assert_allclose(rho, np.asarray(brute.rho), rtol=1e-9, atol=1e-10)
    assert np.all(np.diff(rho) <= 0)
    assert r.spatial_shape == spatial
    assert r.rho_per_frequency.shape[:-1] == spatial
    np.testing.assert_array_equal(r.k_per_frequency, np.full(spatial, 2))
    np.testing.assert_allclose(r.mean_per_frequency, r.rho_per_frequency.mean(axis=-1), rtol=1e-12)
    # R²_CCA through the DFT path too
    r2 = nc.cca_r2(X, Y, conv="dft")
    assert float(r2) == pytest.approx(float(nc.cca_r2(flat(X), flat(Y))), rel=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("spatial", [(4, 4), (8,)], ids=["2d", "1d"])
def test_dft_svcca_equals_flattened_svcca(seed, spatial):
    """Variance thresholds that split no conjugate pair, where the kept spaces align."""
    X, Y = translation_invariant_pair(seed, spatial)
    checked = 0
    for v in safe_variances(X, Y):
        brute = nc.svcca(flat(X), flat(Y), variance=v)
        if structural_zeros(brute):
            continue  # see test_dft_svcca_counts_structural_zero_correlations
        r = nc.svcca(X, Y, conv="dft", variance=v)
        assert (r.kept_dims_x, r.kept_dims_y) == (brute.kept_dims_x, brute.kept_dims_y)
        assert float(r) == pytest.approx(float(brute), rel=1e-9), v
        np.testing.assert_allclose(r.rho, np.asarray(brute.rho), rtol=1e-8, atol=1e-9)
        checked += 1
        if checked == 5:
            break
    assert checked >= 3


@pytest.mark.parametrize("seed", SEEDS)
def test_dft_svcca_dims_equals_flattened(seed):
    """``dims`` given as counts of whole conjugate groups; X keeps everything."""
    X, Y = translation_invariant_pair(seed)
    _, by = conjugate_groups(Y)
    dx = flat(X).shape[1]
    checked = 0
    for dy in sorted(by)[1::3]:
        if not 2 <= dy <= dx:
            continue
        brute = nc.svcca(flat(X), flat(Y), dims=(dx, dy))
        r = nc.svcca(X, Y, conv="dft", dims=(dx, dy))
        assert (r.kept_dims_x, r.kept_dims_y) == (dx, dy)
        assert float(r) == pytest.approx(float(brute), rel=1e-9), dy
        np.testing.assert_allclose(r.rho, np.asarray(brute.rho), rtol=1e-8, atol=1e-9)
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize("seed", SEEDS)
def test_dft_svcca_counts_structural_zero_correlations(seed):
    """SVCCA of the flattened view averages min(kept_x, kept_y) correlations.

    When the directions kept at each frequency differ between X and Y (X keeps 2 at f,
    Y keeps 1 at f and 2 at g), the block-diagonal cross-covariance makes some of those
    correlations exactly 0. The DFT path must count them to equal the flattened SVCCA
    (its docstring promises exactness); the rho multiset must hold them as zeros.
    """
    X, Y = translation_invariant_pair(seed)
    found = 0
    for v in safe_variances(X, Y):
        brute = nc.svcca(flat(X), flat(Y), variance=v)
        zeros = structural_zeros(brute)
        if not zeros:
            continue
        found += 1
        r = nc.svcca(X, Y, conv="dft", variance=v)
        nonzero = np.asarray(brute.rho)[: len(brute.rho) - zeros]
        # the non-zero correlations agree either way
        np.testing.assert_allclose(r.rho[: nonzero.size], nonzero, rtol=1e-8, atol=1e-9)
        assert np.all(r.rho[nonzero.size :] < 1e-7)
        # the mean over min(kept_x, kept_y) correlations
        assert float(r) == pytest.approx(float(brute), rel=1e-9), (v, zeros)
        if found == 3:
            break
    if not found:
        pytest.skip("no threshold with misaligned per-frequency selections for this seed")


def test_dft_cca_on_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    X, Y = translation_invariant_pair(0)
    r = nc.cca(torch.from_numpy(X), torch.from_numpy(Y), conv="dft")
    assert isinstance(r.value, torch.Tensor)
    assert float(r) == pytest.approx(float(nc.cca(X, Y, conv="dft")), rel=1e-12)


# ---------------------------------------------------------------------- (2) resize
def test_crop_indices():
    np.testing.assert_array_equal(_crop_indices(8, 4), [0, 1, 6, 7])
    np.testing.assert_array_equal(_crop_indices(4, 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(_crop_indices(6, 3), [0, 1, 5])  # signed -1, 0, 1
    np.testing.assert_array_equal(_crop_indices(7, 4), [0, 1, 5, 6])  # signed -2..1
    # always the lowest |frequencies|, in the natural FFT order of the target axis
    for size, target in [(8, 4), (9, 5), (16, 6), (5, 5)]:
        idx = _crop_indices(size, target)
        signed = np.where(idx < (size + 1) // 2, idx, idx - size)
        expect = np.fft.fftfreq(target, 1 / target).astype(int)
        if target % 2 == 0:
            expect[target // 2] = -(target // 2)
        np.testing.assert_array_equal(signed, expect)


@pytest.mark.parametrize("seed", SEEDS)
def test_dft_resize_equals_same_size_path_after_cropping(seed):
    rng = np.random.default_rng(seed)
    n = 150
    X = rng.normal(size=(n, 8, 8, 3))
    Y = rng.normal(size=(n, 4, 4, 2)) + 0.8 * X[:, ::2, ::2, :2] @ rng.normal(size=(2, 2))
    r = nc.cca(X, Y, conv="dft")
    assert r.spatial_shape == (4, 4)
    assert "crop" in r.conventions["resize"]
    # X downsampled in frequency: the inverse (unitary) DFT of its cropped spectrum
    F = np.fft.fftn(X, axes=(1, 2), norm="ortho")
    idx = _crop_indices(8, 4)
    Fc = F[:, idx][:, :, idx]
    Xc = np.fft.ifftn(Fc, axes=(1, 2), norm="ortho")  # complex: -2 has lost its partner
    same = nc.cca(Xc, Y, conv="dft")
    assert same.conventions["resize"] == "none"
    assert float(r) == pytest.approx(float(same), rel=1e-12)
    np.testing.assert_allclose(r.rho_per_frequency, same.rho_per_frequency, rtol=1e-10)
    # and each frequency is the complex CCA of the cropped spectra, computed independently
    G = np.fft.fftn(Y, axes=(1, 2), norm="ortho")
    for u, v in itertools.product(range(4), range(4)):
        want = complex_cca(Fc[:, u, v], G[:, u, v])
        np.testing.assert_allclose(r.rho_per_frequency[u, v, : want.size], want, atol=1e-10)
    # cropping is symmetric in the arguments
    assert float(nc.cca(Y, X, conv="dft")) == pytest.approx(float(r), rel=1e-10)


def test_dft_resize_1d():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 9, 2))
    Y = rng.normal(size=(120, 5, 2)) + X[:, :5]
    r = nc.cca(X, Y, conv="dft")
    assert r.spatial_shape == (5,)
    F = np.fft.fft(X, axis=1, norm="ortho")[:, _crop_indices(9, 5)]
    G = np.fft.fft(Y, axis=1, norm="ortho")
    for f in range(5):
        want = complex_cca(F[:, f], G[:, f])
        np.testing.assert_allclose(r.rho_per_frequency[f], want, atol=1e-10)


# ---------------------------------------------------------------------- (3) conjugates
@pytest.mark.parametrize("seed", SEEDS)
def test_conjugate_frequencies_have_identical_coefficients(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(100, 4, 6, 3))
    Y = rng.normal(size=(100, 4, 6, 2)) + X[..., :2]
    r = nc.cca(X, Y, conv="dft")
    rho = np.asarray(r.rho_per_frequency)
    H, W = 4, 6
    for u, v in itertools.product(range(H), range(W)):
        np.testing.assert_allclose(rho[u, v], rho[-u % H, -v % W], rtol=1e-10, atol=1e-12)
    # and the data need not be translation invariant for this: each block is its own CCA
    F = np.fft.fftn(X, axes=(1, 2), norm="ortho")
    G = np.fft.fftn(Y, axes=(1, 2), norm="ortho")
    np.testing.assert_allclose(rho[1, 2], complex_cca(F[:, 1, 2], G[:, 1, 2]), atol=1e-10)
    # self-conjugate frequencies (0 and the Nyquist ones) have real blocks
    for u, v in [(0, 0), (0, 3), (2, 0), (2, 3)]:
        want = np.asarray(nc.cca(F[:, u, v].real, G[:, u, v].real).rho)
        np.testing.assert_allclose(rho[u, v], want, rtol=1e-9)


# ---------------------------------------------------------------------- (4) policies
def test_reshape_policy_shapes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 4, 5, 3))
    assert nc.reshape_conv(X, "samples").shape == (200, 3)
    assert nc.reshape_conv(X, "flatten").shape == (10, 60)
    assert nc.reshape_conv(X, "mean").shape == (10, 3)
    np.testing.assert_allclose(nc.reshape_conv(X, "mean"), X.mean(axis=(1, 2)))
    np.testing.assert_array_equal(nc.reshape_conv(X, "flatten")[3], X[3].ravel())
    np.testing.assert_array_equal(nc.reshape_conv(X, "samples")[21], X[1, 0, 1])
    Z = rng.normal(size=(10, 7, 3))
    assert nc.reshape_conv(Z, "samples").shape == (70, 3)
    assert nc.reshape_conv(Z, "flatten").shape == (10, 21)
    assert nc.reshape_conv(Z, "mean").shape == (10, 3)
    with pytest.raises(ValueError):
        nc.reshape_conv(X, "dft")
    with pytest.raises(ValueError, match="drop conv"):
        nc.reshape_conv(X[:, 0, 0], "mean")


@pytest.mark.parametrize("policy", ["samples", "flatten", "mean"])
def test_measures_apply_the_policy(policy):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2, 2, 3))
    Y = X[..., :2] + rng.normal(size=(60, 2, 2, 2))
    Xm, Ym = nc.reshape_conv(X, policy), nc.reshape_conv(Y, policy)
    for name, info in nc.measures.available("activations").items():
        assert policy in info.conv_policies
        got = float(nc.measures.compute(X, Y, name, conv=policy))
        assert got == pytest.approx(float(nc.measures.compute(Xm, Ym, name)), rel=1e-12)


def test_policy_errors():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 4, 4, 3))
    Y = rng.normal(size=(20, 2, 2, 3))
    with pytest.raises(ValueError, match="same spatial size"):
        nc.cca(X, Y, conv="samples")
    # other policies accept different spatial sizes
    assert nc.cka(X, Y, conv="mean").n_samples == 20
    assert nc.cka(X, Y, conv="flatten").n_samples == 20
    for name in nc.measures.available("activations"):
        with pytest.raises(ValueError, match="conv="):
            nc.measures.compute(X, X, name)
    with pytest.raises(ValueError, match="conv="):
        nc.cca(X[:, 0], X[:, 0])  # 3-D, i.e. (N, L, C), without conv


@pytest.mark.parametrize(
    "name",
    sorted(
        n for n, i in nc.measures.available("activations").items() if "dft" not in i.conv_policies
    ),
)
def test_dft_rejected_where_unsupported(name):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 4, 4, 3))
    with pytest.raises(ValueError, match="dft"):
        nc.measures.compute(X, X, name, conv="dft")


def test_dft_supported_where_claimed():
    supported = {n for n, i in nc.measures.available().items() if "dft" in i.conv_policies}
    assert supported == {"cca", "cca_r2", "svcca"}
    X, Y = translation_invariant_pair(0)
    for name in supported:
        assert 0 < float(nc.measures.compute(X, Y, name, conv="dft")) <= 1


def test_dft_input_errors():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 4, 4, 3))
    with pytest.raises(ValueError, match="spatial axes"):
        nc.cca(X, X[:, 0], conv="dft")
    with pytest.raises(ValueError, match="same samples"):
        nc.cca(X, X[:20], conv="dft")
    with pytest.raises(ValueError):
        nc.cca(X[:, :, :, 0].reshape(30, 16), X[:, 0, 0], conv="dft")  # 2-D inputs
    with pytest.raises(ValueError, match="trivially"):
        nc.cca(rng.normal(size=(4, 2, 2, 3)), rng.normal(size=(4, 2, 2, 3)), conv="dft")
    Xn = X.copy()
    Xn[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        nc.cca(Xn, X, conv="dft")


def test_dft_svcca_keeps_whole_conjugate_pairs():
    """A threshold falling inside a tied conjugate pair keeps both members (documented).

    On the flattened view such a selection is ambiguous (any direction of the tied
    2-D eigenspace could be the k-th); the DFT path keeps the whole pair.
    """
    X, Y = translation_invariant_pair(0)
    rx, bx = conjugate_groups(X)
    splitting = [v for v in np.linspace(0.3, 0.95, 40) if kept(rx, v) not in bx]
    assert splitting
    for v in splitting[:3]:
        r = nc.svcca(X, Y, conv="dft", variance=float(v))
        assert r.kept_dims_x == kept(rx, v) + 1
        assert r.kept_dims_x in bx


@pytest.mark.parametrize(
    ("sx", "sy"), [((8, 8), (4, 4)), ((7, 6), (5, 6)), ((9,), (5,)), ((6, 5), (6, 5))]
)
def test_dft_torch_equals_numpy_per_frequency_at_every_resize(sx, sy):
    # the torch path conjugates representatives in the results, not in the data, except
    # where the two layers' sizes disagree on which frequency stands for which: every
    # frequency must still match the numpy path (which never takes that route)
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    X = rng.normal(size=(90, *sx, 3)) + 0.3
    Y = rng.normal(size=(90, *sy, 2))
    Y[(slice(None), *(slice(0, s) for s in sy), slice(0, 2))] += X[
        (slice(None), *(slice(0, s) for s in sy), slice(0, 2))
    ]
    for a, b in ((X, Y), (Y, X)):
        want = nc.cca(a, b, conv="dft")
        got = nc.cca(torch.from_numpy(a), torch.from_numpy(b), conv="dft")
        assert isinstance(got.value, torch.Tensor)
        assert float(got) == pytest.approx(float(want), rel=1e-12)
        np.testing.assert_allclose(
            np.asarray(got.rho_per_frequency), want.rho_per_frequency, atol=1e-12
        )


def test_dft_svcca_with_disjoint_selections_warns_that_zero_is_by_definition():
    # dims=2 over all 16 frequencies: X's two strongest directions and Y's lie at
    # different frequencies here, so the kept subspaces are orthogonal and the value is 0
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4, 4, 3))
    Y = rng.normal(size=(50, 4, 4, 2))
    with pytest.warns(NNCompareWarning, match="none in common") as record:
        r = nc.svcca(X, Y, conv="dft", dims=2)
    assert float(r) == 0.0
    assert record[0].filename == __file__  # attributed to the caller, not to nncompare
    m = nc.SpectralMoments((4, 4))
    m.update({"x": X, "y": Y})
    with pytest.warns(NNCompareWarning, match=r"dims=\(2, 2\)"):
        assert float(m.dft_cca("x", "y", dims=2)) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough directions share a frequency: no warning
        assert float(nc.svcca(X, Y, conv="dft", dims=20)) > 0.0
