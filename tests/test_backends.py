"""numpy and torch backends give the same numbers; torch results keep autograd.

Backend-parametrized in the style of POT's tests: every activation measure is run on
numpy arrays and on torch tensors (CPU, and CUDA when available); numpy in gives numpy
out, torch in gives a torch tensor on the input's device, with equal values.

Gradients are checked with ``torch.autograd.gradcheck`` for every measure that is
differentiable almost everywhere. Not checked: ``mutual_knn`` and ``rsa`` with Spearman
comparison (the default) — both are piecewise constant in the inputs (neighbour sets,
ranks), computed outside autograd, so their gradient is zero where it exists.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import nncompare as nc
import oracles

torch = pytest.importorskip("torch")

ACTIVATION = nc.measures.available("activations")
NAMES = sorted(ACTIVATION)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
BACKEND_DEVICES = [
    pytest.param("numpy", "cpu", id="numpy"),
    pytest.param("torch", "cpu", id="torch-cpu"),
    pytest.param("torch", "cuda", id="torch-cuda", marks=CUDA),
]


def make_pair(seed: int, n: int = 80, d1: int = 6, d2: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d1)) * rng.uniform(0.5, 2.0, size=d1) + 1.0
    Y = X @ rng.normal(size=(d1, d2)) / math.sqrt(d1) + 0.7 * rng.normal(size=(n, d2))
    return X, Y


def to_backend(a: np.ndarray, backend: str, device: str = "cpu"):
    if backend == "numpy":
        return a
    return torch.from_numpy(a).to(device)


def reference(name: str, X: np.ndarray, Y: np.ndarray, **options) -> float:
    return float(nc.measures.compute(X, Y, name, **options))


def assert_backend(value, backend: str, device: str = "cpu") -> None:
    if backend == "numpy":
        assert not isinstance(value, torch.Tensor)
        assert isinstance(value, np.floating | np.ndarray), type(value)
        assert np.ndim(value) == 0
        assert np.asarray(value).dtype == np.float64
    else:
        assert isinstance(value, torch.Tensor), type(value)
        assert value.ndim == 0
        assert value.device.type == torch.device(device).type
        assert value.dtype == torch.float64


# ---------------------------------------------------------------------- values
@pytest.mark.parametrize(("backend", "device"), BACKEND_DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_backend_type_and_value(name, backend, device):
    """Each backend against an independent oracle written from the paper (tests/oracles.py),
    not against nncompare's own numpy path."""
    X, Y = make_pair(0)
    r = nc.measures.compute(to_backend(X, backend, device), to_backend(Y, backend, device), name)
    assert_backend(r.value, backend, device)
    assert float(r) == pytest.approx(oracles.oracle(name, X, Y), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_float32_torch_inputs_computed_in_float64(name, device):
    """precision="float64" is the exact path for float32 tensors; the default ("auto": float32
    products, tests/test_precision.py) agrees to about 1e-6."""
    X, Y = make_pair(1)
    X32 = torch.from_numpy(X).float().to(device)
    Y32 = torch.from_numpy(Y).float().to(device)
    fn = nc.measures.get(name).function
    takes = "precision" in inspect.signature(fn).parameters
    r = nc.measures.compute(X32, Y32, name, **({"precision": "float64"} if takes else {}))
    assert_backend(r.value, "torch", device)
    # the same float32 data computed in float64 by numpy
    exact = reference(name, X32.cpu().double().numpy(), Y32.cpu().double().numpy())
    assert float(r) == pytest.approx(exact, rel=1e-10, abs=1e-12)
    auto = nc.measures.compute(X32, Y32, name)
    assert_backend(auto.value, "torch", device)
    assert float(auto) == pytest.approx(exact, rel=1e-5, abs=1e-6)
    # and close to the float64 original
    tol = 0.02 if name == "mutual_knn" else 1e-6  # neighbour sets may flip on rounding
    assert float(r) == pytest.approx(reference(name, X, Y), rel=tol, abs=tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_mixed_numpy_torch_inputs(name, device):
    X, Y = make_pair(2)
    want = reference(name, X, Y)
    for a, b in (
        (X, torch.from_numpy(Y).to(device)),
        (torch.from_numpy(X).to(device), Y),
    ):
        r = nc.measures.compute(a, b, name)
        assert_backend(r.value, "torch", device)
        assert float(r) == pytest.approx(want, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["bures_wasserstein", "covariance_cosine"])
def test_covariance_backends(name, device):
    rng = np.random.default_rng(3)
    A = rng.normal(size=(5, 5))
    B = rng.normal(size=(5, 5))
    C1, C2 = A @ A.T, B @ B.T + np.eye(5)
    want = float(getattr(nc, name)(C1, C2))
    r = getattr(nc, name)(torch.from_numpy(C1).to(device), torch.from_numpy(C2).to(device))
    assert_backend(r.value, "torch", device)
    assert float(r) == pytest.approx(want, rel=1e-10)
    assert_backend(getattr(nc, name)(C1, C2).value, "numpy")


@pytest.mark.parametrize("device", DEVICES)
def test_torch_details_stay_torch(device):
    X, Y = make_pair(4)
    Xt, Yt = torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device)
    r = nc.cca(Xt, Yt)
    rn = nc.cca(X, Y)
    for attr in ("rho", "directions_x", "directions_y"):
        v = getattr(r, attr)
        assert isinstance(v, torch.Tensor) and v.device.type == torch.device(device).type
    np.testing.assert_allclose(r.rho.cpu().numpy(), rn.rho, rtol=1e-10)
    lr = nc.lr_r2(Xt, Yt)
    np.testing.assert_allclose(lr.coef.cpu().numpy(), nc.lr_r2(X, Y).coef, rtol=1e-9)
    p = nc.procrustes(Xt, Yt)
    np.testing.assert_allclose(p.rotation.cpu().numpy(), nc.procrustes(X, Y).rotation, 1e-8, 1e-10)
    w = nc.pwcca(Xt, Yt).weights
    np.testing.assert_allclose(w.cpu().numpy(), nc.pwcca(X, Y).weights, rtol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_streaming_moments_on_device(device):
    X, Y = make_pair(5, n=120)
    m = nc.Moments()
    for lo in range(0, 120, 25):
        m.update(torch.from_numpy(X[lo : lo + 25]).to(device), torch.from_numpy(Y[lo : lo + 25]))
    assert m.cxx.device.type == torch.device(device).type
    for name, info in ACTIVATION.items():
        if info.streaming:
            r = getattr(nc, name)(m)
            assert_backend(r.value, "torch", device)
            assert float(r) == pytest.approx(reference(name, X, Y), rel=1e-10)


# ---------------------------------------------------------------------- gradients
GRAD_CASES = [
    ("cca", {}),
    ("cca_r2", {}),
    ("svcca", {}),
    ("svcca", {"dims": 2}),
    ("pwcca", {}),
    ("cka", {}),
    ("cka_debiased", {}),
    ("cka_rbf", {}),
    ("cka_rbf", {"debiased": True, "threshold": 0.5}),
    ("lr_r2", {}),
    ("procrustes", {}),
    ("shape", {}),
    ("shape", {"alpha": 0.5}),
    ("shape", {"alpha": 0.0}),
    ("rsa", {"compare": "pearson"}),
]
GRAD_IDS = [f"{n}-{o}" if o else n for n, o in GRAD_CASES]


def test_grad_cases_cover_the_differentiable_measures():
    covered = {n for n, _ in GRAD_CASES}
    # piecewise-constant measures are deliberately absent (see the module docstring)
    assert covered | {"mutual_knn"} == set(NAMES)


@pytest.mark.parametrize(("name", "options"), GRAD_CASES, ids=GRAD_IDS)
def test_gradients_finite_and_consistent_with_invariances(name, options):
    X, Y = make_pair(6, n=100, d1=5, d2=4)
    Xt = torch.from_numpy(X).requires_grad_(True)
    Yt = torch.from_numpy(Y).requires_grad_(True)
    r = getattr(nc, name)(Xt, Yt, **options)
    assert r.value.requires_grad
    r.value.backward()
    for g in (Xt.grad, Yt.grad):
        assert g is not None and g.shape in (X.shape, Y.shape)
        assert torch.isfinite(g).all()
        assert g.abs().max() > 0
    invariances = ACTIVATION[name].invariances
    if name == "rsa":
        invariances = frozenset({"isotropic_scaling"})
    for T, g in ((Xt, Xt.grad), (Yt, Yt.grad)):
        scale = g.abs().max().item()
        if "translation" in invariances:
            # the value does not change along X + t 1 c^T: the gradient sums to 0 per column
            assert g.sum(0).abs().max().item() <= 1e-9 * scale * T.shape[0]
        if "isotropic_scaling" in invariances:
            # Euler: d/dc f(cX) = <grad, X> = 0
            assert abs((g * T.detach()).sum().item()) <= 1e-9 * scale * T.numel()


@pytest.mark.parametrize(("name", "options"), GRAD_CASES, ids=GRAD_IDS)
def test_gradcheck(name, options):
    X, Y = make_pair(7, n=30, d1=4, d2=3)
    Xt = torch.from_numpy(X).requires_grad_(True)
    Yt = torch.from_numpy(Y).requires_grad_(True)

    def f(a, b):
        return getattr(nc, name)(a, b, **options).value

    # fast mode (random projections v^T J u) keeps this quick; a wrong gradient still fails
    assert torch.autograd.gradcheck(f, (Xt, Yt), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_on_device(device):
    X, Y = make_pair(8, n=60, d1=4, d2=3)
    for name, options in GRAD_CASES:
        Xt = torch.from_numpy(X).to(device).requires_grad_(True)
        v = getattr(nc, name)(Xt, torch.from_numpy(Y).to(device), **options).value
        (g,) = torch.autograd.grad(v, Xt)
        assert g.device.type == torch.device(device).type
        assert torch.isfinite(g).all()


def test_gradient_through_streaming_moments():
    """Moments built from torch batches keep the graph: the streamed value is differentiable."""
    X, Y = make_pair(9, n=60, d1=4, d2=3)
    Xt = torch.from_numpy(X).requires_grad_(True)
    m = nc.Moments()
    for lo in range(0, 60, 20):
        m.update(Xt[lo : lo + 20], torch.from_numpy(Y[lo : lo + 20]))
    (g_stream,) = torch.autograd.grad(nc.cca(m).value, Xt)
    Xt2 = torch.from_numpy(X).requires_grad_(True)
    (g_mem,) = torch.autograd.grad(nc.cca(Xt2, torch.from_numpy(Y)).value, Xt2)
    torch.testing.assert_close(g_stream, g_mem, rtol=1e-8, atol=1e-10)
