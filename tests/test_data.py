"""Tests for nncompare.data: embedded digits, offline MNIST-1D, user array files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from nncompare.workbench.data import (
    Dataset,
    load_array_file,
    load_digits,
    load_mnist1d,
    stratified_split,
)

# ----------------------------------------------------------------------------- digits


def test_digits_shapes_dtypes_and_range():
    train, test = load_digits("train"), load_digits("test")
    assert isinstance(train, Dataset) and train.name == "digits" and train.num_classes == 10
    assert train.x.shape == (1347, 1, 8, 8) and test.x.shape == (450, 1, 8, 8)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert len(train) + len(test) == 1797
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    assert set(train.y.tolist()) == set(range(10))


def test_digits_values_match_scikit_learn():
    from sklearn.datasets import load_digits as sk_load_digits

    raw = sk_load_digits()
    every = load_digits("all", as_tensor=False)
    assert isinstance(every.x, np.ndarray) and every.x.dtype == np.float32
    np.testing.assert_array_equal(every.x[:, 0] * 16, raw.images)
    np.testing.assert_array_equal(every.y, raw.target)


def test_digits_split_is_disjoint_stratified_and_deterministic():
    train = load_digits("train", as_tensor=False)
    test = load_digits("test", as_tensor=False)
    tr_idx, te_idx = train.info["indices"], test.info["indices"]
    assert not set(tr_idx) & set(te_idx)
    assert sorted([*tr_idx, *te_idx]) == list(range(1797))
    # stratified: every class has about a quarter of its samples in the test split
    counts_all = np.bincount(load_digits("all", as_tensor=False).y)
    counts_test = np.bincount(test.y, minlength=10)
    assert np.all(np.abs(counts_test - 0.25 * counts_all) <= 1)
    again = load_digits("test", as_tensor=False)
    np.testing.assert_array_equal(again.x, test.x)
    other = load_digits("test", seed=1, as_tensor=False)
    assert not np.array_equal(other.info["indices"], te_idx)
    smaller = load_digits("test", test_fraction=0.1, as_tensor=False)
    assert 170 <= len(smaller) <= 190


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        load_digits("validation")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        load_digits("train", test_fraction=1.5)


def test_stratified_split_needs_two_per_class():
    with pytest.raises(ValueError, match="at least 2 per class"):
        stratified_split(np.array([0, 0, 1]), 0.5, seed=0)


# ----------------------------------------------------------------------------- MNIST-1D


def test_mnist1d_shapes_dtypes_and_splits():
    # the legacy global generators are exactly what must be left alone
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    train, test = load_mnist1d("train"), load_mnist1d("test")
    # make_dataset reseeds the global generators; the loader must put them back
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    assert random.getstate() == py_state
    assert train.x.shape == (4000, 1, 40) and test.x.shape == (1000, 1, 40)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert set(train.y.tolist()) == set(range(10)) and train.num_classes == 10
    # disjoint: no test signal appears in the training split
    train_rows = {row.tobytes() for row in train.x.numpy()[:, 0]}
    assert not any(row.tobytes() in train_rows for row in test.x.numpy()[:, 0])
    every = load_mnist1d("all", as_tensor=False)
    np.testing.assert_array_equal(every.x[:4000], train.x.numpy())
    np.testing.assert_array_equal(every.y[4000:], test.y.numpy())


def test_mnist1d_is_deterministic_and_returns_copies():
    first = load_mnist1d("test", as_tensor=False)
    first.x[:] = 0.0  # must not poison the in-memory cache
    second = load_mnist1d("test", as_tensor=False)
    assert np.abs(second.x).sum() > 0
    third = load_mnist1d("test", as_tensor=False)
    np.testing.assert_array_equal(second.x, third.x)
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist1d("valid")


@pytest.mark.shared
def test_mnist1d_matches_frozen_official_copy():
    env = os.environ.get("NNCOMPARE_SHARED")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    path = root / "data" / "mnist1d" / "mnist1d.npz"
    if not path.is_file():
        pytest.skip(f"shared data not available: {path}")
    test = load_mnist1d("test", as_tensor=False)
    with np.load(path) as frozen:
        np.testing.assert_allclose(test.x[:, 0], frozen["x_test"], atol=1e-6)
        np.testing.assert_array_equal(test.y, frozen["y_test"])


# ----------------------------------------------------------------------------- array files


def test_load_array_file_npz_and_npy(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    y = np.array([0, 1, 2, 0, 1, 2], dtype=np.int32)
    np.savez(tmp_path / "acts.npz", x=x, y=y)
    ds = load_array_file(tmp_path / "acts.npz")
    assert ds.name == "acts" and ds.split == "file" and ds.num_classes == 3
    assert torch.equal(ds.x, torch.from_numpy(x)) and ds.y.dtype == torch.int64
    np.save(tmp_path / "inputs.npy", x)
    only_x = load_array_file(str(tmp_path / "inputs.npy"), as_tensor=False)
    assert only_x.y is None and isinstance(only_x.x, np.ndarray)
    np.savez(tmp_path / "custom.npz", images=x, labels=y, extra=np.zeros(3))
    custom = load_array_file(tmp_path / "custom.npz", x_key="images", y_key="labels")
    assert custom.info["x_key"] == "images" and len(custom) == 6
    np.savez(tmp_path / "single.npz", feats=x)
    assert load_array_file(tmp_path / "single.npz").y is None


def test_load_array_file_errors(tmp_path):
    x = np.zeros((3, 2))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_array_file(tmp_path / "nope.npz")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"reads \.npy and \.npz"):
        load_array_file(tmp_path / "data.csv")
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(ValueError, match="x_key"):
        load_array_file(tmp_path / "two.npz")
    with pytest.raises(KeyError, match=r"holds \['a', 'b'\]"):
        load_array_file(tmp_path / "two.npz", x_key="images")
    np.savez(tmp_path / "mismatch.npz", x=x, y=np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        load_array_file(tmp_path / "mismatch.npz")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled Python objects"):
        load_array_file(tmp_path / "objects.npy")
    np.savez(tmp_path / "objects.npz", x=x, y=np.array([1, "a", None], dtype=object))
    with pytest.raises(ValueError, match="pickled Python objects"):
        load_array_file(tmp_path / "objects.npz")
    np.save(tmp_path / "single.npy", x)
    with pytest.raises(ValueError, match="single array"):
        load_array_file(tmp_path / "single.npy", y_key="y")
