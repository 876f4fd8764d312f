"""Captured activations in memory and on disk (atomic, memory-mapped, pickle-free).

On-disk format (``format_version`` 1): one directory per capture holding

* ``manifest.json`` -- format name and version, nncompare/torch/numpy versions,
  creation time, model class and parameter fingerprint, ``n_samples``, capture
  options, and per recorded layer its name, file, shape and dtype;
* ``layer_000.npy``, ``layer_001.npy``, ... -- one standard ``.npy`` file per layer,
  shape ``(n_samples, ...)``, readable with ``np.load(path, mmap_mode="r")``.

The directory is built under a temporary name (``.<name>.<random>.partial``) next to
its final path and renamed into place with :func:`os.replace` only when every file
is complete and flushed, so an interrupted capture never leaves a loadable cache.
The ``.npy`` files are streamed: a header of fixed size is reserved, rows are
appended batch by batch, and the header is rewritten with the final row count.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nncompare._version import __version__
from nncompare.capture._errors import InvalidCacheError, LayerNotFoundError, StaleCacheError

__all__ = ["CapturedActivations", "load_cache", "model_fingerprint"]

FORMAT_NAME = "nncompare.activations"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARTIAL_SUFFIX = ".partial"


# --------------------------------------------------------------------------- in memory


class CapturedActivations(Mapping[str, np.ndarray]):
    """Activations of several layers for the same ``n_samples`` inputs.

    A read-only mapping from layer name to a numpy array of shape
    ``(n_samples, ...)`` (conv layers in torch's ``(n, c, h, w)`` layout; see
    :func:`~nncompare.capture.to_channels_last`). Arrays are in memory after a
    capture without cache, or memory-mapped read-only from disk when loaded from
    a cache.

    Parameters
    ----------
    arrays : mapping of str to numpy.ndarray
        Per-layer arrays, all with the same first dimension.
    path : path-like or None
        Cache directory the arrays come from, if any.
    manifest : dict or None
        The cache manifest, if any.

    Attributes
    ----------
    names : list of str
        Layer names (keys) in capture order; a reused module's later calls appear
        as ``name#1``, ``name#2``, ...
    shapes : dict of str to tuple of int
        Full array shape per layer, including the sample dimension.
    n_samples : int
        Number of samples (rows) in every array.
    path : pathlib.Path or None
    manifest : dict or None
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        *,
        path: str | os.PathLike[str] | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self._arrays = dict(arrays)
        if not self._arrays:
            raise ValueError("Expected activations for at least one layer, got none.")
        counts = {}
        for name, arr in self._arrays.items():
            if not isinstance(arr, np.ndarray) or arr.ndim < 1:
                raise ValueError(
                    f"Expected layer {name!r} to be a numpy array of shape (n_samples, ...), "
                    f"got {type(arr).__name__} {getattr(arr, 'shape', '')}."
                )
            counts[name] = arr.shape[0]
        if len(set(counts.values())) > 1:
            raise ValueError(
                f"Expected every layer to have the same number of samples, got {counts}."
            )
        self.path = Path(path) if path is not None else None
        self.manifest = manifest

    @property
    def names(self) -> list[str]:
        return list(self._arrays)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(arr.shape) for name, arr in self._arrays.items()}

    @property
    def n_samples(self) -> int:
        return next(iter(self._arrays.values())).shape[0]

    @property
    def nbytes(self) -> int:
        """Total size of the arrays in bytes."""
        return sum(arr.nbytes for arr in self._arrays.values())

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise LayerNotFoundError.for_name(
                name,
                self._arrays,
                owner="these captured activations",
                how_to_list="The captured layers are listed by `.names`.",
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._arrays

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        layers = ", ".join(f"{k!r}: {v.shape[1:]}" for k, v in self._arrays.items())
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"CapturedActivations(n_samples={self.n_samples}, layers={{{layers}}}{where})"


# --------------------------------------------------------------------------- fingerprint


def model_fingerprint(model: nn.Module) -> str:
    """Content hash of a model's class, parameters and persistent buffers.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    str
        ``"sha256:<hex>"`` over the class name and every ``state_dict`` entry (key,
        dtype, shape and raw bytes). Two models with equal weights get the same
        fingerprint wherever they live (CPU/GPU); any change of a weight changes it.
    """
    h = hashlib.sha256()
    h.update(type(model).__qualname__.encode())
    for key, value in model.state_dict().items():
        h.update(b"\0key\0" + key.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach()
            if t.is_quantized:
                t = t.int_repr()
            t = t.cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy())
        else:  # extra state
            h.update(repr(value).encode())
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- npy streaming

_NPY_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0: 2-byte header length
_NPY_PREFIX = len(_NPY_MAGIC) + 2
_NPY_ALIGN = 64


def _npy_dict(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    descr = np.lib.format.dtype_to_descr(dtype)
    shape = tuple(int(d) for d in shape)
    return f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}".encode("latin1")


def _npy_header_size(dtype: np.dtype, tail: tuple[int, ...]) -> int:
    longest = _npy_dict(dtype, (2**63 - 1, *tail))  # widest possible row count
    raw = _NPY_PREFIX + len(longest) + 1  # + newline
    return -(-raw // _NPY_ALIGN) * _NPY_ALIGN


def _npy_header(dtype: np.dtype, shape: tuple[int, ...], size: int) -> bytes:
    text = _npy_dict(dtype, shape)
    pad = size - _NPY_PREFIX - len(text) - 1
    if pad < 0 or size - _NPY_PREFIX > 0xFFFF:  # pragma: no cover - guarded by _npy_header_size
        raise AssertionError("npy header does not fit its reserved space")
    return _NPY_MAGIC + struct.pack("<H", size - _NPY_PREFIX) + text + b" " * pad + b"\n"


class _NpyAppender:
    """Write a C-ordered ``.npy`` file of unknown length, row block by row block."""

    def __init__(self, path: Path, dtype: np.dtype, tail: tuple[int, ...]) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.tail = tuple(int(d) for d in tail)
        self.n = 0
        self._header_size = _npy_header_size(self.dtype, self.tail)
        self._file = open(path, "wb")
        self._file.write(b"\0" * self._header_size)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        self._file.write(rows.reshape(-1).view(np.uint8))
        self.n += rows.shape[0]

    def finish(self) -> None:
        self._file.flush()
        self._file.seek(0)
        self._file.write(_npy_header(self.dtype, (self.n, *self.tail), self._header_size))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def close(self) -> None:
        self._file.close()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class _CacheWriter:
    """Build a cache directory under a temporary name; publish it atomically."""

    def __init__(self, final: Path, *, overwrite: bool = False) -> None:
        self.final = Path(final)
        self.overwrite = overwrite
        parent = self.final.parent
        parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(
            tempfile.mkdtemp(prefix=f".{self.final.name}.", suffix=PARTIAL_SUFFIX, dir=parent)
        )
        self._files: dict[str, _NpyAppender] = {}
        self._layer_files: dict[str, str] = {}

    def append(self, batch: Mapping[str, np.ndarray]) -> None:
        if not self._files:
            for i, (name, rows) in enumerate(batch.items()):
                fname = f"layer_{i:03d}.npy"
                self._layer_files[name] = fname
                self._files[name] = _NpyAppender(self.tmp / fname, rows.dtype, rows.shape[1:])
        for name, rows in batch.items():
            self._files[name].append(rows)

    def commit(self, manifest: dict[str, Any]) -> Path:
        layers = []
        for name, writer in self._files.items():
            writer.finish()
            layers.append(
                {
                    "name": name,
                    "file": self._layer_files[name],
                    "shape": [writer.n, *writer.tail],
                    "dtype": np.lib.format.dtype_to_descr(writer.dtype),
                }
            )
        manifest = {**manifest, "layers": layers, "complete": True}
        manifest_path = self.tmp / MANIFEST
        with open(manifest_path, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(self.tmp)

        aside = None
        if self.final.exists() and self.overwrite:
            aside = Path(
                tempfile.mkdtemp(
                    prefix=f".{self.final.name}.", suffix=".old", dir=self.final.parent
                )
            )
            os.replace(self.final, aside / "old")
        try:
            os.replace(self.tmp, self.final)
        except OSError as err:
            if aside is not None:  # put the previous cache back
                try:
                    os.replace(aside / "old", self.final)
                except OSError:  # pragma: no cover
                    pass
            raise FileExistsError(
                f"Could not publish the activation cache at {str(self.final)!r}: {err}. "
                "Another process may have written it meanwhile; load it with load_cache() "
                "or pick another cache_dir."
            ) from err
        finally:
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)
        _fsync_dir(self.final.parent)
        return self.final

    def abort(self) -> None:
        for writer in self._files.values():
            writer.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------- loading


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(
            f"No activation cache at {str(path)!r}. (An interrupted capture never leaves a "
            "cache at its final path; run the capture again.)"
        )
    if not path.is_dir():
        raise InvalidCacheError(
            f"Expected an activation cache directory at {str(path)!r}, got a file. "
            "Pass the directory given as cache_dir= to capture()."
        )
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise InvalidCacheError(
            f"{str(path)!r} has no {MANIFEST}, so it is not a complete nncompare activation "
            "cache (it may be unrelated, or a partial write). Delete it or choose another "
            "cache_dir."
        )
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidCacheError(
            f"Could not read {str(manifest_path)!r}: {err}. The cache is damaged; delete "
            "it and capture again."
        ) from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise InvalidCacheError(
            f"{str(manifest_path)!r} is not an nncompare activation manifest (expected "
            f"format {FORMAT_NAME!r}). Delete it or choose another cache_dir."
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InvalidCacheError(
            f"The cache at {str(path)!r} has format version {version!r}; this nncompare "
            f"({__version__}) reads up to version {FORMAT_VERSION}. Upgrade nncompare or "
            "capture again."
        )
    if manifest.get("complete") is not True or not isinstance(manifest.get("layers"), list):
        raise InvalidCacheError(
            f"The cache at {str(path)!r} is incomplete. Delete it and capture again."
        )
    return manifest


def load_cache(
    path: str | os.PathLike[str],
    *,
    model: nn.Module | None = None,
    mmap: bool = True,
) -> CapturedActivations:
    """Load activations written by ``capture(..., cache_dir=path)``.

    Parameters
    ----------
    path : path-like
        The cache directory.
    model : torch.nn.Module or None, default None
        If given, check that the cache was made from a model with the same
        parameters (see :func:`model_fingerprint`).
    mmap : bool, default True
        Memory-map the arrays read-only (nothing is read until used). With False
        they are read into memory.

    Returns
    -------
    CapturedActivations
        With ``.path`` and ``.manifest`` set. Arrays are loaded without pickle.

    Raises
    ------
    FileNotFoundError
        If there is nothing at ``path`` (e.g. the capture was interrupted).
    InvalidCacheError
        If ``path`` is not a complete, consistent cache (missing manifest, missing or
        truncated layer file, unknown format version).
    StaleCacheError
        If ``model`` is given and its fingerprint differs from the cache's.
    """
    path = Path(path)
    manifest = _read_manifest(path)
    arrays: dict[str, np.ndarray] = {}
    for entry in manifest["layers"]:
        try:
            name, fname = entry["name"], entry["file"]
            shape, descr = tuple(entry["shape"]), entry["dtype"]
        except (KeyError, TypeError) as err:
            raise InvalidCacheError(
                f"The manifest of {str(path)!r} has a malformed layer entry {entry!r}."
            ) from err
        fpath = path / fname
        if Path(fname).name != fname or not fpath.is_file():
            raise InvalidCacheError(
                f"The cache at {str(path)!r} lacks the file {fname!r} for layer {name!r}. "
                "Delete the cache and capture again."
            )
        try:
            arr = np.load(fpath, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InvalidCacheError(
                f"Could not read {str(fpath)!r} (layer {name!r}): {err}. The file is damaged "
                "or truncated; delete the cache and capture again."
            ) from err
        if arr.shape != shape or np.lib.format.dtype_to_descr(arr.dtype) != descr:
            raise InvalidCacheError(
                f"Layer {name!r} in {str(path)!r} has shape {arr.shape} and dtype "
                f"{arr.dtype}, but the manifest says {shape} and {descr!r}. Delete the cache "
                "and capture again."
            )
        arrays[name] = arr
    if model is not None:
        expected = model_fingerprint(model)
        found = manifest.get("model", {}).get("fingerprint")
        if found != expected:
            raise StaleCacheError(
                f"The cache at {str(path)!r} was made from a model with fingerprint "
                f"{found}, but the given model has {expected}: the weights differ. Capture "
                "again (capture(..., cache_dir=..., overwrite=True))."
            )
    return CapturedActivations(arrays, path=path, manifest=manifest)


def new_manifest(model: nn.Module, fingerprint: str, **fields: Any) -> dict[str, Any]:
    """Common manifest fields; ``layers`` and ``complete`` are added on commit."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "nncompare_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": {"class": type(model).__qualname__, "fingerprint": fingerprint},
        **fields,
    }
