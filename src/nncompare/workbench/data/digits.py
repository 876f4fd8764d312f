"""The 8×8 handwritten digits shipped inside scikit-learn (no download)."""

from __future__ import annotations

import numpy as np

from nncompare.workbench.data._common import check_split, to_output
from nncompare.workbench.data._dataset import Dataset

__all__ = ["load_digits", "stratified_split"]


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into train and test, keeping class proportions.

    Each class ``c`` with ``n_c`` samples contributes ``round(test_fraction * n_c)``
    randomly chosen samples (at least one, and at least one left for training) to
    the test part. Depends only on numpy's ``default_rng(seed)``, so the split is the
    same on every platform and library version.

    Parameters
    ----------
    labels : numpy.ndarray, shape (N,)
        Class label of each sample.
    test_fraction : float
        Fraction of each class to put in the test part, in (0, 1).
    seed : int
        Seed of the permutation.

    Returns
    -------
    train_idx, test_idx : numpy.ndarray of int64
        Sorted, disjoint indices whose union is ``arange(N)``.
    """
    if not isinstance(test_fraction, int | float) or not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(
            f"test_fraction must be a number strictly between 0 and 1, got {test_fraction!r}; "
            "e.g. test_fraction=0.25 keeps a quarter of each class for testing."
        )
    rng = np.random.default_rng(seed)
    test_parts = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < 2:
            raise ValueError(
                f"class {cls!r} has {len(members)} sample(s); a stratified split needs at "
                "least 2 per class. Use split='all' or drop that class."
            )
        n_test = min(max(1, round(test_fraction * len(members))), len(members) - 1)
        test_parts.append(rng.permutation(members)[:n_test])
    test_idx = np.sort(np.concatenate(test_parts)).astype(np.int64)
    train_mask = np.ones(len(labels), dtype=bool)
    train_mask[test_idx] = False
    return np.flatnonzero(train_mask).astype(np.int64), test_idx


def load_digits(
    split: str = "train",
    test_fraction: float = 0.25,
    seed: int = 0,
    as_tensor: bool = True,
) -> Dataset:
    """Load scikit-learn's 1797 real 8×8 handwritten digits as a small image data set.

    The digits come from the UCI "Optical Recognition of Handwritten Digits" data
    (E. Alpaydin, C. Kaynak, 1998) and ship inside the scikit-learn wheel, so nothing
    is downloaded. Pixel values 0..16 are divided by 16.

    Parameters
    ----------
    split : {"train", "test", "all"}, default "train"
        Which part to return. The split is stratified by class and deterministic
        (see :func:`stratified_split`); "train" and "test" are disjoint and together
        make up "all".
    test_fraction : float, default 0.25
        Fraction of each class in the test part (0.25 gives 1347 train / 450 test).
    seed : int, default 0
        Seed of the split. The order within a split is the original order.
    as_tensor : bool, default True
        Return torch tensors; ``False`` returns numpy arrays.

    Returns
    -------
    Dataset
        ``x`` float32 of shape ``(N, 1, 8, 8)`` in [0, 1], ``y`` int64 of shape
        ``(N,)`` with labels 0..9, ``num_classes=10``; ``info["indices"]`` holds the
        positions of the samples in scikit-learn's order.

    Examples
    --------
    >>> train = load_digits("train", as_tensor=False)
    >>> train.x.shape, train.y.dtype
    ((1347, 1, 8, 8), dtype('int64'))
    """
    check_split(split, "load_digits")
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_digits needs scikit-learn, which is not installed. Install it with "
            "`pip install nncompare[data]` (or `pip install scikit-learn`)."
        ) from None
    raw = _sk_load_digits()
    images = (np.asarray(raw.images, dtype=np.float32) / np.float32(16.0))[:, None, :, :]
    labels = np.asarray(raw.target, dtype=np.int64)
    if split == "all":
        idx = np.arange(len(labels), dtype=np.int64)
    else:
        train_idx, test_idx = stratified_split(labels, test_fraction, seed)
        idx = train_idx if split == "train" else test_idx
    return Dataset(
        x=to_output(images[idx], as_tensor),
        y=to_output(labels[idx], as_tensor),
        name="digits",
        split=split,
        num_classes=10,
        info={"seed": seed, "test_fraction": test_fraction, "indices": idx},
    )
