"""Scratch buffers reused from call to call.

A buffer of tens of megabytes allocated afresh on every call is a new memory mapping
each time: the first write to each 4 KiB page faults, and the faults of the worker
threads filling one buffer queue on the process's memory-map lock. For the float32
products (``stats._zcom_numpy_f32``) that made the centring-and-product stage 10–60 %
slower, and its time erratic, against a buffer kept between calls (measured:
benchmarks/README.md). Each thread keeps one buffer of at most :data:`MAX_BYTES`; larger
requests get a fresh array that is not kept.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["MAX_BYTES", "release", "scratch"]

#: the largest buffer a thread keeps between calls (the float32 product chunk)
MAX_BYTES = 64 * 2**20

_LOCAL = threading.local()


def scratch(shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
    """An uninitialised C-ordered array of ``shape`` and ``dtype``, backed by this thread's
    kept buffer when it fits in :data:`MAX_BYTES`.

    The contents are garbage, and the array is only valid until this thread asks for
    scratch again: callers fill it, reduce it and drop it within one computation (it is
    never returned to users, never stored).
    """
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if nbytes > MAX_BYTES:
        return np.empty(shape, dtype=dt)
    buf = getattr(_LOCAL, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(max(nbytes, 1), dtype=np.uint8)
        _LOCAL.buf = buf
    return buf[:nbytes].view(dt).reshape(shape)


def release() -> None:
    """Drop this thread's kept buffer (its memory goes back to the system)."""
    _LOCAL.buf = None
