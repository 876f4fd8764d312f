"""Helpers shared by the loaders."""

from __future__ import annotations

from typing import Any

import numpy as np

SPLITS = ("train", "test", "all")


def check_split(split: object, loader: str) -> str:
    if split not in SPLITS:
        raise ValueError(
            f"{loader}: split must be one of {SPLITS}, got {split!r}; e.g. {loader}(split='train')."
        )
    return str(split)


def to_output(array: np.ndarray | None, as_tensor: bool) -> Any:
    """Return ``array`` as a torch tensor (sharing memory) or as the numpy array."""
    if array is None or not as_tensor:
        return array
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "as_tensor=True needs PyTorch, which is not installed. Install it with "
            "`pip install nncompare[torch]`, or pass as_tensor=False to get numpy arrays."
        ) from None
    return torch.from_numpy(np.ascontiguousarray(array))
