"""MNIST-1D generated offline with the ``mnist1d`` package."""

from __future__ import annotations

import functools
import random

import numpy as np

from nncompare.workbench.data._common import check_split, to_output
from nncompare.workbench.data._dataset import Dataset

__all__ = ["load_mnist1d"]


@functools.lru_cache(maxsize=4)
def _generate(seed: int) -> dict[str, np.ndarray]:
    """Run ``mnist1d.data.make_dataset`` (about 2-3 s) and keep the result in memory."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_mnist1d needs the `mnist1d` package, which is not installed. Install it "
            "with `pip install nncompare[data]` (or `pip install mnist1d`)."
        ) from None
    args = get_dataset_args()
    args.seed = seed
    # make_dataset reseeds numpy's and Python's global generators; put them back.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    out = {
        "x_train": np.asarray(raw["x"], dtype=np.float32)[:, None, :],
        "y_train": np.asarray(raw["y"], dtype=np.int64),
        "x_test": np.asarray(raw["x_test"], dtype=np.float32)[:, None, :],
        "y_test": np.asarray(raw["y_test"], dtype=np.int64),
        "t": np.asarray(raw["t"], dtype=np.float64),
    }
    for array in out.values():
        array.setflags(write=False)
    return out


def load_mnist1d(split: str = "train", seed: int = 42, as_tensor: bool = True) -> Dataset:
    """Generate MNIST-1D (Greydanus 2020) offline: 40-sample signals of 10 classes.

    Calls ``mnist1d.data.make_dataset`` with the package's default arguments
    (5000 samples, 80% train) and the given seed; nothing is downloaded and nothing
    is written to disk. With the default ``seed=42`` the result equals the official
    frozen ``mnist1d_data.pkl`` (to about 1e-15). Generation takes a few seconds; the
    arrays are kept in memory for the session, so later calls are instant.
    Numpy's and Python's global random states are restored afterwards.

    Parameters
    ----------
    split : {"train", "test", "all"}, default "train"
        "train" is the first 4000 samples, "test" the last 1000, "all" both
        (train first).
    seed : int, default 42
        Seed passed to ``make_dataset``.
    as_tensor : bool, default True
        Return torch tensors; ``False`` returns numpy arrays.

    Returns
    -------
    Dataset
        ``x`` float32 of shape ``(N, 1, 40)`` (channel axis for 1-D conv nets; use
        ``x[:, 0]`` or :class:`nncompare.models.MLP` for flat vectors), ``y`` int64
        ``(N,)``, ``num_classes=10``; ``info["t"]`` holds the 40 sample positions.

    References
    ----------
    S. Greydanus, D. Kobak. "Scaling down deep learning with MNIST-1D", ICML 2024
    (arXiv:2011.14439).
    """
    check_split(split, "load_mnist1d")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {seed!r}; e.g. seed=42.")
    data = _generate(int(seed))
    if split == "all":
        x = np.concatenate([data["x_train"], data["x_test"]])
        y = np.concatenate([data["y_train"], data["y_test"]])
    else:
        x, y = data[f"x_{split}"].copy(), data[f"y_{split}"].copy()
    return Dataset(
        x=to_output(x, as_tensor),
        y=to_output(y, as_tensor),
        name="mnist1d",
        split=split,
        num_classes=10,
        info={"seed": int(seed), "t": data["t"].copy()},
    )
