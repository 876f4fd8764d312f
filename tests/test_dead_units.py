"""Constant features (dead ReLU units) in the CCA family, Procrustes and regression.

Two bugs found by the fuzz test and the careless-user pass:

* pwcca raised numpy's ``LinAlgError`` ("Matrix is not positive definite") on binary
  activations with constant columns: a zero canonical correlation's singular vector lay
  along a dropped (constant) direction, so its variate was zero and the projection
  weights 0/0.
* Under autograd, any constant feature gave NaN gradients: the eigen-decomposition's
  backward is 0/0 at the repeated zero eigenvalues of the constant features, which are
  masked out of every value anyway.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import nncompare as nc
from oracles import pwcca as pwcca_oracle

# the falsifying example of tests/test_fuzz.py (bool dtype): X's first two and Y's last two
# columns are constant, and the third canonical correlation is exactly 0
X_BOOL = np.array(
    [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 1, 1],
     [0, 0, 0, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1]],
    dtype=bool,
)  # fmt: skip
Y_BOOL = np.array(
    [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [1, 1, 0, 0, 0],
     [0, 0, 1, 0, 0], [0, 0, 1, 0, 0], [1, 0, 1, 0, 0], [1, 0, 1, 0, 0], [1, 0, 1, 0, 0]],
    dtype=bool,
)  # fmt: skip


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the constant-feature warnings are tested elsewhere
        yield


@pytest.mark.parametrize("symmetric", [False, True])
def test_pwcca_with_constant_columns_and_a_zero_correlation(symmetric):
    got = nc.pwcca(X_BOOL, Y_BOOL, symmetric=symmetric)
    # the case that failed; ρ from the eigenvalues of M Mᵀ is resolved to ~sqrt(eps) only:
    # exactly 0 with OpenBLAS's SkylakeX kernels, 4.9e-9 with its Haswell ones
    assert float(got.rho[-1]) == pytest.approx(0.0, abs=1e-7)
    # constant features carry no information: the value is the one without them (full
    # rank, the Cholesky path, whose eigh of M Mᵀ resolves ρ only to ~sqrt(eps): its ρ₃ is
    # 3e-9 here) and the oracle's (explicit QR-based definition)
    alone = nc.pwcca(X_BOOL[:, 2:].astype(float), Y_BOOL[:, :3].astype(float), symmetric=symmetric)
    assert float(got) == pytest.approx(float(alone), rel=1e-7)
    if not symmetric:
        oracle = pwcca_oracle(X_BOOL[:, 2:].astype(float), Y_BOOL[:, :3].astype(float))
        # ρ₃ (weight ~1/3) to ~sqrt(eps), see above: 0 or 4.9e-9 depending on the kernels
        assert float(got) == pytest.approx(oracle, rel=1e-8)


def _dead_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 6))
    X[:, :2] = 0.0  # two dead units
    Y = rng.normal(size=(40, 5))
    Y[:, 3:] = 0.0
    return X, Y


@pytest.mark.parametrize(
    "name", ["cca", "cca_r2", "svcca", "pwcca", "lr_r2", "procrustes", "shape", "cka"]
)
def test_gradients_with_dead_units_are_finite_and_match_finite_differences(name):
    fn = getattr(nc, name)
    X, Y = _dead_pair()
    Xt = torch.tensor(X, requires_grad=True)
    fn(Xt, torch.tensor(Y)).value.backward()
    assert torch.isfinite(Xt.grad).all(), f"{name}: NaN gradients with constant features"
    assert torch.all(Xt.grad[:, :2] == 0) or name == "cka"  # dead units get no gradient
    eps = 1e-6
    for i, j in [(3, 4), (10, 2), (25, 5)]:
        Xp, Xm = X.copy(), X.copy()
        Xp[i, j] += eps
        Xm[i, j] -= eps
        fd = (float(fn(Xp, Y).value) - float(fn(Xm, Y).value)) / (2 * eps)
        assert float(Xt.grad[i, j]) == pytest.approx(fd, rel=1e-5, abs=1e-9), (name, i, j)
