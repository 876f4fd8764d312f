"""Files: atomic writes and safe state-dict reading, one implementation each.

* :func:`atomic_write` writes through a temporary file in the target folder and
  :func:`os.replace`, so readers see the old file or the complete new one, never a part.
* :func:`read_state_dict` reads a checkpoint without running code
  (``torch.load(weights_only=True)``) and returns a plain ``{name: tensor}`` mapping:
  ``{"state_dict": ...}`` / ``{"model_state_dict": ...}`` wrappers are unwrapped and the
  ``module.`` prefix that ``DataParallel`` leaves is removed. The CLI, the reference models
  and :func:`nncompare.compare_checkpoints` all read checkpoints through it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from nncompare.errors import NNCompareError

__all__ = ["UnsafeCheckpointError", "atomic_write", "read_state_dict", "state_dict_from"]

STATE_KEYS = ("state_dict", "model_state_dict")


class UnsafeCheckpointError(NNCompareError, ValueError):
    """A checkpoint that is not plain tensors: loading it would run its pickled code."""


def atomic_write(
    path: str | os.PathLike[str], data: bytes | str | Callable[[IO[bytes]], Any]
) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, :func:`os.replace`).

    Parameters
    ----------
    path : path-like
        Destination file; its directory must exist.
    data : bytes, str (written as UTF-8), or a callable
        A callable is given the open binary temporary file to write into (e.g.
        ``lambda fh: torch.save(obj, fh)``).

    Returns
    -------
    pathlib.Path
        ``path``. The file is readable by everyone (0644), as an ordinary write would make it.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def state_dict_from(obj: Any, *, source: str = "the checkpoint") -> dict[str, Any]:
    """The plain state dict held by a loaded checkpoint object.

    Accepts a mapping of names to tensors, a ``{"state_dict": …}`` or
    ``{"model_state_dict": …}`` wrapper (extra entries such as ``best_prec1`` or an
    optimizer state are ignored), or a ``torch.nn.Module`` (its ``state_dict()``). A leading
    ``module.`` is removed from every key.

    Raises
    ------
    ValueError
        When ``obj`` holds anything else, naming what it holds.
    """
    import torch

    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in STATE_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"{source} holds a {type(obj).__name__}, expected a state dict (a mapping of "
            "parameter names to tensors) or a dict with a 'state_dict' entry. Save one with "
            "torch.save(model.state_dict(), path)."
        )
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{source} is not a state dict: entry {key!r} is a {type(value).__name__}, "
                "expected string keys and tensor values. Save one with "
                "torch.save(model.state_dict(), path)."
            )
        out[key.removeprefix("module.")] = value
    return out


def read_state_dict(
    path: str | os.PathLike[str], *, allow_pickle: bool = False, what: str = "checkpoint"
) -> dict[str, Any]:
    """Read the state dict in the checkpoint file ``path`` without running code.

    Parameters
    ----------
    path : path-like
        A file written with :func:`torch.save` (``.th``, ``.pt``, ``.pth``).
    allow_pickle : bool, default False
        Load with ``weights_only=False`` — only for files you trust: a pickle runs whatever
        it contains. Needed for whole models (``torch.save(model)``), whose
        ``state_dict()`` is then returned.
    what : str
        How the file is named in error messages (e.g. ``"--weights"``).

    Returns
    -------
    dict of str to torch.Tensor

    Raises
    ------
    FileNotFoundError
        No such file.
    UnsafeCheckpointError
        The file holds more than tensors and ``allow_pickle`` is False.
    ValueError
        The file is not a torch checkpoint, or holds no state dict.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} {str(path)!r} does not exist (or is not a file); pass the path of a file "
            "written with torch.save(model.state_dict(), path)."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found is None:  # not a pickle of Python objects: a damaged or foreign file
            detail = re.search(r"WeightsUnpickler error: \s*(.+)", text)
            raise ValueError(
                f"cannot read {what} {str(path)!r} as a torch checkpoint "
                f"({detail.group(1).strip() if detail else type(exc).__name__}): it is damaged "
                "or not a file written with torch.save."
            ) from exc
        raise UnsafeCheckpointError(
            f"{what} {str(path)!r} is not plain tensors (it refers to {found.group(1)}); "
            "loading it would run the code pickled in it. Save only the weights, "
            "torch.save(model.state_dict(), path), or, if you trust the file, allow pickles "
            "explicitly."
        ) from exc
    except Exception as exc:
        raise ValueError(
            f"cannot read {what} {str(path)!r} as a torch checkpoint: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    return state_dict_from(obj, source=f"{what} {str(path)!r}")
