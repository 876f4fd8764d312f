"""Issue 6, numerics of the linear (moment-based) measures: one test per item, each starting
from the issue's reproducer.

Item 4: constant layers whose mean does not round; item 5: extreme scales; item 6: float32
streaming of offset data; item 7: empty batches; item 9: complex and meta-device input;
item 10: pwcca gradients at repeated canonical correlations; item 18: memory of the torch
in-memory path. The same defect classes in the DFT path and MinibatchCKA are covered too.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import nncompare as nc
from nncompare._validation import ConstantFeatureWarning, NNCompareWarning, constant_columns

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LINEAR = ["cca", "cca_r2", "svcca", "pwcca", "cka", "cka_debiased", "lr_r2", "procrustes", "shape"]
STREAMING = ["cca", "cca_r2", "svcca", "pwcca", "cka", "lr_r2", "procrustes", "shape"]

# what each measure says when Y (the second argument) is entirely constant
CONSTANT_Y = {
    "cca": r"cca is undefined: every feature of Y is constant over the 30 samples",
    "cca_r2": r"cca is undefined: every feature of Y is constant over the 30 samples",
    "pwcca": r"pwcca is undefined: every feature of Y is constant over the 30 samples",
    "svcca": r"svcca is undefined: Y has zero variance \(every feature constant\)",
    "cka": r"CKA is undefined: Y has zero variance in every feature",
    "cka_debiased": r"CKA is undefined: Y has zero variance in every feature",
    "lr_r2": r"lr_r2 is undefined: every feature of Y is constant \(zero variance\)",
    "procrustes": r"Procrustes similarity is undefined: every feature of Y is constant",
    "shape": r"Procrustes similarity is undefined: every feature of Y is constant",
}


def _pair(seed: int = 0, n: int = 200, d1: int = 5, d2: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d1))
    Y = X[:, :d2] @ rng.normal(size=(d2, d2)) + rng.normal(size=(n, d2))
    return X, Y


def _value(name: str, X, Y) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNCompareWarning)
        return float(getattr(nc, name)(X, Y))


# ---------------------------------------------------------------------- item 4
@pytest.mark.parametrize("name", LINEAR)
def test_item4_constant_layer_whose_mean_does_not_round_is_refused(name):
    """nc.cka_debiased(normal(30, 5), full((30, 4), 0.1)) gave -0.078; svcca/cka/lr_r2/
    procrustes/shape gave ~1e-16 instead of the documented error."""
    rng = np.random.default_rng(0)
    X, C = rng.normal(size=(30, 5)), np.full((30, 4), 0.1)
    assert np.mean(C, axis=0)[0] != 0.1  # the mean does not round exactly: the trap
    with pytest.raises(ValueError, match=CONSTANT_Y[name]):
        getattr(nc, name)(X, C)
    if name in STREAMING:  # the same through batches (a constant stays constant)
        m = nc.Moments()
        for s in range(0, 30, 7):
            m.update(X[s : s + 7], C[s : s + 7])
        with pytest.raises(ValueError, match=CONSTANT_Y[name].replace("30 samples", "30")):
            getattr(nc, name)(m)


def test_item4_pairwise_records_constant_layers_as_errors():
    rng = np.random.default_rng(0)
    acts = {"a": rng.normal(size=(30, 5)), "c": np.full((30, 4), 0.1)}
    grid = nc.pairwise(acts, measures=["cka", "svcca", "lr_r2", "procrustes"])
    for measure in ("cka", "svcca", "lr_r2", "procrustes"):
        assert np.isnan(grid.values[measure][0, 1])
        assert re.search(CONSTANT_Y[measure], grid.errors[(measure, "a", "c")])


def test_item4_constancy_is_relative_to_the_data_scale():
    X, Y = _pair(1)
    # a feature of values ~1e-200 varying by 100% is not constant: cca does not change
    tiny = X.copy()
    tiny[:, 0] *= 1e-200
    assert not bool(np.any(constant_columns(np, tiny)))
    assert _value("cca", tiny, Y) == pytest.approx(_value("cca", X, Y), rel=1e-12)
    # a feature whose values differ by a few units of rounding is constant
    eps = np.finfo(np.float64).eps
    wobble = 0.1 * (1.0 + eps * (np.arange(200) % 4))
    Xw = np.column_stack([X, wobble])
    assert constant_columns(np, Xw).tolist() == [False] * 5 + [True]
    with pytest.warns(ConstantFeatureWarning, match="X has 1 constant feature"):
        r = nc.cca(Xw, Y)
    assert float(r) == pytest.approx(_value("cca", X, Y), rel=1e-12)
    for name in ("cka", "procrustes", "lr_r2"):
        assert _value(name, Xw, Y) == pytest.approx(_value(name, X, Y), rel=1e-10)
    # the helper works on torch too, on the tensor's device
    mask = constant_columns(torch, torch.tensor(Xw))
    assert isinstance(mask, torch.Tensor) and mask.tolist() == [False] * 5 + [True]


def test_item4_dft_path_ignores_rounding_noise_of_constant_coefficients():
    """Same defect class in conv='dft': a channel that is a fixed spatial pattern plus a
    per-image constant has a spectrum constant over the samples at every f != 0; the FFT's
    rounding noise there (variance ~1e-32) was whitened into a spurious direction."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6, 6, 3))
    Y = rng.normal(size=(200, 6, 6, 2)) + 0.5 * X[..., :2]
    X[..., 0] = X[..., 0].mean(axis=(1, 2), keepdims=True) + rng.normal(size=(1, 6, 6))
    r = nc.cca(X, Y, conv="dft")
    F = np.fft.fftn(X, axes=(1, 2), norm="ortho")
    G = np.fft.fftn(Y, axes=(1, 2), norm="ortho")
    # independent per-frequency canonical correlations, channel 0 left out (constant at f)
    want = _complex_cca(F[:, 1, 2, 1:], G[:, 1, 2])
    np.testing.assert_allclose(r.rho_per_frequency[1, 2], want, atol=1e-10)
    # and a constant channel, or a fixed pattern, changes nothing
    extra = np.concatenate(
        [
            X,
            np.full((200, 6, 6, 1), 0.1),
            np.broadcast_to(rng.normal(size=(1, 6, 6, 1)), (200, 6, 6, 1)),
        ],
        axis=-1,
    )
    assert float(nc.cca(extra, Y, conv="dft")) == pytest.approx(float(r), rel=1e-12)


def _complex_cca(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Canonical correlations of two complex (n, c) matrices: cosines between column spaces."""
    Qa, _ = np.linalg.qr(A - A.mean(0))
    Qb, _ = np.linalg.qr(B - B.mean(0))
    return np.linalg.svd(Qa.conj().T @ Qb, compute_uv=False)


# ---------------------------------------------------------------------- item 5
SCALES = [1e-300, 1e-150, 1e-100, 1e-60, 1e40, 1e77, 1e155, 1e300]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", LINEAR)
def test_item5_extreme_scales_give_the_unit_scale_value(name, scale):
    """cka(X*1e40, Y*1e40) was 0.0, 1e77 NaN, 1e-60 inf; procrustes 0.0 at 1e77, inf at 1e-100;
    a false 'zero variance' error at 1e-150; LinAlgError for the CCA family beyond 1e155."""
    X, Y = _pair(2)
    want = _value(name, X, Y)
    assert _value(name, X * scale, Y * scale) == pytest.approx(want, rel=1e-9)
    assert _value(name, X * scale, Y) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("scale", [1e-300, 1e-100, 1e100, 1e300])
def test_item5_extreme_scales_streaming_and_torch(scale):
    X, Y = _pair(3)
    m = nc.Moments()
    for s in range(0, 200, 32):
        m.update(X[s : s + 32] * scale, Y[s : s + 32])
    Xt, Yt = torch.tensor(X * scale), torch.tensor(Y)
    for name in STREAMING:
        want = _value(name, X, Y)
        assert _value(name, m, None) == pytest.approx(want, rel=1e-9), name
        assert _value(name, Xt, Yt) == pytest.approx(want, rel=1e-9), name
    assert float(nc.cka_debiased(Xt, Yt)) == pytest.approx(_value("cka_debiased", X, Y), 1e-9)


def test_item5_mixed_column_scales():
    """Per-feature scales from 1e-250 to 1e250 in one array: the measures invariant to
    per-feature scaling (CCA family, lr_r2's predictor, shape at alpha=0) do not change."""
    X, Y = _pair(4)
    sc = np.array([1e-250, 1e-100, 1.0, 1e100, 1e250])
    for name in ("cca", "cca_r2", "lr_r2"):
        assert _value(name, X * sc, Y) == pytest.approx(_value(name, X, Y), rel=1e-10)
    assert float(nc.shape(X * sc, Y, alpha=0.0)) == pytest.approx(
        float(nc.shape(X, Y, alpha=0.0)), rel=1e-10
    )
    assert float(nc.cca(Y, X * sc)) == pytest.approx(float(nc.cca(Y, X)), rel=1e-10)


@pytest.mark.parametrize("steps", [np.linspace(-200, 200, 6), np.arange(6) * 1.5])
def test_item5_running_scale_when_later_batches_are_larger(steps):
    """Streaming rescales its accumulated sums when a much larger batch arrives (10^400 times:
    the last batch dominates; 10^7.5: every batch counts)."""
    X, Y = _pair(5, n=240)
    grow = 10.0 ** np.repeat(steps, 40)[:, None]
    Xg, Yg = X * grow, Y * grow
    m = nc.Moments()
    for s in range(0, 240, 40):
        m.update(Xg[s : s + 40], Yg[s : s + 40])
    for name in STREAMING:
        assert _value(name, m, None) == pytest.approx(_value(name, Xg, Yg), rel=1e-9), name


@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1e155, 1e300])
def test_item5_dft_and_minibatch_cka_at_extreme_scales(scale):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(120, 4, 4, 3))
    Y = rng.normal(size=(120, 4, 4, 2)) + X[..., :2]
    for name in ("cca", "svcca"):
        want = float(getattr(nc, name)(X, Y, conv="dft"))
        assert float(getattr(nc, name)(X * scale, Y, conv="dft")) == pytest.approx(want, 1e-9)
    A, B = X.reshape(120, -1), Y.reshape(120, -1)
    for kernel in ("linear", "rbf"):
        ref = nc.MinibatchCKA(kernel)
        big = nc.MinibatchCKA(kernel)
        for s in range(0, 120, 40):
            ref.update(A[s : s + 40], B[s : s + 40])
            big.update(A[s : s + 40] * scale, B[s : s + 40])
        assert float(big.compute()) == pytest.approx(float(ref.compute()), rel=1e-9)


def test_item5_conv_mean_policy_near_overflow_and_in_half_precision():
    """conv='mean' summed in the input's dtype: 64 positions of 1.5e307 overflowed into a
    false non-finite error, and float16 means were rounded to float16."""
    rng = np.random.default_rng(13)
    X = rng.normal(size=(100, 8, 8, 3))
    Y = rng.normal(size=(100, 8, 8, 2)) + X[..., :2]
    want = float(nc.cca(X, Y, conv="mean"))
    assert float(nc.cca(X * 1.5e307, Y, conv="mean")) == pytest.approx(want, rel=1e-9)
    half = (X * 1e4).astype(np.float16)
    assert float(nc.cca(half, Y, conv="mean")) == pytest.approx(
        float(nc.cca(half.astype(np.float64), Y, conv="mean")), rel=1e-12
    )
    assert nc.reshape_conv(half, "mean").dtype == np.float64


# ---------------------------------------------------------------------- item 6
@pytest.mark.parametrize("offset", [1e6, 1e8])
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_item6_float32_moments_of_offset_data(offset, lib):
    """Moments(dtype='float32') returned 1.0 for cka/svcca/procrustes/lr_r2/cca on independent
    data offset by +-1e8 (errors of 1.5e-2 at 1e6)."""
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(2000, 5)), rng.normal(size=(2000, 4))
    m = nc.Moments(dtype="float32")
    for s in range(0, 2000, 500):
        a, b = X[s : s + 500] + offset, Y[s : s + 500] - offset
        if lib == "torch":
            a, b = torch.tensor(a), torch.tensor(b)
        m.update(a, b)
    for name in ("cka", "svcca", "procrustes", "lr_r2", "cca", "pwcca"):
        want = _value(name, X, Y)  # independent data: small values
        assert want < 0.1
        assert _value(name, m, None) == pytest.approx(want, abs=1e-6), name


def test_item6_float64_streaming_of_large_offsets_is_exact():
    """Means are kept as a reference (first batch) plus an offset: merging 1e12-offset data
    loses nothing beyond the data's own rounding (it lost ~1e-6 before)."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(2000, 5)) + 1e12
    Y = rng.normal(size=(2000, 4)) + 0.3 * X[:, :4] - 1e12
    XL, YL = X.astype(np.longdouble), Y.astype(np.longdouble)
    Xc, Yc = XL - XL.mean(0), YL - YL.mean(0)
    exact = float(
        (np.sum((Xc.T @ Yc) ** 2)) / np.sqrt(np.sum((Xc.T @ Xc) ** 2) * np.sum((Yc.T @ Yc) ** 2))
    )
    m = nc.Moments()
    for s in range(0, 2000, 500):
        m.update(X[s : s + 500], Y[s : s + 500])
    assert float(nc.cka(m)) == pytest.approx(exact, abs=1e-12)
    assert float(nc.cka(X, Y)) == pytest.approx(exact, abs=1e-12)


# ---------------------------------------------------------------------- item 7
def test_item7_empty_batches_are_no_ops():
    """Moments().update(empty_batch_first, ...) raised KeyError."""
    X, Y = _pair(9)
    m = nc.Moments()
    m.update(X[:0], Y[:0])
    assert m.n == 0
    m.update(X[:100], Y[:100]).update(X[100:100], Y[100:100]).update(X[100:], Y[100:])
    assert m.n == 200
    assert float(nc.cca(m)) == pytest.approx(_value("cca", X, Y), rel=1e-12)
    assert m.merge(nc.Moments()).n == 200
    jm = nc.JointMoments().update({"a": X[:0], "b": Y[:0]})
    jm.update({"a": X, "b": Y}).update({"a": X[:0], "b": Y[:0]})
    assert jm.n == 200
    with pytest.raises(ValueError, match="batch layout differs from earlier batches"):
        jm.update({"a": X[:0, :2], "b": Y[:0]})
    mb = nc.MinibatchCKA().update(X[:0], Y[:0]).update(X, Y)
    assert mb.n_batches == 1
    from nncompare.measures._spectral import SpectralMoments

    rng = np.random.default_rng(9)
    A = rng.normal(size=(50, 4, 4, 2))
    sm = SpectralMoments((4, 4)).update({"a": A[:0]}).update({"a": A}).update({"a": A[:0]})
    assert sm.n == 50


# ---------------------------------------------------------------------- item 9
COMPLEX = r"has the complex dtype complex128; nncompare compares real activations"


@pytest.mark.parametrize("name", [*LINEAR, "cka_rbf", "rsa", "mutual_knn"])
def test_item9_complex_input_is_refused_everywhere(name):
    """The linear measures raised numpy's UFuncTypeError; cka_rbf, rsa and mutual_knn
    silently dropped the imaginary part."""
    X, Y = _pair(10)
    Z = X + 1j * X
    fn = getattr(nc, name)
    with pytest.raises(TypeError, match="X " + COMPLEX):
        fn(Z, Y)
    with pytest.raises(TypeError, match="Y " + COMPLEX):
        fn(X, Z)
    with pytest.raises(TypeError, match=r"X has the complex dtype torch\.complex128"):
        fn(torch.tensor(Z), torch.tensor(Y))


def test_item9_complex_refused_by_accumulators_and_masked_arrays():
    X, Y = _pair(11)
    with pytest.raises(TypeError, match="X " + COMPLEX):
        nc.Moments().update(X + 0j, Y)
    with pytest.raises(TypeError, match="a " + COMPLEX):
        nc.JointMoments().update({"a": X + 0j})
    with pytest.raises(TypeError, match="X is a numpy masked array; nncompare would ignore"):
        nc.cka(np.ma.masked_greater(X, 1.0), Y)
    with pytest.raises(TypeError, match=r"dtype <U3"):
        nc.cka(np.full((10, 2), "abc"), Y[:10])


@pytest.mark.parametrize("name", [*LINEAR, "cka_rbf", "rsa", "mutual_knn"])
def test_item9_meta_device_tensors_get_a_clear_error(name):
    """Torch tensors on the 'meta' device raised Tensor.item()'s RuntimeError."""
    X = torch.empty(50, 4, device="meta")
    Y = torch.randn(50, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"X is a torch tensor on the 'meta' device"):
        getattr(nc, name)(X, Y)


def test_item9_dft_path_handles_complex_input_exactly():
    """conv='dft' works in the complex domain; complex inputs now get every frequency
    computed (the conjugate-frequency shortcut holds for real inputs only)."""
    rng = np.random.default_rng(12)
    X = rng.normal(size=(200, 4, 4, 2)) + 1j * rng.normal(size=(200, 4, 4, 2))
    Y = rng.normal(size=(200, 4, 4, 2)) + 1j * rng.normal(size=(200, 4, 4, 2)) + 0.5 * X
    r = nc.cca(X, Y, conv="dft")
    F = np.fft.fftn(X, axes=(1, 2), norm="ortho")
    G = np.fft.fftn(Y, axes=(1, 2), norm="ortho")
    for u, v in ((1, 1), (3, 3), (2, 1)):
        np.testing.assert_allclose(
            r.rho_per_frequency[u, v], _complex_cca(F[:, u, v], G[:, u, v]), atol=1e-10
        )


# ---------------------------------------------------------------------- item 10
def test_item10_pwcca_gradients_at_repeated_correlations():
    """pwcca gave NaN gradients when X == Y or Y = X Q (every canonical correlation 1)."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(60, 4, dtype=torch.float64, generator=g, requires_grad=True)
    Q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=g))
    for make_y in (lambda A: A, lambda A: A @ Q, lambda A: 3.0 * A @ Q + 1.0, lambda A: A.detach()):
        for symmetric in (False, True):
            X.grad = None
            value = nc.pwcca(X, make_y(X), symmetric=symmetric).value
            value.backward()
            assert float(value.detach()) == pytest.approx(1.0, abs=1e-12)
            assert bool(torch.isfinite(X.grad).all())
            # PWCCA <= 1 with equality here: a maximum, where the gradient vanishes
            assert float(X.grad.abs().max()) < 1e-10


@pytest.mark.parametrize("symmetric", [False, True])
def test_item10_pwcca_gradcheck_where_well_posed(symmetric):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(20, 3, dtype=torch.float64, generator=g, requires_grad=True)
    W = torch.randn(3, 2, dtype=torch.float64, generator=g)
    Y = (X.detach() @ W + torch.randn(20, 2, dtype=torch.float64, generator=g)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: nc.pwcca(a, b, symmetric=symmetric).value, (X, Y))


# ---------------------------------------------------------------------- item 18
_MEMORY_PROBE = textwrap.dedent(
    """
    import sys
    import torch
    torch.set_num_threads(1)
    import nncompare as nc
    name, n = sys.argv[1], int(sys.argv[2])
    X = torch.randn(n, 50, dtype=torch.float32)
    Y = torch.randn(n, 50, dtype=torch.float32)
    def status(key):
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(key))
    getattr(nc, name)(X[:2000], Y[:2000])  # imports and first-call allocations
    # VmHWM is this process's own peak (ru_maxrss carries the parent's across fork/exec);
    # writing 5 to clear_refs resets it to the current size.
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = status("VmRSS:")
    getattr(nc, name)(X, Y)
    after = status("VmHWM:")
    print((after - before) * 1024)
    """
)


def _extra_bytes(name: str, n: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, name, str(n)],
        capture_output=True,
        text=True,
        check=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("name", ["cka", "cca", "cka_debiased"])
def test_item18_torch_in_memory_path_memory_does_not_grow_with_n(name):
    """The torch path used ~4-5x its input (float64 centred copies plus a concatenation): the
    peak resident memory beyond the inputs grew with n. Chunked, it stays bounded.

    torch's CPU allocations are invisible to tracemalloc: the peak resident set size
    (VmHWM) of a fresh process is measured for n and 4n samples (float32, 50 + 50
    features: 38 MiB and 153 MiB of input).
    """
    n = 100_000  # large enough that allocator granularity (8 MiB steps) is noise
    small, large = _extra_bytes(name, n), _extra_bytes(name, 4 * n)
    input_large = 4 * n * 100 * 4
    input_growth = input_large - n * 100 * 4
    assert large - small < 0.25 * input_growth, (small, large)
    assert large < 0.75 * input_large, (small, large)


@pytest.mark.parametrize("value", [1e100, 1e154, 1e300])
@pytest.mark.parametrize("name", ["cka", "cca", "procrustes", "shape", "lr_r2", "svcca"])
def test_huge_exactly_constant_features_take_no_raw_product_path(name, value):
    """Found by tests/test_fuzz.py: an exactly constant feature of magnitude 1e154 let the
    raw-product shortcut run, whose squares overflow (shape returned NaN). Huge constants
    must be refused (all constant) or ignored (mixed) like any other."""
    import warnings

    fn = getattr(nc, name)
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(40, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match=r"(?i)undefined"):
            fn(np.full((40, 1), value), Y)
        warnings.simplefilter("ignore", nc.errors.ConstantFeatureWarning)
        X = np.hstack([np.full((40, 1), value), rng.normal(size=(40, 2))])
        opts = {"dims": 2} if name == "svcca" else {}
        assert float(fn(X, Y, **opts)) == pytest.approx(float(fn(X[:, 1:], Y, **opts)), rel=1e-9)


def test_nan_among_large_values_is_named_without_a_stray_warning():
    """A NaN makes the column sums non-finite just as an overflow would; the rescaling
    meant for overflow must not run on it (it warned 'overflow encountered in multiply'
    before the one-line error)."""
    X = np.random.default_rng(0).standard_normal((100, 5)) + 1e6
    X[1, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"batch 'a' contains non-finite values .* \(1, 2\)"):
            nc.JointMoments().update({"a": X})
        with pytest.raises(ValueError, match=r"X contains non-finite values .* \(1, 2\)"):
            nc.cca(X, X + 1.0)


@pytest.mark.parametrize("scale", [1e307, 1e-300])
def test_extreme_finite_scales_give_the_value_without_a_warning(scale):
    """Sums that overflow (1e307) are only a signal to rescale; numpy's overflow warning
    from the finiteness check or the first pass must not reach the user."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100, 5))
    Y = X @ rng.standard_normal((5, 4)) + rng.standard_normal((100, 4))
    want = {m: float(getattr(nc, m)(X, Y)) for m in ("cka", "cca", "cka_debiased")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for m, v in want.items():
            assert float(getattr(nc, m)(X * scale, Y * scale)) == pytest.approx(v, rel=1e-12)
