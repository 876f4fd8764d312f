"""Captured activations in memory and on disk (atomic, checksummed, memory-mapped, no pickle).

On-disk format (``format_version`` 2): one directory per capture holding

* ``manifest.json`` -- format name and version, nncompare/torch/numpy versions,
  creation time, the model's qualified class name, static fingerprint
  (:func:`model_fingerprint`) and output probe (:func:`probe_summary`),
  ``n_samples``, capture options, the data fingerprint (a hash of every input
  sample), and per recorded layer its name, file, shape, dtype and ``checksum``:
  BLAKE2b-128 digests of consecutive 64 MiB chunks of the array data;
* ``layer_000.npy``, ``layer_001.npy``, ... -- one standard ``.npy`` file per layer,
  shape ``(n_samples, ...)``, readable with ``np.load(path, mmap_mode="r")``.

The directory is built under a temporary name (``.<name>.<random>.partial``) next to
its final path and renamed into place with :func:`os.replace` only when every file
is complete and flushed, so an interrupted capture never leaves a loadable cache.
The ``.npy`` files are streamed: a header of fixed size is reserved, rows are
appended (and checksummed) batch by batch, and the header is rewritten with the
final row count. The build directory records its writer (host, pid, process start
time, boot id); a later capture in the same folder removes build directories whose
writer has died (:func:`remove_stale_partials`).

:func:`load_cache` verifies the checksums by default: a flipped byte anywhere in the
data raises :class:`~nncompare.capture.InvalidCacheError` ("is corrupt") instead of
loading as wrong numbers. :func:`~nncompare.capture.capture` never replaces a
corrupt cache on its own either: it raises the same error, and the cache is rebuilt
only when asked (``overwrite=True``) or after deleting it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nncompare._layout import LayoutArray, layout_of
from nncompare._version import __version__
from nncompare.capture._errors import InvalidCacheError, LayerNotFoundError, StaleCacheError

__all__ = [
    "CapturedActivations",
    "load_cache",
    "model_fingerprint",
    "probe_difference",
    "probe_summary",
    "remove_stale_partials",
]

FORMAT_NAME = "nncompare.activations"
FORMAT_VERSION = 2
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
    layout : {"NCHW", "NHWC"}, default "NCHW"
        Layout of the arrays with spatial axes (torch's channels first after a capture).
        Those arrays are returned as :class:`nncompare.LayoutArray` tagged with it, so the
        measures read them correctly without ``layout=``.

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
        layout: str = "NCHW",
    ) -> None:
        # Convolutional activations keep torch's channels-first layout and say so: the
        # measures read the tag (nncompare.LayoutArray), so nc.cka(acts[a], acts[b],
        # conv="mean") reads them correctly.
        self._arrays = {
            k: LayoutArray(v, layout)
            if isinstance(v, np.ndarray) and v.ndim >= 3 and layout_of(v) is None
            else v
            for k, v in dict(arrays).items()
        }
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


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _hash_tensor(h: Any, t: torch.Tensor) -> None:
    t = t.detach()
    if t.is_quantized:
        t = t.int_repr()
    t = t.cpu().resolve_conj().resolve_neg().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy())


def model_fingerprint(model: nn.Module) -> str:
    """Content hash of a model's structure, configuration, parameters and buffers.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    str
        ``"sha256:<hex>"`` over the model class's qualified name
        (``module.QualName``); for every submodule its name, qualified class name and
        ``extra_repr()`` (the configuration torch shows in ``print(model)``: kernel
        sizes, ``eps``, dropout ``p``, ...); every ``state_dict`` entry (key, dtype,
        shape and raw bytes); and every non-persistent buffer. Two models with equal
        weights and configuration get the same fingerprint wherever they live
        (CPU/GPU); a change of any weight, buffer or ``extra_repr`` changes it.

    Notes
    -----
    Plain Python attributes that a custom ``forward`` reads (``self.scale = 2.0``)
    are not part of this static fingerprint: counters and other bookkeeping
    attributes would make it change on every call. :func:`~nncompare.capture.capture`
    covers them with a *probe*: before reusing a cache it runs the model on the first
    input sample and compares the output with the one recorded in the cache.
    """
    h = hashlib.sha256()
    h.update(_qualified_name(type(model)).encode())
    for name, module in model.named_modules():
        try:
            config = module.extra_repr()
        except Exception as err:  # a broken extra_repr must not stop a capture
            config = f"<extra_repr failed: {type(err).__name__}>"
        h.update(f"\0module\0{name}\0{_qualified_name(type(module))}\0{config}".encode())
    state = model.state_dict()
    for key, value in state.items():
        h.update(b"\0key\0" + key.encode())
        if isinstance(value, torch.Tensor):
            _hash_tensor(h, value)
        else:  # extra state
            h.update(repr(value).encode())
    for key, buf in model.named_buffers():
        if key in state or buf is None:
            continue
        h.update(b"\0buffer\0" + key.encode())
        _hash_tensor(h, buf)
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- probe

PROBE_ROWS = 1  # the first sample: any batching yields the same probe input
_PROBE_MAX_OUTPUTS = 16
_PROBE_SEGMENTS = 4
_PROBE_FIRST = 4
_PROBE_WEIGHT_STEP = 0.7548776662466927  # irrational step: weights that detect permutations


def _tensor_leaves(obj: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif depth < 4 and isinstance(obj, Mapping):
        for value in obj.values():
            yield from _tensor_leaves(value, depth + 1)
    elif depth < 4 and isinstance(obj, list | tuple):
        for value in obj:
            yield from _tensor_leaves(value, depth + 1)


def _leaf_summary(t: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype and a few order-sensitive statistics of one output tensor."""
    t = t.detach()
    shape, dtype = [int(d) for d in t.shape], str(t.dtype)
    if t.is_complex():
        t = torch.view_as_real(t.resolve_conj())
    x = t.to("cpu", torch.float64).reshape(-1)
    finite = torch.isfinite(x)
    nonfinite = int((~finite).sum())
    x = torch.where(finite, x, torch.zeros((), dtype=x.dtype))
    stats: list[float] = []
    n = x.numel()
    if n:
        mean = x.mean()
        weights = torch.cos(torch.arange(n, dtype=torch.float64) * _PROBE_WEIGHT_STEP)
        stats = [
            mean,
            (x - mean).square().mean().sqrt(),
            x.abs().mean(),
            x.min(),
            x.max(),
            (x * weights).mean(),
            *(seg.mean() for seg in torch.tensor_split(x, min(n, _PROBE_SEGMENTS))),
            *x[:_PROBE_FIRST],
        ]
        stats = [float(v) for v in stats]
    return {"shape": shape, "dtype": dtype, "nonfinite": nonfinite, "stats": stats}


def probe_summary(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Summary of ``model``'s output on ``x`` (the first input sample), for the cache.

    The model runs once in eval mode under :func:`torch.no_grad` (every submodule's
    mode is restored afterwards); the summary holds, per output tensor (up to 16,
    found in tuples, lists and dicts), its shape, dtype, the count of non-finite
    values and 15 statistics (mean, spread, extremes, a weighted mean, segment means
    and the first values). :func:`probe_difference` compares two summaries with a
    tolerance for the rounding differences between runs and devices.
    """
    from nncompare.capture._layers import _training_mode

    with _training_mode(model, False), torch.no_grad():
        out = model(x)
    leaves = list(_tensor_leaves(out))[:_PROBE_MAX_OUTPUTS]
    return {"n_inputs": len(x), "outputs": [_leaf_summary(t) for t in leaves]}


def _probe_rtol(dtype: str) -> float:
    try:
        eps = float(torch.finfo(getattr(torch, dtype.removeprefix("torch."))).eps)
    except (AttributeError, TypeError):
        eps = 0.0
    return max(1e-3, 16 * eps)


def probe_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """How two :func:`probe_summary` results differ, or None if they agree.

    Statistics agree when ``|a - b| <= rtol * (|a| + |b| + spread)``, with ``rtol``
    the larger of 1e-3 and 16 machine epsilons of the output dtype, so that runs on
    another device or with other kernels still match while any real change of the
    output (a scale of 1 become 2, a permutation, another shape) does not.
    """
    try:
        if old.get("n_inputs") != new.get("n_inputs"):
            return f"probed on {old.get('n_inputs')} vs {new.get('n_inputs')} inputs"
        outs_old, outs_new = list(old["outputs"]), list(new["outputs"])
        if len(outs_old) != len(outs_new):
            return f"the model returns {len(outs_new)} tensors, the cache saw {len(outs_old)}"
        for i, (a, b) in enumerate(zip(outs_old, outs_new, strict=True)):
            for key in ("shape", "dtype", "nonfinite"):
                if a[key] != b[key]:
                    return f"output {i} {key} is {b[key]}, the cache saw {a[key]}"
            sa, sb = [float(v) for v in a["stats"]], [float(v) for v in b["stats"]]
            if len(sa) != len(sb):
                return f"output {i} summary has another length"
            if not sa:
                continue
            rtol = _probe_rtol(str(a["dtype"]))
            spread = abs(sa[1]) + abs(sb[1])
            for va, vb in zip(sa, sb, strict=True):
                if abs(va - vb) > rtol * (abs(va) + abs(vb) + spread):
                    return (
                        f"output {i} changed (mean {sb[0]:.6g}, the cache saw {sa[0]:.6g}; "
                        f"spread {sb[1]:.6g} vs {sa[1]:.6g})"
                    )
    except (KeyError, TypeError, ValueError) as err:
        return f"the cached probe is malformed ({type(err).__name__}: {err})"
    return None


# --------------------------------------------------------------------------- data fingerprint

_HASH_BLOCK_BYTES = 1 << 25


class _DataHasher:
    """Streaming hash of input batches: dtype, per-sample shape, every byte, sample count.

    Independent of how the samples are cut into batches (as long as dtype and
    per-sample shape stay the same), so the same data hashed in one piece or batch by
    batch gives the same digest.
    """

    def __init__(self) -> None:
        self._h = hashlib.blake2b(digest_size=32)
        self._spec: tuple[str, tuple[int, ...]] | None = None
        self.n = 0

    def update(self, x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach()
            if t.is_quantized:
                t = t.int_repr()
            spec = (str(t.dtype), tuple(int(d) for d in t.shape[1:]))
            t = t.cpu().resolve_conj().resolve_neg().contiguous()
            buf = t.reshape(-1).view(torch.uint8).numpy()
        else:
            a = np.asarray(x)
            spec = (a.dtype.str, tuple(int(d) for d in a.shape[1:]))
            buf = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        if spec != self._spec:
            self._h.update(b"\0spec\0" + repr(spec).encode())
            self._spec = spec
        self._h.update(buf)
        self.n += len(x)

    def hexdigest(self) -> str:
        h = self._h.copy()
        h.update(f"\0n_samples={self.n}".encode())
        return "blake2b:" + h.hexdigest()


def array_fingerprint(x: Any, n: int) -> str:
    """:class:`_DataHasher` digest of the first ``n`` rows of an array or tensor,
    read in blocks of about 32 MiB (no copy of the whole array is made)."""
    hasher = _DataHasher()
    row_bytes = max(1, int(np.prod(x.shape[1:], dtype=np.int64)) * x.dtype.itemsize)
    step = max(1, _HASH_BLOCK_BYTES // row_bytes)
    for start in range(0, n, step):
        hasher.update(x[start : min(start + step, n)])
    return hasher.hexdigest()


# --------------------------------------------------------------------------- npy streaming

_NPY_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0: 2-byte header length
_NPY_PREFIX = len(_NPY_MAGIC) + 2
_NPY_ALIGN = 64

CHECKSUM_ALGORITHM = "blake2b-128"
CHUNK_BYTES = 1 << 26  # 64 MiB of array data per checksum


def _new_chunk_hash() -> Any:
    return hashlib.blake2b(digest_size=16)


class _ChunkHasher:
    """Checksums of consecutive ``chunk_bytes``-sized pieces of a byte stream."""

    def __init__(self, chunk_bytes: int) -> None:
        self.chunk_bytes = int(chunk_bytes)
        self.digests: list[str] = []
        self._h = _new_chunk_hash()
        self._filled = 0

    def update(self, data: Any) -> None:
        buf = memoryview(data).cast("B")
        pos, n = 0, len(buf)
        while pos < n:
            take = min(self.chunk_bytes - self._filled, n - pos)
            self._h.update(buf[pos : pos + take])
            self._filled += take
            pos += take
            if self._filled == self.chunk_bytes:
                self.digests.append(self._h.hexdigest())
                self._h, self._filled = _new_chunk_hash(), 0

    def finish(self) -> list[str]:
        if self._filled:
            self.digests.append(self._h.hexdigest())
            self._h, self._filled = _new_chunk_hash(), 0
        return self.digests


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
    """Write a C-ordered ``.npy`` file of unknown length, row block by row block,
    checksumming the data region chunk by chunk as it goes."""

    def __init__(self, path: Path, dtype: np.dtype, tail: tuple[int, ...]) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.tail = tuple(int(d) for d in tail)
        self.n = 0
        self.checksums = _ChunkHasher(CHUNK_BYTES)
        self._header_size = _npy_header_size(self.dtype, self.tail)
        self._file = open(path, "wb")
        self._file.write(b"\0" * self._header_size)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        data = rows.reshape(-1).view(np.uint8)
        self._file.write(data)
        self.checksums.update(data)
        self.n += rows.shape[0]

    def finish(self) -> dict[str, Any]:
        """Complete the file; return its ``checksum`` manifest entry."""
        self._file.flush()
        self._file.seek(0)
        self._file.write(_npy_header(self.dtype, (self.n, *self.tail), self._header_size))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return {
            "algorithm": CHECKSUM_ALGORITHM,
            "chunk_bytes": self.checksums.chunk_bytes,
            "chunks": self.checksums.finish(),
        }

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


# --------------------------------------------------------------------------- stale partials

WRITER_FILE = ".nncompare-writer.json"
_WRITER_FORMAT = "nncompare.activations.writer"
_ASIDE_SUFFIX = ".old"


def _process_start_time(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _writer_record() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "format": _WRITER_FORMAT,
        "pid": pid,
        "start_time": _process_start_time(pid),
        "boot_id": _boot_id(),
        "host": socket.gethostname(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def _write_writer_record(directory: Path) -> None:
    tmp = directory / (WRITER_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(_writer_record(), f)
    os.replace(tmp, directory / WRITER_FILE)


def _writer_is_gone(record: Any) -> bool:
    """True only when the process that wrote ``record`` has certainly ended.

    Same host, and either the machine rebooted since (another boot id), no process
    with that pid exists, or the pid now belongs to a process started at another
    time. Anything uncertain (other host, unreadable record, not POSIX) counts as
    alive, so a partial directory is never removed under a running writer.
    """
    if os.name != "posix" or not isinstance(record, dict):
        return False
    if record.get("format") != _WRITER_FORMAT or record.get("host") != socket.gethostname():
        return False
    pid = record.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    boot = _boot_id()
    if boot is not None and record.get("boot_id") not in (None, boot):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by another user
    except OSError:
        return False
    started = record.get("start_time")
    now = _process_start_time(pid)
    return started is not None and now is not None and started != now


def remove_stale_partials(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary directories of activation caches whose writer has died.

    An interrupted capture (killed process, power loss) leaves its
    ``.<name>.<random>.partial`` build directory (or the ``.old`` directory of a
    cache being overwritten) behind. Each records its writer (host, pid, process
    start time, boot id) in ``.nncompare-writer.json``; :func:`capture` calls this on
    the cache's parent directory and removes those whose writer process is gone.
    Directories of live writers, of other hosts, or without a readable record are
    kept.

    Parameters
    ----------
    directory : path-like
        The folder holding the cache directories.

    Returns
    -------
    list of pathlib.Path
        The directories removed.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith(".") or not name.endswith((PARTIAL_SUFFIX, _ASIDE_SUFFIX)):
            continue
        try:
            with open(entry / WRITER_FILE, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if _writer_is_gone(record):
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry)
    return removed


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
        try:
            _write_writer_record(self.tmp)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
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
            checksum = writer.finish()
            layers.append(
                {
                    "name": name,
                    "file": self._layer_files[name],
                    "shape": [writer.n, *writer.tail],
                    "dtype": np.lib.format.dtype_to_descr(writer.dtype),
                    "checksum": checksum,
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
                    prefix=f".{self.final.name}.", suffix=_ASIDE_SUFFIX, dir=self.final.parent
                )
            )
            _write_writer_record(aside)
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
        with contextlib.suppress(OSError):  # only build directories carry the record
            os.unlink(self.final / WRITER_FILE)
        _fsync_dir(self.final.parent)
        return self.final

    def abort(self) -> None:
        for writer in self._files.values():
            writer.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------- loading


def check_replaceable(path: Path) -> None:
    """Refuse to let ``overwrite=True`` replace anything but an nncompare activation cache.

    An empty directory, or a directory whose ``manifest.json`` names this format (even a
    damaged cache), may be replaced; a file, or a directory of anything else, never is.
    """
    if not path.exists():
        return
    if not path.is_dir():
        raise FileExistsError(
            f"{str(path)!r} is a file, not an activation cache; overwrite=True replaces only "
            "caches. Choose another cache_dir."
        )
    if next(path.iterdir(), None) is None:
        return
    try:
        with open(path / MANIFEST, encoding="utf-8") as f:
            fmt = json.load(f).get("format")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        fmt = None
    if fmt != FORMAT_NAME:
        raise FileExistsError(
            f"{str(path)!r} is a directory that is not an nncompare activation cache (no "
            f"{MANIFEST} of format {FORMAT_NAME!r}); overwrite=True replaces only caches and "
            "never deletes other files. Choose another cache_dir, or empty it yourself."
        )


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


_VERIFY_READ_BYTES = 1 << 23


def _npy_data_offset(fpath: Path) -> int:
    with open(fpath, "rb") as f:
        major, _minor = np.lib.format.read_magic(f)
        if major == 1:
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return f.tell()


def _corrupt(path: Path, name: str, fname: str, what: str) -> InvalidCacheError:
    return InvalidCacheError(
        f"The activation cache at {str(path)!r} is corrupt: {what} in {fname!r} (layer "
        f"{name!r}). The file changed after it was written (disk or copy error, or an "
        "edit). Delete the cache directory, or call capture(..., overwrite=True), to "
        "capture again."
    )


def _verify_layer(path: Path, entry: Mapping[str, Any], arr: np.ndarray) -> None:
    """Check a layer file's data region against the chunk checksums of its manifest entry."""
    name, fname = entry["name"], entry["file"]
    checksum = entry.get("checksum")
    if checksum is None:
        raise InvalidCacheError(
            f"The activation cache at {str(path)!r} has no checksums (format version 1, "
            "written by an older nncompare), so its data cannot be verified. Capture again "
            "with capture(..., overwrite=True), or read it unverified with "
            "load_cache(path, verify=False)."
        )
    try:
        algorithm = checksum["algorithm"]
        chunk_bytes = int(checksum["chunk_bytes"])
        digests = [str(d) for d in checksum["chunks"]]
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidCacheError(
            f"The manifest of {str(path)!r} has a malformed checksum for layer {name!r}. "
            "Delete the cache and capture again."
        ) from err
    if algorithm != CHECKSUM_ALGORITHM or chunk_bytes < 1:
        raise InvalidCacheError(
            f"The cache at {str(path)!r} uses checksum {algorithm!r} with chunks of "
            f"{chunk_bytes} bytes for layer {name!r}; this nncompare ({__version__}) "
            f"verifies {CHECKSUM_ALGORITHM!r}. Upgrade nncompare or capture again."
        )
    fpath = path / fname
    offset = _npy_data_offset(fpath)
    size = os.path.getsize(fpath)
    if size != offset + arr.nbytes:
        raise _corrupt(
            path, name, fname, f"{size - offset} data bytes where {arr.nbytes} were expected"
        )
    if len(digests) != -(-arr.nbytes // chunk_bytes):
        raise _corrupt(path, name, fname, f"{len(digests)} checksums for {arr.nbytes} bytes")
    hasher = _ChunkHasher(chunk_bytes)
    if isinstance(arr, np.memmap):  # read through a small buffer, not the mapping
        buf = bytearray(min(_VERIFY_READ_BYTES, max(arr.nbytes, 1)))
        view = memoryview(buf)
        with open(fpath, "rb") as f:
            f.seek(offset)
            left = arr.nbytes
            while left > 0:
                got = f.readinto(view[: min(len(buf), left)])
                if not got:
                    break
                hasher.update(view[:got])
                left -= got
    else:
        hasher.update(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    found = hasher.finish()
    for k, (want, got) in enumerate(zip(digests, found, strict=False)):
        if want != got:
            start = k * chunk_bytes
            stop = min(start + chunk_bytes, arr.nbytes)
            raise _corrupt(
                path,
                name,
                fname,
                f"bytes {start}-{stop} of the array data (chunk {k}) have {CHECKSUM_ALGORITHM} "
                f"{got}, the manifest records {want}",
            )
    if len(found) != len(digests):  # pragma: no cover - guarded by the size check
        raise _corrupt(path, name, fname, "the data ended early")


def load_cache(
    path: str | os.PathLike[str],
    *,
    model: nn.Module | None = None,
    mmap: bool = True,
    verify: bool = True,
) -> CapturedActivations:
    """Load activations written by ``capture(..., cache_dir=path)``.

    Parameters
    ----------
    path : path-like
        The cache directory.
    model : torch.nn.Module or None, default None
        If given, check that the cache was made from a model with the same
        structure, configuration and parameters (see :func:`model_fingerprint`).
        The output probe that :func:`~nncompare.capture.capture` also compares needs
        the inputs, so it is not checked here.
    mmap : bool, default True
        Memory-map the arrays read-only (with ``verify=False`` nothing is read until
        used). With False they are read into memory.
    verify : bool, default True
        Check every layer file against the chunk checksums (BLAKE2b, one per 64 MiB
        of array data) recorded in the manifest when it was written. This reads the
        whole cache once (through a small buffer, so memory stays flat). With False
        a damaged file can load as wrong numbers.

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
        truncated layer file, unknown format version), or, with ``verify``, if a
        layer's data does not match its checksums (the cache is corrupt: delete it
        or capture again with ``overwrite=True``) or the cache has no checksums
        (format version 1).
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
        if verify:
            _verify_layer(path, entry, arr)
        arrays[name] = arr
    if model is not None:
        expected = model_fingerprint(model)
        found = manifest.get("model", {}).get("fingerprint")
        if found != expected:
            raise StaleCacheError(
                f"The cache at {str(path)!r} was made from a model with fingerprint "
                f"{found}, but the given model has {expected}: the weights, buffers or "
                "configuration differ. Capture again (capture(..., cache_dir=..., "
                "overwrite=True))."
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
        "model": {"class": _qualified_name(type(model)), "fingerprint": fingerprint},
        **fields,
    }
