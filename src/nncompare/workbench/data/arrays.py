"""Load user data from ``.npy`` / ``.npz`` files (never unpickles)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nncompare.workbench.data._common import to_output
from nncompare.workbench.data._dataset import Dataset

__all__ = ["load_array_file"]


def load_array_file(
    path: str | os.PathLike[str],
    x_key: str | None = None,
    y_key: str | None = None,
    as_tensor: bool = True,
) -> Dataset:
    """Load inputs (and optional labels) from a ``.npy`` or ``.npz`` file.

    Files are read with ``numpy.load(..., allow_pickle=False)``: object arrays are
    refused, so loading a file never runs code. Arrays keep their dtype (convert and
    normalise them yourself, e.g. uint8 images to float).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npy`` file (one array: the inputs; no labels) or a ``.npz`` archive.
    x_key : str, optional
        Name of the inputs in an ``.npz``. Default: ``"x"`` if present, else the only
        array in the archive.
    y_key : str, optional
        Name of the labels in an ``.npz``. Default: ``"y"`` if present, else no labels.
        Labels must be one-dimensional with one entry per input; integer labels are
        converted to int64.
    as_tensor : bool, default True
        Return torch tensors; ``False`` returns numpy arrays.

    Returns
    -------
    Dataset
        ``name`` is the file name without suffix, ``split="file"``, ``num_classes``
        is ``max(y) + 1`` for non-negative integer labels (else ``None``), and
        ``info`` holds ``path``, ``x_key`` and ``y_key``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "acts.npz")
    >>> np.savez(f, x=np.zeros((4, 3), np.float32), y=np.array([0, 1, 1, 0]))
    >>> load_array_file(f, as_tensor=False).num_classes
    2
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"load_array_file: {str(path)!r} does not exist or is not a file; pass the path "
            "of a .npy or .npz file (write one with numpy.save / numpy.savez)."
        )
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(
            f"load_array_file reads .npy and .npz files, got {path.name!r} (suffix "
            f"{suffix or 'none'!r}). Save your arrays with numpy.save / numpy.savez first."
        )

    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise ValueError(
                f"{path.name}: contains pickled Python objects (an object array), which "
                "nncompare refuses to load because unpickling can run arbitrary code. "
                "Expected numeric arrays; convert e.g. with numpy.asarray(a, dtype=float) "
                "and save again."
            ) from exc
        raise ValueError(f"{path.name}: not a readable .npy/.npz file ({exc}).") from exc

    if isinstance(loaded, np.ndarray):
        if x_key is not None or y_key is not None:
            raise ValueError(
                f"{path.name} is a .npy file holding a single array, but x_key={x_key!r} / "
                f"y_key={y_key!r} were given. Drop the keys, or store inputs and labels "
                "together with numpy.savez(path, x=..., y=...)."
            )
        x, y = loaded, None
        used_x, used_y = None, None
    else:
        with loaded:
            try:
                keys = list(loaded.files)
                used_x = _pick_x_key(keys, x_key, path.name)
                used_y = _pick_y_key(keys, y_key, used_x, path.name)
                x = loaded[used_x]
                y = loaded[used_y] if used_y is not None else None
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise ValueError(
                        f"{path.name}: an array in the archive holds pickled Python objects, "
                        "which nncompare refuses to load because unpickling can run "
                        "arbitrary code. Store numeric arrays instead."
                    ) from exc
                raise

    if x.ndim == 0:
        raise ValueError(
            f"{path.name}: the inputs are a 0-d scalar, expected an array with a sample "
            "axis first, shape (N, ...)."
        )
    num_classes = None
    if y is not None:
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(
                f"{path.name}: labels {used_y!r} have shape {y.shape}, expected ({len(x)},) "
                f"(one label per input of {used_x!r}, shape {x.shape}). Pick the right "
                "arrays with x_key= / y_key=."
            )
        if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
            y = y.astype(np.int64)
            if len(y) and y.min() >= 0:
                num_classes = int(y.max()) + 1
    return Dataset(
        x=to_output(x, as_tensor),
        y=to_output(y, as_tensor),
        name=path.stem,
        split="file",
        num_classes=num_classes,
        info={"path": str(path), "x_key": used_x, "y_key": used_y},
    )


def _pick_x_key(keys: list[str], x_key: str | None, filename: str) -> str:
    if x_key is not None:
        if x_key not in keys:
            raise KeyError(
                f"{filename} has no array {x_key!r}; it holds {keys}. Pass one of these as x_key."
            )
        return x_key
    if "x" in keys:
        return "x"
    if len(keys) == 1:
        return keys[0]
    raise ValueError(
        f"{filename} holds several arrays {keys} and none is called 'x'; say which one "
        "holds the inputs with x_key=... (and the labels with y_key=...)."
    )


def _pick_y_key(keys: list[str], y_key: str | None, x_key: str, filename: str) -> str | None:
    if y_key is not None:
        if y_key not in keys:
            raise KeyError(
                f"{filename} has no array {y_key!r}; it holds {keys}. Pass one of these as "
                "y_key, or leave y_key=None for unlabelled inputs."
            )
        if y_key == x_key:
            raise ValueError(f"x_key and y_key both name {x_key!r}; labels must be another array.")
        return y_key
    return "y" if "y" in keys and x_key != "y" else None
