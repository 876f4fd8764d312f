"""The weight lens (issue #10; Guth & Ménard, "On the universality of neural encodings in
CNNs", ../shared/papers/guth-menard-universality-of-neural-encodings-in-cnns.txt).

Reference values are hand-computed from the paper's equations (named at each test) or are
properties of the constructions (planted spikes, exact rotations), never the code itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import nncompare as nc
from nncompare.errors import NNCompareWarning
from nncompare.stats import JointMoments
from nncompare.weights import (
    aligned_weights,
    alignment,
    alignment_from_moments,
    channel_covariance,
    compare_weights,
    covariance_similarity,
    effective_rank,
    eigenvector_similarity,
    shrink,
    spatial_covariance,
    spatial_eigenfilters,
    subspace_overlap,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def orthogonal(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def spiked_weights(
    c_out: int, d: int, spikes: list[float], seed: int, basis_seed: int = 100
) -> np.ndarray:
    """C_out samples of N(0, I + U diag(spikes) Uᵀ): init noise of variance 1 plus a planted
    learned part of rank len(spikes) (the spiked covariance model)."""
    rng = np.random.default_rng(seed)
    U = orthogonal(d, basis_seed)[:, : len(spikes)]
    root = np.eye(d) + U @ np.diag(np.sqrt(1.0 + np.asarray(spikes)) - 1.0) @ U.T
    return rng.standard_normal((c_out, d)) @ root


# ----------------------------------------------------------------------------- eq. 3


def test_shrink_matches_eq3_by_hand_on_both_sides_of_the_edge():
    # γ = 1: edge (1 + 1)² = 4. λ = 16/3 is the sample eigenvalue of a spike s = 3
    # (λ = ℓ + γ ℓ / (ℓ - 1), ℓ = 1 + s = 4: 4 + 4/3); eq. 3 gives back s = 3:
    # (16/3 - 2)/2 + sqrt((16/3 / 2)² - 16/3) = 5/3 + sqrt(64/9 - 48/9) = 5/3 + 4/3 = 3.
    # λ = 8: (8 - 2)/2 + sqrt(16 - 8) = 3 + 2√2. λ = 3.9 and λ = 4 (not above) -> 0.
    lam = np.array([16 / 3, 8.0, 4.0, 3.9, 0.5])
    np.testing.assert_allclose(
        shrink(lam, 1.0), [3.0, 3.0 + 2 * math.sqrt(2), 0.0, 0.0, 0.0], rtol=1e-12
    )
    # γ = 0.25: edge 2.25; λ = 2.5 = 2 + 0.25 · 2 / 1 is the spike s = 1:
    # (2.5 - 1.25)/2 + sqrt(((2.5 + 0.75)/2)² - 2.5) = 0.625 + sqrt(2.640625 - 2.5) = 1.
    # Just above the edge the value is √γ = 0.5 (the smallest detectable spike).
    out = shrink(np.array([2.5, 2.25 + 1e-12, 2.25, 2.0]), 0.25)
    np.testing.assert_allclose(out, [1.0, 0.5, 0.0, 0.0], atol=1e-5)


def test_shrink_keeps_torch_and_autograd():
    lam = torch.tensor([16 / 3, 1.0], dtype=torch.float64, requires_grad=True)
    out = shrink(lam, 1.0)
    assert isinstance(out, torch.Tensor)
    out.sum().backward()
    # eq. 3 at γ = 1 is f(λ) = (λ - 2)/2 + sqrt(λ²/4 - λ), so by hand
    # f'(16/3) = 1/2 + (λ/2 - 1) / (2 sqrt(λ²/4 - λ)) = 1/2 + (5/3) / (8/3) = 1/2 + 5/8
    assert lam.grad[0].item() == pytest.approx(0.5 + 5 / 8)
    assert lam.grad[1].item() == 0.0


@pytest.mark.parametrize("gamma", [0, -1.0, float("nan"), float("inf")])
def test_shrink_refuses_gamma_outside_the_domain(gamma):
    with pytest.raises(ValueError, match=r"gamma must be a finite number > 0: eq\. 3"):
        shrink(np.array([5.0]), gamma)


def test_shrink_refuses_negative_and_nan_eigenvalues():
    with pytest.raises(ValueError, match="positive semi-definite covariance"):
        shrink(np.array([5.0, -1.0]), 1.0)
    with pytest.raises(ValueError, match="non-finite values"):
        shrink(np.array([5.0, np.nan]), 1.0)


def test_shrinkage_of_pure_noise_weights_is_nearly_all_zero():
    # Gaussian weights of known variance, and a Conv2d at PyTorch's default initialisation
    # (kaiming_uniform(a=√5): variance 1/(3 fan_in), the default init_variance)
    w = np.random.default_rng(0).normal(scale=0.3, size=(512, 128))
    lam = np.linalg.eigvalsh(channel_covariance(w, init_variance=0.09))
    s = shrink(lam, 128 / 512)
    # at most an eigenvalue just above the edge (1 + √γ)² survives, at about √γ = 0.5
    assert np.count_nonzero(s) <= 1 and s.sum() < 0.01 * lam.sum()
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 256, 3)
    C = channel_covariance(conv.weight.detach().double())
    assert C.shape == (288, 288)
    assert float(torch.trace(C)) / 288 == pytest.approx(1.0, abs=0.02)  # normalised: init var 1
    s = shrink(torch.linalg.eigvalsh(C), 288 / 256)
    assert int((s > 0).sum()) <= 1 and float(s.sum()) < 0.01 * float(torch.trace(C))


def test_effective_rank_of_a_spike_model_recovers_the_planted_rank():
    # three equal spikes of 10 above unit noise in d = 100 from 1000 neurons: shrinkage keeps
    # exactly three eigenvalues, and r_eff (eq. 4) of three equal ones is (1 + 2 + 3)/3 = 2
    w = spiked_weights(1000, 100, [10.0, 10.0, 10.0], seed=1)
    lam = np.linalg.eigvalsh(channel_covariance(w, init_variance=1.0))
    s = shrink(lam, 100 / 1000)
    assert np.count_nonzero(s) == 3
    np.testing.assert_allclose(np.sort(s)[-3:], 10.0, rtol=0.25)
    assert effective_rank(s) == pytest.approx(2.0, abs=0.1)
    # eq. 4 by hand: (1·4 + 2·2 + 3·2)/8 = 14/8; all zeros -> 0 by convention
    assert effective_rank(np.array([2.0, 4.0, 2.0])) == pytest.approx(14 / 8)
    assert effective_rank(np.zeros(5)) == 0.0


# ----------------------------------------------------------------------------- eq. 5-6


def test_S_is_near_0_for_a_rotation_and_near_1_for_a_fresh_estimate():
    d, c_out, spikes = 64, 256, [30.0, 20.0, 12.0, 8.0, 5.0]
    C1 = channel_covariance(spiked_weights(c_out, d, spikes, seed=2), init_variance=1.0)
    fresh = channel_covariance(spiked_weights(c_out, d, spikes, seed=3), init_variance=1.0)
    O = orthogonal(d, 7)
    rotated = O @ C1 @ O.T
    same = covariance_similarity(C1, fresh, gamma=d / c_out)
    rot = covariance_similarity(C1, rotated, gamma=d / c_out)
    assert same.S == pytest.approx(1.0, abs=0.15)
    assert rot.S == pytest.approx(0.0, abs=0.15)
    assert 0 < rot.zero_point < rot.upper_bound < 1
    assert float(same) == same.S
    # the cosine and distance are those of the shipped eq. 5 functions on the shrunk matrices
    # (shrink=False compares the given matrices as they are)
    raw = covariance_similarity(C1, fresh, shrink=False, gamma=d / c_out)
    assert raw.cosine == pytest.approx(float(nc.covariance_cosine(C1, fresh)), rel=1e-12)
    assert raw.bures_wasserstein == pytest.approx(float(nc.bures_wasserstein(C1, fresh)))


def test_zero_point_of_a_rank_one_covariance_is_the_mean_random_cosine():
    # C1 = s u uᵀ: cos θ(C1, O C1 Oᵀ) = |<u, O u>|, and for a uniform unit vector in R^d
    # E|<u, v>| = Γ(d/2) / (sqrt(π) Γ((d + 1)/2)) (the mean |x_1| on the sphere)
    d = 100
    u = orthogonal(d, 3)[:, 0]
    C1 = 50.0 * np.outer(u, u)
    res = covariance_similarity(C1, C1, shrink=False, gamma=0.5, n_rotations=400, seed=1)
    expected = math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)
    assert res.zero_point == pytest.approx(expected, rel=0.06)
    assert res.cosine == pytest.approx(1.0)


def test_covariance_similarity_refuses_noise_and_missing_gamma():
    noise = channel_covariance(np.random.default_rng(4).normal(size=(256, 64)), 1.0)
    with pytest.raises(ValueError, match=r"C1 has no learned component: after shrinkage"):
        covariance_similarity(noise, noise, gamma=0.25)
    with pytest.raises(TypeError, match="gamma is required"):
        covariance_similarity(noise, noise)
    with pytest.raises(ValueError, match="must have the same shape"):
        covariance_similarity(noise, noise[:10, :10], gamma=0.25)


def test_eigenvector_similarity_chance_and_markers():
    d = 49
    C = channel_covariance(spiked_weights(400, d, [20.0, 10.0, 5.0], seed=5), 1.0)
    O = orthogonal(d, 8)
    same = eigenvector_similarity(C, C, 6, gamma=d / 400)
    np.testing.assert_allclose(np.diag(same.matrix), 1.0, atol=1e-8)
    assert same.chance == pytest.approx(1 / 7)
    assert same.matrix.shape == (6, 6)
    # r_eff of the shrunk spectrum: three spikes 20 > 10 > 5 -> between 1 and 2
    assert 1.0 < same.r_eff_1 == same.r_eff_2 < 2.0
    rot = eigenvector_similarity(C, O @ C @ O.T, 3)
    assert rot.matrix.max() < 5 * rot.chance  # below the paper's "significant" level
    with pytest.raises(ValueError, match=r"k must be between 1 and d = 49"):
        eigenvector_similarity(C, C, 50)


# ----------------------------------------------------------------------------- §2.2


def test_spatial_covariance_by_hand_and_even_kernels():
    # two filters e_0 (top-left pixel) and 2 e_4 (centre): Σ = (e0 e0ᵀ + 4 e4 e4ᵀ) / 2
    w = np.zeros((1, 2, 3, 3))
    w[0, 0, 0, 0] = 1.0
    w[0, 1, 1, 1] = 2.0
    expected = np.zeros((9, 9))
    expected[0, 0], expected[4, 4] = 0.5, 2.0
    np.testing.assert_array_equal(spatial_covariance(w), expected)
    t = torch.randn(4, 3, 3, 3, requires_grad=True)
    S = spatial_covariance(t)
    assert isinstance(S, torch.Tensor) and S.requires_grad
    assert spatial_covariance(np.ones((2, 2, 4, 4))).shape == (16, 16)  # even k accepted


def test_spatial_eigenfilters_signs_degeneracy_and_any_conv_model():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 5), nn.ReLU(), nn.Conv2d(8, 4, 1)
    )
    ef = spatial_eigenfilters(net)
    assert list(ef) == ["0", "2"]  # the 1 × 1 conv has no spatial filters
    e = ef["2"]
    assert e.eigenvectors.shape == (25, 5, 5)
    assert np.all(np.diff(e.eigenvalues) <= 1e-15)
    # the same filters with every sign flipped give the same (sign-fixed) eigenfilters
    flipped = spatial_eigenfilters({"w": -net[2].weight.detach()})["w"]
    np.testing.assert_allclose(flipped.eigenvectors[:5], e.eigenvectors[:5], atol=1e-10)
    # a planted near-degenerate pair is flagged: filters ±x-ramp and ±y-ramp equally often
    ramp = np.linspace(-1, 1, 3)
    fx, fy = np.tile(ramp, (3, 1)), np.tile(ramp, (3, 1)).T
    w = np.stack([fx, fy, 0.8 * fx + 0.1 * fy])[None]
    pair = spatial_eigenfilters({"w": np.concatenate([w, -w])})["w"]
    assert pair.near_degenerate[:2].tolist() == [False, False]
    w2 = np.stack([fx, fy])[None]
    deg = spatial_eigenfilters({"w": w2})["w"]
    assert deg.near_degenerate[:2].all() and deg.flipped_pairs()[0] == (0, 1)


def test_spatial_eigenfilters_bad_layers():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1))
    with pytest.raises(TypeError, match=r"need a Conv2d layer; '1' is a ReLU"):
        spatial_eigenfilters(net, ["1"])
    with pytest.raises(ValueError, match=r"'nope' is not a module"):
        spatial_eigenfilters(net, ["nope"])
    with pytest.raises(ValueError, match=r"1 × 1 kernel"):
        spatial_eigenfilters(net, ["2"])
    with pytest.raises(ValueError, match=r"must be a Conv2d weight of shape \(C_out, C_in, k, k\)"):
        spatial_covariance(np.ones((4, 9)))
    bad = np.ones((2, 2, 3, 3))
    bad[0, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite values"):
        spatial_covariance(bad)


def test_subspace_overlap_chance_and_kernel_size_mismatch():
    rng = np.random.default_rng(0)

    def top3(seed: int) -> np.ndarray:
        return orthogonal(9, seed)[:, :3].T.reshape(3, 3, 3)

    vals = [subspace_overlap(top3(s), top3(s + 500)) for s in range(200)]
    assert np.mean(vals) == pytest.approx(3 / 9, abs=0.03)  # chance level rank / k²
    a = spatial_eigenfilters({"a": rng.normal(size=(4, 4, 3, 3))})["a"]
    b = spatial_eigenfilters({"b": rng.normal(size=(4, 4, 4, 4))})["b"]
    assert subspace_overlap(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"different kernel sizes, 3 × 3 and 4 × 4"):
        subspace_overlap(a, b)


# ----------------------------------------------------------------------------- eq. 1-2


class Rotate(nn.Module):
    """Multiplies the channels of a (n, C, H, W) activation by a fixed orthogonal matrix."""

    def __init__(self, R: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("R", torch.as_tensor(R, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("dc,nchw->ndhw", self.R, x)


def rotated_pair(seed: int = 0) -> tuple[nn.Module, nn.Module, np.ndarray]:
    """A net and an exact rotated copy: B's hidden layer is R φ, its next conv w' = R w."""
    torch.manual_seed(seed)
    conv1, conv2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 24, 3, padding=1)
    with torch.no_grad():  # a planted learned structure in conv2 (shrinkage keeps it)
        w = spiked_weights(24, 16 * 9, [400.0, 200.0, 100.0], seed=seed + 1)
        conv2.weight.copy_(torch.as_tensor(w.reshape(24, 16, 3, 3) / math.sqrt(3 * 144)))
    a = nn.Sequential(conv1, nn.ReLU(), conv2)
    R = orthogonal(16, seed + 2)
    conv2b = nn.Conv2d(16, 24, 3, padding=1)
    with torch.no_grad():
        conv2b.weight.copy_(torch.einsum("dc,ockl->odkl", torch.as_tensor(R).float(), conv2.weight))
        conv2b.bias.copy_(conv2.bias)
    b = nn.Sequential(conv1, nn.ReLU(), Rotate(R), conv2b)
    return a, b, R


def test_rotated_copy_aligns_exactly_and_gives_cosine_1():
    a, b, R = rotated_pair()
    x = torch.randn(64, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=1e-4)  # the copy computes the same function
    al = alignment(a, b, x, "2", layer_b="3", batch_size=16)
    np.testing.assert_allclose(al.matrix, R, atol=1e-5)
    assert al.residual < 1e-10 and al.n_samples == 64 * 64
    wa = aligned_weights(b[3].weight.detach(), al)
    assert isinstance(wa, torch.Tensor)
    torch.testing.assert_close(wa, a[2].weight.detach(), atol=1e-5, rtol=1e-4)
    df = compare_weights(a, b, x, [("2", "3")], batch_size=16)
    row = df.iloc[0]
    assert row["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert row["bw"] == pytest.approx(0.0, abs=1e-3)
    assert row["r_eff_a"] == pytest.approx(row["r_eff_b"], rel=1e-6) and row["r_eff_a"] > 0
    assert row["upper_bound"] > row["zero_point"] and row["S"] > 1.0
    covs = nc.weights.aligned_covariances(a, b, x, [("2", "3")])["2"]
    ev = eigenvector_similarity(covs.C_a, covs.C_b, 3)
    np.testing.assert_allclose(np.diag(ev.matrix), 1.0, atol=1e-5)  # identical eigenvectors


def test_self_alignment_with_dead_channels_is_the_identity():
    # channels never active on the data leave eq. 1 undetermined there; the completion
    # closest to the identity makes a network's alignment with itself exactly I
    phi = np.abs(np.random.default_rng(5).normal(size=(300, 10)))
    phi[:, [2, 7]] = 0.0
    jm = JointMoments(precision="float64").update({"a": phi, "b": phi})
    np.testing.assert_allclose(alignment_from_moments(jm).matrix, np.eye(10), atol=1e-12)


def test_alignment_with_unequal_widths_embeds():
    # φ' = E φ with E (12 × 8) orthonormal columns: A = E, and aligned weights return w
    rng = np.random.default_rng(3)
    E = orthogonal(12, 4)[:, :8]
    phi = np.abs(rng.normal(size=(500, 8)))
    jm = JointMoments(precision="float64").update({"a": phi, "b": phi @ E.T})
    al = alignment_from_moments(jm)
    np.testing.assert_allclose(al.matrix, E, atol=1e-10)
    w = rng.normal(size=(5, 8, 3, 3))
    wb = np.einsum("dc,ockl->odkl", E, w)
    np.testing.assert_allclose(aligned_weights(wb, al), w, atol=1e-10)


def test_aligned_weights_depthwise_expansion_is_the_same_function():
    # B's pointwise conv after K depthwise copies of R φ equals A's after copies of φ
    torch.manual_seed(1)
    c, K, c_out = 6, 4, 5
    R = orthogonal(c, 9)
    dw = nn.Conv2d(c, K * c, 3, groups=c, bias=False, padding=1).double()
    with torch.no_grad():  # the same K frozen filters for every channel, as in B.2
        dw.weight.copy_(torch.randn(K, 1, 3, 3, dtype=torch.float64).repeat(c, 1, 1, 1))
    w_b = torch.randn(c_out, K * c, 1, 1, dtype=torch.float64)
    phi = torch.randn(2, c, 5, 5, dtype=torch.float64)
    phi_b = torch.einsum("dc,nchw->ndhw", torch.as_tensor(R), phi)
    w_a = aligned_weights(w_b, R)
    assert w_a.shape == (c_out, K * c, 1, 1)
    out_b = nn.functional.conv2d(dw(phi_b), w_b)
    out_a = nn.functional.conv2d(dw(phi), w_a)
    torch.testing.assert_close(out_a, out_b)
    with pytest.raises(ValueError, match=r"24 input channels, but the alignment's C_b = 6 times"):
        aligned_weights(w_b, R, expansion=3)
    with pytest.raises(ValueError, match=r"25 input channels, not a multiple"):
        aligned_weights(torch.randn(5, 25, 1, 1), R)


def test_compare_weights_bad_input():
    a, b, _ = rotated_pair()
    x = torch.randn(8, 3, 6, 6)
    with pytest.raises(ValueError, match=r"the two models' weight layers differ"):
        compare_weights(a, b, x)
    with pytest.raises(
        TypeError, match=r"needs a Conv2d or Linear layer; '1' of model_a is a ReLU"
    ):
        compare_weights(a, b, x, [("1", "1")])
    grouped = nn.Sequential(nn.Conv2d(3, 6, 3, groups=3), nn.Conv2d(6, 4, 1))
    with pytest.raises(ValueError, match=r"grouped \(depthwise\) convolution"):
        compare_weights(grouped, grouped, x, ["0"])
    with pytest.raises(ValueError, match=r"at least 2 neurons"):
        channel_covariance(np.ones((1, 4)))
    nanw = np.ones((3, 4))
    nanw[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite values"):
        channel_covariance(nanw)


def test_compare_weights_on_noise_layers_warns_and_says_why():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3))
    with pytest.warns(NNCompareWarning, match="no learned component"):
        df = compare_weights(net, net, torch.randn(4, 3, 8, 8))
    assert list(df.columns[:9]) == [
        "layer", "layer_b", "r_eff_a", "r_eff_b", "bw", "cosine", "S", "zero_point",
        "upper_bound",
    ]  # fmt: skip
    assert df["S"].isna().all() and df["note"].str.contains("noise bulk").all()


# ----------------------------------------------------------------------------- pretrained


@pytest.mark.shared
def test_resnet20_and_56_share_their_top3_spatial_eigen_subspaces(shared_dir):
    from nncompare.models import cifar_resnet

    folder = shared_dir / "data" / "akamaster_resnet_cifar10"
    paths = {d: sorted(folder.glob(f"resnet{d}-*.th")) for d in (20, 56)}
    if not all(paths.values()):
        pytest.skip(f"pretrained ResNet-20/56 not available in {folder}")
    ef = {d: spatial_eigenfilters(cifar_resnet(d, weights=p[0])) for d, p in paths.items()}
    deep = {d: [v for k, v in e.items() if k != "conv1"] for d, e in ef.items()}
    overlaps = np.array([[subspace_overlap(a, b, 3) for b in deep[56]] for a in deep[20]])
    print(f"top-3 overlap ResNet-20 vs ResNet-56, layers >= 2: mean {overlaps.mean():.3f}, "
          f"median {np.median(overlaps):.3f} (chance 3/9 = 0.333)")  # fmt: skip
    assert overlaps.shape == (18, 54)
    assert overlaps.mean() > 0.7 and np.median(overlaps) > 0.8  # chance: 1/3
    # signs are fixed consistently: eigenfilters of the two networks that match (|cos| > 0.7)
    # mostly have the same sign (random signs: half of them)
    V = {d: np.concatenate([e.eigenvectors[:9].reshape(9, -1) for e in deep[d]]) for d in deep}
    G = V[20] @ V[56].T
    strong = np.abs(G) > 0.7
    assert (G[strong] > 0).mean() > 0.85


# ----------------------------------------------------------------------------- figures


def test_weights_figures_draw_and_refuse_wrong_input():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 4, 5))
    ef = spatial_eigenfilters(net)
    grid = nc.plot.weights_eigenfilters(ef, n_ranks=6)
    assert isinstance(grid, Figure) and len(grid.axes) == 3 * 6
    ov = nc.plot.weights_overlap(ef)  # 3 × 3 and 5 × 5 layers: mixed pairs left blank
    assert ov.axes[0].images[0].get_array().mask[0, 2]
    d = 36
    C = channel_covariance(spiked_weights(200, d, [20.0, 8.0], seed=6), 1.0)
    O = orthogonal(d, 10)
    panels = {"same": eigenvector_similarity(C, C, 8, gamma=d / 200),
              "rotated": eigenvector_similarity(C, O @ C @ O.T, 8, gamma=d / 200)}  # fmt: skip
    fig = nc.plot.weights_eigenvector_similarity(panels)
    norm = fig.axes[0].images[0].norm
    assert (norm.vmin, norm.vmax) == pytest.approx((1 / 6, 5 / 6))  # white 1/√d, black 5×
    spectra = nc.plot.weights_spectra({"C": shrink(np.linalg.eigvalsh(C), d / 200)})
    assert "r_eff" in spectra.axes[0].get_legend().get_texts()[0].get_text()
    import pandas as pd

    frame = pd.DataFrame({"layer": ["a", "b", "c"], "S": [0.9, np.nan, 0.3]})
    depth = nc.plot.weights_similarity_by_depth({"seeds": frame})
    assert isinstance(depth, Figure)
    with pytest.raises(TypeError, match=r"expects the mapping returned by"):
        nc.plot.weights_eigenfilters([1, 2])
    with pytest.raises(ValueError, match=r"needs the columns 'layer' and 'S'"):
        nc.plot.weights_similarity_by_depth(frame.drop(columns="S"))


def test_numpy_in_numpy_out_and_torch_autograd():
    w = np.random.default_rng(0).normal(size=(6, 4, 3, 3))
    assert isinstance(channel_covariance(w), np.ndarray)
    assert isinstance(aligned_weights(w, orthogonal(4, 1)), np.ndarray)
    t = torch.tensor(w, requires_grad=True)
    C = channel_covariance(t, init_variance=1.0)
    assert isinstance(C, torch.Tensor) and C.shape == (36, 36)
    torch.trace(C).backward()
    # tr(WᵀW / C_out) = ‖W‖² / C_out, so d/dW = 2 W / C_out
    torch.testing.assert_close(t.grad, 2 * t.detach() / 6)


def test_compare_weights_with_unequal_widths():
    # B carries A's 8 hidden channels embedded in 12 (φ' = E φ, E with orthonormal columns)
    # and its next conv is w' = E w: the alignment is E and the weights agree after it
    torch.manual_seed(2)
    conv1 = nn.Conv2d(3, 8, 3, padding=1)
    conv2 = nn.Conv2d(8, 24, 3, padding=1, bias=False)
    with torch.no_grad():
        w = spiked_weights(24, 8 * 9, [300.0, 100.0], seed=4) / math.sqrt(3 * 72)
        conv2.weight.copy_(torch.as_tensor(w.reshape(24, 8, 3, 3)))
    E = orthogonal(12, 6)[:, :8]
    conv2b = nn.Conv2d(12, 24, 3, padding=1, bias=False)
    with torch.no_grad():
        conv2b.weight.copy_(torch.einsum("dc,ockl->odkl", torch.as_tensor(E).float(), conv2.weight))
    a = nn.Sequential(conv1, nn.ReLU(), conv2)
    b = nn.Sequential(conv1, nn.ReLU(), Rotate(E), conv2b)
    x = torch.randn(32, 3, 6, 6)
    al = alignment(a, b, x, "2", layer_b="3")
    np.testing.assert_allclose(al.matrix, E, atol=1e-5)
    row = compare_weights(a, b, x, [("2", "3")]).iloc[0]
    assert (row["c_in_a"], row["c_in_b"]) == (8, 12)
    assert row["cosine"] > 0.95 and np.isfinite(row["S"])
