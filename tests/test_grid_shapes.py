"""nc.pairwise on layer lists of different lengths (regression: the symmetric-mirror lookup
indexed one list with the other's positions and raised IndexError)."""

from __future__ import annotations

import numpy as np
import pytest

import nncompare as nc


@pytest.mark.parametrize(("na", "nb"), [(2, 3), (3, 2), (1, 4)])
def test_pairwise_with_unequal_layer_lists(na: int, nb: int) -> None:
    rng = np.random.default_rng(0)
    A = {f"a{i}": rng.normal(size=(60, 5)) for i in range(na)}
    B = {f"b{j}": rng.normal(size=(60, 4)) for j in range(nb)}
    grid = nc.pairwise(A, B, measures=["cka", "svcca"])
    for m in ("cka", "svcca"):
        assert grid.values[m].shape == (na, nb)
        expected = [[float(getattr(nc, m)(A[a], B[b])) for b in B] for a in A]
        np.testing.assert_allclose(grid.values[m], expected, rtol=1e-10)
